//! The rules of a delivery's way to its agency's topic, whichever store holds the rows: which
//! gateway publishes a consignment's records (claims), what the broker's confirmation, a refusal
//! and the last failed attempt record, and what an operator's retry does. Each step is in the
//! delivery's history and the audit log.
//!
//! **Claims.** Gateways sharing a store publish a consignment's records (deliveries and status
//! events) only while they hold its claim, one gateway per UCR at a time: so each record is
//! published once in normal operation, and a consignment's records leave in order. A claim is a
//! lease of [`CLAIM_LEASE_MS`], renewed at every round of the relay that holds it; a gateway that
//! dies loses its claims when their leases run out, and the others take its consignments over.
//! A gateway that stops hands its claims back at once.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::audit;
use crate::clock::{now_millis, rfc3339, Millis};
use crate::domain::Ucr;
use crate::store::{
    DeliveryEvent, DeliveryPlace, Ledger, OutboundDelivery, RetryOutcome, RetrySelection, StatusEvent, Store, StoreError, Subject,
};
use crate::tracking::refresh_consignment;

/// Wakes the relay at once when there is something to publish (a submission, an answer), rather
/// than at its next idle round. Shared by whatever writes deliveries and the relay that sends
/// them.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn notify(&self) {
        self.0.notify_one();
    }

    /// Waits until woken, or `d` at most.
    pub async fn wait(&self, d: Duration) {
        let _ = tokio::time::timeout(d, self.0.notified()).await;
    }
}

/// How long a claim on a consignment lasts unless its relay renews it: how soon the other
/// gateways take over the consignments of one that died. Longer than the producer's message
/// timeout (30 s, `kafka/mod.rs`): a record the holder has in flight is confirmed or given up
/// before another gateway may publish the consignment's records, so a slow broker cannot make
/// two gateways publish one consignment at once, out of order.
pub const CLAIM_LEASE_MS: Millis = 45_000;

/// Claims each of `ucrs` for `instance`; the UCRs won.
/// In UCR order, the same on every gateway: two gateways claiming overlapping consignments at
/// once take each claim's row in one order, so neither waits for a row the other waits on.
fn claim_all<'a>(l: &mut dyn Ledger, instance: &str, ucrs: impl Iterator<Item = &'a Ucr>, now: Millis) -> Result<HashSet<String>, StoreError> {
    let ucrs: BTreeSet<&Ucr> = ucrs.collect();
    let mut won = HashSet::new();
    for ucr in ucrs {
        if l.claim_consignment(ucr, instance, now, now + CLAIM_LEASE_MS)? {
            won.insert(ucr.as_str().to_owned());
        }
    }
    Ok(won)
}

/// Records of one kind waiting to be published, as `due` reads them for `instance`.
type Due<T> = fn(&mut dyn Ledger, &str, usize, Millis) -> Result<Vec<T>, StoreError>;

/// The records `due` gives `instance` now, of the consignments it holds or wins the claim on,
/// in their order. Reads first, and claims only when something is due.
async fn claim_due<T: Send + 'static>(store: &dyn Store, instance: &str, limit: usize, now: Millis, due: Due<T>, ucr: fn(&T) -> &Ucr)
    -> Result<Vec<T>, StoreError> {
    let me = instance.to_owned();
    if store.read_with(move |l| due(l, &me, 1, now)).await?.is_empty() {
        return Ok(Vec::new());
    }
    let me = instance.to_owned();
    store
        .write_with(Vec::new(), move |l| {
            let records = due(l, &me, limit, now)?;
            let won = claim_all(l, &me, records.iter().map(ucr), now)?;
            // All of a consignment's records or none: its order holds.
            Ok(records.into_iter().filter(|r| won.contains(ucr(r).as_str())).collect())
        })
        .await
}

/// The deliveries `instance` publishes now: due, of consignments it holds or wins the claim on,
/// oldest first.
pub async fn claim_due_deliveries(store: &dyn Store, instance: &str, limit: usize, now: Millis) -> Result<Vec<OutboundDelivery>, StoreError> {
    claim_due(store, instance, limit, now, |l, me, limit, now| l.due_deliveries(me, limit, now), |d| &d.ucr).await
}

/// The status events `instance` publishes now, under the same claims as the deliveries.
pub async fn claim_status_events(store: &dyn Store, instance: &str, limit: usize, now: Millis) -> Result<Vec<StatusEvent>, StoreError> {
    claim_due(store, instance, limit, now, |l, me, limit, now| l.unpublished_status_events(me, limit, now), |e| &e.ucr).await
}

