//! The rules of accepting a document, whichever store holds the rows: a resend gets its first
//! receipt (and writes nothing: the gateway audits replays in a bounded form, `crate::replays`),
//! a different document under the same key or identity is a conflict, a consignment is its
//! opener's, a full backlog refuses new work, a released consignment takes no new document
//! unless the region allows changes after release, one sender keeps at most
//! `gateway.max_document_versions` documents of one type in a consignment, and an accepted
//! document is committed with its consignment, deliveries (the outbox), status event, audit
//! record and receipt at once.
//!
//! A withdrawn document is not the live one: a document of the same type for the same UCR sent
//! after the withdrawal is a new document (the withdrawal's answer says to send one), not a
//! conflict with it.
//!
//! A refusal is an answer ([`Refused`]), not a failure of the store, and is decided before
//! the document's first write, so that a refused document of a batch leaves the others.

use serde_json::json;

use crate::audit;
use crate::clock::rfc3339;
use crate::domain::{AgencyId, ConsignmentState, DeliveryStatus};
use uuid::Uuid;

use crate::domain::{DocumentType, Ucr};
use crate::store::{
    Acceptance, AcceptanceLookup, EarlierDocument, Ledger, NewDocument, Receipt, ReceiptDelivery, Store, StoreError, Subject,
};
use crate::tracking::{self, consignment_state};

/// Why a document was not accepted. Nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// A different document under a key or an identity already used.
    #[error("{reason}; the first document is {document}")]
    Conflict { document: Uuid, reason: &'static str },
    #[error("the consignment {0} was opened by another participant")]
    ConsignmentOfAnother(Ucr),
    #[error("too many deliveries are waiting for the broker to accept a new document")]
    BacklogFull,
    /// The consignment is released and the region takes no change after release
    /// (`gateway.change_after_release`): no new document either.
    #[error("the consignment {0} is released, and this region does not allow changes after release")]
    ConsignmentReleased(Ucr),
    /// The sender has `max` documents of this type in the consignment already, every version
    /// and every replacement of a withdrawn one counted (`gateway.max_document_versions`).
    #[error("the consignment {ucr} holds {max} versions of your {document_type} already, the most this region keeps of one document")]
    TooManyVersions { ucr: Ucr, document_type: DocumentType, max: u32 },
}

/// What accepting a document answers: the acceptance, or a refusal.
pub type Judged = Result<Acceptance, Refused>;

/// Commits `doc`, or answers its first receipt, or refuses it.
pub async fn accept(store: &dyn Store, doc: NewDocument) -> Result<Judged, StoreError> {
    let lookups = vec![AcceptanceLookup::of(&doc)];
    store.decide_with(subjects(&doc), lookups, move |l| accept_in(l, &doc)).await
}

/// What accepting `doc` decides on: its consignment, and its key when it has one.
fn subjects(doc: &NewDocument) -> Vec<Subject> {
    let mut subjects = vec![Subject::Consignment(doc.ucr.clone())];
    if let Some(key) = &doc.idempotency_key {
        subjects.push(Subject::IdempotencyKey { sender: doc.sender.clone(), key: key.clone() });
    }
    subjects
}

/// Commits several documents as [`accept`] would each, in order and in one transaction; one
/// result per document, and a refused one leaves the others. An error of the whole (the commit
/// failed) means none was committed.
pub async fn accept_all(store: &dyn Store, docs: Vec<NewDocument>) -> Result<Vec<Judged>, StoreError> {
    let subjects = docs.iter().flat_map(subjects).collect();
    let lookups = docs.iter().map(AcceptanceLookup::of).collect();
    store
        .decide_with(subjects, lookups, move |l| {
            // A refused document wrote nothing (its refusal comes before its first write); a
            // failure ends the work, and none of it is committed.
            docs.iter().map(|doc| accept_in(l, doc)).collect::<Result<Vec<Judged>, StoreError>>().map(Ok::<_, std::convert::Infallible>)
        })
        .await
        .map(|all| all.unwrap_or_else(|never| match never {}))
}

/// One rule for "the same document": the same sender, UCR, type and body is a replay (its first
/// receipt), whatever the `Idempotency-Key`; a different body under a key already used, or for
/// a (sender, UCR, type) already accepted, is a conflict; `None` when it is new. The key only
/// adds the first conflict. A document whose history ended in a withdrawal counts for neither
/// (without a key): what comes after it is a new document.
fn earlier_acceptance(l: &mut dyn Ledger, doc: &NewDocument) -> Result<Option<Judged>, StoreError> {
    let by_key = match &doc.idempotency_key {
        Some(key) => l.document_by_key(&doc.sender, key)?,
        None => None,
    };
    let (earlier, reason) = match by_key {
        Some(earlier) => (Some(earlier), "this Idempotency-Key was already used for a different document"),
        None => (
            l.document_by_identity(&doc.sender, &doc.ucr, &doc.document_type, &doc.body_sha256)?,
            "a different document of this type was already accepted from you for this UCR",
        ),
    };
    let Some(EarlierDocument { id, body_sha256, receipt }) = earlier else { return Ok(None) };
    if body_sha256 != doc.body_sha256 {
        return Ok(Some(Err(Refused::Conflict { document: id, reason })));
    }
    let receipt = serde_json::from_str(&receipt).map_err(|e| StoreError::Corrupt(format!("stored receipt: {e}")))?;
    Ok(Some(Ok(Acceptance::Replayed(receipt))))
}

