//! The acknowledgment consumer: agencies that prefer Kafka answer on their own ack topic
//! (`<prefix>acks.<agency>`, which only that agency may write, by Kafka ACL); each record is
//! applied exactly as `POST /v1/acknowledgments` would, as that agency: an answer in another
//! agency's name is refused. The offset is stored only after the
//! answer is committed to the store, and committed once more at shutdown, so a crash replays
//! answers (harmless: duplicates change nothing) rather than losing them.
//!
//! **Refused answers reach the agency.** A record refused (not JSON, against the schema, in
//! another agency's name, about a document not routed to it) is answered on the agency's own
//! `<prefix>acks.<agency>.refused` topic, keyed as the refused record was: a problem document
//! (the code, title and detail `POST /v1/acknowledgments` would answer, with each schema
//! violation's JSON pointer) naming the refused record's topic, partition and offset. Its
//! CloudEvents id is that place, so a refusal told twice (after a crash) reads as one. The
//! offset moves on only once the refusal is in the audit log and told (or given up on, below).
//!
//! **Answers that change nothing are told too.** An answer taken but that changed nothing
//! because the delivery had moved on (`late`: it already had a final answer; `stale`: older news
//! than its current one) is recorded in the delivery's history, as over HTTP, and told on the
//! same refused-answers topic as an `org.ventanilla.acknowledgment.unchanged` event: over HTTP
//! the answer's body says so, over Kafka the agency would otherwise never know its answer was not
//! taken into account. A `duplicate` (the status the delivery already has) is not told: it is
//! also what a record read again after a restart gives. Such a record can, rarely, read as late
//! (the delivery was answered again since): the notice then tells of an answer applied the
//! first time.
//!
//! **No record holds up the exchange.** Each agency's ack topic has a consumer of its own, in a
//! consumer group of its own (`<kafka.consumer_group>.<agency>`, the gateways of a region sharing
//! it), so a record one agency's topic cannot get past (its answer waiting for the store) holds
//! up that agency alone, not even through a rebalance of a group it shares. A gateway upgraded
//! from one group for all agencies carries each topic's committed offsets over to its agency's
//! group at its first start ([`consumers`]), so no answer is applied twice. (Upgrade every
//! gateway of a region together: one still in the shared group would read the same answers.) A refusal notice always fits in a record: what it echoes of the refused record
//! (its key, the problem's detail and violations) is cut to [`MAX_NOTICE_BYTES`], and the notice
//! says what was cut. A notice the broker still will not take is tried [`NOTICE_ATTEMPTS`] times,
//! then sent without its echo to the dead-letter topic (or, if even that fails, only audited),
//! counted in `/metrics` (`ventanilla_ack_refusal_notices_total`), and the consumer moves on.

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;
use rdkafka::Message;
use tokio::sync::watch;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::{base_config, BrokerError};

use crate::gateway::{AckError, Gateway, Participant};
use crate::problems::json_problem;
use crate::problems::{ApiError, Code};

/// The ack consumer's context: eager rebalancing, done directly. rust-rdkafka's default asks
/// librdkafka for the rebalance protocol first, and that request can block forever when the
/// consumer closes after a broker restart, which would hang the gateway's shutdown.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ConsumerContext for AckContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => consumer.assign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "ack consumer: rebalance failed");
        }
    }
}

/// The gateway's ack consumer.
pub type AckConsumer = StreamConsumer<AckContext>;

/// The consumer group of `agency`'s ack topic: the gateway's group, then the agency.
pub fn group_of(group: &str, agency: &str) -> String {
    format!("{group}.{agency}")
}

