//! The delivery and consignment state machines, and the time-release figures.
//!
//! ## A delivery's answers
//!
//! A delivery starts `pending`, becomes `dispatched` when the broker confirms it, and then takes
//! the agency's answers. A delivery whose record the broker keeps refusing becomes `failed`
//! after its last attempt (it went to the dead-letter topic) and `pending` again when an
//! operator sends it again. An answer to a failed delivery still applies: the agency has it.
//!
//! - `released` and `rejected` are **final**: any answer after one is recorded in the history
//!   as *late* and changes nothing.
//! - `received` only moves a delivery the agency has not answered yet; a `received` arriving
//!   after a richer answer (out of order) is recorded as *stale* and changes nothing.
//! - `accepted`, `query` and `hold` replace each other freely (a hold can be lifted by an
//!   acceptance, an acceptance can be followed by a query).
//! - The same answer twice is a *duplicate* and changes nothing.
//!
//! ## A consignment's state
//!
//! Derived from the deliveries of the consignment's current documents: an amended document's
//! earlier versions and withdrawn documents no longer count (`crate::lifecycle`). First rule
//! that holds:
//!
//! 0. `withdrawn` if every document was withdrawn;
//! 1. `refused` if any agency rejected its delivery;
//! 2. `on_hold` if any agency holds the goods or has an open query;
//! 3. `delivery_failed` if a delivery failed: an agency has not received a document, and an
//!    operator must act;
//! 4. `released` if every delivery is `released`;
//! 5. `in_review` if any agency has answered at all;
//! 6. `submitted` otherwise (nothing answered yet, whether or not dispatched).

use serde_json::Value;

use crate::clock::{rfc3339, Millis};
use crate::domain::{AckStatus, ConsignmentState, DeliveryStatus, Ucr};
use crate::store::{
    AgencyTimes, ConsignmentView, DeliveryView, DocumentView, EarlierVersions, HistoryEntry, Ledger, StatusChange, StoreError, TimeRelease,
};

pub use crate::domain::AckOutcome;

/// Applies an agency's answer to a delivery in `current` state.
pub fn apply_ack(current: DeliveryStatus, ack: AckStatus) -> AckOutcome {
    match current {
        DeliveryStatus::Pending | DeliveryStatus::Dispatched | DeliveryStatus::Failed => AckOutcome::Applied,
        DeliveryStatus::Answered(prev) if prev == ack => AckOutcome::Duplicate,
        DeliveryStatus::Answered(prev) if prev.is_final() => AckOutcome::Late,
        DeliveryStatus::Answered(_) if ack == AckStatus::Received => AckOutcome::Stale,
        DeliveryStatus::Answered(_) => AckOutcome::Applied,
    }
}

/// The consignment's state from the statuses of all its deliveries (rules in the module docs).
pub fn consignment_state<I: IntoIterator<Item = DeliveryStatus>>(deliveries: I) -> ConsignmentState {
    let (mut any, mut rejected, mut held, mut failed, mut all_released, mut answered) =
        (false, false, false, false, true, false);
    for d in deliveries {
        any = true;
        match d {
            DeliveryStatus::Answered(a) => {
                answered = true;
                rejected |= a == AckStatus::Rejected;
                held |= matches!(a, AckStatus::Hold | AckStatus::Query);
                all_released &= a == AckStatus::Released;
            }
            DeliveryStatus::Pending | DeliveryStatus::Dispatched => all_released = false,
            DeliveryStatus::Failed => {
                failed = true;
                all_released = false;
            }
        }
    }
    if rejected {
        ConsignmentState::Refused
    } else if held {
        ConsignmentState::OnHold
    } else if failed {
        ConsignmentState::DeliveryFailed
    } else if any && all_released {
        ConsignmentState::Released
    } else if answered {
        ConsignmentState::InReview
    } else {
        ConsignmentState::Submitted
    }
}

/// Milliseconds from `from` to `to`, when both happened.
pub fn elapsed(from: Millis, to: Option<Millis>) -> Option<i64> {
    to.map(|t| (t - from).max(0))
}