/// Hands back every claim of `instance` (it stops); how many.
pub async fn release_claims(store: &dyn Store, instance: &str) -> Result<u64, StoreError> {
    let me = instance.to_owned();
    store.write_with(Vec::new(), move |l| l.release_claims(&me)).await
}

/// What an audit record says about a delivery.
fn detail(place: &DeliveryPlace) -> Value {
    json!({"deliveryId": place.id, "documentId": place.document_id, "agency": place.agency, "topic": place.topic})
}

fn place(l: &mut dyn Ledger, delivery_id: i64) -> Result<DeliveryPlace, StoreError> {
    l.delivery_place(delivery_id)?.ok_or_else(|| StoreError::Corrupt(format!("delivery {delivery_id} is missing")))
}

/// The consignments of `ucrs`, as subjects of a write.
fn consignments<'a>(ucrs: impl IntoIterator<Item = &'a Ucr>) -> Vec<Subject> {
    ucrs.into_iter().map(|u| Subject::Consignment(u.clone())).collect()
}

/// Records the broker's confirmations of deliveries (with their consignments). A confirmation
/// of a delivery already answered (the agency had it first) only fills in when it was
/// dispatched, and is recorded as late.
///
/// The confirmations of one call are audited together, in one `delivery.published` record:
/// about `delivery:<id>` with that delivery's place as its detail when there is one, else about
/// `deliveries:<id>,<id>,...` with `{"deliveries": [place, ...]}` (in the order confirmed).
pub async fn confirmed(store: &dyn Store, deliveries: Vec<(i64, Ucr)>, at: Millis) -> Result<(), StoreError> {
    let subjects = consignments(deliveries.iter().map(|(_, ucr)| ucr));
    store
        .write_with(subjects, move |l| {
            // The usual case in one statement for all: a pending delivery becomes dispatched,
            // and names what the audit record needs.
            let confirmed: Vec<(i64, Millis)> = deliveries.iter().map(|(id, _)| (*id, at)).collect();
            let marked = l.mark_dispatched(&confirmed)?;
            let mut published = Vec::with_capacity(deliveries.len());
            for ((id, _), marked) in deliveries.into_iter().zip(marked) {
                let (outcome, place) = match marked {
                    Some(place) => ("applied", place),
                    None => ("late", place(l, id)?),
                };
                l.add_delivery_event(id, DeliveryEvent { status: "dispatched", at, source: "broker", reason: None, outcome })?;
                published.push((id, detail(&place)));
            }
            let (subject, detail) = if published.len() == 1 {
                let (id, detail) = published.remove(0);
                (format!("delivery:{id}"), detail)
            } else if published.is_empty() {
                return Ok(());
            } else {
                let ids: Vec<String> = published.iter().map(|(id, _)| id.to_string()).collect();
                let details: Vec<Value> = published.into_iter().map(|(_, d)| d).collect();
                (format!("deliveries:{}", ids.join(",")), json!({ "deliveries": details }))
            };
            audit::append(l, &audit::entry(at, "gateway", "delivery.published", subject, detail))?;
            Ok(())
        })
        .await
}

/// The broker refused a delivery's record (of consignment `ucr`): one attempt more, due again
/// at `next_attempt_at`.
pub async fn refused(store: &dyn Store, delivery_id: i64, ucr: Ucr, at: Millis, error: String, next_attempt_at: Millis)
    -> Result<(), StoreError> {
    store
        .write_with(vec![Subject::Consignment(ucr)], move |l| {
            if !l.record_refusal(delivery_id, &error, next_attempt_at)? {
                return Ok(());
            }
            let mut detail = detail(&place(l, delivery_id)?);
            detail["error"] = json!(error);
            audit::append(l, &audit::entry(at, "gateway", "delivery.refused", format!("delivery:{delivery_id}"), detail))?;
            let reason = format!("{error}; next attempt at {}", rfc3339(next_attempt_at));
            l.add_delivery_event(
                delivery_id,
                DeliveryEvent { status: "refused", at, source: "broker", reason: Some(&reason), outcome: "applied" },
            )
        })
        .await
}

