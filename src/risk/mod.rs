//! Risk profiling and selection: which documents each agency inspects, and why.
//!
//! - [`facts`]: what a document states that risk reads, by each type's pointers;
//! - [`rules`]: the analysts' rules (`[[risk.rules]]`), checked against those facts;
//! - [`selection`]: a channel for every delivery, within each agency's budget
//!   (`[[risk.budgets]]`), with an exploration share chosen at random;
//! - [`history`], [`model`], [`learning`]: what inspections found, and the model learned from it;
//! - [`performance`]: how selection performed; [`sellers`]: a platform's sellers as inspected;
//! - [`simulation`]: e-commerce traffic with planted irregularities, through a running gateway.
//!
//! A [`Selection`] is the agency's to read, with its score and reasons; a trader learns only
//! the channel, once the agency has answered (whoever learns the profile can evade it).
//!
//! The rules are the region file's until an operator puts a set at run time
//! (`PUT /v1/risk/rules`): it is checked as the file's are, kept in the store with who put it
//! and why (and audited), and every gateway of the store selects with the latest set
//! ([`Risk::put_rules`], [`Risk::rules`]).

pub mod changes;
pub mod facts;
pub mod history;
pub mod learning;
pub mod model;
pub mod performance;
pub mod rules;
pub mod selection;
pub mod sellers;
pub mod simulation;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::{RegionConfig, RiskRuleConfig};
use crate::clock::Millis;
use crate::domain::AgencyId;

pub use facts::{Fact, FactReadings, RiskFacts};
pub use rules::{Assessment, Profile};
pub use selection::{Budget, Lane};

/// Where a document goes at the border: released on its documents as lodged (green), its
/// documents checked (yellow), or the goods inspected (red). Ordered by strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Green,
    Yellow,
    Red,
}

/// Why a document is in its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A rule sends it there whatever the budget.
    Mandatory,
    /// Among the highest scores, the rules' points weighing most.
    Rule,
    /// Among the highest scores, the model's weighing most.
    Model,
    /// Chosen at random (the exploration share).
    Random,
    /// Not selected.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonKind {
    Rule,
    Feature,
    Random,
}

/// One reason of a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ReasonKind,
    pub name: String,
    /// What it added to the score.
    pub contribution: f64,
    pub text: String,
}

/// A delivery's channel and why, as the agency reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    pub channel: Channel,
    pub score: f64,
    pub source: Source,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The live model's part of `score` (100 × its probability of an irregularity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_score: Option<f64>,
}

/// Most reasons a selection gives: the mandatory ones, then the largest contributions.
pub const MAX_REASONS: usize = 8;

/// Risk profiling for a region: how to read each type's facts, the rules, the budgets, and each
/// agency's selection state (kept by this gateway, for the documents it accepts).
pub struct Risk {
    readings: FactReadings,
    /// The rules selected with now, compiled, and the set they came from.
    profile: RwLock<(Arc<Profile>, Arc<RuleSet>)>,
    /// Agency id -> its kind.
    kinds: BTreeMap<AgencyId, String>,
    /// Every agency kind of the region, which a rule's `agency_kinds` must name.
    kind_names: BTreeSet<String>,
    /// (agency kind, country, border post or "") -> rates.
    budgets: BTreeMap<(String, String, String), Budget>,
    exploration: f64,
    /// (agency, border post or "") -> its lane.
    lanes: Mutex<HashMap<(AgencyId, String), Lane>>,
    /// The live model, if any, and the findings' histories it scores with: rebuilt from every
    /// finding at each training, and counting this gateway's findings as they come.
    learned: RwLock<Learned>,
    /// Destination country -> its de minimis (`[[risk.de_minimis]]`).
    de_minimis: BTreeMap<String, DeMinimis>,
}

/// A destination's de minimis, checked at start.
#[derive(Debug, Clone)]
struct DeMinimis {
    below: f64,
    currency: String,
    document_types: BTreeSet<String>,
}

/// What selection learned from the findings.
#[derive(Default)]
struct Learned {
    model: Option<(Arc<model::Model>, i64)>,
    histories: history::Histories,
}

