//! The integration suite, in one binary: every test spawns a real gateway on port 0 with its own
//! SQLite file and topic prefix, against the real broker process that `scripts/test.sh` starts
//! (Apache Kafka, `VENTANILLA_TEST_BROKERS`); outage, failover and security tests start clusters of
//! their own with the same script (`scripts/kafka.sh`).

#[path = "../support/mod.rs"]
mod support;

mod ack_consumer;
mod agency_kcat;
mod agency_stream;
mod asyncapi;
mod audit;
mod authorization;
mod batch;
mod clients;
mod crash;
mod dashboard;
mod duplicates;
mod end_to_end;
mod errors;
mod examples;
mod failover;
mod fairness;
mod fuzz;
mod helpers;
mod hostile;
mod kafka_cluster;
mod kafka_security;
mod indicators;
mod landing;
mod lifecycle;
mod limits;
mod memory;
mod messages;
mod metrics;
mod onboarding;
mod openapi;
mod outage;
mod postgres_store;
mod published_schemas;
mod python_agency;
mod receipts;
mod retries;
mod schema_evolution;
mod selection;
mod secrets;
mod shutdown;
mod simulator;
mod tls;
mod validate;
mod traffic;
mod walkthrough;
mod webhooks;
