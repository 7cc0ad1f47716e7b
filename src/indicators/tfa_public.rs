//! The TFA monitor's public view (`GET /v1/public/indicators/tfa`): what anyone may read of the
//! articles the monitor measures (`super::tfa`), by country and by border post beside the
//! region's median, for a calendar month and the month before, under the public release times'
//! rules (`super::public`), so that no answer, nor any set of answers, gives away one
//! consignment's or one trader's facts:
//!
//! - **A fixed set of tables.** Each indicator over every consignment of a month: overall, by
//!   country (the destination) and by border post; no other grouping and no other period.
//! - **Fixed once published.** A month is published once it has ended and the region's settling
//!   time has passed, and counts only the consignments released by then (a released consignment
//!   takes no new version; one not released, or refused, may: a declaration, an amendment or a
//!   withdrawal would move its lodgement, its lead document, its parts and its formalities).
//!   Polling a month shows nothing entering it.
//! - **Small cells suppressed, and no cell follows from the others.** Each indicator's tables
//!   are one family of `super::public`, suppressed as that module says, counting consignments
//!   (an agency's part is a value of its consignment): a cell of fewer consignments than the
//!   threshold, or of fewer besides its largest trader's, or of one trader's alone; then more,
//!   until no suppressed cell's count or sum follows from the cells shown. The pre-arrival lead
//!   time's count is the pre-arrival share's numerator: a cell suppressed in either is
//!   suppressed in both, and each audited again with it. The region's median is of the cells
//!   shown.
//! - **No sum of times.** Durations are published as a median and a p90 (order statistics: each
//!   may be one consignment's time, not saying whose), never a mean; and Art. 7.6 and 7.8 are
//!   the public release times' figures (`links`): release times by country here would be new
//!   sums of the values those tables publish, and give away by difference what they suppress.
//! - **No hit rate.** An agency reports what an inspection found after its decision, even after
//!   release, and the facts keep no time for it: a published hit rate could still move. By
//!   source, the random selections' beside all would also give the targeted ones' away.

use serde::Serialize;

use super::figures::{AgencyFacts, Cell, ConsignmentFacts, Dimension};
use super::public::{Audited, Family, Owners, Period, Table, MIN_MODE_BIN_MS};
use super::tfa::{median, Reading, TfaGroup, TfaRequest};
use crate::clock::{rfc3339, Millis};
use crate::risk::Channel;

/// How an indicator's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PublicUnit {
    /// A share, 0 to 1 (the mean of each one's 1 or 0).
    Share,
    /// A count per consignment (the mean).
    PerConsignment,
    /// A duration: the median, in ms (and the 90th percentile).
    Duration,
}

/// One indicator the public view publishes.
#[derive(Debug)]
pub struct PublicIndicator {
    pub key: &'static str,
    pub article: &'static str,
    pub unit: PublicUnit,
    /// What is counted, and when it is final.
    pub definition: &'static str,
}

const PRE_ARRIVAL_SHARE: usize = 0;
const PRE_ARRIVAL_LEAD: usize = 1;
const PHYSICAL: usize = 2;
const DOCUMENTARY: usize = 3;
const STANDING: usize = 4;
const AGENCY_SPREAD: usize = 5;
const JOINT: usize = 6;
const DOCUMENTS: usize = 7;
const AMENDMENTS: usize = 8;
const QUERIES: usize = 9;
const RESUBMITTED: usize = 10;
const SINGLE_WINDOW: usize = 11;

