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


use super::errors::{ApiError, Code};
use super::policy::Authenticated;
use super::state::AppState;
use crate::domain::AgencyId;
use crate::kafka::cloudevents::delivery_event;

/// Events read from the store per query: a page is held in memory while it is sent.
const PAGE: usize = 20;
/// A page's documents' bytes, at most (a page always holds at least one event): with documents
/// of a megabyte, a stream holds one at a time, not twenty.
const PAGE_BYTES: usize = 256 * 1024;
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
    who: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<StreamQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "no such agency stream is visible to you");
    let agency = AgencyId::parse(&path.into_inner()).map_err(|_| not_found())?;
    if !crate::access::may_read_agency_stream(&who.0, &agency) {
        return Err(not_found());
    }
    serve(state, &who, Source::Agency(agency), &query, &req).await
}

/// What a stream carries.
#[derive(Clone)]
enum Source {
    /// The deliveries routed to an agency.
    Agency(AgencyId),
    /// Consignment state changes: of one submitter's consignments, or all (`None`).
    Consignments(Option<String>),
}

/// The next events after `after`, as JSON text: (cursor, SSE event name, event); and the cursor
/// to ask from next when there are none (past events of others the caller may not see).
async fn page(state: &AppState, source: &Source, after: i64) -> Result<(Vec<(i64, &'static str, String)>, i64), ApiError> {
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "stream: cannot read the store");
        ApiError::new(Code::Unavailable, "the store could not be read; retry later")
    };
    Ok(match source {
        Source::Agency(agency) => {
            let agency = agency.clone();
            let found = state.gateway.agency_deliveries(agency, after, PAGE, PAGE_BYTES).await.map_err(unavailable)?;
            (found.iter().map(|d| (d.position, "document", delivery_event(d))).collect(), after)
        }
        Source::Consignments(sender) => {
            let sender = sender.clone();
            // The latest position first: every event of the caller's up to it is in the page
            // (or the page is full), so an empty page lets the cursor move past the others'.
            let (latest, found) = state.gateway.status_events(sender, after, PAGE).await.map_err(unavailable)?;
            let next = if found.is_empty() { latest.max(after) } else { after };
            (found.into_iter().map(|e| (e.position, "status", e.body)).collect(), next)
        }
    })
}

/// `GET /v1/consignments/events`: state changes of the caller's consignments.
pub async fn consignment_events(
    who: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<StreamQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let source = match who.0.role() {
        crate::domain::Role::Operator => Source::Consignments(None),
        crate::domain::Role::Trader | crate::domain::Role::Nsw | crate::domain::Role::Platform => Source::Consignments(Some(who.0.id().to_owned())),
        crate::domain::Role::Agency => {
            return Err(ApiError::new(Code::Forbidden, "consignment events are for the consignments' submitters; agencies read their documents' stream"))
        }
    };
    serve(state, &who, source, &query, &req).await
}

/// Long poll or SSE, from the cursor in `after` or `Last-Event-ID`; one of the caller's open
/// streams while it lasts (`429` past its quota).
async fn serve(state: web::Data<AppState>, who: &Authenticated, source: Source, query: &StreamQuery, req: &HttpRequest)
    -> Result<HttpResponse, ApiError> {
    let last_event = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    // A reconnecting EventSource sends the same URL again: its Last-Event-ID is the newer
    // cursor. Both must be cursors.
    let from_query = query.after.as_deref().map(cursor).transpose()?;
    let after = match last_event {
        Some(raw) => cursor(raw)?,
        None => from_query.unwrap_or(0),
    };
    let wait = query
        .wait
        .as_deref()
        .map(|wait| {
            humantime::parse_duration(wait)
                .map_err(|e| ApiError::new(Code::InvalidCursor, format!("wait {wait:?}: {e} (e.g. 30s)")))
                .map(|w| w.min(state.max_poll_wait))
        })
        .transpose()?;
    let open = Open { _permit: who.1.stream()?, allowance: who.1.clone() };
    match wait {
        Some(wait) => long_poll(&state, &open, source, after, wait).await,
        None => Ok(event_stream(state, open, source, after)),
    }
}

/// What an open stream holds: its place among the caller's streams, and the caller's allowance
/// for the bytes of the page it sends.
struct Open {
    _permit: tokio::sync::OwnedSemaphorePermit,
    allowance: std::sync::Arc<crate::quota::Allowance>,
}

