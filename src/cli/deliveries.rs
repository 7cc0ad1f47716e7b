//! `ventanilla deliveries`: the failed deliveries, listed or sent again. Works on the store
//! directly, also while the gateway runs (its relay picks retried deliveries up within a second).

use clap::Subcommand;
use ventanilla::clock::now_millis;
use ventanilla::domain::AgencyId;
use ventanilla::store::RetrySelection;

use super::{Failure, Open, StoreArgs};

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// List the failed deliveries.
    Failed {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this agency's.
        #[arg(long)]
        agency: Option<String>,
    },
    /// Send failed deliveries again: the ids given, or every failed one with --all-failed.
    Retry {
        #[command(flatten)]
        store: StoreArgs,
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

pub async fn run(action: DeliveriesCommand) -> Result<(), Failure> {
    let agency_of = |a: Option<String>| a.map(|a| AgencyId::parse(&a)).transpose();
    match action {
        DeliveriesCommand::Failed { store, agency } => {
            let store = store.open(Open::Existing).await?;
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
        DeliveriesCommand::Retry { store, all_failed, agency, operator, ids } => {
            let store = store.open(Open::Existing).await?;
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
