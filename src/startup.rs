//! Builds the application from settings: schema registry, routing, store, Kafka (a real cluster
//! or the embedded one), the relays, the ack consumer and the HTTP server on its own listener
//! (port 0 in tests). Shutdown: the server finishes in-flight requests, then the background
//! tasks are told to stop, publish what they can, flush the producer and commit offsets.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::instrument::WithSubscriber;

use crate::config::{Settings, StoreUrl};
use crate::gateway::Gateway;
use crate::http::auth::Directory;
use crate::http::state::AppState;
use crate::kafka::embedded::EmbeddedCluster;
use crate::kafka::relay::{self, DeliveryRelay};
use crate::outbox::RetryPolicy;

use crate::broker::Topics;
use crate::kafka as broker;
use crate::routing::Router;
use crate::schema::SchemaRegistry;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::supervision::{supervise, TaskHealth};
use crate::webhooks::WebhookDispatcher;

/// A background task's work, boxed so the tasks can be supervised alike.
type BackgroundTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Why the gateway cannot start; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error(transparent)]
    ReceiptKeys(#[from] crate::receipts::ReceiptKeyError),
    #[error("routing rules: {0}")]
    Routing(String),
    #[error("risk profiling: {0}")]
    Risk(String),
    #[error("participants: {0}")]
    Participants(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("cannot listen on {addr}: {source}. Is another process using the port?")]
    Bind { addr: std::net::SocketAddr, #[source] source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: participants' tokens and \
         documents would cross the network in clear. Set VENTANILLA_TLS_CERT and VENTANILLA_TLS_KEY, bind to \
         127.0.0.1, or set gateway.allow_plaintext_on_public_address = true if a TLS proxy on this host \
         terminates TLS"
    )]
    PlaintextOnPublicAddress { addr: std::net::SocketAddr },
    #[error("cannot build the webhooks' HTTP client (are the system's CA certificates readable?): {0}")]
    WebhookClient(#[source] reqwest::Error),
}

/// A built gateway, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    /// Tells the background tasks to finish, once the server has stopped.
    shutdown: watch::Sender<bool>,
    /// Tells open streams to end, as soon as a stop is asked for (before in-flight requests
    /// finish, which a stream never would).
    closing: Arc<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    /// Raised when a background task fails: the gateway then stops (`crate::supervision`).
    task_health: TaskHealth,
    /// The store and this gateway's name in it: its claims are handed back at the stop.
    claims: (Arc<dyn Store>, String),
    /// Kept alive while the gateway runs; `None` with a real cluster.
    _embedded: Option<EmbeddedCluster>,
    /// The bootstrap servers in use (the embedded cluster's address when embedded).
    pub brokers: String,
}

impl Application {
    /// Builds the gateway from `settings`, step by step: what it checks documents with, its
    /// store, its broker, the gateway itself, its background tasks, then its HTTP server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Memory a burst of large requests freed goes back to the system (`crate::memory`).
        crate::memory::start_trimmer();
        let rules = step("loading the schemas, the routing rules and the receipt keys", async { Rules::load(&settings) }).await?;
        // This gateway's name in the store's claims and audit chains; unique per process, so a
        // restarted gateway does not take up a dead one's claims before their leases run out.
        let instance = format!("gw-{}-{}", std::process::id(), &uuid::Uuid::now_v7().simple().to_string()[24..]);
        let store = step("opening and migrating the store", open_store(&settings, &instance, &rules.risk)).await?;
        let topics = Topics::new(&settings.region.kafka.topic_prefix);
        let broker = step("connecting to Kafka and creating the topics", Broker::connect(&settings, &topics)).await?;
        let gateway = Arc::new(gateway(&settings, rules, store, topics, instance));
        let Broker { embedded, brokers, clients } = broker;
        // Readiness shows the cluster from the first request on, not from the watcher's first round.
        let view = step("reading the Kafka cluster's state", broker::cluster_view(&clients.producer, clients.watched.clone(), Duration::from_secs(2)));
        if let Some(view) = view.await {
            gateway.broker().record(view);
        }
        let refusals = Arc::new(crate::http::refusals::RefusalAudit::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let tasks = background_tasks(&settings, &gateway, clients, refusals.clone(), shutdown_rx)?;
        load_indicators(gateway.clone());
        let task_health = gateway.tasks().clone();
        let claims = (gateway.store().clone(), gateway.instance().to_owned());
        let (closing, closing_rx) = watch::channel(false);
        let (server, port) = serve_http(&settings, gateway, refusals, closing_rx, &brokers)?;
        Ok(Application { port, server, shutdown, closing: Arc::new(closing), tasks, task_health, claims, _embedded: embedded, brokers })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the gateway from elsewhere, as a signal would: `run_until_stopped` then finishes
    /// in-flight requests and drains the background tasks.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { server: self.server.handle(), closing: self.closing.clone() }
    }

