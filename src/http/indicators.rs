//! `GET /v1/indicators/release-times` (participants, each its own scope), `GET /v1/indicators/tfa`
//! (the TFA monitor, `crate::indicators::tfa`: operators, national single windows and agencies,
//! each its own scope), `GET /v1/public/indicators/release-times` (anyone: the published figures
//! of a calendar month, `crate::indicators::public`) and `GET /v1/public/indicators/tfa` (anyone:
//! the TFA monitor's, `crate::indicators::tfa_public`): the figures of `crate::indicators`.
//!
//! The public figures (both) cost the gateway little whoever asks (`super::public_cache`): each month's
//! are computed once for all of their answers and kept for a minute (a repeated request is
//! served from memory, `Cache-Status: ventanilla; hit`); one computation at a time for the whole
//! gateway, on a blocking thread (never the threads that serve submissions), and a second one at
//! the same time is turned away at once (`503` with `Retry-After`); and each source address may
//! start a few computations at once, then one every few seconds (`429` with `Retry-After` past
//! that). Answers already computed are served to everyone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::errors::{ApiError, Code};
use super::policy::{Authenticated, Public};
use super::public_cache::{source_of, Answers, Key, View, PUBLIC_TTL};
use super::state::AppState;
use crate::clock::{month_start, now_millis, parse_rfc3339, rfc3339, year_month, Millis, MIN_MILLIS, RANGE};
use crate::indicators::figures::{Dimension, FiguresRequest, Interval, Trend};
use crate::indicators::public::{groupings, MIN_MODE_BIN_MS};
use crate::indicators::tfa::{TfaGroup, TfaRequest};
use crate::indicators::tfa_public::PUBLIC_GROUPS;

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

/// The public query string, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicReleaseTimesParams {
    month: Option<String>,
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

fn names(all: &[&str]) -> String {
    all.join(", ")
}

fn interval_of(s: Option<&str>) -> Result<Interval, ApiError> {
    match s {
        None => Ok(Interval::ArrivalToRelease),
        Some(s) => Interval::parse(s)
            .ok_or_else(|| invalid(format!("interval={s:?} is not one of {}", names(&Interval::ALL.map(Interval::as_str))))),
    }
}

fn dimensions_of(s: Option<&str>) -> Result<Vec<Dimension>, ApiError> {
    let mut group_by = Vec::new();
    for d in s.unwrap_or("").split(',').filter(|d| !d.is_empty()) {
        let d = Dimension::parse(d)
            .ok_or_else(|| invalid(format!("groupBy={d:?} is not one of {}", names(&Dimension::ALL.map(Dimension::as_str)))))?;
        if !group_by.contains(&d) {
            group_by.push(d);
        }
    }
    Ok(group_by)
}

fn trend_of(s: Option<&str>) -> Result<Option<Trend>, ApiError> {
    s.map(|t| Trend::parse(t).ok_or_else(|| invalid(format!("trend={t:?} is not day or week")))).transpose()
}

/// The mode's bin width: `modeBin`, at least `floor`; an hour when left out.
fn mode_bin_of(s: Option<&str>, floor: Duration) -> Result<i64, ApiError> {
    match s {
        None => Ok(3_600_000),
        Some(s) => humantime::parse_duration(s)
            .ok()
            .filter(|d| *d >= floor)
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .ok_or_else(|| invalid(format!("modeBin={s:?} is not a duration of at least {} (15m, 1h, 1day)", humantime::format_duration(floor)))),
    }
}

/// The period `from` and `to` ask for: the last 30 days by default.
fn period(from: &Option<String>, to: &Option<String>) -> Result<(Millis, Millis), ApiError> {
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                parse_rfc3339(s).ok_or_else(|| {
                    invalid(format!("{name}={s:?} is not a date (2026-11-01) or an RFC 3339 time in UTC (2026-11-01T00:00:00Z) {RANGE}"))
                })
            })
            .transpose()
    };
    let to = time("to", to)?.unwrap_or_else(now_millis);
    let from = time("from", from)?.unwrap_or((to - DEFAULT_PERIOD_MS).max(MIN_MILLIS));
    // A period that ends before it starts holds nothing (its figures say so).
    Ok((from, to.max(from)))
}