impl Risk {
    /// Compiles and checks the region's risk settings; an error names the rule or budget.
    pub fn new(region: &RegionConfig) -> Result<Risk, String> {
        let readings = FactReadings::new(&region.document_types)?;
        let kinds: BTreeMap<AgencyId, String> = region.agencies.iter().map(|a| (a.id.clone(), a.kind.clone())).collect();
        let kind_names: BTreeSet<String> = kinds.values().cloned().collect();
        let profile = Profile::new(&region.risk.rules, &readings, &kind_names)?;
        let exploration = region.risk.exploration;
        if !(0.0..1.0).contains(&exploration) {
            return Err(format!("[risk] exploration {exploration}: a share of each budget from 0 up to (not including) 1; 0.1 by default"));
        }
        let mut budgets = BTreeMap::new();
        for b in &region.risk.budgets {
            let at = format!("[[risk.budgets]] {} {}{}", b.agency_kind, b.country, b.border_post.as_deref().map(|p| format!(" at {p}")).unwrap_or_default());
            if !kind_names.contains(&b.agency_kind) {
                return Err(format!("{at}: agency kind {:?} is not a kind of the region's agencies", b.agency_kind));
            }
            if crate::domain::CountryCode::parse(&b.country).is_err() {
                return Err(format!("{at}: country {:?}: a country code of two capital letters", b.country));
            }
            let share = |r: f64| (0.0..=1.0).contains(&r);
            if !share(b.red) || !share(b.yellow) || b.red + b.yellow > 1.0 {
                return Err(format!("{at}: red and yellow are shares of the documents (0.03 is 3%), together at most 1"));
            }
            let key = (b.agency_kind.clone(), b.country.clone(), b.border_post.clone().unwrap_or_default());
            if budgets.insert(key, Budget { red: b.red, yellow: b.yellow }).is_some() {
                return Err(format!("{at}: given twice"));
            }
        }
        let mut de_minimis = BTreeMap::new();
        for d in &region.risk.de_minimis {
            let at = format!("[[risk.de_minimis]] {}", d.destination);
            if crate::domain::CountryCode::parse(&d.destination).is_err() {
                return Err(format!("{at}: destination {:?}: a country code of two capital letters", d.destination));
            }
            if !(d.below.is_finite() && d.below > 0.0) {
                return Err(format!("{at}: below {}: a value above 0", d.below));
            }
            if d.currency.len() != 3 || !d.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("{at}: currency {:?}: an ISO 4217 code (USD)", d.currency));
            }
            for t in &d.document_types {
                if !readings.describes(t, Fact::Value) {
                    return Err(format!("{at}: document type {t:?} is not one whose declared value the region describes (its [document_types.{t}] risk.value)"));
                }
            }
            let entry = DeMinimis { below: d.below, currency: d.currency.clone(), document_types: d.document_types.iter().cloned().collect() };
            if de_minimis.insert(d.destination.clone(), entry).is_some() {
                return Err(format!("{at}: given twice"));
            }
        }
        let set = RuleSet { rules: region.risk.rules.clone(), change: None };
        Ok(Risk {
            readings,
            profile: RwLock::new((Arc::new(profile), Arc::new(set))),
            kinds,
            kind_names,
            budgets,
            exploration,
            lanes: Mutex::new(HashMap::new()),
            learned: RwLock::new(Learned::default()),
            de_minimis,
        })
    }

    /// The facts of a payload (`crate::risk::facts`).
    pub fn facts(&self, document_type: &str, origin: &str, destination: &str, payload: &serde_json::Value) -> RiskFacts {
        self.readings.read(document_type, origin, destination, payload)
    }

    /// The channel of a document with facts `f` sent to `agency`: its rules, then its lane
    /// within the agency's budget. An agency without a budget inspects only what a mandatory
    /// rule sends it.
    pub fn select(&self, agency: &AgencyId, f: &RiskFacts) -> Selection {
        let kind = self.kinds.get(agency).map_or("", String::as_str);
        let assessment = self.profile().assess(f, kind);
        let country = agency.country().to_string();
        let post = f.border_post.clone().unwrap_or_default();
        let (budget, post) = match self.budgets.get(&(kind.to_owned(), country.clone(), post.clone())) {
            Some(b) if !post.is_empty() => (Some(*b), post),
            _ => (self.budgets.get(&(kind.to_owned(), country, String::new())).copied(), String::new()),
        };
        let Some(budget) = budget else {
            let (channel, source) = match assessment.mandatory {
                Some(c) => (c, Source::Mandatory),
                None => (Channel::Green, Source::None),
            };
            return Selection { channel, score: assessment.score, source, reasons: selection::reasons(&assessment), model_version: None, model_score: None };
        };
        let learned = self.model_score(f);
        let mut lanes = self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let lane = lanes.entry((agency.clone(), post)).or_insert_with(|| Lane::new(budget, self.exploration, seed()));
        let Some((score, version, features)) = learned else { return lane.select(&assessment, None) };
        let mut selection = lane.select(&assessment, Some((score, &version)));
        drop(lanes);
        selection.model_score = Some(score);
        // The model's reasons among the rules', by what each added; the random draw's last.
        let random = selection.reasons.iter().position(|r| r.kind == ReasonKind::Random).map(|at| selection.reasons.remove(at));
        selection.reasons.extend(features);
        selection.reasons.sort_by(|a, b| (a.contribution != 0.0 || a.kind != ReasonKind::Rule).cmp(&(b.contribution != 0.0 || b.kind != ReasonKind::Rule)).then(b.contribution.total_cmp(&a.contribution)));
        selection.reasons.truncate(MAX_REASONS - usize::from(random.is_some()));
        selection.reasons.extend(random);
        selection
    }

    /// The live model's points for a document (100 times its probability of an irregularity),
    /// its version, and the features that raised it most, as reasons.
    fn model_score(&self, f: &RiskFacts) -> Option<(f64, String, Vec<Reason>)> {
        let learned = self.learned.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (m, version) = learned.model.as_ref()?;
        let facts = history::FindingFacts::of(f);
        let x = model::features(&learned.histories, &facts);
        let (p, parts) = m.weights.score(&x);
        let points = 100.0 * p;
        // Each feature's part of the points, to first order at this document.
        let slope = 100.0 * p * (1.0 - p);
        let mut reasons: Vec<Reason> = parts
            .iter()
            .enumerate()
            .filter(|(_, part)| **part > 0.0)
            .map(|(i, part)| Reason {
                kind: ReasonKind::Feature,
                name: model::FEATURES[i].to_owned(),
                contribution: (slope * part * 100.0).round() / 100.0,
                text: feature_text(i, &learned.histories, &facts, &x),
            })
            .collect();
        reasons.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        reasons.truncate(3);
        Some((points, version.to_string(), reasons))
    }

    /// Counts a finding this gateway recorded in the histories the live model scores with.
    pub fn learn(&self, facts: &history::FindingFacts, irregular: bool) {
        self.learned.write().unwrap_or_else(|poisoned| poisoned.into_inner()).histories.add(facts, irregular);
    }

    /// Scores with `model` (version `version`) from now on, over `histories`; none: rules alone.
    pub fn put_model(&self, model: Option<(Arc<model::Model>, i64)>, histories: history::Histories) {
        let mut learned = self.learned.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        learned.model = model;
        learned.histories = histories;
    }

    /// Scores with `histories` from now on, whichever model is live.
    pub fn put_histories(&self, histories: history::Histories) {
        self.learned.write().unwrap_or_else(|poisoned| poisoned.into_inner()).histories = histories;
    }

    /// The live model and its version, if one is live.
    pub fn live_model(&self) -> Option<(Arc<model::Model>, i64)> {
        self.learned.read().unwrap_or_else(|poisoned| poisoned.into_inner()).model.clone()
    }

    /// Whether a green-channel document with facts `f` is released by standing instruction: of a
    /// type its destination's de minimis covers, declaring less than it in its currency.
    pub fn under_de_minimis(&self, f: &RiskFacts) -> Option<String> {
        let d = self.de_minimis.get(&f.destination)?;
        let value = f.value?;
        let covered = d.document_types.contains(&f.document_type) && f.currency.as_deref() == Some(d.currency.as_str()) && value < d.below;
        covered.then(|| format!("de minimis: {value} {} declared, under {} {} for {}", d.currency, d.below, d.currency, f.destination))
    }

    /// The budget of `agency` for the documents naming no border post of their own, if any.
    pub fn budget_of(&self, agency: &AgencyId) -> Option<Budget> {
        let kind = self.kinds.get(agency)?;
        self.budgets.get(&(kind.clone(), agency.country().to_string(), String::new())).copied()
    }

    /// The share of documents the region's budgets inspect (red and yellow), on average: the
    /// budget a model's precision is judged at.
    pub fn budget_share(&self) -> f64 {
        if self.budgets.is_empty() {
            return 0.1;
        }
        self.budgets.values().map(|b| b.red + b.yellow).sum::<f64>() / self.budgets.len() as f64
    }

    /// The rules selected with now, compiled.
    pub fn profile(&self) -> Arc<Profile> {
        self.profile.read().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone()
    }

    /// The rules selected with now, as written, and who put them.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.profile.read().unwrap_or_else(|poisoned| poisoned.into_inner()).1.clone()
    }

    /// `rules` checked as the region file's are (each fact a rule reads described by the types
    /// it applies to, its agency kinds the region's...): the first fault, naming its rule.
    pub fn check_rules(&self, rules: &[RiskRuleConfig]) -> Result<Profile, String> {
        Profile::new(rules, &self.readings, &self.kind_names)
    }

    /// Selects with `set` from now on, compiled as `profile` ([`Risk::check_rules`]). A set
    /// older than the one in use is ignored (gateways learn of each other's changes late): the
    /// latest version wins.
    pub fn put_rules(&self, profile: Profile, set: RuleSet) -> bool {
        let mut now = self.profile.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.1.version() > set.version() {
            return false;
        }
        *now = (Arc::new(profile), Arc::new(set));
        true
    }
}