    /// Serves until SIGTERM or Ctrl-C (or a [`StopHandle`], or a background task's failure),
    /// then shuts down gracefully. A failed background task makes the result an error, so the
    /// process exits non-zero for its service manager to start it again.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = self.stop_handle();
        let task_health = self.task_health.clone();
        let asked = Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
        let signals = tokio::spawn({
            let asked = asked.clone();
            async move {
                tokio::select! {
                    _ = wait_for_signal() => tracing::info!("stop signal received: finishing in-flight requests"),
                    _ = task_health.fault() => tracing::warn!("a background task failed: stopping, finishing in-flight requests"),
                }
                let _ = asked.set(std::time::Instant::now());
                stop.stop().await;
            }
        });
        let result = self.server.await;
        signals.abort();
        let since_asked = asked.get().map_or(Duration::ZERO, |t| t.elapsed());
        tracing::info!("HTTP server stopped; finishing the relays' batches in hand and flushing the producer");
        let _ = self.shutdown.send(true);
        // Together, and within what is left of the stop's budget: each relay ends after the
        // batch in hand; what is left in the outbox, or unconfirmed when time is up, stays in
        // the store for another gateway or the next start (sent again: at least once).
        let left = STOP_BUDGET.saturating_sub(since_asked).max(Duration::from_millis(500));
        let ended = tokio::time::timeout(left, futures_util::future::join_all(self.tasks)).await.is_ok();
        let (store, instance) = &self.claims;
        if ended {
            match crate::outbox::release_claims(&**store, instance).await {
                Ok(n) => tracing::info!(instance = %instance, consignments = n, "claims handed back for other gateways"),
                Err(e) => tracing::warn!(error = %e, "cannot hand the claims back; they lapse when their leases run out"),
            }
        } else {
            // Records may still be in the producer: handing the claims back now could let
            // another gateway publish a consignment's next records before them.
            tracing::warn!(waited_ms = left.as_millis() as u64,
                "background tasks did not end in time; stopping anyway. The claims are kept until their leases run out \
                 (what was not confirmed stays in the store and is published again)");
        }
        drop(self._embedded);
        let failed = self.task_health.failures();
        if result.is_ok() && !failed.is_empty() {
            let names: Vec<String> = failed.iter().map(|f| format!("{} ({})", f.task, f.cause)).collect();
            return Err(std::io::Error::other(format!("stopped because background tasks failed: {}", names.join("; "))));
        }
        result
    }
}

/// What the gateway checks and routes documents with, loaded and checked against each other:
/// a route or a risk rule naming what the schemas do not describe stops the start, named.
struct Rules {
    registry: Arc<SchemaRegistry>,
    receipt_keys: Arc<crate::receipts::ReceiptKeys>,
    router: Router,
    /// The analysts' rules and budgets (`crate::risk`).
    risk: Arc<crate::risk::Risk>,
}

impl Rules {
    fn load(settings: &Settings) -> Result<Self, StartupError> {
        let registry = Arc::new(SchemaRegistry::of_region(&settings.schemas_dir(), &settings.region)?);
        for warning in registry.warnings() {
            tracing::warn!("{warning}");
        }
        let receipt_keys = Arc::new(crate::receipts::ReceiptKeys::load_or_create(&settings.receipt_keys_dir())?);
        let router = Router::new(&settings.region);
        router.check_types(|t| registry.knows(t)).map_err(StartupError::Routing)?;
        let risk = Arc::new(crate::risk::Risk::new(&settings.region).map_err(StartupError::Risk)?);
        Ok(Rules { registry, receipt_keys, router, risk })
    }
}

