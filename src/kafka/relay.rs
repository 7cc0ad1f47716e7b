//! The relay: publishes the outbox to Kafka. A delivery is marked dispatched only on the
//! broker's confirmation; until then it stays in the outbox and is sent again after a restart.
//! Records of one consignment share its UCR as key, and leave in commit order, so an agency
//! sees a consignment's documents in order.
//!
//! Two kinds of failure, handled apart:
//! - **the broker is unreachable** (timeouts, transport errors, no leader): nothing is wrong
//!   with the records, so none uses an attempt; the relay backs off (up to 10 s) and tries the
//!   same records again, in order, until the broker is back;
//! - **the broker refuses a record** (too large, not authorized, unknown topic...): the
//!   delivery uses an attempt and waits an exponential, jittered delay, holding back the later
//!   records of its consignment on that topic; after [`RetryPolicy::max_attempts`] a notice
//!   goes to the dead-letter topic and the delivery is `failed` until an operator sends it again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

use super::cloudevents;
use crate::broker::BrokerHealth;
use crate::clock::now_millis;
use crate::outbox::{jitter_seed, RetryPolicy, Wakeup};
use crate::store::{OutboundDelivery, Store};

/// Deliveries taken from the outbox per round.
const BATCH: usize = 500;
/// Wait between rounds when the outbox is empty and nothing wakes the relay.
const IDLE: Duration = Duration::from_millis(500);

/// Sends a record, waiting while the producer's queue is full (backpressure, not failure).
/// A record the producer refuses outright (larger than `message.max.bytes`) fails here.
async fn send(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, str, str>,
) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
    loop {
        match producer.send_result(record) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Whether an error means the broker cannot be reached (the delivery waits, using no attempt)
/// rather than that it refused this record (the delivery uses an attempt).
pub fn broker_unreachable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    match e.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            MessageTimedOut | AllBrokersDown | BrokerTransportFailure | Resolve | BrokerDestroy
                | OperationTimedOut | RequestTimedOut | NetworkException | LeaderNotAvailable
                | NotLeaderForPartition | BrokerNotAvailable | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend | KafkaStorageError | PurgeQueue | PurgeInflight
                | PreferredLeaderNotAvailable | QueueFull
                // A fatal producer error is the client's state, not the record's: no attempt
                // is used up, and readiness reports the broker side down until a restart.
                | Fatal
        ),
        // Errors without a code (the client is going away, a cancelled future) are not the
        // record's fault either.
        None => true,
    }
}

/// What the delivery relay needs besides the store and the producer.
pub struct DeliveryRelay {
    pub store: Arc<dyn Store>,
    pub producer: FutureProducer,
    pub wakeup: Wakeup,
    pub health: BrokerHealth,
    pub retry: RetryPolicy,
    /// Where a delivery's notice goes after its last attempt.
    pub dead_letter_topic: String,
    /// Deliveries waiting for the broker, as last counted; read by submissions to bound the backlog.
    pub backlog: Arc<AtomicU64>,
    /// Publish latency for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This gateway's name in the store's claims (`crate::outbox`).
    pub instance: String,
}