/// Makes one consumer per agency's ack topic (`(agency, topic)`), each in its agency's group
/// ([`group_of`]), and subscribes it: each topic is read on its own, so no record of one
/// agency's topic can hold up another agency's answers. A group with no committed offset yet
/// first takes over where the gateway's former shared group (`group`) had got to on its topic
/// (all topics at once, each asked up to [`CARRY_ATTEMPTS`] times): if the group coordinator
/// cannot say, the start fails, rather than reading the topic from the earliest and applying
/// every answer it holds again.
pub async fn consumers(
    brokers: &str,
    security: &crate::config::KafkaSecurity,
    group: &str,
    topics: &[(String, String)],
) -> Result<Vec<AckConsumer>, BrokerError> {
    let client = |source| BrokerError::Client { brokers: brokers.into(), source };
    let mut starts = Vec::with_capacity(topics.len());
    for (agency, topic) in topics {
        let own = group_of(group, agency);
        let consumer = consumer(brokers, security, &own)?;
        let former: BaseConsumer = base_config(brokers, security).set("group.id", group).create().map_err(client)?;
        let topic = topic.clone();
        starts.push(async move {
            let mut pause = std::time::Duration::from_millis(500);
            let mut attempt = 1;
            let (consumer, former, name) = (Arc::new(consumer), Arc::new(former), topic.clone());
            loop {
                let (c, f, n) = (consumer.clone(), former.clone(), name.clone());
                let carried = tokio::task::spawn_blocking(move || carry_offsets_over(&f, &c, &n))
                    .await
                    .map_err(|e| format!("the start of the consumer of {topic} was interrupted: {e}"))?;
                match carried {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(topic = %topic, group = %own, partitions = n, "ack consumer: offsets carried over from the former shared group");
                        }
                        break;
                    }
                    Err(e) if attempt < CARRY_ATTEMPTS => {
                        tracing::warn!(topic = %topic, group = %own, error = %e, attempt,
                            "ack consumer: the group coordinator did not say where this topic was read to; asking again");
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                        attempt += 1;
                    }
                    Err(e) => {
                        return Err(format!(
                            "the group coordinator did not say where {topic} was read to ({e}), after {CARRY_ATTEMPTS} tries: \
                             check that the broker runs and the gateway may read the groups {group}*"
                        ))
                    }
                }
            }
            drop(former);
            let consumer = Arc::into_inner(consumer).ok_or_else(|| format!("the consumer of {topic} is still in use"))?;
            consumer.subscribe(&[topic.as_str()]).map_err(|e| format!("cannot subscribe to {topic}: {e}"))?;
            Ok::<_, String>(consumer)
        });
    }
    futures_util::future::try_join_all(starts).await.map_err(BrokerError::AckConsumers)
}

/// Times the group coordinator is asked where a topic was read to, at start.
pub const CARRY_ATTEMPTS: u32 = 5;

/// How long one call to the group coordinator may take at start.
const COORDINATOR_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Commits for `consumer`'s group the offsets `former`'s group committed on `topic`, when the
/// former has some and the consumer's group has none; how many partitions it carried.
fn carry_offsets_over(former: &BaseConsumer, consumer: &AckConsumer, topic: &str) -> rdkafka::error::KafkaResult<usize> {
    let metadata = consumer.fetch_metadata(Some(topic), COORDINATOR_WAIT)?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(topic, *p);
    }
    let committed = |offsets: &TopicPartitionList| offsets.elements().iter().filter(|e| matches!(e.offset(), rdkafka::Offset::Offset(_))).count();
    if committed(&consumer.committed_offsets(wanted.clone(), COORDINATOR_WAIT)?) > 0 {
        return Ok(0);
    }
    let earlier = former.committed_offsets(wanted, COORDINATOR_WAIT)?;
    let mut carry = TopicPartitionList::new();
    for e in earlier.elements() {
        if let rdkafka::Offset::Offset(at) = e.offset() {
            carry.add_partition_offset(topic, e.partition(), rdkafka::Offset::Offset(at))?;
        }
    }
    if carry.count() == 0 {
        return Ok(0);
    }
    consumer.commit(&carry, CommitMode::Sync)?;
    Ok(carry.count())
}