/// The store, migrated, with the risk rules an operator last put at run time (kept there, in
/// place of the region file's: `crate::risk::changes`).
async fn open_store(settings: &Settings, instance: &str, risk: &crate::risk::Risk) -> Result<Arc<dyn Store>, StartupError> {
    let url = settings.store_url()?;
    let store: Arc<dyn Store> = match &url {
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open_file(path)?),
        StoreUrl::Postgres(postgres) => Arc::new(PgStore::connect(postgres, instance).await?),
    };
    tracing::info!(store = %url, "store opened, migrations applied");
    crate::risk::changes::load(&*store, risk).await?;
    Ok(store)
}

/// The Kafka side: a real cluster's topics created, or the embedded cluster started; the
/// producer and the agencies' ack consumers.
struct Broker {
    /// Kept alive while the gateway runs; `None` with a real cluster.
    embedded: Option<EmbeddedCluster>,
    /// The address outside clients are told (the embedded broker's fixed port).
    brokers: String,
    clients: KafkaClients,
}

impl Broker {
    async fn connect(settings: &Settings, topics: &Topics) -> Result<Self, StartupError> {
        let kafka = &settings.region.kafka;
        let topic_names = topics.all(settings.region.agencies.iter().map(|a| &a.id));
        let partitions = kafka.partitions;
        let layout = broker::TopicLayout {
            partitions,
            replication_factor: kafka.replication_factor,
            min_insync_replicas: kafka.min_insync_replicas,
            max_message_bytes: kafka.max_message_bytes,
        };
        // `brokers` is the address outside clients are told; `own` the one the gateway's clients use.
        let (embedded, brokers, own, security) = match &settings.kafka_brokers {
            Some(b) => {
                let security = kafka.security.clone();
                broker::create_topics(b, &security, &topic_names, layout).await?;
                (None, b.clone(), b.clone(), security)
            }
            None => {
                let (cluster, b, own) = start_embedded(settings, topics, topic_names.clone(), partitions).await?;
                (Some(cluster), b, own, Default::default())
            }
        };
        let producer = broker::producer(&own, &security, kafka.max_message_bytes)?;
        let ack_topics: Vec<(String, String)> = settings.region.agencies.iter().map(|a| (a.id.to_string(), topics.acks(&a.id))).collect();
        let ack_consumers = broker::acks::consumers(&own, &security, &kafka.consumer_group, &ack_topics).await?;
        let watched = Arc::new(topic_names.into_iter().collect());
        Ok(Broker { embedded, brokers, clients: KafkaClients { producer, ack_consumers, watched } })
    }
}

/// The embedded mock cluster, reached at the fixed loopback port when it can be bound: the
/// cluster, the address clients are told, and its own.
async fn start_embedded(
    settings: &Settings,
    topics: &Topics,
    topic_names: Vec<String>,
    partitions: i32,
) -> Result<(EmbeddedCluster, String, String), StartupError> {
    let mut cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(topic_names, partitions))
        .await
        .map_err(|e| broker::BrokerError::Embedded(e.to_string()))??;
    let own = cluster.bootstrap_servers().to_owned();
    let b = match settings.embedded_kafka_port {
        Some(port) => match cluster.forward_from(port).await {
            Ok(fixed) => fixed,
            Err(e) => {
                tracing::warn!(
                    "the embedded broker's fixed port 127.0.0.1:{port} cannot be bound ({e}); clients reach it at {own} \
                     this time. Free the port (another gateway may hold it), or choose another with --embedded-kafka-port"
                );
                own.clone()
            }
        },
        None => own.clone(),
    };
    tracing::warn!(
        brokers = %b,
        "no Kafka configured (--kafka-brokers / VENTANILLA_KAFKA_BROKERS): started the embedded \
         librdkafka mock cluster at {b}. It keeps NOTHING across a restart; the store keeps every \
         accepted document and re-publishes what is not yet confirmed. Use a real cluster in production."
    );
    if let Some(agency) = settings.region.agencies.first() {
        tracing::info!(
            "an agency reads its documents with: kcat -b {b} -C -t {} -o beginning -e -f 'key=%k\\nheaders=%h\\n%s\\n\\n'",
            topics.agency(&agency.id)
        );
    }
    if settings.region.kafka.security != Default::default() {
        tracing::warn!("kafka.security is ignored by the embedded cluster, which speaks plaintext only");
    }
    Ok((cluster, b, own))
}

