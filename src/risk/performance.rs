//! How selection performs, per agency and period (`GET /v1/risk/performance`): documents,
//! inspections and what they found by the source that selected them (mandatory rule, rule,
//! model, random), hit rates and revenue, realized rates against the budget's, the live model's
//! hit rate, and the drift of the scores since the model was trained.
//!
//! Read from each delivery's selection as it was decided (its stored score and source) and its
//! inspection's finding: the figures say what happened, not what a model would say now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Channel, Risk, Selection, Source};
use crate::clock::Millis;
use crate::domain::AgencyId;
use crate::store::{Finding, SelectionOutcome};

/// The most deliveries a figure reads for one period; the answer says when it stopped there.
pub const MAX_DELIVERIES: usize = 1_000_000;

/// What the inspections of one source found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceFigures {
    /// `mandatory`, `rule`, `model` or `random`.
    pub source: String,
    /// Deliveries it sent to the red or yellow channel.
    pub inspections: u64,
    /// Of those, the ones whose agency said what it found.
    pub findings: u64,
    pub irregularities: u64,
    /// Irregularities per finding reported; none before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hit_rate: Option<f64>,
    /// Duties and taxes recovered, as the agencies reported them.
    pub revenue: f64,
}

/// Shares of the documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Rates {
    pub red: f64,
    pub yellow: f64,
}

/// One agency's figures over the period.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgencyFigures {
    pub agency: AgencyId,
    /// Deliveries to it with a selection.
    pub documents: u64,
    /// The shares sent to red and yellow.
    pub realized: Rates,
    /// Its budget's, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Rates>,
    pub by_source: Vec<SourceFigures>,
    pub irregularities: u64,
    pub revenue: f64,
    /// Population stability index of the live model's points for its documents in the period,
    /// against the same model's points over the findings held back when it was trained (under
    /// 0.1: stable; 0.1 to 0.25: moving; above: retrain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_drift: Option<f64>,
}

/// The figures of every agency asked for.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Performance {
    pub from: String,
    pub to: String,
    /// The live model's version, and its precision at the budget on the findings held back
    /// when it was trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_precision_at_budget: Option<f64>,
    /// The live model's precision at the budget now: among the period's findings whose
    /// documents it scored (each selection's `modelScore`), the share irregular in the top
    /// budget's share of its scores. Absent under [`MIN_SCORED_FINDINGS`] such findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_precision_in_period: Option<f64>,
    /// The period's findings the live model scored.
    pub model_findings_in_period: u64,
    pub agencies: Vec<AgencyFigures>,
    /// Whether a period held more deliveries than one figure reads ([`MAX_DELIVERIES`]).
    pub truncated: bool,
}

/// The fewest findings the live model scored in a period for its precision there to be given.
pub const MIN_SCORED_FINDINGS: usize = 20;

/// The precision at `share` of model `version` on the findings of `rows` it scored, and how
/// many there were; none under [`MIN_SCORED_FINDINGS`].
pub fn precision_in_period<'a>(rows: impl Iterator<Item = (&'a Selection, Option<Finding>)>, version: &str, share: f64) -> (Option<f64>, u64) {
    let scored: Vec<(f64, u32)> = rows
        .filter(|(s, _)| s.model_version.as_deref() == Some(version))
        .filter_map(|(s, f)| Some((s.model_score?, u32::from(f? == Finding::Irregularity))))
        .collect();
    let n = scored.len() as u64;
    let precision = (scored.len() >= MIN_SCORED_FINDINGS).then(|| super::model::precision_of_ranking(scored, share));
    (precision, n)
}

/// The figures of `outcomes` (the period's).
pub fn figures(risk: &Risk, from: Millis, to: Millis, outcomes: &[SelectionOutcome], truncated: bool) -> Performance {
    let mut per_agency: BTreeMap<&AgencyId, Vec<(Selection, &SelectionOutcome)>> = BTreeMap::new();
    for o in outcomes {
        if let Some(s) = parse(&o.selection) {
            per_agency.entry(&o.agency).or_default().push((s, o));
        }
    }
    let live = risk.live_model();
    let (model_precision_in_period, model_findings_in_period) = match &live {
        Some((_, version)) => precision_in_period(
            per_agency.values().flatten().map(|(s, o)| (s, o.finding)),
            &version.to_string(),
            risk.budget_share(),
        ),
        None => (None, 0),
    };
    let agencies = per_agency
        .into_iter()
        .map(|(agency, rows)| {
            let documents = rows.len() as u64;
            let share = |c: Channel| rows.iter().filter(|(s, _)| s.channel == c).count() as f64 / documents.max(1) as f64;
            let mut by_source: BTreeMap<&'static str, SourceFigures> = BTreeMap::new();
            for (s, o) in &rows {
                if s.channel == Channel::Green {
                    continue;
                }
                let name = source_name(s.source);
                let f = by_source.entry(name).or_insert_with(|| SourceFigures { source: name.to_owned(), ..Default::default() });
                f.inspections += 1;
                if let Some(finding) = o.finding {
                    f.findings += 1;
                    f.irregularities += u64::from(finding == Finding::Irregularity);
                }
                f.revenue += o.revenue.unwrap_or(0.0);
            }
            let by_source: Vec<SourceFigures> = by_source
                .into_values()
                .map(|mut f| {
                    f.hit_rate = (f.findings > 0).then(|| f.irregularities as f64 / f.findings as f64);
                    f
                })
                .collect();
            // The live model's own points, against its points on the findings held back.
            let drift = live.as_ref().and_then(|(m, version)| {
                let version = version.to_string();
                let scores: Vec<f64> =
                    rows.iter().filter(|(s, _)| s.model_version.as_deref() == Some(version.as_str())).filter_map(|(s, _)| s.model_score).collect();
                psi_against_deciles(&m.validation.score_deciles, &scores)
            });
            AgencyFigures {
                agency: agency.clone(),
                documents,
                realized: Rates { red: share(Channel::Red), yellow: share(Channel::Yellow) },
                target: risk.budget_of(agency).map(|b| Rates { red: b.red, yellow: b.yellow }),
                irregularities: by_source.iter().map(|f| f.irregularities).sum(),
                revenue: by_source.iter().map(|f| f.revenue).sum(),
                by_source,
                score_drift: drift,
            }
        })
        .collect();
    Performance {
        from: crate::clock::rfc3339(from),
        to: crate::clock::rfc3339(to),
        model_version: live.as_ref().map(|(_, v)| *v),
        model_precision_at_budget: live.as_ref().map(|(m, _)| m.validation.precision_at_budget),
        model_precision_in_period,
        model_findings_in_period,
        agencies,
        truncated,
    }
}

