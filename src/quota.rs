//! What each participant may use of the gateway, so that no participant's load, however heavy
//! or hostile, can slow or starve another's: a request rate (governor's GCRA), CPU time spent
//! parsing, validating and routing its documents (an account that refills at its
//! `cpu_millis_per_second`), and at once a number of writes, a number of streams and a number
//! of bytes in flight (semaphores of its own). Past any of them the participant alone is
//! answered `429 too-many-requests`, with `Retry-After` and the `RateLimit-Policy` and
//! `RateLimit` fields of the IETF draft (draft-ietf-httpapi-ratelimit-headers); the others are
//! not touched.
//!
//! Bytes in flight are bodies being read, the trees they are parsed into (as estimated before
//! parsing, `crate::json::Shape`) and stream pages being sent. They also count in the gateway's
//! pool (`gateway.max_bytes_in_flight`, larger than any one participant's quota): past it the
//! gateway answers 503, as its memory is then what runs out.
//!
//! The quotas are set per role in the region file (`[quotas.<role>]`) with overrides per
//! participant (`[quotas.participants.<id>]`); each participant's allowance is built once, at
//! start. They bound a participant within one gateway: a region of several gateways multiplies
//! them by the number of gateways, as its load balancer spreads a participant's requests.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;
use std::time::Instant;

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
    /// The gateway's own pool ran out, not the participant's quota (503, not 429).
    pub gateway_wide: bool,
}

impl Exceeded {
    /// A person's sentence: what was exceeded and what to do.
    pub fn detail(&self) -> String {
        let what = match self.policy {
            "requests" => format!("more than {} requests a second (your quota)", self.quota),
            "writes" => format!("more than {} submissions or acknowledgments in progress at once (your quota)", self.quota),
            "streams" => format!("more than {} event streams or long polls open at once (your quota)", self.quota),
            "cpu" => format!("more than {} ms of the gateway's CPU a second for parsing and validating your documents and figuring your reports (your quota)", self.quota),
            "reports" if self.gateway_wide => {
                return format!("the gateway is figuring {} risk reports, its most at once; retry after the delay in Retry-After", self.quota)
            }
            _ if self.gateway_wide => {
                return format!("the gateway holds {} bytes of requests in flight, its most; retry after the delay in Retry-After", self.quota)
            }
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

/// Bytes held in flight by a request: among its participant's and among the gateway's, until
/// dropped. Dropping a parsed tree's counts its bytes as handed back ([`crate::memory::released`]).
pub struct BytesPermit {
    bytes: u64,
    /// A parsed tree's ([`Allowance::parsed_tree`]): freed memory worth handing back.
    tree: bool,
    _own: OwnedSemaphorePermit,
    _pool: OwnedSemaphorePermit,
}

impl std::fmt::Debug for BytesPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesPermit").field("bytes", &self.bytes).finish()
    }
}

impl Drop for BytesPermit {
    fn drop(&mut self) {
        if self.tree {
            crate::memory::released(self.bytes);
        }
    }
}

/// The most CPU time a participant may spend ahead of its rate: a second's worth of work done
/// at once is allowed, more waits for the account to refill.
const CPU_BURST: Duration = Duration::from_secs(1);

/// One participant's allowance.
pub struct Allowance {
    quota: Quota,
    rate: DefaultDirectRateLimiter,
    writes: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    /// The gateway's bytes in flight, shared by every participant.
    pool: Arc<Semaphore>,
    /// The gateway's pool, in bytes (for the answer past it).
    pool_bytes: u64,
    /// When the participant's CPU account is paid up to (GCRA's theoretical arrival time): each
    /// piece of work pushes it on by its CPU time scaled to the quota; work is refused while it
    /// is more than [`CPU_BURST`] ahead of now.
    cpu_paid_until: Mutex<Instant>,
}

impl Allowance {
    fn new(quota: Quota, pool: Arc<Semaphore>, pool_bytes: u64) -> Allowance {
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
            pool,
            pool_bytes,
            cpu_paid_until: Mutex::new(Instant::now()),
        }
    }

    /// One request more.
    pub fn request(&self) -> Result<(), Exceeded> {
        self.rate.check().map_err(|not_until| Exceeded {
            policy: "requests",
            quota: u64::from(self.quota.requests_per_second),
            window_secs: Some(1),
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            gateway_wide: false,
        })
    }

