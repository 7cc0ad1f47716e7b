//! The rules of an agency's answer, whichever store holds the rows: only to a document routed
//! to that agency; applied to its delivery by the state machine of `tracking` (duplicates, late
//! and stale answers are recorded and change nothing); an answer to a document amended since or
//! withdrawn is late; the consignment's state follows; every answer is in the delivery's history
//! and the audit log. A query (applied) is an event of the consignment whatever its state, so the
//! trader hears of it and its reason on the status topic, event stream and webhooks; a query
//! after the trader answered the previous one is a new question (applied), not a duplicate.

use serde_json::json;

use crate::audit;
use uuid::Uuid;

use crate::domain::AgencyId;
use crate::store::{AckApplied, AckRecord, DeliveryEvent, Ledger, Store, StoreError, Subject};
use crate::tracking::{apply_ack, query_turn, record_event, refresh_consignment};
use crate::domain::{AckOutcome, AckStatus, ConsignmentState, DeliveryStatus};

pub use crate::domain::STANDING_INSTRUCTION;

/// Why an answer was not applied. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckRefused {
    #[error("the document {0} is unknown")]
    UnknownDocument(Uuid),
    #[error("the document {document} was not routed to agency {agency}")]
    NotRouted { document: Uuid, agency: AgencyId },
}

/// Applies an agency's answer to its delivery and the consignment.
pub async fn apply(store: &dyn Store, ack: AckRecord) -> Result<Result<AckApplied, AckRefused>, StoreError> {
    // The answer decides on its consignment: a document's UCR never changes, so it is read
    // first. A document unknown then is refused then (an answer never runs without its lock).
    let document = ack.document_id;
    let Some(ucr) = store.read_with(move |l| l.document_ucr(document)).await? else {
        return Ok(Err(AckRefused::UnknownDocument(document)));
    };
    store.decide_with(vec![Subject::Consignment(ucr)], Vec::new(), move |l| apply_in(l, &ack)).await
}

/// What the standing instructions of a document that opens its consignment did
/// ([`release_at_opening`]).
pub(crate) struct ReleasedAtOpening {
    /// The agencies whose instruction released it.
    pub agencies: Vec<AgencyId>,
    pub consignment_state: ConsignmentState,
}

/// The standing instructions' releases (`releases`: each agency once, and why) of `doc`, a
/// document that opens its consignment with `deliveries` (id and agency, one per agency), each
/// applied as [`apply_in`] applies an answer, in turn: the audit record, the delivery's history
/// and status (still to be published), and on a change of the consignment's state, the state and
/// its status event. Nothing is read back: every row of the consignment was written by this
/// document, so what `apply_in` would read is known (each delivery pending until released, the
/// document current, the state `opening`). The caller writes the release-time facts, once
/// (`crate::indicators::opened`). A test holds the rows it leaves equal to `apply_in`'s.
pub(crate) fn release_at_opening(
    l: &mut dyn Ledger,
    doc: &crate::store::NewDocument,
    deliveries: &[(i64, AgencyId)],
    releases: &[(AgencyId, String)],
    opening: ConsignmentState,
) -> Result<ReleasedAtOpening, StoreError> {
    let at = doc.submitted_at;
    let mut statuses: Vec<(i64, DeliveryStatus)> = deliveries.iter().map(|(id, _)| (*id, DeliveryStatus::Pending)).collect();
    let mut state = opening;
    let mut agencies = Vec::with_capacity(releases.len());
    for (agency, why) in releases {
        let Some((id, _)) = deliveries.iter().find(|(_, a)| a == agency) else { continue };
        let outcome = apply_ack(DeliveryStatus::Pending, AckStatus::Released);
        let detail = json!({"agency": agency, "status": AckStatus::Released, "outcome": outcome, "source": STANDING_INSTRUCTION, "deliveryId": id});
        audit::append(l, &audit::entry(at, &format!("standing-instruction:{agency}"), "acknowledgment.recorded", doc.id.to_string(), detail))?;
        l.add_delivery_event(*id, DeliveryEvent { status: AckStatus::Released.as_str(), at, source: STANDING_INSTRUCTION, reason: Some(why), outcome: outcome.as_str() })?;
        let released = DeliveryStatus::Answered(AckStatus::Released);
        // The agency has yet to receive the document: its delivery is still published.
        l.record_answer(*id, released, at, false)?;
        for s in statuses.iter_mut().filter(|(d, _)| d == id) {
            s.1 = released;
        }
        let now = crate::tracking::consignment_state(statuses.iter().map(|(_, s)| *s));
        let cause = json!({"kind": "acknowledgment", "documentId": doc.id, "agency": agency, "status": AckStatus::Released, "reason": why});
        crate::tracking::record_change(l, &doc.ucr, now, state, at, cause)?;
        state = now;
        agencies.push(agency.clone());
    }
    Ok(ReleasedAtOpening { agencies, consignment_state: state })
}