/// The indicators, in the order of [`PublicTfa`]'s answers (the constants above index them).
pub const PUBLIC_INDICATORS: [PublicIndicator; 12] = [
    PublicIndicator {
        key: "preArrivalShare",
        article: "7.1",
        unit: PublicUnit::Share,
        definition: "Of the consignments released by the month's close whose goods' arrival is known, the share lodged before it.",
    },
    PublicIndicator {
        key: "preArrivalLeadTime",
        article: "7.1",
        unit: PublicUnit::Duration,
        definition: "For the consignments released by the close that were lodged before their goods arrived, arrival minus lodgement.",
    },
    PublicIndicator {
        key: "physicalInspectionShare",
        article: "7.4",
        unit: PublicUnit::Share,
        definition: "Of the agencies' parts in the consignments released by the close, the share their selection sent to physical inspection (red).",
    },
    PublicIndicator {
        key: "documentaryCheckShare",
        article: "7.4",
        unit: PublicUnit::Share,
        definition: "Of the agencies' parts in the consignments released by the close, the share their selection sent to a documentary check (yellow).",
    },
    PublicIndicator {
        key: "standingInstructionShare",
        article: "7.4",
        unit: PublicUnit::Share,
        definition: "Of the agencies' parts in the consignments released by the close, the share a standing instruction decided.",
    },
    PublicIndicator {
        key: "agencySpread",
        article: "8",
        unit: PublicUnit::Duration,
        definition: "For the consignments released by the close that two agencies or more decided, the last agency's decision minus the first's.",
    },
    PublicIndicator {
        key: "jointInspectionShare",
        article: "8",
        unit: PublicUnit::Share,
        definition: "Of the consignments released by the close that two agencies or more sent to physical inspection, the share whose inspecting agencies decided within the region's window of each other.",
    },
    PublicIndicator {
        key: "documentsPerConsignment",
        article: "10.1",
        unit: PublicUnit::PerConsignment,
        definition: "For the consignments released by the close, documents per consignment, each once whatever its versions.",
    },
    PublicIndicator {
        key: "amendmentsPerConsignment",
        article: "10.1",
        unit: PublicUnit::PerConsignment,
        definition: "For the consignments released by the close, amendments per consignment.",
    },
    PublicIndicator {
        key: "queriesPerConsignment",
        article: "10.1",
        unit: PublicUnit::PerConsignment,
        definition: "For the consignments released by the close, agencies' queries per consignment.",
    },
    PublicIndicator {
        key: "resubmittedShare",
        article: "10.1",
        unit: PublicUnit::Share,
        definition: "Of the consignments released by the close, the share with a submission answering a rejection.",
    },
    PublicIndicator {
        key: "singleWindowShare",
        article: "10.4",
        unit: PublicUnit::Share,
        definition: "Of the consignments released by the close, the share whose documents were each submitted once: no amendment and no resubmission.",
    },
];

/// The groupings published.
pub const PUBLIC_GROUPS: [TfaGroup; 2] = [TfaGroup::Country, TfaGroup::BorderPost];

/// Where the public figures of Art. 7.6 and 7.8 are: the public release times.
pub const LINKS: [(&str, &str); 2] = [
    ("7.6", "/v1/public/indicators/release-times?interval=arrival-to-release"),
    ("7.8", "/v1/public/indicators/release-times?interval=lodgement-to-release&groupBy=documentType"),
];

/// How the public view is built, as every answer states it.
pub const METHOD: &str = "A calendar month's consignments, by their lodgement time, as they stood when the month closed (its end \
and the region's settling time): only the consignments released by then are counted (a released consignment takes no new \
version), so a published figure does not change. \
Each indicator is published overall, by country (the destination) and by border post; a cell of fewer consignments than the \
threshold, or of fewer besides its largest trader's, or of one trader's alone, is suppressed, and others with it until no \
suppressed cell's count or sum follows from those shown. Shares and per-consignment figures are means; durations are \
medians (and p90), by linear interpolation between closest ranks. The region's median is of the shown cells, leaving out \
`unknown`. Art. 7.6 and 7.8 are the public release times' figures (links). Definitions and caveats: docs/tfa.md.";

