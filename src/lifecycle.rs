//! A document's life after it was accepted, whichever store holds the rows: amended into a new
//! version, withdrawn, and the trader's answers to an agency's query.
//!
//! - **Amendment.** The new version is a document of its own (its own id, the next `version`,
//!   `amends` naming the one it replaces), validated and routed as a submission, with the same
//!   type and UCR. The version it amends is *superseded*: it takes no more answers (they are
//!   recorded as late), its final answers stay final for it, and the consignment's state
//!   follows the latest version of each document. Agencies the new version is routed to receive
//!   it as `org.ventanilla.document.amended`; an agency the earlier version went to and the new
//!   one does not is sent a withdrawal notice for the earlier version. The same amendment sent
//!   twice is answered with its first receipt.
//! - **Withdrawal.** The document takes no more answers (late); every agency it went to is sent
//!   `org.ventanilla.document.withdrawn`; a consignment whose documents are all withdrawn is
//!   `withdrawn`. Withdrawing again answers the first withdrawal.
//! - **Bounded histories.** One sender keeps at most `gateway.max_document_versions` documents of
//!   one type in one consignment, every version and every replacement of a withdrawn document
//!   counted; past it an amendment is refused. A history's latest version is found by index
//!   (each document names its first version, `chain`), never by reading version after version.
//! - **Changes after release.** A document of a released consignment is neither amended nor
//!   withdrawn unless the region allows it (`gateway.change_after_release`); nor does such a
//!   consignment take a new document (`crate::submission`), so no later document reopens it and
//!   a released document stays released.
//! - **Query and response.** An agency's `query` puts the ball in the trader's court; the trader's
//!   response (text, and optionally a supporting document) goes to each agency with a query open
//!   on the document as `org.ventanilla.query.answered`, and puts the ball back in the agency's
//!   court until it answers again. Each turn is a line of the delivery's history (`query`, then
//!   `responded`), so the time in query splits by whose turn it was. One response per turn: while
//!   it is the agency's turn, another response is refused until the agency asks again.
//!
//! Only the document's sender, or the national single window of the document's submitting
//! party's country acting for it, may change a document (`access::may_change`); to anyone else
//! it does not exist. Every refusal comes before the first write. Each change is one audit
//! record and one status event, committed with it.

use serde::Serialize;
use serde_json::{json, value::RawValue};
use uuid::Uuid;

use crate::access::{may_change, Participant};
use crate::document_types::DocumentTypes;
use crate::audit;
use crate::clock::{rfc3339, Millis};
use crate::domain::{AckStatus, AgencyId, ConsignmentState, DeliveryStatus, DocumentType, Ucr};
use crate::store::{Acceptance, DeliveryEvent, Ledger, NewDocument, NoticeKind, StoreError, StoredDocument};
use crate::tracking::{self, RESPONDED};

/// Why a change to a document was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeRefused {
    /// No such document, or not one `by` may change (the two read alike: existence does not leak).
    #[error("no document {0} of yours is known here")]
    UnknownDocument(Uuid),
    #[error("the document {document} was amended since; its latest version is {latest}")]
    Superseded { document: Uuid, latest: Uuid },
    #[error("the document {0} was withdrawn")]
    Withdrawn(Uuid),
    #[error("the consignment {0} is released, and this region does not allow changes after release")]
    Released(Ucr),
    #[error("no agency has a query open on the document {document}{}", agency.as_ref().map(|a| format!(" for agency {a}")).unwrap_or_default())]
    NoOpenQuery { document: Uuid, agency: Option<AgencyId> },
    /// An amendment must keep the document's type and UCR.
    #[error("an amendment keeps the document's {what}: {expected}, not {found}")]
    NotTheSameDocument { what: &'static str, pointer: &'static str, expected: String, found: String },
    /// Too many deliveries wait for the broker to take a new version (`gateway.max_outbox_backlog`).
    #[error("too many deliveries are waiting for the broker to accept a new document")]
    BacklogFull,
    #[error("the amendment is the same document as version {version} ({document}): nothing to amend")]
    Unchanged { document: Uuid, version: i64 },
    /// The document's history holds `max` documents already (`gateway.max_document_versions`).
    #[error("the document {document} has {max} versions already, the most this region keeps of one document")]
    TooManyVersions { document: Uuid, max: u32 },
    /// Every query open on the document (or the named agency's) was answered since the agency
    /// asked: it is the agency's turn.
    #[error("the query of {} on the document {document} was answered already; it is the agency's turn", agencies.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "))]
    QueryAnswered { document: Uuid, agencies: Vec<AgencyId> },
}

/// What an amendment needs besides the new version.
#[derive(Debug, Clone)]
pub struct AmendmentOf {
    pub previous: Uuid,
    pub reason: String,
    /// Who asks (the new version keeps the sender of the one it amends).
    pub by: Participant,
}

