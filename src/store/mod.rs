//! The store: documents, consignments, deliveries with their history, and the two outboxes
//! (deliveries not yet confirmed by the broker; consignment status events not yet published).
//!
//! One interface, [`Store`], so a PostgreSQL implementation can join the embedded SQLite one.
//! Nothing outside this module knows SQL.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::clock::Millis;
use crate::domain::{AckStatus, AgencyId, ConsignmentState, CountryCode, DeliveryStatus, DocumentType, SchemaVersion, Ucr};
use crate::tracking::AckOutcome;

pub mod sqlite;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the document {0} is unknown")]
    UnknownDocument(Uuid),
    #[error("the document {document} was not routed to agency {agency}")]
    NotRouted { document: Uuid, agency: AgencyId },
    #[error("{reason}; the first document is {document}")]
    Conflict { document: Uuid, reason: &'static str },
    #[error("the consignment {0} was opened by another participant")]
    ConsignmentOfAnother(Ucr),
    #[error("too many deliveries are waiting for the broker to accept a new document")]
    BacklogFull,
    #[error("the store is not available: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A refusal of what was asked (a conflict, a consignment of another, the backlog, an
    /// unknown or unrouted document), decided before anything was written; not a failure of
    /// the store.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::ConsignmentOfAnother(_)
                | StoreError::BacklogFull
                | StoreError::UnknownDocument(_)
                | StoreError::NotRouted { .. }
        )
    }
}

/// A future returned by the store; boxed so the trait can be used as `dyn Store`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A validated, routed document to commit with its deliveries.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: Uuid,
    pub ucr: Ucr,
    pub document_type: DocumentType,
    pub schema_version: SchemaVersion,
    pub schema_id: String,
    pub origin: CountryCode,
    pub destination: CountryCode,
    /// The participant that submitted it.
    pub sender: String,
    /// The payload as received (JSON text), published as the record's value.
    pub payload: String,
    /// The submitter's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the whole request body, to tell a replay from a different document.
    pub body_sha256: String,
    pub submitted_at: Millis,
    /// (agency, its topic, the routing rule that chose it).
    pub deliveries: Vec<(AgencyId, String, String)>,
    /// Whether the broker was reachable when the document was accepted; the receipt says so
    /// when it was not, so the submitter knows its deliveries wait for the broker.
    pub broker_available: bool,
    /// The outbox backlog is at its bound: a repeat of an accepted document still gets its
    /// first receipt, a new document is refused with [`StoreError::BacklogFull`].
    pub backlog_full: bool,
}

/// What the submitter gets back: proof the document is committed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub document_id: Uuid,
    pub ucr: Ucr,
    pub document_type: DocumentType,
    pub schema_version: SchemaVersion,
    pub submitted_at: String,
    pub consignment_state: ConsignmentState,
    pub deliveries: Vec<ReceiptDelivery>,
    /// Hash of the submission's record in the audit log (`ventanilla audit verify`).
    pub audit_hash: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptDelivery {
    pub agency: AgencyId,
    pub topic: String,
    pub status: DeliveryStatus,
    /// Why a delivery is not moving yet: `broker-unavailable` when the document was accepted
    /// during a broker outage (it is stored and will be published when the broker is back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<&'static str>,
    /// The routing rule that chose this agency.
    pub rule: String,
}

/// What committing a document did.
#[derive(Debug, Clone)]
pub enum Acceptance {
    /// A new document, committed with its deliveries.
    New(Receipt),
    /// The same document was accepted before (same idempotency key, or same sender, UCR, type
    /// and body): nothing was written, and this is the first receipt, as it was given.
    Replayed(serde_json::Value),
}

/// A delivery waiting in the outbox for the relay.
#[derive(Debug, Clone)]
pub struct OutboundDelivery {
    pub delivery_id: i64,
    pub document_id: Uuid,
    pub agency: AgencyId,
    pub topic: String,
    pub ucr: Ucr,
    pub document_type: DocumentType,
    pub schema_version: String,
    pub schema_id: String,
    pub origin: String,
    pub destination: String,
    pub sender: String,
    pub submitted_at: Millis,
    pub payload: String,
    /// Attempts the broker refused so far.
    pub attempts: u32,
}

/// A delivery that failed, for operators.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedDelivery {
    pub delivery_id: i64,
    pub document_id: Uuid,
    pub ucr: Ucr,
    pub agency: AgencyId,
    pub topic: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub failed_at: Option<String>,
}

/// Which failed deliveries an operator sends again.
#[derive(Debug, Clone)]
pub enum RetrySelection {
    /// These deliveries; each must exist and have failed.
    Deliveries(Vec<i64>),
    /// Every failed delivery, or only those of one agency.
    AllFailed { agency: Option<AgencyId> },
}

