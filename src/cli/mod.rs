//! The `ventanilla` command's subcommands, a file each: `serve` runs the gateway; `schemas`
//! lists, compares and imports schemas; `validate` checks documents offline; `agency` plays an
//! agency; `audit verify` checks the audit log; `simulate` writes simulated traffic; `receipt`
//! verifies receipts and rotates the signing key; `report` publishes release times;
//! `deliveries` lists failed deliveries and sends them again. Each parses its arguments and
//! calls the library: the rules live there.

mod agency;
mod audit;
mod deliveries;
mod receipt;
mod report;
mod schemas;
mod serve;
mod simulate;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ventanilla::config::StoreUrl;
use ventanilla::store::postgres::PgStore;
use ventanilla::store::sqlite::SqliteStore;
use ventanilla::store::Store;

/// What a command's failure is: a message with its causes, told once on standard error.
pub type Failure = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    name = "ventanilla",
    version,
    about = "Regional single-window trade document gateway",
    after_help = "Exit codes: 0 done (a check passed); 1 a check said no (a document refused by `validate`, a schema \
change that breaks its declared compatibility in `schemas diff`, an audit log that does not verify); 2 the tool could \
not do what was asked (a file that cannot be read, a configuration or store that cannot be used)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// List the document types and versions of the schema registry; `schemas diff OLD NEW`
    /// compares two versions of a schema.
    Schemas {
        /// The region file's directory; also taken after `diff`, as by every other command.
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<schemas::SchemasCommand>,
    },
    /// Simulate an agency: consume its topic and answer each document on its ack topic with a
    /// weighted decision after a delay. For demos, load and integration tests.
    Agency(agency::AgencyArgs),
    /// Check documents offline exactly as `POST /v1/validate` does (schema, then routing; with
    /// `--as`, also whether that participant may submit each), with the same report; exit 1 if
    /// any is refused, 2 if a file cannot be read. For an NSW's test pipeline.
    Validate(validate::ValidateArgs),
    /// The audit log: `verify` walks its hash chain and names the first record that was
    /// changed, removed or reordered.
    Audit {
        #[command(subcommand)]
        action: audit::AuditCommand,
    },
    /// Write simulated traffic into a store (`crate::indicators::traffic`): consignments lodged
    /// over the last `--days`, each answered by its agencies after delays drawn from a stated
    /// plan (printed, as JSON, with what was written). Time is compressed: a month takes seconds.
    /// For the release-time indicators' demos and checks; never into a production store.
    /// With `--ecommerce --gateway URL`: e-commerce parcels with planted irregularities, sent
    /// through a running gateway's API as the platform, its agencies and its operator
    /// (`crate::risk::simulation`); prints what selection found, by source.
    Simulate(simulate::SimulateArgs),
    /// Signed receipts: `receipt verify FILE` checks one offline against the gateway's keys;
    /// `receipt rotate-key` makes a newer key (the gateways sign with it from their next start;
    /// older receipts still verify).
    Receipt {
        #[command(subcommand)]
        action: receipt::ReceiptCommand,
    },
    /// Published reports: `report release-times` is the WTO TFA Art. 7.6 publication of average
    /// release times per segment, with its method and the public threshold applied.
    Report {
        #[command(subcommand)]
        report: report::ReportCommand,
    },
    /// Failed deliveries: list them, or send them again. Works on the store directly, also
    /// while the gateway runs (its relay picks retried deliveries up within a second).
    Deliveries {
        #[command(subcommand)]
        action: deliveries::DeliveriesCommand,
    },
}

/// Runs the command the command line names.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(a) => serve::run(a).await,
        Command::Schemas { config, action } => schemas::run(config, action),
        Command::Agency(a) => agency::run(a).await,
        Command::Validate(a) => validate::run(a),
        Command::Audit { action } => audit::run(action).await,
        Command::Simulate(a) => simulate::run(a).await,
        Command::Receipt { action } => receipt::run(action).await,
        Command::Report { report } => report::run(report).await,
        Command::Deliveries { action } => deliveries::run(action).await,
    }
}

/// A check's answer "no" (exit 1): the tool could check, and what it checked does not pass.
/// Every other error means it could not check (exit 2).
#[derive(Debug)]
pub struct Verdict(pub String);

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Verdict {}

/// Where the store a command works on is: every command that reads or writes the store takes
/// these two, with the same meaning.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (`serve` and `simulate` create it if it does not exist;
    /// the other commands need it to).
    #[arg(long, env = "VENTANILLA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The store, as a URL: sqlite://PATH or postgres://user@host:port/db (wins over
    /// --data-dir). For `serve`, the default is the region file's [store] url, else
    /// sqlite://<data-dir>/ventanilla.db.
    #[arg(long, env = "VENTANILLA_STORE")]
    pub store: Option<String>,
}

/// Whether opening a store may create it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Only a store that exists: a mistyped directory is an error, not a new empty store.
    Existing,
    /// Created (with its directory) when missing.
    OrCreate,
}

impl StoreArgs {
    /// The store's URL: `--store`, else the SQLite file under `--data-dir`.
    pub fn url(&self) -> Result<StoreUrl, Failure> {
        Ok(match &self.store {
            Some(url) => StoreUrl::parse(url)?,
            None => StoreUrl::embedded(&self.data_dir),
        })
    }

    /// Opens the store, as a writer of its own in a shared store's audit chains.
    pub async fn open(&self, how: Open) -> Result<Arc<dyn Store>, Failure> {
        Ok(match (self.url()?, how) {
            (StoreUrl::Postgres(url), _) => Arc::new(PgStore::connect(&url, &cli_instance()).await?),
            (StoreUrl::Sqlite(path), Open::Existing) => Arc::new(SqliteStore::open_existing_file(&path)?),
            (StoreUrl::Sqlite(path), Open::OrCreate) => Arc::new(SqliteStore::open_file(&path)?),
        })
    }
}

/// A command-line tool's name as a writer of a shared store (its audit chain): an operator's
/// retry is audited like a gateway's work.
pub fn cli_instance() -> String {
    format!("cli-{}-{}", std::process::id(), &uuid::Uuid::now_v7().simple().to_string()[24..])
}

/// The JSON document in the file `path`.
pub fn read_json(path: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", path.display()))?)
}
