//! Release-time indicators after the WCO Time Release Study (TRS), from the exchange's own
//! events, whichever store holds the rows: each consignment's facts and each of its agencies'
//! are kept in the store, recomputed from the consignment's rows in the transaction of every
//! change that can move them, so they are as durable as the answers themselves.
//!
//! ## The events, as the gateway knows them
//!
//! - **Lodgement**: the first submission of a document of the consignment that names no border
//!   post (its declaration, typically): a carrier's notice sent earlier does not lodge it.
//! - **Arrival of the goods**: the first answer, by any agency it went to, to a document that
//!   names a border post (its type's `border_post` in the region file; a border-crossing notice's
//!   `crossingPoint`): the border post answers
//!   when the means of transport presents itself. A consignment without such a document has no
//!   arrival, and no arrival-to-release interval (its lodgement-to-release one is still counted).
//!   A declaration lodged before arrival is *pre-arrival*; its arrival-to-lodgement interval is
//!   negative, and counted so (pre-arrival processing).
//! - **Each agency**: when its first document of the consignment was routed to it, its first
//!   answer, and its final decision (`released` or `rejected`) on every current document routed
//!   to it.
//! - **Release**: the consignment's release (every current delivery released).
//! - **Hold**: from an agency's applied `hold` to its next applied answer.
//! - **Query**: from an agency's applied `query` to the trader's response (the trader's turn),
//!   then to the agency's next applied answer (the agency's turn); a query answered by the
//!   agency without a response is all the trader's turn.
//!
//! Only applied answers move an interval: duplicate, late and stale answers are in the history
//! and change nothing here either. An amendment ends the earlier version's holds and queries
//! (the new version's deliveries take over); a withdrawal ends the document's. Intervals still
//! open are not counted until they close. Holds and queries of several agencies at once are
//! counted once for the consignment (the union of the intervals), once per agency for its own.

pub mod figures;
pub mod index;
pub mod public;
pub mod request;
pub mod report;
pub mod statistics;
pub mod tfa;
pub mod tfa_public;
pub mod tfa_report;
pub mod traffic;

use std::collections::BTreeMap;

use crate::clock::Millis;
use crate::domain::{AckStatus, AgencyId, ConsignmentState, DeliveryStatus, Ucr, RESPONDED};
use crate::routing::RoutingFacts;
use crate::store::{
    AgencyReleaseTimes, AgencySelectivity, ConsignmentReleaseTimes, DocumentDims, DocumentRecord, Formalities, HistoryEntry, Ledger,
    NewDocument, StoreError,
};

/// The segment facts of a document: what its type's table read in it (`crate::document_types`).
pub fn dims_of(facts: &RoutingFacts) -> DocumentDims {
    DocumentDims {
        transport_mode: facts.mode_of_transport.clone(),
        hs_chapter: facts.hs_chapters.first().map(|c| format!("{c:02}")),
        border_post: facts.border_post.clone(),
    }
}

/// Closed intervals `[start, end)` of one kind.
#[derive(Debug, Default, Clone)]
struct Spans(Vec<(Millis, Millis)>);

impl Spans {
    fn close(&mut self, since: &mut Option<Millis>, at: Millis) {
        if let Some(start) = since.take() {
            self.0.push((start, at.max(start)));
        }
    }
    fn extend(&mut self, other: &Spans) {
        self.0.extend_from_slice(&other.0);
    }
    /// Their total length, overlaps counted once.
    fn union_ms(&self) -> i64 {
        let mut spans = self.0.clone();
        spans.sort_unstable();
        let (mut total, mut reach) = (0, Millis::MIN);
        for (start, end) in spans {
            let start = start.max(reach);
            if end > start {
                total += end - start;
                reach = end;
            }
        }
        total
    }
}

