//! The gateway's operations, shared by every way in: submit a document (validate, route,
//! commit), apply an agency's acknowledgment (from HTTP or the ack topic), and show a
//! consignment to a participant allowed to see it. No HTTP, SQL or rdkafka here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::clock::now_millis;
use crate::digest::body_sha256;
use crate::domain::{AckStatus, AgencyId, Ucr};
use crate::outbox::Wakeup;
use crate::broker::{BrokerHealth, Topics};
use crate::routing::{Router, RoutingFacts};
use crate::pointer::Violation;
use crate::schema::{Rejection, SchemaRegistry, ValidDocument};
use crate::access::IndicatorScope;
use crate::clock::Millis;
use crate::indicators::figures::{Figures, FiguresRequest, Interval};
use crate::indicators::public::{Period, Publication};
use crate::acknowledgment::AckRefused;
use crate::submission::Refused;
use crate::lifecycle::{AmendmentOf, ChangeRefused, Response, ResponseReceipt, Withdrawal};
use crate::audit::AuditEntry;
use crate::store::{
    AckApplied, AckRecord, Acceptance, ConsignmentView, FailedDelivery, NewDocument, RetryOutcome, RetrySelection, Store,
    StoreError, Subject,
};

pub use crate::access::Participant;
use crate::access::{may_acknowledge, may_operate, may_submit, visible_consignment, Refusal};

