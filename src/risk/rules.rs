//! Risk profiles as analysts write them (`[[risk.rules]]`): conditions on a document's facts,
//! each rule giving points towards the document's score or a mandatory channel, with a reason in
//! words. Compiled and checked once, at start: a rule that reads a fact one of
//! the document types it names does not describe is refused with the rule's name. A rule that
//! names no type applies to the types that describe what it reads (a standard onboarded without
//! HS codes does not stop the start of a region whose rules read them).

use std::collections::BTreeSet;

use crate::config::{RiskRuleConfig, ValueNearConfig};

use super::facts::{Fact, FactReadings, RiskFacts};
use super::Channel;

/// Longest rule name: a selection names its rules on every record it rides on.
const MAX_NAME: usize = 64;
/// Longest reason, in characters: a selection (at most [`super::MAX_REASONS`] of them) fits in
/// the record headers' allowance (`gateway.max_body_bytes` leaves 16 KiB for them).
const MAX_REASON: usize = 500;

/// What a rule does when it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    Points(f64),
    Mandatory(Channel),
}

/// An HS code range by prefixes: `0201-0206` holds every code from `0201...` to `0206...`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HsRange {
    low: String,
    high: String,
}

impl HsRange {
    fn parse(text: &str) -> Result<Self, String> {
        let (low, high) = text.split_once('-').unwrap_or((text, text));
        let (low, high) = (low.trim(), high.trim());
        let digits = |s: &str| (2..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(low) || !digits(high) || low.len() != high.len() || low > high {
            return Err(format!(
                "HS codes {text:?}: a prefix of 2 to 10 digits (\"0201\") or a range of prefixes of one length (\"0201-0206\")"
            ));
        }
        Ok(HsRange { low: low.to_owned(), high: high.to_owned() })
    }

    fn holds(&self, code: &str) -> bool {
        code.len() >= self.low.len() && {
            let prefix = &code[..self.low.len()];
            self.low.as_str() <= prefix && prefix <= self.high.as_str()
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub reason: String,
    pub effect: Effect,
    agency_kinds: Vec<String>,
    document_types: Vec<String>,
    hs: Vec<HsRange>,
    origins: Vec<String>,
    destinations: Vec<String>,
    origins_of_goods: Vec<String>,
    border_posts: Vec<String>,
    modes: Vec<String>,
    parties: Vec<String>,
    platforms: Vec<String>,
    value_below: Option<f64>,
    value_above: Option<f64>,
    per_kg_below: Option<f64>,
    per_kg_above: Option<f64>,
    value_near: Option<ValueNearConfig>,
}

impl Rule {
    /// The facts its conditions read.
    fn reads(&self) -> BTreeSet<Fact> {
        let mut f = BTreeSet::new();
        let mut when = |cond: bool, fact: Fact| {
            if cond {
                f.insert(fact);
            }
        };
        when(!self.hs.is_empty(), Fact::HsCodes);
        when(!self.origins_of_goods.is_empty(), Fact::OriginOfGoods);
        when(!self.border_posts.is_empty(), Fact::BorderPost);
        when(!self.modes.is_empty(), Fact::ModeOfTransport);
        when(!self.parties.is_empty(), Fact::Parties);
        when(!self.platforms.is_empty(), Fact::Platform);
        when(self.value_below.is_some() || self.value_above.is_some() || self.value_near.is_some(), Fact::Value);
        let per_kg = self.per_kg_below.is_some() || self.per_kg_above.is_some();
        when(per_kg, Fact::Value);
        when(per_kg, Fact::GrossMass);
        f
    }

    /// Whether every condition holds for a document with facts `f`, sent to an agency of kind
    /// `agency_kind`. A condition on a fact the document does not state does not hold.
    pub fn holds(&self, f: &RiskFacts, agency_kind: &str) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        let any_opt = |list: &[String], v: &Option<String>| list.is_empty() || v.as_deref().is_some_and(|v| list.iter().any(|x| x == v));
        let bound = |b: Option<f64>, v: Option<f64>, below: bool| match b {
            None => true,
            Some(b) => v.is_some_and(|v| if below { v < b } else { v > b }),
        };
        let per_kg = match (f.value, f.gross_mass) {
            (Some(v), Some(m)) if m > 0.0 => Some(v / m),
            _ => None,
        };
        any(&self.agency_kinds, agency_kind)
            && any(&self.document_types, &f.document_type)
            && any(&self.origins, &f.origin)
            && any(&self.destinations, &f.destination)
            && (self.hs.is_empty() || f.hs_codes.iter().any(|c| self.hs.iter().any(|r| r.holds(c))))
            && (self.origins_of_goods.is_empty() || f.origins_of_goods.iter().any(|o| self.origins_of_goods.contains(o)))
            && any_opt(&self.border_posts, &f.border_post)
            && any_opt(&self.modes, &f.mode_of_transport)
            && (self.parties.is_empty() || f.parties.iter().any(|(_, p)| self.parties.contains(p)))
            && any_opt(&self.platforms, &f.platform)
            && bound(self.value_below, f.value, true)
            && bound(self.value_above, f.value, false)
            && bound(self.per_kg_below, per_kg, true)
            && bound(self.per_kg_above, per_kg, false)
            && self.value_near.is_none_or(|n| f.value.is_some_and(|v| v < n.threshold && v >= n.threshold * (1.0 - n.within)))
    }
}

/// The region's rules, in the order written.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    rules: Vec<Rule>,
}

/// What the rules say of one document for one agency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// The sum of the points of the rules that hold.
    pub score: f64,
    /// The strictest mandatory channel of the rules that hold.
    pub mandatory: Option<Channel>,
    /// The rules that hold, by name, with their points (0 for a mandatory one) and reason.
    pub hits: Vec<(String, f64, String)>,
}