/// What one delivery's history says, by the rules in the module docs.
#[derive(Debug, Default, Clone)]
struct Walked {
    hold: Spans,
    trader: Spans,
    agency: Spans,
    held: bool,
    queried: bool,
    /// The time of its last applied final answer, and which.
    decided: Option<(Millis, AckStatus)>,
    /// Whether that answer was a standing instruction's.
    decided_by_standing_instruction: bool,
    /// Applied `query` answers.
    queries: i64,
    /// Whether an applied answer rejected it.
    rejected: bool,
}

fn walk(history: &[HistoryEntry]) -> Walked {
    let mut w = Walked::default();
    let (mut hold, mut trader, mut agency) = (None, None, None);
    for e in history.iter().filter(|e| e.outcome == "applied") {
        let at = e.at_ms;
        let answer = AckStatus::parse(&e.status).ok();
        match (e.status.as_str(), answer) {
            (_, Some(AckStatus::Hold)) => {
                w.held = true;
                w.trader.close(&mut trader, at);
                w.agency.close(&mut agency, at);
                hold.get_or_insert(at);
            }
            (_, Some(AckStatus::Query)) => {
                w.queried = true;
                w.queries += 1;
                w.hold.close(&mut hold, at);
                w.agency.close(&mut agency, at);
                trader.get_or_insert(at);
            }
            (_, Some(status)) => {
                w.hold.close(&mut hold, at);
                w.trader.close(&mut trader, at);
                w.agency.close(&mut agency, at);
                if status.is_final() {
                    w.decided = Some((at, status));
                    w.decided_by_standing_instruction = e.source == crate::domain::STANDING_INSTRUCTION;
                }
                w.rejected |= status == AckStatus::Rejected;
            }
            (RESPONDED, None) if trader.is_some() => {
                w.trader.close(&mut trader, at);
                agency = Some(at);
            }
            ("amended" | "withdrawn", None) => {
                w.hold.close(&mut hold, at);
                w.trader.close(&mut trader, at);
                w.agency.close(&mut agency, at);
            }
            // The outbox's lines (pending, dispatched, refused by the broker, failed).
            _ => {}
        }
    }
    w
}

/// One agency's deliveries of the consignment, as they add up.
#[derive(Default)]
struct AgencyPart {
    routed_at: Option<Millis>,
    first_answer_at: Option<Millis>,
    walked: Walked,
    /// Final answers of its current deliveries (`None` for one not decided yet), and whether a
    /// standing instruction gave each.
    current: Vec<Option<(Millis, AckStatus, bool)>>,
    /// The strictest selection of any of its deliveries, every version's (an inspection of a
    /// version later amended was performed all the same).
    selection: Option<Chosen>,
    /// What its inspections found, as its answers said.
    finding: Option<crate::store::Finding>,
}

/// Recomputes and stores the release-time facts of the consignment `ucr` from its rows.
pub fn refresh(l: &mut dyn Ledger, ucr: &Ucr) -> Result<(), StoreError> {
    match compute(l, ucr)? {
        Some((facts, agencies)) => l.save_release_times(&facts, &agencies),
        None => Ok(()),
    }
}

