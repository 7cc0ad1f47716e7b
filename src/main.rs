//! The `ventanilla` command: `serve` runs the gateway; `schemas` lists the registry;
//! `deliveries` lists failed deliveries and sends them again; `audit verify` checks the audit
//! log's hash chain.
//! Thin on purpose: configuration and start-up live in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ventanilla::clock::now_millis;
use ventanilla::config::{Settings, StoreUrl, TlsFiles};
use ventanilla::domain::AgencyId;
use ventanilla::store::postgres::PgStore;
use ventanilla::store::sqlite::SqliteStore;
use ventanilla::store::{RetrySelection, Store};
use ventanilla::schema::SchemaRegistry;
use ventanilla::startup::Application;

#[derive(Parser)]
#[command(
    name = "ventanilla",
    version,
    about = "Regional single-window trade document gateway",
    after_help = "Exit codes: 0 done (a check passed); 1 a check said no (a document refused by `validate`, a schema \
change that breaks its declared compatibility in `schemas diff`, an audit log that does not verify); 2 the tool could \
not do what was asked (a file that cannot be read, a configuration or store that cannot be used)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// List the document types and versions of the schema registry; `schemas diff OLD NEW`
    /// compares two versions of a schema.
    Schemas {
        /// The region file's directory; also taken after `diff`, as by every other command.
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<SchemasCommand>,
    },
    /// Simulate an agency: consume its topic and answer each document on its ack topic with a
    /// weighted decision after a delay. For demos, load and integration tests.
    Agency(AgencyArgs),
    /// Check documents offline exactly as `POST /v1/validate` does (schema, then routing; with
    /// `--as`, also whether that participant may submit each), with the same report; exit 1 if
    /// any is refused, 2 if a file cannot be read. For an NSW's test pipeline.
    Validate {
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
        config: PathBuf,
        /// Check as this participant of the region file would submit: whom it may submit for.
        #[arg(long = "as")]
        as_participant: Option<String>,
        /// Submission envelopes (JSON files).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The audit log: `verify` walks its hash chain and names the first record that was
    /// changed, removed or reordered.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Write simulated traffic into a store (`crate::indicators::traffic`): consignments lodged
    /// over the last `--days`, each answered by its agencies after delays drawn from a stated
    /// plan (printed, as JSON, with what was written). Time is compressed: a month takes seconds.
    /// For the release-time indicators' demos and checks; never into a production store.
    /// With `--ecommerce --gateway URL`: e-commerce parcels with planted irregularities, sent
    /// through a running gateway's API as the platform, its agencies and its operator
    /// (`crate::risk::simulation`); prints what selection found, by source.
    Simulate(SimulateArgs),
    /// Signed receipts: `receipt verify FILE` checks one offline against the gateway's keys;
    /// `receipt rotate-key` makes a newer key (the gateways sign with it from their next start;
    /// older receipts still verify).
    Receipt {
        #[command(subcommand)]
        action: ReceiptCommand,
    },
    /// Published reports: `report release-times` is the WTO TFA Art. 7.6 publication of average
    /// release times per segment, with its method and the public threshold applied.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Failed deliveries: list them, or send them again. Works on the store directly, also
    /// while the gateway runs (its relay picks retried deliveries up within a second).
    Deliveries {
        #[command(subcommand)]
        action: DeliveriesCommand,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Checks a receipt (JSON file): its signature by one of the keys, and its members the ones
    /// signed; with --document, that its `bodySha256` is that document's. Exit 1 when it does
    /// not verify, 2 when it cannot check (no keys where they were looked for). Never writes.
    Verify {
        /// The receipt, as the gateway answered it.
        file: PathBuf,
        /// The gateway's public keys: a saved `/.well-known/jwks.json` (wins over --keys-dir).
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// The gateway's keys directory (`gateway.receipt_keys_dir`; by default `<data dir>/receipt-keys`),
        /// only read: a missing or empty one is an error.
        #[arg(long, env = "VENTANILLA_RECEIPT_KEYS", default_value = "./data/receipt-keys")]
        keys_dir: PathBuf,
        /// The document the receipt is for: the envelope as submitted (for an amendment, its
        /// `document`; for a batch, the item). Its SHA-256 in the gateway's canonical form (JSON
        /// without whitespace, members sorted by name; see `src/receipts.rs`) must be `bodySha256`,
        /// however the file is formatted.
        #[arg(long)]
        document: Option<PathBuf>,
    },
    /// Makes a new signing key in the keys directory; prints its id.
    RotateKey {
        #[arg(long, env = "VENTANILLA_RECEIPT_KEYS", default_value = "./data/receipt-keys")]
        keys_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Release times of the consignments lodged in [--from, --to), as HTML, CSV or PDF (PDF
    /// prints the HTML with Chromium, which must be installed).
    ReleaseTimes {
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
        config: PathBuf,
        /// Directory of the embedded store.
        #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db (wins over --data-dir).
        #[arg(long, env = "VENTANILLA_STORE")]
        store: Option<String>,
        /// First day (2026-11-01) or time (RFC 3339, UTC) of lodgement.
        #[arg(long)]
        from: String,
        /// Day or time before which consignments were lodged.
        #[arg(long)]
        to: String,
        #[arg(long, value_parser = ["html", "csv", "pdf"], default_value = "html")]
        format: String,
        /// Where to write it (standard output when left out; required for PDF).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct SimulateArgs {
    #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
    config: PathBuf,
    /// Directory of the embedded store (created if it does not exist).
    #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db (wins over --data-dir).
    #[arg(long, env = "VENTANILLA_STORE")]
    store: Option<String>,
    /// How many consignments.
    #[arg(long, default_value_t = 1000)]
    consignments: usize,
    /// Over how many days before `--end` they are lodged.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// When the span ends: a date (2026-11-01) or an RFC 3339 time in UTC; now by default
    /// (a past span shows in the public figures, which publish months once they have ended).
    #[arg(long)]
    end: Option<String>,
    /// The same seed writes the same traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The trader that lodges them.
    #[arg(long, default_value = "demo-trader")]
    trader: String,
    /// Simulate e-commerce parcels with planted irregularities through a running gateway
    /// (`--gateway`) instead of writing consignments into a store.
    #[arg(long, requires = "gateway")]
    ecommerce: bool,
    /// The running gateway the e-commerce simulation talks to, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    gateway: Option<String>,
    /// E-commerce: rounds of parcels, a model trained at the start of each after the first.
    #[arg(long, default_value_t = 4)]
    weeks: u32,
    /// E-commerce: parcels per round.
    #[arg(long, default_value_t = 2500)]
    parcels_per_week: usize,
    /// E-commerce: sellers on the platform (one in ten undervalues).
    #[arg(long, default_value_t = 200)]
    sellers: usize,
    /// E-commerce: the tokens of the platform, the operator, and the agencies (this prefix
    /// followed by the agency's id).
    #[arg(long, env = "VENTANILLA_PLATFORM_TOKEN", default_value = "demo-platform")]
    platform_token: String,
    #[arg(long, env = "VENTANILLA_OPERATOR_TOKEN", default_value = "demo-operator")]
    operator_token: String,
    #[arg(long, default_value = "demo-")]
    agency_token_prefix: String,
}

#[derive(clap::Args)]
struct AgencyArgs {
    /// The agency to play, e.g. br-customs.
    #[arg(long)]
    agency: String,
    /// Kafka bootstrap servers (the gateway's).
    #[arg(long, env = "VENTANILLA_KAFKA_BROKERS")]
    kafka_brokers: String,
    #[arg(long, env = "VENTANILLA_TOPIC_PREFIX", default_value = "ventanilla.")]
    topic_prefix: String,
    /// Decisions with weights, e.g. released:70,hold:20,rejected:10.
    #[arg(long, default_value = "released")]
    decisions: String,
    /// Shortest wait before answering, e.g. 500ms.
    #[arg(long, default_value = "0s")]
    min_delay: humantime::Duration,
    /// Longest wait before answering.
    #[arg(long, default_value = "0s")]
    max_delay: humantime::Duration,
    /// Acknowledge receipt (`received`) at once, before the decision.
    #[arg(long)]
    received_first: bool,
    /// Stop after answering this many documents (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Whether NEW is backward compatible (accepts every document OLD accepts) and forward
    /// compatible (OLD accepts every document NEW accepts), with each difference by JSON pointer,
    /// each schema as the registry uses it (the region's overlays for its type applied, its
    /// references to itself and to files beside it followed);
    /// exit 1 when NEW breaks the compatibility declared for it (the region's
    /// `[document_types.<type>] compatibility` for the type whose folder holds NEW, else its own
    /// `x-compatibility`: backward by default, backward-open, forward, full or none), as the
    /// registry would refuse it.
    Diff { old: PathBuf, new: PathBuf },
    /// Writes the JSON Schema of one component of an OpenAPI 3.0 or 3.1 document (YAML or
    /// JSON), as a publisher ships it: draft 2020-12, the components it references as `$defs`,
    /// OpenAPI's `example`, `nullable` and boolean bounds translated, and where it came from
    /// recorded (`x-imported-from`). Then place it as `<type>/<version>.json` in the schemas
    /// directory; the publisher's file is never edited.
    Import {
        /// The OpenAPI document.
        file: PathBuf,
        /// The component schema to import (a name under `components.schemas`).
        #[arg(long)]
        component: String,
        /// Where to write it (standard output by default).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every record's hash and link (read-only); exit 1 at the first break, or when an
    /// expected hash is not in the chain.
    Verify {
        /// Directory of the embedded store.
        #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db (wins over --data-dir).
        #[arg(long, env = "VENTANILLA_STORE")]
        store: Option<String>,
        /// A hash that must be in the chain: a receipt's `auditHash`, or a head printed earlier
        /// (catches records removed from the end).
        #[arg(long = "expect")]
        expect: Vec<String>,
    },
}

#[derive(Subcommand)]
enum DeliveriesCommand {
    /// List the failed deliveries.
    Failed {
        /// Directory of the embedded store.
        #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db (wins over --data-dir).
        #[arg(long, env = "VENTANILLA_STORE")]
        store: Option<String>,
        /// Only this agency's.
        #[arg(long)]
        agency: Option<String>,
    },
    /// Send failed deliveries again: the ids given, or every failed one with --all-failed.
    Retry {
        /// Directory of the embedded store.
        #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db (wins over --data-dir).
        #[arg(long, env = "VENTANILLA_STORE")]
        store: Option<String>,
        /// Every failed delivery (of --agency, if given).
        #[arg(long, conflicts_with = "ids")]
        all_failed: bool,
        /// With --all-failed: only this agency's.
        #[arg(long, requires = "all_failed")]
        agency: Option<String>,
        /// Who is sending them again, for the delivery history.
        #[arg(long, env = "USER", default_value = "operator")]
        operator: String,
        /// Delivery ids (`deliveryId` in the consignment view).
        #[arg(required_unless_present = "all_failed")]
        ids: Vec<i64>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VENTANILLA_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory of the embedded store.
    #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db. Default: the
    /// region file's [store] url, else sqlite://<data-dir>/ventanilla.db.
    #[arg(long, env = "VENTANILLA_STORE")]
    store: Option<String>,
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
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(async_main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates an arena of its own, up to eight per core, and
/// keeps what each has freed: with the HTTP workers, the runtime's and the blocking pool's, the
/// store's and librdkafka's threads, the gateway's peak memory under load reached 241 MiB.
/// Four arenas brought it to 174 MiB, with batches 2 to 12% slower; two, to 159 MiB, with
/// batches 14 to 34% slower on the allocator's locks (BENCHMARKS.md). Set before any thread
/// starts; an operator's `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES=glibc.malloc.arena_max` wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc.arena_max"))
    {
        // SAFETY: mallopt only sets a tunable of the allocator; no thread has started yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

async fn async_main() -> ExitCode {
    ventanilla::telemetry::init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, on standard error: the log's line would say it a second time.
            eprintln!("ventanilla: {}", ventanilla::telemetry::error_chain(e.as_ref()));
            if e.is::<Verdict>() { ExitCode::from(1) } else { ExitCode::from(2) }
        }
    }
}

/// A check's answer "no" (exit 1): the tool could check, and what it checked does not pass.
/// Every other error means it could not check (exit 2).
#[derive(Debug)]
struct Verdict(String);

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Verdict {}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve(a) => {
            let tls = TlsFiles::from_parts(a.tls_cert, a.tls_key, a.tls_client_ca)?;
            let mut settings = Settings::load(a.config, a.bind, a.data_dir, a.kafka_brokers, a.topic_prefix, tls)?;
            if let Some(allow) = a.allow_plaintext_on_public_address {
                settings.region.gateway.allow_plaintext_on_public_address = allow;
            }
            if let Some(dir) = a.receipt_keys {
                settings.region.gateway.receipt_keys_dir = Some(std::path::absolute(dir)?);
            }
            if let Some(url) = a.store {
                StoreUrl::parse(&url)?;
                settings.region.store.url = Some(url);
            }
            settings.embedded_kafka_port = (a.embedded_kafka_port != 0).then_some(a.embedded_kafka_port);
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Deliveries { action } => deliveries(action).await?,
        Command::Simulate(a) => simulate(a).await?,
        Command::Report { report } => report_command(report).await?,
        Command::Receipt { action: ReceiptCommand::RotateKey { keys_dir } } => {
            println!("{}", ventanilla::receipts::rotate(&keys_dir)?);
        }
        Command::Receipt { action: ReceiptCommand::Verify { file, jwks, keys_dir, document } } => {
            let bytes = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
            let read = |p: &std::path::Path| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
                Ok(serde_json::from_slice(&bytes(p)?).map_err(|e| format!("{} is not JSON: {e}", p.display()))?)
            };
            let receipt = read(&file)?;
            // Read, never written: a check that found no keys says where it looked.
            let jwks = match jwks {
                Some(path) => read(&path)?,
                None => ventanilla::receipts::ReceiptKeys::published(&keys_dir)?,
            };
            let document_hash = match &document {
                Some(path) => Some(
                    ventanilla::receipts::document_sha256(&bytes(path)?)
                        .map_err(|e| format!("{} is not a JSON document: {e}", path.display()))?,
                ),
                None => None,
            };
            let signed = ventanilla::receipts::verify(&receipt, &jwks).map_err(|e| Verdict(format!("{}: {e}", file.display())))?;
            let body_sha256 = signed["bodySha256"].as_str().unwrap_or("?");
            if let (Some(path), Some(hash)) = (&document, &document_hash) {
                if hash != body_sha256 {
                    return Err(Verdict(format!(
                        "{}: the receipt is signed, but for another document: its bodySha256 is {body_sha256}, and {} hashes to {hash} \
                         (the SHA-256 of the envelope as JSON without whitespace, members sorted by name)",
                        file.display(),
                        path.display()
                    ))
                    .into());
                }
            }
            println!(
                "receipt verified: document {} of {} accepted at {}, body sha256 {body_sha256}{}",
                signed["documentId"].as_str().unwrap_or("?"),
                signed["ucr"].as_str().unwrap_or("?"),
                signed["submittedAt"].as_str().unwrap_or("?"),
                document.map(|p| format!(", which is that of {}", p.display())).unwrap_or_default()
            );
        }
        Command::Validate { config, as_participant, files } => validate(config, as_participant, files)?,
        Command::Agency(a) => {
            let min: std::time::Duration = a.min_delay.into();
            let max: std::time::Duration = a.max_delay.into();
            let sim = ventanilla::simulator::Simulation {
                brokers: a.kafka_brokers,
                topics: ventanilla::broker::Topics::new(&a.topic_prefix),
                agency: AgencyId::parse(&a.agency)?,
                decisions: ventanilla::simulator::parse_decisions(&a.decisions)?,
                delay: (min, max.max(min)),
                received_first: a.received_first,
                count: a.count,
            };
            let answered = ventanilla::simulator::run(sim).await?;
            println!("answered {answered} document(s)");
        }
        Command::Audit { action: AuditCommand::Verify { data_dir, store, expect } } => {
            let verdict = match store.as_deref().map(StoreUrl::parse).transpose()? {
                Some(StoreUrl::Postgres(url)) => {
                    let store = PgStore::connect(&url, &cli_instance()).await?;
                    let records = (&store as &dyn Store).read_with(|l| l.audit_records()).await?;
                    ventanilla::audit::verify_expecting(records, &expect)
                }
                Some(StoreUrl::Sqlite(path)) => ventanilla::store::sqlite::verify_audit_of_file(&path, &expect)?,
                None => ventanilla::store::sqlite::verify_audit_at(&data_dir, &expect)?,
            };
            let (summary, missing) = verdict.map_err(|broken| Verdict(broken.to_string()))?;
            if !missing.is_empty() {
                return Err(Verdict(format!(
                    "the audit chain is intact ({} records) but lacks {missing:?}: records were removed from its end, \
                     or the log was replaced",
                    summary.records
                ))
                .into());
            }
            println!("audit log intact: {summary}");
        }
        Command::Schemas { config, action: Some(SchemasCommand::Diff { old, new }) } => {
            let read = |p: &PathBuf| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
                let text = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                Ok(serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))?)
            };
            let new_path = new.clone();
            let region = match Settings::load(config.clone(), "127.0.0.1:0".parse()?, "./data".into(), None, None, None)
                .map_err(|e| e.to_string())
                .and_then(|settings| ventanilla::document_types::DocumentTypes::new(&settings.region.document_types))
            {
                Ok(types) => Some(types),
                Err(e) => {
                    eprintln!("warning: the region file in {} does not load ({e}): the schemas are compared without its overlays and compatibility", config.display());
                    None
                }
            };
            // Each schema as the registry uses it: the region's overlays for the type whose
            // folder holds it applied, and its references followed.
            // A schema file with the region's overlays for its place applied.
            let overlaid = |path: &std::path::Path| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
                let mut schema = read(&path.to_path_buf())?;
                let folder = path.parent().and_then(|p| p.file_name()).and_then(|f| f.to_str()).unwrap_or_default();
                let name = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
                let place = format!("{folder}/{name}");
                let is_version = ventanilla::domain::SchemaVersion::parse(name.trim_end_matches(".json")).is_ok();
                for (document_type, o) in region.iter().flat_map(|t| t.overlays()) {
                    if ventanilla::overlays::applies_to(o, document_type, &place, is_version) {
                        ventanilla::overlays::apply(&mut schema, o).map_err(|e| format!("[document_types.{document_type}] overlay of {place} {e}"))?;
                    }
                }
                Ok(schema)
            };
            let effective = |path: &PathBuf| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
                let dir = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
                // Files beside it, overlaid as the registry loads them.
                let beside = |name: &str| overlaid(&dir.join(name)).ok();
                Ok(ventanilla::schema_diff::followed(&overlaid(path)?, &beside))
            };
            let (old, new) = (effective(&old)?, effective(&new)?);
            let c = ventanilla::schema_diff::compare(&old, &new);
            // The mode the registry would judge by: the region's for the type whose folder holds
            // NEW, when it declares one, else the one NEW's file declares.
            let declared = region.as_ref().and_then(|types| {
                let folder = new_path.parent()?.file_name()?.to_str()?.to_owned();
                types.compatibility(&folder)
            });
            let mode = match declared {
                Some(mode) => mode,
                None => ventanilla::schema_diff::Mode::of(&new).map_err(|m| format!("the new schema's x-compatibility: {m}"))?,
            };
            let yes = |b: bool| if b { "yes" } else { "no" };
            println!("backward compatible (accepts every document the old one accepts): {}", yes(c.backward));
            println!("forward compatible (the old one accepts every document it accepts): {}", yes(c.forward));
            for d in &c.differences {
                println!(
                    "{}  {}: {}  [backward {}, forward {}]",
                    d.pointer, d.kind, d.explanation, yes(d.backward), yes(d.forward)
                );
            }
            let breaking = mode.breaking(&c);
            if !breaking.is_empty() {
                return Err(Verdict(format!(
                    "the new schema breaks the {} compatibility it declares ({} difference(s)); the registry would refuse it",
                    mode.as_str(),
                    breaking.len()
                ))
                .into());
            }
            println!("declared compatibility ({}): kept", mode.as_str());
        }
        Command::Schemas { action: Some(SchemasCommand::Import { file, component, out }), .. } => {
            let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let text = String::from_utf8(bytes.clone()).map_err(|e| format!("{} is not UTF-8 text: {e}", file.display()))?;
            let document = ventanilla::openapi_import::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
            let schema = ventanilla::openapi_import::import(&document, &component, &name, &ventanilla::digest::sha256_hex(&bytes))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let text = serde_json::to_string_pretty(&schema)? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    eprintln!("wrote {} (component {component} of {name})", path.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Schemas { config, action: None } => {
            let settings = Settings::load(config, "127.0.0.1:0".parse()?, "./data".into(), None, None, None)?;
            let registry = SchemaRegistry::of_region(&settings.schemas_dir(), &settings.region)?;
            for warning in registry.warnings() {
                eprintln!("warning: {warning}");
            }
            for (name, versions) in registry.catalogue() {
                let v: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
                println!("{name}\t{}", v.join(", "));
            }
        }
    }
    Ok(())
}

/// `ventanilla validate`: one line per file, then the problem document for each refused one.
fn validate(config: PathBuf, as_participant: Option<String>, files: Vec<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    use ventanilla::problems::{ApiError, Code};
    let settings = Settings::load(config, "127.0.0.1:0".parse()?, "./data".into(), None, None, None)?;
    let participant = match &as_participant {
        None => None,
        Some(id) => {
            let p = settings.region.participants.iter().find(|p| &p.id == id).ok_or_else(|| {
                let known: Vec<&str> = settings.region.participants.iter().map(|p| p.id.as_str()).collect();
                format!("--as {id}: no such participant in the region file; its participants: {}", known.join(", "))
            })?;
            Some(ventanilla::gateway::Participant::of(p)?)
        }
    };
    // What the operator should know of the region's schemas is logged once at each start and
    // listed by `ventanilla schemas`: not repeated on every file checked here (CI logs).
    let registry = SchemaRegistry::of_region(&settings.schemas_dir(), &settings.region)?;
    let router = ventanilla::routing::Router::new(&settings.region);
    router.check_types(|t| registry.knows(t))?;
    let topics = ventanilla::broker::Topics::new(&settings.region.kafka.topic_prefix);
    let limits = settings.region.gateway.json_limits();
    let (mut refused, mut unreadable) = (0, 0);
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                unreadable += 1;
                println!("{}: cannot be read: {e}", file.display());
                continue;
            }
        };
        let outcome = ventanilla::http::body::parse_json(&bytes, &limits).and_then(|body| {
            if let Some(p) = &participant {
                ventanilla::access::submits_documents(p).map_err(|r| ApiError::new(Code::Forbidden, r.to_string()))?;
            }
            ventanilla::gateway::check_submission(&registry, &router, &topics, participant.as_ref(), &body).map_err(ApiError::from)
        });
        match outcome {
            Ok(checked) => {
                let report = serde_json::to_value(ventanilla::http::routes::validation_report(&checked)).unwrap_or_default();
                println!("{}: valid {}", file.display(), report);
            }
            Err(problem) => {
                refused += 1;
                println!("{}: refused {}", file.display(), problem.problem());
            }
        }
    }
    if unreadable > 0 {
        return Err(format!("{unreadable} of {} file(s) could not be read", files.len()).into());
    }
    if refused > 0 {
        return Err(Verdict(format!("{refused} of {} document(s) refused", files.len())).into());
    }
    Ok(())
}

