//! The figures of the release-time indicators: which interval, over which consignments,
//! grouped by which segments, per period; and the statistics of each cell, with the method
//! stated in every answer (`METHOD`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::clock::Millis;
use crate::store::{AgencyReleaseTimes, ConsignmentReleaseTimes};

/// How the figures are computed, as every answer and the published report state it.
pub const METHOD: &str = "Quantiles (median, p90, and the quartiles of the outlier rule) by linear interpolation between \
closest ranks. Mode: the start of the most frequent bin of `modeBinMs` (the earliest of equally frequent bins). Outliers \
(Tukey): values below Q1 - 1.5 x IQR or above Q3 + 1.5 x IQR; each figure is also given without them. Intervals are in \
milliseconds; an interval still open is not counted. Consignments are selected and put in periods by their lodgement time.";

/// The interval measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interval {
    /// Arrival of the goods to release: the WCO TRS figure (WTO TFA Art. 7.6).
    ArrivalToRelease,
    /// First submission to release.
    LodgementToRelease,
    /// Arrival to lodgement: negative when the declaration was lodged before arrival.
    ArrivalToLodgement,
    /// An agency's part: its document routed to its first answer.
    AgencyFirstAnswer,
    /// An agency's part: its document routed to its final decision.
    AgencyDecision,
    /// Time on hold.
    Hold,
    /// Time a query waited for the trader.
    QueryTrader,
    /// Time a query waited for the agency after the trader answered.
    QueryAgency,
}

impl Interval {
    pub const ALL: [Interval; 8] = [
        Interval::ArrivalToRelease,
        Interval::LodgementToRelease,
        Interval::ArrivalToLodgement,
        Interval::AgencyFirstAnswer,
        Interval::AgencyDecision,
        Interval::Hold,
        Interval::QueryTrader,
        Interval::QueryAgency,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::ArrivalToRelease => "arrival-to-release",
            Interval::LodgementToRelease => "lodgement-to-release",
            Interval::ArrivalToLodgement => "arrival-to-lodgement",
            Interval::AgencyFirstAnswer => "agency-first-answer",
            Interval::AgencyDecision => "agency-decision",
            Interval::Hold => "hold",
            Interval::QueryTrader => "query-trader",
            Interval::QueryAgency => "query-agency",
        }
    }
    pub fn parse(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == s)
    }
    /// Measured per agency's part, not per consignment.
    pub fn per_agency(self) -> bool {
        matches!(self, Interval::AgencyFirstAnswer | Interval::AgencyDecision)
    }
}

/// A segment the figures can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dimension {
    Agency,
    AgencyKind,
    DocumentType,
    /// Origin to destination, `AR-BR`.
    Corridor,
    BorderPost,
    TransportMode,
    HsChapter,
    /// `with-hold`, `with-query` or `without`.
    Channel,
    /// `pre-arrival`, `post-arrival`, or `unknown` (no arrival known).
    PreArrival,
    /// The strictest risk channel of its deliveries: `red`, `yellow`, `green`, `unselected`.
    RiskChannel,
}

impl Dimension {
    pub const ALL: [Dimension; 10] = [
        Dimension::Agency,
        Dimension::AgencyKind,
        Dimension::DocumentType,
        Dimension::Corridor,
        Dimension::BorderPost,
        Dimension::TransportMode,
        Dimension::HsChapter,
        Dimension::Channel,
        Dimension::PreArrival,
        Dimension::RiskChannel,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Agency => "agency",
            Dimension::AgencyKind => "agencyKind",
            Dimension::DocumentType => "documentType",
            Dimension::Corridor => "corridor",
            Dimension::BorderPost => "borderPost",
            Dimension::TransportMode => "transportMode",
            Dimension::HsChapter => "hsChapter",
            Dimension::Channel => "channel",
            Dimension::PreArrival => "preArrival",
            Dimension::RiskChannel => "riskChannel",
        }
    }
    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
    /// Read from each agency's part rather than the consignment.
    pub fn per_agency(self) -> bool {
        matches!(self, Dimension::Agency | Dimension::AgencyKind)
    }
}