/// What a retry did.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryOutcome {
    /// Back in the outbox.
    pub retried: Vec<i64>,
    /// Named, but not failed (left as they are).
    pub not_failed: Vec<i64>,
    /// Named, but no such delivery.
    pub unknown: Vec<i64>,
}

/// An agency's answer, from HTTP or the ack topic.
#[derive(Debug, Clone)]
pub struct AckRecord {
    pub document_id: Uuid,
    pub agency: AgencyId,
    pub status: AckStatus,
    pub reason: Option<String>,
    /// `http` or `kafka`.
    pub source: &'static str,
    /// Who answered, for the audit log: the participant id over HTTP, `kafka:<agency>` from
    /// the ack topic.
    pub by: String,
    pub at: Millis,
}

/// What applying an answer did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AckApplied {
    pub document_id: Uuid,
    pub agency: AgencyId,
    pub ucr: Ucr,
    pub outcome: AckOutcome,
    /// The delivery's status after the answer.
    pub delivery_status: DeliveryStatus,
    pub consignment_state: ConsignmentState,
    /// For the agency's first answer to this delivery: milliseconds since it was routed.
    #[serde(skip)]
    pub first_answer_after_ms: Option<i64>,
}

/// A consignment state change waiting to be published on the status topic.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub id: i64,
    pub ucr: Ucr,
    /// The event's JSON body.
    pub body: String,
}

/// Everything known about one consignment.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsignmentView {
    pub ucr: Ucr,
    pub state: ConsignmentState,
    pub created_at: String,
    pub updated_at: String,
    pub documents: Vec<DocumentView>,
    pub time_release: TimeRelease,
    /// Participants that submitted its documents (for authorization; not shown).
    #[serde(skip)]
    pub senders: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    pub document_id: Uuid,
    pub document_type: DocumentType,
    pub schema_version: String,
    pub origin: String,
    pub destination: String,
    pub sender: String,
    pub submitted_at: String,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The id operators use to send a failed delivery again.
    pub delivery_id: i64,
    pub agency: AgencyId,
    pub topic: String,
    pub status: DeliveryStatus,
    /// Attempts the broker refused (reset when an operator sends it again).
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub dispatched_at: Option<String>,
    pub first_answer_at: Option<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub status: String,
    pub at: String,
    /// `gateway`, `broker`, `http` or `kafka`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it changed the delivery (`applied`) or not (`duplicate`, `late`, `stale`).
    pub outcome: String,
}

/// Time-release figures (after the WCO Time Release Study), in milliseconds.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeRelease {
    /// The consignment's first submission.
    pub first_submitted_at: String,
    pub released_at: Option<String>,
    pub submission_to_release_ms: Option<i64>,
    /// Per agency: from the first document routed to it to its first answer.
    pub agencies: Vec<AgencyTimes>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgencyTimes {
    pub agency: AgencyId,
    pub first_answer_at: Option<String>,
    pub submission_to_first_answer_ms: Option<i64>,
}

/// A webhook a participant registered, as it is shown to that participant (never the secret).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub created_at: String,
    /// The last status event the URL answered 2xx to (`Ventanilla-Event-Id`).
    pub delivered_through: i64,
    /// Attempts in a row that failed for the next event (0 when all is well).
    pub failed_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// A registration: its secret is answered once, at registration (and never shown by `Debug`).
#[derive(Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRegistered {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The HMAC-SHA256 key of `Ventanilla-Signature`. Shown only now; keep it secret.
    pub secret: String,
}

/// What the dispatcher needs to send a webhook its next events.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub id: Uuid,
    pub participant: String,
    pub url: String,
    /// Shown as `***` by `Debug`.
    pub secret: crate::config::Secret,
    /// The last status event delivered.
    pub cursor: i64,
    /// Failed attempts in a row.
    pub attempts: u32,
}

/// A consignment state change: the body of a status event (status topic, SSE, webhooks).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub ucr: Ucr,
    pub state: ConsignmentState,
    /// The state before; `null` for a new consignment.
    pub previous_state: Option<ConsignmentState>,
    pub at: String,
    /// What changed it: `{"kind": "submission" | "acknowledgment" | "retry", ...}`.
    pub cause: serde_json::Value,
}

