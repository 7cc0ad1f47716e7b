//! The relay: publishes the outbox to Kafka. A delivery is marked dispatched only on the
//! broker's confirmation; until then it stays in the outbox and is sent again after a restart.
//! Records of one consignment share its UCR as key, and leave in commit order, so an agency
//! sees a consignment's documents in order.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::{watch, Notify};

use super::cloudevents;
use crate::clock::now_millis;
use crate::store::Store;

/// Deliveries taken from the outbox per round.
const BATCH: usize = 500;
/// Wait between rounds when the outbox is empty and nothing wakes the relay.
const IDLE: Duration = Duration::from_millis(500);

/// Shared by the HTTP front and the relay: a submission wakes the relay at once.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn notify(&self) {
        self.0.notify_one();
    }
    async fn wait(&self, d: Duration) {
        let _ = tokio::time::timeout(d, self.0.notified()).await;
    }
}

/// Sends a record, waiting while the producer's queue is full (backpressure, not failure).
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

/// Runs until `shutdown` turns true, then publishes what is left if the broker allows,
/// and flushes the producer.
pub async fn run_delivery_relay(
    store: Arc<dyn Store>,
    producer: FutureProducer,
    wakeup: Wakeup,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let stopping = *shutdown.borrow();
        let batch = match store.pending_deliveries(BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "relay: cannot read the outbox");
                Vec::new()
            }
        };
        if batch.is_empty() {
            if stopping {
                break;
            }
            tokio::select! {
                _ = wakeup.wait(IDLE) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let mut in_flight = Vec::with_capacity(batch.len());
        let mut failed = false;
        for d in &batch {
            let headers = cloudevents::delivery_headers(d);
            let record = FutureRecord::to(&d.topic)
                .key(d.ucr.as_str())
                .payload(d.payload.as_str())
                .headers(headers);
            match send(&producer, record).await {
                Ok(f) => in_flight.push((d.delivery_id, f)),
                Err(e) => {
                    tracing::warn!(delivery = d.delivery_id, error = %e, "relay: cannot enqueue a delivery");
                    failed = true;
                    break; // keep order: later deliveries wait for this one
                }
            }
        }
        let mut confirmed = Vec::with_capacity(in_flight.len());
        for (id, f) in in_flight {
            match f.await {
                Ok(Ok(_)) => confirmed.push(id),
                Ok(Err((e, _))) => {
                    failed = true;
                    tracing::warn!(delivery = id, error = %e, "relay: the broker did not confirm a delivery; it stays in the outbox");
                }
                Err(_) => failed = true,
            }
        }
        if !confirmed.is_empty() {
            let n = confirmed.len();
            if let Err(e) = store.mark_dispatched(confirmed, now_millis()).await {
                tracing::error!(error = %e, "relay: confirmed deliveries could not be marked; they will be sent again");
            } else {
                tracing::debug!(count = n, "relay: deliveries dispatched");
            }
        }
        if failed {
            if stopping {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        } else {
            backoff = Duration::from_millis(100);
        }
    }
    let p = producer.clone();
    let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10))).await;
    tracing::info!("relay: stopped, producer flushed");
}

/// Publishes consignment state changes on the status topic, in order.
pub async fn run_status_relay(
    store: Arc<dyn Store>,
    producer: FutureProducer,
    topic: String,
    wakeup: Wakeup,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stopping = *shutdown.borrow();
        let events = store.pending_status_events(BATCH).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "status relay: cannot read the status outbox");
            Vec::new()
        });
        if events.is_empty() {
            if stopping {
                break;
            }
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
            if let Err(e) = store.mark_status_published(published, now_millis()).await {
                tracing::error!(error = %e, "status relay: cannot mark events published");
            }
        }
        if !progress {
            if stopping {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
