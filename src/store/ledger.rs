//! The store's contract: the row operations a store offers inside one transaction ([`Ledger`]),
//! and how work reaches a transaction ([`super::Store`]). The rules that decide outcomes
//! (replay or conflict, ownership, what an answer does, the consignment's state, receipts, what
//! the audit log records) live upstairs, in `submission`, `acknowledgment`, `tracking`,
//! `outbox`, `webhooks` and `audit`, and read the same whichever database holds the rows.
//!
//! **Atomicity.** Work given to [`super::Store::write`] runs in one transaction: either all it
//! wrote is committed, or nothing. Work that refuses (its answer's `Err`), fails (a
//! [`StoreError`]) or panics leaves nothing, and the other works of its commit stand unless the
//! database itself ended the transaction. A store may run several works in one commit (group
//! commit): each caller is answered only after that commit, and a failed commit fails every work
//! in it.
//!
//! **Group I/O.** A store may send a work's writes later than the work makes them (with its next
//! read, or with the commit) and answer its reads from what it fetched for the whole group at the
//! group's start ([`super::AcceptanceLookup`]), as long as every read sees every write made
//! before it in the transaction: the rules cannot tell. The PostgreSQL store does
//! (`postgres/group.rs`); the embedded one has no round trip to save.
//!
//! **Isolation.** A write names the subjects it decides on ([`super::Subject`]: consignments,
//! idempotency keys). Works sharing a subject run one after another (serializable in effect
//! for the subject's rows): a rule may read a consignment's rows and write on what it read
//! without another work changing them in between. Works with no subject in common may run at
//! once on a store with several writers; what they may both touch is held by single statements
//! (a pending delivery becomes dispatched only if still pending) or by constraints (a UCR's
//! owner, an idempotency key, the webhook limit, a claim). The embedded store has one writer
//! and needs no more; a store with several writers serializes per subject, never globally.
//!
//! **Order.** Deliveries and status events have a `position`, given at or after commit, such
//! that a row committed after another was given its position gets a higher one, as cursors see
//! them (`agency_deliveries`, `status_events_after`, `latest_status_event`): a
//! cursor never skips a row committed after a later one it already saw. A row may get its
//! position a little after its commit (the PostgreSQL store gives them after commit, in commit
//! order); until then no cursor sees it. The embedded store's positions are its ids.
//!
//! **Audit.** Each writer appends to an audit chain of its own (`audit_chain`), so appending
//! never waits for another writer; `crate::audit` anchors the chains together.
//!
//! **Reads.** Work given to [`super::Store::read`] only reads; it sees committed rows only.

use uuid::Uuid;

use serde::Serialize;

use super::*;

/// The release-time facts of some consignments, and their agencies' parts, each with its
/// consignment's UCR (what the indicators' index is rebuilt and refreshed from).
pub type ReleaseTimeFacts = (Vec<ConsignmentReleaseTimes>, Vec<(Ucr, AgencyReleaseTimes)>);

/// A set of risk rules an operator put at run time (`crate::risk`), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRuleSet {
    /// 1, 2, 3... in the order the sets were put, across every gateway of the store.
    pub version: i64,
    pub at: Millis,
    /// The operator who put it.
    pub changed_by: String,
    /// Why, in the operator's words.
    pub reason: String,
    /// The rules, as JSON in the region file's terms (`crate::config::RiskRuleConfig`).
    pub rules: String,
}

/// A finding risk learns from: what an inspection found, when, and its document's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRecord {
    pub delivery_id: i64,
    pub at: Millis,
    pub irregular: bool,
    /// `crate::risk::history::FindingFacts` as JSON.
    pub facts: String,
}

/// A delivery's selection and what its inspection found, for risk's performance figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionOutcome {
    pub agency: AgencyId,
    /// When the delivery was made (its document accepted).
    pub at: Millis,
    /// `crate::risk::Selection` as JSON.
    pub selection: String,
    /// What the agency's inspection found, when its answer said (performed with a finding).
    pub finding: Option<Finding>,
    pub revenue: Option<f64>,
}

