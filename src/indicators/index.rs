//! A gateway's in-memory index of the release-time facts, so that the figures over a million
//! consignments are computed in tens of milliseconds, exactly, from compact rows rather than
//! read from the store at every request.
//!
//! The store stays the truth: the index loads every consignment's facts once, then, before each
//! request, reads the consignments whose facts changed since (`release_time_changes`, in commit
//! order by position, as cursors read deliveries: no change is passed over, also when several
//! gateways write), and replaces their rows. Segment values are interned: a row holds numbers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use super::figures::{figures, pre_arrival, AgencyFacts, ConsignmentFacts, Dimension, Figures, FiguresRequest, Interval};
use super::public::{publication, Period, Publication};
use super::tfa::{self, TfaFigures, TfaGroup, TfaRequest, TfaScope};
use super::tfa_public::PublicTfa;
use crate::clock::Millis;
use crate::domain::{AgencyId, Ucr};
use crate::store::{AgencyReleaseTimes, ConsignmentReleaseTimes, Store, StoreError};

/// The fewest rows the TFA monitor gathers on one thread at a time.
const TFA_CHUNK_ROWS: usize = 20_000;

/// Changes read per round when catching up.
const CHANGES_PER_ROUND: usize = 10_000;

/// Interned texts: each distinct segment value, owner and agency once.
#[derive(Default)]
struct Names {
    list: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }
    fn text(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("unknown", String::as_str)
    }
}

/// A consignment's facts, compact.
#[derive(Debug, Clone, Copy)]
struct Row {
    lodged_at: Millis,
    arrived_at: Option<Millis>,
    released_at: Option<Millis>,
    decided_at: Option<Millis>,
    owner: u32,
    document_type: u32,
    corridor: u32,
    transport_mode: u32,
    hs_chapter: u32,
    border_post: u32,
    channel: u32,
    risk_channel: u32,
    hold_ms: i64,
    query_trader_ms: i64,
    query_agency_ms: i64,
    /// Its formalities (documents, amendments, queries, resubmissions), each saturating at
    /// 65,535 (a compact row); none until computed.
    formalities: Option<[u16; 4]>,
    /// Where its agencies' parts are in [`Index::parts`].
    parts_at: usize,
    parts_len: usize,
}

/// An agency's part, compact.
#[derive(Debug, Clone, Copy)]
struct Part {
    agency: u32,
    kind: u32,
    routed_at: Millis,
    first_answer_at: Option<Millis>,
    decided_at: Option<Millis>,
    hold_ms: i64,
    query_trader_ms: i64,
    query_agency_ms: i64,
    treatment: Option<tfa::Treatment>,
}

/// The rows, contiguous (a scan reads memory in order): a changed consignment's row is
/// replaced in place, its parts appended anew and the old ones marked dead (compacted when the
/// dead outnumber the live).
#[derive(Default)]
struct Index {
    loaded: bool,
    /// The last change applied.
    cursor: i64,
    names: Names,
    rows: Vec<Row>,
    by_ucr: HashMap<Ucr, usize>,
    /// Each part with its row's place in `rows`; a dead part's row is `usize::MAX`.
    parts: Vec<(usize, Part)>,
    dead_parts: usize,
}

/// The index, shared by a gateway's requests; one catch-up at a time (so a load at start and a
/// first request do not both read everything).
#[derive(Clone, Default)]
pub struct FactsIndex(Arc<RwLock<Index>>, Arc<tokio::sync::Mutex<()>>);

/// The interned ids of a [`Scope`]'s names.
struct ScopeIds {
    owner: Option<Option<u32>>,
    agency: Option<Option<u32>>,
}

/// Whose facts a request reads.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub owner: Option<String>,
    pub agency: Option<AgencyId>,
}

