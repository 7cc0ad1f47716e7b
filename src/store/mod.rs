//! The store: documents, consignments, deliveries with their history, the two outboxes
//! (deliveries not yet confirmed by the broker; consignment status events not yet published),
//! webhooks and the audit log.
//!
//! A store is a contract, not a module of rules: [`Store`] runs work in a transaction, and the
//! work reads and writes rows through [`Ledger`] (the contract: what is atomic, the isolation it
//! needs and the order cursors see are in `ledger.rs`). The rules live in the domain modules
//! above. Nothing outside this module knows SQL or a database driver.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::Millis;
use crate::domain::{AckOutcome, AckStatus, AgencyId, ConsignmentState, CountryCode, DeliveryStatus, DocumentType, SchemaVersion, Ucr};

#[cfg(test)]
pub mod conformance;
mod ledger;
pub mod postgres;
pub mod sqlite;
mod writer;

pub use ledger::*;

/// Why the store could not do what was asked: a failure, never a refusal. The rules answer a
/// refusal as a value of their own (`Result<Result<T, Refused>, StoreError>`), and what a refused
/// work wrote is undone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the store is not available: {0}")]
    Unavailable(String),
    /// The database failed; the driver's error is the source.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// A future returned by the store; boxed so the trait can be used as `dyn Store`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A document's delivery to one agency, as routing and risk selection decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDelivery {
    pub agency: AgencyId,
    pub topic: String,
    /// The routing rule that sends it.
    pub rule: String,
    /// Its channel and why (`crate::risk::Selection`, as JSON): the agency's to read.
    pub selection: Option<String>,
}

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
    /// 1 for a document as first submitted; an amendment is the version after the one it amends.
    pub version: i64,
    /// The version this one amends (`crate::lifecycle`).
    pub amends: Option<Uuid>,
    /// What it says of its consignment's segment (`crate::indicators`).
    pub dims: DocumentDims,
    /// The keys its receipt is signed with (`crate::receipts`); none: unsigned (tests).
    pub seal: ReceiptSeal,
    /// Where it goes: each agency, as routing decided (and selection, when already chosen).
    pub deliveries: Vec<PlannedDelivery>,
    /// Chooses each delivery's channel at commit, for the deliveries without one
    /// (`crate::risk::RiskPlan`); none: no selection (tests, the simulator).
    pub risk: Option<crate::risk::RiskPlan>,
    /// Whether the broker was reachable when the document was accepted; the receipt says so
    /// when it was not, so the submitter knows its deliveries wait for the broker.
    pub broker_available: bool,
    /// The outbox backlog is at its bound: a repeat of an accepted document still gets its
    /// first receipt, a new document is refused (`crate::submission::Refused::BacklogFull`).
    pub backlog_full: bool,
    /// The region's rules on changing a consignment, which the store work applies.
    pub rules: ChangeRules,
}

/// The region's rules on a consignment's changes, carried to the transaction that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRules {
    /// `gateway.change_after_release`: a released consignment still takes new documents,
    /// amendments and withdrawals. Off, a released consignment stays released: nothing is added
    /// to it and none of its documents changes, so no later document reopens a released one.
    pub after_release: bool,
    /// `gateway.max_document_versions`: the most documents one sender keeps of one type in one
    /// consignment, every version (amendment) and every replacement of a withdrawn one counted.
    pub max_versions: u32,
}

impl Default for ChangeRules {
    fn default() -> Self {
        ChangeRules { after_release: false, max_versions: crate::config::DEFAULT_MAX_DOCUMENT_VERSIONS }
    }
}

/// The keys a receipt will be signed with, carried to the transaction that writes it awaiting
/// its signature (`crate::receipts`: the answer signs it, not the writer).
#[derive(Clone, Default)]
pub struct ReceiptSeal(pub Option<crate::receipts::Sealer>);