/// Commits `doc` or refuses it, in the transaction of `l`. Every refusal comes before the
/// first write.
pub fn accept_in(l: &mut dyn Ledger, doc: &NewDocument) -> Result<Judged, StoreError> {
    if let Some(earlier) = earlier_acceptance(l, doc)? {
        return Ok(earlier);
    }
    if doc.backlog_full {
        return Ok(Err(Refused::BacklogFull));
    }
    // A consignment is its opener's: another participant may not add documents to it (nor
    // learn its state from the receipt).
    if l.consignment_of_another(&doc.ucr, &doc.sender)? {
        return Ok(Err(Refused::ConsignmentOfAnother(doc.ucr.clone())));
    }
    if let Some(consignment) = l.consignment(&doc.ucr)? {
        // Released, it stays so: a new document would move it back under review and reopen its
        // released documents to changes (`crate::lifecycle`).
        if consignment.state == ConsignmentState::Released && !doc.rules.after_release {
            return Ok(Err(Refused::ConsignmentReleased(doc.ucr.clone())));
        }
        let max = doc.rules.max_versions;
        if l.identity_versions(&doc.sender, &doc.ucr, &doc.document_type)? >= u64::from(max) {
            return Ok(Err(Refused::TooManyVersions { ucr: doc.ucr.clone(), document_type: doc.document_type.clone(), max }));
        }
    }
    commit(l, doc, "submission.accepted", None).map(|receipt| Ok(Acceptance::New(receipt)))
}