/// Queues the status event of a consignment's change to `state`.
fn queue_change(
    l: &mut dyn Ledger,
    ucr: &Ucr,
    state: ConsignmentState,
    previous_state: Option<ConsignmentState>,
    at: Millis,
    cause: Value,
) -> Result<(), StoreError> {
    let body = StatusChange { ucr: ucr.clone(), state, previous_state, at: rfc3339(at), cause };
    let body = serde_json::to_string(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    l.queue_status_event(ucr, &body, at)?;
    Ok(())
}

/// A consignment's state moved from `previous` to `state` by a change whose rows the caller
/// knows (so nothing is read back): recorded, with its status event, as [`refresh_consignment`]
/// records a change; the same state only touches the consignment. Its release-time facts are the
/// caller's to write.
pub fn record_change(l: &mut dyn Ledger, ucr: &Ucr, state: ConsignmentState, previous: ConsignmentState, at: Millis, cause: Value) -> Result<(), StoreError> {
    if state == previous {
        return l.touch_consignment(ucr, at);
    }
    l.set_consignment_state(ucr, state, at)?;
    queue_change(l, ucr, state, Some(previous), at, cause)
}

/// The consignment's state from its rows (rules in the module docs).
fn current_state(l: &mut dyn Ledger, ucr: &Ucr) -> Result<ConsignmentState, StoreError> {
    if l.current_documents(ucr)? == 0 {
        return Ok(ConsignmentState::Withdrawn);
    }
    Ok(consignment_state(l.consignment_delivery_statuses(ucr)?))
}

/// Recomputes a consignment's state from its deliveries; on a change, records it and queues a
/// status event. Returns the state.
pub fn refresh_consignment(l: &mut dyn Ledger, ucr: &Ucr, at: Millis, cause: Value) -> Result<ConsignmentState, StoreError> {
    refresh(l, ucr, at, cause, false)
}

/// [`refresh_consignment`], queuing a status event even when the state stays as it was: for
/// what the trader must hear of whatever the state (an amendment, a withdrawal, an agency's
/// query and the trader's answer to it).
pub fn record_event(l: &mut dyn Ledger, ucr: &Ucr, at: Millis, cause: Value) -> Result<ConsignmentState, StoreError> {
    refresh(l, ucr, at, cause, true)
}

/// Every change that can move a consignment's state comes here; its release-time facts
/// (`crate::indicators`) follow in the same transaction.
fn refresh(l: &mut dyn Ledger, ucr: &Ucr, at: Millis, cause: Value, always: bool) -> Result<ConsignmentState, StoreError> {
    let state = current_state(l, ucr)?;
    let previous = l.consignment(ucr)?.map(|c| c.state);
    if previous == Some(state) {
        l.touch_consignment(ucr, at)?;
        if always {
            queue_change(l, ucr, state, previous, at, cause)?;
        }
    } else {
        l.set_consignment_state(ucr, state, at)?;
        queue_change(l, ucr, state, previous, at, cause)?;
    }
    crate::indicators::refresh(l, ucr)?;
    Ok(state)
}

/// Whose turn it is on a delivery whose agency has a query open: the trader's until it answers
/// (a `responded` line after the query), then the agency's.
pub fn query_turn(status: DeliveryStatus, history: &[HistoryEntry]) -> Option<&'static str> {
    if status != DeliveryStatus::Answered(AckStatus::Query) {
        return None;
    }
    let asked = history.iter().rposition(|h| h.status == AckStatus::Query.as_str() && h.outcome == AckOutcome::Applied.as_str());
    let answered = history.iter().rposition(|h| h.status == RESPONDED);
    Some(match (asked, answered) {
        (Some(q), Some(r)) if r > q => AGENCY_TURN,
        _ => TRADER_TURN,
    })
}

/// [`query_turn`]: the trader is to answer the agency's query.
pub const TRADER_TURN: &str = "trader";
/// [`query_turn`]: the trader answered; the agency is to answer again.
pub const AGENCY_TURN: &str = "agency";

pub use crate::domain::RESPONDED;

/// The first status event of a consignment just opened in `state`.
pub fn announce_opening(l: &mut dyn Ledger, ucr: &Ucr, state: ConsignmentState, at: Millis, cause: Value) -> Result<(), StoreError> {
    queue_change(l, ucr, state, None, at, cause)
}