/// A command-line tool's name as a writer of a shared store (its audit chain): an operator's
/// retry is audited like a gateway's work.
fn cli_instance() -> String {
    format!("cli-{}-{}", std::process::id(), &uuid::Uuid::now_v7().simple().to_string()[24..])
}

/// The store the command-line tools work on: `--store` when given, else the SQLite file under
/// `--data-dir`, which must exist (a mistyped directory is an error, not a new empty store).
async fn open_store(data_dir: &std::path::Path, store: Option<String>) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    Ok(match store.as_deref().map(StoreUrl::parse).transpose()? {
        Some(StoreUrl::Postgres(url)) => Arc::new(PgStore::connect(&url, &cli_instance()).await?),
        Some(StoreUrl::Sqlite(path)) => Arc::new(SqliteStore::open_existing_file(&path)?),
        None => Arc::new(SqliteStore::open_existing(data_dir)?),
    })
}

async fn simulate(a: SimulateArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let (true, Some(gateway)) = (a.ecommerce, a.gateway.as_deref()) {
        let plan = ventanilla::risk::simulation::Plan { weeks: a.weeks, parcels_per_week: a.parcels_per_week, sellers: a.sellers, seed: a.seed };
        let players = ventanilla::risk::simulation::Players {
            platform: a.platform_token,
            operator: a.operator_token,
            agency_prefix: a.agency_token_prefix,
        };
        let report = ventanilla::risk::simulation::run(gateway, &plan, &players).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let settings = ventanilla::config::Settings::load(a.config, "127.0.0.1:0".parse()?, a.data_dir.clone(), None, None, None)?;
    let store: Arc<dyn Store> = match a.store.as_deref().map(StoreUrl::parse).transpose()? {
        Some(StoreUrl::Postgres(url)) => Arc::new(PgStore::connect(&url, &cli_instance()).await?),
        Some(StoreUrl::Sqlite(path)) => Arc::new(SqliteStore::open_file(&path)?),
        None => Arc::new(SqliteStore::open(&a.data_dir)?),
    };
    let router = ventanilla::routing::Router::new(&settings.region);
    let topics = ventanilla::broker::Topics::new(&settings.region.kafka.topic_prefix);
    let simulation = settings.region.indicators.simulation.clone().ok_or(
        "ventanilla simulate writes a declaration and a border notice per consignment: name their document types in the \
         region file's [indicators.simulation] (declaration = \"...\", border_notice = \"...\")",
    )?;
    let end = match a.end.as_deref() {
        Some(s) => ventanilla::clock::parse_rfc3339(s)
            .ok_or_else(|| format!("--end {s:?} is not a date (2026-11-01) or an RFC 3339 time in UTC {}", ventanilla::clock::RANGE))?,
        None => now_millis(),
    };
    let traffic = ventanilla::indicators::traffic::Traffic {
        consignments: a.consignments,
        span_ms: i64::from(a.days) * 86_400_000,
        end,
        seed: a.seed,
        trader: a.trader,
        declaration: simulation.declaration,
        border_notice: simulation.border_notice,
    };
    let kinds = ventanilla::indicators::traffic::kinds(&settings.region);
    let written = ventanilla::indicators::traffic::simulate(&*store, &router, &topics, &traffic, &kinds).await?;
    println!("{}", serde_json::to_string_pretty(&written)?);
    Ok(())
}

async fn report_command(r: ReportCommand) -> Result<(), Box<dyn std::error::Error>> {
    let ReportCommand::ReleaseTimes { config, data_dir, store, from, to, format, out } = r;
    let settings = ventanilla::config::Settings::load(config, "127.0.0.1:0".parse()?, data_dir.clone(), None, None, None)?;
    let time = |name: &str, s: &str| {
        ventanilla::clock::parse_rfc3339(s)
            .ok_or_else(|| format!("--{name} {s:?} is not a date (2026-11-01) or an RFC 3339 time in UTC {}", ventanilla::clock::RANGE))
    };
    let (from, to) = (time("from", &from)?, time("to", &to)?);
    if from >= to {
        return Err("--from must be before --to".into());
    }
    let store = open_store(&data_dir, store).await?;
    let router = ventanilla::routing::Router::new(&settings.region);
    let kind_of = |a: &AgencyId| router.kind_of(a).unwrap_or("unknown").to_owned();
    let indicators = &settings.region.indicators;
    let settle_ms = i64::from(indicators.public_settle_days) * 86_400_000;
    let report = ventanilla::indicators::report::build(&*store, from, to, indicators.public_min_count, settle_ms, &kind_of).await?;
    let text = match format.as_str() {
        "csv" => ventanilla::indicators::report::csv(&report),
        _ => ventanilla::indicators::report::html(&report),
    };
    match (format.as_str(), out) {
        ("pdf", Some(out)) => print_to_pdf(&text, &out)?,
        ("pdf", None) => return Err("--format pdf needs --out FILE".into()),
        (_, Some(out)) => std::fs::write(&out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?,
        (_, None) => print!("{text}"),
    }
    Ok(())
}

/// Prints `html` to the PDF file `out` with headless Chromium.
fn print_to_pdf(html: &str, out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ventanilla-report-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("report.html");
    std::fs::write(&page, html)?;
    let out = std::path::absolute(out)?;
    let printed = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--no-pdf-header-footer")
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let status =
        printed.map_err(|e| format!("chromium could not run ({e}): install it (Debian: apt-get install chromium) or use --format html"))?;
    if !status.status.success() || !out.exists() {
        return Err(format!("chromium did not print the PDF: {}", String::from_utf8_lossy(&status.stderr)).into());
    }
    Ok(())
}

async fn deliveries(action: DeliveriesCommand) -> Result<(), Box<dyn std::error::Error>> {
    let agency_of = |a: Option<String>| a.map(|a| AgencyId::parse(&a)).transpose();
    match action {
        DeliveriesCommand::Failed { data_dir, store, agency } => {
            let store = open_store(&data_dir, store).await?;
            let agency = agency_of(agency)?;
            let failed = store.read_with(move |l| l.failed_deliveries(agency.as_ref())).await?;
            if failed.is_empty() {
                println!("no failed deliveries");
            }
            for d in failed {
                println!(
                    "{}\t{}\t{}\t{}\tattempts {}\tfailed {}\t{}",
                    d.delivery_id,
                    d.agency,
                    d.ucr,
                    d.document_id,
                    d.attempts,
                    d.failed_at.unwrap_or_default(),
                    d.last_error.unwrap_or_default()
                );
            }
        }
        DeliveriesCommand::Retry { data_dir, store, all_failed, agency, operator, ids } => {
            let store = open_store(&data_dir, store).await?;
            let selection = if all_failed {
                RetrySelection::AllFailed { agency: agency_of(agency)? }
            } else {
                RetrySelection::Deliveries(ids)
            };
            let out = ventanilla::outbox::retry(&*store, selection, format!("{operator} (cli)"), now_millis()).await?;
            println!("sent again: {} {:?}", out.retried.len(), out.retried);
            if !out.not_failed.is_empty() || !out.unknown.is_empty() {
                return Err(format!(
                    "left alone: not failed {:?}, unknown {:?}",
                    out.not_failed, out.unknown
                )
                .into());
            }
        }
    }
    Ok(())
}