/// The release-time facts of the consignment `ucr` computed from its rows (none without a
/// consignment or a document).
fn compute(l: &mut dyn Ledger, ucr: &Ucr) -> Result<Option<(ConsignmentReleaseTimes, Vec<AgencyReleaseTimes>)>, StoreError> {
    let Some(consignment) = l.consignment(ucr)? else { return Ok(None) };
    let documents = l.documents_of(ucr)?;
    let Some(first) = documents.first() else { return Ok(None) };
    let owner = first.sender.clone();
    // The lead document: the first current one that names no border post (a declaration, not
    // the carrier's notice), else the first current one, else the first.
    let lead = documents
        .iter()
        .find(|d| d.is_current() && d.dims.border_post.is_none())
        .or_else(|| documents.iter().find(|d| d.is_current()))
        .unwrap_or(first)
        .clone();
    let lodged_at =
        documents.iter().filter(|d| d.dims.border_post.is_none()).map(|d| d.submitted_at).min().unwrap_or(consignment.created_at);
    let mut dims = lead.dims.clone();
    let mut arrived_at: Option<Millis> = None;
    let mut agencies: BTreeMap<AgencyId, AgencyPart> = BTreeMap::new();
    let mut all = Walked::default();
    let mut strictest: Option<crate::risk::Channel> = None;
    // The documents an agency rejected (any version), for the resubmissions.
    let mut rejected: Vec<uuid::Uuid> = Vec::new();
    let mut queries = 0;
    for doc in &documents {
        if doc.is_current() {
            dims.transport_mode = dims.transport_mode.or_else(|| doc.dims.transport_mode.clone());
            dims.hs_chapter = dims.hs_chapter.or_else(|| doc.dims.hs_chapter.clone());
        }
        dims.border_post = dims.border_post.or_else(|| doc.dims.border_post.clone());
        for d in l.deliveries_of(doc.id)? {
            let history = l.history_of(d.id)?;
            let walked = walk(&history);
            if doc.dims.border_post.is_some() {
                arrived_at = min_some(arrived_at, d.first_answer_at);
            }
            let part = agencies.entry(d.agency.clone()).or_default();
            part.routed_at = min_some(part.routed_at, Some(d.routed_at));
            part.first_answer_at = min_some(part.first_answer_at, d.first_answer_at);
            part.walked.hold.extend(&walked.hold);
            part.walked.trader.extend(&walked.trader);
            part.walked.agency.extend(&walked.agency);
            part.walked.held |= walked.held;
            part.walked.queried |= walked.queried;
            // The finding is that of the inspections its strictest selection asked for (an
            // irregularity found by any of them is what they found): the hit rate of a source is
            // what the inspections it chose found.
            let selection = chosen(d.selection.as_deref());
            let found = d.inspection.as_ref().filter(|i| i.performed).and_then(|i| i.finding);
            if selection > part.selection {
                (part.selection, part.finding) = (selection, found);
            } else if selection == part.selection {
                part.finding = match (part.finding, found) {
                    (Some(crate::store::Finding::Irregularity), _) | (_, Some(crate::store::Finding::Irregularity)) => {
                        Some(crate::store::Finding::Irregularity)
                    }
                    (earlier, found) => earlier.or(found),
                };
            }
            queries += walked.queries;
            if walked.rejected && !rejected.contains(&doc.id) {
                rejected.push(doc.id);
            }
            if doc.is_current() {
                strictest = strictest.max(selected_channel(d.selection.as_deref()));
                let decided = match d.status {
                    DeliveryStatus::Answered(a) if a.is_final() => match walked.decided {
                        Some((at, status)) => Some((at, status, walked.decided_by_standing_instruction)),
                        None => Some((consignment.updated_at, a, false)),
                    },
                    _ => None,
                };
                part.current.push(decided);
            }
            all.hold.extend(&walked.hold);
            all.trader.extend(&walked.trader);
            all.agency.extend(&walked.agency);
            all.held |= walked.held;
            all.queried |= walked.queried;
        }
    }
    let agency_rows: Vec<AgencyReleaseTimes> = agencies
        .into_iter()
        .map(|(agency, part)| {
            let decided = (!part.current.is_empty() && part.current.iter().all(Option::is_some)).then(|| {
                let finals: Vec<(Millis, AckStatus, bool)> = part.current.iter().flatten().copied().collect();
                let at = finals.iter().map(|f| f.0).max().unwrap_or_default();
                let rejected = finals.iter().any(|f| f.1 == AckStatus::Rejected);
                (at, if rejected { AckStatus::Rejected } else { AckStatus::Released }, finals.iter().all(|f| f.2))
            });
            AgencyReleaseTimes {
                agency,
                routed_at: part.routed_at.unwrap_or(consignment.created_at),
                first_answer_at: part.first_answer_at,
                decided_at: decided.map(|d| d.0),
                decision: decided.map(|d| d.1.as_str().to_owned()),
                hold_ms: part.walked.hold.union_ms(),
                query_trader_ms: part.walked.trader.union_ms(),
                query_agency_ms: part.walked.agency.union_ms(),
                selectivity: Some(AgencySelectivity {
                    channel: risk_channel(part.selection.map(|c| c.channel)),
                    source: source_name(part.selection.map_or(crate::risk::Source::None, |c| c.source)),
                    finding: part.finding.map(crate::store::Finding::as_str),
                    standing_instruction: decided.is_some_and(|d| d.2),
                }),
            }
        })
        .collect();
    let (outcome, decided_at) = match consignment.state {
        ConsignmentState::Released => ("released", consignment.released_at),
        ConsignmentState::Refused => (
            "refused",
            agency_rows.iter().filter(|a| a.decision.as_deref() == Some("rejected")).filter_map(|a| a.decided_at).min(),
        ),
        ConsignmentState::Withdrawn => ("withdrawn", None),
        _ => ("open", None),
    };
    let facts = ConsignmentReleaseTimes {
        ucr: ucr.clone(),
        owner,
        lodged_at,
        arrived_at,
        released_at: consignment.released_at.filter(|_| consignment.state == ConsignmentState::Released),
        decided_at,
        outcome: outcome.to_owned(),
        document_type: lead.document_type.to_string(),
        origin: lead.origin.clone(),
        destination: lead.destination.clone(),
        dims,
        channel: channel(all.held, all.queried).to_owned(),
        hold_ms: all.hold.union_ms(),
        query_trader_ms: all.trader.union_ms(),
        query_agency_ms: all.agency.union_ms(),
        risk_channel: risk_channel(strictest).to_owned(),
        formalities: Some(formalities(&documents, &rejected, queries)),
    };
    Ok(Some((facts, agency_rows)))
}

