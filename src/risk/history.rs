//! What inspections have found, per party, HS heading, route and platform: the histories risk
//! learns from, and the features a model reads from them.
//!
//! A rate is smoothed towards the region's mean: `(irregular + PRIOR × mean) / (inspected +
//! PRIOR)`, so a party is worth [`PRIOR`] inspections of the region's mean before its own count
//! and one finding neither condemns a new party nor clears it. The features of a document are
//! read from the histories as they stood before its own finding (training walks the findings in
//! time order), so that no finding teaches the model its own answer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::RiskFacts;

/// The party a document's type names `seller`: whom a platform's report of its sellers counts by.
pub const SELLER: &str = "seller";

/// How many inspections' worth of the region's mean a history starts from.
pub const PRIOR: f64 = 20.0;

/// What a finding is kept with: its document's facts as the histories and the model read them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingFacts {
    /// Every party named, `SCHEME:VALUE`, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<String>,
    /// The parties named as the document's `seller` (its type's risk table), each once: what a
    /// platform's report of its sellers counts by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sellers: Vec<String>,
    /// Every line's HS heading (4 digits), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headings: Vec<String>,
    /// `ORIGIN-DESTINATION`, and `@POST` when a border post is named.
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Kilograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass: Option<f64>,
}

impl FindingFacts {
    pub fn of(f: &RiskFacts) -> FindingFacts {
        let mut parties: Vec<String> = f.parties.iter().map(|(_, p)| p.clone()).collect();
        parties.sort();
        parties.dedup();
        let mut sellers: Vec<String> = f.parties.iter().filter(|(role, _)| role == SELLER).map(|(_, p)| p.clone()).collect();
        sellers.sort();
        sellers.dedup();
        let mut headings: Vec<String> = f.hs_codes.iter().filter(|c| c.len() >= 4).map(|c| c[..4].to_owned()).collect();
        headings.sort();
        headings.dedup();
        let route = match &f.border_post {
            Some(post) => format!("{}-{}@{post}", f.origin, f.destination),
            None => format!("{}-{}", f.origin, f.destination),
        };
        FindingFacts { parties, sellers, headings, route, platform: f.platform.clone(), value: f.value, mass: f.gross_mass }
    }
}

/// Inspections and irregularities found, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub inspected: u64,
    pub irregular: u64,
}

impl Tally {
    fn add(&mut self, irregular: bool) {
        self.inspected += 1;
        self.irregular += u64::from(irregular);
    }
}

/// What a history is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Party,
    Heading,
    Route,
    Platform,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [Dimension::Party, Dimension::Heading, Dimension::Route, Dimension::Platform];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Party => "party",
            Dimension::Heading => "hs-heading",
            Dimension::Route => "route",
            Dimension::Platform => "platform",
        }
    }
}

/// The histories of every party, heading, route and platform found so far.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    tallies: HashMap<(Dimension, String), Tally>,
    region: Tally,
}

/// The worst history a document has in one dimension: its smoothed rate, its own count, and
/// whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub rate: f64,
    pub inspected: u64,
    pub key: String,
}

impl Histories {
    /// Counts a finding.
    pub fn add(&mut self, f: &FindingFacts, irregular: bool) {
        self.region.add(irregular);
        for (dimension, key) in keys(f) {
            self.tallies.entry((dimension, key.to_owned())).or_default().add(irregular);
        }
    }

    /// The findings counted.
    pub fn findings(&self) -> u64 {
        self.region.inspected
    }

    /// The region's irregularity rate, over every finding (a prior of one irregularity in two
    /// when there is none).
    pub fn mean(&self) -> f64 {
        (self.region.irregular as f64 + 1.0) / (self.region.inspected as f64 + 2.0)
    }

    /// `key`'s rate in `dimension`, smoothed towards the region's mean, and its own count.
    pub fn rate(&self, dimension: Dimension, key: &str) -> (f64, u64) {
        let t = self.tallies.get(&(dimension, key.to_owned())).copied().unwrap_or_default();
        ((t.irregular as f64 + PRIOR * self.mean()) / (t.inspected as f64 + PRIOR), t.inspected)
    }

    /// The highest smoothed rate among the document's keys in `dimension`; none when it names none.
    pub fn worst(&self, f: &FindingFacts, dimension: Dimension) -> Option<Evidence> {
        keys(f)
            .filter(|(d, _)| *d == dimension)
            .map(|(_, key)| {
                let (rate, inspected) = self.rate(dimension, key);
                Evidence { rate, inspected, key: key.to_owned() }
            })
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }
}

/// The keys of a document's histories.
fn keys(f: &FindingFacts) -> impl Iterator<Item = (Dimension, &str)> {
    f.parties
        .iter()
        .map(|p| (Dimension::Party, p.as_str()))
        .chain(f.headings.iter().map(|h| (Dimension::Heading, h.as_str())))
        .chain(std::iter::once((Dimension::Route, f.route.as_str())))
        .chain(f.platform.iter().map(|p| (Dimension::Platform, p.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(party: &str, heading: &str) -> FindingFacts {
        FindingFacts { parties: vec![party.into()], headings: vec![heading.into()], route: "AR-BR".into(), ..Default::default() }
    }

    #[test]
    fn a_rate_is_smoothed_towards_the_regions_mean_so_one_finding_decides_nothing() {
        let mut h = Histories::default();
        // The region: 100 findings, 10 irregular, none of them the new party's.
        for i in 0..100 {
            h.add(&facts(&format!("AR-CUIT:{i}"), "8517"), i % 10 == 0);
        }
        let mean = h.mean();
        assert!((mean - 11.0 / 102.0).abs() < 1e-12);
        let (unknown, n) = h.rate(Dimension::Party, "AR-CUIT:new");
        assert!((unknown - mean).abs() < 1e-12 && n == 0, "a party never inspected is the region's mean");
        h.add(&facts("AR-CUIT:new", "8517"), true);
        let (once, n) = h.rate(Dimension::Party, "AR-CUIT:new");
        assert_eq!(n, 1);
        assert!(once > mean && once < 0.2, "one irregularity moves it, a little: {once}");
        for _ in 0..30 {
            h.add(&facts("AR-CUIT:new", "8517"), true);
        }
        let (often, _) = h.rate(Dimension::Party, "AR-CUIT:new");
        assert!(often > 0.55, "thirty-one in a row: most of the way to 1: {often}");
        // The worst of a document's parties is its evidence.
        let two = FindingFacts { parties: vec!["AR-CUIT:1".into(), "AR-CUIT:new".into()], ..facts("x", "0201") };
        let worst = h.worst(&two, Dimension::Party).unwrap();
        assert_eq!((worst.key.as_str(), worst.inspected), ("AR-CUIT:new", 31));
        assert!(h.worst(&FindingFacts::default(), Dimension::Platform).is_none());
    }
}