/// The request the query string asks for, and its period `[from, to)`.
pub fn parse(p: &ReleaseTimesParams) -> Result<(FiguresRequest, Millis, Millis), ApiError> {
    let (from, to) = period(&p.from, &p.to)?;
    let request = FiguresRequest {
        interval: interval_of(p.interval.as_deref())?,
        group_by: dimensions_of(p.group_by.as_deref())?,
        trend: trend_of(p.trend.as_deref())?,
        mode_bin_ms: mode_bin_of(p.mode_bin.as_deref(), Duration::from_secs(1))?,
        agency_rows: false,
    };
    Ok((request, from, to))
}

/// What a public request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRequest {
    pub interval: Interval,
    pub group_by: Option<Dimension>,
    pub trend: Option<Trend>,
    pub mode_bin_ms: i64,
    /// The month's first instant; `None`: the latest published.
    pub month: Option<Millis>,
}

/// The public request the query string asks for: `400` for what is not a request of the
/// public figures (two segments, a mode's bin under an hour, a month that is not one), `404`
/// for a grouping they do not publish.
pub fn parse_public(p: &PublicReleaseTimesParams) -> Result<PublicRequest, ApiError> {
    let interval = interval_of(p.interval.as_deref())?;
    let group_by = match dimensions_of(p.group_by.as_deref())?.as_slice() {
        [] => None,
        [d] => Some(*d),
        _ => {
            return Err(invalid(
                "the public figures are grouped by one segment at a time (groupBy=corridor): answers by several would give \
                 away the consignments of small segments by their differences"
                    .into(),
            ))
        }
    };
    let trend = trend_of(p.trend.as_deref())?;
    let mode_bin_ms = mode_bin_of(p.mode_bin.as_deref(), Duration::from_millis(MIN_MODE_BIN_MS as u64))?;
    // Whole hours or days only: with any width above the floor, a search over widths (1h, 1h 1ms,
    // 1h 2ms...) would read a cell's earliest value from where its lone-value bins start.
    if mode_bin_ms % 3_600_000 != 0 || (mode_bin_ms > 86_400_000 && mode_bin_ms % 86_400_000 != 0) || mode_bin_ms > 7 * 86_400_000 {
        return Err(invalid(format!(
            "modeBin={:?}: the public figures bin the mode by whole hours up to a day, or whole days up to a week (1h, 6h, 1d)",
            p.mode_bin.as_deref().unwrap_or_default()
        )));
    }
    let month = p.month.as_deref().map(month_of).transpose()?;
    if let Some(d) = group_by {
        if !groupings(interval).contains(&d) {
            return Err(ApiError::new(
                Code::NotFound,
                format!(
                    "the public figures of {} are not published by {}: a consignment's own interval is not grouped by agency. \
                     Published: {}",
                    interval.as_str(),
                    d.as_str(),
                    names(&groupings(interval).iter().map(|d| d.as_str()).collect::<Vec<_>>())
                ),
            ));
        }
        if trend.is_some() {
            return Err(ApiError::new(
                Code::NotFound,
                "the public figures' trends are over every consignment, not per segment: ask for trend or for groupBy",
            ));
        }
    }
    Ok(PublicRequest { interval, group_by, trend, mode_bin_ms, month })
}

/// The first instant of `YYYY-MM`, from 1970-01 to 9999-12.
fn month_of(s: &str) -> Result<Millis, ApiError> {
    let bad = || invalid(format!("month={s:?} is not a calendar month (2026-11) {RANGE}"));
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (y, m): (i64, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
        return Err(bad());
    }
    Ok(month_start(y, m))
}

fn month_name(start: Millis) -> String {
    let (y, m) = year_month(start);
    format!("{y:04}-{m:02}")
}