    /// A write in progress, until the permit is dropped.
    pub fn write(&self) -> Result<OwnedSemaphorePermit, Exceeded> {
        self.writes.clone().try_acquire_owned().map_err(|_| Exceeded {
            policy: "writes",
            quota: u64::from(self.quota.concurrent_writes),
            window_secs: None,
            retry_after: Duration::from_secs(1),
            gateway_wide: false,
        })
    }

    /// An open stream or long poll, until the permit is dropped.
    pub fn stream(&self) -> Result<OwnedSemaphorePermit, Exceeded> {
        self.streams.clone().try_acquire_owned().map_err(|_| Exceeded {
            policy: "streams",
            quota: u64::from(self.quota.open_streams),
            window_secs: None,
            retry_after: Duration::from_secs(5),
            gateway_wide: false,
        })
    }

    /// `n` bytes in flight (a body being read, its parsed tree, a page being sent), until the
    /// permit is dropped: the participant's first (429 past its quota), then the gateway's
    /// (503 past the pool).
    pub fn bytes(&self, n: u64) -> Result<BytesPermit, Exceeded> {
        let blocks = u32::try_from(n.div_ceil(BYTE_BLOCK).max(1)).unwrap_or(u32::MAX);
        let own = self.bytes.clone().try_acquire_many_owned(blocks).map_err(|_| Exceeded {
            policy: "bytes",
            quota: self.quota.bytes_in_flight,
            window_secs: None,
            retry_after: Duration::from_secs(1),
            gateway_wide: false,
        })?;
        let pool = self.pool.clone().try_acquire_many_owned(blocks).map_err(|_| Exceeded {
            policy: "bytes",
            quota: self.pool_bytes,
            window_secs: None,
            retry_after: Duration::from_secs(1),
            gateway_wide: true,
        })?;
        Ok(BytesPermit { bytes: n, tree: false, _own: own, _pool: pool })
    }

    /// [`Allowance::bytes`] for the tree a body is parsed into: its memory is handed back to the
    /// system after a burst ([`crate::memory`]).
    pub fn parsed_tree(&self, n: u64) -> Result<BytesPermit, Exceeded> {
        self.bytes(n).map(|mut permit| {
            permit.tree = true;
            permit
        })
    }

    /// Whether the participant may start CPU work now: refused while its account is more than
    /// [`CPU_BURST`] ahead of now.
    pub fn cpu(&self) -> Result<(), Exceeded> {
        let now = Instant::now();
        let paid_until = self.cpu_paid_until.lock().map_or(now, |t| *t);
        let ahead = paid_until.saturating_duration_since(now);
        if ahead > CPU_BURST {
            return Err(Exceeded {
                policy: "cpu",
                quota: u64::from(self.quota.cpu_millis_per_second),
                window_secs: Some(1),
                retry_after: ahead - CPU_BURST,
                gateway_wide: false,
            });
        }
        Ok(())
    }

    /// Charges `spent` CPU time to the participant's account.
    pub fn charge_cpu(&self, spent: Duration) {
        let per_second = f64::from(self.quota.cpu_millis_per_second.max(1)) / 1000.0;
        let owed = spent.div_f64(per_second);
        if let Ok(mut paid_until) = self.cpu_paid_until.lock() {
            *paid_until = (*paid_until).max(Instant::now()) + owed;
        }
    }

    /// Runs `work`, the rest of a request already admitted by [`Allowance::cpu`], to its end
    /// and charges the thread CPU time it took (a request let in is answered; the account
    /// refuses the next).
    pub fn charged<T>(&self, work: impl FnOnce() -> T) -> T {
        let started = thread_cpu_time();
        let done = work();
        self.charge_cpu(thread_cpu_time().saturating_sub(started));
        done
    }

    /// Runs `work` (CPU only: parsing, validating, routing) if the participant's CPU account
    /// allows, and charges the thread CPU time it took.
    pub fn metered<T>(&self, work: impl FnOnce() -> T) -> Result<T, Exceeded> {
        self.cpu()?;
        Ok(self.charged(work))
    }
}

/// CPU time the calling thread has used: what one piece of work costs whatever else the machine
/// does (elsewhere than Linux with glibc, the wall clock since the first call, an upper bound).
pub fn thread_cpu_time() -> Duration {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the timespec it is given, and nothing else.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0));
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Every participant's allowance.
pub struct Quotas {
    by_participant: HashMap<String, Arc<Allowance>>,
}

