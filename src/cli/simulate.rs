//! `ventanilla simulate`: simulated traffic written into a store, each consignment answered by
//! its agencies after delays drawn from a stated plan (`ventanilla::indicators::traffic`); or,
//! with `--ecommerce --gateway URL`, e-commerce parcels with planted irregularities sent through
//! a running gateway (`ventanilla::risk::simulation`).

use std::path::PathBuf;

use ventanilla::clock::now_millis;
use ventanilla::config::RegionConfig;

use super::{Failure, Open, StoreArgs};

#[derive(clap::Args)]
pub struct SimulateArgs {
    #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
    config: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
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
    /// How many traders lodge them in turn: `--trader`, then `<trader>-2`, `<trader>-3`... (the
    /// public TFA figures suppress a cell of one trader's consignments alone).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    traders: u16,
    /// Of the declared consignments, the share lodged before the goods arrive (TFA Art. 7.1).
    #[arg(long, default_value_t = 2.0 / 3.0)]
    pre_arrival: f64,
    /// Of all consignments, the share of express parcels (TFA Art. 7.8): the region file's
    /// `[indicators.simulation] express` type.
    #[arg(long, default_value_t = 0.0)]
    express: f64,
    /// Of the declared consignments, the share every customs and sanitary agency sends to
    /// physical inspection (TFA Art. 7.4 and 8).
    #[arg(long, default_value_t = 0.0)]
    inspected_by_several: f64,
    /// Of those, the share inspected jointly: the agencies decide within 30 minutes (TFA Art. 8).
    #[arg(long, default_value_t = 0.0)]
    joint: f64,
    /// Of the declared consignments, the share rejected once and resubmitted (TFA Art. 10.1).
    #[arg(long, default_value_t = 0.0)]
    resubmission: f64,
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

pub async fn run(a: SimulateArgs) -> Result<(), Failure> {
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
    let region = RegionConfig::load(&a.config)?;
    let store = a.store.open(Open::OrCreate).await?;
    let router = ventanilla::routing::Router::new(&region);
    let topics = ventanilla::broker::Topics::new(&region.kafka.topic_prefix);
    let simulation = region.indicators.simulation.clone().ok_or(
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
        traders: usize::from(a.traders),
        declaration: simulation.declaration,
        border_notice: simulation.border_notice,
        express: simulation.express,
        rates: ventanilla::indicators::traffic::Rates {
            pre_arrival: a.pre_arrival,
            express: a.express,
            inspected_by_several: a.inspected_by_several,
            joint: a.joint,
            resubmission: a.resubmission,
        }
        .parse()?,
    };
    let kinds = ventanilla::indicators::traffic::kinds(&region);
    let written = ventanilla::indicators::traffic::simulate(&*store, &router, &topics, &traffic, &kinds).await?;
    println!("{}", serde_json::to_string_pretty(&written)?);
    Ok(())
}