async fn long_poll(state: &AppState, open: &Open, source: Source, mut after: i64, wait: Duration) -> Result<HttpResponse, ApiError> {
    let deadline = Instant::now() + wait;
    let mut closing = state.closing.clone();
    loop {
        let (found, next) = page(state, &source, after).await?;
        if !found.is_empty() || Instant::now() >= deadline || *closing.borrow() {
            let cursor = found.last().map_or(next, |e| e.0);
            // The page as JSON text, the events as stored: `{"events":[...],"cursor":N}`.
            let size: usize = found.iter().map(|e| e.2.len() + 1).sum();
            let bytes = open.allowance.bytes(size as u64)?;
            let mut body = String::with_capacity(size + 40);
            body.push_str("{\"events\":[");
            for (i, (_, _, event)) in found.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(event);
            }
            body.push_str(&format!("],\"cursor\":{cursor}}}"));
            // The page's bytes count against the caller until the body has been handed over.
            let chunk = futures_util::stream::once(async move {
                let _bytes = bytes;
                Ok::<_, actix_web::Error>(web::Bytes::from(body))
            });
            return Ok(HttpResponse::Ok().content_type("application/json").streaming(chunk));
        }
        // Past the others' events: the next look starts there, and costs what it returns.
        after = next;
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

/// The stream's first bytes: an SSE comment saying how its events are named, for a reader of
/// the raw stream (an `EventSource`'s `onmessage` sees only unnamed events).
const OPENING: &[u8] = b": Ventanilla event stream. Its events are named, document on an agency's stream and status on a \
consignments stream: listen with addEventListener(name), not onmessage. Resume with Last-Event-ID.\n\n";

/// The reconnection delay a client is asked to keep, sent with the first event.
const RETRY: &str = "retry: 1000\n";

/// What the SSE stream carries between polls.
struct Feed {
    state: web::Data<AppState>,
    /// The stream's place among its caller's, and the caller's allowance for page bytes.
    open: Open,
    /// The bytes of the page in `ready`, counted against the caller until it is sent.
    page_bytes: Option<crate::quota::BytesPermit>,
    source: Source,
    cursor: i64,
    ready: VecDeque<web::Bytes>,
    /// Whether an event carried the `retry:` field yet.
    retry_sent: bool,
    ends: Instant,
    beat: Instant,
    closing: tokio::sync::watch::Receiver<bool>,
}

fn event_stream(state: web::Data<AppState>, open: Open, source: Source, after: i64) -> HttpResponse {
    let feed = Feed {
        open,
        page_bytes: None,
        ends: Instant::now() + state.stream_max,
        closing: state.closing.clone(),
        state,
        source,
        cursor: after,
        // A comment (clients dispatch nothing for it) opens the stream for whoever reads it raw;
        // the reconnection delay comes with the first event, as some clients hand a block with
        // `retry:` alone over as an empty event.
        ready: VecDeque::from([web::Bytes::from_static(OPENING)]),
        retry_sent: false,
        beat: Instant::now(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(chunk) = feed.ready.pop_front() {
                return Some((Ok::<_, actix_web::Error>(chunk), feed));
            }
            // The page was sent: its bytes no longer count.
            feed.page_bytes = None;
            if *feed.closing.borrow() || Instant::now() >= feed.ends {
                return None;
            }
            match page(&feed.state, &feed.source, feed.cursor).await {
                Ok((found, _)) if !found.is_empty() => {
                    let size: usize = found.iter().map(|e| e.2.len() + 32).sum();
                    // Past the caller's bytes in flight (its other streams hold pages nobody
                    // reads): this page waits, and is read again at the next look.
                    if let Ok(bytes) = feed.open.allowance.bytes(size as u64) {
                        feed.page_bytes = Some(bytes);
                        feed.cursor = found.last().map_or(feed.cursor, |e| e.0);
                        for (id, name, event) in found {
                            // A payload as sent may span lines (whitespace between JSON tokens):
                            // each line its own `data:` field, which the client joins again.
                            let data = event.replace('\r', "").replace('\n', "\ndata: ");
                            let retry = if std::mem::replace(&mut feed.retry_sent, true) { "" } else { RETRY };
                            feed.ready.push_back(web::Bytes::from(format!("{retry}id: {id}\nevent: {name}\ndata: {data}\n\n")));
                        }
                        feed.beat = Instant::now();
                        continue;
                    }
                }
                // Nothing for the caller: the next look starts past the others' events.
                Ok((_, next)) => feed.cursor = next,
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