/// [`apply`], in the transaction of `l`.
pub fn apply_in(l: &mut dyn Ledger, ack: &AckRecord) -> Result<Result<AckApplied, AckRefused>, StoreError> {
    let Some(ucr) = l.document_ucr(ack.document_id)? else {
        return Ok(Err(AckRefused::UnknownDocument(ack.document_id)));
    };
    let Some(delivery) = l.delivery_to(ack.document_id, &ack.agency)? else {
        return Ok(Err(AckRefused::NotRouted { document: ack.document_id, agency: ack.agency.clone() }));
    };
    // A version amended since, or a withdrawn document, takes no more answers: its final answers
    // stay final for it, and the consignment follows its current documents.
    let mut outcome = if delivery.document_current { apply_ack(delivery.status, ack.status) } else { AckOutcome::Late };
    // A query after the trader answered the last one is a new question, not a duplicate: the
    // turn goes back to the trader.
    if outcome == AckOutcome::Duplicate && ack.status == AckStatus::Query && query_turn(delivery.status, &l.history_of(delivery.id)?) == Some("agency") {
        outcome = AckOutcome::Applied;
    }
    let mut detail = json!({"agency": ack.agency, "status": ack.status, "outcome": outcome, "source": ack.source, "deliveryId": delivery.id});
    if let Some(inspection) = &ack.inspection {
        // What the agency found is its statement, whatever the answer's status did: it is kept
        // (the latest answer's) for risk profiling to learn from.
        detail["inspection"] = json!(inspection);
        l.record_inspection(delivery.id, inspection, ack.at, ack.finding_facts.as_deref())?;
    }
    audit::append(l, &audit::entry(ack.at, &ack.by, "acknowledgment.recorded", ack.document_id.to_string(), detail))?;
    l.add_delivery_event(
        delivery.id,
        DeliveryEvent {
            status: ack.status.as_str(),
            at: ack.at,
            source: ack.source,
            reason: ack.reason.as_deref(),
            outcome: outcome.as_str(),
        },
    )?;
    let (delivery_status, consignment_state) = if outcome.changed() {
        let new = DeliveryStatus::Answered(ack.status);
        // The agency answers, so it has the document (from an attempt whose confirmation was
        // lost, or one the broker took after all): the delivery leaves the outbox and the
        // failed list rather than being sent again, and no later failure can overwrite the answer.
        // A standing instruction's answer is the agency's decision, but the agency has yet to
        // receive the document: its delivery is still published.
        l.record_answer(delivery.id, new, ack.at, ack.source != STANDING_INSTRUCTION)?;
        let mut cause = json!({"kind": "acknowledgment", "documentId": ack.document_id, "agency": ack.agency, "status": ack.status});
        if let Some(reason) = &ack.reason {
            cause["reason"] = json!(reason);
        }
        let state = if ack.status == AckStatus::Query {
            record_event(l, &ucr, ack.at, cause)?
        } else {
            refresh_consignment(l, &ucr, ack.at, cause)?
        };
        (new, state)
    } else {
        if delivery.first_answer_at.is_none() {
            l.note_first_answer(delivery.id, ack.at)?;
        }
        // A first answer moves the release-time facts; an inspection's finding moves the TFA
        // monitor's (Art. 7.4), also on an answer that changed nothing else (a late one, to a
        // version amended since: the inspection took place).
        if delivery.first_answer_at.is_none() || ack.inspection.is_some() {
            crate::indicators::refresh(l, &ucr)?;
        }
        let state = l.consignment(&ucr)?.ok_or_else(|| StoreError::Corrupt(format!("the consignment {ucr} of a document is missing")))?.state;
        (delivery.status, state)
    };
    Ok(Ok(AckApplied {
        document_id: ack.document_id,
        agency: ack.agency.clone(),
        ucr,
        outcome,
        delivery_status,
        consignment_state,
        first_answer_after_ms: delivery.first_answer_at.is_none().then(|| (ack.at - delivery.routed_at).max(0)),
    }))
}
