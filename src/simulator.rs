//! The agency simulator (`ventanilla agency`): consumes one agency's topic, like a real
//! agency's system, and answers each document on the agency's ack topic with a decision drawn
//! from configured weights after a configured delay, optionally acknowledging receipt first.
//! For demos, load tests and agencies' own integration tests. Decisions and delays are drawn
//! from the document id, so a run is repeatable; a document seen twice (`ce_id`) is answered once.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::config::KafkaSecurity;
use crate::domain::{AckStatus, AgencyId};
use crate::kafka::acks::{AckConsumer, AckContext};
use crate::broker::Topics;
use crate::kafka::{base_config, BrokerError};

/// What the simulator does.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub brokers: String,
    pub topics: Topics,
    pub agency: AgencyId,
    /// Decisions with their weights.
    pub decisions: Vec<(AckStatus, u32)>,
    /// Each answer waits between these two.
    pub delay: (Duration, Duration),
    /// Send `received` as soon as a document arrives.
    pub received_first: bool,
    /// Stop after answering this many documents; `None` runs until Ctrl-C.
    pub count: Option<u64>,
}

/// Parses `released:70,hold:20,rejected:10` (a bare status weighs 1).
pub fn parse_decisions(text: &str) -> Result<Vec<(AckStatus, u32)>, String> {
    let decisions: Vec<(AckStatus, u32)> = text
        .split(',')
        .map(|part| {
            let (status, weight) = part.split_once(':').unwrap_or((part, "1"));
            let status = AckStatus::parse(status.trim()).map_err(|e| e.to_string())?;
            let weight = weight.trim().parse::<u32>().map_err(|_| format!("weight {weight:?} is not a whole number"))?;
            Ok((status, weight))
        })
        .collect::<Result<_, String>>()?;
    if decisions.iter().map(|d| d.1).sum::<u32>() == 0 {
        return Err("the decisions' weights add up to 0".into());
    }
    Ok(decisions)
}

fn draw(seed: u64, decisions: &[(AckStatus, u32)]) -> AckStatus {
    let total: u64 = decisions.iter().map(|d| u64::from(d.1)).sum();
    let mut point = seed % total.max(1);
    for (status, weight) in decisions {
        if point < u64::from(*weight) {
            return *status;
        }
        point -= u64::from(*weight);
    }
    decisions[0].0
}

fn seed(document: &str) -> u64 {
    let digest = crate::digest::sha256_hex(document.as_bytes());
    u64::from_str_radix(&digest[..16], 16).unwrap_or(0)
}

/// Runs the simulation; returns how many documents it answered.
pub async fn run(sim: Simulation) -> Result<u64, BrokerError> {
    let security = KafkaSecurity::default();
    let client = |source| BrokerError::Client { brokers: sim.brokers.clone(), source };
    let consumer: AckConsumer = base_config(&sim.brokers, &security)
        .set("group.id", format!("ventanilla-simulator-{}", sim.agency))
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .create_with_context(AckContext)
        .map_err(client)?;
    let topic = sim.topics.agency(&sim.agency);
    consumer.subscribe(&[&topic]).map_err(client)?;
    let producer: FutureProducer = base_config(&sim.brokers, &security).create().map_err(client)?;
    let acks = sim.topics.acks(&sim.agency);
    let mut seen = HashSet::new();
    let mut answers = tokio::task::JoinSet::new();
    tracing::info!(agency = %sim.agency, topic, "simulator: answering documents");
    loop {
        if sim.count.is_some_and(|c| seen.len() as u64 >= c) {
            break;
        }
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = tokio::signal::ctrl_c() => break,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "simulator: receive failed");
                continue;
            }
        };
        let header = |k: &str| msg.headers().and_then(|h| h.iter().find(|h| h.key == k).and_then(|h| h.value)).map(|v| String::from_utf8_lossy(v).into_owned());
        let Some(document) = header("ce_id") else { continue };
        // A notice about a document (its withdrawal, the trader's answer to a query) names it in
        // `ce_documentid` and takes no answer.
        if let Some(about) = header("ce_documentid") {
            tracing::info!(notice = header("ce_type").unwrap_or_default(), document = %about, "simulator: a notice, nothing to answer");
            continue;
        }
        if !seen.insert(document.clone()) {
            continue; // a duplicate record: answered already
        }
        let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        let s = seed(&document);
        let decision = draw(s, &sim.decisions);
        let (min, max) = sim.delay;
        let spread = max.saturating_sub(min).as_millis() as u64;
        let delay = min + Duration::from_millis(if spread == 0 { 0 } else { (s >> 16) % (spread + 1) });
        let (producer, acks, agency, received_first) = (producer.clone(), acks.clone(), sim.agency.clone(), sim.received_first);
        answers.spawn(async move {
            let send = |status: AckStatus| {
                let body = json!({"documentId": document, "agency": agency, "status": status, "reason": "simulated decision"}).to_string();
                let (producer, acks, key) = (producer.clone(), acks.clone(), key.clone());
                async move {
                    let record = FutureRecord::to(&acks).key(&key).payload(&body);
                    if let Err((e, _)) = producer.send(record, Duration::from_secs(30)).await {
                        tracing::warn!(error = %e, "simulator: an answer was not delivered");
                    }
                }
            };
            if received_first && decision != AckStatus::Received {
                send(AckStatus::Received).await;
            }
            tokio::time::sleep(delay).await;
            send(decision).await;
        });
    }
    while answers.join_next().await.is_some() {}
    tracing::info!(answered = seen.len(), "simulator: done");
    Ok(seen.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_parsed_and_drawn_by_weight() {
        let d = parse_decisions("released:70,hold:20,rejected:10").unwrap();
        assert_eq!(d.len(), 3);
        let mut counts = std::collections::HashMap::new();
        for i in 0..10_000u64 {
            *counts.entry(draw(seed(&i.to_string()), &d)).or_insert(0) += 1;
        }
        let share = |s| f64::from(counts[&s]) / 10_000.0;
        assert!((share(AckStatus::Released) - 0.7).abs() < 0.03, "{counts:?}");
        assert!((share(AckStatus::Rejected) - 0.1).abs() < 0.03, "{counts:?}");
        assert_eq!(parse_decisions("released").unwrap(), vec![(AckStatus::Released, 1)]);
        assert!(parse_decisions("approved").is_err());
        assert!(parse_decisions("released:0").is_err());
    }
}