/// Writes an accepted document: its consignment (opened if new), the document, its deliveries
/// (the outbox), the consignment's state and status event, the audit record `action` and the
/// receipt. `event`, when given, is the status event's cause, queued whether or not the state
/// changes (an amendment's); else a submission's, queued on a change.
pub(crate) fn commit(l: &mut dyn Ledger, doc: &NewDocument, action: &'static str, event: Option<serde_json::Value>) -> Result<Receipt, StoreError> {
    let has_event = event.is_some();
    // Were this document to open the consignment, these would be its only deliveries, all pending.
    let opening_state = consignment_state(doc.deliveries.iter().map(|_| DeliveryStatus::Pending));
    let created = l.open_consignment(&doc.ucr, opening_state, doc.submitted_at, &doc.sender)?;
    l.insert_document(doc)?;
    let mut deliveries = Vec::with_capacity(doc.deliveries.len());
    // Each delivery's id and agency, in the order written.
    let mut ids: Vec<(i64, AgencyId)> = Vec::with_capacity(doc.deliveries.len());
    // Agencies whose standing instruction releases the document, and why.
    let mut standing: Vec<(AgencyId, String)> = Vec::new();
    // The strictest channel chosen, for the release-time facts of a consignment it opens.
    // The selections chosen, for the release-time facts of a consignment it opens.
    let mut selections: Vec<(AgencyId, Option<String>)> = Vec::new();
    for planned in &doc.deliveries {
        // Its channel is chosen now that the document is committed (a replay or a refused
        // document spends no agency's budget).
        let selected;
        let planned = match (&planned.selection, &doc.risk) {
            (None, Some(plan)) => {
                let (selection, released) = plan.select(&planned.agency);
                standing.extend(released.map(|why| (planned.agency.clone(), why)));
                selected = crate::store::PlannedDelivery { selection, ..planned.clone() };
                &selected
            }
            _ => planned,
        };
        // Its history begins with this routing, which the delivery itself records.
        let id = l.insert_delivery(doc.id, planned, doc.submitted_at)?;
        ids.push((id, planned.agency.clone()));
        if created {
            selections.push((planned.agency.clone(), planned.selection.clone()));
        }
        deliveries.push(ReceiptDelivery {
            agency: planned.agency.clone(),
            topic: planned.topic.clone(),
            status: DeliveryStatus::Pending,
            status_detail: (!doc.broker_available).then_some("broker-unavailable"),
            rule: planned.rule.clone(),
        });
    }
    let cause = json!({
        "kind": if created { "created" } else { "document" },
        "documentId": doc.id,
        "documentType": doc.document_type,
    });
    let state: ConsignmentState = if let Some(event) = event.clone() {
        tracking::record_event(l, &doc.ucr, doc.submitted_at, event)?
    } else if created {
        // A consignment this document opens has no deliveries but these, all pending: its state
        // and its first status event follow without reading anything back. Its release-time
        // facts are written once its standing instructions (below) have answered.
        tracking::announce_opening(l, &doc.ucr, opening_state, doc.submitted_at, cause)?;
        opening_state
    } else {
        tracking::refresh_consignment(l, &doc.ucr, doc.submitted_at, cause)?
    };
    // The submission and its routing decision, in the same transaction.
    let mut detail = json!({
        "ucr": doc.ucr,
        "documentType": doc.document_type,
        "schemaVersion": doc.schema_version,
        "origin": doc.origin,
        "destination": doc.destination,
        "bodySha256": doc.body_sha256,
        "idempotencyKey": doc.idempotency_key,
        "version": doc.version,
        "amends": doc.amends,
        "routing": deliveries.iter().map(|d| json!({"agency": d.agency, "topic": d.topic, "rule": d.rule})).collect::<Vec<_>>(),
    });
    // A change (an amendment) says who made it and why: the participant acting may be the
    // national single window of the sender, in whose name the document stays.
    let actor = event.as_ref().and_then(|e| e["by"].as_str()).unwrap_or(&doc.sender).to_owned();
    if let Some(change) = event {
        detail["change"] = change;
    }
    let audit_hash = audit::append(l, &audit::entry(doc.submitted_at, &actor, action, doc.id.to_string(), detail))?;
    // A green parcel under its destination's de minimis is released by each agency's standing
    // instruction as it is accepted: that agency's decision, in the same transaction, with its
    // status event, release times and audit record as any answer's; the receipt says so.
    let mut state = state;
    let mut deliveries = deliveries;
    // Each agency at most once among one delivery each: the standing instructions of a document
    // that opens its consignment are applied knowing its rows, none read back (on a store with
    // round trips, a dozen per parcel). Otherwise each is applied as any answer.
    let one_each = |agency: &AgencyId| ids.iter().filter(|(_, a)| a == agency).count() == 1;
    let distinct = standing.iter().enumerate().all(|(i, (a, _))| one_each(a) && standing[..i].iter().all(|(b, _)| b != a));
    if created && !has_event && distinct {
        let released = crate::acknowledgment::release_at_opening(l, doc, &ids, &standing, state)?;
        state = released.consignment_state;
        for d in deliveries.iter_mut().filter(|d| released.agencies.contains(&d.agency)) {
            d.status = DeliveryStatus::Answered(crate::domain::AckStatus::Released);
        }
        crate::indicators::opened(l, doc, &selections, &released.agencies, state)?;
        standing = Vec::new();
    } else if created && !has_event {
        crate::indicators::opened(l, doc, &selections, &[], opening_state)?;
    }
    for (agency, why) in standing {
        let ack = crate::store::AckRecord {
            document_id: doc.id,
            by: format!("standing-instruction:{agency}"),
            agency,
            status: crate::domain::AckStatus::Released,
            reason: Some(why),
            inspection: None,
            finding_facts: None,
            source: crate::acknowledgment::STANDING_INSTRUCTION,
            at: doc.submitted_at,
        };
        // Its delivery was written above: an answer to it is never refused.
        if let Ok(applied) = crate::acknowledgment::apply_in(l, &ack)? {
            state = applied.consignment_state;
            for d in deliveries.iter_mut().filter(|d| d.agency == applied.agency) {
                d.status = applied.delivery_status;
            }
        }
    }
    let receipt = Receipt {
        document_id: doc.id,
        ucr: doc.ucr.clone(),
        document_type: doc.document_type.clone(),
        schema_version: doc.schema_version,
        submitted_at: rfc3339(doc.submitted_at),
        version: doc.version,
        amends: doc.amends,
        consignment_state: state,
        deliveries,
        audit_hash,
        body_sha256: doc.body_sha256.clone(),
        signature: None,
    };
    let mut receipt = receipt;
    if let Some(keys) = &doc.seal.0 {
        // Stored awaiting its signature, which the answer completes off this thread
        // (`crate::receipts`): signing here would take the writer's time from every group.
        let unsigned = serde_json::to_string(&receipt).map_err(|e| StoreError::Corrupt(format!("receipt: {e}")))?;
        receipt.signature = Some(keys.signing_input(&unsigned));
    }
    let text = serde_json::to_string(&receipt).map_err(|e| StoreError::Corrupt(format!("receipt: {e}")))?;
    l.insert_receipt(doc.id, &text)?;
    Ok(receipt)
}
