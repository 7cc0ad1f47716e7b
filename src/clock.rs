//! Wall-clock time as the gateway records it: milliseconds since the Unix epoch, shown as
//! RFC 3339 in UTC with millisecond precision.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the unit of every timestamp in the store.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time in UTC (`2026-11-28T17:55:11Z`, with
/// or without fractions of a second).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let text = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_owned() };
    let t = humantime::parse_rfc3339(&text).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as Millis)
}

/// Formats a timestamp as RFC 3339 (`2026-11-28T17:55:11.123Z`).
pub fn rfc3339(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
