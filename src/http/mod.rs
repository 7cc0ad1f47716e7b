//! The HTTP front: one route table (`api`), each route's access as the type of its handler's
//! first argument (`policy`), participants by token or client certificate (`auth`), bounded
//! JSON bodies (`body`, `request`), and every error as RFC 9457 `application/problem+json`
//! with a stable code (`errors`, over `crate::problems`).

pub mod api;
pub mod asyncapi;
pub mod audit;
pub mod auth;
pub mod body;
pub mod dashboard;
pub mod errors;
pub mod generators;
pub mod home;
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