/// Completes the facts of the consignment `ucr` kept without the TFA monitor's columns (written
/// before migration 14, or by a gateway of that version): those columns are computed from its
/// rows and written beside the facts as they were, whose times are kept as they are (until a
/// change of the consignment computes them all again). A consignment without facts gets them
/// whole. Whether it wrote anything: not for a consignment without a document, nor for one
/// whose facts it leaves as they are (a kept part the rows no longer give, not computed).
pub fn complete(l: &mut dyn Ledger, ucr: &Ucr) -> Result<bool, StoreError> {
    let Some((computed, computed_agencies)) = compute(l, ucr)? else { return Ok(false) };
    let (kept, kept_agencies) = l.release_times_of(Some(std::slice::from_ref(ucr)))?;
    let Some(kept) = kept.into_iter().next() else { return l.save_release_times(&computed, &computed_agencies).map(|()| true) };
    // A kept part the rows no longer give (none should) stays without treatment: not computed,
    // and counted so, rather than made up.
    let kept_parts: Vec<AgencyReleaseTimes> = kept_agencies.into_iter().map(|(_, part)| part).collect();
    let agencies: Vec<AgencyReleaseTimes> = kept_parts
        .iter()
        .map(|part| {
            let selectivity = computed_agencies.iter().find(|c| c.agency == part.agency).and_then(|c| c.selectivity);
            AgencyReleaseTimes { selectivity, ..part.clone() }
        })
        .collect();
    let facts = ConsignmentReleaseTimes { formalities: computed.formalities, ..kept.clone() };
    // Such a part stays without treatment at every start: nothing to write again.
    if facts == kept && agencies == kept_parts {
        return Ok(false);
    }
    l.save_release_times(&facts, &agencies).map(|()| true)
}