impl std::fmt::Debug for ReceiptSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "ReceiptSeal(signing)" } else { "ReceiptSeal(none)" })
    }
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
    /// 1, then 2, 3, ... for each amendment.
    pub version: i64,
    /// The document this version amends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amends: Option<Uuid>,
    pub consignment_state: ConsignmentState,
    pub deliveries: Vec<ReceiptDelivery>,
    /// Hash of the submission's record in the audit log (`ventanilla audit verify`).
    pub audit_hash: String,
    /// SHA-256 of the document as sent (its canonical text), which the signature covers.
    pub body_sha256: String,
    /// A JWS (`EdDSA`) over every other member, by the gateway's key (`/.well-known/jwks.json`;
    /// `ventanilla receipt verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
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
    /// The document's payload as sent; a notice's own JSON body when `notice` is set.
    pub payload: String,
    /// The document's version (1 unless it is an amendment).
    pub version: i64,
    /// The document an amendment amends: its agencies learn which one it replaces.
    pub amends: Option<Uuid>,
    /// Set when this is a notice about the document (its withdrawal, an answer to a query),
    /// not the document itself.
    pub notice: Option<OutboundNotice>,
    /// Attempts the broker refused so far.
    pub attempts: u32,
    /// Where an agency's stream (`after=`) sees it: grows with commit order; 0 until the store
    /// has given it one (only the relay reads such rows).
    pub position: i64,
    /// Its risk selection as JSON (`crate::risk::Selection`): the agency's to read.
    pub selection: Option<String>,
}

/// A notice to an agency about a document it received: its own event id, what it says, when.
#[derive(Debug, Clone)]
pub struct OutboundNotice {
    pub id: Uuid,
    pub kind: NoticeKind,
    pub at: Millis,
}

/// What a notice to an agency says (`crate::lifecycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The document was withdrawn, or amended into a version no longer routed to the agency.
    Withdrawn,
    /// The trader answered the agency's query.
    QueryAnswered,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Withdrawn => "withdrawn",
            NoticeKind::QueryAnswered => "query-answered",
        }
    }
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "withdrawn" => Ok(NoticeKind::Withdrawn),
            "query-answered" => Ok(NoticeKind::QueryAnswered),
            other => Err(StoreError::Corrupt(format!("unknown notice kind {other:?}"))),
        }
    }
    /// The CloudEvents type its agencies receive it as.
    pub fn event_type(self) -> &'static str {
        match self {
            NoticeKind::Withdrawn => "org.ventanilla.document.withdrawn",
            NoticeKind::QueryAnswered => "org.ventanilla.query.answered",
        }
    }
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
    /// What the agency's inspection found, when its answer says.
    pub inspection: Option<Inspection>,
    /// The document's facts as risk learning reads them (`crate::risk::history::FindingFacts`,
    /// JSON), kept with a finding so that training reads no document.
    pub finding_facts: Option<String>,
    /// `http`, `kafka`, or `standing-instruction` (a de minimis release, `crate::submission`).
    pub source: &'static str,
    /// Who answered, for the audit log: the participant id over HTTP, `kafka:<agency>` from
    /// the ack topic.
    pub by: String,
    pub at: Millis,
}

/// What an agency's inspection of a delivered document found, as its answer said: what risk
/// profiling learns from.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inspection {
    /// Whether the goods or documents were inspected.
    pub performed: bool,
    /// What it found, when performed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// Duties and taxes recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<f64>,
    /// The agency's own code for the irregularity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// What an inspection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Finding {
    Irregularity,
    None,
}

impl Finding {
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Irregularity => "irregularity",
            Finding::None => "none",
        }
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "irregularity" => Ok(Finding::Irregularity),
            "none" => Ok(Finding::None),
            other => Err(format!("unknown finding {other:?}")),
        }
    }
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
    /// Where cursors (event streams, webhooks) see it: grows with commit order; 0 until the
    /// store has given it one (only the status relay reads such rows).
    pub position: i64,
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
    /// Each document's latest version and the few versions just before it (oldest first); the
    /// earlier ones of a long history are paged (`earlierVersions`).
    pub documents: Vec<DocumentView>,
    /// Documents with earlier versions this view does not show, each with the link to the next
    /// page of them (empty when it shows every version).
    pub earlier_versions: Vec<EarlierVersions>,
    pub time_release: TimeRelease,
    /// Participants that submitted its documents (for authorization; not shown).
    #[serde(skip)]
    pub senders: Vec<String>,
}