/// Creates a consumer in `group`, not yet subscribed.
fn consumer(brokers: &str, security: &crate::config::KafkaSecurity, group: &str) -> Result<AckConsumer, BrokerError> {
    base_config(brokers, security)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Eager assignment, which `AckContext::rebalance` implements.
        .set("partition.assignment.strategy", "range")
        .create_with_context(AckContext)
        .map_err(|source| BrokerError::Client { brokers: brokers.into(), source })
}

/// Applies acknowledgments from every agency's ack topic until `shutdown`, each topic by its
/// own consumer ([`consumers`]), none waiting for another.
pub async fn run(gateway: Arc<Gateway>, consumers: Vec<AckConsumer>, producer: FutureProducer, shutdown: watch::Receiver<bool>) {
    let each = consumers.into_iter().map(|consumer| run_one(gateway.clone(), consumer, producer.clone(), shutdown.clone()));
    futures_util::future::join_all(each).await;
}

/// Applies the acknowledgments of one consumer's topic until `shutdown`.
async fn run_one(gateway: Arc<Gateway>, consumer: AckConsumer, producer: FutureProducer, mut shutdown: watch::Receiver<bool>) {
    let mut guard = CloseOnlyWhenStopping { consumer: Some(consumer), stopping: false };
    let Some(consumer) = guard.consumer.as_ref() else { return };
    'records: loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.changed() => break,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ack consumer: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let body = msg.payload().map(|b| crate::json::parse_bounded(b, gateway.json_limits()));
        // The writer is the agency whose topic this is (Kafka's ACLs saw to that).
        let Some(writer) = gateway.topics().ack_topic_agency(msg.topic()).map(|agency| Participant::Agency { id: format!("kafka:{agency}"), agency }) else {
            tracing::warn!(topic = msg.topic(), "ack consumer: a record from a topic that is no agency's was skipped");
            let _ = consumer.store_offset_from_message(&msg);
            continue;
        };
        // An answer the store could not take is applied again, in place, until it is or the
        // gateway stops: the consumer never moves past it, so no later offset of its partition
        // is stored over it (a seek back could fail, and the next record's offset would then be
        // stored past an answer never applied). Stopping here stores nothing for it: the next
        // start, or another instance of the group, reads it again.
        while !take(&gateway, &producer, &writer, &msg, &body).await {
            tokio::select! {
                _ = tokio::time::sleep(STORE_RETRY_PAUSE) => {}
                _ = shutdown.changed() => break 'records,
            }
        }
        if let Err(e) = consumer.store_offset_from_message(&msg) {
            tracing::warn!(error = %e, "ack consumer: cannot store the offset");
        }
    }
    // The final commit and the leave from the group block (librdkafka waits for the group's
    // coordinator, which may be in the middle of a rebalance, e.g. right after start): on a
    // thread of their own, waited for at most `CLOSE_WAIT`, so the stop stays bounded. Offsets
    // not committed by then were stored after their answers were applied: the next member of
    // the group reads those records again, and answers are idempotent.
    guard.stopping = true;
    let (closed, close_done) = tokio::sync::oneshot::channel();
    let closer = std::thread::Builder::new().name("ack-consumer-close".into()).spawn(move || {
        if let Some(consumer) = guard.consumer.as_ref() {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "ack consumer: final commit had nothing to do or failed");
            }
        }
        drop(guard); // leaves the group while the broker is still there
        let _ = closed.send(());
    });
    match closer {
        Ok(_) => match tokio::time::timeout(CLOSE_WAIT, close_done).await {
            Ok(_) => tracing::info!("ack consumer: stopped"),
            Err(_) => tracing::warn!(waited_ms = CLOSE_WAIT.as_millis() as u64,
                "ack consumer: the group did not confirm the leave in time; stopping anyway (the group reassigns its partitions)"),
        },
        // The closure, and the consumer with it, was dropped here: closed on this thread.
        Err(e) => tracing::warn!(error = %e, "ack consumer: cannot start the closing thread; the consumer was closed in place"),
    }
}