/// A trained risk model, as stored (`crate::risk::model`).
#[derive(Debug, Clone, PartialEq)]
pub struct RiskModelRecord {
    pub version: i64,
    pub trained_at: Millis,
    pub trained_by: String,
    pub live: bool,
    /// The model, its training window and its validation figures, as JSON.
    pub model: String,
}

/// A record of the audit log, as stored (`crate::audit` computes and checks its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// The chain it belongs to: one per writer (`crate::audit`).
    pub chain: String,
    /// Its position in its chain, from 1.
    pub seq: i64,
    pub at: Millis,
    pub participant: String,
    pub action: String,
    pub subject: String,
    /// `detail` as JSON text, exactly as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A chain's last record, as a new chain anchors it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChainHead {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
}

/// A document accepted earlier, as a resend is compared with it.
#[derive(Debug, Clone)]
pub struct EarlierDocument {
    pub id: Uuid,
    /// SHA-256 of its request body: the same body is a replay, another one a conflict.
    pub body_sha256: String,
    /// Its first receipt, as given (JSON text).
    pub receipt: String,
}

/// What an answer needs to know of its delivery.
#[derive(Debug, Clone)]
pub struct DeliveryState {
    pub id: i64,
    pub status: DeliveryStatus,
    pub first_answer_at: Option<Millis>,
    /// When it was routed (the time-release figures count from here).
    pub routed_at: Millis,
    /// Whether its document is current (neither amended since nor withdrawn).
    pub document_current: bool,
}

/// A delivery's place: what audit records and status events name.
#[derive(Debug, Clone)]
pub struct DeliveryPlace {
    pub id: i64,
    pub document_id: String,
    pub ucr: Ucr,
    pub agency: String,
    pub topic: String,
}

/// One line of a delivery's history.
#[derive(Debug, Clone)]
pub struct DeliveryEvent<'a> {
    pub status: &'a str,
    pub at: Millis,
    /// `gateway`, `broker`, `http`, `kafka` or `operator`.
    pub source: &'a str,
    pub reason: Option<&'a str>,
    /// `applied`, `duplicate`, `late` or `stale`.
    pub outcome: &'a str,
}

/// A consignment's own row.
#[derive(Debug, Clone)]
pub struct ConsignmentRecord {
    pub state: ConsignmentState,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub released_at: Option<Millis>,
}

/// A document of a consignment, as its view shows it.
#[derive(Debug, Clone)]
pub struct DocumentRecord {
    pub id: Uuid,
    pub document_type: DocumentType,
    pub schema_version: String,
    pub origin: String,
    pub destination: String,
    pub sender: String,
    pub submitted_at: Millis,
    pub version: i64,
    pub amends: Option<Uuid>,
    /// The version that amends it, when one does.
    pub superseded_by: Option<Uuid>,
    pub withdrawn_at: Option<Millis>,
    pub dims: DocumentDims,
    /// Its first version's id: every version of a document (it and its amendments) shares it.
    pub chain: Uuid,
}

/// One document's versions in a consignment: the one first submitted and its amendments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentChain {
    /// The first version's id.
    pub chain: Uuid,
    /// The latest version's id and number.
    pub latest: Uuid,
    pub latest_version: i64,
    /// How many versions it has.
    pub versions: i64,
}

impl DocumentRecord {
    /// Neither amended by a later version nor withdrawn: the consignment's state follows it,
    /// and it takes answers, amendments, responses and a withdrawal.
    pub fn is_current(&self) -> bool {
        self.superseded_by.is_none() && self.withdrawn_at.is_none()
    }
}

/// What a document says of its consignment's segment, for the release-time indicators
/// (`crate::indicators`): read from its payload once, when it is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentDims {
    /// Its `modeOfTransport`.
    pub transport_mode: Option<String>,
    /// The HS chapter (two digits) of its first goods line by chapter order.
    pub hs_chapter: Option<String>,
    /// Its border post: the `crossingPoint`'s UN/LOCODE (or name).
    pub border_post: Option<String>,
}

