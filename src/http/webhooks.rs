//! `/v1/webhooks`: a trader (or NSW) registers a URL its consignments' status changes are
//! POSTed to, lists its webhooks with how their deliveries stand, and removes them. Sending is
//! `crate::webhooks`.

use actix_web::{web, HttpRequest, HttpResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::errors::{ApiError, Code};
use super::policy::ConsignmentOwner;
use super::request::read_typed_body;
use super::state::AppState;
use crate::store::{StoreError, Webhook, WebhookRegistered};

/// The body of a registration.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where status changes are POSTed: `https://`, a public address.
    /// (`http://` and private addresses only with `webhooks.allow_insecure_urls`.)
    #[schemars(extend("format" = "uri", "pattern" = "^https://[^/?#@\\s]+", "maxLength" = 2048))]
    pub url: String,
}

/// The caller's webhooks.
#[derive(Serialize, JsonSchema)]
pub struct WebhookList {
    webhooks: Vec<Webhook>,
}

fn unavailable(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "webhooks: the store failed");
    ApiError::new(Code::Unavailable, "the store could not be reached; nothing was changed, retry later")
}

/// A secret of 244 random bits, as hex.
fn new_secret() -> String {
    format!("whsec_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// `POST /v1/webhooks`: 201 with the webhook and its secret (shown only here).
pub async fn register(
    who: ConsignmentOwner,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (request, _bytes): (WebhookRequest, _) = read_typed_body(&state, &who, &req, payload, |e| {
        ApiError::new(Code::InvalidWebhook, format!("the body must be {{\"url\": \"https://...\"}} and nothing else: {e}"))
    })
    .await?;
    let url = crate::webhooks::check_url(&request.url, state.webhooks.allow_insecure_urls)
        .map_err(|e| ApiError::new(Code::InvalidWebhook, e.to_string()))?;
    let secret = new_secret();
    let max = state.webhooks.max_per_participant;
    let registered = state.gateway.register_webhook(&who.0, url.to_string(), secret.clone(), max).await.map_err(unavailable)?;
    let Some(webhook) = registered else {
        return Err(ApiError::new(Code::InvalidWebhook, format!("you have {max} webhooks already, the most allowed; delete one first")));
    };
    // The host only: a URL's path or query may carry the receiver's own token.
    tracing::info!(webhook = %webhook.id, participant = %who.0.id(), host = %url.host_str().unwrap_or(""), "webhook registered");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/webhooks/{}", webhook.id)))
        .json(WebhookRegistered { webhook, secret }))
}

/// `GET /v1/webhooks`: the caller's webhooks, with where each delivery stands.
pub async fn list(who: ConsignmentOwner, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let webhooks = state.gateway.webhooks(&who.0).await.map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(WebhookList { webhooks }))
}

/// `DELETE /v1/webhooks/{id}`: 204; another participant's webhook is 404, like an unknown one.
pub async fn delete(who: ConsignmentOwner, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "you have no webhook with this id");
    let id = uuid::Uuid::parse_str(&path.into_inner()).map_err(|_| not_found())?;
    let removed = state.gateway.delete_webhook(&who.0, id).await.map_err(unavailable)?;
    if removed {
        tracing::info!(webhook = %id, participant = %who.0.id(), "webhook deleted");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found())
    }
}