/// The longest a stop waits for the ack consumer's final commit and leave from the group.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Wait before an answer the store could not take is tried again.
const STORE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies one record's answer (or tells the agency of its refusal and records it in the audit
/// log); `false` when the store or the broker could not take either, so the record must be
/// tried again before the consumer moves on.
async fn take(
    gateway: &Gateway,
    producer: &FutureProducer,
    writer: &Participant,
    msg: &rdkafka::message::BorrowedMessage<'_>,
    body: &Option<Result<serde_json::Value, crate::json::JsonError>>,
) -> bool {
    let problem = match body {
        Some(Ok(body)) => match gateway.acknowledge(writer, body, "kafka").await {
            Ok(applied) => {
                if applied.outcome.changed() {
                    tracing::info!(document = %applied.document_id, agency = %applied.agency,
                        outcome = applied.outcome.as_str(), "acknowledgment applied from the ack topic");
                } else if applied.outcome == crate::domain::AckOutcome::Duplicate {
                    // The same answer again (or the same record read again after a restart):
                    // nothing to tell.
                    tracing::info!(document = %applied.document_id, agency = %applied.agency,
                        "acknowledgment from the ack topic repeats the delivery's status; it changed nothing");
                } else {
                    tracing::info!(document = %applied.document_id, agency = %applied.agency, outcome = applied.outcome.as_str(),
                        "acknowledgment from the ack topic recorded in the delivery's history; it changed nothing: the agency is told on its refused-answers topic");
                    if let Some(agency) = writer.agency() {
                        let time = crate::clock::rfc3339(crate::clock::now_millis());
                        let body = unchanged_notice(&applied, msg.topic(), msg.partition(), msg.offset(), msg.key(), &time);
                        let notice = Notice { ce_type: UNCHANGED, content_type: "application/json", body, code: applied.outcome.as_str(), place: "answer", time };
                        // Told or not, the answer stands: `tell` logs a notice the broker would not take.
                        tell(gateway, producer, agency, msg, &notice).await;
                    }
                }
                return true;
            }
            Err(AckError::Store(e)) => {
                tracing::error!(error = %e, "ack consumer: the store refused; the answer will be tried again");
                if let Some(agency) = writer.agency() {
                    gateway.metrics().ack_store_retry(agency.as_str());
                }
                return false;
            }
            Err(e) => ApiError::from(e),
        },
        Some(Err(e)) => json_problem(e),
        None => ApiError::new(Code::MalformedJson, "the record has no value: an acknowledgment is a JSON object"),
    };
    tracing::warn!(error = %problem, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(),
        "ack consumer: acknowledgment refused; the agency is told on its refused-answers topic");
    let told = match writer.agency() {
        Some(agency) => {
            let time = crate::clock::rfc3339(crate::clock::now_millis());
            let body = refusal_notice(&problem.problem(), msg.topic(), msg.partition(), msg.offset(), msg.key(), &time);
            let notice = Notice { ce_type: REFUSED, content_type: "application/problem+json", body, code: problem.code.as_str(), place: "refused", time };
            let told = tell(gateway, producer, agency, msg, &notice).await;
            gateway.metrics().refusal_notice(agency.as_str(), told.as_str());
            told
        }
        None => Told::Published,
    };
    audit_refusal(gateway, writer, msg, problem.to_string(), told).await
}

/// The CloudEvents type of a refused answer's notice.
pub const REFUSED: &str = "org.ventanilla.acknowledgment.refused";

/// The CloudEvents type of the notice of an answer taken but that changed nothing (`late` or
/// `stale`), told on the same refused-answers topic: over HTTP the answer's body says so; over
/// Kafka the agency would otherwise never know.
pub const UNCHANGED: &str = "org.ventanilla.acknowledgment.unchanged";

/// The largest refusal notice, in bytes: far below any broker's record limit, so a notice never
/// fails for its size (what it echoes of the refused record is cut to fit).
pub const MAX_NOTICE_BYTES: usize = 64 * 1024;

