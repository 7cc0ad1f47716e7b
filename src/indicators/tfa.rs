//! The WTO Trade Facilitation Agreement as practiced, measured from the exchange's own events
//! (docs/tfa.md): per article, by the importing country or by border post, over a period, beside
//! the region's median of the groups and the period before. Measured here, from the release-time
//! facts every consignment already keeps (`super`):
//!
//! - **Art. 7.1, pre-arrival processing**: of the consignments whose goods' arrival is known, the
//!   share lodged before it, and how long before (median, p90);
//! - **Art. 7.6, average release time**: arrival to release, the figures of
//!   `/v1/indicators/release-times` (`interval=arrival-to-release`);
//! - **Art. 7.8, expedited shipments**: lodgement to release of the consignments whose lead
//!   document is of an expedited type (e-commerce parcels by default) against the others';
//! - **Art. 8, border agency cooperation**: for a released consignment that two agencies or more
//!   decided, the time from the first agency's decision to the last's.
//!
//! Each set of values gives the same statistics as the release times (`super::statistics`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::figures::{AgencyFacts, ConsignmentFacts, Dimension};
use super::statistics::stats;
use crate::clock::Millis;

/// What TFA figures are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TfaGroup {
    /// The importing country: the consignment's destination.
    Country,
    /// The border post its goods crossed (`unknown` without a document naming one).
    BorderPost,
}

impl TfaGroup {
    pub fn parse(s: &str) -> Option<TfaGroup> {
        match s {
            "country" => Some(TfaGroup::Country),
            "borderPost" => Some(TfaGroup::BorderPost),
            _ => None,
        }
    }

    /// The group `c` is in.
    fn of(self, c: &impl ConsignmentFacts) -> String {
        match self {
            TfaGroup::Country => {
                let corridor = c.segment(Dimension::Corridor);
                corridor.rsplit('-').next().unwrap_or("unknown").to_owned()
            }
            TfaGroup::BorderPost => c.segment(Dimension::BorderPost).into_owned(),
        }
    }
}

/// The document type of expedited shipments when a request names none.
pub const DEFAULT_EXPEDITED_TYPE: &str = "ecommerceShipment";

/// What is asked: the grouping, and which document types are expedited shipments.
#[derive(Debug, Clone)]
pub struct TfaRequest {
    pub group_by: TfaGroup,
    pub expedited_types: Vec<String>,
}

/// The width of the bins of a mode that the monitor does not give: wide, so computing the
/// statistics costs no map of every value.
const UNUSED_MODE_BIN_MS: i64 = 3_600_000;

/// The figures of one set of intervals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Consignments counted.
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
}

impl Timing {
    fn of(mut values: Vec<i64>) -> Timing {
        let s = stats(&mut values, UNUSED_MODE_BIN_MS);
        Timing {
            count: s.count,
            mean_ms: s.summary.as_ref().map(|s| s.mean_ms),
            median_ms: s.summary.as_ref().map(|s| s.median_ms),
            p90_ms: s.summary.as_ref().map(|s| s.p90_ms),
        }
    }
}

/// Art. 7.1: pre-arrival processing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreArrival {
    /// Consignments whose goods' arrival is known.
    pub with_arrival: usize,
    /// The share of them lodged before the goods arrived (0 to 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// How long before arrival those were lodged.
    pub lead_time: Timing,
}

/// Art. 7.8: expedited shipments against the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expedited {
    /// Lodgement to release of the consignments of an expedited type.
    pub expedited: Timing,
    /// Lodgement to release of the others.
    pub others: Timing,
    /// The expedited median over the others' (under 1: expedited are released faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ratio: Option<f64>,
}

/// The articles' figures of one set of consignments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Articles {
    /// Consignments lodged in the period.
    pub consignments: usize,
    /// Art. 7.1.
    pub pre_arrival: PreArrival,
    /// Art. 7.6: arrival to release.
    pub release_time: Timing,
    /// Art. 7.8.
    pub expedited: Expedited,
    /// Art. 8: first to last agency decision of a released consignment decided by two
    /// agencies or more.
    pub agency_spread: Timing,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TfaCell {
    /// The country (ISO 3166-1 alpha-2) or border post.
    pub group: String,
    pub articles: Articles,
}

/// The region's median of its groups' figures, each over the groups that have one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionMedian {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_arrival_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_arrival_lead_median_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_time_mean_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expedited_median_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency_spread_median_ms: Option<f64>,
}

/// The figures of one period.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TfaPeriod {
    pub from: String,
    pub to: String,
    /// Every consignment, whatever its group.
    pub region: Articles,
    /// One per group, in the group's order.
    pub groups: Vec<TfaCell>,
    /// The median of the groups' figures: where each group stands against its neighbours.
    pub region_median: RegionMedian,
}