/// A document whose earlier versions a view does not all show.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlierVersions {
    /// The document's first version, whose id names the document's history (`versionsOf`).
    pub document_id: Uuid,
    /// Its latest version.
    pub latest_document_id: Uuid,
    /// Versions it has, all told.
    pub versions: i64,
    /// Versions earlier than those shown.
    pub not_shown: i64,
    /// The next page of them: `GET` this path.
    pub next: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    pub document_id: Uuid,
    /// Its first version's id: the document's history (not shown).
    #[serde(skip)]
    #[schemars(skip)]
    pub chain: Uuid,
    pub document_type: DocumentType,
    pub schema_version: String,
    pub origin: String,
    pub destination: String,
    pub sender: String,
    pub submitted_at: String,
    /// 1, then 2, 3, ... for each amendment.
    pub version: i64,
    /// `current`, `superseded` (a later version amends it) or `withdrawn`. The consignment's
    /// state follows its current documents only.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amends: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
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
    /// While the agency's query is open: `trader` until the trader answers it, then `agency`
    /// until the agency answers again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<&'static str>,
    /// Its channel and why (`crate::risk::Selection`): all of it for its agency and operators;
    /// for the submitter only the channel, once the agency has answered (`crate::access`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<serde_json::Value>,
    /// What the agency's inspection found (its agency and operators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inspection: Option<Inspection>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub status: String,
    pub at: String,
    /// `at` in milliseconds, for the rules that measure time (`crate::indicators`).
    #[serde(skip)]
    #[schemars(skip)]
    pub at_ms: Millis,
    /// `gateway`, `broker`, `http`, `kafka` or `standing-instruction`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it changed the delivery (`applied`) or not (`duplicate`, `late`, `stale`).
    pub outcome: String,
}

impl HistoryEntry {
    /// A document's delivery's first entry: pending, routed by `rule` when the document was
    /// accepted. Not stored as a row: the delivery itself says it (its rule and creation time).
    pub fn routed(rule: &str, at: Millis) -> HistoryEntry {
        HistoryEntry {
            status: "pending".into(),
            at: crate::clock::rfc3339(at),
            at_ms: at,
            source: "gateway".into(),
            reason: Some(format!("routed by rule: {rule}")),
            outcome: "applied".into(),
        }
    }

    /// A delivery's history from its stored entries (oldest first) and, for a document's
    /// delivery, its rule and creation time: the routing first, unless a store written before
    /// it was implied keeps it as a row.
    pub fn history(routing: Option<(&str, Millis)>, stored: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
        let kept = stored.first().is_some_and(|e| e.status == "pending" && e.source == "gateway");
        match routing {
            Some((rule, at)) if !kept => std::iter::once(HistoryEntry::routed(rule, at)).chain(stored).collect(),
            _ => stored,
        }
    }
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

/// What a work decided, boxed: its value (what it wrote is kept), or a refusal (what it wrote is
/// undone). `write_with`, `decide_with` and `read_with` (on `dyn Store`) unbox it.
pub type Decided = Result<Box<dyn Any + Send>, Box<dyn Any + Send>>;

/// Work on the rows of one transaction (so [`Store`] stays usable as `dyn Store`).
pub type Work = Box<dyn FnOnce(&mut dyn Ledger) -> Result<Decided, StoreError> + Send>;

/// What a document's acceptance reads to judge it (`crate::submission`): earlier documents by
/// key and by identity, the consignment, how many versions the sender has of the type. A store
/// that pays a round trip per read fetches these for a whole group of writes at once.
#[derive(Debug, Clone)]
pub struct AcceptanceLookup {
    pub sender: String,
    pub key: Option<String>,
    pub ucr: Ucr,
    pub document_type: DocumentType,
    pub body_sha256: String,
    /// How many deliveries it would have: a store may take their ids with the lookups.
    pub deliveries: usize,
}

impl AcceptanceLookup {
    pub fn of(doc: &NewDocument) -> AcceptanceLookup {
        AcceptanceLookup {
            sender: doc.sender.clone(),
            key: doc.idempotency_key.clone(),
            ucr: doc.ucr.clone(),
            document_type: doc.document_type.clone(),
            body_sha256: doc.body_sha256.clone(),
            deliveries: doc.deliveries.len(),
        }
    }
}

/// What a write decides on: writes naming the same subject run one after another, whichever
/// store holds the rows (the isolation in `ledger.rs`). A store with one writer has nothing more
/// to do; a store that several gateways write at once serializes them per subject, not globally.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Subject {
    /// A consignment: its documents, deliveries, answers, state and status events.
    Consignment(Ucr),
    /// A submitter's `Idempotency-Key`, which may span consignments.
    IdempotencyKey { sender: String, key: String },
    /// The region's risk rules: one change at a time, across gateways.
    RiskRules,
    /// The region's risk models: one trained model kept at a time, across gateways.
    RiskModels,
}