/// The most of a refused record's key a notice repeats (as its own key, and in `refused.key`).
pub const MAX_ECHOED_KEY_BYTES: usize = 256;

/// Schema violations a notice lists; the rest are counted (`errorsOmitted`).
const MAX_NOTICE_ERRORS: usize = 20;

/// Times a notice is offered to the broker before it is dead-lettered, and the first pause
/// between two tries (doubled each time).
pub const NOTICE_ATTEMPTS: u32 = 4;
const NOTICE_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// What became of a refusal notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// On the agency's refused-answers topic.
    Published,
    /// Not taken there after [`NOTICE_ATTEMPTS`] tries: a notice without its echo went to the
    /// dead-letter topic instead.
    DeadLettered,
    /// Taken by neither topic: the audit log alone keeps the refusal.
    Undelivered,
}

impl Told {
    pub fn as_str(self) -> &'static str {
        match self {
            Told::Published => "published",
            Told::DeadLettered => "dead_lettered",
            Told::Undelivered => "undelivered",
        }
    }
}

/// At most `max` bytes of `bytes`, read as UTF-8 (lossy), cut on a character boundary.
fn cut(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    // A multi-byte character cut in two reads as U+FFFD at the end: dropped.
    match text.strip_suffix('\u{FFFD}') {
        Some(head) if bytes.len() > max => head.to_owned(),
        _ => text,
    }
}

/// The notice of a refused record: the problem, where the record was, and as much of its key as
/// fits; never more than [`MAX_NOTICE_BYTES`] (what was cut is said: `keyTruncated`,
/// `keyBytes`, `errorsOmitted`, `detailTruncated`).
pub fn refusal_notice(problem: &serde_json::Value, topic: &str, partition: i32, offset: i64, key: Option<&[u8]>, at: &str) -> String {
    let mut body = problem.clone();
    let mut refused = serde_json::json!({ "topic": topic, "partition": partition, "offset": offset });
    refused["key"] = serde_json::Value::Null;
    if let Some(key) = key {
        refused["key"] = serde_json::json!(cut(key, MAX_ECHOED_KEY_BYTES));
        if key.len() > MAX_ECHOED_KEY_BYTES {
            refused["keyTruncated"] = serde_json::json!(true);
            refused["keyBytes"] = serde_json::json!(key.len());
        }
    }
    body["refused"] = refused;
    body["refusedAt"] = serde_json::json!(at);
    if let Some(errors) = body.get_mut("errors").and_then(serde_json::Value::as_array_mut) {
        if errors.len() > MAX_NOTICE_ERRORS {
            let omitted = errors.len() - MAX_NOTICE_ERRORS;
            errors.truncate(MAX_NOTICE_ERRORS);
            body["errorsOmitted"] = serde_json::json!(omitted);
        }
    }
    let text = body.to_string();
    if text.len() <= MAX_NOTICE_BYTES {
        return text;
    }
    // Still too long (long messages in the violations): the detail cut, the violations left out.
    let omitted = body.get("errors").and_then(serde_json::Value::as_array).map_or(0, Vec::len)
        + body.get("errorsOmitted").and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
    if let Some(map) = body.as_object_mut() {
        map.remove("errors");
        if omitted > 0 {
            map.insert("errorsOmitted".into(), serde_json::json!(omitted));
        }
        if let Some(detail) = map.get("detail").and_then(serde_json::Value::as_str) {
            if detail.len() > 1024 {
                let short = cut(detail.as_bytes(), 1024);
                map.insert("detail".into(), serde_json::json!(short));
                map.insert("detailTruncated".into(), serde_json::json!(true));
            }
        }
    }
    body.to_string()
}