/// Periods of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Day,
    /// ISO weeks, from Monday.
    Week,
}

impl Trend {
    pub fn parse(s: &str) -> Option<Trend> {
        match s {
            "day" => Some(Trend::Day),
            "week" => Some(Trend::Week),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Day => "day",
            Trend::Week => "week",
        }
    }
    /// The start (midnight UTC) of the period holding `at`.
    pub fn period_start(self, at: Millis) -> Millis {
        const DAY: Millis = 86_400_000;
        let day = at.div_euclid(DAY);
        let start = match self {
            Trend::Day => day,
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            Trend::Week => day - (day + 3).rem_euclid(7),
        };
        start * DAY
    }
    /// The first day (`YYYY-MM-DD`, UTC) of the period holding `at`.
    #[cfg(test)]
    fn period(self, at: Millis) -> String {
        crate::clock::rfc3339(self.period_start(at))[..10].to_owned()
    }
}

/// What a reader asks for.
#[derive(Debug, Clone)]
pub struct FiguresRequest {
    pub interval: Interval,
    pub group_by: Vec<Dimension>,
    pub trend: Option<Trend>,
    /// Width of the mode's bins.
    pub mode_bin_ms: i64,
    /// Read from each agency's part whatever the interval (an agency reads its own parts only).
    pub agency_rows: bool,
}

impl FiguresRequest {
    /// Whether the figures are read from each agency's part rather than each consignment.
    pub fn per_agency(&self) -> bool {
        self.agency_rows || self.interval.per_agency() || self.group_by.iter().any(|d| d.per_agency())
    }
}

/// The statistics of one set of intervals: how many, and their figures when there are any.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub count: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// The figures of a non-empty set of intervals.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The average: the figure WTO TFA Art. 7.6 asks members to publish.
    pub mean_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    /// The start of the most frequent bin.
    pub mode_ms: i64,
    /// The extremes: each is one consignment's own time, so the public figures leave them out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<i64>,
}

/// One cell: a group (and period), its figures, and its outliers.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// The segment: one value per dimension grouped by.
    pub group: BTreeMap<String, String>,
    /// The period's first day, for a trend's cells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Suppressed in the public figures (too few consignments, or so that another cannot be
    /// computed from the rest): no figure is given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub stats: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outliers: Option<Outliers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_outliers: Option<Stats>,
}

/// The outliers of a cell, by the rule in [`METHOD`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outliers {
    pub count: usize,
    pub low_fence_ms: f64,
    pub high_fence_ms: f64,
}

/// The answer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    #[schemars(with = "String")]
    pub interval: Interval,
    pub from: String,
    pub to: String,
    pub group_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub trend: Option<Trend>,
    pub mode_bin_ms: i64,
    /// Cells of fewer consignments were suppressed (public figures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_count: Option<usize>,
    /// Only intervals that closed before this time are counted (public figures only: a
    /// month's figures do not change once published).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_before: Option<String>,
    pub method: &'static str,
    /// Every row counted, whatever its group.
    pub overall: Cell,
    /// One per group.
    pub groups: Vec<Cell>,
    /// One per group and period, when a trend is asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trend_cells: Vec<Cell>,
}

/// FNV-1a for the group keys, hashed once per row: they are short segment values (codes the
/// schemas bound: countries, modes, UN/LOCODEs, HS chapters, agency ids), a few dozen distinct
/// ones per query, so the standard keyed hash's protection against crafted collisions buys
/// little here and costs several times more per row.
pub(super) type Fnv = std::hash::BuildHasherDefault<FnvHasher>;