/// A consignment's formalities (WTO TFA Art. 10.1) from its documents, every version, those an
/// agency rejected, and the queries its agencies put: the definitions are
/// [`crate::store::Formalities`]'.
fn formalities(documents: &[DocumentRecord], rejected: &[uuid::Uuid], queries: i64) -> Formalities {
    let amending_a_rejection = documents.iter().filter(|d| d.amends.is_some_and(|earlier| rejected.contains(&earlier))).count();
    // Each rejected version that was withdrawn, replaced by a document of its type submitted
    // after the withdrawal: once, however many came after.
    let replacing_a_rejection = documents
        .iter()
        .filter(|w| rejected.contains(&w.id))
        .filter_map(|w| w.withdrawn_at.map(|at| (w, at)))
        .filter(|(w, at)| documents.iter().any(|d| d.version == 1 && d.chain != w.chain && d.document_type == w.document_type && d.submitted_at >= *at))
        .count();
    Formalities {
        documents: documents.iter().filter(|d| d.version == 1).count() as i64,
        amendments: documents.iter().filter(|d| d.version > 1).count() as i64,
        queries,
        resubmissions: (amending_a_rejection + replacing_a_rejection) as i64,
    }
}

/// Computes the facts of every consignment that has none (accepted before the indicators
/// existed), and completes those kept without the TFA monitor's columns ([`complete`]), a few
/// hundred per transaction, each under its consignment's lock; how many it wrote. Documents of
/// before the indicators carry no segment facts (transport mode, HS chapter, border post: read
/// from payloads only since), so those segments read `unknown`, and no arrival is known for them.
pub async fn backfill(store: &dyn crate::store::Store) -> Result<u64, StoreError> {
    use crate::store::{Subject};
    let (mut after, mut done) = (String::new(), 0u64);
    loop {
        let from = after.clone();
        let ucrs = store.read_with(move |l| l.consignments_without_release_times(&from, 500)).await?;
        let Some(last) = ucrs.last() else { return Ok(done) };
        after = last.to_string();
        let subjects = ucrs.iter().cloned().map(Subject::Consignment).collect();
        done += store
            .write_with(subjects, move |l| {
                let mut completed = 0;
                for ucr in &ucrs {
                    completed += u64::from(complete(l, ucr)?);
                }
                Ok(completed)
            })
            .await?;
    }
}

/// The facts of a consignment `doc` opens, in the state `state` its opening left it: routed,
/// and decided by no agency but those of `released` (standing instructions that released it as
/// it was accepted, at its submission time), so there is nothing to read back. `selections` are
/// its deliveries' selections as chosen (as JSON, by agency). The same facts as
/// [`refresh`] computes from the rows (a test holds them so).
pub fn opened(
    l: &mut dyn Ledger,
    doc: &NewDocument,
    selections: &[(AgencyId, Option<String>)],
    released: &[AgencyId],
    state: ConsignmentState,
) -> Result<(), StoreError> {
    let at = doc.submitted_at;
    let answered = !released.is_empty();
    let released_at = (state == ConsignmentState::Released).then_some(at);
    let facts = ConsignmentReleaseTimes {
        ucr: doc.ucr.clone(),
        owner: doc.sender.clone(),
        lodged_at: at,
        // A carrier's notice's first answer is its arrival.
        arrived_at: (doc.dims.border_post.is_some() && answered).then_some(at),
        released_at,
        decided_at: released_at,
        outcome: if released_at.is_some() { "released" } else { "open" }.into(),
        document_type: doc.document_type.to_string(),
        origin: doc.origin.to_string(),
        destination: doc.destination.to_string(),
        dims: doc.dims.clone(),
        channel: channel(false, false).into(),
        hold_ms: 0,
        query_trader_ms: 0,
        query_agency_ms: 0,
        risk_channel: risk_channel(selections.iter().filter_map(|(_, s)| selected_channel(s.as_deref())).max()).to_owned(),
        formalities: Some(Formalities { documents: 1, amendments: 0, queries: 0, resubmissions: 0 }),
    };
    let mut agencies: Vec<AgencyReleaseTimes> = Vec::with_capacity(doc.deliveries.len());
    for agency in doc.deliveries.iter().map(|d| &d.agency) {
        if agencies.iter().all(|a| &a.agency != agency) {
            let decided = released.contains(agency).then_some(at);
            let selection = selections.iter().filter(|(a, _)| a == agency).filter_map(|(_, s)| chosen(s.as_deref())).max();
            agencies.push(AgencyReleaseTimes {
                agency: agency.clone(),
                routed_at: at,
                first_answer_at: decided,
                decided_at: decided,
                decision: decided.map(|_| AckStatus::Released.as_str().to_owned()),
                hold_ms: 0,
                query_trader_ms: 0,
                query_agency_ms: 0,
                selectivity: Some(AgencySelectivity {
                    channel: risk_channel(selection.map(|c| c.channel)),
                    source: source_name(selection.map_or(crate::risk::Source::None, |c| c.source)),
                    finding: None,
                    standing_instruction: decided.is_some(),
                }),
            });
        }
    }
    // Kept in the order `refresh` keeps them (by agency).
    agencies.sort_by(|a, b| a.agency.cmp(&b.agency));
    l.save_release_times(&facts, &agencies)
}