impl Quotas {
    /// Each participant's allowance, all sharing a pool of `pool_bytes` in flight
    /// (`gateway.max_bytes_in_flight`).
    pub fn new(config: &QuotasConfig, participants: &[ParticipantConfig], pool_bytes: u64) -> Quotas {
        let pool = Arc::new(Semaphore::new(pool_bytes.div_ceil(BYTE_BLOCK).min(Semaphore::MAX_PERMITS as u64) as usize));
        let by_participant = participants
            .iter()
            .map(|p| (p.id.clone(), Arc::new(Allowance::new(config.of(&p.id, p.role, p.demo), pool.clone(), pool_bytes))))
            .collect();
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
        Quota { requests_per_second: 5, burst: 3, concurrent_writes: 2, open_streams: 1, bytes_in_flight: 4096, cpu_millis_per_second: 100 }
    }

    fn allowance(q: Quota) -> Allowance {
        Allowance::new(q, Arc::new(Semaphore::new(1 << 20)), 1 << 30)
    }

    #[test]
    fn each_limit_refuses_past_its_quota_and_frees_what_is_returned() {
        let a = allowance(quota());
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
        let (a, b) = (allowance(quota()), allowance(quota()));
        let _held: Vec<_> = (0..2).map(|_| a.write().unwrap()).collect();
        while a.request().is_ok() {}
        assert!(a.write().is_err() && a.request().is_err());
        assert!(b.write().is_ok() && b.request().is_ok(), "b has its own allowance");
    }

    #[test]
    fn the_pool_refuses_as_the_gateway_past_it_and_a_quota_first() {
        let pool = Arc::new(Semaphore::new(6)); // 6 KiB for everyone
        let q = Quota { bytes_in_flight: 4096, ..quota() };
        let (a, b) = (Allowance::new(q, pool.clone(), 6144), Allowance::new(q, pool, 6144));
        let held = a.bytes(4096).unwrap();
        assert!(!a.bytes(1).unwrap_err().gateway_wide, "a's own quota first");
        let past = b.bytes(4096).unwrap_err();
        assert!(past.gateway_wide, "{past:?}");
        assert!(past.detail().contains("6144"), "{}", past.detail());
        drop(held);
        assert!(b.bytes(4096).is_ok());
    }

    #[test]
    fn a_request_admitted_runs_to_its_end_and_the_next_is_refused() {
        let a = allowance(Quota { cpu_millis_per_second: 1, ..quota() });
        assert!(a.cpu().is_ok(), "admitted");
        a.charge_cpu(Duration::from_millis(5)); // its read: 5 s of its account
        // The rest of the request runs, and is charged: a busy loop of some CPU time.
        let spun = a.charged(|| {
            let t0 = thread_cpu_time();
            while thread_cpu_time() - t0 < Duration::from_millis(2) {}
            true
        });
        assert!(spun);
        let next = a.cpu().unwrap_err();
        assert!(next.retry_after >= Duration::from_secs(5), "the read and the work are owed: {next:?}");
        assert!(a.metered(|| ()).is_err(), "the next request is refused before it starts");
    }

    #[test]
    fn cpu_work_is_charged_and_refused_past_a_second_ahead() {
        let a = allowance(quota()); // 100 ms a second
        assert!(a.cpu().is_ok());
        a.charge_cpu(Duration::from_millis(50)); // half a second of its account
        assert!(a.cpu().is_ok(), "within the burst");
        a.charge_cpu(Duration::from_millis(100)); // 1.5 s ahead now
        let past = a.cpu().unwrap_err();
        assert_eq!(past.policy, "cpu");
        assert!(past.retry_after > Duration::from_millis(400) && past.retry_after <= Duration::from_millis(500), "{past:?}");
        assert!(a.metered(|| ()).is_err(), "no work starts while the account is behind");
        let b = allowance(quota());
        assert!(b.metered(|| 1 + 1).is_ok(), "another participant's account is its own");
    }

    #[test]
    fn thread_cpu_time_counts_work_not_sleep() {
        let t0 = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_time() - t0;
        let t1 = thread_cpu_time();
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let worked = thread_cpu_time() - t1;
        assert!(x > 0);
        assert!(worked > slept, "worked {worked:?}, slept {slept:?}");
    }
}
