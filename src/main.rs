//! The `ventanilla` command: `serve` runs the gateway; `schemas` lists the registry.
//! Thin on purpose: configuration and start-up live in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ventanilla::config::Settings;
use ventanilla::schema::SchemaRegistry;
use ventanilla::startup::Application;

#[derive(Parser)]
#[command(name = "ventanilla", version, about = "Regional single-window trade document gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// List the document types and versions of the schema registry.
    Schemas {
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
        config: PathBuf,
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
    /// Kafka bootstrap servers; unset starts the embedded mock cluster.
    #[arg(long, env = "VENTANILLA_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Directory holding ventanilla.toml.
    #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
    config: PathBuf,
    /// Overrides `kafka.topic_prefix` of the configuration file.
    #[arg(long, env = "VENTANILLA_TOPIC_PREFIX")]
    topic_prefix: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    ventanilla::telemetry::init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            tracing::error!("{msg}");
            eprintln!("ventanilla: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve(a) => {
            let settings = Settings::load(a.config, a.bind, a.data_dir, a.kafka_brokers, a.topic_prefix)?;
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Schemas { config } => {
            let settings = Settings::load(config, "127.0.0.1:0".parse()?, "./data".into(), None, None)?;
            let registry = SchemaRegistry::load(&settings.schemas_dir())?;
            for (name, versions) in registry.catalogue() {
                let v: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
                println!("{name}\t{}", v.join(", "));
            }
        }
    }
    Ok(())
}
