//! Reading a JSON request body within bounds: the media type first (415), then the size
//! (413, checked on `Content-Length` and again while reading), then the shape of the JSON
//! (422: depth, items, string length, counted before parsing), then the JSON itself (400):
//! strict JSON, so a duplicated key is an error rather than a silent "last one wins".

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use super::errors::{ApiError, Code};
use crate::json::{parse_bounded, JsonError, JsonLimits};

/// Reads and parses the body of `req`, at most `limit` bytes, within `shape`.
pub async fn json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    shape: &JsonLimits,
) -> Result<Value, ApiError> {
    let ctype = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && !(essence.starts_with("application/") && essence.ends_with("+json")) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("the body must be sent as `Content-Type: application/json`, not {:?}", ctype.chars().take(80).collect::<String>()),
        ));
    }
    let too_large = || ApiError::new(Code::PayloadTooLarge, format!("the body exceeds {limit} bytes")).with(serde_json::json!({"limit": limit}));
    if let Some(len) = req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok()) {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(Code::MalformedJson, format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    parse_json(&body, shape)
}

/// Parses a JSON body within `shape`, with the problem the API answers when it cannot (also
/// used by `ventanilla validate`, so both report alike).
pub fn parse_json(body: &[u8], shape: &JsonLimits) -> Result<Value, ApiError> {
    parse_bounded(body, shape).map_err(|e| match e {
        JsonError::Limit(l) => ApiError::new(Code::JsonLimitExceeded, format!("{l}; the gateway's bound is {} = {}", l.bound(), l.limit()))
            .with(serde_json::json!({"bound": l.bound(), "limit": l.limit()})),
        JsonError::Syntax(e) => ApiError::new(Code::MalformedJson, format!("the body is not valid JSON: {e}"))
            .with(serde_json::json!({"line": e.line(), "column": e.column()})),
    })
}
