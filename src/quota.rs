//! What each participant may use of the gateway, so that no participant's load, however heavy
//! or hostile, can slow or starve another's: a request rate (governor's GCRA), and at once a
//! number of writes, a number of streams and a number of bytes in flight (semaphores of its
//! own). Past any of them the participant alone is answered `429 too-many-requests`, with
//! `Retry-After` and the `RateLimit-Policy` and `RateLimit` fields of the IETF draft
//! (draft-ietf-httpapi-ratelimit-headers); the others are not touched.
//!
//! The quotas are set per role in the region file (`[quotas.<role>]`) with overrides per
//! participant (`[quotas.participants.<id>]`); each participant's allowance is built once, at
//! start. They bound a participant within one gateway: a region of several gateways multiplies
//! them by the number of gateways, as its load balancer spreads a participant's requests.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as Gcra, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{ParticipantConfig, Quota, QuotasConfig};

/// Bytes are counted in blocks of this size: a semaphore counts at most `u32::MAX / 8` permits.
const BYTE_BLOCK: u64 = 1024;

/// What a participant went past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The policy's name in `RateLimit-Policy`: `requests`, `writes`, `streams` or `bytes`.
    pub policy: &'static str,
    /// The quota: requests per window, or how many at once.
    pub quota: u64,
    /// `requests` has a window in seconds; the others count what is in progress.
    pub window_secs: Option<u64>,
    /// When trying again may succeed.
    pub retry_after: Duration,
}

impl Exceeded {
    /// A person's sentence: what was exceeded and what to do.
    pub fn detail(&self) -> String {
        let what = match self.policy {
            "requests" => format!("more than {} requests a second (your quota)", self.quota),
            "writes" => format!("more than {} submissions or acknowledgments in progress at once (your quota)", self.quota),
            "streams" => format!("more than {} event streams or long polls open at once (your quota)", self.quota),
            _ => format!("more than {} bytes of bodies and stream pages in flight at once (your quota)", self.quota),
        };
        format!("{what}; retry after the delay in Retry-After, or ask the operator for a larger quota")
    }

    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), and
    /// `Retry-After` in whole seconds, at least 1.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let retry = self.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let policy = match (self.window_secs, self.policy) {
            (Some(w), p) => format!("\"{p}\";q={};w={w}", self.quota),
            (None, "bytes") => format!("\"bytes\";q={};qu=\"content-bytes\"", self.quota),
            (None, p) => format!("\"{p}\";q={};qu=\"concurrent-requests\"", self.quota),
        };
        vec![
            ("Retry-After", retry.to_string()),
            ("RateLimit-Policy", policy),
            ("RateLimit", format!("\"{}\";r=0;t={retry}", self.policy)),
        ]
    }
}

