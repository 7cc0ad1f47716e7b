//! The risk rules changed at run time: an operator puts a whole set (`PUT /v1/risk/rules`), it
//! is checked as the region file's rules are, kept in the store as the next version with who
//! put it and why, audited (`risk.rules.changed`), and selected with from the next document on.
//! Every gateway of the store takes the latest version: at start ([`load`]) and, for a change
//! another gateway made, within [`WATCH_EVERY`] ([`watch`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::{Risk, RuleChange, RuleSet};
use crate::clock::now_millis;
use crate::config::RiskRuleConfig;
use crate::store::{RiskRuleSet, Store, StoreError, Subject};

/// How often a gateway looks for a set another gateway put.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The longest reason a change may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The most rules a set may hold: each is assessed for every delivery, on the writer.
pub const MAX_RULES: usize = 200;

/// Why a set of rules is not put; nothing is changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesRefused {
    /// A rule does not hold against the region's document types and agencies (names the rule).
    #[error("{0}")]
    Invalid(String),
    #[error("a change gives its reason: 1 to {MAX_REASON_CHARS} characters saying why, kept in the audit log")]
    NoReason,
    #[error("{given} rules: a set holds at most {MAX_RULES}")]
    TooMany { given: usize },
}

/// Puts `rules` in place of the rules in use, for `reason`, as the operator `by` asks; the set
/// now in use.
pub async fn put(store: &dyn Store, risk: &Risk, by: &str, reason: &str, rules: Vec<RiskRuleConfig>)
    -> Result<Result<Arc<RuleSet>, RulesRefused>, StoreError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Ok(Err(RulesRefused::NoReason));
    }
    if rules.len() > MAX_RULES {
        return Ok(Err(RulesRefused::TooMany { given: rules.len() }));
    }
    let profile = match risk.check_rules(&rules) {
        Ok(p) => p,
        Err(why) => return Ok(Err(RulesRefused::Invalid(why))),
    };
    let text = serde_json::to_string(&rules).map_err(|e| StoreError::Corrupt(format!("risk rules: {e}")))?;
    let (by_, reason_, at) = (by.to_owned(), reason.to_owned(), now_millis());
    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    // Without a set in the store, the rules before are the region file's.
    let region_file: Vec<String> = match risk.rules().change {
        None => risk.rules().rules.iter().map(|r| r.name.clone()).collect(),
        Some(_) => Vec::new(),
    };
    let version = store
        .write_with(vec![Subject::RiskRules], move |l| {
            // The set before, as the store has it under the lock: another gateway's change
            // of the last seconds included.
            let before = match l.latest_risk_rules()? {
                Some(set) => {
                    let rules: Vec<RiskRuleConfig> = serde_json::from_str(&set.rules).unwrap_or_default();
                    json!({"version": set.version, "rules": rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>()})
                }
                None => json!({"version": 0, "rules": region_file}),
            };
            let version = l.save_risk_rules(at, &by_, &reason_, &text)?;
            let detail = json!({"version": version, "reason": reason_, "rules": names, "before": before});
            crate::audit::append(l, &crate::audit::entry(at, &by_, "risk.rules.changed", format!("risk-rules:{version}"), detail))?;
            Ok(version)
        })
        .await?;
    let set = RuleSet { rules, change: Some(RuleChange { version, at, by: by.to_owned(), reason: reason.to_owned() }) };
    risk.put_rules(profile, set);
    tracing::info!(version, by, "risk rules changed");
    Ok(Ok(risk.rules()))
}

/// Takes the latest set the store keeps, if newer than the one in use; whether it did. A set
/// that no longer holds against the region (a type or an agency kind removed since) is not
/// taken: the error says which rule and what to do.
pub async fn load(store: &dyn Store, risk: &Risk) -> Result<bool, StoreError> {
    let Some(latest) = store.read_with(|l| l.latest_risk_rules()).await? else { return Ok(false) };
    if latest.version <= risk.rules().version() {
        return Ok(false);
    }
    let version = latest.version;
    match compiled(risk, latest) {
        Ok((profile, set)) => {
            let taken = risk.put_rules(profile, set);
            if taken {
                tracing::info!(version, "risk rules: the set operators put last is in use");
            }
            Ok(taken)
        }
        Err(why) => {
            tracing::error!(
                version,
                error = %why,
                "risk rules: the set operators put last does not hold against this region file; the rules in use are kept. \
                 Put a set that holds (PUT /v1/risk/rules) or restore what the region file lost"
            );
            Ok(false)
        }
    }
}

fn compiled(risk: &Risk, stored: RiskRuleSet) -> Result<(super::Profile, RuleSet), String> {
    let rules: Vec<RiskRuleConfig> = serde_json::from_str(&stored.rules).map_err(|e| format!("the stored set cannot be read: {e}"))?;
    let profile = risk.check_rules(&rules)?;
    let change = RuleChange { version: stored.version, at: stored.at, by: stored.changed_by, reason: stored.reason };
    Ok((profile, RuleSet { rules, change: Some(change) }))
}

/// Takes each set another gateway puts, within [`WATCH_EVERY`], until shutdown.
pub async fn watch(store: Arc<dyn Store>, risk: Arc<Risk>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if !super::next_tick(WATCH_EVERY, &mut shutdown).await {
            return;
        }
        if let Err(e) = load(&*store, &risk).await {
            tracing::warn!(error = %e, "risk rules: the store could not be read for a newer set; trying again");
        }
    }
}