/// What a withdrawal did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Withdrawal {
    pub document_id: Uuid,
    pub ucr: Ucr,
    pub withdrawn_at: String,
    /// The agencies sent a withdrawal notice.
    pub agencies: Vec<AgencyId>,
    pub consignment_state: ConsignmentState,
}

/// A trader's answer to a query, before it is stored.
#[derive(Debug, Clone)]
pub struct Response {
    pub document_id: Uuid,
    pub text: String,
    /// Only to this agency's query; else to every agency with a query open on the document.
    pub agency: Option<AgencyId>,
    /// A supporting document, already validated: its type, version and payload text as sent.
    pub supporting: Option<(DocumentType, String, String)>,
    pub by: Participant,
    pub at: Millis,
}

/// What a response did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseReceipt {
    /// The notice's id: the `ce_id` the agencies receive it with.
    pub response_id: Uuid,
    pub document_id: Uuid,
    pub ucr: Ucr,
    /// The agencies whose query it answers.
    pub agencies: Vec<AgencyId>,
    pub responded_at: String,
    pub consignment_state: ConsignmentState,
}

/// The notice of a trader's answer to a query, as its agencies receive it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryAnswered<'a> {
    response_id: Uuid,
    document_id: Uuid,
    ucr: &'a Ucr,
    document_type: &'a DocumentType,
    version: i64,
    text: &'a str,
    agencies: &'a [AgencyId],
    responded_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    supporting_document: Option<Supporting<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Supporting<'a> {
    document_type: &'a DocumentType,
    schema_version: &'a str,
    payload: Box<RawValue>,
}

/// The document `id` as `by` may change it, current.
fn changeable(l: &mut dyn Ledger, id: Uuid, by: &Participant, types: &DocumentTypes) -> Result<Result<StoredDocument, ChangeRefused>, StoreError> {
    let Some(doc) = l.document(id)?.filter(|d| may_change(by, d, types)) else {
        return Ok(Err(ChangeRefused::UnknownDocument(id)));
    };
    if doc.record.superseded_by.is_some() {
        return Ok(Err(ChangeRefused::Superseded { document: id, latest: latest_version(l, &doc)? }));
    }
    if doc.record.withdrawn_at.is_some() {
        return Ok(Err(ChangeRefused::Withdrawn(id)));
    }
    Ok(Ok(doc))
}

/// The latest version of the document `doc` is a version of: one read by index, whatever the
/// length of its history.
fn latest_version(l: &mut dyn Ledger, doc: &StoredDocument) -> Result<Uuid, StoreError> {
    Ok(l.chain_versions(&doc.ucr, doc.record.chain, i64::MAX, 1)?.first().map_or(doc.record.id, |d| d.id))
}

/// Refuses a change to a released consignment unless the region allows it.
fn released(l: &mut dyn Ledger, ucr: &Ucr, allowed: bool) -> Result<Option<ChangeRefused>, StoreError> {
    let state = l.consignment(ucr)?.map(|c| c.state);
    Ok((state == Some(ConsignmentState::Released) && !allowed).then(|| ChangeRefused::Released(ucr.clone())))
}