/// Versions of each document a consignment's view shows: its latest and those just before it.
/// A longer history is paged ([`ViewPage::EarlierVersions`]), so the view stays bounded.
pub const VERSIONS_SHOWN: usize = 5;
/// Versions in one page of a document's earlier versions.
pub const VERSIONS_PAGE: usize = 20;

/// Which of a consignment's documents its view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewPage {
    /// Each document's latest [`VERSIONS_SHOWN`] versions.
    Latest,
    /// The versions of the document whose first version is `of` numbered below `before`, at
    /// most [`VERSIONS_PAGE`] (the latest of them).
    EarlierVersions { of: uuid::Uuid, before: i64 },
}

/// Everything known about one consignment, with its time-release figures: each document's
/// latest versions (see [`consignment_view_page`]).
pub fn consignment_view(l: &mut dyn Ledger, ucr: &Ucr) -> Result<Option<ConsignmentView>, StoreError> {
    consignment_view_page(l, ucr, ViewPage::Latest)
}

/// A consignment's view with the documents of `page`. Its size and cost are bounded whatever
/// the length of a document's history: the histories are read from an index, only the versions
/// shown are read (never a payload), and the time-release figures are aggregated by the store.
/// Each document with earlier versions than those shown is listed in `earlierVersions`, with
/// the path of the next page. `None` when the consignment, or the document paged, is unknown.
pub fn consignment_view_page(l: &mut dyn Ledger, ucr: &Ucr, page: ViewPage) -> Result<Option<ConsignmentView>, StoreError> {
    let Some(consignment) = l.consignment(ucr)? else { return Ok(None) };
    let chains = l.document_chains(ucr)?;
    let mut records = Vec::new();
    let mut earlier_versions = Vec::new();
    let (selected, below, limit): (Vec<_>, i64, usize) = match page {
        ViewPage::Latest => (chains.iter().collect(), i64::MAX, VERSIONS_SHOWN),
        ViewPage::EarlierVersions { of, before } => (chains.iter().filter(|c| c.chain == of).collect(), before, VERSIONS_PAGE),
    };
    if selected.is_empty() && page != ViewPage::Latest {
        return Ok(None);
    }
    for chain in selected {
        let shown = l.chain_versions(ucr, chain.chain, below, limit)?;
        // Versions are numbered 1, 2, 3... in a history: those below the oldest shown are the rest.
        let not_shown = shown.last().map_or(0, |d| d.version - 1).max(0);
        if not_shown > 0 {
            let oldest = shown.last().map_or(1, |d| d.version);
            earlier_versions.push(EarlierVersions {
                document_id: chain.chain,
                latest_document_id: chain.latest,
                versions: chain.versions,
                not_shown,
                next: format!("/v1/consignments/{ucr}?versionsOf={}&before={oldest}", chain.chain),
            });
        }
        records.extend(shown);
    }
    records.sort_by_key(|d| (d.submitted_at, d.id));
    let mut documents = Vec::with_capacity(records.len());
    let mut senders: Vec<String> = Vec::new();
    for doc in records {
        let mut deliveries = Vec::new();
        for d in l.deliveries_of(doc.id)? {
            let history = l.history_of(d.id)?;
            deliveries.push(DeliveryView {
                turn: query_turn(d.status, &history),
                delivery_id: d.id,
                agency: d.agency,
                topic: d.topic,
                status: d.status,
                attempts: d.attempts,
                last_error: d.last_error,
                dispatched_at: d.dispatched_at.map(rfc3339),
                first_answer_at: d.first_answer_at.map(rfc3339),
                selection: d.selection.as_deref().and_then(|s| serde_json::from_str(s).ok()),
                inspection: d.inspection,
                history,
            });
        }
        if !senders.contains(&doc.sender) {
            senders.push(doc.sender.clone());
        }
        documents.push(DocumentView {
            document_id: doc.id,
            chain: doc.chain,
            document_type: doc.document_type,
            schema_version: doc.schema_version,
            origin: doc.origin,
            destination: doc.destination,
            sender: doc.sender,
            submitted_at: rfc3339(doc.submitted_at),
            version: doc.version,
            status: match (doc.superseded_by, doc.withdrawn_at) {
                (Some(_), _) => "superseded",
                (None, Some(_)) => "withdrawn",
                (None, None) => "current",
            },
            amends: doc.amends,
            superseded_by: doc.superseded_by,
            withdrawn_at: doc.withdrawn_at.map(rfc3339),
            deliveries,
        });
    }
    // Per agency, from the first document routed to it (of every version) to its first answer.
    let times = l.agency_first_times(ucr)?;
    Ok(Some(ConsignmentView {
        ucr: ucr.clone(),
        state: consignment.state,
        created_at: rfc3339(consignment.created_at),
        updated_at: rfc3339(consignment.updated_at),
        documents,
        earlier_versions,
        time_release: TimeRelease {
            first_submitted_at: rfc3339(consignment.created_at),
            released_at: consignment.released_at.map(rfc3339),
            submission_to_release_ms: elapsed(consignment.created_at, consignment.released_at),
            agencies: times
                .into_iter()
                .map(|(agency, from, answer)| AgencyTimes {
                    agency,
                    first_answer_at: answer.map(rfc3339),
                    submission_to_first_answer_ms: elapsed(from, answer),
                })
                .collect(),
        },
        senders,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AckStatus::*;
    use DeliveryStatus::{Answered, Dispatched, Failed, Pending};

    #[test]
    fn first_answer_applies_whatever_it_is() {
        for a in AckStatus::ALL {
            assert_eq!(apply_ack(Pending, a), AckOutcome::Applied);
            assert_eq!(apply_ack(Dispatched, a), AckOutcome::Applied);
            assert_eq!(apply_ack(Failed, a), AckOutcome::Applied);
        }
    }

    #[test]
    fn final_answers_are_final() {
        for fin in [Released, Rejected] {
            for a in AckStatus::ALL {
                let want = if a == fin { AckOutcome::Duplicate } else { AckOutcome::Late };
                assert_eq!(apply_ack(Answered(fin), a), want, "{fin:?} then {a:?}");
            }
        }
    }

    #[test]
    fn received_after_a_richer_answer_is_stale() {
        for prev in [Accepted, Query, Hold] {
            assert_eq!(apply_ack(Answered(prev), Received), AckOutcome::Stale);
        }
        assert_eq!(apply_ack(Answered(Received), Received), AckOutcome::Duplicate);
    }

    #[test]
    fn open_answers_replace_each_other() {
        assert_eq!(apply_ack(Answered(Hold), Accepted), AckOutcome::Applied);
        assert_eq!(apply_ack(Answered(Accepted), Query), AckOutcome::Applied);
        assert_eq!(apply_ack(Answered(Query), Released), AckOutcome::Applied);
        assert_eq!(apply_ack(Answered(Received), Rejected), AckOutcome::Applied);
    }

    #[test]
    fn consignment_state_follows_the_documented_rules() {
        use ConsignmentState as C;
        assert_eq!(consignment_state([Pending, Dispatched]), C::Submitted);
        assert_eq!(consignment_state([Answered(Received), Dispatched]), C::InReview);
        assert_eq!(consignment_state([Answered(Accepted), Answered(Released)]), C::InReview);
        assert_eq!(consignment_state([Answered(Released), Answered(Released)]), C::Released);
        assert_eq!(consignment_state([Answered(Released), Answered(Hold)]), C::OnHold);
        assert_eq!(consignment_state([Answered(Query), Answered(Released)]), C::OnHold);
        assert_eq!(consignment_state([Answered(Hold), Answered(Rejected)]), C::Refused);
        assert_eq!(consignment_state([Answered(Released), Pending]), C::InReview);
        assert_eq!(consignment_state([]), C::Submitted);
        assert_eq!(consignment_state([Answered(Released), Failed]), C::DeliveryFailed);
        assert_eq!(consignment_state([Answered(Hold), Failed]), C::OnHold);
        assert_eq!(consignment_state([Answered(Rejected), Failed]), C::Refused);
    }
}