/// A consignment's release-time facts (`crate::indicators`), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsignmentReleaseTimes {
    pub ucr: Ucr,
    /// Its opener: the trader whose indicators it counts in.
    pub owner: String,
    /// Its first submission.
    pub lodged_at: Millis,
    /// When the goods arrived (`crate::indicators` says how it is known), if known.
    pub arrived_at: Option<Millis>,
    pub released_at: Option<Millis>,
    /// When it was released or refused.
    pub decided_at: Option<Millis>,
    /// `open`, `released`, `refused` or `withdrawn`.
    pub outcome: String,
    /// Its lead document's type (a declaration's when it has one).
    pub document_type: String,
    pub origin: String,
    pub destination: String,
    pub dims: DocumentDims,
    /// `with-hold`, `with-query` or `without` (neither hold nor query).
    pub channel: String,
    /// Time any agency held the goods (overlaps counted once).
    pub hold_ms: i64,
    /// Time a query waited for the trader, then for the agency (overlaps counted once).
    pub query_trader_ms: i64,
    pub query_agency_ms: i64,
    /// The strictest channel risk selection gave its current deliveries (`red`, `yellow`,
    /// `green`), or `unselected`.
    pub risk_channel: String,
    /// What it took in paperwork (WTO TFA Art. 10.1 and 10.4: `crate::indicators::tfa`); `None`
    /// in facts an earlier version of the gateway wrote, until they are computed again
    /// (`crate::indicators::backfill`).
    pub formalities: Option<Formalities>,
}

/// A consignment's formalities, as counted for the TFA monitor (`crate::indicators::tfa`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Formalities {
    /// Documents submitted for it, each counted once whatever its versions (withdrawn ones too).
    pub documents: i64,
    /// Versions that amended an earlier one.
    pub amendments: i64,
    /// Queries its agencies put to the trader (applied `query` answers).
    pub queries: i64,
    /// Submissions that answered a rejection: a version amending a rejected one, or a rejected
    /// version withdrawn and replaced by a document of its type submitted after the withdrawal
    /// (once per withdrawn version).
    pub resubmissions: i64,
}

/// One agency's part in a consignment (`crate::indicators`), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyReleaseTimes {
    pub agency: AgencyId,
    /// When its first document of the consignment was routed to it.
    pub routed_at: Millis,
    pub first_answer_at: Option<Millis>,
    /// When its last current delivery got its final answer (none while one has not).
    pub decided_at: Option<Millis>,
    /// `released` or `rejected`, once decided.
    pub decision: Option<String>,
    pub hold_ms: i64,
    pub query_trader_ms: i64,
    pub query_agency_ms: i64,
    /// How risk management treated its part (WTO TFA Art. 7.4: `crate::indicators::tfa`);
    /// `None` in facts an earlier version of the gateway wrote, until they are computed again.
    pub selectivity: Option<AgencySelectivity>,
}

impl Formalities {
    /// From its four columns, as both stores keep them: none when any is NULL (not computed yet).
    pub fn from_columns(documents: Option<i64>, amendments: Option<i64>, queries: Option<i64>, resubmissions: Option<i64>) -> Option<Self> {
        Some(Formalities { documents: documents?, amendments: amendments?, queries: queries?, resubmissions: resubmissions? })
    }
}

/// How risk management treated an agency's part in a consignment. Its words are those of a
/// closed set ([`SELECTED_CHANNELS`], [`SELECTION_SOURCES`], [`FINDINGS`]): read from the store,
/// they allocate nothing (a gateway's index holds millions of parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgencySelectivity {
    /// The strictest channel selection gave any of its deliveries, every version's (`red`: the
    /// goods inspected; `yellow`: the documents checked; `green`), or `unselected`. (The
    /// consignment's `risk_channel` is its current deliveries' only.)
    pub channel: &'static str,
    /// What chose that channel: `mandatory`, `rule`, `model`, `random` or `none`.
    pub source: &'static str,
    /// What the inspections of the deliveries so selected found, as its answers said:
    /// `irregularity` when any found one, `none` when performed and none did; `None` when none
    /// was reported performed.
    pub finding: Option<&'static str>,
    /// Whether a standing instruction (a de minimis release) gave its decision.
    pub standing_instruction: bool,
}

/// The channels an agency's part is kept with.
pub const SELECTED_CHANNELS: [&str; 4] = ["red", "yellow", "green", "unselected"];
/// The sources of a selection.
pub const SELECTION_SOURCES: [&str; 5] = ["mandatory", "rule", "model", "random", "none"];
/// What inspections found.
pub const FINDINGS: [&str; 2] = ["irregularity", "none"];