/// Commits `doc` as the next version of `of.previous`, or answers the first receipt of the same
/// amendment, or refuses it.
pub fn amend_in(l: &mut dyn Ledger, mut doc: NewDocument, of: &AmendmentOf, types: &DocumentTypes)
    -> Result<Result<Acceptance, ChangeRefused>, StoreError> {
    let Some(previous) = l.document(of.previous)?.filter(|d| may_change(&of.by, d, types)) else {
        return Ok(Err(ChangeRefused::UnknownDocument(of.previous)));
    };
    if doc.document_type != previous.record.document_type {
        return Ok(Err(ChangeRefused::NotTheSameDocument {
            what: "type",
            pointer: "/document/documentType",
            expected: previous.record.document_type.to_string(),
            found: doc.document_type.to_string(),
        }));
    }
    if doc.ucr != previous.ucr {
        return Ok(Err(ChangeRefused::NotTheSameDocument {
            what: "UCR",
            pointer: "/document/ucr",
            expected: previous.ucr.to_string(),
            found: doc.ucr.to_string(),
        }));
    }
    if let Some(next) = previous.record.superseded_by {
        // Sent again: the amendment already made is answered with its receipt.
        // Nothing is written: the gateway audits replays in a bounded form (`crate::replays`).
        if let Some(made) = l.document(next)?.filter(|n| n.body_sha256 == doc.body_sha256) {
            if let Some(receipt) = l.receipt_of(made.record.id)? {
                let receipt = serde_json::from_str(&receipt).map_err(|e| StoreError::Corrupt(format!("stored receipt: {e}")))?;
                return Ok(Ok(Acceptance::Replayed(receipt)));
            }
        }
        return Ok(Err(ChangeRefused::Superseded { document: of.previous, latest: latest_version(l, &previous)? }));
    }
    if previous.record.withdrawn_at.is_some() {
        return Ok(Err(ChangeRefused::Withdrawn(of.previous)));
    }
    if previous.body_sha256 == doc.body_sha256 {
        return Ok(Err(ChangeRefused::Unchanged { document: of.previous, version: previous.record.version }));
    }
    let max = doc.rules.max_versions;
    if l.identity_versions(&previous.record.sender, &previous.ucr, &previous.record.document_type)? >= u64::from(max) {
        return Ok(Err(ChangeRefused::TooManyVersions { document: of.previous, max }));
    }
    if let Some(refused) = released(l, &previous.ucr, doc.rules.after_release)? {
        return Ok(Err(refused));
    }
    if doc.backlog_full {
        return Ok(Err(ChangeRefused::BacklogFull));
    }
    // The new version is the consignment opener's, as the one it amends, whoever acts for it.
    doc.sender = previous.record.sender.clone();
    doc.version = previous.record.version + 1;
    doc.amends = Some(of.previous);
    let at = doc.submitted_at;
    l.supersede(of.previous, doc.id)?;
    // The agencies of the earlier version: those the new one is no longer routed to are told it
    // is withdrawn; the others get the new version, and their history says why.
    let earlier = l.deliveries_of(of.previous)?;
    let dropped: Vec<_> = earlier.iter().filter(|d| !doc.deliveries.iter().any(|p| p.agency == d.agency)).collect();
    if !dropped.is_empty() {
        let why = format!("amended into version {} ({}), which is not routed to this agency: {}", doc.version, doc.id, of.reason);
        let body = json!({
            "documentId": of.previous,
            "ucr": previous.ucr,
            "documentType": previous.record.document_type,
            "version": previous.record.version,
            "reason": why,
            "supersededBy": doc.id,
            "withdrawnAt": rfc3339(at),
        });
        notify(l, Uuid::now_v7(), of.previous, NoticeKind::Withdrawn, &body.to_string(), dropped.iter().map(|d| (d.id, &d.agency, d.topic.as_str())), at, "withdrawn", &why)?;
    }
    let why = format!("amended into version {} ({}): {}", doc.version, doc.id, of.reason);
    for d in earlier.iter().filter(|d| !dropped.iter().any(|x| x.id == d.id)) {
        l.add_delivery_event(d.id, DeliveryEvent { status: "amended", at, source: "http", reason: Some(&why), outcome: "applied" })?;
    }
    let change = json!({
        "kind": "amended",
        "documentId": doc.id,
        "documentType": doc.document_type,
        "amends": of.previous,
        "version": doc.version,
        "reason": of.reason,
        "by": of.by.id(),
        "withdrawnFrom": dropped.iter().map(|d| &d.agency).collect::<Vec<_>>(),
    });
    crate::submission::commit(l, &doc, "document.amended", Some(change)).map(|r| Ok(Acceptance::New(r)))
}

/// Withdraws the document `id`, or answers its first withdrawal, or refuses.
pub fn withdraw_in(l: &mut dyn Ledger, id: Uuid, reason: &str, by: &Participant, after_release: bool, at: Millis, types: &DocumentTypes)
    -> Result<Result<Withdrawal, ChangeRefused>, StoreError> {
    let Some(doc) = l.document(id)?.filter(|d| may_change(by, d, types)) else {
        return Ok(Err(ChangeRefused::UnknownDocument(id)));
    };
    let deliveries = l.deliveries_of(id)?;
    let agencies: Vec<AgencyId> = deliveries.iter().map(|d| d.agency.clone()).collect();
    if let Some(withdrawn_at) = doc.record.withdrawn_at {
        // Withdrawn before: the same answer, nothing written.
        let state = l.consignment(&doc.ucr)?.map_or(ConsignmentState::Withdrawn, |c| c.state);
        return Ok(Ok(Withdrawal { document_id: id, ucr: doc.ucr, withdrawn_at: rfc3339(withdrawn_at), agencies, consignment_state: state }));
    }
    if doc.record.superseded_by.is_some() {
        return Ok(Err(ChangeRefused::Superseded { document: id, latest: latest_version(l, &doc)? }));
    }
    if let Some(refused) = released(l, &doc.ucr, after_release)? {
        return Ok(Err(refused));
    }
    l.withdraw_document(id, at)?;
    let body = json!({
        "documentId": id,
        "ucr": doc.ucr,
        "documentType": doc.record.document_type,
        "version": doc.record.version,
        "reason": reason,
        "withdrawnAt": rfc3339(at),
    });
    notify(l, Uuid::now_v7(), id, NoticeKind::Withdrawn, &body.to_string(), deliveries.iter().map(|d| (d.id, &d.agency, d.topic.as_str())), at, "withdrawn", reason)?;
    let cause = json!({"kind": "withdrawn", "documentId": id, "documentType": doc.record.document_type, "reason": reason, "by": by.id()});
    let state = tracking::record_event(l, &doc.ucr, at, cause)?;
    audit::append(l, &audit::entry(at, by.id(), "document.withdrawn", id.to_string(), json!({"ucr": doc.ucr, "reason": reason, "agencies": agencies})))?;
    Ok(Ok(Withdrawal { document_id: id, ucr: doc.ucr, withdrawn_at: rfc3339(at), agencies, consignment_state: state }))
}