/// Why a submission was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the document breaks its schema ({} violation(s))", .0.len())]
    Invalid(Vec<Violation>),
    #[error("unknown document type {document_type:?}")]
    UnknownType { document_type: String, known: Vec<String> },
    #[error("unknown version {version} of document type {document_type}")]
    UnknownVersion { document_type: String, version: String, known: Vec<String> },
    #[error("no agency of the region is configured to receive a {document_type} from {origin} to {destination}")]
    Unroutable { document_type: String, origin: String, destination: String },
    #[error("{reason}; the first document is {document}")]
    Conflict { document: Uuid, reason: &'static str },
    #[error(transparent)]
    Refused(Refusal),
    #[error("the UCR {0} belongs to a consignment another participant opened; a UCR identifies one consignment")]
    UcrTaken(Ucr),
    #[error("{backlog} deliveries are waiting for the broker, at or above the bound of {limit}")]
    BacklogFull { backlog: u64, limit: u64 },
    /// The consignment is released and the region takes no change after release.
    #[error("the consignment {0} is released, and this region does not allow changes after release: it takes no new document")]
    ConsignmentReleased(Ucr),
    #[error("the consignment {ucr} holds {max} versions of your {document_type} already (amendments and replacements of withdrawn ones counted), the most this region keeps of one document")]
    TooManyVersions { ucr: Ucr, document_type: crate::domain::DocumentType, max: u32 },
    #[error("the document could not be stored")]
    Store(#[source] StoreError),
}

/// Why an acknowledgment was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    #[error("the acknowledgment breaks its schema")]
    Invalid(Vec<Violation>),
    #[error(transparent)]
    Refused(Refusal),
    #[error("the document {0} is unknown")]
    UnknownDocument(Uuid),
    #[error("the document {document} was not routed to agency {agency}")]
    NotRouted { document: Uuid, agency: AgencyId },
    #[error("the acknowledgment could not be stored")]
    Store(#[source] StoreError),
}

/// What a gateway is built from: what start-up loaded and opened for it.
pub struct Parts {
    pub registry: Arc<SchemaRegistry>,
    pub router: Router,
    pub store: Arc<dyn Store>,
    pub topics: Topics,
    /// This gateway's name in the store's claims and audit chains.
    pub instance: String,
    pub receipt_keys: crate::receipts::Sealer,
    pub risk: Arc<crate::risk::Risk>,
    pub bounds: Bounds,
}

/// The region's bounds that the gateway's operations keep (`[gateway]`, `[indicators]`).
pub struct Bounds {
    pub json_limits: crate::json::JsonLimits,
    pub max_backlog: u64,
    pub change_after_release: bool,
    pub max_document_versions: u32,
    pub public_min_count: usize,
    pub public_settle_ms: Millis,
    pub tfa_joint_window_ms: Millis,
}

/// What readiness reports of a gateway (`GET /readyz`).
pub struct Readiness {
    /// Whether the store answered.
    pub store: bool,
    /// Whether the broker answered its last check.
    pub broker: bool,
    /// The cluster as last seen.
    pub cluster: crate::broker::ClusterView,
    /// Deliveries waiting for the broker.
    pub backlog: u64,
    pub instance: String,
    /// Consignments whose records this gateway publishes now.
    pub claims: u64,
    /// Background tasks that failed.
    pub failed_tasks: Vec<&'static str>,
}

/// The shared state of one gateway: its parts are its own, reached through its operations
/// (and, for the background tasks start-up wires to it, the accessors below).
pub struct Gateway {
    registry: Arc<SchemaRegistry>,
    router: Router,
    store: Arc<dyn Store>,
    topics: Topics,
    /// Wakes the delivery relay after a commit.
    deliveries_wakeup: Wakeup,
    /// Wakes the status relay after a state change.
    status_wakeup: Wakeup,
    /// Bounds on incoming JSON, for the ack topic (HTTP bodies are checked by the front).
    json_limits: crate::json::JsonLimits,
    /// What is known of the broker; receipts say when it is unreachable.
    broker: BrokerHealth,
    /// Deliveries waiting for the broker: counted by the relay each round, raised by each
    /// acceptance in between.
    backlog: Arc<AtomicU64>,
    /// `gateway.max_outbox_backlog`: past it, submissions are refused until the backlog drains.
    max_backlog: u64,
    /// Counters for `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
    /// The background tasks' failures; readiness reports them.
    tasks: crate::supervision::TaskHealth,
    /// This gateway's name in the store's claims (`crate::outbox`).
    instance: String,
    /// `gateway.change_after_release`: documents of released consignments may be amended or
    /// withdrawn, and such consignments take new documents.
    change_after_release: bool,
    /// `gateway.max_document_versions`: the most documents one sender keeps of one type in one
    /// consignment, every version counted.
    max_document_versions: u32,
    /// Replays counted for the audit log in a bounded form (`crate::replays`).
    replays: Arc<crate::replays::ReplayAudit>,
    /// `indicators.public_min_count`: the public release-time figures suppress smaller cells.
    public_min_count: usize,
    /// `indicators.public_settle_days`, in ms: a month's public figures are published this long
    /// after it ends, and count what closed by then.
    public_settle_ms: Millis,
    /// `indicators.tfa_joint_inspection_window_minutes`, in ms: the TFA monitor's joint
    /// inspections (Art. 8).
    tfa_joint_window_ms: Millis,
    /// The release-time facts, in memory, following the store's changes (`crate::indicators::index`).
    release_index: crate::indicators::index::FactsIndex,
    /// The keys receipts are signed with (`crate::receipts`).
    receipt_keys: crate::receipts::Sealer,
    /// Risk profiling: each delivery's channel within its agency's budget (`crate::risk`).
    risk: Arc<crate::risk::Risk>,
    /// Risk reports (performance, sellers) being figured at once, [`RISK_REPORTS_AT_ONCE`] at
    /// most: each reads up to a million rows, and the store's readers are shared with every
    /// request.
    risk_reports: Arc<tokio::sync::Semaphore>,
}

/// Risk reports a gateway figures at once; past it, `503 overloaded` with Retry-After.
pub const RISK_REPORTS_AT_ONCE: usize = 2;

impl Gateway {
    /// A gateway of `parts`, its relays' wakeups, counters and health fresh.
    pub fn new(parts: Parts) -> Self {
        let Parts { registry, router, store, topics, instance, receipt_keys, risk, bounds } = parts;
        Gateway {
            registry,
            router,
            store,
            topics,
            deliveries_wakeup: Wakeup::default(),
            status_wakeup: Wakeup::default(),
            json_limits: bounds.json_limits,
            broker: BrokerHealth::default(),
            backlog: Arc::new(AtomicU64::new(0)),
            max_backlog: bounds.max_backlog,
            metrics: Arc::default(),
            tasks: crate::supervision::TaskHealth::default(),
            instance,
            change_after_release: bounds.change_after_release,
            max_document_versions: bounds.max_document_versions,
            replays: Arc::default(),
            public_min_count: bounds.public_min_count,
            public_settle_ms: bounds.public_settle_ms,
            tfa_joint_window_ms: bounds.tfa_joint_window_ms,
            release_index: Default::default(),
            receipt_keys,
            risk,
            risk_reports: Arc::new(tokio::sync::Semaphore::new(RISK_REPORTS_AT_ONCE)),
        }
    }

    /// The store, for the tasks start-up wires to it (relays, webhooks, learning).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    /// The region's topic names.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }
    /// This gateway's name in the store's claims and audit chains.
    pub fn instance(&self) -> &str {
        &self.instance
    }
    /// The counters `/metrics` shows, which the edges count into too.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }
    /// What is known of the broker: its watcher and the relay record it.
    pub fn broker(&self) -> &BrokerHealth {
        &self.broker
    }
    /// The background tasks' failures: their supervisor records them.
    pub fn tasks(&self) -> &crate::supervision::TaskHealth {
        &self.tasks
    }
    /// The deliveries waiting for the broker: the relay counts them each round.
    pub fn backlog(&self) -> &Arc<AtomicU64> {
        &self.backlog
    }
    /// What wakes the delivery relay, and the status relay, after a commit.
    pub fn wakeups(&self) -> (&Wakeup, &Wakeup) {
        (&self.deliveries_wakeup, &self.status_wakeup)
    }
    /// Replays counted for the audit log: flushed by a background task.
    pub fn replays(&self) -> &Arc<crate::replays::ReplayAudit> {
        &self.replays
    }
    /// Risk profiling: its rules are watched and its models trained in the background.
    pub fn risk(&self) -> &Arc<crate::risk::Risk> {
        &self.risk
    }
    /// The schema registry (the API descriptions are generated from it at start).
    pub fn registry(&self) -> &SchemaRegistry {
        &self.registry
    }
    /// The bounds of JSON read from an ack topic.
    pub fn json_limits(&self) -> &crate::json::JsonLimits {
        &self.json_limits
    }

    /// What readiness reports: the store asked now, the rest as last learnt.
    pub async fn readiness(&self) -> Readiness {
        let store = self.store.ping().await.is_ok();
        let me = self.instance.clone();
        let claims = self.store.read_with(move |l| l.claims_held(&me, now_millis())).await.unwrap_or(0);
        Readiness {
            store,
            broker: self.broker.available(),
            cluster: self.broker.view(),
            backlog: self.backlog.load(Ordering::Relaxed),
            instance: self.instance.clone(),
            claims,
            failed_tasks: self.tasks.failures().iter().map(|f| f.task).collect(),
        }
    }

    /// `/metrics`'s text, with the deliveries counted in the store now.
    pub async fn metrics_text(&self) -> Result<String, StoreError> {
        let deliveries = self.store.read_with(|l| l.delivery_counts()).await?;
        Ok(self.metrics.render(&deliveries, self.backlog.load(Ordering::Relaxed)))
    }

    /// The public keys receipts are signed with, as a JWKS.
    pub fn receipt_jwks(&self) -> Value {
        self.receipt_keys.current_jwks()
    }

    /// Writes `entries` to the audit log (refusals, counted replays).
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        crate::audit::record_all(&*self.store, entries).await
    }

    /// `agency`'s deliveries after the stream position `after`: at most `limit` of them and
    /// about `max_bytes` (`crate::http::stream` has checked who may read them).
    pub async fn agency_deliveries(&self, agency: AgencyId, after: i64, limit: usize, max_bytes: usize)
        -> Result<Vec<crate::store::OutboundDelivery>, StoreError> {
        self.store.read_with(move |l| l.agency_deliveries(&agency, after, limit, max_bytes)).await
    }

    /// Registers `url` for `by`'s consignments' status changes, signed with `secret`; `None`
    /// when it has `max` already.
    pub async fn register_webhook(&self, by: &Participant, url: String, secret: String, max: usize)
        -> Result<Option<crate::store::Webhook>, StoreError> {
        crate::webhooks::register(&*self.store, by.id().to_owned(), url, secret, max, now_millis()).await
    }

    /// `sender`'s consignments' status changes after the stream position `after` (every
    /// sender's for `None`: operators), at most `limit`; and the latest position now, so a
    /// caller given none can move its cursor past the others' events.
    pub async fn status_events(&self, sender: Option<String>, after: i64, limit: usize)
        -> Result<(i64, Vec<crate::store::StatusEvent>), StoreError> {
        self.store.read_with(move |l| Ok((l.latest_status_event()?, l.status_events_after(sender.as_deref(), after, limit)?))).await
    }

    /// The release-time indicators at start: facts for consignments accepted before they
    /// existed, then the in-memory index. A failure only means the first request loads them.
    pub async fn load_release_indicators(&self) {
        let started = std::time::Instant::now();
        match crate::indicators::backfill(&*self.store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(consignments = n, "release-time facts computed for consignments accepted before the indicators"),
            Err(e) => tracing::warn!(error = %e, "release-time facts of earlier consignments not computed now; the next start tries again"),
        }
        let kind_of = |a: &AgencyId| self.router.kind_of(a).unwrap_or("unknown").to_owned();
        match self.release_index.catch_up(&*self.store, &kind_of).await {
            Ok(()) => tracing::info!(took_ms = started.elapsed().as_millis() as u64, "release-time indicators loaded"),
            Err(e) => tracing::warn!(error = %e, "release-time indicators not loaded at start; the first request will load them"),
        }
    }

    /// `by`'s webhooks.
    pub async fn webhooks(&self, by: &Participant) -> Result<Vec<crate::store::Webhook>, StoreError> {
        crate::webhooks::list(&*self.store, by.id().to_owned()).await
    }

    /// Removes `by`'s webhook `id`; `false` when it has none of that id.
    pub async fn delete_webhook(&self, by: &Participant, id: Uuid) -> Result<bool, StoreError> {
        crate::webhooks::delete(&*self.store, by.id().to_owned(), id, now_millis()).await
    }

    /// Validates, routes and commits a document; answers once it is durable. A document sent
    /// again (same `idempotency_key`, or same sender, UCR, type and body) gets its first
    /// receipt and is not published twice.
    pub async fn submit(
        &self,
        by: &Participant,
        body: &Value,
        payload_text: Option<&str>,
        idempotency_key: Option<String>,
    ) -> Result<Acceptance, SubmitError> {
        let backlog = self.backlog_now();
        let doc = self.prepare(by, body, payload_text, idempotency_key, backlog)?;
        self.commit(doc, backlog).await
    }

    /// Commits a document [`Gateway::prepare`]d with `backlog`: the second half of
    /// [`Gateway::submit`], for a caller that prepares it apart (to count its CPU time).
    pub async fn commit(&self, doc: NewDocument, backlog: u64) -> Result<Acceptance, SubmitError> {
        let replay = replay_of(&doc);
        let acceptance = crate::submission::accept(&*self.store, doc).await.map_err(SubmitError::Store)?.map_err(|r| self.refused(r, backlog))?;
        let acceptance = self.signed(acceptance);
        self.accepted([&acceptance]);
        self.audit_replays([(&acceptance, replay)]).await;
        Ok(acceptance)
    }

    /// Commits documents [`Gateway::prepare`]d for a batch, each as [`Gateway::submit`] would,
    /// in one store job and in the order given (so documents of one consignment are committed,
    /// and published, in that order). One result per item; an item already refused stays
    /// refused, and one refused never undoes another. `backlog` is the one they were prepared with.
    pub async fn commit_many<E: From<SubmitError>>(&self, prepared: Vec<Result<NewDocument, E>>, backlog: u64) -> Vec<Result<Acceptance, E>> {
        let mut results: Vec<Option<Result<Acceptance, E>>> = Vec::with_capacity(prepared.len());
        let mut docs = Vec::with_capacity(prepared.len());
        for item in prepared {
            match item {
                Ok(doc) => {
                    docs.push(doc);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if docs.is_empty() {
            return results.into_iter().flatten().collect();
        }
        let replays: Vec<_> = docs.iter().map(replay_of).collect();
        let stored = match crate::submission::accept_all(&*self.store, docs).await {
            Ok(stored) => stored,
            // The whole job failed (nothing of it was committed): every document gets that error.
            Err(e) => {
                let text = match e {
                    StoreError::Unavailable(why) => why,
                    other => other.to_string(),
                };
                return results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(SubmitError::Store(StoreError::Unavailable(text.clone())).into())))
                    .collect();
            }
        };
        let stored: Vec<_> = stored.into_iter().map(|r| r.map(|a| self.signed(a))).collect();
        self.accepted(stored.iter().filter_map(|r| r.as_ref().ok()));
        self.audit_replays(stored.iter().zip(replays).filter_map(|(r, replay)| Some((r.as_ref().ok()?, replay)))).await;
        let mut stored = stored.into_iter();
        results
            .into_iter()
            .map(|r| match r {
                Some(refused) => refused,
                None => match stored.next() {
                    Some(result) => result.map_err(|r| self.refused(r, backlog).into()),
                    None => Err(SubmitError::Store(StoreError::Unavailable("the store answered fewer documents than it was given".into())).into()),
                },
            })
            .collect()
    }

    /// Deliveries waiting for the broker, as last counted: what [`Gateway::prepare`] compares
    /// with `gateway.max_outbox_backlog`.
    pub fn backlog_now(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Validates and routes a submission into the document to commit (CPU only: no I/O). The
    /// payload published is `payload_text`, the payload's text as sent, when given (agencies get
    /// the trader's bytes); the replay check compares the canonical text, so formatting alone
    /// never makes a document different.
    pub fn prepare(&self, by: &Participant, body: &Value, payload_text: Option<&str>, idempotency_key: Option<String>, backlog: u64)
        -> Result<NewDocument, SubmitError> {
        let Checked { valid, routed, facts } = self.validate(by, body).inspect_err(|e| {
            if let SubmitError::Invalid(_) = e {
                let document_type = body.get("documentType").and_then(Value::as_str).filter(|t| self.registry.knows(t));
                self.metrics.validation_failure(document_type.unwrap_or("unknown"));
            }
        })?;
        let payload_value = body.get("payload").unwrap_or(&Value::Null);
        let canonical = payload_value.to_string();
        // Each agency's channel is chosen from these facts when the document is committed.
        let risk = self.risk.facts(valid.document_type.as_str(), valid.origin.as_str(), valid.destination.as_str(), payload_value);
        let deliveries = routed
            .into_iter()
            .map(|r| crate::store::PlannedDelivery { agency: r.agency, topic: r.topic, rule: r.rule, selection: None })
            .collect();
        let body_sha256 = body_sha256(body, &canonical);
        // As sent, it is no longer than the body, which the start check fits in a record.
        let payload = payload_text.map_or(canonical, str::to_owned);
        Ok(NewDocument {
            id: Uuid::now_v7(),
            ucr: valid.ucr,
            document_type: valid.document_type,
            schema_version: valid.version,
            schema_id: valid.schema_id,
            origin: valid.origin,
            destination: valid.destination,
            sender: by.id().to_owned(),
            payload,
            idempotency_key,
            body_sha256,
            submitted_at: now_millis(),
            version: 1,
            amends: None,
            dims: crate::indicators::dims_of(&facts),
            seal: crate::store::ReceiptSeal(Some(self.receipt_keys.clone())),
            broker_available: self.broker.available(),
            backlog_full: backlog >= self.max_backlog,
            deliveries,
            risk: Some(crate::risk::RiskPlan::new(self.risk.clone(), risk)),
            rules: crate::store::ChangeRules { after_release: self.change_after_release, max_versions: self.max_document_versions },
        })
    }

    /// Audits the replays among `acceptances` (each with its own record, made by [`replay_of`]
    /// before it was committed) in the bounded form of `crate::replays`. A failure to audit is
    /// logged; the answer stands, as a refusal's does.
    async fn audit_replays<'a>(&self, acceptances: impl IntoIterator<Item = (&'a Acceptance, crate::audit::AuditEntry)>) {
        let now = now_millis();
        let mut entries = Vec::new();
        for (acceptance, mut own) in acceptances {
            if let Acceptance::Replayed(first) = acceptance {
                own.subject = first["documentId"].as_str().unwrap_or_default().to_owned();
                own.at = now;
                entries.extend(self.replays.note(now, own));
            }
        }
        if !entries.is_empty() {
            if let Err(e) = crate::audit::record_all(&*self.store, entries).await {
                tracing::error!(error = %e, "a replay could not be written to the audit log");
            }
        }
    }

    /// `acceptance` with its receipt's signature completed: the store keeps it awaiting one, so
    /// that the request's worker signs, not the writer (`crate::receipts`).
    fn signed(&self, acceptance: Acceptance) -> Acceptance {
        match acceptance {
            Acceptance::New(mut receipt) => {
                receipt.signature = receipt.signature.map(|jws| self.receipt_keys.complete(&jws));
                Acceptance::New(receipt)
            }
            Acceptance::Replayed(first) => Acceptance::Replayed(crate::receipts::complete(&self.receipt_keys, first)),
        }
    }

    /// What the rules' refusal means to the submitter.
    fn refused(&self, r: Refused, backlog: u64) -> SubmitError {
        match r {
            Refused::Conflict { document, reason } => SubmitError::Conflict { document, reason },
            Refused::BacklogFull => SubmitError::BacklogFull { backlog, limit: self.max_backlog },
            Refused::ConsignmentOfAnother(ucr) => SubmitError::UcrTaken(ucr),
            Refused::ConsignmentReleased(ucr) => SubmitError::ConsignmentReleased(ucr),
            Refused::TooManyVersions { ucr, document_type, max } => SubmitError::TooManyVersions { ucr, document_type, max },
        }
    }

    /// After a commit: counts the new deliveries in the backlog and wakes the relays.
    fn accepted<'a>(&self, acceptances: impl IntoIterator<Item = &'a Acceptance>) {
        let new: u64 = acceptances
            .into_iter()
            .map(|a| match a {
                Acceptance::New(receipt) => receipt.deliveries.len() as u64,
                Acceptance::Replayed(_) => 0,
            })
            .sum();
        if new > 0 {
            self.backlog.fetch_add(new, Ordering::Relaxed);
            self.deliveries_wakeup.notify();
            self.status_wakeup.notify();
        }
    }

    /// Checks a document exactly as [`Gateway::submit`] would (who may submit it, its schema,
    /// its routing) and stores and publishes nothing.
    pub fn validate(&self, by: &Participant, body: &Value) -> Result<Checked, SubmitError> {
        if let Err(refused) = crate::access::submits_documents(by) {
            return Err(SubmitError::Refused(refused));
        }
        check_submission(&self.registry, &self.router, &self.topics, Some(by), body)
    }

    /// Applies an agency's answer. `by` is the HTTP participant, or for the ack topic the
    /// agency whose topic it came from (`kafka:<agency>`).
    pub async fn acknowledge(
        &self,
        by: &Participant,
        body: &Value,
        source: &'static str,
    ) -> Result<AckApplied, AckError> {
        let Acknowledgment { document_id, agency, status, reason, inspection } =
            parse_acknowledgment(&self.registry, body).map_err(AckError::Invalid)?;
        may_acknowledge(by, &agency).map_err(AckError::Refused)?;
        // A finding is kept with the facts risk learns from (`crate::risk::history`), read
        // from its document here, off the writer.
        let finding = inspection.as_ref().filter(|i| i.performed).and_then(|i| i.finding);
        let finding_facts = match finding {
            Some(_) => self.finding_facts(document_id).await.map_err(AckError::Store)?,
            None => None,
        };
        let record = AckRecord {
            by: by.id().to_owned(),
            document_id,
            agency,
            status,
            reason,
            inspection,
            finding_facts: finding_facts.as_ref().and_then(|f| serde_json::to_string(f).ok()),
            source,
            at: now_millis(),
        };
        let applied = crate::acknowledgment::apply(&*self.store, record).await.map_err(AckError::Store)?.map_err(|r| match r {
            AckRefused::UnknownDocument(d) => AckError::UnknownDocument(d),
            AckRefused::NotRouted { document, agency } => AckError::NotRouted { document, agency },
        })?;
        if applied.outcome.changed() {
            self.status_wakeup.notify();
        }
        if let (Some(finding), Some(facts)) = (finding, &finding_facts) {
            self.risk.learn(facts, finding == crate::store::Finding::Irregularity);
        }
        if let Some(ms) = applied.first_answer_after_ms {
            self.metrics.first_answer(applied.agency.as_str(), std::time::Duration::from_millis(ms as u64));
        }
        Ok(applied)
    }

    /// The facts of document `id` that a finding is kept with; none for a document unknown (its
    /// answer is refused anyway).
    async fn finding_facts(&self, id: Uuid) -> Result<Option<crate::risk::history::FindingFacts>, StoreError> {
        let Some(doc) = self.store.read_with(move |l| l.document(id)).await? else { return Ok(None) };
        let payload: Value = match serde_json::from_str(&doc.payload) {
            Ok(p) => p,
            Err(e) => return Err(StoreError::Corrupt(format!("document {id}'s stored payload: {e}"))),
        };
        let facts = self.risk.facts(doc.record.document_type.as_str(), doc.record.origin.as_str(), doc.record.destination.as_str(), &payload);
        Ok(Some(crate::risk::history::FindingFacts::of(&facts)))
    }

    /// The consignment as `by` may see it (`access::visible_consignment`); anything else is
    /// reported as not found, so existence does not leak.
    pub async fn consignment(&self, by: &Participant, ucr: Ucr) -> Result<Option<ConsignmentView>, StoreError> {
        self.consignment_page(by, ucr, crate::tracking::ViewPage::Latest).await
    }

    /// [`Gateway::consignment`], with the documents of `page` (`crate::tracking::ViewPage`).
    pub async fn consignment_page(&self, by: &Participant, ucr: Ucr, page: crate::tracking::ViewPage)
        -> Result<Option<ConsignmentView>, StoreError> {
        Ok(self
            .store
            .read_with(move |l| crate::tracking::consignment_view_page(l, &ucr, page))
            .await?
            .and_then(|view| visible_consignment(by, view)))
    }
}

