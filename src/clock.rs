//! Wall-clock time as the gateway records it: milliseconds since the Unix epoch, shown as
//! RFC 3339 in UTC with millisecond precision.
//!
//! The range of times it reads and shows is [`MIN_MILLIS`]..=[`MAX_MILLIS`], 1970-01-01 to
//! 9999-12-31 (RFC 3339's four-digit years, from the epoch on): [`parse_rfc3339`] reads nothing
//! outside it, and [`rfc3339`] shows any number, clamped into it, without failing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the unit of every timestamp in the store.
pub type Millis = i64;

/// The earliest time read or shown: 1970-01-01T00:00:00.000Z.
pub const MIN_MILLIS: Millis = 0;
/// The latest time read or shown: 9999-12-31T23:59:59.999Z.
pub const MAX_MILLIS: Millis = 253_402_300_799_999;
/// The range as people read it, for messages.
pub const RANGE: &str = "from 1970-01-01 to 9999-12-31 (UTC)";

const DAY: Millis = 86_400_000;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time in UTC (`2026-11-28T17:55:11Z`, with
/// or without fractions of a second), within [`RANGE`].
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let text = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_owned() };
    let t = humantime::parse_rfc3339(&text).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis())?;
    i64::try_from(ms).ok().filter(|ms| (MIN_MILLIS..=MAX_MILLIS).contains(ms))
}

/// Formats a timestamp as RFC 3339 (`2026-11-28T17:55:11.123Z`). Total: a time outside
/// [`RANGE`] is shown as the nearest end of it.
pub fn rfc3339(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.clamp(MIN_MILLIS, MAX_MILLIS) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian, UTC), for any year.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (y, m) = if month <= 2 { (year - 1, i64::from(month) + 9) } else { (year, i64::from(month) - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year and month (1 to 12) holding `ms`.
pub fn year_month(ms: Millis) -> (i64, u32) {
    let z = ms.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month)
}

/// The first instant of the month `year`-`month` (1 to 12), UTC.
pub fn month_start(year: i64, month: u32) -> Millis {
    days_from_civil(year, month, 1) * DAY
}

/// The first instant of the month after the one holding `ms`.
pub fn next_month(ms: Millis) -> Millis {
    match year_month(ms) {
        (y, 12) => month_start(y + 1, 1),
        (y, m) => month_start(y, m + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_total_and_reading_keeps_to_the_range() {
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MIN), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(MAX_MILLIS + 1), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_MILLIS));
        assert_eq!(parse_rfc3339("1970-01-01"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31"), None);
        assert_eq!(parse_rfc3339("10000-01-01"), None);
        assert_eq!(parse_rfc3339("2026-02-30"), None);
    }

    #[test]
    fn months_by_the_civil_calendar() {
        let at = |s: &str| parse_rfc3339(s).unwrap();
        assert_eq!(year_month(at("2026-12-31T23:59:59Z")), (2026, 12));
        assert_eq!(year_month(at("2024-02-29")), (2024, 2));
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(month_start(2026, 11), at("2026-11-01"));
        assert_eq!(next_month(at("2026-12-15")), at("2027-01-01"));
        assert_eq!(next_month(at("2024-02-01")), at("2024-03-01"));
        assert_eq!(next_month(month_start(9999, 12)), MAX_MILLIS + 1);
        assert_eq!(days_from_civil(2026, 11, 30) * DAY, at("2026-11-30"));
    }
}