/// The notice of an answer that changed nothing: what applying it found (`outcome`: `late` or
/// `stale`, the delivery's status and the consignment's state), why in words,
/// and where the answer was (`answer`: topic, partition, offset, as much of its key as fits).
pub fn unchanged_notice(applied: &crate::store::AckApplied, topic: &str, partition: i32, offset: i64, key: Option<&[u8]>, at: &str) -> String {
    let why = match applied.outcome {
        crate::domain::AckOutcome::Stale => "the answer is older news than the delivery's current one",
        _ => "the delivery already had a final answer",
    };
    let mut body = serde_json::json!(applied);
    body["detail"] = serde_json::json!(format!(
        "{why} ({}): the answer is recorded in the delivery's history as `{}` and changed nothing",
        applied.delivery_status.as_str(),
        applied.outcome.as_str()
    ));
    body["answer"] = serde_json::json!({
        "topic": topic, "partition": partition, "offset": offset,
        "key": key.map(|k| cut(k, MAX_ECHOED_KEY_BYTES)),
    });
    body["toldAt"] = serde_json::json!(at);
    body.to_string()
}

/// A notice to an agency about one record of its ack topic: a refusal, or an answer that
/// changed nothing.
struct Notice {
    ce_type: &'static str,
    content_type: &'static str,
    body: String,
    /// What the dead-letter topic says of it: the problem's code, or the answer's outcome.
    code: &'static str,
    /// The member that names the record's place: `refused`, or `answer`.
    place: &'static str,
    time: String,
}