#[derive(Default)]
pub(super) struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// What the figures read of a consignment's facts: the store's rows, or a gateway's index of
/// them (`super::index`).
pub trait ConsignmentFacts {
    fn lodged_at(&self) -> Millis;
    fn arrived_at(&self) -> Option<Millis>;
    fn released_at(&self) -> Option<Millis>;
    fn hold_ms(&self) -> i64;
    fn query_trader_ms(&self) -> i64;
    fn query_agency_ms(&self) -> i64;
    /// Its value of a segment that is the consignment's (not an agency's).
    fn segment(&self, d: Dimension) -> Cow<'_, str>;
    /// The participant that opened it.
    fn owner(&self) -> Cow<'_, str>;
    /// When it was released or refused.
    fn decided_at(&self) -> Option<Millis>;
}

/// What the figures read of an agency's part in a consignment.
pub trait AgencyFacts {
    fn agency(&self) -> Cow<'_, str>;
    fn agency_kind(&self) -> Cow<'_, str>;
    fn routed_at(&self) -> Millis;
    fn first_answer_at(&self) -> Option<Millis>;
    fn decided_at(&self) -> Option<Millis>;
    fn hold_ms(&self) -> i64;
    fn query_trader_ms(&self) -> i64;
    fn query_agency_ms(&self) -> i64;
}

pub(super) fn consignment_value(c: &impl ConsignmentFacts, interval: Interval) -> Option<i64> {
    let positive = |v: i64| (v > 0).then_some(v);
    match interval {
        Interval::ArrivalToRelease => Some(c.released_at()? - c.arrived_at()?),
        Interval::LodgementToRelease => Some(c.released_at()? - c.lodged_at()),
        Interval::ArrivalToLodgement => Some(c.lodged_at() - c.arrived_at()?),
        Interval::Hold => positive(c.hold_ms()),
        Interval::QueryTrader => positive(c.query_trader_ms()),
        Interval::QueryAgency => positive(c.query_agency_ms()),
        Interval::AgencyFirstAnswer | Interval::AgencyDecision => None,
    }
}

pub(super) fn agency_value(c: &impl ConsignmentFacts, a: &impl AgencyFacts, interval: Interval) -> Option<i64> {
    let positive = |v: i64| (v > 0).then_some(v);
    match interval {
        Interval::AgencyFirstAnswer => Some(a.first_answer_at()? - a.routed_at()),
        Interval::AgencyDecision => Some(a.decided_at()? - a.routed_at()),
        Interval::Hold => positive(a.hold_ms()),
        Interval::QueryTrader => positive(a.query_trader_ms()),
        Interval::QueryAgency => positive(a.query_agency_ms()),
        other => consignment_value(c, other),
    }
}

/// When a consignment's interval closed, so that nothing can change it any more: its last
/// event (release; arrival or lodgement), or for its holds and queries, its decision.
pub(super) fn consignment_closed_at(c: &impl ConsignmentFacts, interval: Interval) -> Option<Millis> {
    match interval {
        Interval::ArrivalToRelease | Interval::LodgementToRelease => c.released_at(),
        Interval::ArrivalToLodgement => Some(c.lodged_at().max(c.arrived_at()?)),
        Interval::Hold | Interval::QueryTrader | Interval::QueryAgency => c.decided_at(),
        Interval::AgencyFirstAnswer | Interval::AgencyDecision => None,
    }
}

/// When an agency's part of an interval closed: its first answer, or its decision.
pub(super) fn agency_closed_at(c: &impl ConsignmentFacts, a: &impl AgencyFacts, interval: Interval) -> Option<Millis> {
    match interval {
        Interval::AgencyFirstAnswer => a.first_answer_at(),
        Interval::AgencyDecision | Interval::Hold | Interval::QueryTrader | Interval::QueryAgency => a.decided_at(),
        other => consignment_closed_at(c, other),
    }
}