/// `GET /v1/indicators/release-times`: the figures of what the caller may see.
pub async fn release_times(who: Authenticated, state: web::Data<AppState>, q: web::Query<ReleaseTimesParams>) -> Result<HttpResponse, ApiError> {
    let (request, from, to) = parse(&q)?;
    let figures = state.gateway.release_times(&who.0, request, from, to).await?;
    Ok(HttpResponse::Ok().json(figures))
}

/// The TFA monitor's query string, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TfaParams {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    expedited_types: Option<String>,
}

/// Document types a request may name as expedited.
const MAX_EXPEDITED_TYPES: usize = 20;

/// What a TFA monitor request asks for, and over which period, with the region's window of a
/// joint inspection.
pub fn parse_tfa(p: &TfaParams, joint_window_ms: Millis) -> Result<(TfaRequest, Millis, Millis), ApiError> {
    let (from, to) = period(&p.from, &p.to)?;
    let group_by = match p.group_by.as_deref() {
        None => TfaGroup::Country,
        Some(s) => TfaGroup::parse(s).ok_or_else(|| invalid(format!("groupBy={s:?}: the TFA monitor groups by `country`, `borderPost`, `transportMode` or `documentType`")))?,
    };
    let expedited_types: Vec<String> = match p.expedited_types.as_deref() {
        None => vec![crate::indicators::tfa::DEFAULT_EXPEDITED_TYPE.to_owned()],
        Some(s) => s.split(',').map(str::to_owned).collect(),
    };
    let well_formed = |t: &String| {
        let mut chars = t.chars();
        t.len() <= 64 && chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if expedited_types.len() > MAX_EXPEDITED_TYPES || !expedited_types.iter().all(well_formed) {
        return Err(invalid(format!("expeditedTypes: at most {MAX_EXPEDITED_TYPES} document types, comma-separated (`ecommerceShipment`)")));
    }
    Ok((TfaRequest { group_by, expedited_types, joint_window_ms }, from, to))
}

/// `GET /v1/indicators/tfa`: the TFA monitor, of what the caller may read.
pub async fn tfa(who: Authenticated, state: web::Data<AppState>, q: web::Query<TfaParams>) -> Result<HttpResponse, ApiError> {
    let (request, from, to) = parse_tfa(&q, state.gateway.tfa_joint_window_ms())?;
    let figures = state.gateway.tfa_indicators(&who.0, request, from, to).await?;
    Ok(HttpResponse::Ok().json(figures))
}

/// `GET /v1/public/indicators/release-times`: the published figures of a calendar month, for
/// anyone (`crate::indicators::public`), served as the module says.
pub async fn public_release_times(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<PublicReleaseTimesParams>,
) -> Result<HttpResponse, ApiError> {
    let request = parse_public(&q)?;
    let month = published_month(&state, request.month)?;
    let gateway = state.gateway.clone();
    let view = View::ReleaseTimes(request.group_by, request.trend);
    serve_public(&req, &state, Key::ReleaseTimes(request.interval, month, request.mode_bin_ms), view, move |permit| async move {
        gateway
            .public_release_times(request.interval, month, request.mode_bin_ms, move |publication| {
                let _permit = permit;
                let views = publication
                    .views()
                    .into_iter()
                    .filter_map(|view| {
                        let figures = publication.figures(view.0, view.1)?;
                        Some((View::ReleaseTimes(view.0, view.1), web::Bytes::from(serde_json::to_vec(&figures).ok()?)))
                    })
                    .collect();
                Answers { views, at: Instant::now() }
            })
            .await
    })
    .await
}

/// The TFA monitor's public query string, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicTfaParams {
    month: Option<String>,
    group_by: Option<String>,
}