impl AgencySelectivity {
    /// From its four columns, as both stores keep them (`standing_instruction` as 0 or 1): none
    /// when the channel, its source or the flag is NULL (not computed yet); an error for a word
    /// outside its set.
    pub fn from_columns(channel: Option<String>, source: Option<String>, finding: Option<String>, standing: Option<i64>) -> Result<Option<Self>, String> {
        let known = |set: &[&'static str], v: &str| set.iter().find(|k| **k == v).copied().ok_or_else(|| format!("{v:?} is none of {set:?}"));
        let (Some(channel), Some(source), Some(standing)) = (channel, source, standing) else { return Ok(None) };
        Ok(Some(AgencySelectivity {
            channel: known(&SELECTED_CHANNELS, &channel)?,
            source: known(&SELECTION_SOURCES, &source)?,
            finding: finding.map(|f| known(&FINDINGS, &f)).transpose()?,
            standing_instruction: standing != 0,
        }))
    }
}

/// Which release-time facts a reader asks for: consignments lodged in `[from, to)`, of one
/// owner or with one agency when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTimesQuery {
    pub from: Millis,
    pub to: Millis,
    pub owner: Option<String>,
    pub agency: Option<AgencyId>,
}

/// A document as the rules of its life after acceptance read it (`crate::lifecycle`).
#[derive(Debug, Clone)]
pub struct StoredDocument {
    pub record: DocumentRecord,
    pub ucr: Ucr,
    /// Its payload as sent (JSON text).
    pub payload: String,
    /// SHA-256 of its request body (`EarlierDocument::body_sha256`).
    pub body_sha256: String,
}

/// A delivery of a document, as the consignment's view shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub agency: AgencyId,
    pub topic: String,
    pub status: DeliveryStatus,
    pub routed_at: Millis,
    pub dispatched_at: Option<Millis>,
    pub first_answer_at: Option<Millis>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Its risk selection as JSON (`crate::risk::Selection`), when one was made.
    pub selection: Option<String>,
    /// What its agency's inspection found, when its answer said.
    pub inspection: Option<Inspection>,
}

/// A webhook's row, before it is shown.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub url: String,
    pub created_at: Millis,
    pub cursor: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Millis,
}

/// The rows of one transaction, as nine traits by concern. Every method reads or writes rows
/// and nothing else: no method decides an outcome. `Result::Err` is a failure of the store
/// (never a refusal), and the work that meets one must give up (its writes are not committed).
pub trait Ledger: Consignments + IndicatorFacts + Answers + Outbox + StatusEvents + WebhookRegistry + AuditLog + RiskRuleSets + RiskLearning {}

impl<T: Consignments + IndicatorFacts + Answers + Outbox + StatusEvents + WebhookRegistry + AuditLog + RiskRuleSets + RiskLearning + ?Sized> Ledger for T {}

