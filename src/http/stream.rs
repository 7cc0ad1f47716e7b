//! The agencies' HTTP stream, for agencies without a Kafka client: every delivery routed to an
//! agency, in commit order, as CloudEvents. The cursor is the delivery's position (the store
//! gives positions in commit order: `src/store/ledger.rs`), so the stream keeps no state on the
//! server and never passes a delivery another gateway commits late: a client reconnecting to any gateway on the same store with
//! `Last-Event-ID` (or `?after=`) continues exactly where it stopped.
//!
//! - `GET /v1/agencies/{agency}/documents`: Server-Sent Events, `id:` = the cursor. The stream
//!   ends after `gateway.stream_max_seconds` and when the gateway stops; reconnect.
//! - `GET /v1/agencies/{agency}/documents?after=CURSOR&wait=30s`: long poll, a JSON page
//!   `{"events": [...], "cursor": N}` as soon as there is something, or empty after `wait`.
//!
//! `GET /v1/consignments/events` is the same for traders: the state changes of the
//! consignments they submitted to (every consignment for operators), cursor = the event's
//! position.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;


use super::auth::Authenticated;
use super::errors::{ApiError, Code};
use super::routes::AppState;
use crate::domain::AgencyId;
use crate::kafka::cloudevents::delivery_event;

/// Events read from the store per query: a page is held in memory while it is sent.
const PAGE: usize = 20;
/// How often an idle stream looks at the store again (it shares the store's reader with the
/// relay, so not too often).
const POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct StreamQuery {
    after: Option<String>,
    wait: Option<String>,
}

fn cursor(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .ok_or_else(|| ApiError::new(Code::InvalidCursor, format!("cursor {raw:?} is not a stream position (a non-negative integer, as the last event's id)")))
}

/// `GET /v1/agencies/{agency}/documents`.
pub async fn agency_documents(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    query: web::Query<StreamQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "no such agency stream is visible to you");
    let agency = AgencyId::parse(&path.into_inner()).map_err(|_| not_found())?;
    if !crate::access::may_read_agency_stream(&who.0, &agency) {
        return Err(not_found());
    }
    serve(state, Source::Agency(agency), &query, &req).await
}

/// What a stream carries.
#[derive(Clone)]
enum Source {
    /// The deliveries routed to an agency.
    Agency(AgencyId),
    /// Consignment state changes: of one submitter's consignments, or all (`None`).
    Consignments(Option<String>),
}

/// The next events after `after`: (cursor, SSE event name, event).
async fn page(state: &AppState, source: &Source, after: i64) -> Result<Vec<(i64, &'static str, serde_json::Value)>, ApiError> {
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "stream: cannot read the store");
        ApiError::new(Code::Unavailable, "the store could not be read; retry later")
    };
    Ok(match source {
        Source::Agency(agency) => {
            let agency = agency.clone();
            state.gateway.store.read_with(move |l| l.agency_deliveries(&agency, after, PAGE)).await
        }
            .map_err(unavailable)?
            .iter()
            .map(|d| (d.position, "document", delivery_event(d)))
            .collect(),
        Source::Consignments(sender) => {
            let sender = sender.clone();
            state.gateway.store.read_with(move |l| l.status_events_after(sender.as_deref(), after, PAGE)).await
        }
            .map_err(unavailable)?
            .into_iter()
            .map(|e| (e.position, "status", serde_json::from_str(&e.body).unwrap_or(serde_json::Value::String(e.body))))
            .collect(),
    })
}

/// `GET /v1/consignments/events`: state changes of the caller's consignments.
pub async fn consignment_events(
    state: web::Data<AppState>,
    who: Authenticated,
    query: web::Query<StreamQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let source = match who.0.role {
        crate::domain::Role::Operator => Source::Consignments(None),
        crate::domain::Role::Trader | crate::domain::Role::Nsw => Source::Consignments(Some(who.0.id.clone())),
        crate::domain::Role::Agency => {
            return Err(ApiError::new(Code::Forbidden, "consignment events are for the consignments' submitters; agencies read their documents' stream"))
        }
    };
    serve(state, source, &query, &req).await
}

/// Long poll or SSE, from the cursor in `after` or `Last-Event-ID`.
async fn serve(state: web::Data<AppState>, source: Source, query: &StreamQuery, req: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let last_event = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    // A reconnecting EventSource sends the same URL again: its Last-Event-ID is the newer
    // cursor. Both must be cursors.
    let from_query = query.after.as_deref().map(cursor).transpose()?;
    let after = match last_event {
        Some(raw) => cursor(raw)?,
        None => from_query.unwrap_or(0),
    };
    match query.wait.as_deref() {
        Some(wait) => {
            let wait = humantime::parse_duration(wait)
                .map_err(|e| ApiError::new(Code::InvalidCursor, format!("wait {wait:?}: {e} (e.g. 30s)")))?
                .min(state.max_poll_wait);
            long_poll(&state, source, after, wait).await
        }
        None => Ok(event_stream(state, source, after)),
    }
}

async fn long_poll(state: &AppState, source: Source, after: i64, wait: Duration) -> Result<HttpResponse, ApiError> {
    let deadline = Instant::now() + wait;
    let mut closing = state.closing.clone();
    loop {
        let found = page(state, &source, after).await?;
        if !found.is_empty() || Instant::now() >= deadline || *closing.borrow() {
            let cursor = found.last().map_or(after, |e| e.0);
            let events: Vec<_> = found.into_iter().map(|e| e.2).collect();
            return Ok(HttpResponse::Ok().json(StreamPage { events, cursor }));
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))) => {}
            _ = closing.changed() => {}
        }
    }
}

/// A long poll's answer.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StreamPage {
    /// The events after the cursor asked for, oldest first: CloudEvents of deliveries (agency
    /// stream) or consignment status changes; empty when none came within `wait`.
    events: Vec<serde_json::Value>,
    /// The cursor to ask from next (`after=`): the last event's id, or the one asked for.
    cursor: i64,
}

/// What the SSE stream carries between polls.
struct Feed {
    state: web::Data<AppState>,
    source: Source,
    cursor: i64,
    ready: VecDeque<web::Bytes>,
    ends: Instant,
    beat: Instant,
    closing: tokio::sync::watch::Receiver<bool>,
}

fn event_stream(state: web::Data<AppState>, source: Source, after: i64) -> HttpResponse {
    let feed = Feed {
        ends: Instant::now() + state.stream_max,
        closing: state.closing.clone(),
        state,
        source,
        cursor: after,
        ready: VecDeque::from([web::Bytes::from_static(b"retry: 1000\n\n")]),
        beat: Instant::now(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(chunk) = feed.ready.pop_front() {
                return Some((Ok::<_, actix_web::Error>(chunk), feed));
            }
            if *feed.closing.borrow() || Instant::now() >= feed.ends {
                return None;
            }
            match page(&feed.state, &feed.source, feed.cursor).await {
                Ok(found) if !found.is_empty() => {
                    feed.cursor = found.last().map_or(feed.cursor, |e| e.0);
                    for (id, name, event) in found {
                        feed.ready.push_back(web::Bytes::from(format!("id: {id}\nevent: {name}\ndata: {event}\n\n")));
                    }
                    feed.beat = Instant::now();
                    continue;
                }
                Ok(_) => {}
                Err(_) => return None, // logged; the client reconnects with its cursor
            }
            if feed.beat.elapsed() >= HEARTBEAT {
                feed.beat = Instant::now();
                feed.ready.push_back(web::Bytes::from_static(b": keep-alive\n\n"));
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = feed.closing.changed() => {}
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}
