//! Handing memory back to the system after a burst. A hostile or merely large request parses
//! into a tree many times its size; once it is answered, glibc keeps the freed pages in its
//! arenas, and the gateway would stay at its peak. Every parsed tree's reservation
//! ([`crate::quota::Allowance::parsed_tree`]) counts its bytes here when it is dropped; a background thread trims the allocator's free memory
//! (`malloc_trim`) once [`TRIM_AFTER_BYTES`] have been handed back since the last trim, at most
//! once per [`TRIM_EVERY`]. Elsewhere than Linux with glibc it does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bytes of requests freed since the last trim.
static RELEASED: AtomicU64 = AtomicU64::new(0);

/// Freed bytes that make a trim worth its cost (it walks the arenas: milliseconds).
pub const TRIM_AFTER_BYTES: u64 = 32 * 1024 * 1024;

/// The trimmer's look at the count.
pub const TRIM_EVERY: Duration = Duration::from_millis(500);

/// A request's `bytes` are no longer held.
pub fn released(bytes: u64) {
    RELEASED.fetch_add(bytes, Ordering::Relaxed);
}

/// Trims now if enough was released since the last trim; whether it did.
pub fn trim_if_due() -> bool {
    if RELEASED.load(Ordering::Relaxed) < TRIM_AFTER_BYTES {
        return false;
    }
    // What is released from here on counts towards the next trim.
    RELEASED.swap(0, Ordering::Relaxed);
    trim();
    true
}

/// Gives the allocator's free pages back to the system.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Starts the trimmer thread (once per process; later calls do nothing). It sleeps between
/// looks and holds nothing, so it needs no stopping.
pub fn start_trimmer() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let started = std::thread::Builder::new().name("memory-trim".into()).spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            if trim_if_due() {
                tracing::debug!("memory handed back to the system after a burst of large requests");
            }
        });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the memory trimmer; memory freed after bursts stays with the allocator");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_only_after_enough_was_released() {
        RELEASED.store(0, Ordering::Relaxed);
        released(TRIM_AFTER_BYTES - 1);
        assert!(!trim_if_due());
        released(1);
        assert!(trim_if_due());
        assert!(!trim_if_due(), "the count starts again");
    }
}