/// A consignment's value of a segment, from its facts as the store keeps them.
pub fn segment_of(c: &ConsignmentReleaseTimes, d: Dimension) -> Cow<'_, str> {
    fn known(v: &Option<String>) -> Cow<'_, str> {
        Cow::Borrowed(v.as_deref().unwrap_or("unknown"))
    }
    match d {
        Dimension::DocumentType => Cow::Borrowed(&c.document_type),
        Dimension::Corridor => Cow::Owned(format!("{}-{}", c.origin, c.destination)),
        Dimension::BorderPost => known(&c.dims.border_post),
        Dimension::TransportMode => known(&c.dims.transport_mode),
        Dimension::HsChapter => known(&c.dims.hs_chapter),
        Dimension::Channel => Cow::Borrowed(&c.channel),
        Dimension::PreArrival => Cow::Borrowed(pre_arrival(c.lodged_at, c.arrived_at)),
        Dimension::RiskChannel => Cow::Borrowed(&c.risk_channel),
        Dimension::Agency | Dimension::AgencyKind => Cow::Borrowed("unknown"),
    }
}

/// `pre-arrival` when lodged before the goods arrived, `post-arrival` after, `unknown` when
/// their arrival is not known.
pub fn pre_arrival(lodged_at: Millis, arrived_at: Option<Millis>) -> &'static str {
    match arrived_at {
        Some(arrived) if lodged_at < arrived => "pre-arrival",
        Some(_) => "post-arrival",
        None => "unknown",
    }
}

impl<T: ConsignmentFacts> ConsignmentFacts for &T {
    fn lodged_at(&self) -> Millis {
        (**self).lodged_at()
    }
    fn arrived_at(&self) -> Option<Millis> {
        (**self).arrived_at()
    }
    fn released_at(&self) -> Option<Millis> {
        (**self).released_at()
    }
    fn hold_ms(&self) -> i64 {
        (**self).hold_ms()
    }
    fn query_trader_ms(&self) -> i64 {
        (**self).query_trader_ms()
    }
    fn query_agency_ms(&self) -> i64 {
        (**self).query_agency_ms()
    }
    fn segment(&self, d: Dimension) -> Cow<'_, str> {
        (**self).segment(d)
    }
    fn owner(&self) -> Cow<'_, str> {
        (**self).owner()
    }
    fn decided_at(&self) -> Option<Millis> {
        (**self).decided_at()
    }
}

impl ConsignmentFacts for ConsignmentReleaseTimes {
    fn lodged_at(&self) -> Millis {
        self.lodged_at
    }
    fn arrived_at(&self) -> Option<Millis> {
        self.arrived_at
    }
    fn released_at(&self) -> Option<Millis> {
        self.released_at
    }
    fn hold_ms(&self) -> i64 {
        self.hold_ms
    }
    fn query_trader_ms(&self) -> i64 {
        self.query_trader_ms
    }
    fn query_agency_ms(&self) -> i64 {
        self.query_agency_ms
    }
    fn segment(&self, d: Dimension) -> Cow<'_, str> {
        segment_of(self, d)
    }
    fn owner(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.owner)
    }
    fn decided_at(&self) -> Option<Millis> {
        self.decided_at
    }
}

/// An agency's part as the store keeps it, with its agency's kind.
pub struct AgencyPart<'a> {
    pub part: &'a AgencyReleaseTimes,
    pub kind: Cow<'a, str>,
}

impl AgencyFacts for AgencyPart<'_> {
    fn agency(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.part.agency.as_str())
    }
    fn agency_kind(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.kind)
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
}