impl Subject {
    /// The subject as one text, the same on every gateway (a store's lock name).
    pub fn key(&self) -> String {
        match self {
            Subject::Consignment(ucr) => format!("consignment {ucr}"),
            Subject::IdempotencyKey { sender, key } => format!("idempotency-key {sender} {key}"),
            Subject::RiskRules => "risk-rules".to_owned(),
            Subject::RiskModels => "risk-models".to_owned(),
        }
    }
}

/// A store: runs work in transactions (see `ledger.rs` for the contract).
pub trait Store: Send + Sync + 'static {
    /// Runs `work` in a write transaction and answers once what it wrote is durable (or failed).
    /// `work` reads and writes only rows of `subjects` to decide (and rows no rule reads back
    /// to decide: history, audit records, single-statement updates).
    /// `lookups` say what the work's documents will be judged on: a store may fetch it for the
    /// whole group of works at once (the work reads it through the [`Ledger`] all the same).
    fn write(&self, subjects: Vec<Subject>, lookups: Vec<AcceptanceLookup>, work: Work) -> StoreFuture<'_, Decided>;
    /// Runs `work` on committed rows; it must not write.
    fn read(&self, work: Work) -> StoreFuture<'_, Decided>;
    /// Answers when the store can read and write.
    fn ping(&self) -> StoreFuture<'_, ()>;
}

impl dyn Store {
    /// [`Store::write`] of a work that refuses nothing, with its own result type.
    pub async fn write_with<T, F>(&self, subjects: Vec<Subject>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Ledger) -> Result<T, StoreError> + Send + 'static,
    {
        let decided = self.write(subjects, Vec::new(), Box::new(move |l| Ok(Ok(Box::new(work(l)?) as Box<dyn Any + Send>)))).await?;
        decided.map_or_else(|_| Err(mismatch()), unbox)
    }

    /// [`Store::write`] of a work that may refuse (what it wrote is then undone), with its own
    /// result and refusal types; `lookups` say what its documents will be judged on.
    pub async fn decide_with<T, R, F>(&self, subjects: Vec<Subject>, lookups: Vec<AcceptanceLookup>, work: F) -> Result<Result<T, R>, StoreError>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: FnOnce(&mut dyn Ledger) -> Result<Result<T, R>, StoreError> + Send + 'static,
    {
        let work: Work = Box::new(move |l| {
            Ok(match work(l)? {
                Ok(t) => Ok(Box::new(t) as Box<dyn Any + Send>),
                Err(r) => Err(Box::new(r) as Box<dyn Any + Send>),
            })
        });
        match self.write(subjects, lookups, work).await? {
            Ok(t) => unbox(t).map(Ok),
            Err(r) => unbox(r).map(Err),
        }
    }

    /// [`Store::read`] with the work's own result type.
    pub async fn read_with<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Ledger) -> Result<T, StoreError> + Send + 'static,
    {
        let decided = self.read(Box::new(move |l| Ok(Ok(Box::new(work(l)?) as Box<dyn Any + Send>)))).await?;
        decided.map_or_else(|_| Err(mismatch()), unbox)
    }
}

