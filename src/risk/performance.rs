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
    /// Population stability index of its documents' scores, the period's against the live
    /// model's training window (under 0.1: stable; 0.1 to 0.25: moving; above: retrain).
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
    pub agencies: Vec<AgencyFigures>,
    /// Whether a period held more deliveries than one figure reads ([`MAX_DELIVERIES`]).
    pub truncated: bool,
}

/// The figures of `outcomes` (the period's), with `training` (the live model's window's) for
/// the drift.
pub fn figures(risk: &Risk, from: Millis, to: Millis, outcomes: &[SelectionOutcome], training: &[SelectionOutcome], truncated: bool) -> Performance {
    let mut per_agency: BTreeMap<&AgencyId, Vec<(Selection, &SelectionOutcome)>> = BTreeMap::new();
    for o in outcomes {
        if let Some(s) = parse(&o.selection) {
            per_agency.entry(&o.agency).or_default().push((s, o));
        }
    }
    let mut trained_scores: BTreeMap<&AgencyId, Vec<f64>> = BTreeMap::new();
    for o in training {
        if let Some(s) = parse(&o.selection) {
            trained_scores.entry(&o.agency).or_default().push(s.score);
        }
    }
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
            let scores: Vec<f64> = rows.iter().map(|(s, _)| s.score).collect();
            AgencyFigures {
                agency: agency.clone(),
                documents,
                realized: Rates { red: share(Channel::Red), yellow: share(Channel::Yellow) },
                target: risk.budget_of(agency).map(|b| Rates { red: b.red, yellow: b.yellow }),
                irregularities: by_source.iter().map(|f| f.irregularities).sum(),
                revenue: by_source.iter().map(|f| f.revenue).sum(),
                by_source,
                score_drift: trained_scores.get(agency).and_then(|base| psi(base, &scores)),
            }
        })
        .collect();
    let live = risk.live_model();
    Performance {
        from: crate::clock::rfc3339(from),
        to: crate::clock::rfc3339(to),
        model_version: live.as_ref().map(|(_, v)| *v),
        model_precision_at_budget: live.as_ref().map(|(m, _)| m.validation.precision_at_budget),
        agencies,
        truncated,
    }
}

/// Reads the figures of `[from, to)`, of `agency` or of every agency, from `store`.
pub async fn read(store: &dyn crate::store::Store, risk: &Risk, from: Millis, to: Millis, agency: Option<AgencyId>)
    -> Result<Performance, crate::store::StoreError> {
    let of = agency.clone();
    let mut outcomes = store.read_with(move |l| l.selection_outcomes(from, to, of.as_ref(), MAX_DELIVERIES + 1)).await?;
    let mut truncated = outcomes.len() > MAX_DELIVERIES;
    outcomes.truncate(MAX_DELIVERIES);
    let training = match risk.live_model() {
        Some((m, _)) => {
            let (f, t) = (m.window_from, m.window_to.saturating_add(1));
            let mut rows = store.read_with(move |l| l.selection_outcomes(f, t, agency.as_ref(), MAX_DELIVERIES + 1)).await?;
            truncated |= rows.len() > MAX_DELIVERIES;
            rows.truncate(MAX_DELIVERIES);
            rows
        }
        None => Vec::new(),
    };
    Ok(figures(risk, from, to, &outcomes, &training, truncated))
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

/// The population stability index of `now` against `base`, over ten bins cut at `base`'s
/// deciles; none with fewer than 100 scores on either side, or scores all alike.
pub fn psi(base: &[f64], now: &[f64]) -> Option<f64> {
    if base.len() < 100 || now.len() < 100 {
        return None;
    }
    let mut sorted = base.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut cuts: Vec<f64> = (1..10).map(|k| sorted[k * sorted.len() / 10]).collect();
    cuts.dedup();
    if cuts.is_empty() || sorted[0] == sorted[sorted.len() - 1] {
        return None;
    }
    let shares = |xs: &[f64]| {
        let mut counts = vec![0.0; cuts.len() + 1];
        for x in xs {
            counts[cuts.partition_point(|c| c <= x)] += 1.0;
        }
        counts.into_iter().map(|c| (c / xs.len() as f64).max(1e-4)).collect::<Vec<f64>>()
    };
    let (b, n) = (shares(base), shares(now));
    Some(b.iter().zip(&n).map(|(b, n)| (n - b) * (n / b).ln()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_scores_do_not_drift_and_shifted_ones_do() {
        let base: Vec<f64> = (0..1_000).map(|i| (i % 100) as f64).collect();
        assert!(psi(&base, &base).unwrap() < 1e-9);
        let shifted: Vec<f64> = base.iter().map(|x| x + 30.0).collect();
        assert!(psi(&base, &shifted).unwrap() > 0.25, "{:?}", psi(&base, &shifted));
        assert_eq!(psi(&base[..50], &base), None, "too few to say");
    }
}