impl DeliveryRelay {
    /// Runs until `shutdown` turns true: the batch in hand is finished, then the producer is
    /// flushed. What is left in the outbox waits for another gateway (once this one's claims
    /// are handed back) or this one's next start: a stop is not held up by a long outbox.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.store.read_with(|l| l.outbox_backlog()).await {
                Ok(n) => self.backlog.store(n, Ordering::Relaxed),
                Err(e) => tracing::error!(error = %e, "relay: cannot count the outbox"),
            }
            let batch = match crate::outbox::claim_due_deliveries(&*self.store, &self.instance, BATCH, now_millis()).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "relay: cannot read the outbox");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wakeup.wait(IDLE) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let unreachable = self.publish(batch).await;
            if unreachable {
                self.health.set(false);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            } else {
                backoff = Duration::from_millis(100);
            }
        }
        let p = self.producer.clone();
        // Bounded by the stop's budget too (`startup.rs`): what is not confirmed by then stays
        // pending in the store.
        let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(3))).await;
        tracing::info!("relay: stopped, producer flushed");
    }

    /// Publishes one batch; records confirmations and refusals. Returns whether the broker
    /// was unreachable (the rest of the batch stays in the outbox for the next round).
    async fn publish(&self, batch: Vec<OutboundDelivery>) -> bool {
        let mut in_flight = Vec::with_capacity(batch.len());
        let mut refused: Vec<(&OutboundDelivery, String)> = Vec::new();
        // Topic and UCR of records refused in this round: later records of the same
        // consignment wait behind them.
        let mut held: Vec<(&str, &str)> = Vec::new();
        let mut unreachable = false;
        for d in &batch {
            if held.contains(&(d.topic.as_str(), d.ucr.as_str())) {
                continue;
            }
            let record = FutureRecord::to(&d.topic)
                .key(d.ucr.as_str())
                .payload(d.payload.as_str())
                .headers(cloudevents::delivery_headers(d));
            let sent_at = std::time::Instant::now();
            match send(&self.producer, record).await {
                Ok(f) => in_flight.push((d, f, sent_at)),
                Err(e) if broker_unreachable(&e) => {
                    tracing::warn!(delivery = d.delivery_id, error = %e, "relay: cannot enqueue a delivery; the broker is unreachable");
                    unreachable = true;
                    break; // keep order: later deliveries wait for this one
                }
                Err(e) => {
                    held.push((d.topic.as_str(), d.ucr.as_str()));
                    refused.push((d, e.to_string()));
                }
            }
        }
        let mut confirmed = Vec::with_capacity(in_flight.len());
        for (d, f, sent_at) in in_flight {
            match f.await {
                Ok(Ok(_)) => {
                    self.metrics.published(sent_at.elapsed());
                    confirmed.push((d.delivery_id, d.ucr.clone()));
                }
                Ok(Err((e, _))) if broker_unreachable(&e) => {
                    unreachable = true;
                    tracing::warn!(delivery = d.delivery_id, error = %e, "relay: the broker did not confirm a delivery; it stays in the outbox");
                }
                Ok(Err((e, _))) => refused.push((d, e.to_string())),
                Err(_) => unreachable = true,
            }
        }
        if !confirmed.is_empty() {
            self.health.set(true);
            let n = confirmed.len();
            if let Err(e) = crate::outbox::confirmed(&*self.store, confirmed, now_millis()).await {
                tracing::error!(error = %e, "relay: confirmed deliveries could not be marked; they will be sent again");
            } else {
                tracing::debug!(count = n, "relay: deliveries dispatched");
            }
        }
        for (d, error) in refused {
            self.refused(d, error).await;
        }
        unreachable
    }

    /// The broker refused `d`'s record: wait and try again, or after the last attempt publish
    /// a notice on the dead-letter topic and mark the delivery failed.
    async fn refused(&self, d: &OutboundDelivery, error: String) {
        let attempt = d.attempts + 1;
        let now = now_millis();
        if attempt < self.retry.max_attempts {
            let delay = self.retry.delay(attempt, jitter_seed(d.delivery_id as u64));
            tracing::warn!(delivery = d.delivery_id, document = %d.document_id, agency = %d.agency, attempt,
                max_attempts = self.retry.max_attempts, retry_in_ms = delay.as_millis() as u64, error = %error,
                "relay: the broker refused a delivery; it will be tried again");
            let next = now + delay.as_millis() as i64;
            if let Err(e) = crate::outbox::refused(&*self.store, d.delivery_id, d.ucr.clone(), now, error, next).await {
                tracing::error!(error = %e, "relay: cannot record a refused attempt");
            }
            return;
        }
        let notice = serde_json::json!({
            "deliveryId": d.delivery_id,
            "documentId": d.document_id,
            "ucr": d.ucr,
            "agency": d.agency,
            "topic": d.topic,
            "documentType": d.document_type,
            "attempts": attempt,
            "reason": error,
            "failedAt": crate::clock::rfc3339(now),
        })
        .to_string();
        let headers = cloudevents::dead_letter_headers(d, &error);
        let record = FutureRecord::to(&self.dead_letter_topic).key(d.ucr.as_str()).payload(notice.as_str()).headers(headers);
        let notice_error = match send(&self.producer, record).await {
            Ok(f) => match f.await {
                Ok(Ok(_)) => None,
                Ok(Err((e, _))) => Some(e),
                Err(_) => Some(KafkaError::Canceled),
            },
            Err(e) => Some(e),
        };
        let error = match notice_error {
            None => error,
            Some(e) if broker_unreachable(&e) => {
                // The notice must precede the failed status: once the broker is back, the last
                // attempt is made again and the notice with it.
                tracing::warn!(delivery = d.delivery_id, error = %e, "relay: the broker is unreachable for the dead-letter notice; retrying");
                return;
            }
            Some(e) => {
                // The dead-letter topic refuses too: the delivery still fails visibly (store,
                // API, log), with both reasons.
                tracing::error!(delivery = d.delivery_id, topic = %self.dead_letter_topic, error = %e,
                    "relay: the dead-letter topic refused the notice; the delivery is marked failed without it");
                format!("{error}; the dead-letter notice was refused too: {e}")
            }
        };
        tracing::error!(delivery = d.delivery_id, document = %d.document_id, agency = %d.agency, attempts = attempt,
            error = %error, topic = %self.dead_letter_topic,
            "relay: delivery FAILED after its last attempt. Fix the cause, then send it again: \
             POST /v1/deliveries/{{id}}/retry or `ventanilla deliveries retry`");
        if let Err(e) = crate::outbox::failed(&*self.store, d.delivery_id, d.ucr.clone(), now, error).await {
            tracing::error!(error = %e, "relay: cannot mark a delivery failed; it will be tried again");
        }
    }
}