/// The answer: the period asked for, and the one of the same length just before it (the trend).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TfaFigures {
    pub group_by: TfaGroup,
    /// The document types counted as expedited shipments (Art. 7.8).
    pub expedited_types: Vec<String>,
    pub current: TfaPeriod,
    pub previous: TfaPeriod,
    /// What each figure is: docs/tfa.md says it at length.
    pub method: &'static str,
}

/// How the figures are defined, as every answer states it.
pub const METHOD: &str = "Consignments are selected and put in periods by their lodgement time. Art. 7.1: of the consignments \
whose goods' arrival is known (the first answer to a document naming a border post), the share lodged before arrival, and \
arrival minus lodgement for those. Art. 7.6: arrival to release. Art. 7.8: lodgement to release, for consignments whose lead \
document is of an expedited type, against the others. Art. 8: for released consignments decided by two agencies or more, the \
last agency decision minus the first. Country: the destination. Quantiles by linear interpolation between closest ranks; the \
region's median is the median of the groups that have the figure.";

/// The values one set of consignments gives, before their statistics.
#[derive(Default)]
struct Tally {
    consignments: usize,
    with_arrival: usize,
    leads: Vec<i64>,
    release: Vec<i64>,
    expedited: Vec<i64>,
    others: Vec<i64>,
    spreads: Vec<i64>,
}

impl Tally {
    fn add(&mut self, c: &impl ConsignmentFacts, decisions: &[Millis], expedited: bool) {
        self.consignments += 1;
        if let Some(arrived) = c.arrived_at() {
            self.with_arrival += 1;
            if c.lodged_at() < arrived {
                self.leads.push(arrived - c.lodged_at());
            }
        }
        let Some(released) = c.released_at() else { return };
        if let Some(arrived) = c.arrived_at() {
            self.release.push(released - arrived);
        }
        let lodgement_to_release = released - c.lodged_at();
        if expedited { &mut self.expedited } else { &mut self.others }.push(lodgement_to_release);
        if let (Some(first), Some(last), true) = (decisions.iter().min(), decisions.iter().max(), decisions.len() >= 2) {
            self.spreads.push(last - first);
        }
    }

    fn articles(self) -> Articles {
        let share = (self.with_arrival > 0).then(|| self.leads.len() as f64 / self.with_arrival as f64);
        let (expedited, others) = (Timing::of(self.expedited), Timing::of(self.others));
        let median_ratio = match (expedited.median_ms, others.median_ms) {
            (Some(e), Some(o)) if o > 0.0 => Some(e / o),
            _ => None,
        };
        Articles {
            consignments: self.consignments,
            pre_arrival: PreArrival { with_arrival: self.with_arrival, share, lead_time: Timing::of(self.leads) },
            release_time: Timing::of(self.release),
            expedited: Expedited { expedited, others, median_ratio },
            agency_spread: Timing::of(self.spreads),
        }
    }
}

/// The median of the values given (none: none).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The median over the groups that have the figure (not a group of consignments whose group is
/// not known: those are no border post).
fn region_median(groups: &[TfaCell]) -> RegionMedian {
    let known = || groups.iter().filter(|g| g.group != "unknown");
    let of = |f: &dyn Fn(&Articles) -> Option<f64>| median(known().filter_map(|g| f(&g.articles)).collect());
    RegionMedian {
        pre_arrival_share: of(&|a| a.pre_arrival.share),
        pre_arrival_lead_median_ms: of(&|a| a.pre_arrival.lead_time.median_ms),
        release_time_mean_ms: of(&|a| a.release_time.mean_ms),
        expedited_median_ratio: of(&|a| a.expedited.median_ratio),
        agency_spread_median_ms: of(&|a| a.agency_spread.median_ms),
    }
}

