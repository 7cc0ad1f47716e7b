//! Training as the gateway runs it: every finding kept is read from the store, a model is
//! trained off the request path ([`super::model::train`] on the blocking pool), kept in the
//! store as the next version with its figures, audited (`risk.model.trained`), and put live
//! only if it beats the live one on the held-back findings. On demand (`POST /v1/risk/models`)
//! and on the region's schedule (`[risk] training_every_hours`); a gateway takes the live model
//! another gateway trained within [`WATCH_EVERY`], and the live model and the histories at start.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::history::{FindingFacts, Histories};
use super::model::{self, Example, Model};
use super::Risk;
use crate::clock::{now_millis, Millis};
use crate::store::{FindingRecord, Store, StoreError, Subject};

/// How often a gateway looks for a model another gateway put live.
pub const WATCH_EVERY: Duration = Duration::from_secs(30);

/// Findings read from the store per page.
const PAGE: usize = 10_000;

/// A model trained: its version, whether it went live, and the model with its figures.
#[derive(Debug, Clone)]
pub struct Trained {
    pub version: i64,
    pub live: bool,
    pub model: Arc<Model>,
}

/// Every finding kept, in time order, with its facts.
async fn findings(store: &dyn Store) -> Result<Vec<(FindingFacts, bool, Millis)>, StoreError> {
    let mut out = Vec::new();
    let mut after = (Millis::MIN, i64::MIN);
    loop {
        let page: Vec<FindingRecord> = store.read_with(move |l| l.findings_after(after, PAGE)).await?;
        let Some(last) = page.last() else { break };
        after = (last.at, last.delivery_id);
        let full = page.len() == PAGE;
        for f in page {
            // A finding whose facts cannot be read is left out of learning, not fatal.
            match serde_json::from_str::<FindingFacts>(&f.facts) {
                Ok(facts) => out.push((facts, f.irregular, f.at)),
                Err(e) => tracing::warn!(delivery = f.delivery_id, error = %e, "risk learning: a finding's facts cannot be read; left out"),
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Trains a model on every finding kept, as `by` asks (an operator, or `schedule`); a refusal
/// says why none can be trained yet (too few findings, all of one kind).
pub async fn train(store: &dyn Store, risk: &Arc<Risk>, by: &str) -> Result<Result<Trained, String>, StoreError> {
    let findings = findings(store).await?;
    let live = risk.live_model();
    let share = risk.budget_share();
    let live_weights = live.as_ref().map(|(m, _)| m.weights.clone());
    let trained = tokio::task::spawn_blocking(move || {
        let examples: Vec<Example> = findings.iter().map(|(f, y, at)| Example { facts: f, irregular: *y, at: *at }).collect();
        model::train(&examples, share, live_weights.as_ref())
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("risk training stopped: {e}")))?;
    let (model, histories) = match trained {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    let beats = model.beats_live();
    let text = serde_json::to_string(&model).map_err(|e| StoreError::Corrupt(format!("risk model: {e}")))?;
    let (by_, at) = (by.to_owned(), now_millis());
    let judged_against = live.as_ref().map(|(_, v)| *v);
    let detail = json!({
        "kind": model.kind,
        "trainedOn": model.trained_on,
        "windowFrom": model.window_from,
        "windowTo": model.window_to,
        "validation": model.validation,
        "previous": judged_against,
    });
    let (version, goes_live) = store
        .write_with(vec![Subject::RiskModels], move |l| {
            // Judged against the model live when training began: if another went live since
            // (on this gateway or another), this one was never compared with it and stays out.
            let live_now = l.live_risk_model()?.map(|r| r.version);
            let goes_live = beats && live_now == judged_against;
            let version = l.save_risk_model(at, &by_, goes_live, &text)?;
            let mut detail = detail;
            detail["version"] = json!(version);
            detail["live"] = json!(goes_live);
            crate::audit::append(l, &crate::audit::entry(at, &by_, "risk.model.trained", format!("risk-model:{version}"), detail))?;
            Ok((version, goes_live))
        })
        .await?;
    let model = Arc::new(model);
    if goes_live {
        risk.put_model(Some((model.clone(), version)), histories);
    } else {
        // The live model stays, whichever it is now; it scores with the histories of every
        // finding read for this training.
        risk.put_histories(histories);
    }
    tracing::info!(version, live = goes_live, precision = model.validation.precision_at_budget, by, "risk model trained");
    Ok(Ok(Trained { version, live: goes_live, model }))
}

/// Takes the live model the store keeps, with the histories of every finding, if it is not the
/// one in use; whether it did.
pub async fn load(store: &dyn Store, risk: &Risk) -> Result<bool, StoreError> {
    let Some(record) = store.read_with(|l| l.live_risk_model()).await? else { return Ok(false) };
    if risk.live_model().is_some_and(|(_, v)| v == record.version) {
        return Ok(false);
    }
    let model: Model = match serde_json::from_str(&record.model) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(version = record.version, error = %e, "risk learning: the live model cannot be read; rules alone select");
            return Ok(false);
        }
    };
    let mut histories = Histories::default();
    for (facts, irregular, _) in findings(store).await? {
        histories.add(&facts, irregular);
    }
    risk.put_model(Some((Arc::new(model), record.version)), histories);
    tracing::info!(version = record.version, "risk learning: the live model is in use");
    Ok(true)
}

/// Takes the model another gateway puts live, and trains on the region's schedule, until shutdown.
pub async fn run(store: Arc<dyn Store>, risk: Arc<Risk>, training_every: Option<Duration>, mut shutdown: watch::Receiver<bool>) {
    // The live model and the histories, off the start's path.
    if let Err(e) = load(&*store, &risk).await {
        tracing::warn!(error = %e, "risk learning: the store could not be read for the live model; trying again");
    }
    let started = tokio::time::Instant::now();
    let mut next_training = training_every.map(|every| started + every);
    loop {
        if !super::next_tick(WATCH_EVERY, &mut shutdown).await {
            return;
        }
        if let Err(e) = load(&*store, &risk).await {
            tracing::warn!(error = %e, "risk learning: the store could not be read for the live model; trying again");
        }
        if let (Some(at), Some(every)) = (next_training, training_every) {
            if tokio::time::Instant::now() >= at {
                next_training = Some(at + every);
                match train(&*store, &risk, "schedule").await {
                    Ok(Ok(_)) => {}
                    Ok(Err(why)) => tracing::info!(why, "risk learning: no model trained on schedule"),
                    Err(e) => tracing::warn!(error = %e, "risk learning: scheduled training failed; the next is on schedule"),
                }
            }
        }
    }
}