/// The grouping and the month a public TFA request asks for: `400` for what is not a grouping
/// or a month, `404` for a grouping the public view does not publish.
pub fn parse_public_tfa(p: &PublicTfaParams) -> Result<(TfaGroup, Option<Millis>), ApiError> {
    let group = match p.group_by.as_deref() {
        None => TfaGroup::Country,
        Some(s) => TfaGroup::parse(s).ok_or_else(|| invalid(format!("groupBy={s:?}: the TFA monitor groups by `country` or `borderPost`")))?,
    };
    if !PUBLIC_GROUPS.contains(&group) {
        return Err(ApiError::new(
            Code::NotFound,
            "the public TFA figures are published by `country` and by `borderPost` only: more tables of the same consignments \
             would give away the suppressed cells of these by their differences",
        ));
    }
    Ok((group, p.month.as_deref().map(month_of).transpose()?))
}

/// `GET /v1/public/indicators/tfa`: the TFA monitor's published figures of a calendar month,
/// for anyone (`crate::indicators::tfa_public`), served as the public release times are.
pub async fn public_tfa(_: Public, req: HttpRequest, state: web::Data<AppState>, q: web::Query<PublicTfaParams>) -> Result<HttpResponse, ApiError> {
    let (group, month) = parse_public_tfa(&q)?;
    let month = published_month(&state, month)?;
    let gateway = state.gateway.clone();
    serve_public(&req, &state, Key::Tfa(month), View::Tfa(group), move |permit| async move {
        gateway
            .public_tfa(month, move |publication| {
                let _permit = permit;
                let views = PUBLIC_GROUPS
                    .into_iter()
                    .filter_map(|g| Some((View::Tfa(g), web::Bytes::from(serde_json::to_vec(&publication.figures(g)?).ok()?))))
                    .collect();
                Answers { views, at: Instant::now() }
            })
            .await
    })
    .await
}

/// The month asked for, if it is published; else the latest published.
fn published_month(state: &AppState, month: Option<Millis>) -> Result<Millis, ApiError> {
    let gateway = &state.gateway;
    let now = now_millis();
    match month {
        Some(month) => {
            let published = gateway.public_published_at(month);
            if published > now {
                return Err(ApiError::new(
                    Code::NotFound,
                    format!("the public figures of {} are published from {}", month_name(month), rfc3339(published)),
                ));
            }
            Ok(month)
        }
        None => latest_published(now, |m| gateway.public_published_at(m))
            .ok_or_else(|| ApiError::new(Code::NotFound, "no month's public figures are published yet")),
    }
}