/// One participant's allowance.
pub struct Allowance {
    quota: Quota,
    rate: DefaultDirectRateLimiter,
    writes: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Allowance {
    fn new(quota: Quota) -> Allowance {
        let one = NonZeroU32::MIN;
        let per_second = NonZeroU32::new(quota.requests_per_second).unwrap_or(one);
        let burst = NonZeroU32::new(quota.burst).unwrap_or(one);
        let blocks = (quota.bytes_in_flight.div_ceil(BYTE_BLOCK)).min(Semaphore::MAX_PERMITS as u64) as usize;
        Allowance {
            quota,
            rate: RateLimiter::direct(Gcra::per_second(per_second).allow_burst(burst)),
            writes: Arc::new(Semaphore::new(quota.concurrent_writes as usize)),
            streams: Arc::new(Semaphore::new(quota.open_streams as usize)),
            bytes: Arc::new(Semaphore::new(blocks)),
        }
    }

    /// One request more.
    pub fn request(&self) -> Result<(), Exceeded> {
        self.rate.check().map_err(|not_until| Exceeded {
            policy: "requests",
            quota: u64::from(self.quota.requests_per_second),
            window_secs: Some(1),
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }

    /// A write in progress, until the permit is dropped.
    pub fn write(&self) -> Result<OwnedSemaphorePermit, Exceeded> {
        self.writes.clone().try_acquire_owned().map_err(|_| Exceeded {
            policy: "writes",
            quota: u64::from(self.quota.concurrent_writes),
            window_secs: None,
            retry_after: Duration::from_secs(1),
        })
    }

    /// An open stream or long poll, until the permit is dropped.
    pub fn stream(&self) -> Result<OwnedSemaphorePermit, Exceeded> {
        self.streams.clone().try_acquire_owned().map_err(|_| Exceeded {
            policy: "streams",
            quota: u64::from(self.quota.open_streams),
            window_secs: None,
            retry_after: Duration::from_secs(5),
        })
    }

    /// `n` bytes in flight (a body being read, a page being sent), until the permit is dropped.
    pub fn bytes(&self, n: u64) -> Result<OwnedSemaphorePermit, Exceeded> {
        let blocks = u32::try_from(n.div_ceil(BYTE_BLOCK).max(1)).unwrap_or(u32::MAX);
        self.bytes.clone().try_acquire_many_owned(blocks).map_err(|_| Exceeded {
            policy: "bytes",
            quota: self.quota.bytes_in_flight,
            window_secs: None,
            retry_after: Duration::from_secs(1),
        })
    }
}

/// Every participant's allowance.
pub struct Quotas {
    by_participant: HashMap<String, Arc<Allowance>>,
}

impl Quotas {
    pub fn new(config: &QuotasConfig, participants: &[ParticipantConfig]) -> Quotas {
        let by_participant = participants.iter().map(|p| (p.id.clone(), Arc::new(Allowance::new(config.of(&p.id, p.role, p.demo))))).collect();
        Quotas { by_participant }
    }

    /// The allowance of participant `id` (every configured participant has one).
    pub fn of(&self, id: &str) -> Option<Arc<Allowance>> {
        self.by_participant.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota { requests_per_second: 5, burst: 3, concurrent_writes: 2, open_streams: 1, bytes_in_flight: 4096 }
    }

    #[test]
    fn each_limit_refuses_past_its_quota_and_frees_what_is_returned() {
        let a = Allowance::new(quota());
        for _ in 0..3 {
            a.request().expect("within the burst");
        }
        let past = a.request().unwrap_err();
        assert_eq!(past.policy, "requests");
        assert!(past.retry_after <= Duration::from_millis(200), "{past:?}");
        let headers = past.headers();
        assert!(headers.contains(&("RateLimit-Policy", "\"requests\";q=5;w=1".into())), "{headers:?}");
        assert!(headers.contains(&("Retry-After", "1".into())), "{headers:?}");

        let (w1, _w2) = (a.write().unwrap(), a.write().unwrap());
        assert_eq!(a.write().unwrap_err().policy, "writes");
        drop(w1);
        assert!(a.write().is_ok(), "a finished write frees its place");

        let s = a.stream().unwrap();
        let refused = a.stream().unwrap_err();
        assert_eq!(refused.headers()[1], ("RateLimit-Policy", "\"streams\";q=1;qu=\"concurrent-requests\"".into()));
        drop(s);
        assert!(a.stream().is_ok());

        let b = a.bytes(3000).unwrap();
        assert_eq!(a.bytes(2000).unwrap_err().policy, "bytes");
        drop(b);
        assert!(a.bytes(4096).is_ok());
    }

    #[test]
    fn one_participant_past_its_quota_leaves_another_untouched() {
        let (a, b) = (Allowance::new(quota()), Allowance::new(quota()));
        let _held: Vec<_> = (0..2).map(|_| a.write().unwrap()).collect();
        while a.request().is_ok() {}
        assert!(a.write().is_err() && a.request().is_err());
        assert!(b.write().is_ok() && b.request().is_ok(), "b has its own allowance");
    }
}