/// Where a document goes: one agency, its topic, and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Route {
    pub agency: AgencyId,
    pub topic: String,
    pub rule: String,
}

/// A submission that passed every check: its envelope and where it goes.
#[derive(Debug, Clone)]
pub struct Checked {
    pub valid: ValidDocument,
    pub routed: Vec<Route>,
    /// What routing read of it (also the segment the release-time indicators count it in).
    pub facts: RoutingFacts,
}

/// What a successful validation says, over HTTP and on the command line.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    /// Always true: an invalid document is answered with its problem.
    valid: bool,
    document_type: crate::domain::DocumentType,
    schema_version: crate::domain::SchemaVersion,
    ucr: Ucr,
    /// Where submission would send it.
    routing: Vec<Route>,
}

impl Checked {
    /// What `POST /v1/validate` and `ventanilla validate` answer for it.
    pub fn report(&self) -> ValidationReport {
        ValidationReport {
            valid: true,
            document_type: self.valid.document_type.clone(),
            schema_version: self.valid.version,
            ucr: self.valid.ucr.clone(),
            routing: self.routed.clone(),
        }
    }
}

/// The checks every submission passes, shared by submission, `POST /v1/validate` and
/// `ventanilla validate`: the schema, then (when `by` is given) whether `by` may submit it and
/// use its UCR, then routing. Nothing is stored.
pub fn check_submission(
    registry: &SchemaRegistry,
    router: &Router,
    topics: &Topics,
    by: Option<&Participant>,
    body: &Value,
) -> Result<Checked, SubmitError> {
    let valid = registry.validate_submission(body).map_err(rejection)?;
    if let Some(by) = by {
        may_submit(by, &valid.party).map_err(SubmitError::Refused)?;
        crate::access::may_use_ucr(by, &valid.ucr, &valid.party, registry.schemes()).map_err(SubmitError::Refused)?;
    }
    let facts = valid.routing_facts();
    let routed: Vec<Route> = router
        .route(&facts)
        .into_iter()
        .map(|r| Route { topic: topics.agency(&r.agency), agency: r.agency, rule: r.rule })
        .collect();
    if routed.is_empty() {
        return Err(SubmitError::Unroutable {
            document_type: valid.document_type.to_string(),
            origin: valid.origin.to_string(),
            destination: valid.destination.to_string(),
        });
    }
    Ok(Checked { valid, routed, facts })
}

