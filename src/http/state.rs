//! What every handler shares: the gateway and the bounds of the HTTP front, built once at start
//! (`crate::startup`) and handed to each worker.

use std::sync::Arc;

use actix_web::web;

use super::auth::Directory;
use crate::gateway::Gateway;
use crate::json::JsonLimits;

/// What every handler shares.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub directory: Directory,
    /// Largest accepted body, from `gateway.max_body_bytes`.
    pub max_body_bytes: usize,
    /// Bounds on the shape of JSON bodies (`gateway.max_json_*`).
    pub json_limits: JsonLimits,
    /// How long a client may take to send a body.
    pub body_timeout: std::time::Duration,
    /// Bounds the writes in progress (`gateway.max_concurrent_writes`).
    pub writes: Arc<tokio::sync::Semaphore>,
    /// Each participant's allowance (`[quotas]`).
    pub quotas: std::sync::Arc<crate::quota::Quotas>,
    /// Refusals counted for the audit log in a bounded form (`refusals.rs`).
    pub refusals: std::sync::Arc<crate::http::refusals::RefusalAudit>,
    /// `gateway.stream_max_seconds`.
    pub stream_max: std::time::Duration,
    /// `gateway.max_poll_wait_seconds`.
    pub max_poll_wait: std::time::Duration,
    /// Turns true when the gateway is asked to stop: open streams end.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// `gateway.max_batch_items` and `gateway.max_batch_body_bytes`.
    pub max_batch_items: usize,
    pub max_batch_body_bytes: usize,
    /// `[webhooks]`: which URLs may be registered, and how many.
    pub webhooks: crate::config::WebhooksConfig,
    /// `/openapi.json`, generated once at start.
    pub openapi: web::Bytes,
    /// `/asyncapi.json`, generated once at start.
    pub asyncapi: web::Bytes,
    /// The public release-time figures' cache and bounds, for the whole gateway.
    pub public_indicators: crate::http::public_cache::PublicIndicators,
}

/// The shared state, as handlers take it.
pub type State = web::Data<AppState>;