/// A set of rules as written, and the operator's change that put it (none: the region file's).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<RiskRuleConfig>,
    pub change: Option<RuleChange>,
}

impl RuleSet {
    /// Its version in the store; 0 for the region file's.
    pub fn version(&self) -> i64 {
        self.change.as_ref().map_or(0, |c| c.version)
    }
}

/// Who put a set of rules at run time, when and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    pub version: i64,
    pub at: Millis,
    pub by: String,
    pub reason: String,
}

/// A feature's reason, in words an inspector reads.
fn feature_text(i: usize, h: &history::Histories, f: &history::FindingFacts, x: &[f64; 8]) -> String {
    let history = |d: history::Dimension, what: &str| match h.worst(f, d) {
        Some(e) => format!("{what} {}: irregularities in {:.0}% of past inspections ({} inspected; the region: {:.0}%)", e.key, 100.0 * e.rate, e.inspected, 100.0 * h.mean()),
        None => format!("{what}: no history"),
    };
    match i {
        0 => history(history::Dimension::Party, "Party"),
        1 => history(history::Dimension::Heading, "HS heading"),
        2 => history(history::Dimension::Route, "Route"),
        3 => history(history::Dimension::Platform, "Platform"),
        4 => format!("Declared value per kilogram: {:.2}", x[4].exp_m1()),
        5 => "No value per kilogram can be computed (value or mass not stated)".into(),
        6 => format!("Declared value: {:.2}", x[6].exp_m1()),
        _ => "A party never inspected before".into(),
    }
}

