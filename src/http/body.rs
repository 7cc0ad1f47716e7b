//! Reading a JSON request body within bounds: the media type first (415), then the size
//! (413, checked on `Content-Length` and again while reading), then the shape of the JSON
//! (422: depth, items, string length, values, and the memory its tree will take, counted
//! before parsing), then the JSON itself (400): strict JSON, so a duplicated key is an error
//! rather than a silent "last one wins".
//!
//! What parsing costs is the sender's: the memory the tree will take is reserved among its
//! bytes in flight before the tree is built (429 past its quota, 503 past the gateway's pool),
//! held until the request is answered, and the CPU time of parsing is charged to its CPU quota.
//! A batch is parsed one document at a time, each dropped before the next is parsed.

use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use std::sync::Arc;

use super::errors::{ApiError, Code};
use crate::problems::{beyond, json_problem, malformed};
use crate::json::{JsonError, JsonLimits};
use crate::quota::{Allowance, BytesPermit};

/// The memory of the parsed trees a request holds, kept in its extensions until it is answered.
#[derive(Default)]
struct ParsedTrees(Vec<BytesPermit>);

/// Keeps `permit` for as long as `req` lives.
fn hold(req: &HttpRequest, permit: BytesPermit) {
    let mut extensions = req.extensions_mut();
    match extensions.get_mut::<ParsedTrees>() {
        Some(held) => held.0.push(permit),
        None => {
            extensions.insert(ParsedTrees(vec![permit]));
        }
    }
}

/// Parses `body` within `shape` as `sender`'s work: the tree's memory reserved among its bytes
/// in flight first, the CPU time charged to it.
fn parse_as(sender: &Allowance, body: &[u8], shape: &JsonLimits) -> Result<(Value, BytesPermit), ApiError> {
    sender.metered(|| {
        crate::json::parse_reserved(body, shape, |bytes| sender.parsed_tree(bytes as u64).map_err(|e| Reserved::Quota(e.into()))).map_err(|e| match e {
            Reserved::Json(e) => json_problem(&e),
            Reserved::Quota(e) => e,
        })
    })?
}

/// Why a body could not be parsed within its sender's reservation.
enum Reserved {
    Json(JsonError),
    Quota(ApiError),
}

impl From<JsonError> for Reserved {
    fn from(e: JsonError) -> Self {
        Reserved::Json(e)
    }
}

/// Reads and parses the body of `req`, at most `limit` bytes, within `shape`, as `sender`'s.
pub async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    shape: &JsonLimits,
    sender: &Arc<Allowance>,
) -> Result<Value, ApiError> {
    match media_type(req)? {
        MediaType::Json => {
            let (shape, sender) = (*shape, sender.clone());
            let (value, permit) =
                parse_off_worker_if_large(read_limited(req, payload, limit).await?, move |body| parse_as(&sender, body, &shape)).await?;
            hold(req, permit);
            Ok(value)
        }
        MediaType::NdJson => Err(unsupported(req)),
    }
}

/// A document as submitted: its parsed body, and its `payload` member's text exactly as sent.
pub type Submitted = (Value, Option<String>);

/// The text of a document's `payload` member exactly as sent (key order, whitespace, escapes):
/// what agencies receive, so that a signature the trader made over those bytes still checks.
/// `body` has already been parsed (strictly: no duplicate members).
pub fn payload_text(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        payload: Option<&'a serde_json::value::RawValue>,
    }
    serde_json::from_slice::<Envelope<'_>>(body).ok()?.payload.map(|p| p.get().to_owned())
}

/// A document's body ([`json_body`]), with its payload's text as sent.
pub async fn document_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    shape: &JsonLimits,
    sender: &Arc<Allowance>,
) -> Result<Submitted, ApiError> {
    request_with_document(req, payload, limit, shape, None, sender).await
}

/// A request that carries a document in its member `member` (an amendment's `document`, a
/// response's `supportingDocument`), or is one (`None`): the parsed body, and the document's
/// payload's text as sent.
pub async fn request_with_document(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    shape: &JsonLimits,
    member: Option<&'static str>,
    sender: &Arc<Allowance>,
) -> Result<Submitted, ApiError> {
    match media_type(req)? {
        MediaType::Json => {
            let (shape, sender) = (*shape, sender.clone());
            let (value, text, permit) = parse_off_worker_if_large(read_limited(req, payload, limit).await?, move |body| {
                let (value, permit) = parse_as(&sender, body, &shape)?;
                let text = match member {
                    None => payload_text(body),
                    Some(member) => member_text(body, member).and_then(|document| payload_text(document.as_bytes())),
                };
                Ok((value, text, permit))
            })
            .await?;
            hold(req, permit);
            Ok((value, text))
        }
        MediaType::NdJson => Err(unsupported(req)),
    }
}

/// The text of the top-level member `member` of `body`, as sent.
fn member_text(body: &[u8], member: &str) -> Option<String> {
    let top: std::collections::HashMap<String, &serde_json::value::RawValue> = serde_json::from_slice(body).ok()?;
    top.get(member).map(|raw| raw.get().to_owned())
}

/// Bodies up to this size are parsed on the worker that read them (a typical 10 KB document
/// takes tens of microseconds); larger ones on the blocking pool.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Runs `parse` on `body`: inline when small, on the blocking pool when large, so a big body
/// (up to `gateway.max_batch_body_bytes`) does not hold up the other connections of this worker.
async fn parse_off_worker_if_large<T: Send + 'static>(
    body: web::BytesMut,
    parse: impl FnOnce(&[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if body.len() <= INLINE_PARSE_BYTES {
        return parse(&body);
    }
    web::block(move || parse(&body))
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("the body could not be parsed: {e}")))?
}