/// The longest period one figure reads.
pub const MAX_PERIOD_MS: Millis = 92 * 24 * 3_600_000;

/// Reads the figures of `[from, to)` (at most [`MAX_PERIOD_MS`] long: the caller shortens it), of
/// `agency` or of every agency, from `store`; the figures are computed off the request's worker,
/// their CPU time charged to the reader's account (`meter`), which may refuse it before it starts.
pub async fn read(
    store: &dyn crate::store::Store,
    risk: &std::sync::Arc<Risk>,
    from: Millis,
    to: Millis,
    agency: Option<AgencyId>,
    meter: std::sync::Arc<crate::quota::Allowance>,
) -> Result<Result<Performance, crate::quota::Exceeded>, crate::store::StoreError> {
    if let Err(exceeded) = meter.cpu() {
        return Ok(Err(exceeded));
    }
    // The read's CPU on the store's thread (SQLite's, in this process) is the reader's too.
    let (mut outcomes, spent) = store
        .read_with(move |l| {
            let started = crate::quota::thread_cpu_time();
            let rows = l.selection_outcomes(from, to, agency.as_ref(), MAX_DELIVERIES + 1)?;
            Ok((rows, crate::quota::thread_cpu_time().saturating_sub(started)))
        })
        .await?;
    meter.charge_cpu(spent);
    let truncated = outcomes.len() > MAX_DELIVERIES;
    outcomes.truncate(MAX_DELIVERIES);
    let risk = risk.clone();
    // Admitted above, the request is answered whatever its read cost: the account refuses the
    // next one.
    tokio::task::spawn_blocking(move || Ok(meter.charged(|| figures(&risk, from, to, &outcomes, truncated))))
        .await
        .map_err(|e| crate::store::StoreError::Unavailable(format!("risk figures stopped: {e}")))
}

fn parse(text: &str) -> Option<Selection> {
    serde_json::from_str(text).ok()
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Mandatory => "mandatory",
        Source::Rule => "rule",
        Source::Model => "model",
        Source::Random => "random",
        Source::None => "none",
    }
}

/// The population stability index of `now` against a population cut at `deciles` (a tenth in
/// each bin); none without deciles, with fewer than 100 scores, or when the cuts coincide.
pub fn psi_against_deciles(deciles: &[f64], now: &[f64]) -> Option<f64> {
    let mut cuts = deciles.to_vec();
    cuts.dedup();
    if cuts.len() != 9 || now.len() < 100 {
        return None;
    }
    let mut counts = [0.0f64; 10];
    for x in now {
        counts[cuts.partition_point(|c| c <= x)] += 1.0;
    }
    Some(counts.iter().map(|c| (c / now.len() as f64).max(1e-4)).map(|n| (n - 0.1) * (n / 0.1).ln()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_models_precision_in_a_period_ranks_the_findings_it_scored() {
        let selection = |version: &str, score: f64| Selection {
            channel: Channel::Red,
            score,
            source: Source::Model,
            reasons: Vec::new(),
            model_version: Some(version.into()),
            model_score: Some(score),
        };
        // 40 findings scored by version 3: the 10 highest irregular, the rest not; others ignored.
        let mut rows: Vec<(Selection, Option<Finding>)> = (0..40)
            .map(|i| (selection("3", f64::from(i)), Some(if i >= 30 { Finding::Irregularity } else { Finding::None })))
            .collect();
        rows.push((selection("2", 99.0), Some(Finding::None)));
        rows.push((selection("3", 98.0), None));
        let (precision, n) = precision_in_period(rows.iter().map(|(s, f)| (s, *f)), "3", 0.25);
        assert_eq!((precision, n), (Some(1.0), 40), "the top quarter of its scores, all irregular");
        let (precision, _) = precision_in_period(rows.iter().map(|(s, f)| (s, *f)), "3", 0.5);
        assert_eq!(precision, Some(0.5));
        assert_eq!(precision_in_period(rows.iter().take(10).map(|(s, f)| (s, *f)), "3", 0.25), (None, 10), "too few to say");
    }

    #[test]
    fn the_same_scores_do_not_drift_and_shifted_ones_do() {
        // Against a model's deciles: its own population is stable, a shifted one is not.
        let deciles: Vec<f64> = (1..10).map(|k| (k * 10) as f64).collect();
        let own: Vec<f64> = (0..1_000).map(|i| (i % 100) as f64 + 0.5).collect();
        assert!(psi_against_deciles(&deciles, &own).unwrap() < 1e-9);
        let higher: Vec<f64> = own.iter().map(|x| (x + 40.0).min(99.9)).collect();
        assert!(psi_against_deciles(&deciles, &higher).unwrap() > 0.25);
        assert_eq!(psi_against_deciles(&[], &own), None);
    }
}