/// An agency's answer, parsed from its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledgment {
    pub document_id: Uuid,
    pub agency: AgencyId,
    pub status: AckStatus,
    pub reason: Option<String>,
    pub inspection: Option<crate::store::Inspection>,
}

/// Checks an acknowledgment against its schema and reads its fields (the same for HTTP and
/// the ack topic); every refusal names the JSON pointer at fault.
pub fn parse_acknowledgment(registry: &SchemaRegistry, body: &Value) -> Result<Acknowledgment, Vec<Violation>> {
    registry.validate_acknowledgment(body)?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let invalid = |pointer: &str, message: String| vec![Violation::new(pointer, "format", message)];
    Ok(Acknowledgment {
        document_id: Uuid::parse_str(text("documentId")).map_err(|e| invalid("/documentId", e.to_string()))?,
        agency: AgencyId::parse(text("agency")).map_err(|e| invalid("/agency", e.to_string()))?,
        status: AckStatus::parse(text("status")).map_err(|e| invalid("/status", e.to_string()))?,
        reason: body.get("reason").and_then(Value::as_str).map(str::to_owned),
        inspection: body
            .get("inspection")
            .map(|i| serde_json::from_value(i.clone()).map_err(|e| invalid("/inspection", e.to_string())))
            .transpose()?,
    })
}