/// How a batch arrives: one JSON array, or NDJSON (one envelope per line) for streaming clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Json,
    NdJson,
}

fn content_type(req: &HttpRequest) -> &str {
    req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn unsupported(req: &HttpRequest) -> ApiError {
    ApiError::new(
        Code::UnsupportedMediaType,
        format!(
            "the body must be sent as `Content-Type: application/json` (a batch also as application/x-ndjson), not {:?}",
            content_type(req).chars().take(80).collect::<String>()
        ),
    )
}

fn media_type(req: &HttpRequest) -> Result<MediaType, ApiError> {
    let essence = content_type(req).split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(MediaType::Json)
    } else if essence == "application/x-ndjson" || essence == "application/jsonl" {
        Ok(MediaType::NdJson)
    } else {
        Err(unsupported(req))
    }
}

/// Reads at most `limit` bytes (413 beyond, checked on `Content-Length` and while reading).
async fn read_limited(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let too_large = || ApiError::new(Code::PayloadTooLarge, format!("the body exceeds {limit} bytes")).with(serde_json::json!({"limit": limit}));
    let announced = req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    // Sized from the announced length, up to 64 KiB (a typical document at once, without
    // reserving much for a client that announces more than it sends); grown beyond that.
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0).min(64 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(Code::MalformedJson, format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A batch as read: its bytes, counted but not yet parsed ([`batch_body`]).
pub struct Batch {
    bytes: web::BytesMut,
    kind: MediaType,
    item_limit: usize,
    shape: JsonLimits,
    max_items: usize,
}

/// Reads a batch: at most `limit` bytes and `max_items` envelopes, each at most `item_limit`
/// bytes (as a single submission). Nothing is parsed yet: [`Batch::each`] parses one document
/// at a time. Items are counted before any is parsed, so a body of many tiny lines cannot make
/// many problems.
pub async fn batch_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    item_limit: usize,
    shape: &JsonLimits,
    max_items: usize,
) -> Result<Batch, ApiError> {
    let kind = media_type(req)?;
    let bytes = read_limited(req, payload, limit).await?;
    Ok(Batch { bytes, kind, item_limit, shape: *shape, max_items })
}

impl Batch {
    /// Splits the batch into its documents and hands each to `take` in order, parsed on its
    /// own as `sender`'s (see [`json_body`]): a malformed NDJSON line or an oversized item is that
    /// item's problem, not the batch's. Each document's tree, and its reservation among the
    /// sender's bytes in flight, is dropped before the next is parsed. CPU work: call it on the
    /// blocking pool.
    pub fn each<R>(&self, sender: &Allowance, mut take: impl FnMut(usize, Result<Submitted, ApiError>) -> R) -> Result<Vec<R>, ApiError> {
        let (bytes, shape, item_limit, max_items) = (&self.bytes[..], &self.shape, self.item_limit, self.max_items);
        let mut parse = |i: usize, text: &[u8]| -> R {
            let item = if text.len() > item_limit {
                Err(ApiError::new(Code::PayloadTooLarge, format!("a document exceeds {item_limit} bytes"))
                    .with(serde_json::json!({"limit": item_limit})))
            } else {
                parse_as(sender, text, shape).map(|(value, permit)| (value, payload_text(text), permit))
            };
            match item {
                // The reservation is held while `take` works on the tree, dropped with it.
                Ok((value, text, _permit)) => take(i, Ok((value, text))),
                Err(problem) => take(i, Err(problem)),
            }
        };
        let too_many = |n: usize| {
            ApiError::new(Code::PayloadTooLarge, format!("a batch holds at most {max_items} documents, this one {n}"))
                .with(serde_json::json!({"maxItems": max_items}))
        };
        let results: Vec<R> = match self.kind {
            MediaType::Json => {
                // The array adds one level of nesting to every document; its items are bounded
                // one by one, as they are parsed.
                let array_shape = JsonLimits {
                    max_depth: shape.max_depth + 1,
                    max_items: shape.max_items.max(max_items + 1),
                    max_nodes: usize::MAX,
                    max_parsed_bytes: usize::MAX,
                    ..*shape
                };
                crate::json::check_limits(bytes, &array_shape).map_err(beyond)?;
                if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
                    return Err(ApiError::new(Code::MalformedJson, "a batch is a JSON array of documents (or NDJSON, one per line)"));
                }
                // The array is split into each document's text as sent, without building anything;
                // each is then parsed on its own, like an NDJSON line.
                let texts: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
                if texts.len() > max_items {
                    return Err(too_many(texts.len()));
                }
                texts.into_iter().enumerate().map(|(i, text)| parse(i, text.get().as_bytes())).collect()
            }
            MediaType::NdJson => {
                let lines = || bytes.split(|b: &u8| *b == b'\n').filter(|line: &&[u8]| line.iter().any(|b| !b.is_ascii_whitespace()));
                let n = lines().take(max_items + 1).count();
                if n > max_items {
                    return Err(too_many(lines().count()));
                }
                lines().enumerate().map(|(i, line)| parse(i, line)).collect()
            }
        };
        if results.is_empty() {
            return Err(ApiError::new(Code::MalformedJson, "the batch holds no document"));
        }
        Ok(results)
    }
}