/// Serves `view` of the publication `key`: from the cache, or computed by `compute` (handed the
/// gateway's one permit to compute, which it holds until it is done) when the source may.
async fn serve_public<F, Fut>(req: &HttpRequest, state: &AppState, key: Key, view: View, compute: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(tokio::sync::OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = Result<Answers, crate::gateway::OperatorError>>,
{
    let gateway = &state.gateway;
    let public = &state.public_indicators;
    let slot = public.slot(key);
    let mut computed = false;
    let answers = slot
        .answers
        .get_or_try_init(|| async {
            let permit = public.computing.clone().try_acquire_owned().map_err(|_| {
                gateway.metrics().public_indicators("busy");
                ApiError::new(Code::Overloaded, "the public figures are being computed for others; retry after the delay in Retry-After")
            })?;
            let source = req.peer_addr().map(|a| source_of(a.ip()));
            public.spend(source).inspect_err(|_| gateway.metrics().public_indicators("limited"))?;
            computed = true;
            // The permit is held by the computation itself, on its blocking thread: a caller
            // that goes away does not free it for another before that thread is done.
            let answers = compute(permit).await?;
            Ok::<_, ApiError>(Arc::new(answers))
        })
        .await?;
    gateway.metrics().public_indicators(if computed { "computed" } else { "hit" });
    let body = answers.views.get(&view).cloned().ok_or_else(|| ApiError::new(Code::NotFound, "the public figures do not publish this grouping"))?;
    let age = answers.at.elapsed().as_secs();
    let ttl = PUBLIC_TTL.as_secs().saturating_sub(age);
    let status = if computed { "ventanilla; fwd=miss; stored".to_owned() } else { format!("ventanilla; hit; ttl={ttl}") };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", format!("public, max-age={ttl}")))
        .insert_header(("Age", age.to_string()))
        .insert_header(("Cache-Status", status))
        .content_type("application/json")
        .body(body))
}

/// The latest month published at `now` (its first instant), by `published_at`.
fn latest_published(now: Millis, published_at: impl Fn(Millis) -> Millis) -> Option<Millis> {
    let (mut y, mut m) = year_month(now);
    // A month is published after it ends: the latest is at most the one before now's.
    for _ in 0..1200 {
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
        if y < 1970 {
            return None;
        }
        let start = month_start(y, m);
        if published_at(start) <= now {
            return Some(start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(query: &str) -> Result<PublicRequest, ApiError> {
        let p = web::Query::<PublicReleaseTimesParams>::from_query(query).map_err(|e| invalid(e.to_string()))?;
        parse_public(&p)
    }

    /// Issue 26, item 11: a date outside the store's range is the caller's mistake (400), never a
    /// panic in the formatting (which answered 503).
    #[test]
    fn dates_outside_the_stores_range_are_refused() {
        let participants = |query: &str| {
            let p = web::Query::<ReleaseTimesParams>::from_query(query).map_err(|e| invalid(e.to_string()))?;
            parse(&p)
        };
        for query in ["from=9999-12-31T23:59:59Z&to=10000-01-01T00:00:00Z", "from=1969-12-31T23:59:59Z", "to=+275760-09-13T00:00:00Z"] {
            let e = participants(query).expect_err(query);
            assert_eq!(e.code, Code::InvalidQuery, "{query}: {}", e.detail);
            assert!(e.detail.contains("1970") && e.detail.contains("9999"), "{query}: {}", e.detail);
        }
        let (_, from, to) = participants("from=9999-12-31T23:59:59Z&to=9999-12-31T23:59:59Z").unwrap();
        assert_eq!(from, to);
        assert!(crate::clock::rfc3339(from).starts_with("9999-12-31T23:59:59"));
        assert!(crate::clock::rfc3339(i64::MAX).starts_with("9999-12-31"), "formatting is total");
    }

    #[test]
    fn the_public_takes_one_segment_whole_months_and_hour_bins() {
        let r = public("groupBy=transportMode&month=2026-10").unwrap();
        assert_eq!((r.group_by, r.month), (Some(Dimension::TransportMode), parse_rfc3339("2026-10-01")));
        for (query, status) in [
            ("groupBy=transportMode,channel", 400),
            ("modeBin=1s", 400),
            ("modeBin=59m", 400),
            ("modeBin=1h 1ms", 400),
            ("modeBin=61m", 400),
            ("modeBin=25h", 400),
            ("modeBin=30days", 400),
            ("month=2026-13", 400),
            ("month=1969-12", 400),
            ("month=10000-01", 400),
            ("from=9999-12-31T23:59:59Z", 400),
            ("groupBy=agency", 404),
            ("groupBy=corridor&trend=day", 404),
        ] {
            let e = public(query).expect_err(query);
            assert_eq!(e.code.status(), status, "{query}: {}", e.detail);
        }
        assert_eq!(public("interval=agency-decision&groupBy=agency").unwrap().group_by, Some(Dimension::Agency));
        assert_eq!(public("modeBin=2h&trend=week").unwrap().mode_bin_ms, 7_200_000);
        assert_eq!(public("modeBin=2days").unwrap().mode_bin_ms, 2 * 86_400_000);
    }

    #[test]
    fn the_latest_month_published_is_the_last_ended_and_settled() {
        let week = 7 * 86_400_000;
        let at = |s: &str| parse_rfc3339(s).unwrap();
        let published = |m: Millis| crate::clock::next_month(m) + week;
        assert_eq!(latest_published(at("2026-12-06"), published), Some(at("2026-10-01")));
        assert_eq!(latest_published(at("2026-12-08"), published), Some(at("2026-11-01")));
        assert_eq!(latest_published(at("2027-01-10"), published), Some(at("2026-12-01")));
        assert_eq!(latest_published(at("1970-01-20"), published), None);
    }
}