/// A document's risk facts with the region's profiling: each delivery's channel is chosen when
/// the document is committed (`crate::submission`), so that a replay or a refused document
/// spends no agency's budget.
#[derive(Clone)]
pub struct RiskPlan {
    risk: Arc<Risk>,
    facts: RiskFacts,
}

impl RiskPlan {
    pub fn new(risk: Arc<Risk>, facts: RiskFacts) -> RiskPlan {
        RiskPlan { risk, facts }
    }

    /// The selection of the delivery to `agency`, as the JSON it is stored and sent as, and
    /// whether the agency's standing instruction releases it (green, under the de minimis: why).
    pub fn select(&self, agency: &AgencyId) -> (Option<String>, Option<String>) {
        let s = self.risk.select(agency, &self.facts);
        let standing = if s.channel == Channel::Green { self.risk.under_de_minimis(&self.facts) } else { None };
        (serde_json::to_string(&s).ok(), standing)
    }
}

impl std::fmt::Debug for RiskPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskPlan").field("facts", &self.facts).finish_non_exhaustive()
    }
}

/// Waits `every`, or until shutdown is asked for; whether to go on (the watchers' tick).
async fn next_tick(every: std::time::Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => {}
        _ = shutdown.changed() => return false,
    }
    !*shutdown.borrow()
}

/// A lane's random seed, from the system's randomness.
fn seed() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests;