/// Reads one consignment's values: `push(indicator, value)` for each value it gives, counted
/// only once they can no longer change: once it was released by the close (a released
/// consignment takes no new version; one not released may take a declaration, an amendment or
/// a withdrawal that moves its lodgement, its lead document, its parts and its formalities).
fn read<C, A>(c: &C, parts: impl Iterator<Item = A> + Clone, request: &TfaRequest, closed_before: Millis, mut push: impl FnMut(usize, i64))
where
    C: ConsignmentFacts,
    A: AgencyFacts,
{
    let closed = |at: Millis| at < closed_before;
    if !c.released_at().is_some_and(closed) {
        return;
    }
    let lodged = c.lodged_at();
    if let Some(arrived) = c.arrived_at().filter(|a| closed((*a).max(lodged))) {
        push(PRE_ARRIVAL_SHARE, i64::from(lodged < arrived));
        if lodged < arrived {
            push(PRE_ARRIVAL_LEAD, arrived - lodged);
        }
    }
    let reading = Reading::of(request, c, parts.clone());
    for part in parts {
        let (Some(t), Some(decided)) = (part.treatment(), part.decided_at()) else { continue };
        if !closed(decided) {
            continue;
        }
        push(PHYSICAL, i64::from(t.channel == Some(Channel::Red)));
        push(DOCUMENTARY, i64::from(t.channel == Some(Channel::Yellow)));
        push(STANDING, i64::from(t.standing_instruction));
    }
    let decisions = &reading.decisions;
    if decisions.count >= 2 && closed(decisions.last) {
        push(AGENCY_SPREAD, decisions.last - decisions.first);
    }
    let (reds, all_decided) = &reading.red;
    if reds.count >= 2 && *all_decided && closed(reds.last) {
        push(JOINT, i64::from(reds.last - reds.first <= request.joint_window_ms));
    }
    // Formalities left out until computed whole (facts kept before the monitor: docs/tfa.md).
    if let Some(f) = c.formalities().filter(|_| reading.computed) {
        push(DOCUMENTS, f.documents);
        push(AMENDMENTS, f.amendments);
        push(QUERIES, f.queries);
        push(RESUBMITTED, i64::from(f.resubmissions > 0));
        push(SINGLE_WINDOW, i64::from(f.amendments == 0 && f.resubmissions == 0));
    }
}

/// The tables of every indicator: overall, by country, by border post.
const TABLES: [Table; 3] = [Table::Overall, Table::Named("country"), Table::By(Dimension::BorderPost)];

/// Each indicator's tables over one month, suppressed.
type Month = Vec<Vec<(Table, Vec<Cell>)>>;

/// Publishes one month: `consignments` are those lodged in `[period.from, period.to)`, each
/// with its agencies' parts.
fn month<C, A, P>(consignments: impl Iterator<Item = (C, P)>, request: &TfaRequest, period: Period, min_count: usize) -> Month
where
    C: ConsignmentFacts,
    A: AgencyFacts,
    P: Iterator<Item = A> + Clone,
{
    let mut families: Vec<Family> = PUBLIC_INDICATORS.iter().map(|_| Family::suppressing_sole_owners(TABLES.to_vec())).collect();
    let mut owners = Owners::default();
    for (unit, (c, parts)) in (0u64..).zip(consignments) {
        let owner = owners.id(&c.owner());
        let corridor = c.segment(Dimension::Corridor);
        let country = TfaGroup::Country.of(&corridor);
        let post = c.segment(Dimension::BorderPost);
        // Each value is the consignment's, or one of its agencies' parts: the threshold counts
        // consignments.
        read(&c, parts, request, period.closed_before, |indicator, value| {
            let f = &mut families[indicator];
            f.add_of(0, "", None, value, owner, Some(unit));
            f.add_of(1, country, None, value, owner, Some(unit));
            f.add_of(2, &post, None, value, owner, Some(unit));
        });
    }
    let mut audited: Vec<Audited> = families.into_iter().map(|f| f.audit(min_count)).collect();
    // The lead time's count is the pre-arrival share's numerator: a cell suppressed in either is
    // suppressed in both, and each family audited again with it, until neither suppresses more.
    let (share, lead) = audited.split_at_mut(PRE_ARRIVAL_LEAD);
    let (share, lead) = (&mut share[PRE_ARRIVAL_SHARE], &mut lead[0]);
    loop {
        let into_lead = lead.suppress_also(&share.suppressed());
        let into_share = share.suppress_also(&lead.suppressed());
        if !into_lead && !into_share {
            break;
        }
    }
    audited.into_iter().map(|a| a.render(MIN_MODE_BIN_MS, min_count)).collect()
}

