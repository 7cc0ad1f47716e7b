//! Everything that speaks Kafka: topic creation, the embedded mock cluster, the relay
//! (outbox -> agency topics, status outbox -> status topic) and the acknowledgment consumer.
//! Nothing else of the gateway knows rdkafka (the agency simulator, `crate::simulator`, plays an
//! agency, a client of its own).

pub mod acks;
pub mod cloudevents;
pub mod embedded;
pub mod relay;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaSecurity;
use crate::broker::{BrokerHealth, ClusterView};

/// The gateway's producer, as start-up names it without naming rdkafka.
pub type GatewayProducer = FutureProducer;

/// Why the broker side cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("cannot create the Kafka client for {brokers}: {source}")]
    Client { brokers: String, #[source] source: KafkaError },
    #[error("cannot create topic {topic} on {brokers}: {message}. Check that the broker runs and the gateway may create topics")]
    CreateTopic { topic: String, brokers: String, message: String },
    #[error("cannot start the embedded Kafka cluster: {0}")]
    Embedded(String),
    #[error("cannot start the acknowledgment consumers: {0}")]
    AckConsumers(String),
    /// A topic takes smaller records than the gateway may publish: documents it accepts could
    /// never be delivered.
    #[error("topic {topic} takes records of at most {found} bytes (its max.message.bytes), below kafka.max_message_bytes \
             ({wanted}): a document the gateway accepts could not be published. Raise the topic's limit \
             (kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config max.message.bytes={wanted}), \
             or lower kafka.max_message_bytes and gateway.max_body_bytes together")]
    TopicTooSmall { topic: String, found: usize, wanted: usize },
}

/// The client settings shared by the producer, the consumer and the admin client: the
/// brokers, and TLS/SASL when configured.
pub fn base_config(brokers: &str, security: &KafkaSecurity) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("client.id", "ventanilla");
    for (k, v) in security.properties() {
        c.set(k, v);
    }
    c
}

/// The producer every record leaves through: idempotent, `acks=all`, ordered per key, records
/// at most `max_message_bytes` (larger ones are refused before they leave).
pub fn producer(brokers: &str, security: &KafkaSecurity, max_message_bytes: usize) -> Result<FutureProducer, BrokerError> {
    base_config(brokers, security)
        .set("enable.idempotence", "true")
        .set("message.max.bytes", max_message_bytes.to_string())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(|source| BrokerError::Client { brokers: brokers.into(), source })
}

/// How the gateway's topics are laid out on the cluster.
#[derive(Debug, Clone, Copy)]
pub struct TopicLayout {
    pub partitions: i32,
    /// `None`: the broker's `default.replication.factor`.
    pub replication_factor: Option<i32>,
    /// `None`: the broker's `min.insync.replicas`.
    pub min_insync_replicas: Option<u32>,
    /// `kafka.max_message_bytes`: the topics' own `max.message.bytes` when created, and the
    /// least an existing topic must take.
    pub max_message_bytes: usize,
}