/// The channel a delivery's selection (`crate::risk::Selection` as JSON) gave it, if any: the
/// greatest of several is a consignment's strictest (`None` below every channel).
pub fn selected_channel(selection: Option<&str>) -> Option<crate::risk::Channel> {
    #[derive(serde::Deserialize)]
    struct Chosen {
        channel: crate::risk::Channel,
    }
    selection.and_then(|s| serde_json::from_str::<Chosen>(s).ok()).map(|c| c.channel)
}

/// A delivery's selection as the facts read it: its channel, and what chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
struct Chosen {
    channel: crate::risk::Channel,
    source: crate::risk::Source,
}

impl PartialOrd for Chosen {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Chosen {
    /// By strictness, then, of two selections of one channel, the one whose source weighs more
    /// (mandatory, rule, model, random, none: the order [`crate::risk::Source`] lists them).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.channel.cmp(&other.channel).then((other.source as u8).cmp(&(self.source as u8)))
    }
}

/// The selection `selection` (`crate::risk::Selection` as JSON) records, if any.
fn chosen(selection: Option<&str>) -> Option<Chosen> {
    selection.and_then(|s| serde_json::from_str::<Chosen>(s).ok())
}

/// A selection source's name as the facts keep it (`mandatory`, `rule`, `model`, `random`,
/// `none`).
pub fn source_name(source: crate::risk::Source) -> &'static str {
    match source {
        crate::risk::Source::Mandatory => "mandatory",
        crate::risk::Source::Rule => "rule",
        crate::risk::Source::Model => "model",
        crate::risk::Source::Random => "random",
        crate::risk::Source::None => "none",
    }
}

/// A consignment's risk channel as the facts keep it: `red`, `yellow` or `green` for the
/// strictest of its selections ([`selected_channel`]), `unselected` when none was selected.
pub fn risk_channel(strictest: Option<crate::risk::Channel>) -> &'static str {
    match strictest {
        Some(crate::risk::Channel::Red) => "red",
        Some(crate::risk::Channel::Yellow) => "yellow",
        Some(crate::risk::Channel::Green) => "green",
        None => UNSELECTED,
    }
}

/// The risk channel of a consignment no selection was made for.
pub const UNSELECTED: &str = "unselected";

/// Whether a consignment was held or queried (the `channel` segment).
fn channel(held: bool, queried: bool) -> &'static str {
    match (held, queried) {
        (true, _) => "with-hold",
        (false, true) => "with-query",
        (false, false) => "without",
    }
}

