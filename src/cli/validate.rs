//! `ventanilla validate`: documents checked offline exactly as `POST /v1/validate` checks them
//! (schema, then routing; with `--as`, whether that participant may submit each), with the same
//! report. For an NSW's test pipeline.

use std::path::PathBuf;

use ventanilla::config::RegionConfig;
use ventanilla::problems::{ApiError, Code};
use ventanilla::schema::SchemaRegistry;

use super::{Failure, Verdict};

#[derive(clap::Args)]
pub struct ValidateArgs {
    #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
    config: PathBuf,
    /// Check as this participant of the region file would submit: whom it may submit for.
    #[arg(long = "as")]
    as_participant: Option<String>,
    /// Submission envelopes (JSON files).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// One line per file, then the problem document for each refused one.
pub fn run(a: ValidateArgs) -> Result<(), Failure> {
    let ValidateArgs { config, as_participant, files } = a;
    let region = RegionConfig::load(&config)?;
    let participant = match &as_participant {
        None => None,
        Some(id) => {
            let p = region.participants.iter().find(|p| &p.id == id).ok_or_else(|| {
                let known: Vec<&str> = region.participants.iter().map(|p| p.id.as_str()).collect();
                format!("--as {id}: no such participant in the region file; its participants: {}", known.join(", "))
            })?;
            Some(ventanilla::gateway::Participant::of(p)?)
        }
    };
    // What the operator should know of the region's schemas is logged once at each start and
    // listed by `ventanilla schemas`: not repeated on every file checked here (CI logs).
    let registry = SchemaRegistry::of_region(&region.schemas_dir(&config), &region)?;
    let router = ventanilla::routing::Router::new(&region);
    router.check_types(|t| registry.knows(t))?;
    let topics = ventanilla::broker::Topics::new(&region.kafka.topic_prefix);
    let limits = region.gateway.json_limits();
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
        let parsed = ventanilla::json::parse_bounded(&bytes, &limits).map_err(|e| ventanilla::problems::json_problem(&e));
        let outcome = parsed.and_then(|body| {
            if let Some(p) = &participant {
                ventanilla::access::submits_documents(p).map_err(|r| ApiError::new(Code::Forbidden, r.to_string()))?;
            }
            ventanilla::gateway::check_submission(&registry, &router, &topics, participant.as_ref(), &body).map_err(ApiError::from)
        });
        match outcome {
            Ok(checked) => {
                let report = serde_json::to_value(checked.report()).unwrap_or_default();
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