fn mismatch() -> StoreError {
    StoreError::Corrupt("a store answered a work with a value of another type".into())
}

/// The work's result, of the type it was boxed from (a store hands back what the work returned).
fn unbox<T: 'static>(value: Box<dyn Any + Send>) -> Result<T, StoreError> {
    value.downcast::<T>().map(|t| *t).map_err(|_| mismatch())
}

impl std::fmt::Debug for WebhookRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRegistered").field("webhook", &self.webhook).field("secret", &"***").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::HistoryEntry;

    fn stored(status: &str, source: &str) -> HistoryEntry {
        HistoryEntry { status: status.into(), at: String::new(), at_ms: 7, source: source.into(), reason: None, outcome: "applied".into() }
    }

    #[test]
    fn a_document_delivery_begins_with_its_routing_once() {
        let history = HistoryEntry::history(Some(("beef", 5)), vec![stored("dispatched", "broker")]);
        let steps: Vec<(&str, &str, Option<&str>, i64)> =
            history.iter().map(|e| (e.status.as_str(), e.source.as_str(), e.reason.as_deref(), e.at_ms)).collect();
        assert_eq!(steps, [("pending", "gateway", Some("routed by rule: beef"), 5), ("dispatched", "broker", None, 7)]);
        // A store written before the routing was implied keeps it as its first row: not twice.
        let kept = HistoryEntry::history(Some(("beef", 5)), vec![stored("pending", "gateway"), stored("dispatched", "broker")]);
        assert_eq!(kept.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), ["pending", "dispatched"]);
        // A notice's delivery has no routing: its stored entries alone.
        let notice = HistoryEntry::history(None, vec![stored("withdrawn", "http")]);
        assert_eq!(notice.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), ["withdrawn"]);
        // Requeued by an operator, a delivery's later pending entry is its own.
        let requeued = HistoryEntry::history(Some(("beef", 5)), vec![stored("failed", "gateway"), stored("pending", "operator")]);
        assert_eq!(requeued.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), ["pending", "failed", "pending"]);
    }

    #[test]
    fn a_released_migration_is_never_edited() {
        // refinery checks each migration's text against the one a store ran: an edited one
        // stops every store it ran on. migrations/released.sha256 holds each as it was released.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let manifest = std::fs::read_to_string(dir.join("released.sha256")).unwrap();
        let released: Vec<(&str, &str)> = manifest
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let mut words = l.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(hash), Some(path), None) => (hash, path.trim_start_matches('*')),
                    _ => panic!("a line of migrations/released.sha256 is not `HASH  PATH`: {l:?}"),
                }
            })
            .collect();
        for (hash, path) in &released {
            let text = std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path}, released, is gone: {e}"));
            assert_eq!(crate::digest::sha256_hex(&text), *hash, "{path} was edited after its release: restore it, and write a new migration instead");
        }
        // Every store's migrations (refinery's names, `V<n>__<name>.sql`), each with its line,
        // numbered from 1 without a gap.
        for store in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
            let name = store.file_name().unwrap().to_string_lossy().into_owned();
            let mut versions = Vec::new();
            for file in std::fs::read_dir(&store).unwrap() {
                let file = file.unwrap().file_name().to_string_lossy().into_owned();
                let Some(version) = file.strip_prefix('V').and_then(|v| v.split_once("__")).filter(|_| file.ends_with(".sql")) else { continue };
                versions.push(version.0.parse::<u32>().unwrap_or_else(|_| panic!("{name}/{file}: a migration's version is a number")));
                let path = format!("{name}/{file}");
                assert!(released.iter().any(|(_, p)| *p == path), "{path} has no line in migrations/released.sha256: add `sha256sum {path}`'s");
            }
            versions.sort_unstable();
            assert_eq!(versions, (1..=versions.len() as u32).collect::<Vec<_>>(), "{name}'s migrations run from 1 without a gap");
        }
    }
}