/// Why an operator request was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    #[error(transparent)]
    Refused(Refusal),
    #[error("{}", .0.detail())]
    Quota(crate::quota::Exceeded),
    #[error("the store could not be used")]
    Store(#[source] StoreError),
}

impl Gateway {
    /// Failed deliveries, for an operator.
    pub async fn failed_deliveries(&self, by: &Participant, agency: Option<AgencyId>) -> Result<Vec<FailedDelivery>, OperatorError> {
        may_operate(by).map_err(OperatorError::Refused)?;
        self.store.read_with(move |l| l.failed_deliveries(agency.as_ref())).await.map_err(OperatorError::Store)
    }

    /// The risk rules selected with now, and who put them (operators only).
    pub fn risk_rules(&self, by: &Participant) -> Result<Arc<crate::risk::RuleSet>, OperatorError> {
        may_operate(by).map_err(OperatorError::Refused)?;
        Ok(self.risk.rules())
    }

    /// Puts `rules` in place of the risk rules in use, for `reason` (operators only;
    /// `crate::risk::changes`).
    pub async fn put_risk_rules(&self, by: &Participant, reason: &str, rules: Vec<crate::config::RiskRuleConfig>)
        -> Result<Result<Arc<crate::risk::RuleSet>, crate::risk::changes::RulesRefused>, OperatorError> {
        may_operate(by).map_err(OperatorError::Refused)?;
        crate::risk::changes::put(&*self.store, &self.risk, by.id(), reason, rules).await.map_err(OperatorError::Store)
    }