/// The gateway's operations, over what the steps before built.
fn gateway(settings: &Settings, rules: Rules, store: Arc<dyn Store>, topics: Topics, instance: String) -> Gateway {
    let g = &settings.region.gateway;
    let bounds = crate::gateway::Bounds {
        json_limits: g.json_limits(),
        max_backlog: g.max_outbox_backlog,
        change_after_release: g.change_after_release,
        max_document_versions: g.max_document_versions,
        public_min_count: settings.region.indicators.public_min_count,
        public_settle_ms: i64::from(settings.region.indicators.public_settle_days) * 86_400_000,
        tfa_joint_window_ms: settings.region.indicators.tfa_joint_window_ms(),
    };
    Gateway::new(crate::gateway::Parts {
        registry: rules.registry,
        router: rules.router,
        store,
        topics,
        instance,
        receipt_keys: rules.receipt_keys,
        risk: rules.risk,
        bounds,
    })
}

/// The gateway's Kafka clients, which the background tasks take: the producer, the ack
/// consumers (handed over once) and the topics the watcher reports on.
struct KafkaClients {
    producer: broker::GatewayProducer,
    ack_consumers: Vec<broker::acks::AckConsumer>,
    /// The gateway's own topics, whose partitions readiness watches.
    watched: Arc<std::collections::HashSet<String>>,
}

/// The supervised background tasks: the relays, the broker's watcher, the ack consumer, the
/// webhooks, the risk rules and learning, and the refusals' audit. Each stops when `shutdown`
/// turns true; one that fails stops the gateway (`crate::supervision`).
fn background_tasks(
    settings: &Settings,
    gateway: &Arc<Gateway>,
    clients: KafkaClients,
    refusals: Arc<crate::http::refusals::RefusalAudit>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, StartupError> {
    let KafkaClients { producer, ack_consumers, watched } = clients;
    let (store, producer, topics) = (gateway.store(), &producer, gateway.topics());
    let kafka = &settings.region.kafka;
    let delivery_relay = DeliveryRelay {
        store: store.clone(),
        producer: producer.clone(),
        wakeup: gateway.wakeups().0.clone(),
        health: gateway.broker().clone(),
        retry: RetryPolicy {
            max_attempts: kafka.max_delivery_attempts,
            initial_backoff: Duration::from_millis(kafka.retry_initial_backoff_ms),
            max_backoff: Duration::from_millis(kafka.retry_max_backoff_ms),
        },
        dead_letter_topic: topics.dead_letter(),
        backlog: gateway.backlog().clone(),
        metrics: gateway.metrics().clone(),
        instance: gateway.instance().to_owned(),
    };
    let hooks = &settings.region.webhooks;
    let webhook_dispatcher = WebhookDispatcher {
        store: store.clone(),
        instance: gateway.instance().to_owned(),
        client: WebhookDispatcher::client(Duration::from_millis(hooks.timeout_ms), hooks.allow_insecure_urls)
            .map_err(StartupError::WebhookClient)?,
        allow_insecure: hooks.allow_insecure_urls,
        retry: RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_millis(hooks.initial_backoff_ms),
            max_backoff: Duration::from_millis(hooks.max_backoff_ms),
        },
        metrics: gateway.metrics().clone(),
    };
    let training_every = (settings.region.risk.training_every_hours > 0)
        .then(|| Duration::from_secs(settings.region.risk.training_every_hours.saturating_mul(3600)));
    let supervised = |task: &'static str, work| supervise(task, work, shutdown.clone(), gateway.tasks().clone(), gateway.metrics().clone());
    Ok(vec![
        supervised("relay", Box::pin(delivery_relay.run(shutdown.clone())) as BackgroundTask),
        supervised("broker-watcher", Box::pin(broker::watch_broker(producer.clone(), gateway.broker().clone(), watched, shutdown.clone()))),
        supervised(
            "status-relay",
            Box::pin(relay::run_status_relay(
                store.clone(),
                producer.clone(),
                topics.status(),
                gateway.wakeups().1.clone(),
                gateway.instance().to_owned(),
                shutdown.clone(),
            )),
        ),
        supervised("ack-consumer", Box::pin(broker::acks::run(gateway.clone(), ack_consumers, producer.clone(), shutdown.clone()))),
        supervised("webhooks", Box::pin(webhook_dispatcher.run(shutdown.clone()))),
        supervised("risk-rules", Box::pin(crate::risk::changes::watch(store.clone(), gateway.risk().clone(), shutdown.clone()))),
        supervised("risk-learning", Box::pin(crate::risk::learning::run(store.clone(), gateway.risk().clone(), training_every, shutdown.clone()))),
        supervised("refusal-audit", Box::pin(flush_refusals(refusals, gateway.replays().clone(), store.clone(), shutdown.clone()))),
    ])
}

