//! A platform's sellers as inspections found them (`GET /v1/risk/sellers`): for the parcels a
//! platform submitted, each seller's inspections and irregularities over a period, the worst
//! first, so that the platform can act on its own sellers (the WCO's framework asks platforms
//! to share that work). Counts of what agencies found, never the rules, scores or reasons that
//! chose what to inspect: whoever learns the profile can evade it.

use std::collections::HashMap;

use serde::Serialize;

use super::history::FindingFacts;
use crate::clock::Millis;
use crate::store::FindingRecord;

/// The most findings one report reads; the answer says when it stopped there.
pub const MAX_FINDINGS: usize = 200_000;
/// The most sellers one report lists (the worst first); the answer gives how many there were.
pub const MAX_SELLERS: usize = 1_000;

/// One seller's parcels as inspected.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellerFigures {
    /// `SCHEME:VALUE`, as its parcels name it.
    pub seller: String,
    /// Inspections of its parcels that said what they found (one per agency that inspected).
    pub inspections: u64,
    pub irregularities: u64,
    /// Irregularities per inspection.
    pub irregularity_rate: f64,
}

/// A platform's report over a period.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellerReport {
    /// The platform (participant) whose parcels these are; absent for every submitter's (an
    /// operator's report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub from: String,
    pub to: String,
    /// Every inspection with a finding of its parcels in the period, whoever the seller.
    pub inspections: u64,
    pub irregularities: u64,
    /// Sellers with at least one inspection; the most irregularities first, then the highest
    /// rate, at most [`MAX_SELLERS`].
    pub sellers: Vec<SellerFigures>,
    /// How many sellers had an inspection (more than listed when past [`MAX_SELLERS`]).
    pub sellers_inspected: u64,
    /// Whether the period held more findings than one report reads ([`MAX_FINDINGS`]).
    pub truncated: bool,
}

/// The report of `findings` (the platform's, in the period). A finding whose facts cannot be
/// read counts in the totals, for no seller.
pub fn report(platform: Option<&str>, from: Millis, to: Millis, findings: &[FindingRecord], truncated: bool) -> SellerReport {
    let mut per_seller: HashMap<String, (u64, u64)> = HashMap::new();
    for f in findings {
        let facts: FindingFacts = serde_json::from_str(&f.facts).unwrap_or_default();
        for seller in facts.sellers {
            let tally = per_seller.entry(seller).or_default();
            tally.0 += 1;
            tally.1 += u64::from(f.irregular);
        }
    }
    let sellers_inspected = per_seller.len() as u64;
    let mut sellers: Vec<SellerFigures> = per_seller
        .into_iter()
        .map(|(seller, (inspections, irregularities))| SellerFigures {
            seller,
            inspections,
            irregularities,
            irregularity_rate: irregularities as f64 / inspections as f64,
        })
        .collect();
    sellers.sort_by(|a, b| {
        b.irregularities.cmp(&a.irregularities).then(b.irregularity_rate.total_cmp(&a.irregularity_rate)).then(a.seller.cmp(&b.seller))
    });
    sellers.truncate(MAX_SELLERS);
    SellerReport {
        platform: platform.map(str::to_owned),
        from: crate::clock::rfc3339(from),
        to: crate::clock::rfc3339(to),
        inspections: findings.len() as u64,
        irregularities: findings.iter().filter(|f| f.irregular).count() as u64,
        sellers,
        sellers_inspected,
        truncated,
    }
}

/// Reads `platform`'s report (every submitter's when `None`) of `[from, to)` (at most
/// `super::performance::MAX_PERIOD_MS` long: the caller shortens it) from `store`, figured off
/// the request's worker, its CPU time charged to the reader's account (`meter`), which may
/// refuse it first.
pub async fn read(store: &dyn crate::store::Store, platform: Option<String>, from: Millis, to: Millis, meter: std::sync::Arc<crate::quota::Allowance>)
    -> Result<Result<SellerReport, crate::quota::Exceeded>, crate::store::StoreError> {
    if let Err(exceeded) = meter.cpu() {
        return Ok(Err(exceeded));
    }
    let who = platform.clone();
    // The read's CPU on the store's thread (SQLite's, in this process) is the reader's too.
    let (mut findings, spent) = store
        .read_with(move |l| {
            let started = crate::quota::thread_cpu_time();
            let rows = l.findings_of_sender(who.as_deref(), from, to, MAX_FINDINGS + 1)?;
            Ok((rows, crate::quota::thread_cpu_time().saturating_sub(started)))
        })
        .await?;
    meter.charge_cpu(spent);
    let truncated = findings.len() > MAX_FINDINGS;
    findings.truncate(MAX_FINDINGS);
    // Admitted above, the request is answered whatever its read cost: the account refuses the
    // next one.
    tokio::task::spawn_blocking(move || Ok(meter.charged(|| report(platform.as_deref(), from, to, &findings, truncated))))
        .await
        .map_err(|e| crate::store::StoreError::Unavailable(format!("the sellers' figures stopped: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(seller: &str, irregular: bool, at: Millis) -> FindingRecord {
        let facts = FindingFacts { sellers: vec![seller.into()], parties: vec![seller.into()], ..Default::default() };
        FindingRecord { delivery_id: at, at, irregular, facts: serde_json::to_string(&facts).unwrap() }
    }

    #[test]
    fn sellers_are_counted_by_what_inspections_found_the_worst_first() {
        let findings = [
            finding("CN-USCC:A", true, 1),
            finding("CN-USCC:A", false, 2),
            finding("CN-USCC:B", false, 3),
            finding("CN-USCC:C", true, 4),
            finding("CN-USCC:A", true, 5),
            FindingRecord { delivery_id: 6, at: 6, irregular: true, facts: "not facts".into() },
        ];
        let r = report(Some("demo-platform"), 0, 10, &findings, false);
        assert_eq!((r.inspections, r.irregularities, r.sellers_inspected), (6, 4, 3));
        let listed: Vec<(&str, u64, u64)> = r.sellers.iter().map(|s| (s.seller.as_str(), s.inspections, s.irregularities)).collect();
        assert_eq!(listed, [("CN-USCC:A", 3, 2), ("CN-USCC:C", 1, 1), ("CN-USCC:B", 1, 0)]);
        assert!((r.sellers[0].irregularity_rate - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_report_lists_at_most_its_bound_of_sellers_the_worst_first_and_counts_them_all() {
        let findings: Vec<FindingRecord> = (0..MAX_SELLERS as i64 + 500).map(|i| finding(&format!("CN-USCC:{i:05}"), i % 2 == 0, i)).collect();
        let r = report(Some("demo-platform"), 0, 10, &findings, false);
        assert_eq!(r.sellers.len(), MAX_SELLERS);
        assert_eq!(r.sellers_inspected, MAX_SELLERS as u64 + 500);
        assert!(r.sellers[..(MAX_SELLERS + 500) / 2].iter().all(|s| s.irregularities == 1), "the irregular ones first");
    }
}