/// The figures `request` asks for, of the consignments (`consignments`, read when the figures
/// are per consignment) or of the agencies' parts (`agencies`, with their consignments, read
/// when they are per agency): the caller selects the period and the reader's scope.
pub fn figures<'a, C, A>(
    request: &FiguresRequest,
    consignments: impl Iterator<Item = C>,
    agencies: impl Iterator<Item = (C, A)>,
    from: Millis,
    to: Millis,
) -> Figures
where
    C: ConsignmentFacts + 'a,
    A: AgencyFacts + 'a,
{
    // Groups by their key's text (the segments' values, each followed by a separator no value
    // holds), built in one reused buffer: no allocation per row.
    const SEP: char = '\u{1f}';
    let mut groups: HashMap<String, Vec<i64>, Fnv> = HashMap::default();
    let mut trend: HashMap<(String, i64), Vec<i64>, Fnv> = HashMap::default();
    let mut all = Vec::new();
    let mut text = String::new();
    let mut add = |text: &str, lodged_at: Millis, value: i64| {
        all.push(value);
        match groups.get_mut(text) {
            Some(values) => values.push(value),
            None => {
                groups.insert(text.to_owned(), vec![value]);
            }
        }
        if let Some(t) = request.trend {
            trend.entry((text.to_owned(), t.period_start(lodged_at))).or_default().push(value);
        }
    };
    if request.per_agency() {
        for (c, a) in agencies {
            let Some(value) = agency_value(&c, &a, request.interval) else { continue };
            text.clear();
            for d in &request.group_by {
                let v = match d {
                    Dimension::Agency => a.agency(),
                    Dimension::AgencyKind => a.agency_kind(),
                    other => c.segment(*other),
                };
                text.push_str(&v);
                text.push(SEP);
            }
            add(&text, c.lodged_at(), value);
        }
    } else {
        for c in consignments {
            let Some(value) = consignment_value(&c, request.interval) else { continue };
            text.clear();
            for d in &request.group_by {
                text.push_str(&c.segment(*d));
                text.push(SEP);
            }
            add(&text, c.lodged_at(), value);
        }
    }
    let named = |key: &str| -> BTreeMap<String, String> {
        request.group_by.iter().map(|d| d.as_str().to_owned()).zip(key.split(SEP).map(str::to_owned)).collect()
    };
    let mut jobs: Vec<Job> = vec![(BTreeMap::new(), None, all)];
    jobs.extend(groups.into_iter().map(|(k, v)| (named(&k), None, v)));
    jobs.extend(trend.into_iter().map(|((k, p), v)| (named(&k), Some((p, crate::clock::rfc3339(p)[..10].to_owned())), v)));
    let mut cells = cells_in_parallel(jobs, request).into_iter();
    let overall = cells.next().map(|(_, c)| c).unwrap_or_else(|| cell(BTreeMap::new(), None, Vec::new(), request.mode_bin_ms));
    let (mut group_cells, mut trend_cells): (Vec<_>, Vec<_>) = cells.partition(|(p, _)| p.is_none());
    group_cells.sort_by(|a, b| a.1.group.cmp(&b.1.group));
    trend_cells.sort_by(|a, b| a.1.group.cmp(&b.1.group).then(a.0.cmp(&b.0)));
    Figures {
        interval: request.interval,
        from: crate::clock::rfc3339(from),
        to: crate::clock::rfc3339(to),
        group_by: request.group_by.iter().map(|d| d.as_str().to_owned()).collect(),
        trend: request.trend,
        mode_bin_ms: request.mode_bin_ms,
        min_count: None,
        closed_before: None,
        method: METHOD,
        overall,
        groups: group_cells.into_iter().map(|(_, c)| c).collect(),
        trend_cells: trend_cells.into_iter().map(|(_, c)| c).collect(),
    }
}

/// A cell to compute: its group, its period (start, first day) in a trend, its values.
type Job = (BTreeMap<String, String>, Option<(i64, String)>, Vec<i64>);