/// The documents of consignments, their consignments and their deliveries as routed.
pub trait Consignments {
    /// The document `sender` sent with `key`, if any.
    fn document_by_key(&mut self, sender: &str, key: &str) -> Result<Option<EarlierDocument>, StoreError>;
    /// A live document of `sender` for `ucr` of `document_type` (of a history none of whose
    /// versions was withdrawn): one with the body `body_sha256` if there is one, else the earliest.
    fn document_by_identity(&mut self, sender: &str, ucr: &Ucr, document_type: &DocumentType, body_sha256: &str)
        -> Result<Option<EarlierDocument>, StoreError>;
    /// Whether `ucr` exists and `sender` has no document in it.
    fn consignment_of_another(&mut self, ucr: &Ucr, sender: &str) -> Result<bool, StoreError>;
    /// Creates the consignment in `state`, opened by `opened_by`, unless it exists; whether it
    /// was created. A store with several writers also holds every document of a consignment
    /// to its opener by constraint (the check of `consignment_of_another` alone could race).
    fn open_consignment(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis, opened_by: &str) -> Result<bool, StoreError>;
    fn insert_document(&mut self, doc: &NewDocument) -> Result<(), StoreError>;
    /// A new pending delivery, routed by its rule at `at`: that routing is its history's first
    /// entry ([`HistoryEntry::routed`]), with no row of its own. Its id, which grows with
    /// commit order.
    fn insert_delivery(&mut self, document_id: Uuid, d: &PlannedDelivery, at: Millis) -> Result<i64, StoreError>;
    fn add_delivery_event(&mut self, delivery_id: i64, event: DeliveryEvent<'_>) -> Result<(), StoreError>;
    /// Keeps a document's first receipt (JSON text).
    fn insert_receipt(&mut self, document_id: Uuid, receipt: &str) -> Result<(), StoreError>;
    /// The statuses of the deliveries of the current documents of `ucr` (neither superseded
    /// nor withdrawn; notices are not deliveries of a document).
    fn consignment_delivery_statuses(&mut self, ucr: &Ucr) -> Result<Vec<DeliveryStatus>, StoreError>;
    fn consignment(&mut self, ucr: &Ucr) -> Result<Option<ConsignmentRecord>, StoreError>;
    /// Sets the consignment's state; `released_at` is `at` when it is released, else none.
    fn set_consignment_state(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis) -> Result<(), StoreError>;
    /// Notes a change that left the state as it was.
    fn touch_consignment(&mut self, ucr: &Ucr, at: Millis) -> Result<(), StoreError>;
    /// The consignment's documents, oldest first.
    fn documents_of(&mut self, ucr: &Ucr) -> Result<Vec<DocumentRecord>, StoreError>;
    /// The consignment's documents as histories of versions, by first version (oldest first),
    /// read from an index: no document row, no payload.
    fn document_chains(&mut self, ucr: &Ucr) -> Result<Vec<DocumentChain>, StoreError>;
    /// The versions of the document whose first version is `chain` (of `ucr`) numbered below
    /// `below`, latest first, at most `limit`, found by index and read without their payloads.
    fn chain_versions(&mut self, ucr: &Ucr, chain: Uuid, below: i64, limit: usize) -> Result<Vec<DocumentRecord>, StoreError>;
    /// How many documents `sender` has of `document_type` in `ucr`, every version counted,
    /// from an index.
    fn identity_versions(&mut self, sender: &str, ucr: &Ucr, document_type: &DocumentType) -> Result<u64, StoreError>;
    /// Each agency the documents of `ucr` were routed to (notices aside): when the first was
    /// routed to it and its first answer to any, in the order of its first delivery.
    fn agency_first_times(&mut self, ucr: &Ucr) -> Result<Vec<(AgencyId, Millis, Option<Millis>)>, StoreError>;
    /// A document with its payload, if it exists.
    fn document(&mut self, id: Uuid) -> Result<Option<StoredDocument>, StoreError>;
    /// A document's first receipt (JSON text), if it has one.
    fn receipt_of(&mut self, id: Uuid) -> Result<Option<String>, StoreError>;
    /// `old` is amended by `new`: it is no longer current.
    fn supersede(&mut self, old: Uuid, new: Uuid) -> Result<(), StoreError>;
    /// A document is withdrawn at `at`: it is no longer current.
    fn withdraw_document(&mut self, id: Uuid, at: Millis) -> Result<(), StoreError>;
    /// How many documents of `ucr` are current.
    fn current_documents(&mut self, ucr: &Ucr) -> Result<u64, StoreError>;
    /// Keeps a notice about a document (its JSON body, as its agencies receive it).
    fn insert_notice(&mut self, id: Uuid, document_id: Uuid, kind: NoticeKind, body: &str, at: Millis) -> Result<(), StoreError>;
    /// A new pending delivery of a notice to `agency`; its id, as [`Consignments::insert_delivery`].
    fn insert_notice_delivery(&mut self, notice_id: Uuid, document_id: Uuid, agency: &AgencyId, topic: &str, at: Millis)
        -> Result<i64, StoreError>;
    /// A document's deliveries (not its notices'), in id order.
    fn deliveries_of(&mut self, document_id: Uuid) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// A delivery's history, oldest first: a document's delivery begins with its routing
    /// ([`HistoryEntry::history`]), which no caller adds.
    fn history_of(&mut self, delivery_id: i64) -> Result<Vec<HistoryEntry>, StoreError>;
}

/// The release-time facts the indicators are computed from (`crate::indicators`).
pub trait IndicatorFacts {
    /// Replaces a consignment's release-time facts and its agencies', and records the change
    /// (positioned as deliveries are: see **Order**).
    fn save_release_times(&mut self, consignment: &ConsignmentReleaseTimes, agencies: &[AgencyReleaseTimes]) -> Result<(), StoreError>;
    /// The facts of the consignments `q` asks for, in lodgement order.
    fn release_times(&mut self, q: &ReleaseTimesQuery) -> Result<Vec<ConsignmentReleaseTimes>, StoreError>;
    /// The facts of each agency's part in the consignments `q` asks for (of `q.agency` only
    /// when given), with its consignment's, in lodgement order.
    fn agency_release_times(&mut self, q: &ReleaseTimesQuery) -> Result<Vec<(ConsignmentReleaseTimes, AgencyReleaseTimes)>, StoreError>;
    /// The consignments whose facts changed, with positions above `after`, in order (at most
    /// `limit`); a consignment changed several times comes once per change.
    fn release_time_changes_after(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, Ucr)>, StoreError>;
    /// Consignments that have no release-time facts yet (accepted before the indicators
    /// existed), or facts without the TFA monitor's columns (written before it, or by a gateway
    /// of that version: on PostgreSQL such a gateway's update keeps the consignment's earlier
    /// formalities but writes its agencies' rows without theirs), in UCR order after `after`, at
    /// most `limit`.
    fn consignments_without_release_times(&mut self, after: &str, limit: usize) -> Result<Vec<Ucr>, StoreError>;
    /// The latest change's position (0 for none).
    fn latest_release_time_change(&mut self) -> Result<i64, StoreError>;
    /// The facts of `ucrs` (of every consignment when `None`), and their agencies' parts.
    fn release_times_of(&mut self, ucrs: Option<&[Ucr]>) -> Result<ReleaseTimeFacts, StoreError>;
}

/// What an agency's answer reads and changes (`crate::acknowledgment`).
pub trait Answers {
    /// The UCR of a document, if it exists.
    fn document_ucr(&mut self, document_id: Uuid) -> Result<Option<Ucr>, StoreError>;
    /// The delivery of `document_id` to `agency`, if it was routed there (not a notice's).
    fn delivery_to(&mut self, document_id: Uuid, agency: &AgencyId) -> Result<Option<DeliveryState>, StoreError>;
    /// An answer changed the delivery: its new status, its first answer's time (kept if set),
    /// and out of the outbox and the failed list (dispatched at `at` unless it already was).
    /// `received`: the answer shows the agency has the document (its own answer does), so the
    /// delivery needs no publishing; a standing instruction's does not.
    fn record_answer(&mut self, delivery_id: i64, status: DeliveryStatus, at: Millis, received: bool) -> Result<(), StoreError>;
    /// An answer that changed nothing is still the agency's first answer when none came before.
    fn note_first_answer(&mut self, delivery_id: i64, at: Millis) -> Result<(), StoreError>;
    /// What the agency's inspection of the delivery found, as its answer at `at` said; a later
    /// answer's replaces it.
    fn record_inspection(&mut self, delivery_id: i64, inspection: &Inspection, at: Millis, facts: Option<&str>) -> Result<(), StoreError>;
}

/// The deliveries waiting for the broker, the claims of several gateways on them, and the failed ones.
pub trait Outbox {
    /// The oldest deliveries due at `now`, in id order: not yet dispatched, not failed, not
    /// waiting out a retry delay, not behind an earlier delivery of the same topic and UCR
    /// that waits out one or failed, and of no consignment another gateway than `instance`
    /// holds a live claim on.
    fn due_deliveries(&mut self, instance: &str, limit: usize, now: Millis) -> Result<Vec<OutboundDelivery>, StoreError>;
    /// Claims `ucr` for `instance` until `until`: won when unclaimed, already this instance's
    /// (the lease is renewed), or another's whose lease ran out by `now`. Atomic per UCR, also
    /// between gateways racing for it.
    fn claim_consignment(&mut self, ucr: &Ucr, instance: &str, now: Millis, until: Millis) -> Result<bool, StoreError>;
    /// Gives back every claim of `instance` (a gateway that stops), of consignments and
    /// webhooks; how many consignments.
    fn release_claims(&mut self, instance: &str) -> Result<u64, StoreError>;
    /// Live claims `instance` holds at `now`.
    fn claims_held(&mut self, instance: &str, now: Millis) -> Result<u64, StoreError>;
    /// An agency's deliveries with positions above `after`, in order: at most `limit`, and no
    /// more than `max_bytes` of payloads (but always the first), so a page's memory does not grow
    /// with document size.
    fn agency_deliveries(&mut self, agency: &AgencyId, after: i64, limit: usize, max_bytes: usize) -> Result<Vec<OutboundDelivery>, StoreError>;
    /// Deliveries neither dispatched nor failed.
    fn outbox_backlog(&mut self) -> Result<u64, StoreError>;
    /// Where a delivery is, if it exists.
    fn delivery_place(&mut self, delivery_id: i64) -> Result<Option<DeliveryPlace>, StoreError>;
    /// Each pending delivery of `deliveries` (id, when) becomes dispatched then, and where it is
    /// comes back, one answer per delivery in order; `None` for one that was not pending (then
    /// only its dispatch time is filled in, if it had none). One statement for all, where the
    /// store can.
    fn mark_dispatched(&mut self, deliveries: &[(i64, Millis)]) -> Result<Vec<Option<DeliveryPlace>>, StoreError>;
    /// One refused attempt more on a delivery still in the outbox, due again at
    /// `next_attempt_at`; false when it is no longer there.
    fn record_refusal(&mut self, delivery_id: i64, error: &str, next_attempt_at: Millis) -> Result<bool, StoreError>;
    /// A pending delivery still in the outbox becomes failed; false when it was not there.
    fn mark_failed(&mut self, delivery_id: i64, at: Millis, error: &str) -> Result<bool, StoreError>;
    /// `None` for no such delivery, else when it failed (`None` when it has not).
    fn failed_at(&mut self, delivery_id: i64) -> Result<Option<Option<Millis>>, StoreError>;
    /// Failed deliveries, of one agency or all, in id order.
    fn failed_deliveries(&mut self, agency: Option<&AgencyId>) -> Result<Vec<FailedDelivery>, StoreError>;
    /// A failed delivery back in the outbox with no attempts; false when it had not failed.
    fn requeue_failed(&mut self, delivery_id: i64) -> Result<bool, StoreError>;
    /// Deliveries by (agency, status).
    fn delivery_counts(&mut self) -> Result<Vec<(String, String, u64)>, StoreError>;
}

/// Consignment status events: queued, published, and read by cursors.
pub trait StatusEvents {
    /// Queues a status event for the status topic, streams and webhooks (its id grows with
    /// commit order; its position is given as [`Ledger`]'s order says).
    fn queue_status_event(&mut self, ucr: &Ucr, body: &str, at: Millis) -> Result<(), StoreError>;
    /// Status events not yet published, oldest first, of no consignment another gateway than
    /// `instance` holds a live claim on at `now`.
    fn unpublished_status_events(&mut self, instance: &str, limit: usize, now: Millis) -> Result<Vec<StatusEvent>, StoreError>;
    /// The status events `ids` were published at `at`.
    fn mark_status_published(&mut self, ids: &[i64], at: Millis) -> Result<(), StoreError>;
    /// Status events with ids above `after`, in order: all, or of consignments `sender` has a
    /// document in.
    fn status_events_after(&mut self, sender: Option<&str>, after: i64, limit: usize) -> Result<Vec<StatusEvent>, StoreError>;
    /// The latest status event's id (0 for none).
    fn latest_status_event(&mut self) -> Result<i64, StoreError>;
}

/// Registered webhooks and their cursors.
pub trait WebhookRegistry {
    /// Adds a webhook of `participant` unless it has `max` already; whether it was added. Held
    /// by a constraint on a store with several writers (two registrations at once cannot both
    /// take the last place).
    #[allow(clippy::too_many_arguments)]
    fn insert_webhook(&mut self, id: Uuid, participant: &str, url: &str, secret: &str, at: Millis, cursor: i64, max: usize)
        -> Result<bool, StoreError>;
    /// `participant`'s webhooks, oldest first.
    fn webhooks_of(&mut self, participant: &str) -> Result<Vec<WebhookRecord>, StoreError>;
    /// Removes one of `participant`'s webhooks; false when it has none with this id.
    fn delete_webhook(&mut self, participant: &str, id: Uuid) -> Result<bool, StoreError>;
    /// Webhooks whose next attempt is due at `now`, of no live claim of another gateway than
    /// `instance`, soonest first.
    fn due_webhooks(&mut self, instance: &str, now: Millis) -> Result<Vec<WebhookTarget>, StoreError>;
    /// Claims each of `ids` for `instance` until `until`, as [`Outbox::claim_consignment`]
    /// does a UCR; the ids won.
    fn claim_webhooks(&mut self, ids: &[Uuid], instance: &str, now: Millis, until: Millis) -> Result<Vec<Uuid>, StoreError>;
    /// The webhook took every event up to `cursor`: its cursor moves there (never back) and its
    /// failures are cleared; false when it no longer exists.
    fn webhook_delivered(&mut self, id: Uuid, cursor: i64) -> Result<bool, StoreError>;
    fn webhook_failed(&mut self, id: Uuid, error: &str, next_attempt_at: Millis) -> Result<(), StoreError>;
}

/// The audit chains (`crate::audit`).
pub trait AuditLog {
    /// The chain this transaction's writer appends to: one per writer, so that appending never
    /// waits for another writer's commit (`crate::audit`).
    fn audit_chain(&mut self) -> String;
    /// The last record's position and hash in this writer's chain, if any.
    fn audit_head(&mut self) -> Result<Option<(i64, String)>, StoreError>;
    /// The last record of every chain.
    fn audit_heads(&mut self) -> Result<Vec<ChainHead>, StoreError>;
    /// Appends to this writer's chain (`record.chain`).
    fn insert_audit_record(&mut self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Every record, chain by chain (by name), each chain in order.
    fn audit_records(&mut self) -> Result<Vec<AuditRecord>, StoreError>;
}

/// The risk rules operators put at run time: every set kept, the latest the one selected with.
pub trait RiskRuleSets {
    /// Keeps `rules` as the next version after the latest; that version. Written under
    /// `Subject::RiskRules`, so that gateways putting sets at once take turns.
    fn save_risk_rules(&mut self, at: Millis, changed_by: &str, reason: &str, rules: &str) -> Result<i64, StoreError>;
    /// The latest set put, if any.
    fn latest_risk_rules(&mut self) -> Result<Option<RiskRuleSet>, StoreError>;
}

/// What risk learns from and what it learned: the findings kept with their facts, and the
/// models trained on them.
pub trait RiskLearning {
    /// Findings of inspections performed with a finding and facts kept, in the order of
    /// `(at, delivery_id)` after `after`, at most `limit`.
    fn findings_after(&mut self, after: (Millis, i64), limit: usize) -> Result<Vec<FindingRecord>, StoreError>;
    /// Findings (as [`RiskLearning::findings_after`] reads them) of the deliveries of documents
    /// `sender` submitted (anyone's when `None`), answered in `[from, to)`: at most `limit`, the
    /// earliest first.
    fn findings_of_sender(&mut self, sender: Option<&str>, from: Millis, to: Millis, limit: usize) -> Result<Vec<FindingRecord>, StoreError>;
    /// Keeps a trained model as the next version; when `live`, it replaces the live one. Its
    /// version. Written under `Subject::RiskModels`.
    fn save_risk_model(&mut self, trained_at: Millis, trained_by: &str, live: bool, model: &str) -> Result<i64, StoreError>;
    /// The live model, if any.
    fn live_risk_model(&mut self) -> Result<Option<RiskModelRecord>, StoreError>;
    /// The deliveries made in `[from, to)` with a selection (to `agency`, or to any), with what
    /// their inspections found: at most `limit`, the earliest first. Reads the period's
    /// deliveries (no index by time: this is an operator's figure, not a request's path).
    fn selection_outcomes(&mut self, from: Millis, to: Millis, agency: Option<&AgencyId>, limit: usize)
        -> Result<Vec<SelectionOutcome>, StoreError>;
}