/// A start-up step that takes over this long is told while it runs, and when it ends.
const SLOW_STEP: Duration = Duration::from_secs(1);

/// Runs one start-up step, `what` it does in words: one that takes over [`SLOW_STEP`] is told
/// as it passes that mark (so a start that pauses says why) and again when it ends, with how
/// long it took; a quick one says nothing.
async fn step<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    // Told from a task of its own: a step that blocks its thread (reading schemas, opening a
    // file) is told all the same, by another of the runtime's threads.
    let told = what.to_owned();
    let announce = tokio::spawn(
        async move {
            tokio::time::sleep(SLOW_STEP).await;
            tracing::info!("start-up: {told}, taking over a second...");
        }
        .with_current_subscriber(),
    );
    let out = work.await;
    announce.abort();
    if started.elapsed() > SLOW_STEP {
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "start-up: {what}: done");
    }
    out
}

/// The release-time indicators loaded in the background (seconds for a million consignments),
/// so the first request does not wait for them.
fn load_indicators(gateway: Arc<Gateway>) {
    tokio::spawn(async move { gateway.load_release_indicators().await });
}

/// The HTTP front on its listener (plain HTTP only on loopback, unless the region allows it
/// behind a TLS proxy), serving the route table: the server and its port.
fn serve_http(
    settings: &Settings,
    gateway: Arc<Gateway>,
    refusals: Arc<crate::http::refusals::RefusalAudit>,
    closing: watch::Receiver<bool>,
    brokers: &str,
) -> Result<(Server, u16), StartupError> {
    let listener = TcpListener::bind(settings.bind)
        .map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
    let local = listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
    let loopback = local.ip().is_loopback();
    let tls = settings.tls.as_ref().map(crate::tls::server_config).transpose()?;
    if tls.is_none() && !loopback && !settings.region.gateway.allow_plaintext_on_public_address {
        return Err(StartupError::PlaintextOnPublicAddress { addr: local });
    }
    // Demo participants (public tokens) only for a developer's plain-HTTP loopback gateway:
    // with TLS the gateway is meant to be reached by others.
    let demo = loopback && tls.is_none();
    if !demo {
        tracing::info!("demo participants are disabled (TLS, or an address other than loopback)");
    } else if settings.region.participants.iter().any(|p| p.demo) {
        tracing::warn!(
            "demo participants with public tokens are active on {local}: fine on a developer's machine, never \
             behind a proxy that others reach. Remove them from the region file for any shared gateway."
        );
    }
    let client_timeout = Duration::from_millis(settings.region.gateway.client_timeout_ms);
    let openapi = web::Bytes::from(crate::http::openapi::openapi(gateway.registry(), &settings.region.gateway).to_string());
    let agency_ids: Vec<crate::domain::AgencyId> = settings.region.agencies.iter().map(|a| a.id.clone()).collect();
    let side = crate::http::asyncapi::KafkaSide { brokers, kafka: &settings.region.kafka };
    let asyncapi = web::Bytes::from(crate::http::openapi::asyncapi(gateway.registry(), gateway.topics(), &agency_ids, &side).to_string());
    let state = web::Data::new(AppState {
        openapi,
        asyncapi,
        webhooks: settings.region.webhooks.clone(),
        gateway,
        directory: Directory::new(&settings.region.participants, demo).map_err(StartupError::Participants)?,
        max_body_bytes: settings.region.gateway.max_body_bytes,
        json_limits: settings.region.gateway.json_limits(),
        writes: Arc::new(tokio::sync::Semaphore::new(settings.region.gateway.max_concurrent_writes)),
        public_indicators: Default::default(),
        quotas: Arc::new(crate::quota::Quotas::new(&settings.region.quotas, &settings.region.participants, settings.region.gateway.max_bytes_in_flight)),
        refusals,
        closing,
        stream_max: Duration::from_secs(settings.region.gateway.stream_max_seconds),
        max_poll_wait: Duration::from_secs(settings.region.gateway.max_poll_wait_seconds),
        max_batch_items: settings.region.gateway.max_batch_items,
        max_batch_body_bytes: settings.region.gateway.max_batch_body_bytes,
        body_timeout: client_timeout,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(crate::http::audit::audit_refusals))
            .wrap(actix_web::middleware::from_fn(crate::http::metrics::count_requests))
            .wrap(actix_web::middleware::Logger::new("%r %s %Dms").log_target("ventanilla::http"))
            .configure(crate::http::configure)
    })
    .client_request_timeout(client_timeout)
    .max_connections(settings.region.gateway.max_connections_per_worker)
    .on_connect(crate::tls::record_peer_certificate)
    // A stop answers the requests in flight for this long at most (the rest of the stop's
    // budget, `STOP_BUDGET`, is the relays' and the claims').
    .shutdown_timeout(REQUESTS_AT_STOP_SECS)
    // Signals are ours (`run_until_stopped`), so streams hear of a stop first.
    .disable_signals();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config),
        None => server.listen(listener),
    }
    .map_err(|source| StartupError::Bind { addr: settings.bind, source })?
    .run();
    tracing::info!(address = %local, brokers = %brokers, "Ventanilla is listening on {scheme}://{local}");
    Ok((server, local.port()))
}

