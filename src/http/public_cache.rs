//! The public figures' cache (the release times' and the TFA monitor's) and the allowance of each
//! source that asks for them (`super::indicators` serves them): each month's answers computed once
//! for all who ask and kept
//! for [`PUBLIC_TTL`], one computation at a time for the whole gateway, and each source address
//! (an IPv6 one by its /64) starting [`SOURCE_BURST`] computations at once, then one every
//! [`SOURCE_REFILL`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::web;

use super::errors::{ApiError, Code};
use crate::clock::Millis;
use crate::indicators::figures::{Dimension, Interval, Trend};
use crate::indicators::tfa::TfaGroup;

/// How long a computed public answer is served from memory.
pub const PUBLIC_TTL: Duration = Duration::from_secs(60);
/// Publications kept (each an interval, a month and a mode bin, with all their answers).
const PUBLIC_ENTRIES: usize = 256;
/// Computations a source may start at once; then one per [`SOURCE_REFILL`].
pub const SOURCE_BURST: u32 = 10;
pub const SOURCE_REFILL: Duration = Duration::from_secs(6);
/// Sources remembered; past it, those whose allowance is whole again are forgotten.
const SOURCES: usize = 10_000;

/// A publication: of the release times, an interval, a month (its first instant) and a mode
/// bin; of the TFA monitor, a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Key {
    ReleaseTimes(Interval, Millis, i64),
    Tfa(Millis),
}

/// One answer of a publication: the release times by a segment or per a trend period; the TFA
/// monitor by a grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum View {
    ReleaseTimes(Option<Dimension>, Option<Trend>),
    Tfa(TfaGroup),
}

/// Every answer of a publication, serialized, and when it was computed.
pub(super) struct Answers {
    pub(super) views: HashMap<View, web::Bytes>,
    pub(super) at: Instant,
}

/// A publication in the cache: computed once however many ask at the same time.
pub(super) struct Slot {
    pub(super) answers: tokio::sync::OnceCell<Arc<Answers>>,
    created: Instant,
}

impl Slot {
    fn fresh(&self, now: Instant) -> bool {
        let since = self.answers.get().map_or(self.created, |a| a.at);
        now.duration_since(since) < PUBLIC_TTL
    }
}

/// A source's allowance of computations.
struct Allowance {
    tokens: f64,
    at: Instant,
}

impl Allowance {
    fn refill(&mut self, now: Instant) {
        let earned = now.duration_since(self.at).as_secs_f64() / SOURCE_REFILL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(f64::from(SOURCE_BURST));
        self.at = now;
    }
}

/// The public figures' cache and bounds, for the whole gateway.
pub struct PublicIndicators {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    pub(super) computing: Arc<tokio::sync::Semaphore>,
    sources: Mutex<HashMap<Option<IpAddr>, Allowance>>,
}

impl Default for PublicIndicators {
    fn default() -> Self {
        PublicIndicators { slots: Mutex::default(), computing: Arc::new(tokio::sync::Semaphore::new(1)), sources: Mutex::default() }
    }
}

/// A source as it is counted: an IPv4 address, or an IPv6 address's /64 (one host's usual
/// allocation).
pub(super) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl PublicIndicators {
    /// The cache's slot of `key`: the one kept while fresh, else a new one (the stale, the
    /// abandoned, then the oldest giving way when the cache is full).
    pub(super) fn slot(&self, key: Key) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(s) = slots.get(&key).filter(|s| s.fresh(now)) {
            return s.clone();
        }
        if slots.len() >= PUBLIC_ENTRIES {
            // Stale ones, and empty ones nobody is computing (their computation was refused).
            slots.retain(|_, s| s.fresh(now) && (s.answers.initialized() || Arc::strong_count(s) > 1));
        }
        if slots.len() >= PUBLIC_ENTRIES {
            if let Some(oldest) = slots.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                slots.remove(&oldest);
            }
        }
        let slot = Arc::new(Slot { answers: tokio::sync::OnceCell::new(), created: now });
        slots.insert(key, slot.clone());
        slot
    }

    /// Spends one of `source`'s computations, or says when it has one again.
    pub(super) fn spend(&self, source: Option<IpAddr>) -> Result<(), ApiError> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if !sources.contains_key(&source) && sources.len() >= SOURCES {
            sources.retain(|_, a| {
                a.refill(now);
                a.tokens < f64::from(SOURCE_BURST)
            });
            if sources.len() >= SOURCES {
                sources.clear();
            }
        }
        let a = sources.entry(source).or_insert(Allowance { tokens: f64::from(SOURCE_BURST), at: now });
        a.refill(now);
        if a.tokens >= 1.0 {
            a.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - a.tokens) * SOURCE_REFILL.as_secs_f64()).ceil().max(1.0) as u64;
        let mut e = ApiError::new(
            Code::TooManyRequests,
            format!(
                "this address has had {SOURCE_BURST} public figures computed lately (one more every {} s): answers already \
                 computed are served at once; retry after the delay in Retry-After",
                SOURCE_REFILL.as_secs()
            ),
        );
        e.headers = vec![("Retry-After", wait.to_string())];
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spend_their_allowance_and_ipv6_counts_by_its_64() {
        let p = PublicIndicators::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        for _ in 0..SOURCE_BURST {
            p.spend(Some(source_of(a))).unwrap();
        }
        let e = p.spend(Some(source_of(b))).unwrap_err();
        assert_eq!(e.code, Code::TooManyRequests);
        assert!(e.headers.iter().any(|(k, v)| *k == "Retry-After" && v.parse::<u64>().unwrap() >= 1));
        p.spend(Some("192.0.2.1".parse().unwrap())).unwrap();
    }
}
