//! `GET /v1/indicators/release-times` (participants, each its own scope) and
//! `GET /v1/public/indicators/release-times` (anyone; small cells suppressed): the release-time
//! figures of `crate::indicators`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Authenticated;
use super::errors::{ApiError, Code};
use super::routes::AppState;
use crate::clock::{now_millis, parse_rfc3339, Millis};
use crate::indicators::figures::{Dimension, FiguresRequest, Interval, Trend};

/// The query string, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseTimesParams {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    group_by: Option<String>,
    trend: Option<String>,
    mode_bin: Option<String>,
}

/// The period when none is given: the last 30 days.
const DEFAULT_PERIOD_MS: Millis = 30 * 86_400_000;

fn invalid(detail: String) -> ApiError {
    ApiError::new(Code::InvalidQuery, detail)
}

/// The request the query string asks for, and its period `[from, to)`.
pub fn parse(p: &ReleaseTimesParams) -> Result<(FiguresRequest, Millis, Millis), ApiError> {
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_rfc3339(s).ok_or_else(|| invalid(format!("{name}={s:?} is not a date (2026-11-01) or an RFC 3339 time in UTC (2026-11-01T00:00:00Z)"))))
            .transpose()
    };
    let to = time("to", &p.to)?.unwrap_or_else(now_millis);
    let from = time("from", &p.from)?.unwrap_or(to - DEFAULT_PERIOD_MS);
    // A period that ends before it starts holds nothing (its figures say so).
    let to = to.max(from);
    let names = |all: &[&str]| all.join(", ");
    let interval = match p.interval.as_deref() {
        None => Interval::ArrivalToRelease,
        Some(s) => Interval::parse(s).ok_or_else(|| {
            invalid(format!("interval={s:?} is not one of {}", names(&Interval::ALL.map(Interval::as_str))))
        })?,
    };
    let mut group_by = Vec::new();
    for d in p.group_by.as_deref().unwrap_or("").split(',').filter(|d| !d.is_empty()) {
        let d = Dimension::parse(d).ok_or_else(|| {
            invalid(format!("groupBy={d:?} is not one of {}", names(&Dimension::ALL.map(Dimension::as_str))))
        })?;
        if !group_by.contains(&d) {
            group_by.push(d);
        }
    }
    let trend = p.trend.as_deref().map(|t| Trend::parse(t).ok_or_else(|| invalid(format!("trend={t:?} is not day or week")))).transpose()?;
    let mode_bin_ms = match p.mode_bin.as_deref() {
        None => 3_600_000,
        Some(s) => humantime::parse_duration(s)
            .ok()
            .map(|d| d.as_millis() as i64)
            .filter(|ms| *ms >= 1_000)
            .ok_or_else(|| invalid(format!("modeBin={s:?} is not a duration of at least 1s (15m, 1h, 1day)")))?,
    };
    Ok((FiguresRequest { interval, group_by, trend, mode_bin_ms, min_count: 0, agency_rows: false }, from, to))
}

/// `GET /v1/indicators/release-times`: the figures of what the caller may see.
pub async fn release_times(state: web::Data<AppState>, who: Authenticated, q: web::Query<ReleaseTimesParams>) -> Result<HttpResponse, ApiError> {
    let (request, from, to) = parse(&q)?;
    let figures = state.gateway.release_times(Some(&who.0), request, from, to).await?;
    Ok(HttpResponse::Ok().json(figures))
}

/// `GET /v1/public/indicators/release-times`: anyone's; cells of fewer consignments than
/// `indicators.public_min_count` are suppressed. Computed a few at a time for the whole
/// gateway (no identity, so no participant's quota bounds it): past that, `503` with
/// `Retry-After`.
pub async fn public_release_times(state: web::Data<AppState>, q: web::Query<ReleaseTimesParams>) -> Result<HttpResponse, ApiError> {
    let (request, from, to) = parse(&q)?;
    let _permit = state
        .public_indicators
        .try_acquire()
        .map_err(|_| ApiError::new(Code::Overloaded, "the public figures are being computed for others; retry after the delay in Retry-After"))?;
    let figures = state.gateway.release_times(None, request, from, to).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=60")).json(figures))
}