    /// Trains a risk model on every finding now (operators only; `crate::risk::learning`).
    pub async fn train_risk_model(&self, by: &Participant) -> Result<Result<crate::risk::learning::Trained, String>, OperatorError> {
        may_operate(by).map_err(OperatorError::Refused)?;
        crate::risk::learning::train(&*self.store, &self.risk, by.id()).await.map_err(OperatorError::Store)
    }

    /// How risk selection performed in `[from, to)` (`crate::risk::performance`): an operator
    /// reads every agency's (or `agency`'s), an agency only its own.
    pub async fn risk_performance(
        &self,
        by: &Participant,
        meter: Arc<crate::quota::Allowance>,
        from: crate::clock::Millis,
        to: crate::clock::Millis,
        agency: Option<AgencyId>,
    ) -> Result<crate::risk::performance::Performance, OperatorError> {
        let agency = crate::access::performance_read(by, agency).map_err(OperatorError::Refused)?;
        let _report = self.risk_report()?;
        crate::risk::performance::read(&*self.store, &self.risk, from, to, agency, meter)
            .await
            .map_err(OperatorError::Store)?
            .map_err(OperatorError::Quota)
    }

    /// A place among the risk reports figured now, or `503 overloaded` when they are all taken.
    fn risk_report(&self) -> Result<tokio::sync::OwnedSemaphorePermit, OperatorError> {
        self.risk_reports.clone().try_acquire_owned().map_err(|_| {
            OperatorError::Quota(crate::quota::Exceeded {
                policy: "reports",
                quota: RISK_REPORTS_AT_ONCE as u64,
                window_secs: None,
                retry_after: std::time::Duration::from_secs(1),
                gateway_wide: true,
            })
        })
    }

    /// A platform's sellers as its parcels' inspections found them in `[from, to)`: a platform
    /// reads its own; an operator any platform's, or every submitter's when it names none.
    pub async fn risk_sellers(
        &self,
        by: &Participant,
        meter: Arc<crate::quota::Allowance>,
        from: crate::clock::Millis,
        to: crate::clock::Millis,
        platform: Option<String>,
    ) -> Result<crate::risk::sellers::SellerReport, OperatorError> {
        let platform = crate::access::sellers_read(by, platform).map_err(OperatorError::Refused)?;
        let _report = self.risk_report()?;
        crate::risk::sellers::read(&*self.store, platform, from, to, meter).await.map_err(OperatorError::Store)?.map_err(OperatorError::Quota)
    }

    /// Sends failed deliveries again (operators only): back in the outbox with fresh attempts.
    pub async fn retry_deliveries(&self, by: &Participant, selection: RetrySelection) -> Result<RetryOutcome, OperatorError> {
        may_operate(by).map_err(OperatorError::Refused)?;
        let outcome =
            crate::outbox::retry(&*self.store, selection, by.id().to_owned(), now_millis()).await.map_err(OperatorError::Store)?;
        if !outcome.retried.is_empty() {
            tracing::info!(operator = %by.id(), deliveries = ?outcome.retried, "failed deliveries sent again");
            self.backlog.fetch_add(outcome.retried.len() as u64, Ordering::Relaxed);
            self.deliveries_wakeup.notify();
            self.status_wakeup.notify();
        }
        Ok(outcome)
    }
}

impl Gateway {
    /// The release-time figures `by` may read of the consignments lodged in `[from, to)`
    /// (`crate::indicators`). The public's are [`Gateway::public_release_times`].
    pub async fn release_times(&self, by: &Participant, mut request: FiguresRequest, from: Millis, to: Millis)
        -> Result<Figures, OperatorError> {
        let scope = crate::access::indicator_scope(by);
        if request.group_by.contains(&crate::indicators::figures::Dimension::RiskChannel) && scope != IndicatorScope::All {
            return Err(OperatorError::Refused(Refusal::RiskChannelSegment(by.id().to_owned())));
        }
        let (owner, agency) = match scope {
            IndicatorScope::All => (None, None),
            IndicatorScope::Owner(owner) => (Some(owner), None),
            IndicatorScope::Agency(agency) => {
                request.agency_rows = true;
                (None, Some(agency))
            }
        };
        self.catch_up_release_times().await?;
        let scope = crate::indicators::index::Scope { owner, agency };
        self.release_index.figures(request, scope, from, to).await.map_err(OperatorError::Store)
    }

    /// The region's window of a joint inspection (the TFA monitor's Art. 8), in ms.
    pub fn tfa_joint_window_ms(&self) -> Millis {
        self.tfa_joint_window_ms
    }

    /// The TFA monitor's figures (`crate::indicators::tfa`) of `[from, to)` and the period before,
    /// that `by` may read (`crate::access::tfa_scope`).
    pub async fn tfa_indicators(&self, by: &Participant, request: crate::indicators::tfa::TfaRequest, from: Millis, to: Millis)
        -> Result<crate::indicators::tfa::TfaFigures, OperatorError> {
        let scope = crate::access::tfa_scope(by).map_err(OperatorError::Refused)?;
        self.catch_up_release_times().await?;
        self.release_index.tfa(request, scope, from, to).await.map_err(OperatorError::Store)
    }