/// Sends the trader's answer to the agencies with a query open on the document, or refuses.
pub fn respond_in(l: &mut dyn Ledger, r: &Response, types: &DocumentTypes) -> Result<Result<ResponseReceipt, ChangeRefused>, StoreError> {
    let doc = match changeable(l, r.document_id, &r.by, types)? {
        Ok(doc) => doc,
        Err(refused) => return Ok(Err(refused)),
    };
    // The queries open on the document (or the named agency's): those whose turn is the
    // trader's take the response; one answered since the agency asked waits for its next query.
    let (mut open, mut answered) = (Vec::new(), Vec::new());
    for d in l.deliveries_of(r.document_id)? {
        if d.status != DeliveryStatus::Answered(AckStatus::Query) || r.agency.as_ref().is_some_and(|a| a != &d.agency) {
            continue;
        }
        if tracking::query_turn(d.status, &l.history_of(d.id)?) == Some(tracking::TRADER_TURN) {
            open.push(d);
        } else {
            answered.push(d.agency);
        }
    }
    if open.is_empty() {
        return Ok(Err(if answered.is_empty() {
            ChangeRefused::NoOpenQuery { document: r.document_id, agency: r.agency.clone() }
        } else {
            ChangeRefused::QueryAnswered { document: r.document_id, agencies: answered }
        }));
    }
    let response_id = Uuid::now_v7();
    let agencies: Vec<AgencyId> = open.iter().map(|d| d.agency.clone()).collect();
    let supporting = match &r.supporting {
        Some((document_type, schema_version, payload)) => Some(Supporting {
            document_type,
            schema_version,
            payload: RawValue::from_string(payload.clone())
                .map_err(|e| StoreError::Corrupt(format!("a supporting document's payload: {e}")))?,
        }),
        None => None,
    };
    let body = QueryAnswered {
        response_id,
        document_id: r.document_id,
        ucr: &doc.ucr,
        document_type: &doc.record.document_type,
        version: doc.record.version,
        text: &r.text,
        agencies: &agencies,
        responded_at: rfc3339(r.at),
        supporting_document: supporting,
    };
    // Written as a struct, so the supporting document's payload (a raw value) reaches the
    // agencies as the trader sent it.
    let body = serde_json::to_string(&body).map_err(|e| StoreError::Corrupt(format!("a response's notice: {e}")))?;
    notify(l, response_id, r.document_id, NoticeKind::QueryAnswered, &body, open.iter().map(|d| (d.id, &d.agency, d.topic.as_str())), r.at, RESPONDED, &r.text)?;
    let cause = json!({"kind": "query-answered", "documentId": r.document_id, "responseId": response_id, "agencies": agencies});
    let state = tracking::record_event(l, &doc.ucr, r.at, cause)?;
    let detail = json!({"ucr": doc.ucr, "responseId": response_id, "agencies": agencies, "supportingDocument": r.supporting.as_ref().map(|s| &s.0)});
    audit::append(l, &audit::entry(r.at, &r.by.id(), "query.answered", r.document_id.to_string(), detail))?;
    Ok(Ok(ResponseReceipt {
        response_id,
        document_id: r.document_id,
        ucr: doc.ucr,
        agencies,
        responded_at: rfc3339(r.at),
        consignment_state: state,
    }))
}

/// Keeps a notice about `document` and queues it to each of `to` (delivery, agency, topic),
/// with a line in each delivery's history.
#[allow(clippy::too_many_arguments)]
fn notify<'a>(
    l: &mut dyn Ledger,
    id: Uuid,
    document: Uuid,
    kind: NoticeKind,
    body: &str,
    to: impl Iterator<Item = (i64, &'a AgencyId, &'a str)>,
    at: Millis,
    history: &str,
    reason: &str,
) -> Result<(), StoreError> {
    l.insert_notice(id, document, kind, body, at)?;
    for (delivery, agency, topic) in to {
        l.insert_notice_delivery(id, document, agency, topic, at)?;
        l.add_delivery_event(delivery, DeliveryEvent { status: history, at, source: "http", reason: Some(reason), outcome: "applied" })?;
    }
    Ok(())
}