impl Index {
    fn row(&mut self, c: &ConsignmentReleaseTimes) -> Row {
        let known = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        Row {
            lodged_at: c.lodged_at,
            arrived_at: c.arrived_at,
            released_at: c.released_at,
            decided_at: c.decided_at,
            owner: self.names.id(&c.owner),
            document_type: self.names.id(&c.document_type),
            corridor: self.names.id(&format!("{}-{}", c.origin, c.destination)),
            transport_mode: self.names.id(&known(&c.dims.transport_mode)),
            hs_chapter: self.names.id(&known(&c.dims.hs_chapter)),
            border_post: self.names.id(&known(&c.dims.border_post)),
            channel: self.names.id(&c.channel),
            risk_channel: self.names.id(&c.risk_channel),
            hold_ms: c.hold_ms,
            query_trader_ms: c.query_trader_ms,
            query_agency_ms: c.query_agency_ms,
            formalities: c.formalities.map(|f| {
                [f.documents, f.amendments, f.queries, f.resubmissions].map(|n| n.clamp(0, i64::from(u16::MAX)) as u16)
            }),
            parts_at: 0,
            parts_len: 0,
        }
    }

    fn part(&mut self, a: &AgencyReleaseTimes, kind: &str) -> Part {
        Part {
            agency: self.names.id(a.agency.as_str()),
            kind: self.names.id(kind),
            routed_at: a.routed_at,
            first_answer_at: a.first_answer_at,
            decided_at: a.decided_at,
            hold_ms: a.hold_ms,
            query_trader_ms: a.query_trader_ms,
            query_agency_ms: a.query_agency_ms,
            treatment: a.selectivity.as_ref().map(tfa::Treatment::of),
        }
    }

    /// Replaces the rows of these consignments (their agencies' parts with them).
    fn apply(&mut self, consignments: Vec<ConsignmentReleaseTimes>, parts: Vec<(Ucr, AgencyReleaseTimes)>, kind_of: &dyn Fn(&AgencyId) -> String) {
        let mut by_ucr: HashMap<Ucr, Vec<Part>> = HashMap::new();
        for (ucr, a) in &parts {
            let part = self.part(a, &kind_of(&a.agency));
            by_ucr.entry(ucr.clone()).or_default().push(part);
        }
        for c in consignments {
            let mut row = self.row(&c);
            let parts = by_ucr.remove(&c.ucr).unwrap_or_default();
            let at = match self.by_ucr.get(&c.ucr) {
                Some(at) => {
                    let old = self.rows[*at];
                    for p in &mut self.parts[old.parts_at..old.parts_at + old.parts_len] {
                        p.0 = usize::MAX;
                    }
                    self.dead_parts += old.parts_len;
                    *at
                }
                None => {
                    self.rows.push(row);
                    self.by_ucr.insert(c.ucr, self.rows.len() - 1);
                    self.rows.len() - 1
                }
            };
            row.parts_at = self.parts.len();
            row.parts_len = parts.len();
            self.parts.extend(parts.into_iter().map(|p| (at, p)));
            self.rows[at] = row;
        }
        if self.dead_parts > self.parts.len() / 2 {
            self.compact();
        }
    }

    /// The agencies' parts of `row`.
    fn parts_of(&self, row: &Row) -> &[(usize, Part)] {
        &self.parts[row.parts_at..row.parts_at + row.parts_len]
    }

    /// Drops the dead parts.
    fn compact(&mut self) {
        let mut parts = Vec::with_capacity(self.parts.len() - self.dead_parts);
        for (i, row) in self.rows.iter_mut().enumerate() {
            let start = parts.len();
            parts.extend(self.parts[row.parts_at..row.parts_at + row.parts_len].iter().map(|(_, p)| (i, *p)));
            row.parts_at = start;
        }
        self.parts = parts;
        self.dead_parts = 0;
    }
}

/// A row with the names it refers to.
#[derive(Clone, Copy)]
struct RowRef<'a> {
    row: &'a Row,
    names: &'a Names,
}