    /// The public release-time figures of `interval` for the calendar month starting at `month`
    /// (`crate::indicators::public`), handed to `then` on the blocking thread that computed them.
    /// The caller checks the month is published ([`Gateway::public_published_at`]).
    pub async fn public_release_times<T: Send + 'static>(
        &self,
        interval: Interval,
        month: Millis,
        mode_bin_ms: i64,
        then: impl FnOnce(Publication) -> T + Send + 'static,
    ) -> Result<T, OperatorError> {
        let to = crate::clock::next_month(month);
        let period = Period { from: month, to, closed_before: to.saturating_add(self.public_settle_ms) };
        self.catch_up_release_times().await?;
        let min_count = self.public_min_count.max(1);
        self.release_index.publication(interval, period, mode_bin_ms, min_count, then).await.map_err(OperatorError::Store)
    }

    /// The TFA monitor's public figures (`crate::indicators::tfa_public`) of the calendar month
    /// starting at `month` and of the month before, handed to `then` on the blocking thread that
    /// computed them. The caller checks the month is published ([`Gateway::public_published_at`]).
    pub async fn public_tfa<T: Send + 'static>(
        &self,
        month: Millis,
        then: impl FnOnce(crate::indicators::tfa_public::PublicTfa) -> T + Send + 'static,
    ) -> Result<T, OperatorError> {
        let to = crate::clock::next_month(month);
        let period = Period { from: month, to, closed_before: to.saturating_add(self.public_settle_ms) };
        // The month before 1970-01 holds nothing (no time is read before it).
        let before = match crate::clock::year_month(month) {
            (y, _) if y <= 1970 && month <= crate::clock::MIN_MILLIS => month,
            (y, 1) => crate::clock::month_start(y - 1, 12),
            (y, m) => crate::clock::month_start(y, m - 1),
        };
        let previous = Period { from: before, to: month, closed_before: month.saturating_add(self.public_settle_ms) };
        self.catch_up_release_times().await?;
        let min_count = self.public_min_count.max(1);
        self.release_index.tfa_publication(period, previous, self.tfa_joint_window_ms, min_count, then).await.map_err(OperatorError::Store)
    }

    /// When the public figures of the month starting at `month` are published: once it has
    /// ended and the settling time has passed.
    pub fn public_published_at(&self, month: Millis) -> Millis {
        crate::clock::next_month(month).saturating_add(self.public_settle_ms)
    }

    async fn catch_up_release_times(&self) -> Result<(), OperatorError> {
        let kind_of = |a: &AgencyId| self.router.kind_of(a).unwrap_or("unknown").to_owned();
        self.release_index.catch_up(&*self.store, &kind_of).await.map_err(OperatorError::Store)
    }
}

/// Why an amendment, a withdrawal or a response was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The request's own members are wrong (each violation names its JSON pointer).
    #[error("the request breaks its form ({} violation(s))", .0.len())]
    InvalidRequest(Vec<Violation>),
    /// The amended version, or the supporting document, fails a submission's checks.
    #[error(transparent)]
    Document(SubmitError),
    #[error(transparent)]
    Refused(ChangeRefused),
    #[error("the change could not be stored")]
    Store(#[source] StoreError),
}

/// Longest `reason` of an amendment or a withdrawal, in characters.
pub const MAX_REASON_CHARS: usize = 2000;
/// Longest `text` of a response to a query, in characters.
pub const MAX_RESPONSE_CHARS: usize = 10_000;

/// The members of a change request: each known one by name; any other, and a missing required
/// one, is a violation.
fn request_members<'a>(body: &'a Value, known: &[(&str, bool)]) -> Result<Vec<Option<&'a Value>>, Vec<Violation>> {
    let Some(map) = body.as_object() else {
        return Err(vec![Violation::new("", "type", "the body must be a JSON object".into())]);
    };
    let mut violations: Vec<Violation> = map
        .keys()
        .filter(|k| !known.iter().any(|(n, _)| n == k))
        .map(|k| Violation::new(&format!("/{}", crate::pointer::escape(k)), "additionalProperties", format!("{k:?} is not a member of this request")))
        .collect();
    for (name, required) in known {
        if *required && !map.contains_key(*name) {
            violations.push(Violation::new(&format!("/{name}"), "required", format!("{name:?} is required")));
        }
    }
    if violations.is_empty() { Ok(known.iter().map(|(n, _)| map.get(*n)).collect()) } else { Err(violations) }
}

/// A non-blank text member of at most `max` characters.
fn text_member(value: Option<&Value>, name: &str, max: usize) -> Result<String, Violation> {
    let pointer = format!("/{name}");
    match value.and_then(Value::as_str) {
        Some(t) if t.trim().is_empty() => Err(Violation::new(&pointer, "minLength", format!("{name} must not be blank"))),
        Some(t) if t.chars().count() > max => Err(Violation::new(&pointer, "maxLength", format!("{name} is longer than {max} characters"))),
        Some(t) => Ok(t.to_owned()),
        None => Err(Violation::new(&pointer, "type", format!("{name} must be a string"))),
    }
}

/// A submission's refusal about a document nested at `at` in the request: its pointers made
/// pointers into the request.
fn nested(e: SubmitError, at: &str) -> ChangeError {
    match e {
        SubmitError::Invalid(mut v) => {
            for violation in &mut v {
                violation.pointer = format!("{at}{}", violation.pointer);
            }
            ChangeError::Document(SubmitError::Invalid(v))
        }
        other => ChangeError::Document(other),
    }
}

impl Gateway {
    /// Amends the document `previous`: `body` is `{"reason", "document"}`, the document a full
    /// envelope of the same type and UCR, validated and routed as a submission
    /// (`crate::lifecycle`). `payload_text` is the new payload's text as sent.
    pub async fn amend(&self, by: &Participant, previous: Uuid, body: &Value, payload_text: Option<&str>)
        -> Result<Acceptance, ChangeError> {
        let members = request_members(body, &[("reason", true), ("document", true)]).map_err(ChangeError::InvalidRequest)?;
        let reason = text_member(members[0], "reason", MAX_REASON_CHARS).map_err(|v| ChangeError::InvalidRequest(vec![v]))?;
        let envelope = members[1].unwrap_or(&Value::Null);
        let backlog = self.backlog_now();
        let doc = self.prepare(by, envelope, payload_text, None, backlog).map_err(|e| nested(e, "/document"))?;
        let replay = crate::audit::entry(doc.submitted_at, by.id(), "amendment.replayed", String::new(), serde_json::json!({"ucr": doc.ucr, "amends": previous}));
        let of = AmendmentOf { previous, reason, by: by.clone() };
        let subjects = vec![Subject::Consignment(doc.ucr.clone())];
        let registry = self.registry.clone();
        let acceptance = self
            .store
            .decide_with(subjects, Vec::new(), move |l| crate::lifecycle::amend_in(l, doc, &of, registry.types()))
            .await
            .map_err(ChangeError::Store)?
            .map_err(|r| match r {
                ChangeRefused::BacklogFull => ChangeError::Document(SubmitError::BacklogFull { backlog, limit: self.max_backlog }),
                r => ChangeError::Refused(r),
            })?;
        let acceptance = self.signed(acceptance);
        self.accepted([&acceptance]);
        self.audit_replays([(&acceptance, replay)]).await;
        Ok(acceptance)
    }