fn min_some(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: &str, at: Millis, outcome: &str) -> HistoryEntry {
        HistoryEntry { status: status.into(), at: String::new(), at_ms: at, source: "http".into(), reason: None, outcome: outcome.into() }
    }

    #[test]
    fn holds_and_query_turns_are_measured_from_applied_answers_only() {
        let history = [
            entry("pending", 0, "applied"),
            entry("dispatched", 5, "applied"),
            entry("hold", 10, "applied"),
            entry("hold", 12, "duplicate"),
            entry("accepted", 40, "applied"),
            entry("query", 50, "applied"),
            entry("received", 55, "stale"),
            entry(RESPONDED, 80, "applied"),
            entry("released", 100, "applied"),
            entry("rejected", 120, "late"),
        ];
        let w = walk(&history);
        assert_eq!(w.hold.union_ms(), 30);
        assert_eq!(w.trader.union_ms(), 30);
        assert_eq!(w.agency.union_ms(), 20);
        assert!(w.held && w.queried);
        assert_eq!(w.decided, Some((100, AckStatus::Released)), "the late rejection changes nothing");
    }

    #[test]
    fn a_query_answered_without_a_response_is_the_traders_turn_and_open_spans_are_not_counted() {
        let w = walk(&[entry("query", 10, "applied"), entry("accepted", 30, "applied"), entry("hold", 40, "applied")]);
        assert_eq!((w.trader.union_ms(), w.agency.union_ms(), w.hold.union_ms()), (20, 0, 0));
        let w = walk(&[entry("query", 10, "applied"), entry("amended", 25, "applied")]);
        assert_eq!(w.trader.union_ms(), 15, "an amendment ends the earlier version's query");
    }

    #[test]
    fn a_consignments_risk_channel_is_its_strictest_selection() {
        let green = r#"{"channel":"green","score":0.0,"source":"none"}"#;
        let red = r#"{"channel":"red","score":70.0,"source":"model","reasons":[]}"#;
        let strictest = |of: &[Option<&str>]| risk_channel(of.iter().map(|s| selected_channel(*s)).max().flatten());
        assert_eq!(strictest(&[Some(green), None, Some(red)]), "red");
        assert_eq!(strictest(&[Some(green)]), "green");
        assert_eq!(strictest(&[None, Some("not a selection")]), UNSELECTED);
    }

    fn record(id: u128, chain: u128, version: i64, kind: &str, submitted_at: Millis, withdrawn_at: Option<Millis>) -> DocumentRecord {
        DocumentRecord {
            id: uuid::Uuid::from_u128(id),
            document_type: crate::domain::DocumentType::parse(kind).unwrap(),
            schema_version: "1.0.0".into(),
            origin: "AR".into(),
            destination: "BR".into(),
            sender: "t".into(),
            submitted_at,
            version,
            amends: (version > 1).then(|| uuid::Uuid::from_u128(id - 1)),
            superseded_by: None,
            withdrawn_at,
            dims: DocumentDims::default(),
            chain: uuid::Uuid::from_u128(chain),
        }
    }

    #[test]
    fn a_resubmission_answers_a_rejection_of_its_own_document() {
        let id = uuid::Uuid::from_u128;
        // An invoice: v1 rejected, v2 amends it (a resubmission), v2 withdrawn unrejected and
        // replaced (no resubmission). A certificate rejected, withdrawn, replaced twice: once.
        let documents = [
            record(1, 1, 1, "commercialInvoice", 0, None),
            record(2, 1, 2, "commercialInvoice", 10, Some(20)),
            record(3, 3, 1, "commercialInvoice", 30, None),
            record(4, 4, 1, "certificateOfOrigin", 0, Some(5)),
            record(5, 5, 1, "certificateOfOrigin", 6, Some(7)),
            record(6, 6, 1, "certificateOfOrigin", 8, None),
        ];
        let f = formalities(&documents, &[id(1), id(4)], 2);
        assert_eq!(f, Formalities { documents: 5, amendments: 1, queries: 2, resubmissions: 2 });
        // A replacement submitted before the withdrawal replaces nothing.
        let early = [record(4, 4, 1, "certificateOfOrigin", 0, Some(50)), record(5, 5, 1, "certificateOfOrigin", 6, None)];
        assert_eq!(formalities(&early, &[id(4)], 0).resubmissions, 0);
    }

    #[test]
    fn overlapping_spans_count_once() {
        let spans = Spans(vec![(0, 10), (5, 15), (20, 30), (22, 25)]);
        assert_eq!(spans.union_ms(), 25);
        assert_eq!(Spans::default().union_ms(), 0);
    }
}