/// The figures of one period: `consignments` are those lodged in it that the caller may see,
/// each with its agencies' parts.
pub fn period<C, A>(request: &TfaRequest, consignments: impl Iterator<Item = (C, Vec<A>)>, from: Millis, to: Millis) -> TfaPeriod
where
    C: ConsignmentFacts,
    A: AgencyFacts,
{
    let mut region = Tally::default();
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for (c, parts) in consignments {
        let decisions: Vec<Millis> = parts.iter().filter_map(AgencyFacts::decided_at).collect();
        let expedited = request.expedited_types.iter().any(|t| *t == c.segment(Dimension::DocumentType));
        region.add(&c, &decisions, expedited);
        groups.entry(request.group_by.of(&c)).or_default().add(&c, &decisions, expedited);
    }
    let groups: Vec<TfaCell> = groups.into_iter().map(|(group, t)| TfaCell { group, articles: t.articles() }).collect();
    let region = region.articles();
    TfaPeriod { from: crate::clock::rfc3339(from), to: crate::clock::rfc3339(to), region, region_median: region_median(&groups), groups }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    struct C {
        lodged: Millis,
        arrived: Option<Millis>,
        released: Option<Millis>,
        corridor: &'static str,
        post: &'static str,
        kind: &'static str,
    }

    impl ConsignmentFacts for C {
        fn lodged_at(&self) -> Millis {
            self.lodged
        }
        fn arrived_at(&self) -> Option<Millis> {
            self.arrived
        }
        fn released_at(&self) -> Option<Millis> {
            self.released
        }
        fn hold_ms(&self) -> i64 {
            0
        }
        fn query_trader_ms(&self) -> i64 {
            0
        }
        fn query_agency_ms(&self) -> i64 {
            0
        }
        fn segment(&self, d: Dimension) -> Cow<'_, str> {
            Cow::Borrowed(match d {
                Dimension::Corridor => self.corridor,
                Dimension::BorderPost => self.post,
                Dimension::DocumentType => self.kind,
                _ => "unknown",
            })
        }
        fn owner(&self) -> Cow<'_, str> {
            Cow::Borrowed("t")
        }
        fn decided_at(&self) -> Option<Millis> {
            self.released
        }
    }

    struct A(Option<Millis>);

    impl AgencyFacts for A {
        fn agency(&self) -> Cow<'_, str> {
            Cow::Borrowed("a")
        }
        fn agency_kind(&self) -> Cow<'_, str> {
            Cow::Borrowed("customs")
        }
        fn routed_at(&self) -> Millis {
            0
        }
        fn first_answer_at(&self) -> Option<Millis> {
            self.0
        }
        fn decided_at(&self) -> Option<Millis> {
            self.0
        }
        fn hold_ms(&self) -> i64 {
            0
        }
        fn query_trader_ms(&self) -> i64 {
            0
        }
        fn query_agency_ms(&self) -> i64 {
            0
        }
    }

    #[test]
    fn each_article_from_a_known_set_by_country_with_the_regions_median() {
        let request = TfaRequest { group_by: TfaGroup::Country, expedited_types: vec!["ecommerceShipment".into()] };
        let c = |lodged, arrived, released, corridor, kind| C { lodged, arrived, released, corridor, post: "BRURG", kind };
        let rows = vec![
            // Lodged 100 before arrival, released 50 after; two agencies decided 10 apart.
            (c(0, Some(100), Some(150), "AR-BR", "customsDeclaration"), vec![A(Some(140)), A(Some(150))]),
            // Lodged after arrival; one agency.
            (c(200, Some(100), Some(300), "AR-BR", "customsDeclaration"), vec![A(Some(300))]),
            // A parcel, no arrival known, released 20 after lodgement.
            (c(0, None, Some(20), "UY-BR", "ecommerceShipment"), vec![A(Some(20)), A(None)]),
            // Not released: counted in 7.1 only.
            (c(0, Some(300), None, "BR-UY", "customsDeclaration"), vec![A(None)]),
        ];
        let p = period(&request, rows.into_iter(), 0, 1000);
        let r = &p.region;
        assert_eq!(r.consignments, 4);
        assert_eq!((r.pre_arrival.with_arrival, r.pre_arrival.share), (3, Some(2.0 / 3.0)));
        assert_eq!((r.pre_arrival.lead_time.count, r.pre_arrival.lead_time.median_ms), (2, Some(200.0)));
        assert_eq!((r.release_time.count, r.release_time.mean_ms), (2, Some(125.0)));
        assert_eq!((r.expedited.expedited.median_ms, r.expedited.others.median_ms), (Some(20.0), Some(125.0)));
        assert_eq!(r.expedited.median_ratio, Some(20.0 / 125.0));
        assert_eq!((r.agency_spread.count, r.agency_spread.median_ms), (1, Some(10.0)), "only the consignment two agencies decided");
        let groups: Vec<(&str, usize)> = p.groups.iter().map(|g| (g.group.as_str(), g.articles.consignments)).collect();
        assert_eq!(groups, [("BR", 3), ("UY", 1)], "by destination");
        // BR: 1 of 2 with arrival pre-arrival; UY: 1 of 1.
        assert_eq!(p.region_median.pre_arrival_share, Some(0.75));
        assert_eq!(p.region_median.release_time_mean_ms, Some(125.0), "UY has none: the median of BR's alone");
    }

    #[test]
    fn the_median_of_an_even_number_of_groups_is_the_midpoint() {
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