/// Writes the refusal and replay counts of each ended window to the audit log
/// (`http/refusals.rs`, `crate::replays`), and the current window's at the stop.
async fn flush_refusals(
    refusals: Arc<crate::http::refusals::RefusalAudit>,
    replays: Arc<crate::replays::ReplayAudit>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let closing = *shutdown.borrow();
        let now = crate::clock::now_millis();
        let mut entries = refusals.flush_due(now, closing);
        entries.extend(replays.flush_due(now, closing));
        if !entries.is_empty() {
            if let Err(e) = crate::audit::record_all(&*store, entries).await {
                tracing::error!(error = %e, "refusal counts could not be written to the audit log");
            }
        }
        if closing {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The longest a stop answers requests already in flight.
const REQUESTS_AT_STOP_SECS: u64 = 3;
/// What a stop may take before the claims are handed back, counted from the signal (from the
/// server's end for a stop asked by a [`StopHandle`]): a gateway stopped by a signal ends
/// within about this, whatever its load (what it leaves is in the store).
const STOP_BUDGET: Duration = Duration::from_millis(4_500);

/// Stops a running gateway: ends open streams, then stops the server gracefully.
#[derive(Clone)]
pub struct StopHandle {
    server: actix_web::dev::ServerHandle,
    closing: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    pub async fn stop(&self) {
        let _ = self.closing.send(true);
        self.server.stop(true).await;
    }
}

/// SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops the gateway");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// What a subscriber wrote, for reading back.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Issue 31, item 9: a start that paused for seconds said nothing. A step over a second is
    /// told as it passes the mark, with what it does, and again when it ends; a quick one is not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_up_step_over_a_second_says_what_it_does_and_a_quick_one_says_nothing() {
        let written = Written::default();
        let sink = written.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let quick = super::step("doing something quick", async { 1 }).await;
        let slow = super::step("replaying the outbox", tokio::time::sleep(std::time::Duration::from_millis(1300))).await;
        // Work that blocks its thread is told as it passes the mark too.
        let blocking = super::step("reading the schemas", async { std::thread::sleep(std::time::Duration::from_millis(1300)) }).await;
        assert_eq!((quick, slow, blocking), (1, (), ()));
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("quick"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let took = |line: &str| line.split("took_ms=").nth(1).and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok());
        for (i, what) in ["replaying the outbox", "reading the schemas"].iter().enumerate() {
            assert!(lines[2 * i].contains(&format!("start-up: {what}, taking over a second...")), "{text}");
            assert!(lines[2 * i + 1].contains(&format!("start-up: {what}: done")), "{text}");
            assert!(took(lines[2 * i + 1]).is_some_and(|ms| ms >= 1000), "{text}");
        }
    }
}
