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
//! offset moves on only once the refusal is confirmed by the broker and in the audit log.

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
use crate::domain::Role;
use crate::gateway::{AckError, Gateway, Participant};
use crate::http::body::json_problem;
use crate::http::errors::{ApiError, Code};

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

/// Creates the consumer of every agency's ack topic in the gateway's group.
pub fn consumer(
    brokers: &str,
    security: &crate::config::KafkaSecurity,
    group: &str,
    topics: &[String],
) -> Result<AckConsumer, BrokerError> {
    let c: AckConsumer = base_config(brokers, security)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Eager assignment, which `AckContext::rebalance` implements.
        .set("partition.assignment.strategy", "range")
        .create_with_context(AckContext)
        .map_err(|source| BrokerError::Client { brokers: brokers.into(), source })?;
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    c.subscribe(&topics).map_err(|source| BrokerError::Client { brokers: brokers.into(), source })?;
    Ok(c)
}

/// Applies acknowledgments until `shutdown`.
pub async fn run(gateway: Arc<Gateway>, consumer: AckConsumer, producer: FutureProducer, mut shutdown: watch::Receiver<bool>) {
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
        let body = msg.payload().map(|b| crate::json::parse_bounded(b, &gateway.json_limits));
        // The writer is the agency whose topic this is (Kafka's ACLs saw to that).
        let Some(writer) = gateway.topics.ack_topic_agency(msg.topic()).map(|agency| Participant {
            id: format!("kafka:{agency}"),
            role: Role::Agency,
            agency: Some(agency),
            country: None,
            acts_for: Vec::new(),
        }) else {
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
                } else {
                    tracing::info!(document = %applied.document_id, agency = %applied.agency, outcome = applied.outcome.as_str(),
                        "acknowledgment from the ack topic recorded in the delivery's history; it changed nothing");
                }
                return true;
            }
            Err(AckError::Store(e)) => {
                tracing::error!(error = %e, "ack consumer: the store refused; the answer will be tried again");
                return false;
            }
            Err(e) => ApiError::from(e),
        },
        Some(Err(e)) => json_problem(e),
        None => ApiError::new(Code::MalformedJson, "the record has no value: an acknowledgment is a JSON object"),
    };
    tracing::warn!(error = %problem, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(),
        "ack consumer: acknowledgment refused; the agency is told on its refused-answers topic");
    tell_refusal(gateway, producer, writer, msg, &problem).await && audit_refusal(gateway, writer, msg, problem.to_string()).await
}

/// The CloudEvents type of a refused answer's notice.
pub const REFUSED: &str = "org.ventanilla.acknowledgment.refused";

/// Publishes the refusal of `msg` on its agency's refused-answers topic; `false` when the broker
/// did not confirm it.
async fn tell_refusal(
    gateway: &Gateway,
    producer: &FutureProducer,
    writer: &Participant,
    msg: &rdkafka::message::BorrowedMessage<'_>,
    problem: &ApiError,
) -> bool {
    let Some(agency) = writer.agency.as_ref() else { return true };
    let topic = gateway.topics.refused_acks(agency);
    let place = format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
    let now = crate::clock::now_millis();
    let mut body = problem.problem();
    body["refused"] = serde_json::json!({
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": msg.key().map(String::from_utf8_lossy),
    });
    body["refusedAt"] = serde_json::json!(crate::clock::rfc3339(now));
    let body = body.to_string();
    let time = crate::clock::rfc3339(now);
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", place.as_str()),
        ("ce_source", super::cloudevents::SOURCE),
        ("ce_type", REFUSED),
        ("ce_time", time.as_str()),
        ("ce_agency", agency.as_str()),
        ("content-type", "application/problem+json"),
    ]
    .iter()
    .fold(OwnedHeaders::new_with_capacity(7), |h, (k, v)| h.insert(Header { key: k, value: Some(v.as_bytes()) }));
    let mut record: FutureRecord<'_, [u8], str> = FutureRecord::to(&topic).payload(body.as_str()).headers(headers);
    if let Some(key) = msg.key() {
        record = record.key(key);
    }
    match producer.send(record, Timeout::After(std::time::Duration::from_secs(5))).await {
        Ok(_) => true,
        Err((e, _)) => {
            tracing::error!(error = %e, topic = %topic, "ack consumer: the refusal could not be published; the record will be read again");
            false
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

/// Records a refused answer from the ack topic in the audit log; `false` when the log could
/// not be written (the record is then read again rather than skipped unrecorded).
async fn audit_refusal(gateway: &Gateway, writer: &Participant, msg: &rdkafka::message::BorrowedMessage<'_>, reason: String) -> bool {
    let entry = crate::audit::AuditEntry {
        at: crate::clock::now_millis(),
        participant: writer.id.clone(),
        action: "acknowledgment.refused",
        subject: format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset()),
        detail: serde_json::json!({ "reason": reason.chars().take(500).collect::<String>() }),
    };
    match crate::audit::record(&*gateway.store, entry).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "ack consumer: a refusal could not be audited; the record will be read again");
            false
        }
    }
}