/// The store's operations.
pub trait Store: Send + Sync + 'static {
    /// Commits a document, its consignment and its deliveries (the outbox) atomically, unless
    /// it repeats an accepted one (then the first receipt) or reuses its idempotency key or
    /// identity with a different body (then [`StoreError::Conflict`]).
    fn accept_document(&self, doc: NewDocument) -> StoreFuture<'_, Acceptance>;
    /// Commits several documents as [`Store::accept_document`] would each, in order and in one
    /// commit; one result per document, and a refused one leaves the others. An error of the
    /// whole (the commit failed) means none was committed.
    fn accept_documents(&self, docs: Vec<NewDocument>) -> StoreFuture<'_, Vec<Result<Acceptance, StoreError>>>;
    /// The oldest deliveries due to be sent at `now`, in commit order: not yet confirmed, not
    /// failed, not waiting out a retry delay, and not behind a delivery of the same topic and
    /// UCR that is waiting out one or has failed (so a consignment's records keep their order).
    fn pending_deliveries(&self, limit: usize, now: Millis) -> StoreFuture<'_, Vec<OutboundDelivery>>;
    /// Deliveries waiting for the broker (not confirmed, not failed).
    fn outbox_backlog(&self) -> StoreFuture<'_, u64>;
    /// Records the broker's confirmations.
    fn mark_dispatched(&self, delivery_ids: Vec<i64>, at: Millis) -> StoreFuture<'_, ()>;
    /// Records that the broker refused a delivery's record: one attempt more, and the time it
    /// is due again.
    fn record_refusal(&self, delivery_id: i64, at: Millis, error: String, next_attempt_at: Millis) -> StoreFuture<'_, ()>;
    /// Marks a delivery failed after its last attempt (its dead-letter notice is published).
    fn mark_failed(&self, delivery_id: i64, at: Millis, error: String) -> StoreFuture<'_, ()>;
    /// Failed deliveries, oldest first, optionally of one agency.
    fn failed_deliveries(&self, agency: Option<AgencyId>) -> StoreFuture<'_, Vec<FailedDelivery>>;
    /// Puts failed deliveries back in the outbox with fresh attempts; `by` names the operator.
    fn retry_deliveries(&self, selection: RetrySelection, by: String, at: Millis) -> StoreFuture<'_, RetryOutcome>;
    /// Applies an agency's answer to its delivery and the consignment.
    fn apply_acknowledgment(&self, ack: AckRecord) -> StoreFuture<'_, AckApplied>;
    /// Status events not yet published, oldest first.
    fn pending_status_events(&self, limit: usize) -> StoreFuture<'_, Vec<StatusEvent>>;
    fn mark_status_published(&self, ids: Vec<i64>, at: Millis) -> StoreFuture<'_, ()>;
    fn consignment(&self, ucr: Ucr) -> StoreFuture<'_, Option<ConsignmentView>>;
    /// Appends a record to the audit log (for refusals; everything else is audited in the
    /// same transaction as the change it describes). Returns its hash.
    fn audit(&self, entry: AuditEntry) -> StoreFuture<'_, String>;
    /// Appends several records in one commit.
    fn audit_many(&self, entries: Vec<AuditEntry>) -> StoreFuture<'_, ()>;
    /// An agency's deliveries after the delivery id `after`, in id (commit) order: the HTTP
    /// stream's source, resumable from any id.
    fn agency_deliveries(&self, agency: AgencyId, after: i64, limit: usize) -> StoreFuture<'_, Vec<OutboundDelivery>>;
    /// Consignment status events after the event id `after`, in order: every one (`sender`
    /// `None`), or those of consignments `sender` submitted to.
    fn status_events_after(&self, sender: Option<String>, after: i64, limit: usize) -> StoreFuture<'_, Vec<StatusEvent>>;
    /// Deliveries by (agency, status), for metrics.
    fn delivery_counts(&self) -> StoreFuture<'_, Vec<(String, String, u64)>>;
    /// Registers a webhook for `participant`, unless it has `max` already (`None`); it is sent
    /// the status events committed from now on. Audited.
    fn register_webhook(&self, participant: String, url: String, secret: String, max: usize, at: Millis) -> StoreFuture<'_, Option<Webhook>>;
    /// `participant`'s webhooks.
    fn webhooks(&self, participant: String) -> StoreFuture<'_, Vec<Webhook>>;
    /// Removes one of `participant`'s webhooks; false when it has none with this id. Audited.
    fn delete_webhook(&self, participant: String, id: Uuid, at: Millis) -> StoreFuture<'_, bool>;
    /// Every webhook whose next attempt is due at `now`.
    fn due_webhooks(&self, now: Millis) -> StoreFuture<'_, Vec<WebhookTarget>>;
    /// The webhook's URL answered 2xx to the event `cursor` (or has no event up to it); false
    /// when the webhook no longer exists.
    fn webhook_delivered(&self, id: Uuid, cursor: i64) -> StoreFuture<'_, bool>;
    /// The id of the latest status event (0 for none).
    fn latest_status_event(&self) -> StoreFuture<'_, i64>;
    /// The webhook's next event failed; it is due again at `next_attempt_at`.
    fn webhook_failed(&self, id: Uuid, error: String, next_attempt_at: Millis) -> StoreFuture<'_, ()>;
    /// Answers when the store can read and write.
    fn ping(&self) -> StoreFuture<'_, ()>;
}

impl std::fmt::Debug for WebhookRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRegistered").field("webhook", &self.webhook).field("secret", &"***").finish()
    }
}
