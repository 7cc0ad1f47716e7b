//! `ventanilla audit verify`: walks the audit log's hash chain and names the first record that
//! was changed, removed or reordered.

use clap::Subcommand;
use ventanilla::config::StoreUrl;

use super::{Failure, Open, StoreArgs, Verdict};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and link (read-only); exit 1 at the first break, or when an
    /// expected hash is not in the chain.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// A hash that must be in the chain: a receipt's `auditHash`, or a head printed earlier
        /// (catches records removed from the end).
        #[arg(long = "expect")]
        expect: Vec<String>,
    },
}

pub async fn run(action: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Verify { store, expect } = action;
    // Read only: a SQLite file is opened read-only, never migrated.
    let verdict = match store.url()? {
        StoreUrl::Postgres(_) => {
            let store = store.open(Open::Existing).await?;
            let records = store.read_with(|l| l.audit_records()).await?;
            ventanilla::audit::verify_expecting(records, &expect)
        }
        StoreUrl::Sqlite(path) => ventanilla::store::sqlite::verify_audit_of_file(&path, &expect)?,
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
    Ok(())
}