impl Profile {
    /// Compiles and checks `rules` against the types `readings` describes and the region's
    /// agency kinds; an error names the rule.
    pub fn new(rules: &[RiskRuleConfig], readings: &FactReadings, agency_kinds: &BTreeSet<String>) -> Result<Self, String> {
        let mut names = BTreeSet::new();
        let mut out = Vec::with_capacity(rules.len());
        for c in rules {
            let at = format!("[[risk.rules]] {:?}", c.name);
            if c.name.trim().is_empty() {
                return Err("[[risk.rules]]: every rule needs a name".into());
            }
            if !names.insert(c.name.clone()) {
                return Err(format!("{at}: two rules have this name; a reason given to an agency must name one"));
            }
            if c.name.chars().count() > MAX_NAME || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                return Err(format!("{at}: a name of at most {MAX_NAME} letters, digits, '-' and '_'"));
            }
            if c.reason.trim().is_empty() || c.reason.chars().count() > MAX_REASON {
                return Err(format!("{at}: give its reason, in words an inspector reads, in at most {MAX_REASON} characters"));
            }
            let effect = match (c.points, c.channel.as_deref()) {
                (Some(p), None) if p.is_finite() && p != 0.0 => Effect::Points(p),
                (None, Some("yellow")) => Effect::Mandatory(Channel::Yellow),
                (None, Some("red")) => Effect::Mandatory(Channel::Red),
                (None, Some(other)) => return Err(format!("{at}: channel {other:?}: \"yellow\" or \"red\"")),
                (Some(_), Some(_)) => return Err(format!("{at}: give points or a channel, not both")),
                _ => return Err(format!("{at}: give points (a number other than 0) or a channel (\"yellow\", \"red\")")),
            };
            for kind in &c.agency_kinds {
                if !agency_kinds.contains(kind) {
                    return Err(format!("{at}: agency kind {kind:?} is not a kind of the region's agencies ({})", join(agency_kinds)));
                }
            }
            for t in &c.document_types {
                if !readings.types().any(|k| k == t) {
                    return Err(format!("{at}: document type {t:?} is not described ([document_types.{t}])"));
                }
            }
            let countries = |what: &str, list: &[String]| -> Result<Vec<String>, String> {
                for c in list {
                    if crate::domain::CountryCode::parse(c).is_err() {
                        return Err(format!("{at}: {what} {c:?}: a country code of two capital letters"));
                    }
                }
                Ok(list.to_vec())
            };
            let finite = |what: &str, v: Option<f64>| -> Result<Option<f64>, String> {
                match v {
                    Some(x) if !x.is_finite() || x < 0.0 => Err(format!("{at}: {what} must be a number of at least 0")),
                    v => Ok(v),
                }
            };
            if let Some(n) = c.value_near {
                if !(n.threshold > 0.0 && n.threshold.is_finite() && n.within > 0.0 && n.within < 1.0) {
                    return Err(format!("{at}: value_near: a threshold above 0 and `within` a share between 0 and 1 (0.1: the 10% under it)"));
                }
            }
            let rule = Rule {
                name: c.name.clone(),
                reason: c.reason.clone(),
                effect,
                agency_kinds: c.agency_kinds.clone(),
                document_types: c.document_types.clone(),
                hs: c.hs_codes.iter().map(|h| HsRange::parse(h).map_err(|e| format!("{at}: {e}"))).collect::<Result<_, _>>()?,
                origins: countries("origin", &c.origins)?,
                destinations: countries("destination", &c.destinations)?,
                origins_of_goods: countries("origin of goods", &c.origins_of_goods)?,
                border_posts: c.border_posts.clone(),
                modes: c.modes_of_transport.clone(),
                parties: c.parties.clone(),
                platforms: c.platforms.clone(),
                value_below: finite("value_below", c.value_below)?,
                value_above: finite("value_above", c.value_above)?,
                per_kg_below: finite("value_per_kg_below", c.value_per_kg_below)?,
                per_kg_above: finite("value_per_kg_above", c.value_per_kg_above)?,
                value_near: c.value_near,
            };
            // Every type it names must state what it reads; naming none, it applies to those that do.
            let reads = rule.reads();
            let mut rule = rule;
            if c.document_types.is_empty() {
                rule.document_types = readings.types().filter(|t| reads.iter().all(|f| readings.describes(t, *f))).map(str::to_owned).collect();
                if rule.document_types.is_empty() {
                    let facts: Vec<&str> = reads.iter().map(|f| f.words()).collect();
                    return Err(format!("{at}: reads the {} of a document, which no document type describes together", facts.join(", ")));
                }
            }
            for fact in &reads {
                if let Some(t) = c.document_types.iter().find(|t| !readings.describes(t, *fact)) {
                    return Err(format!(
                        "{at}: reads the {} of a document, which [document_types.{t}] does not describe: add {} to that type, \
                         or take it out of the rule's document_types",
                        fact.words(),
                        fact.setting()
                    ));
                }
            }
            out.push(rule);
        }
        Ok(Profile { rules: out })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What the rules say of a document with facts `f` for an agency of kind `agency_kind`.
    pub fn assess(&self, f: &RiskFacts, agency_kind: &str) -> Assessment {
        let mut a = Assessment::default();
        for r in self.rules.iter().filter(|r| r.holds(f, agency_kind)) {
            match r.effect {
                Effect::Points(p) => {
                    a.score += p;
                    a.hits.push((r.name.clone(), p, r.reason.clone()));
                }
                Effect::Mandatory(c) => {
                    a.mandatory = a.mandatory.max(Some(c));
                    a.hits.push((r.name.clone(), 0.0, r.reason.clone()));
                }
            }
        }
        a
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}
