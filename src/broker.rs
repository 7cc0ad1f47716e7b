//! The broker as the rest of the gateway knows it: the region's topic names and what was last
//! learnt of the cluster's health. Nothing here speaks rdkafka (that is `crate::kafka`), so the
//! gateway, readiness and receipts name topics and read health without importing the adapters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::AgencyId;

/// Topic names of one region.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Topics { prefix: prefix.to_owned() }
    }
    /// The topic an agency consumes its documents from.
    pub fn agency(&self, agency: &AgencyId) -> String {
        format!("{}agency.{}", self.prefix, agency)
    }
    /// The topic one agency answers on: one per agency, so Kafka's ACLs (each agency writes
    /// only its own) decide who answers, and the gateway takes the agency from the topic.
    pub fn acks(&self, agency: &AgencyId) -> String {
        format!("{}acks.{}", self.prefix, agency)
    }
    /// Where an agency is told of its answers refused on its ack topic.
    pub fn refused_acks(&self, agency: &AgencyId) -> String {
        format!("{}acks.{}.refused", self.prefix, agency)
    }
    /// The agency whose ack topic `topic` is, if it is one.
    pub fn ack_topic_agency(&self, topic: &str) -> Option<AgencyId> {
        topic.strip_prefix(&self.prefix)?.strip_prefix("acks.").and_then(|a| AgencyId::parse(a).ok())
    }
    /// The topic every consignment state change is published on.
    pub fn status(&self) -> String {
        format!("{}status", self.prefix)
    }
    /// Where undeliverable records go.
    pub fn dead_letter(&self) -> String {
        format!("{}deadletter", self.prefix)
    }
    /// Every topic the gateway needs.
    pub fn all<'a>(&self, agencies: impl IntoIterator<Item = &'a AgencyId>) -> Vec<String> {
        let mut t: Vec<String> = agencies.into_iter().flat_map(|a| [self.agency(a), self.acks(a), self.refused_acks(a)]).collect();
        t.extend([self.status(), self.dead_letter()]);
        t
    }
}

/// What the gateway last saw of the cluster, for readiness: a cluster that lost a broker still
/// takes records, but an operator wants to know that its copies are fewer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Brokers the cluster's metadata lists (a killed broker leaves the list once the
    /// controller fences it).
    pub brokers: usize,
    /// Partitions of the gateway's topics with fewer in-sync copies than copies.
    pub under_replicated: usize,
    /// Partitions of the gateway's topics with no leader: their records wait until one is elected.
    pub without_leader: usize,
}

/// What the gateway last learnt of the broker, shared by readiness, receipts and the relay:
/// a watcher asks the broker every second, and the relay reports what its sends meet.
#[derive(Clone)]
pub struct BrokerHealth {
    available: Arc<AtomicBool>,
    view: Arc<Mutex<ClusterView>>,
}

impl Default for BrokerHealth {
    fn default() -> Self {
        BrokerHealth { available: Arc::new(AtomicBool::new(true)), view: Arc::default() }
    }
}

impl BrokerHealth {
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }
    pub fn set(&self, available: bool) {
        if self.available.swap(available, Ordering::Relaxed) != available {
            if available {
                tracing::info!("the broker is reachable again");
            } else {
                tracing::warn!("the broker is unreachable: documents are still accepted and wait in the store");
            }
        }
    }
    /// The cluster as the watcher last saw it while it answered.
    pub fn view(&self) -> ClusterView {
        *self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    /// Records what the cluster's metadata showed.
    pub fn record(&self, seen: ClusterView) {
        let before = std::mem::replace(&mut *self.view.lock().unwrap_or_else(|p| p.into_inner()), seen);
        if before != seen && (before.brokers != seen.brokers || (before.under_replicated == 0) != (seen.under_replicated == 0)) {
            tracing::info!(
                brokers = seen.brokers,
                under_replicated_partitions = seen.under_replicated,
                partitions_without_leader = seen.without_leader,
                "the Kafka cluster changed"
            );
        }
    }
}