/// Publishes consignment state changes on the status topic, in order per consignment, for the
/// consignments this gateway (`instance`) claims; stops as the delivery relay does.
pub async fn run_status_relay(
    store: Arc<dyn Store>,
    producer: FutureProducer,
    topic: String,
    wakeup: Wakeup,
    instance: String,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        let events = crate::outbox::claim_status_events(&*store, &instance, BATCH, now_millis()).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "status relay: cannot read the status outbox");
            Vec::new()
        });
        if events.is_empty() {
            tokio::select! {
                _ = wakeup.wait(IDLE) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let mut published = Vec::new();
        for ev in &events {
            let id = format!("status-{}", ev.id);
            let time = crate::clock::rfc3339(now_millis());
            let record = FutureRecord::to(&topic)
                .key(ev.ucr.as_str())
                .payload(ev.body.as_str())
                .headers(cloudevents::status_headers(&id, ev.ucr.as_str(), &time));
            let sent = match send(&producer, record).await {
                Ok(f) => matches!(f.await, Ok(Ok(_))),
                Err(_) => false,
            };
            if !sent {
                tracing::warn!(event = ev.id, "status relay: the broker did not confirm a status event; retrying");
                break;
            }
            published.push(ev.id);
        }
        let progress = !published.is_empty();
        if progress {
            let at = now_millis();
            let marked = store.write_with(Vec::new(), move |l| l.mark_status_published(&published, at));
            if let Err(e) = marked.await {
                tracing::error!(error = %e, "status relay: cannot mark events published");
            }
        }
        if !progress {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_stay_capped_and_jitter_within_the_upper_half() {
        let p = RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_millis(10_000),
        };
        for (attempt, ceiling) in [(1, 500), (2, 1000), (3, 2000), (4, 4000), (5, 8000), (6, 10_000), (40, 10_000)] {
            let mut seen = std::collections::HashSet::new();
            for seed in 0..200u64 {
                let d = p.delay(attempt, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).as_millis() as u64;
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d} ms outside [{}, {ceiling}]", ceiling / 2);
                seen.insert(d);
            }
            assert!(seen.len() > 10, "attempt {attempt}: the delay is jittered ({} distinct values)", seen.len());
        }
    }

    #[test]
    fn unreachable_brokers_use_no_attempts_but_refused_records_do() {
        use rdkafka::error::KafkaError::MessageProduction;
        assert!(broker_unreachable(&MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        assert!(broker_unreachable(&MessageProduction(RDKafkaErrorCode::AllBrokersDown)));
        assert!(broker_unreachable(&MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)));
        assert!(!broker_unreachable(&MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!broker_unreachable(&MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)));
        assert!(!broker_unreachable(&MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition)));
    }
}