/// One cell as the public reads it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicFigure {
    /// The country or border post; none for the region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether it is withheld (too few, or so that no withheld cell can be computed from the
    /// others): then nothing else is given.
    pub suppressed: bool,
    /// Values counted: consignments, or agencies' parts (Art. 7.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// The share, the count per consignment, or a duration's median in ms (`unit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A duration's 90th percentile, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
}

impl PublicFigure {
    fn of(cell: &Cell, unit: PublicUnit) -> PublicFigure {
        let group = cell.group.values().next().cloned();
        let summary = cell.stats.as_ref().filter(|_| !cell.suppressed).and_then(|s| s.summary.as_ref().map(|m| (s.count, m)));
        match summary {
            None => PublicFigure { group, suppressed: cell.suppressed, count: cell.stats.as_ref().map(|s| s.count), value: None, p90_ms: None },
            Some((count, s)) => {
                let (value, p90_ms) = match unit {
                    PublicUnit::Duration => (s.median_ms, Some(s.p90_ms)),
                    PublicUnit::Share | PublicUnit::PerConsignment => (s.mean_ms, None),
                };
                PublicFigure { group, suppressed: false, count: Some(count), value: Some(value), p90_ms }
            }
        }
    }
}

/// An indicator's figures over one month.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicMonthFigures {
    /// Every consignment of the region.
    pub region: PublicFigure,
    /// Each country, or border post, in its name's order.
    pub groups: Vec<PublicFigure>,
    /// The median of the groups' values shown (but `unknown`'s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_median: Option<f64>,
    /// How many groups that median is of.
    pub groups_in_median: usize,
}

/// One indicator's answer.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicIndicatorFigures {
    /// The indicator (`preArrivalShare`, `physicalInspectionShare`...).
    pub key: &'static str,
    /// The WTO TFA article it measures.
    pub article: &'static str,
    pub unit: PublicUnit,
    pub definition: &'static str,
    /// The month asked for.
    pub current: PublicMonthFigures,
    /// The month before it, published by the same rules: the trend.
    pub previous: PublicMonthFigures,
}

/// Where an article's public figures are published instead.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicLink {
    pub article: &'static str,
    /// The request that answers it, with `&month=` of this answer.
    pub href: String,
}

/// The answer: one month's indicators, grouped one way.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicTfaFigures {
    /// The month, `2026-11`.
    pub month: String,
    pub group_by: TfaGroup,
    pub from: String,
    pub to: String,
    /// What had not closed before this instant is not counted.
    pub closed_before: String,
    /// The month before, for the trend.
    pub previous_month: String,
    /// The fewest consignments a cell shown counts, besides its largest trader's too
    /// (`indicators.public_min_count`).
    pub min_count: usize,
    /// The region's window of a joint inspection (Art. 8), in minutes.
    pub joint_inspection_window_minutes: i64,
    pub indicators: Vec<PublicIndicatorFigures>,
    /// Art. 7.6 and 7.8: the public release times'.
    pub links: Vec<PublicLink>,
    pub method: &'static str,
}

/// A month's public TFA figures and the month before's, every grouping.
#[derive(Debug, Clone)]
pub struct PublicTfa {
    month: String,
    previous_month: String,
    period: Period,
    min_count: usize,
    joint_window_ms: i64,
    current: Month,
    previous: Month,
}