impl ConsignmentFacts for RowRef<'_> {
    fn lodged_at(&self) -> Millis {
        self.row.lodged_at
    }
    fn arrived_at(&self) -> Option<Millis> {
        self.row.arrived_at
    }
    fn released_at(&self) -> Option<Millis> {
        self.row.released_at
    }
    fn hold_ms(&self) -> i64 {
        self.row.hold_ms
    }
    fn query_trader_ms(&self) -> i64 {
        self.row.query_trader_ms
    }
    fn query_agency_ms(&self) -> i64 {
        self.row.query_agency_ms
    }
    fn segment(&self, d: Dimension) -> Cow<'_, str> {
        let r = self.row;
        Cow::Borrowed(match d {
            Dimension::DocumentType => self.names.text(r.document_type),
            Dimension::Corridor => self.names.text(r.corridor),
            Dimension::BorderPost => self.names.text(r.border_post),
            Dimension::TransportMode => self.names.text(r.transport_mode),
            Dimension::HsChapter => self.names.text(r.hs_chapter),
            Dimension::Channel => self.names.text(r.channel),
            Dimension::RiskChannel => self.names.text(r.risk_channel),
            Dimension::PreArrival => pre_arrival(r.lodged_at, r.arrived_at),
            Dimension::Agency | Dimension::AgencyKind => "unknown",
        })
    }
    fn owner(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.names.text(self.row.owner))
    }
    fn decided_at(&self) -> Option<Millis> {
        self.row.decided_at
    }
    fn formalities(&self) -> Option<crate::store::Formalities> {
        let [documents, amendments, queries, resubmissions] = self.row.formalities?.map(i64::from);
        Some(crate::store::Formalities { documents, amendments, queries, resubmissions })
    }
}

struct PartRef<'a> {
    part: &'a Part,
    names: &'a Names,
}

impl AgencyFacts for PartRef<'_> {
    fn agency(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.names.text(self.part.agency))
    }
    fn agency_kind(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.names.text(self.part.kind))
    }
    fn routed_at(&self) -> Millis {
        self.part.routed_at
    }
    fn first_answer_at(&self) -> Option<Millis> {
        self.part.first_answer_at
    }
    fn decided_at(&self) -> Option<Millis> {
        self.part.decided_at
    }
    fn hold_ms(&self) -> i64 {
        self.part.hold_ms
    }
    fn query_trader_ms(&self) -> i64 {
        self.part.query_trader_ms
    }
    fn query_agency_ms(&self) -> i64 {
        self.part.query_agency_ms
    }
    fn treatment(&self) -> Option<tfa::Treatment> {
        self.part.treatment
    }
}

impl FactsIndex {
    /// Brings the index up to the store's latest change (loading it all the first time).
    pub async fn catch_up(&self, store: &dyn Store, kind_of: &(dyn Fn(&AgencyId) -> String + Sync)) -> Result<(), StoreError> {
        let _one_at_a_time = self.1.lock().await;
        let (loaded, mut cursor) = {
            let index = self.0.read().map_err(|_| StoreError::Unavailable("the indicators' index is poisoned".into()))?;
            (index.loaded, index.cursor)
        };
        if !loaded {
            // The latest position first: a change committed while everything is read is read
            // again at the next catch-up (replacing a row is idempotent).
            let (latest, consignments, parts) = store
                .read_with(|l| {
                    let latest = l.latest_release_time_change()?;
                    let (c, p) = l.release_times_of(None)?;
                    Ok((latest, c, p))
                })
                .await?;
            let mut index = self.0.write().map_err(|_| StoreError::Unavailable("the indicators' index is poisoned".into()))?;
            if !index.loaded {
                index.apply(consignments, parts, kind_of);
                index.cursor = latest;
                index.loaded = true;
            }
            cursor = index.cursor;
        }
        loop {
            let (changes, consignments, parts) = store
                .read_with(move |l| {
                    let changes = l.release_time_changes_after(cursor, CHANGES_PER_ROUND)?;
                    let mut ucrs: Vec<Ucr> = changes.iter().map(|(_, u)| u.clone()).collect();
                    ucrs.sort();
                    ucrs.dedup();
                    let (c, p) = if ucrs.is_empty() { (Vec::new(), Vec::new()) } else { l.release_times_of(Some(&ucrs))? };
                    Ok((changes, c, p))
                })
                .await?;
            let Some(last) = changes.last().map(|c| c.0) else { return Ok(()) };
            let mut index = self.0.write().map_err(|_| StoreError::Unavailable("the indicators' index is poisoned".into()))?;
            if index.cursor < last {
                index.apply(consignments, parts, kind_of);
                index.cursor = last;
            }
            cursor = index.cursor;
            if changes.len() < CHANGES_PER_ROUND {
                return Ok(());
            }
        }
    }