    /// Withdraws the document `id`: `body` is `{"reason"}` (`crate::lifecycle`).
    pub async fn withdraw(&self, by: &Participant, id: Uuid, body: &Value) -> Result<Withdrawal, ChangeError> {
        let members = request_members(body, &[("reason", true)]).map_err(ChangeError::InvalidRequest)?;
        let reason = text_member(members[0], "reason", MAX_REASON_CHARS).map_err(|v| ChangeError::InvalidRequest(vec![v]))?;
        let ucr = self.document_ucr(id).await?;
        let (me, after_release, registry) = (by.clone(), self.change_after_release, self.registry.clone());
        let withdrawal = self
            .store
            .decide_with(vec![Subject::Consignment(ucr)], Vec::new(), move |l| {
                crate::lifecycle::withdraw_in(l, id, &reason, &me, after_release, now_millis(), registry.types())
            })
            .await
            .map_err(ChangeError::Store)?
            .map_err(ChangeError::Refused)?;
        self.notices_queued(withdrawal.agencies.len());
        Ok(withdrawal)
    }

    /// The trader's answer to the queries open on the document `id`: `body` is `{"text",
    /// "agency"?, "supportingDocument"?}`, the supporting document an envelope checked as a
    /// submission would be (same UCR; not routed: it goes to the agencies that asked).
    /// `supporting_payload_text` is its payload's text as sent.
    pub async fn respond(&self, by: &Participant, id: Uuid, body: &Value, supporting_payload_text: Option<&str>)
        -> Result<ResponseReceipt, ChangeError> {
        let members =
            request_members(body, &[("text", true), ("agency", false), ("supportingDocument", false)]).map_err(ChangeError::InvalidRequest)?;
        let text = text_member(members[0], "text", MAX_RESPONSE_CHARS).map_err(|v| ChangeError::InvalidRequest(vec![v]))?;
        let agency = members[1]
            .map(|a| a.as_str().ok_or_else(|| "a string".to_owned()).and_then(|a| AgencyId::parse(a).map_err(|e| e.to_string())))
            .transpose()
            .map_err(|e| ChangeError::InvalidRequest(vec![Violation::new("/agency", "format", format!("agency must be an agency id: {e}"))]))?;
        // The document first: to anyone who may not change it, it does not exist, whatever
        // else the request says (the supporting document's checks would tell otherwise).
        let (me, registry) = (by.clone(), self.registry.clone());
        let ucr = self
            .store
            .read_with(move |l| Ok(l.document(id)?.filter(|d| crate::access::may_change(&me, d, registry.types())).map(|d| d.ucr)))
            .await
            .map_err(ChangeError::Store)?
            .ok_or(ChangeError::Refused(ChangeRefused::UnknownDocument(id)))?;
        let supporting = match members[2] {
            None => None,
            Some(envelope) => {
                let valid = self.registry.validate_submission(envelope).map_err(|r| nested(rejection(r), "/supportingDocument"))?;
                let payload = envelope.get("payload").unwrap_or(&Value::Null);
                may_submit(by, &valid.party).map_err(|r| ChangeError::Document(SubmitError::Refused(r)))?;
                if valid.ucr != ucr {
                    return Err(ChangeError::InvalidRequest(vec![Violation::new(
                        "/supportingDocument/ucr",
                        "const",
                        format!("a supporting document is of the same consignment: {ucr}, not {}", valid.ucr),
                    )]));
                }
                let text = supporting_payload_text.map_or_else(|| payload.to_string(), str::to_owned);
                Some((valid.document_type, valid.version.to_string(), text))
            }
        };
        let response = Response { document_id: id, text, agency, supporting, by: by.clone(), at: now_millis() };
        let receipt = self
            .store
            .decide_with(vec![Subject::Consignment(ucr)], Vec::new(), {
                let registry = self.registry.clone();
                move |l| crate::lifecycle::respond_in(l, &response, registry.types())
            })
            .await
            .map_err(ChangeError::Store)?
            .map_err(ChangeError::Refused)?;
        self.notices_queued(receipt.agencies.len());
        Ok(receipt)
    }

    /// The UCR of the document `id`, read before its consignment is locked (a document's UCR
    /// never changes); unknown reads as unknown.
    async fn document_ucr(&self, id: Uuid) -> Result<Ucr, ChangeError> {
        self.store
            .read_with(move |l| l.document_ucr(id))
            .await
            .map_err(ChangeError::Store)?
            .ok_or(ChangeError::Refused(ChangeRefused::UnknownDocument(id)))
    }

    /// After notices were committed: counts them in the backlog and wakes the relays.
    fn notices_queued(&self, notices: usize) {
        self.backlog.fetch_add(notices as u64, Ordering::Relaxed);
        self.deliveries_wakeup.notify();
        self.status_wakeup.notify();
    }
}

/// The audit record of `doc` sent again, should it be a replay (its subject, the first
/// document's id, is filled in then).
fn replay_of(doc: &NewDocument) -> crate::audit::AuditEntry {
    let detail = serde_json::json!({"ucr": doc.ucr, "documentType": doc.document_type, "idempotencyKey": doc.idempotency_key});
    crate::audit::entry(doc.submitted_at, &doc.sender, "submission.replayed", String::new(), detail)
}

/// A schema's refusal, as a submission's.
fn rejection(r: Rejection) -> SubmitError {
    match r {
        Rejection::Invalid(v) => SubmitError::Invalid(v),
        Rejection::UnknownType { document_type, known } => SubmitError::UnknownType { document_type, known },
        Rejection::UnknownVersion { document_type, version, known } => SubmitError::UnknownVersion { document_type, version, known },
    }
}

