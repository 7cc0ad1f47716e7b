//! `ventanilla agency`: plays an agency for demos and tests: consumes its topic and answers each
//! document on its ack topic (`ventanilla::simulator`).

use ventanilla::domain::AgencyId;

use super::Failure;

#[derive(clap::Args)]
pub struct AgencyArgs {
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

pub async fn run(a: AgencyArgs) -> Result<(), Failure> {
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
    Ok(())
}