/// Tells the agency `notice` about `msg` on its refused-answers topic, tried
/// [`NOTICE_ATTEMPTS`] times; then on the dead-letter topic, without the echo. Never waits for
/// ever: the consumer moves on whatever this answers.
async fn tell(
    gateway: &Gateway,
    producer: &FutureProducer,
    agency: &crate::domain::AgencyId,
    msg: &rdkafka::message::BorrowedMessage<'_>,
    notice: &Notice,
) -> Told {
    let topic = gateway.topics().refused_acks(agency);
    let place = format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
    let (body, time) = (&notice.body, &notice.time);
    let key = msg.key().map(|k| &k[..k.len().min(MAX_ECHOED_KEY_BYTES)]);
    let headers = || {
        [
            ("ce_specversion", "1.0"),
            ("ce_id", place.as_str()),
            ("ce_source", super::cloudevents::SOURCE),
            ("ce_type", notice.ce_type),
            ("ce_time", time.as_str()),
            ("ce_agency", agency.as_str()),
            ("content-type", notice.content_type),
        ]
        .iter()
        .fold(OwnedHeaders::new_with_capacity(7), |h, (k, v)| h.insert(Header { key: k, value: Some(v.as_bytes()) }))
    };
    let mut pause = NOTICE_FIRST_PAUSE;
    for attempt in 1..=NOTICE_ATTEMPTS {
        let mut record: FutureRecord<'_, [u8], str> = FutureRecord::to(&topic).payload(body.as_str()).headers(headers());
        if let Some(key) = key {
            record = record.key(key);
        }
        match producer.send(record, Timeout::After(std::time::Duration::from_secs(5))).await {
            Ok(_) => return Told::Published,
            Err((e, _)) if attempt < NOTICE_ATTEMPTS => {
                tracing::warn!(error = %e, topic = %topic, attempt, "ack consumer: the notice to the agency was not taken; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err((e, _)) => {
                tracing::error!(error = %e, topic = %topic, attempts = NOTICE_ATTEMPTS,
                    "ack consumer: the notice to the agency was not taken; it goes to the dead-letter topic and the consumer moves on");
            }
        }
    }
    // The dead-letter topic gets what an operator needs to find the record: its place, the
    // problem's code and the agency, with nothing of the record itself.
    let mut dead = serde_json::json!({
        "type": notice.ce_type,
        "agency": agency,
        "code": notice.code,
        "reason": format!("the notice could not be published on {topic}"),
    });
    dead[notice.place] = serde_json::json!({ "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset() });
    dead[if notice.place == "refused" { "refusedAt" } else { "toldAt" }] = serde_json::json!(time);
    let dead = dead.to_string();
    let dead_topic = gateway.topics().dead_letter();
    let record: FutureRecord<'_, [u8], str> = FutureRecord::to(&dead_topic).payload(dead.as_str()).headers(headers());
    match producer.send(record, Timeout::After(std::time::Duration::from_secs(5))).await {
        Ok(_) => Told::DeadLettered,
        Err((e, _)) => {
            tracing::error!(error = %e, topic = %dead_topic, "ack consumer: the refusal could not be dead-lettered either; the audit log keeps it");
            Told::Undelivered
        }
    }
}

/// Closes the consumer only on the orderly way out. rust-rdkafka closes a consumer on drop and
/// waits, without a bound, for librdkafka to leave the group; if this task is cancelled instead
/// (its runtime dropped, its broker perhaps already gone), that wait would never end, so the
/// consumer is leaked rather than closed.
struct CloseOnlyWhenStopping {
    consumer: Option<AckConsumer>,
    stopping: bool,
}

impl Drop for CloseOnlyWhenStopping {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            if !self.stopping {
                std::mem::forget(consumer);
            }
        }
    }
}

/// Records a refused answer from the ack topic in the audit log, with what became of its notice;
/// `false` when the log could not be written (the record is then read again rather than skipped
/// unrecorded).
async fn audit_refusal(gateway: &Gateway, writer: &Participant, msg: &rdkafka::message::BorrowedMessage<'_>, reason: String, told: Told) -> bool {
    let entry = crate::audit::AuditEntry {
        at: crate::clock::now_millis(),
        participant: writer.id().to_owned(),
        action: "acknowledgment.refused",
        subject: format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset()),
        detail: serde_json::json!({ "reason": reason.chars().take(500).collect::<String>(), "notice": told.as_str() }),
    };
    match gateway.audit(vec![entry]).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "ack consumer: a refusal could not be audited; the record will be read again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_always_fits_and_says_what_it_cut() {
        let problem = serde_json::json!({"type": "about:blank", "code": "malformed-json", "title": "t", "status": 400, "detail": "not JSON"});
        let key = vec![b'k'; 600 * 1024];
        let text = refusal_notice(&problem, "p.acks.br-customs", 2, 41, Some(&key), "2026-01-01T00:00:00Z");
        assert!(text.len() <= MAX_NOTICE_BYTES, "{}", text.len());
        let notice: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(notice["refused"]["key"].as_str().map(str::len), Some(MAX_ECHOED_KEY_BYTES));
        assert_eq!(notice["refused"]["keyTruncated"], true);
        assert_eq!(notice["refused"]["keyBytes"], 600 * 1024);
        assert_eq!((notice["refused"]["partition"].as_i64(), notice["refused"]["offset"].as_i64()), (Some(2), Some(41)));

        // A short key is repeated whole, and says nothing of cutting.
        let notice: serde_json::Value =
            serde_json::from_str(&refusal_notice(&problem, "t", 0, 1, Some(b"5AR-1"), "now")).unwrap();
        assert_eq!(notice["refused"]["key"], "5AR-1");
        assert!(notice["refused"].get("keyTruncated").is_none());

        // Many long violations: listed up to the bound, then left out whole if still too long.
        let errors: Vec<serde_json::Value> =
            (0..5000).map(|i| serde_json::json!({"pointer": format!("/x/{i}"), "message": "m".repeat(4000)})).collect();
        let long = serde_json::json!({"code": "invalid-acknowledgment", "detail": "d".repeat(100_000), "errors": errors});
        let text = refusal_notice(&long, "t", 0, 1, None, "now");
        assert!(text.len() <= MAX_NOTICE_BYTES, "{}", text.len());
        let notice: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(notice["errorsOmitted"], 5000);
        assert_eq!(notice["detailTruncated"], true);
        assert_eq!(notice["code"], "invalid-acknowledgment");
    }

    #[test]
    fn a_key_is_cut_on_a_character_boundary() {
        let key = "ñ".repeat(200); // 400 bytes, two a character
        let cut = cut(key.as_bytes(), 255);
        assert_eq!(cut, "ñ".repeat(127));
    }
}
