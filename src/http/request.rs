//! Reading a request's body within its bounds: the client's timeout (`408` beyond), the
//! gateway's size and shape limits, and the participant's bytes in flight.

use actix_web::{web, HttpRequest};

use super::body::json_body;
use super::errors::{ApiError, Code};
use super::policy::{body_bytes, Authenticated};
use super::state::AppState;

/// Runs a body read within the client timeout (408 beyond).
pub async fn within_timeout<T>(state: &AppState, read: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
    tokio::time::timeout(state.body_timeout, read)
        .await
        .map_err(|_| ApiError::new(Code::RequestTimeout, format!("the body did not arrive within {} ms", state.body_timeout.as_millis())))?
}

/// Reads `who`'s JSON body within the client timeout.
pub async fn read_body<P>(state: &AppState, who: &Authenticated<P>, req: &HttpRequest, payload: web::Payload) -> Result<serde_json::Value, ApiError> {
    within_timeout(state, json_body(req, payload, state.max_body_bytes, &state.json_limits, &who.1)).await
}

/// A JSON body of type `T`, read as [`read_body`] reads one, its bytes among `who`'s in flight
/// until the permit returned with it is dropped; a body that is not a `T` is `invalid`'s answer.
pub async fn read_typed_body<T: serde::de::DeserializeOwned, P>(
    state: &AppState,
    who: &Authenticated<P>,
    req: &HttpRequest,
    payload: web::Payload,
    invalid: impl FnOnce(serde_json::Error) -> ApiError,
) -> Result<(T, crate::quota::BytesPermit), ApiError> {
    let bytes = body_bytes(&who.1, req, state.max_body_bytes)?;
    let body = read_body(state, who, req, payload).await?;
    Ok((serde_json::from_value(body).map_err(invalid)?, bytes))
}