/// Creates the topics that do not exist yet (existing ones are left as they are).
pub async fn create_topics(
    brokers: &str,
    security: &KafkaSecurity,
    topics: &[String],
    layout: TopicLayout,
) -> Result<(), BrokerError> {
    let admin: AdminClient<DefaultClientContext> = base_config(brokers, security)
        .create()
        .map_err(|source| BrokerError::Client { brokers: brokers.into(), source })?;
    // -1 asks the broker for its default (Kafka 2.4 and later).
    let replication = layout.replication_factor.unwrap_or(-1);
    let min_insync = layout.min_insync_replicas.map(|n| n.to_string());
    let max_message = layout.max_message_bytes.to_string();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(t, layout.partitions, TopicReplication::Fixed(replication)).set("max.message.bytes", &max_message);
            match &min_insync {
                Some(n) => topic.set("min.insync.replicas", n),
                None => topic,
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| BrokerError::CreateTopic { topic: topics.join(","), brokers: brokers.into(), message: e.to_string() })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BrokerError::CreateTopic { topic, brokers: brokers.into(), message: code.to_string() })
            }
        }
    }
    check_record_limits(&admin, topics, layout.max_message_bytes, &opts).await?;
    // The controller has the topics; the brokers learn of them a moment later. Wait until the
    // cluster's metadata shows each with a leader for every partition, so that no agency that
    // reads as soon as the gateway is up is told the topic does not exist.
    let wanted: Arc<HashSet<String>> = Arc::new(topics.iter().cloned().collect());
    let probe: Arc<rdkafka::producer::BaseProducer> = Arc::new(
        base_config(brokers, security).create().map_err(|source| BrokerError::Client { brokers: brokers.into(), source })?,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = tokio::task::spawn_blocking({
            let (wanted, probe) = (wanted.clone(), probe.clone());
            move || -> Option<usize> {
                let metadata = probe.client().fetch_metadata(None, Duration::from_secs(5)).ok()?;
                Some(
                    metadata
                        .topics()
                        .iter()
                        .filter(|t| wanted.contains(t.name()) && !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0))
                        .count(),
                )
            }
        })
        .await
        .ok()
        .flatten();
        if shown == Some(wanted.len()) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(BrokerError::CreateTopic {
                topic: topics.join(","),
                brokers: brokers.into(),
                message: format!("created, but after 30 s the cluster's metadata shows {} of {} with leaders", shown.unwrap_or(0), wanted.len()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refuses topics (existing ones, made by an operator) whose `max.message.bytes` is below what
/// the gateway may publish.
async fn check_record_limits(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[String],
    wanted: usize,
    opts: &AdminOptions,
) -> Result<(), BrokerError> {
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let described = match admin.describe_configs(resources.iter(), opts).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the topics' max.message.bytes; not checked against kafka.max_message_bytes");
            return Ok(());
        }
    };
    for (topic, config) in topics.iter().zip(described) {
        let found = config.ok().and_then(|c| c.get("max.message.bytes").and_then(|e| e.value.as_deref()).and_then(|v| v.parse::<usize>().ok()));
        match found {
            Some(found) if found < wanted => return Err(BrokerError::TopicTooSmall { topic: topic.clone(), found, wanted }),
            Some(_) => {}
            None => tracing::warn!(topic = %topic, "cannot read the topic's max.message.bytes; not checked against kafka.max_message_bytes"),
        }
    }
    Ok(())
}

/// Asks the broker for the cluster's metadata within `timeout`; `None` when it does not answer.
/// Only `topics` count towards the partition figures.
pub async fn cluster_view(producer: &FutureProducer, topics: Arc<HashSet<String>>, timeout: Duration) -> Option<ClusterView> {
    let p = producer.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = p.client().fetch_metadata(None, timeout).ok()?;
        let mut view = ClusterView { brokers: metadata.brokers().len(), ..Default::default() };
        for partition in metadata.topics().iter().filter(|t| topics.contains(t.name())).flat_map(|t| t.partitions()) {
            if partition.leader() < 0 {
                view.without_leader += 1;
            }
            if partition.isr().len() < partition.replicas().len() {
                view.under_replicated += 1;
            }
        }
        Some(view)
    })
    .await
    .ok()
    .flatten()
}

/// Asks the broker for metadata every second until shutdown, and records the answer and what
/// it says of the gateway's own `topics`.
pub async fn watch_broker(
    producer: FutureProducer,
    health: BrokerHealth,
    topics: Arc<HashSet<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match cluster_view(&producer, topics.clone(), Duration::from_secs(1)).await {
            Some(view) => {
                health.set(true);
                health.record(view);
            }
            None => health.set(false),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn tls_and_sasl_settings_reach_the_clients_and_librdkafka_takes_them() {
        let security = KafkaSecurity {
            protocol: Some("sasl_ssl".into()),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("gateway".into()),
            sasl_password: Some(Secret::new("kafka-s3cret".into())),
            ..Default::default()
        };
        let c = base_config("127.0.0.1:1", &security);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.password"), Some("kafka-s3cret"));
        // librdkafka is built with TLS and SASL: a client with these settings can be created
        // (a build without them refuses `security.protocol=sasl_ssl` here).
        assert!(producer("127.0.0.1:1", &security, 1_000_000).is_ok());
        // The password never shows in a Debug of the settings.
        assert!(!format!("{security:?}").contains("kafka-s3cret"));
    }
}