impl PublicTfa {
    /// The answer grouped by `group`; `None` for a grouping not published.
    pub fn figures(&self, group: TfaGroup) -> Option<PublicTfaFigures> {
        let table = match group {
            TfaGroup::Country => TABLES[1],
            TfaGroup::BorderPost => TABLES[2],
            TfaGroup::TransportMode | TfaGroup::DocumentType => return None,
        };
        let of = |month: &Month, i: usize, unit: PublicUnit| {
            let tables = &month[i];
            let cells = |t: Table| tables.iter().find(|(k, _)| *k == t).map(|(_, c)| c.as_slice()).unwrap_or_default();
            let region = cells(Table::Overall).first().map(|c| PublicFigure::of(c, unit)).unwrap_or(PublicFigure {
                group: None,
                suppressed: true,
                count: None,
                value: None,
                p90_ms: None,
            });
            let groups: Vec<PublicFigure> = cells(table).iter().map(|c| PublicFigure::of(c, unit)).collect();
            let shown: Vec<f64> = groups.iter().filter(|g| g.group.as_deref() != Some("unknown")).filter_map(|g| g.value).collect();
            let groups_in_median = shown.len();
            PublicMonthFigures { region, groups, region_median: median(shown), groups_in_median }
        };
        let indicators = PUBLIC_INDICATORS
            .iter()
            .enumerate()
            .map(|(i, ind)| PublicIndicatorFigures {
                key: ind.key,
                article: ind.article,
                unit: ind.unit,
                definition: ind.definition,
                current: of(&self.current, i, ind.unit),
                previous: of(&self.previous, i, ind.unit),
            })
            .collect();
        Some(PublicTfaFigures {
            month: self.month.clone(),
            group_by: group,
            from: rfc3339(self.period.from),
            to: rfc3339(self.period.to),
            closed_before: rfc3339(self.period.closed_before),
            previous_month: self.previous_month.clone(),
            min_count: self.min_count,
            joint_inspection_window_minutes: self.joint_window_ms / 60_000,
            indicators,
            links: LINKS.iter().map(|(article, href)| PublicLink { article, href: format!("{href}&month={}", self.month) }).collect(),
            method: METHOD,
        })
    }
}

/// The month `YYYY-MM` holding `at`.
fn month_name(at: Millis) -> String {
    let (y, m) = crate::clock::year_month(at);
    format!("{y:04}-{m:02}")
}