    /// Runs `work` over the index and the ids `scope` names (`Some(None)`: a name the index has
    /// never seen, so that nothing matches), on a blocking thread: it scans every row.
    async fn scan<T: Send + 'static>(
        &self,
        scope: Scope,
        what: &'static str,
        work: impl FnOnce(&Index, ScopeIds) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let index = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let index = index.read().map_err(|_| StoreError::Unavailable("the indicators' index is poisoned".into()))?;
            let ids = ScopeIds {
                owner: scope.owner.as_deref().map(|o| index.names.ids.get(o).copied()),
                agency: scope.agency.as_ref().map(|a| index.names.ids.get(a.as_str()).copied()),
            };
            Ok(work(&index, ids))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("{what} could not be computed: {e}")))?
    }

    /// The figures of the consignments lodged in `[from, to)` within `scope`.
    pub async fn figures(&self, request: FiguresRequest, scope: Scope, from: Millis, to: Millis) -> Result<Figures, StoreError> {
        self.scan(scope, "the figures", move |index, ScopeIds { owner, agency }| {
            let names = &index.names;
            let selected = move |row: &Row| row.lodged_at >= from && row.lodged_at < to && owner.is_none_or(|o| o == Some(row.owner));
            // An agency reads the consignments it has a part in.
            let in_scope = |row: &Row| agency.is_none_or(|a| a.is_some_and(|a| index.parts_of(row).iter().any(|p| p.1.agency == a)));
            let consignments = index.rows.iter().filter(move |row| selected(row) && in_scope(row)).map(|row| RowRef { row, names });
            let parts = index
                .parts
                .iter()
                .filter(move |(at, part)| *at != usize::MAX && agency.is_none_or(|a| Some(part.agency) == a))
                .map(|(at, part)| (&index.rows[*at], part))
                .filter(move |(row, _)| selected(row))
                .map(|(row, part)| (RowRef { row, names }, PartRef { part, names }));
            figures(&request, consignments, parts, from, to)
        })
        .await
    }

    /// The TFA monitor's figures (`super::tfa`) of the consignments of `scope` lodged in
    /// `[from, to)` and in the period of the same length before.
    pub async fn tfa(&self, request: TfaRequest, scope: TfaScope, from: Millis, to: Millis) -> Result<TfaFigures, StoreError> {
        let (country, agency) = match &scope {
            TfaScope::Region => (None, None),
            TfaScope::Country(c) => (Some(c.clone()), None),
            TfaScope::Agency(a) => (None, Some(a.clone())),
        };
        self.scan(Scope { owner: None, agency }, "the TFA figures", move |index, ScopeIds { agency, .. }| {
            let names = &index.names;
            // A country's consignments are those into it; an agency's, those it has a part in.
            let in_scope = |row: &Row| {
                country.as_deref().is_none_or(|c| TfaGroup::Country.of(names.text(row.corridor)) == c)
                    && agency.is_none_or(|a| a.is_some_and(|a| index.parts_of(row).iter().any(|p| p.1.agency == a)))
            };
            // A country reads its own agencies' parts (another country's selection is that
            // country's), an agency its own part.
            let own = |part: &&(usize, Part)| {
                agency.is_none_or(|a| Some(part.1.agency) == a)
                    && country.as_deref().is_none_or(|c| names.text(part.1.agency).get(..2).is_some_and(|p| p.eq_ignore_ascii_case(c)))
            };
            // Each period's rows (rows are kept roughly in lodgement order: they are selected
            // first, so that each thread gets its share of them), in one chunk per thread (each
            // merge copies the values gathered), gathered on the figures' threads and merged.
            let period = |from: Millis, to: Millis| {
                let rows: Vec<&Row> = index.rows.iter().filter(|row| row.lodged_at >= from && row.lodged_at < to && in_scope(row)).collect();
                let gather = |rows: &[&Row]| {
                    let mut gathered = tfa::Gathered::default();
                    for row in rows.iter().copied() {
                        let parts = index.parts_of(row).iter().filter(own).map(move |(_, part)| PartRef { part, names });
                        gathered.add(&request, RowRef { row, names }, parts);
                    }
                    gathered
                };
                let threads = super::figures::pool().map_or(1, |p| p.current_num_threads());
                let chunk = rows.len().div_ceil(threads).max(TFA_CHUNK_ROWS);
                let gathered = match super::figures::pool() {
                    Some(pool) => pool.install(|| rows.par_chunks(chunk).map(gather).reduce(tfa::Gathered::default, tfa::Gathered::merge)),
                    None => gather(&rows),
                };
                gathered.finish(from, to)
            };
            let previous = period(from.saturating_sub(to.saturating_sub(from)), from);
            let current = period(from, to);
            let mut figures = TfaFigures {
                scope: scope.name(),
                articles: scope.articles(),
                group_by: request.group_by,
                expedited_types: request.expedited_types.clone(),
                joint_inspection_window_minutes: request.joint_window_ms / 60_000,
                current,
                previous,
                method: tfa::METHOD,
            };
            scope.restrict(&mut figures);
            figures
        })
        .await
    }

    /// The TFA monitor's public figures of the month `period` and of the month before,
    /// `previous` (every consignment), computed on one blocking thread and handed there to
    /// `then`, as [`FactsIndex::publication`]'s are.
    pub async fn tfa_publication<T: Send + 'static>(
        &self,
        period: Period,
        previous: Period,
        joint_window_ms: i64,
        min_count: usize,
        then: impl FnOnce(PublicTfa) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        self.scan(Scope::default(), "the public TFA figures", move |index, _| {
            let names = &index.names;
            let of = |p: Period| {
                index.rows.iter().filter(move |row| row.lodged_at >= p.from && row.lodged_at < p.to).map(move |row| {
                    (RowRef { row, names }, index.parts_of(row).iter().map(move |(_, part)| PartRef { part, names }))
                })
            };
            then(super::tfa_public::publication(period, of(period), previous, of(previous), joint_window_ms, min_count))
        })
        .await
    }

    /// The public figures of `interval` over `period` (every consignment), computed on one
    /// blocking thread (not spread over the cores as a participant's are) and handed there to
    /// `then`, which turns them into what the caller keeps (its answers, serialized): none of
    /// that work runs on the threads that serve requests.
    pub async fn publication<T: Send + 'static>(
        &self,
        interval: Interval,
        period: Period,
        mode_bin_ms: i64,
        min_count: usize,
        then: impl FnOnce(Publication) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let index = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let index = index.read().map_err(|_| StoreError::Unavailable("the indicators' index is poisoned".into()))?;
            let names = &index.names;
            let selected = move |row: &Row| row.lodged_at >= period.from && row.lodged_at < period.to;
            let consignments = index.rows.iter().filter(move |row| selected(row)).map(|row| RowRef { row, names });
            let parts = index
                .parts
                .iter()
                .filter(|(at, _)| *at != usize::MAX)
                .map(|(at, part)| (&index.rows[*at], part))
                .filter(move |(row, _)| selected(row))
                .map(|(row, part)| (RowRef { row, names }, PartRef { part, names }));
            let p = publication(interval, consignments, parts, period, mode_bin_ms, min_count);
            drop(index);
            Ok(then(p))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the figures could not be computed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::figures::Interval;
    use crate::store::DocumentDims;

    fn facts(ucr: &str, lodged: Millis, released: Millis) -> ConsignmentReleaseTimes {
        ConsignmentReleaseTimes {
            ucr: Ucr::parse(ucr).unwrap(),
            owner: "demo-trader".into(),
            lodged_at: lodged,
            arrived_at: Some(lodged),
            released_at: Some(released),
            decided_at: Some(released),
            outcome: "released".into(),
            document_type: "customsDeclaration".into(),
            origin: "AR".into(),
            destination: "BR".into(),
            dims: DocumentDims::default(),
            channel: "without".into(),
            hold_ms: 0,
            query_trader_ms: 0,
            query_agency_ms: 0,
            risk_channel: "green".into(),
            formalities: None,
        }
    }

    fn part(agency: &str, decided: Millis) -> AgencyReleaseTimes {
        AgencyReleaseTimes {
            agency: AgencyId::parse(agency).unwrap(),
            routed_at: 0,
            first_answer_at: Some(decided),
            decided_at: Some(decided),
            decision: Some("released".into()),
            hold_ms: 0,
            query_trader_ms: 0,
            query_agency_ms: 0,
            selectivity: None,
        }
    }

    fn request(interval: Interval, group_by: Vec<Dimension>) -> FiguresRequest {
        FiguresRequest { interval, group_by, trend: None, mode_bin_ms: 1000, agency_rows: false }
    }

    #[tokio::test]
    async fn a_changed_consignment_replaces_its_row_and_its_parts() {
        let index = FactsIndex::default();
        let kind = |_: &AgencyId| "customs".to_owned();
        let u = |s: &str| Ucr::parse(s).unwrap();
        {
            let mut i = index.0.write().unwrap();
            i.apply(vec![facts("U-1", 0, 100), facts("U-2", 0, 300)], vec![(u("U-1"), part("br-customs", 10)), (u("U-2"), part("br-customs", 30))], &kind);
            // U-1 changes: released later, and a second agency.
            i.apply(vec![facts("U-1", 0, 200)], vec![(u("U-1"), part("br-customs", 20)), (u("U-1"), part("br-border", 50))], &kind);
            assert_eq!((i.rows.len(), i.parts.len() - i.dead_parts), (2, 3));
        }
        let all = index.figures(request(Interval::LodgementToRelease, vec![]), Scope::default(), 0, 1000).await.unwrap();
        let summary = all.overall.stats.unwrap().summary.unwrap();
        assert_eq!((summary.min_ms, summary.max_ms), (Some(200), Some(300)), "U-1's new release time, once");
        let by_agency = index.figures(request(Interval::AgencyDecision, vec![Dimension::Agency]), Scope::default(), 0, 1000).await.unwrap();
        let counts: Vec<(String, usize)> =
            by_agency.groups.iter().map(|g| (g.group["agency"].clone(), g.stats.as_ref().unwrap().count)).collect();
        assert_eq!(counts, [("br-border".to_owned(), 1), ("br-customs".to_owned(), 2)]);
        // An agency reads its own parts only.
        let scope = Scope { owner: None, agency: Some(AgencyId::parse("br-border").unwrap()) };
        let own = index.figures(request(Interval::AgencyDecision, vec![]), scope, 0, 1000).await.unwrap();
        assert_eq!(own.overall.stats.unwrap().count, 1);
        // Changed again and again: the dead parts are compacted away.
        for n in 0..3 {
            let mut i = index.0.write().unwrap();
            i.apply(vec![facts("U-2", 0, 400 + n)], vec![(u("U-2"), part("br-customs", 40))], &kind);
        }
        let i = index.0.read().unwrap();
        assert!(i.dead_parts <= i.parts.len() / 2, "{} dead of {}", i.dead_parts, i.parts.len());
        assert_eq!(i.parts.iter().filter(|p| p.0 != usize::MAX).count(), 3);
    }
}