/// A delivery (of consignment `ucr`) failed after its last attempt (its dead-letter notice is
/// published): it waits for an operator, and its consignment shows it.
pub async fn failed(store: &dyn Store, delivery_id: i64, ucr: Ucr, at: Millis, error: String) -> Result<(), StoreError> {
    store
        .write_with(vec![Subject::Consignment(ucr)], move |l| {
            if !l.mark_failed(delivery_id, at, &error)? {
                return Ok(());
            }
            let place = place(l, delivery_id)?;
            let mut audit_detail = detail(&place);
            audit_detail["error"] = json!(error);
            audit::append(l, &audit::entry(at, "gateway", "delivery.failed", format!("delivery:{delivery_id}"), audit_detail))?;
            let reason = format!("{error}; waiting for an operator to send it again");
            l.add_delivery_event(
                delivery_id,
                DeliveryEvent { status: "failed", at, source: "gateway", reason: Some(&reason), outcome: "applied" },
            )?;
            let cause = json!({"kind": "deliveryFailed", "deliveryId": delivery_id, "documentId": place.document_id, "agency": place.agency});
            refresh_consignment(l, &place.ucr, at, cause)?;
            Ok(())
        })
        .await
}

/// Puts failed deliveries back in the outbox with fresh attempts, each with a history entry
/// naming the operator `by`, and recomputes their consignments.
///
/// The selection is resolved first (which deliveries, of which consignments); the retry then
/// decides on those consignments. A delivery that failed after the selection was resolved waits
/// for the next retry.
pub async fn retry(store: &dyn Store, selection: RetrySelection, by: String, at: Millis) -> Result<RetryOutcome, StoreError> {
    let (outcome, candidates) = store.read_with(move |l| select_failed(l, &selection)).await?;
    let subjects = consignments(candidates.iter().map(|(_, ucr)| ucr));
    store.write_with(subjects, move |l| retry_in(l, outcome, &candidates, &by, at)).await
}

/// The failed deliveries `selection` names, with their consignments; and those it names that
/// are unknown or have not failed.
fn select_failed(l: &mut dyn Ledger, selection: &RetrySelection) -> Result<(RetryOutcome, Vec<(i64, Ucr)>), StoreError> {
    let mut outcome = RetryOutcome::default();
    let ids: Vec<i64> = match selection {
        RetrySelection::Deliveries(ids) => {
            let mut failed = Vec::new();
            for id in ids {
                match l.failed_at(*id)? {
                    None => outcome.unknown.push(*id),
                    Some(None) => outcome.not_failed.push(*id),
                    Some(Some(_)) => failed.push(*id),
                }
            }
            failed
        }
        RetrySelection::AllFailed { agency } => l.failed_deliveries(agency.as_ref())?.into_iter().map(|f| f.delivery_id).collect(),
    };
    let mut candidates = Vec::with_capacity(ids.len());
    for id in ids {
        candidates.push((id, place(l, id)?.ucr));
    }
    Ok((outcome, candidates))
}

fn retry_in(l: &mut dyn Ledger, mut outcome: RetryOutcome, candidates: &[(i64, Ucr)], by: &str, at: Millis) -> Result<RetryOutcome, StoreError> {
    let mut ucrs = Vec::new();
    for &(id, _) in candidates {
        if !l.requeue_failed(id)? {
            // Answered or sent again since the selection.
            outcome.not_failed.push(id);
            continue;
        }
        let reason = format!("sent again by {by}");
        l.add_delivery_event(id, DeliveryEvent { status: "pending", at, source: "operator", reason: Some(&reason), outcome: "applied" })?;
        let place = place(l, id)?;
        audit::append(l, &audit::entry(at, by, "delivery.retried", format!("delivery:{id}"), detail(&place)))?;
        if !ucrs.contains(&place.ucr) {
            ucrs.push(place.ucr);
        }
        outcome.retried.push(id);
    }
    for ucr in ucrs {
        refresh_consignment(l, &ucr, at, json!({"kind": "retry", "by": by}))?;
    }
    Ok(outcome)
}

/// How the relay retries a delivery whose record the broker refuses.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts before the delivery is dead-lettered and marked failed.
    pub max_attempts: u32,
    /// Delay after the first refusal; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, after `attempt` refusals (`attempt` >= 1):
    /// exponential, capped, and drawn uniformly from its upper half ("equal jitter"), so
    /// deliveries refused together do not come back together. `seed` makes the draw.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let doubled = self.initial_backoff.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        let ceiling = doubled.min(self.max_backoff).as_millis() as u64;
        let half = ceiling / 2;
        Duration::from_millis(half + if half == 0 { 0 } else { seed % (ceiling - half + 1) })
    }
}

/// A pseudo-random number for jitter, different for each call (std's hasher keys are random);
/// `key` (a delivery's or a webhook's id) keeps draws made at the same moment apart.
pub fn jitter_seed(key: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(key);
    h.write_i64(now_millis());
    h.finish()
}

