//! `ventanilla serve`: the gateway, its settings layered from the region file, the command line
//! and the environment, until it is asked to stop.

use std::net::SocketAddr;
use std::path::PathBuf;

use ventanilla::config::{ServeOptions, Settings, StoreUrl, TlsFiles};
use ventanilla::startup::Application;

use super::{Failure, StoreArgs};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VENTANILLA_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Kafka bootstrap servers; unset starts the embedded mock cluster.
    #[arg(long, env = "VENTANILLA_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Directory holding ventanilla.toml.
    #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
    config: PathBuf,
    /// Overrides `kafka.topic_prefix` of the configuration file.
    #[arg(long, env = "VENTANILLA_TOPIC_PREFIX")]
    topic_prefix: Option<String>,
    /// The server's TLS certificate chain (PEM); with --tls-key, serves HTTPS.
    #[arg(long, env = "VENTANILLA_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, env = "VENTANILLA_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The CA that signs participants' client certificates (PEM); enables mutual TLS.
    #[arg(long, env = "VENTANILLA_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Overrides `gateway.allow_plaintext_on_public_address` (true: serve plain HTTP on a
    /// non-loopback address, e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "VENTANILLA_ALLOW_PLAINTEXT_ON_PUBLIC_ADDRESS")]
    allow_plaintext_on_public_address: Option<bool>,
    /// Overrides `gateway.receipt_keys_dir`: where the keys that sign receipts are (gateways
    /// sharing a store share it).
    #[arg(long, env = "VENTANILLA_RECEIPT_KEYS")]
    receipt_keys: Option<PathBuf>,
    /// Without --kafka-brokers: the loopback port that reaches the embedded broker, the same at
    /// every start (0: only the broker's own port, which changes).
    #[arg(long, env = "VENTANILLA_EMBEDDED_KAFKA_PORT", default_value_t = 9092)]
    embedded_kafka_port: u16,
    /// Sets `webhooks.allow_insecure_urls` for this run: webhooks may POST to `http://` and to
    /// loopback or private addresses (a receiver on your own machine). Only with a loopback
    /// --bind: a gateway that others reach keeps its region file's setting.
    #[arg(long, env = "VENTANILLA_ALLOW_INSECURE_WEBHOOK_URLS")]
    allow_insecure_webhook_urls: bool,
}

/// `--allow-insecure-webhook-urls` on an address other than loopback.
#[derive(Debug, thiserror::Error)]
#[error(
    "--allow-insecure-webhook-urls (VENTANILLA_ALLOW_INSECURE_WEBHOOK_URLS) is for a gateway on your own machine, \
     and {0} is not a loopback address: bind 127.0.0.1, or set webhooks.allow_insecure_urls in the region file \
     if a shared gateway really must POST to private addresses"
)]
pub struct InsecureWebhooksOffLoopback(SocketAddr);

pub async fn run(a: ServeArgs) -> Result<(), Failure> {
    if a.allow_insecure_webhook_urls && !a.bind.ip().is_loopback() {
        return Err(InsecureWebhooksOffLoopback(a.bind).into());
    }
    let tls = TlsFiles::from_parts(a.tls_cert, a.tls_key, a.tls_client_ca)?;
    let options =
        ServeOptions { bind: a.bind, data_dir: a.store.data_dir, kafka_brokers: a.kafka_brokers, topic_prefix: a.topic_prefix, tls };
    let mut settings = Settings::load(a.config, options)?;
    if let Some(allow) = a.allow_plaintext_on_public_address {
        settings.region.gateway.allow_plaintext_on_public_address = allow;
    }
    if let Some(dir) = a.receipt_keys {
        settings.region.gateway.receipt_keys_dir = Some(std::path::absolute(dir)?);
    }
    if let Some(url) = a.store.store {
        StoreUrl::parse(&url)?;
        settings.region.store.url = Some(url);
    }
    settings.embedded_kafka_port = (a.embedded_kafka_port != 0).then_some(a.embedded_kafka_port);
    if a.allow_insecure_webhook_urls {
        settings.region.webhooks.allow_insecure_urls = true;
    }
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