/// Publishes the month `period` and the month before it (`previous`), from the consignments
/// the caller selects for each (lodged in its `[from, to)`, each with its agencies' parts).
pub fn publication<C, A, P>(
    period: Period,
    consignments: impl Iterator<Item = (C, P)>,
    previous: Period,
    previous_consignments: impl Iterator<Item = (C, P)>,
    joint_window_ms: i64,
    min_count: usize,
) -> PublicTfa
where
    C: ConsignmentFacts,
    A: AgencyFacts,
    P: Iterator<Item = A> + Clone,
{
    let request = TfaRequest { group_by: TfaGroup::Country, expedited_types: Vec::new(), joint_window_ms };
    PublicTfa {
        month: month_name(period.from),
        // The month that ends where this one starts (before 1970-01, an empty 1969-12).
        previous_month: month_name(previous.to.saturating_sub(1)),
        period,
        min_count,
        joint_window_ms,
        current: month(consignments, &request, period, min_count),
        previous: month(previous_consignments, &request, previous, min_count),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::indicators::figures::AgencyPart;
    use crate::store::{AgencyReleaseTimes, AgencySelectivity, ConsignmentReleaseTimes, DocumentDims, Formalities};

    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 24 * HOUR;
    const MONTH: Period = Period { from: 0, to: 31 * DAY, closed_before: 38 * DAY };
    const BEFORE: Period = Period { from: -31 * DAY, to: 0, closed_before: 7 * DAY };

    /// A consignment of `owner` to `country` through `post`, lodged on `day` and decided
    /// `hours` later by one agency (`red`: sent to physical inspection), with two documents.
    fn consignment(n: usize, owner: &str, country: &str, post: &str, day: i64, hours: i64, red: bool) -> (ConsignmentReleaseTimes, Vec<AgencyReleaseTimes>) {
        let lodged = day * DAY + n as i64;
        let decided = lodged + hours * HOUR;
        let c = ConsignmentReleaseTimes {
            ucr: crate::domain::Ucr::parse(&format!("U-{n}")).unwrap(),
            owner: owner.into(),
            lodged_at: lodged,
            arrived_at: Some(lodged + HOUR),
            released_at: Some(decided),
            decided_at: Some(decided),
            outcome: "released".into(),
            document_type: "customsDeclaration".into(),
            origin: "AR".into(),
            destination: country.into(),
            dims: DocumentDims { transport_mode: Some("road".into()), hs_chapter: None, border_post: Some(post.into()) },
            channel: "without".into(),
            hold_ms: 0,
            query_trader_ms: 0,
            query_agency_ms: 0,
            risk_channel: "green".into(),
            formalities: Some(Formalities { documents: 2, amendments: 0, queries: 0, resubmissions: 0 }),
        };
        let part = AgencyReleaseTimes {
            agency: crate::domain::AgencyId::parse(&format!("{}-customs", country.to_lowercase())).unwrap(),
            routed_at: lodged,
            first_answer_at: Some(decided),
            decided_at: Some(decided),
            decision: Some("released".into()),
            hold_ms: 0,
            query_trader_ms: 0,
            query_agency_ms: 0,
            selectivity: Some(AgencySelectivity {
                channel: if red { "red" } else { "green" },
                source: if red { "rule" } else { "none" },
                finding: red.then_some("irregularity"),
                standing_instruction: false,
            }),
        };
        (c, vec![part])
    }

    fn publish(rows: &[(ConsignmentReleaseTimes, Vec<AgencyReleaseTimes>)]) -> PublicTfa {
        let of = |p: Period| {
            rows.iter()
                .filter(move |(c, _)| c.lodged_at >= p.from && c.lodged_at < p.to)
                .map(|(c, parts)| (c, parts.iter().map(|part| AgencyPart { part, kind: Cow::Borrowed("customs") })))
        };
        publication(MONTH, of(MONTH), BEFORE, of(BEFORE), 2 * HOUR, 5)
    }

    /// Per (country, post, consignments, lodged before arrival): that many consignments of
    /// one trader each, the first ones lodged before their goods arrived, the others after.
    fn arriving(countries: &[(&str, &str, usize, usize)]) -> Vec<(ConsignmentReleaseTimes, Vec<AgencyReleaseTimes>)> {
        let mut rows = Vec::new();
        for (country, post, n, before) in countries {
            for k in 0..*n {
                let i = rows.len();
                let mut row = consignment(i, &format!("t{i}"), country, post, 1 + i as i64, 5, false);
                if k >= *before {
                    row.0.arrived_at = Some(row.0.lodged_at - HOUR);
                }
                rows.push(row);
            }
        }
        rows
    }

    fn indicator<'a>(f: &'a PublicTfaFigures, key: &str) -> &'a PublicIndicatorFigures {
        f.indicators.iter().find(|i| i.key == key).unwrap()
    }

    #[test]
    fn a_country_under_the_threshold_takes_another_with_it_and_the_median_is_of_those_shown() {
        // AR 10 consignments (3 red), BR 8 (none), UY 2: UY is under the threshold, and the
        // region less AR and BR would be UY's, so one more goes with it.
        let mut rows = Vec::new();
        for i in 0..10 {
            rows.push(consignment(i, &format!("t{i}"), "AR", "ARPAS", 1 + i as i64, 5, i < 3));
        }
        for i in 10..18 {
            rows.push(consignment(i, &format!("t{i}"), "BR", "BRURG", 1 + i as i64, 5, false));
        }
        for i in 18..20 {
            rows.push(consignment(i, &format!("t{i}"), "UY", "UYFBE", 1 + i as i64, 5, false));
        }
        let f = publish(&rows).figures(TfaGroup::Country).unwrap();
        let physical = &indicator(&f, "physicalInspectionShare").current;
        assert_eq!((physical.region.count, physical.region.value), (Some(20), Some(0.15)));
        let hidden: Vec<&str> = physical.groups.iter().filter(|g| g.suppressed).filter_map(|g| g.group.as_deref()).collect();
        assert!(hidden.contains(&"UY") && hidden.len() == 2, "UY and one more: {hidden:?}");
        for g in physical.groups.iter().filter(|g| g.suppressed) {
            assert_eq!((g.count, g.value), (None, None), "a suppressed cell gives nothing");
        }
        let shown: Vec<f64> = physical.groups.iter().filter_map(|g| g.value).collect();
        assert_eq!((physical.groups_in_median, physical.region_median), (1, shown.first().copied()));
        // By border post (one per country here): the same cells, suppressed alike.
        let by_post = publish(&rows).figures(TfaGroup::BorderPost).unwrap();
        let posts = &indicator(&by_post, "physicalInspectionShare").current.groups;
        assert_eq!(posts.iter().filter(|g| g.suppressed).count(), 2, "{posts:?}");
        assert!(publish(&rows).figures(TfaGroup::TransportMode).is_none(), "not a published grouping");
    }

    #[test]
    fn a_cell_mostly_or_wholly_one_traders_is_suppressed() {
        // AR: 20 of one trader and 3 of others (the one could subtract its own); BR: 10 traders;
        // UY: 10 of one trader alone (its figures would be that trader's).
        let mut rows = Vec::new();
        for i in 0..23 {
            rows.push(consignment(i, if i < 20 { "big" } else { "small" }, "AR", "ARPAS", 1 + i as i64 % 28, 5, false));
        }
        for i in 23..33 {
            rows.push(consignment(i, &format!("t{i}"), "BR", "BRURG", 1 + i as i64 % 28, 5, false));
        }
        for i in 33..43 {
            rows.push(consignment(i, "solo", "UY", "UYFBE", 1 + i as i64 % 28, 5, false));
        }
        let f = publish(&rows).figures(TfaGroup::Country).unwrap();
        let docs = &indicator(&f, "documentsPerConsignment").current;
        let cell = |country: &str| docs.groups.iter().find(|g| g.group.as_deref() == Some(country)).unwrap();
        assert!(cell("AR").suppressed, "{:?}", cell("AR"));
        assert!(cell("UY").suppressed, "{:?}", cell("UY"));
        assert!(!cell("BR").suppressed, "BR's ten traders: {:?}", cell("BR"));
        assert!(!docs.region.suppressed, "the region less BR is AR and UY together");
    }

    #[test]
    fn an_agencys_parts_count_their_consignments_for_the_threshold() {
        // AR: 4 consignments with 3 agencies' parts each (12 parts, none of a trader holding
        // most); BR: 6 consignments with one part each.
        let mut rows = Vec::new();
        for i in 0..4 {
            let mut row = consignment(i, &format!("t{i}"), "AR", "ARPAS", 1 + i as i64, 5, true);
            let part = row.1[0].clone();
            for kind in ["sanitary", "border"] {
                row.1.push(AgencyReleaseTimes { agency: crate::domain::AgencyId::parse(&format!("ar-{kind}")).unwrap(), ..part.clone() });
            }
            rows.push(row);
        }
        for i in 4..10 {
            rows.push(consignment(i, &format!("t{i}"), "BR", "BRURG", 1 + i as i64, 5, false));
        }
        let f = publish(&rows).figures(TfaGroup::Country).unwrap();
        let physical = &indicator(&f, "physicalInspectionShare").current;
        let ar = physical.groups.iter().find(|g| g.group.as_deref() == Some("AR")).unwrap();
        assert!(ar.suppressed, "twelve parts of four consignments: {ar:?}");
        assert_eq!((physical.region.count, physical.region.value), (Some(18), Some(12.0 / 18.0)), "the region counts parts: 12 red of 18");
    }

    #[test]
    fn the_pre_arrival_share_is_suppressed_where_the_lead_time_is() {
        // AR and BR: 10 consignments each, the share of each shown on its own. AR's 3 lodged
        // before arrival make a lead time under the threshold, and BR's goes with it (the
        // region less BR would be AR's). A lead time's count is its share's numerator: the
        // shares of AR and BR are suppressed with them.
        let publication = publish(&arriving(&[("AR", "ARPAS", 10, 3), ("BR", "BRURG", 10, 10)]));
        for group in PUBLIC_GROUPS {
            let f = publication.figures(group).unwrap();
            let (share, lead) = (&indicator(&f, "preArrivalShare").current, &indicator(&f, "preArrivalLeadTime").current);
            assert_eq!(share.groups.len(), 2);
            for (s, l) in share.groups.iter().zip(&lead.groups) {
                assert_eq!(s.group, l.group);
                assert!(s.suppressed && l.suppressed, "{group:?}: {s:?} {l:?}");
            }
            assert_eq!((share.region.count, share.region.value), (Some(20), Some(13.0 / 20.0)));
            assert_eq!(lead.region.count, Some(13), "the region's lead time over 13 is shown, as is the share's numerator");
        }
    }

    #[test]
    fn the_lead_time_is_suppressed_where_the_pre_arrival_share_is_and_audited_again() {
        // The share: AR 10 (6 before arrival), BR 12 (6), UY 3 (none): UY is under the
        // threshold and AR goes with it. The lead time: AR 6, BR 6, all shown on their own. AR's
        // lead count would be the region's 12 less BR's 6: UY's numerator would follow (12 - 6
        // - 6 = 0). Suppressed in the lead time too, AR takes BR with it there, and so in the
        // share.
        let rows = arriving(&[("AR", "ARPAS", 10, 6), ("BR", "BRURG", 12, 6), ("UY", "UYFBE", 3, 0)]);
        let publication = publish(&rows);
        for group in PUBLIC_GROUPS {
            let f = publication.figures(group).unwrap();
            let (share, lead) = (&indicator(&f, "preArrivalShare").current, &indicator(&f, "preArrivalLeadTime").current);
            assert!(share.groups.iter().all(|g| g.suppressed), "{group:?}: {:?}", share.groups);
            assert!(lead.groups.iter().all(|g| g.suppressed), "{group:?}: {:?}", lead.groups);
            assert_eq!((share.region.count, lead.region.count), (Some(25), Some(12)), "the region's shown in both");
        }
    }

    #[test]
    fn a_month_counts_only_what_closed_before_it_was_published() {
        // Ten consignments released within the month; five released after its close (day 40);
        // three refused within it (a refused consignment may take new versions); and six
        // lodged in the month before, released in it.
        let mut rows = Vec::new();
        for i in 0..10 {
            rows.push(consignment(i, &format!("t{i}"), "AR", "ARPAS", 1 + i as i64, 5, false));
        }
        for i in 10..15 {
            rows.push(consignment(i, &format!("t{i}"), "AR", "ARPAS", 20, 20 * 24 + 5, true));
        }
        for i in 15..18 {
            let mut row = consignment(i, &format!("t{i}"), "AR", "ARPAS", 2, 5, true);
            row.0.released_at = None;
            rows.push(row);
        }
        for i in 18..24 {
            rows.push(consignment(i, &format!("t{i}"), "AR", "ARPAS", -20, 5, i < 21));
        }
        let f = publish(&rows).figures(TfaGroup::Country).unwrap();
        for key in ["physicalInspectionShare", "documentsPerConsignment", "singleWindowShare"] {
            let region = &indicator(&f, key).current.region;
            assert_eq!(region.count, Some(10), "{key}: only what was released by the close");
        }
        assert_eq!(indicator(&f, "physicalInspectionShare").current.region.value, Some(0.0));
        assert_eq!(indicator(&f, "documentsPerConsignment").current.region.value, Some(2.0));
        // Art. 7.1 too: the ten released (the others may yet take a declaration that moves
        // their lodgement).
        let pre = &indicator(&f, "preArrivalShare").current.region;
        assert_eq!((pre.count, pre.value), (Some(10), Some(1.0)));
        let lead = &indicator(&f, "preArrivalLeadTime").current.region;
        assert_eq!((lead.value, lead.p90_ms), (Some(HOUR as f64), Some(HOUR as f64)));
        // The month before, published by its own close: its six, three of them inspected.
        let before = &indicator(&f, "physicalInspectionShare").previous.region;
        assert_eq!((before.count, before.value), (Some(6), Some(0.5)));
        assert_eq!((f.month.as_str(), f.previous_month.as_str()), ("1970-01", "1969-12"));
        assert_eq!(f.links.len(), 2);
        assert!(f.links.iter().all(|l| l.href.ends_with("&month=1970-01")));
    }
}