/// The cells of `jobs`, in their order, computed on the machine's cores: the biggest first,
/// each to the least loaded thread.
fn cells_in_parallel(jobs: Vec<Job>, request: &FiguresRequest) -> Vec<(Option<i64>, Cell)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    // Each thread's load (values) and its jobs, with their places in `jobs`.
    let mut shares: Vec<(usize, Vec<(usize, Job)>)> = (0..threads).map(|_| (0, Vec::new())).collect();
    let mut indexed: Vec<(usize, Job)> = jobs.into_iter().enumerate().collect();
    indexed.sort_by_key(|(_, (_, _, v))| std::cmp::Reverse(v.len()));
    for job in indexed {
        if let Some(share) = shares.iter_mut().min_by_key(|s| s.0) {
            share.0 += job.1 .2.len() + 1;
            share.1.push(job);
        }
    }
    let run = |share: Vec<(usize, Job)>| {
        share
            .into_iter()
            .map(|(i, (group, period, values))| {
                let (start, label) = period.map_or((None, None), |(p, l)| (Some(p), Some(l)));
                (i, start, cell(group, label, values, request.mode_bin_ms))
            })
            .collect::<Vec<_>>()
    };
    let mut done: Vec<(usize, Option<i64>, Cell)> = std::thread::scope(|scope| {
        let mut shares = shares.into_iter().map(|s| s.1);
        let mine = shares.next().unwrap_or_default();
        let others: Vec<_> = shares.map(|share| scope.spawn(move || run(share))).collect();
        let mut done = run(mine);
        for h in others {
            // A panic in a worker (none is expected: the computation has no failure) is the
            // caller's, as it would have been on one thread.
            done.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        done
    });
    done.sort_by_key(|(i, _, _)| *i);
    done.into_iter().map(|(_, p, c)| (p, c)).collect()
}

/// The figures of one cell's `values` (reordered), binning the mode by `mode_bin_ms`.
pub(super) fn cell(group: BTreeMap<String, String>, period: Option<String>, mut values: Vec<i64>, mode_bin_ms: i64) -> Cell {
    if values.is_empty() {
        let none = Some(Stats { count: 0, summary: None });
        return Cell { group, period, suppressed: false, stats: none, outliers: None, without_outliers: None };
    }
    // Quantiles by selection, not a full sort: a cell can hold millions of values.
    let [q1, q3] = quantiles(&mut values, [0.25, 0.75]);
    let iqr = q3 - q1;
    let (low, high) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let mut inside: Vec<i64> = values.iter().copied().filter(|v| (*v as f64) >= low && (*v as f64) <= high).collect();
    let outliers = values.len() - inside.len();
    Cell {
        group,
        period,
        suppressed: false,
        stats: Some(stats(&mut values, mode_bin_ms)),
        outliers: Some(Outliers { count: outliers, low_fence_ms: low, high_fence_ms: high }),
        without_outliers: Some(stats(&mut inside, mode_bin_ms)),
    }
}

/// The statistics of `values` (reordered).
pub fn stats(values: &mut [i64], mode_bin_ms: i64) -> Stats {
    Stats { count: values.len(), summary: summary(values, mode_bin_ms) }
}

/// The figures of `values` (reordered); `None` for none.
fn summary(values: &mut [i64], mode_bin_ms: i64) -> Option<Summary> {
    let (mut min, mut max) = (*values.first()?, *values.first()?);
    let mut sum: i128 = 0;
    for v in values.iter() {
        min = min.min(*v);
        max = max.max(*v);
        sum += i128::from(*v);
    }
    let bin = mode_bin_ms.max(1);
    let (first, last) = (min.div_euclid(bin), max.div_euclid(bin));
    // The most frequent bin, the earliest of equally frequent ones: counted in an array over
    // the bins' range when it is not huge (the usual case), else in a map.
    let mode = if last - first < 1 << 20 {
        let mut counts = vec![0u32; (last - first + 1) as usize];
        for v in values.iter() {
            counts[(v.div_euclid(bin) - first) as usize] += 1;
        }
        let (best, _) = counts.iter().enumerate().fold((0usize, 0u32), |(bi, bc), (i, c)| if *c > bc { (i, *c) } else { (bi, bc) });
        first + best as i64
    } else {
        let mut bins: HashMap<i64, usize> = HashMap::new();
        for v in values.iter() {
            *bins.entry(v.div_euclid(bin)).or_default() += 1;
        }
        bins.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map_or(0, |(b, _)| b)
    };
    let [median, p90] = quantiles(values, [0.5, 0.9]);
    Some(Summary {
        mean_ms: sum as f64 / values.len() as f64,
        median_ms: median,
        p90_ms: p90,
        mode_ms: mode * bin,
        min_ms: Some(min),
        max_ms: Some(max),
    })
}

