//! The HTTP front: routes grouped by scope, bearer-token participants, bounded JSON bodies, and
//! every error as RFC 9457 `application/problem+json` with a stable code.

pub mod api;
pub mod asyncapi;
pub mod audit;
pub mod auth;
pub mod body;
pub mod dashboard;
pub mod errors;
pub mod indicators;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod public_cache;
pub mod refusals;
pub mod request;
pub mod risk;
pub mod routes;
pub mod state;
pub mod stream;
pub mod webhooks;

/// Registers every route, from the API's one description.
pub use api::configure;
