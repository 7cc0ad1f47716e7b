//! Ventanilla: a regional single-window trade message exchange gateway.
//!
//! Data moves one way: `http` -> `schema` -> `routing` -> `store` -> `kafka` relay; and back:
//! Kafka or HTTP acknowledgment -> `tracking` -> `store` -> status topic. The `gateway` module
//! holds the operations both directions share, with no knowledge of HTTP, SQL or rdkafka.

pub mod access;
pub mod acknowledgment;
pub mod audit;
pub mod broker;
pub mod clock;
pub mod config;
pub mod digest;
pub mod countries;
pub mod document_types;
pub mod domain;
pub mod draws;
pub mod gateway;
pub mod http;
pub mod identifiers;
pub mod indicators;
pub mod json;
#[cfg(test)]
mod layout;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod openapi_import;
pub mod outbox;
pub mod overlays;
pub mod pointer;
pub mod private_dir;
pub mod problems;
pub mod quota;
pub mod receipts;
pub mod replays;
pub mod kafka;
pub mod risk;
pub mod routing;
pub mod schema;
pub mod schema_diff;
pub mod simulator;
pub mod startup;
pub mod submission;
pub mod store;
pub mod supervision;
pub mod telemetry;
pub mod tls;
pub mod tracking;
pub mod webhooks;