/// The `qs` quantiles of non-empty `values` (reordered), each by linear interpolation between
/// its two closest ranks, found by selection: O(n) per rank, no full sort.
fn quantiles<const N: usize>(values: &mut [i64], qs: [f64; N]) -> [f64; N] {
    let last = (values.len() - 1) as f64;
    let mut ranks: Vec<usize> = qs.iter().flat_map(|q| [(q * last).floor() as usize, (q * last).ceil() as usize]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    // Each rank selected in what lies right of the previous one.
    let mut at: Vec<(usize, i64)> = Vec::with_capacity(ranks.len());
    let (mut rest, mut offset) = (&mut *values, 0usize);
    for r in ranks {
        let (_, v, right) = std::mem::take(&mut rest).select_nth_unstable(r - offset);
        at.push((r, *v));
        rest = right;
        offset = r + 1;
    }
    let value = |r: usize| at.iter().find(|(k, _)| *k == r).map_or(0.0, |(_, v)| *v as f64);
    qs.map(|q| {
        let rank = q * last;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let (a, b) = (value(lo), value(hi));
        a + (b - a) * (rank - lo as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statistics_of_a_known_set() {
        let values = [10, 20, 20, 30, 40, 50, 60, 70, 80, 1000];
        let s = summary(&mut values.clone(), 10).unwrap();
        assert_eq!(stats(&mut values.clone(), 10).count, 10);
        assert_eq!((s.min_ms, s.max_ms, s.mode_ms), (Some(10), Some(1000), 20));
        assert!((s.mean_ms - 138.0).abs() < 1e-9);
        assert!((s.median_ms - 45.0).abs() < 1e-9);
        assert!((s.p90_ms - 172.0).abs() < 1e-9, "{}", s.p90_ms);
        assert!(summary(&mut [], 10).is_none());
        assert_eq!(stats(&mut [], 10), Stats { count: 0, summary: None });
        assert_eq!(quantiles(&mut [7], [0.9]), [7.0]);
        // Selection gives what a sort gives, in any order.
        let mut shuffled = [1000, 70, 20, 60, 10, 50, 20, 80, 40, 30];
        let q = quantiles(&mut shuffled, [0.25, 0.5, 0.9]);
        assert!(q.iter().zip([22.5, 45.0, 172.0]).all(|(a, b)| (a - b).abs() < 1e-9), "{q:?}");
    }

    #[test]
    fn outliers_by_tukeys_fences_and_the_figures_without_them() {
        let c = cell(BTreeMap::new(), None, vec![10, 20, 20, 30, 40, 50, 60, 70, 80, 1000], 10);
        let o = c.outliers.unwrap();
        // Q1 = 22.5, Q3 = 67.5, IQR = 45: fences at -45 and 135.
        assert_eq!((o.count, o.low_fence_ms, o.high_fence_ms), (1, -45.0, 135.0));
        let w = c.without_outliers.unwrap();
        let ws = w.summary.unwrap();
        assert_eq!((w.count, ws.max_ms), (9, Some(80)));
        assert!((ws.mean_ms - 42.222_222).abs() < 1e-5);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-30 is a Monday; 2026-12-06 a Sunday.
        let at = |d: &str| crate::clock::parse_rfc3339(d).unwrap();
        assert_eq!(Trend::Week.period(at("2026-12-06")), "2026-11-30");
        assert_eq!(Trend::Week.period(at("2026-11-30")), "2026-11-30");
        assert_eq!(Trend::Day.period(at("2026-12-06") + 3_600_000), "2026-12-06");
    }
}
