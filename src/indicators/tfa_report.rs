//! The country report of the TFA monitor (`ventanilla report tfa`), for a national trade
//! facilitation committee: for one importing country and one calendar period (a quarter, a month
//! or a year), each article's indicators as measured (`super::tfa`), beside the region's median of
//! the countries and the same country's figure in the period before, with each definition; as
//! HTML (printable; PDF through Chromium) or CSV.
//!
//! It is the committee's working document, not a publication: a figure computed over fewer
//! consignments (or agencies' parts, or findings: the figure's own unit) than the region's public
//! threshold is not shown, nor what it is computed over, a country under it does not enter the
//! region's median, and the hit rate of all sources is not shown when the random ones' would
//! give the others' over fewer findings than the threshold. It does not apply the public
//! figures' other rules (no complementary suppression across periods or tables, no
//! largest-trader rule): docs/tfa.md says what to do before publishing one.

use std::collections::HashMap;

use super::figures::AgencyPart;
use super::tfa::{self, Articles, TfaGroup, TfaPeriod, TfaRequest};
use crate::clock::{month_start, rfc3339, Millis};
use crate::domain::AgencyId;
use crate::store::{AgencyReleaseTimes, ReleaseTimesQuery, Store, StoreError};

/// A calendar period a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarPeriod {
    Year(i64),
    /// A quarter, 1 to 4.
    Quarter(i64, u32),
    /// A month, 1 to 12.
    Month(i64, u32),
}

impl CalendarPeriod {
    /// `2026`, `2026-Q3` or `2026-11`.
    pub fn parse(s: &str) -> Result<CalendarPeriod, String> {
        let wrong = || format!("--period {s:?} is not a year (2026), a quarter (2026-Q3) or a month (2026-11)");
        let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        let year = |y: &str| y.parse::<i64>().ok().filter(|n| digits(y, 4) && (1970..=9999).contains(n));
        match s.split_once('-') {
            None => year(s).map(CalendarPeriod::Year).ok_or_else(wrong),
            Some((y, q)) if q.starts_with('Q') => {
                let quarter = q[1..].parse::<u32>().ok().filter(|n| digits(&q[1..], 1) && (1..=4).contains(n));
                Ok(CalendarPeriod::Quarter(year(y).ok_or_else(wrong)?, quarter.ok_or_else(wrong)?))
            }
            Some((y, m)) => {
                let month = m.parse::<u32>().ok().filter(|n| digits(m, 2) && (1..=12).contains(n));
                Ok(CalendarPeriod::Month(year(y).ok_or_else(wrong)?, month.ok_or_else(wrong)?))
            }
        }
    }

    /// Its first instant and the first after it (UTC).
    pub fn bounds(self) -> (Millis, Millis) {
        let start = |y: i64, m: u32| if m > 12 { month_start(y + 1, m - 12) } else { month_start(y, m) };
        match self {
            CalendarPeriod::Year(y) => (start(y, 1), start(y, 13)),
            CalendarPeriod::Quarter(y, q) => (start(y, 3 * q - 2), start(y, 3 * q + 1)),
            CalendarPeriod::Month(y, m) => (start(y, m), start(y, m + 1)),
        }
    }

    /// The period of the same kind just before.
    pub fn previous(self) -> CalendarPeriod {
        match self {
            CalendarPeriod::Year(y) => CalendarPeriod::Year(y - 1),
            CalendarPeriod::Quarter(y, 1) => CalendarPeriod::Quarter(y - 1, 4),
            CalendarPeriod::Quarter(y, q) => CalendarPeriod::Quarter(y, q - 1),
            CalendarPeriod::Month(y, 1) => CalendarPeriod::Month(y - 1, 12),
            CalendarPeriod::Month(y, m) => CalendarPeriod::Month(y, m - 1),
        }
    }

    /// Its name as given (`2026-Q3`).
    pub fn name(self) -> String {
        match self {
            CalendarPeriod::Year(y) => format!("{y:04}"),
            CalendarPeriod::Quarter(y, q) => format!("{y:04}-Q{q}"),
            CalendarPeriod::Month(y, m) => format!("{y:04}-{m:02}"),
        }
    }
}

/// How an indicator's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A share, printed in percent.
    Share,
    /// A duration, printed in hours.
    Hours,
    /// A number per consignment.
    PerConsignment,
    /// A ratio of two medians.
    Ratio,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Share => "%",
            Unit::Hours => "hours",
            Unit::PerConsignment => "per consignment",
            Unit::Ratio => "ratio",
        }
    }

    /// `v` as the report prints it.
    fn print(self, v: f64) -> String {
        match self {
            Unit::Share => format!("{:.1}", v * 100.0),
            Unit::Hours => format!("{:.2}", v / 3_600_000.0),
            Unit::PerConsignment | Unit::Ratio => format!("{v:.2}"),
        }
    }
}

/// One indicator of the report.
pub struct Indicator {
    /// The TFA article, `7.1`.
    pub article: &'static str,
    /// A stable name, for the CSV and the page's markup.
    pub key: &'static str,
    pub title: &'static str,
    pub unit: Unit,
    pub definition: &'static str,
    /// Its value in a set of articles, and what it is computed over (consignments, parts or
    /// findings: the count the threshold applies to).
    pub value: fn(&Articles) -> (Option<f64>, usize),
}

/// The hit rate of the inspections that `source` selected (all sources: `None`).
fn hit_rate(a: &Articles, source: Option<&str>) -> (Option<f64>, usize) {
    let sources = a.risk_management.all.by_source.iter().filter(|s| source.is_none_or(|n| s.source == n));
    let (findings, irregularities) = sources.fold((0, 0), |(f, i), s| (f + s.findings, i + s.irregularities));
    ((findings > 0).then(|| irregularities as f64 / findings as f64), findings)
}

/// The report's indicators, by article.
pub const INDICATORS: &[Indicator] = &[
    Indicator {
        article: "7.1",
        key: "pre-arrival-share",
        title: "Consignments lodged before the goods arrived",
        unit: Unit::Share,
        definition: "Of the consignments whose goods' arrival is known (the first answer to a document naming a border post), the share whose first submission came before it.",
        value: |a| (a.pre_arrival.share, a.pre_arrival.with_arrival),
    },
    Indicator {
        article: "7.1",
        key: "pre-arrival-lead-median",
        title: "How long before arrival they were lodged (median)",
        unit: Unit::Hours,
        definition: "Arrival minus lodgement, for the consignments lodged before arrival.",
        value: |a| (a.pre_arrival.lead_time.median_ms, a.pre_arrival.lead_time.count),
    },
    Indicator {
        article: "7.4",
        key: "physical-inspection-share",
        title: "Agencies' parts selected for physical inspection",
        unit: Unit::Share,
        definition: "Of every agency's parts in the consignments (one per agency per consignment), the share its risk selection sent to the red channel.",
        value: |a| (a.risk_management.all.physical_share, a.risk_management.all.parts),
    },
    Indicator {
        article: "7.4",
        key: "documentary-check-share",
        title: "Agencies' parts selected for a documentary check",
        unit: Unit::Share,
        definition: "The same, for the yellow channel.",
        value: |a| (a.risk_management.all.documentary_share, a.risk_management.all.parts),
    },
    Indicator {
        article: "7.4",
        key: "hit-rate",
        title: "Inspections that found an irregularity",
        unit: Unit::Share,
        definition: "Irregularities per inspection whose finding the agency reported, whatever selected it.",
        value: |a| hit_rate(a, None),
    },
    Indicator {
        article: "7.4",
        key: "hit-rate-random",
        title: "... of those selected at random",
        unit: Unit::Share,
        definition: "The same, for the inspections selected at random: the baseline a targeted selection is measured against.",
        value: |a| hit_rate(a, Some("random")),
    },
    Indicator {
        article: "7.4",
        key: "standing-instruction-share",
        title: "Decisions given by a standing instruction",
        unit: Unit::Share,
        definition: "Of the agencies' decided parts, the share a standing instruction released as the document was accepted (de minimis).",
        value: |a| (a.risk_management.all.standing_instruction_share, a.risk_management.all.decided),
    },
    Indicator {
        article: "7.6",
        key: "release-time-mean",
        title: "Average release time: arrival to release (mean)",
        unit: Unit::Hours,
        definition: "From the goods' arrival to the release of the consignment by every agency concerned (WCO Time Release Study).",
        value: |a| (a.release_time.mean_ms, a.release_time.count),
    },
    Indicator {
        article: "7.6",
        key: "release-time-median",
        title: "Arrival to release (median)",
        unit: Unit::Hours,
        definition: "The same, its median.",
        value: |a| (a.release_time.median_ms, a.release_time.count),
    },
    Indicator {
        article: "7.8",
        key: "expedited-median",
        title: "Expedited shipments: lodgement to release (median)",
        unit: Unit::Hours,
        definition: "For consignments whose lead document is of an expedited type (e-commerce parcels), from lodgement to release.",
        value: |a| (a.expedited.expedited.median_ms, a.expedited.expedited.count),
    },
    Indicator {
        article: "7.8",
        key: "others-median",
        title: "Other consignments: lodgement to release (median)",
        unit: Unit::Hours,
        definition: "The same, for every other consignment.",
        value: |a| (a.expedited.others.median_ms, a.expedited.others.count),
    },
    Indicator {
        article: "7.8",
        key: "expedited-ratio",
        title: "Expedited against the others (ratio of medians)",
        unit: Unit::Ratio,
        definition: "The expedited median over the others'; under 1, expedited shipments are released faster.",
        value: |a| (a.expedited.median_ratio, a.expedited.expedited.count.min(a.expedited.others.count)),
    },
    Indicator {
        article: "8",
        key: "agency-spread-median",
        title: "First to last agency decision (median)",
        unit: Unit::Hours,
        definition: "For released consignments decided by two agencies or more, the last agency's decision minus the first's.",
        value: |a| (a.agency_spread.median_ms, a.agency_spread.count),
    },
    Indicator {
        article: "8",
        key: "joint-inspection-share",
        title: "Joint inspections",
        unit: Unit::Share,
        definition: "Of the consignments two agencies or more sent to physical inspection, the share whose inspecting agencies decided within the region's window of each other.",
        value: |a| (a.joint_inspections.share, a.joint_inspections.inspected_by_several),
    },
    Indicator {
        article: "10.1",
        key: "documents-per-consignment",
        title: "Documents per consignment",
        unit: Unit::PerConsignment,
        definition: "Documents submitted for a consignment, each once whatever its versions.",
        value: |a| (a.formalities.documents_per_consignment, a.formalities.consignments),
    },
    Indicator {
        article: "10.1",
        key: "amendments-per-consignment",
        title: "Amendments per consignment",
        unit: Unit::PerConsignment,
        definition: "Versions submitted to amend an earlier one.",
        value: |a| (a.formalities.amendments_per_consignment, a.formalities.consignments),
    },
    Indicator {
        article: "10.1",
        key: "queries-per-consignment",
        title: "Agencies' queries per consignment",
        unit: Unit::PerConsignment,
        definition: "Queries agencies put to the trader.",
        value: |a| (a.formalities.queries_per_consignment, a.formalities.consignments),
    },
    Indicator {
        article: "10.1",
        key: "resubmitted-share",
        title: "Consignments resubmitted after a rejection",
        unit: Unit::Share,
        definition: "The share with a version amending a rejected one, or a document replacing a rejected one withdrawn.",
        value: |a| (a.formalities.resubmitted_share, a.formalities.consignments),
    },
    Indicator {
        article: "10.4",
        key: "submitted-once-share",
        title: "Consignments whose documents were each submitted once",
        unit: Unit::Share,
        definition: "Of the decided consignments, the share with no amendment and no resubmission: one submission to the single window reached every agency concerned.",
        value: |a| (a.single_window.share, a.single_window.decided),
    },
];

/// The title of an article.
fn article_title(article: &str) -> &'static str {
    match article {
        "7.1" => "Art. 7.1 Pre-arrival processing",
        "7.4" => "Art. 7.4 Risk management",
        "7.6" => "Art. 7.6 Average release times",
        "7.8" => "Art. 7.8 Expedited shipments",
        "8" => "Art. 8 Border agency cooperation",
        "10.1" => "Art. 10.1 Formalities",
        "10.4" => "Art. 10.4 Single window",
        _ => "",
    }
}

/// One indicator's line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub indicator: &'static Indicator,
    /// The country's value, when computed over the threshold or more.
    pub value: Option<f64>,
    /// What it is computed over.
    pub count: usize,
    /// The median of the countries' values that are over the threshold.
    pub region_median: Option<f64>,
    /// The countries in that median.
    pub countries: usize,
    /// The country's value in the period before, under the same rule.
    pub previous: Option<f64>,
}

impl PartialEq for Indicator {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl std::fmt::Debug for Indicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

/// The report of a country over a period.
#[derive(Debug, Clone)]
pub struct CountryReport {
    pub country: String,
    pub period: CalendarPeriod,
    pub min_count: usize,
    /// When it was computed: the consignments' facts as they stood then.
    pub computed_at: Millis,
    pub joint_window_minutes: i64,
    /// Consignments of the country in the period, and in the period before.
    pub consignments: (usize, usize),
    /// Of the period's, those whose formalities are not computed yet (facts kept before the
    /// monitor: docs/tfa.md), left out of Art. 10.
    pub not_computed: usize,
    pub lines: Vec<Line>,
}

/// An indicator's value in `a` as the report may show it, and what it counts: none under the
/// threshold; nor, for the hit rate of all sources, when the random selections' (shown beside
/// it) would leave the others' over fewer findings than the threshold.
fn value_in(indicator: &Indicator, a: &Articles, min_count: usize) -> (Option<f64>, usize) {
    let (value, count) = (indicator.value)(a);
    if indicator.key == "hit-rate" {
        let (_, random) = hit_rate(a, Some("random"));
        if random >= min_count && (1..min_count).contains(&count.saturating_sub(random)) {
            return (None, count);
        }
    }
    (value.filter(|_| count >= min_count), count)
}

/// The report's lines for `country`: each indicator in `current`, the median of the countries
/// whose value may be shown, and the country's in `previous`, each judged on its own counts.
pub fn lines(current: &TfaPeriod, previous: &TfaPeriod, country: &str, min_count: usize) -> Vec<Line> {
    let of = |p: &TfaPeriod, indicator: &Indicator| {
        p.groups.iter().find(|g| g.group == country).map_or((None, 0), |g| value_in(indicator, &g.articles, min_count))
    };
    INDICATORS
        .iter()
        .map(|indicator| {
            let (value, count) = of(current, indicator);
            let values: Vec<f64> =
                current.groups.iter().filter(|g| g.group != "unknown").filter_map(|g| value_in(indicator, &g.articles, min_count).0).collect();
            let countries = values.len();
            Line { indicator, value, count, region_median: tfa::median(values), countries, previous: of(previous, indicator).0 }
        })
        .collect()
}

/// The report of `country` over `period`, from the store's facts as they stand; `min_count` is
/// the region's public threshold.
pub async fn build(
    store: &dyn Store,
    country: &str,
    period: CalendarPeriod,
    request: TfaRequest,
    min_count: usize,
    kind_of: &(dyn Fn(&AgencyId) -> String + Sync),
) -> Result<CountryReport, StoreError> {
    let request = TfaRequest { group_by: TfaGroup::Country, ..request };
    let min_count = min_count.max(1);
    let computed_at = crate::clock::now_millis();
    let (from, to) = period.bounds();
    let (before, _) = period.previous().bounds();
    let q = ReleaseTimesQuery { from: before, to, owner: None, agency: None };
    let (consignments, agencies) = store.read_with(move |l| Ok((l.release_times(&q)?, l.agency_release_times(&q)?))).await?;
    let mut parts: HashMap<&str, Vec<&AgencyReleaseTimes>> = HashMap::new();
    for (c, a) in &agencies {
        parts.entry(c.ucr.as_str()).or_default().push(a);
    }
    let of = |from: Millis, to: Millis| {
        let rows = consignments.iter().filter(|c| c.lodged_at >= from && c.lodged_at < to).map(|c| {
            let own = parts.get(c.ucr.as_str()).map(Vec::as_slice).unwrap_or_default();
            (c, own.iter().map(|a| AgencyPart { part: a, kind: kind_of(&a.agency).into() }).collect::<Vec<_>>().into_iter())
        });
        tfa::period(&request, rows, from, to)
    };
    let (current, previous) = (of(from, to), of(before, from));
    let count_in = |p: &TfaPeriod| p.groups.iter().find(|g| g.group == country).map_or(0, |g| g.articles.consignments);
    let not_computed = current.groups.iter().find(|g| g.group == country).map_or(0, |g| g.articles.formalities.not_computed);
    let lines = lines(&current, &previous, country, min_count);
    Ok(CountryReport {
        country: country.to_owned(),
        period,
        min_count,
        computed_at,
        joint_window_minutes: request.joint_window_ms / 60_000,
        consignments: (count_in(&current), count_in(&previous)),
        not_computed,
        lines,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line's printed cells: value, region median, previous, change.
fn printed(l: &Line) -> [String; 4] {
    let unit = l.indicator.unit;
    let print = |v: Option<f64>| v.map_or_else(String::new, |v| unit.print(v));
    let change = match (l.value, l.previous) {
        (Some(now), Some(before)) => {
            let (now, before) = (unit.print(now).parse::<f64>().unwrap_or(now), unit.print(before).parse::<f64>().unwrap_or(before));
            format!("{:+.2}", now - before)
        }
        _ => String::new(),
    };
    [print(l.value), print(l.region_median), print(l.previous), change]
}

/// The report as one self-contained HTML page.
pub fn html(r: &CountryReport) -> String {
    let (from, to) = r.period.bounds();
    // A count under the threshold is not shown either.
    let counted = |n: usize| if n >= r.min_count { n.to_string() } else { format!("fewer than {}", r.min_count) };
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Trade facilitation as practiced: {country}, {name}</title>\
<style>body{{font-family:sans-serif;margin:2rem;color:#1d2733}}table{{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}}\
th,td{{border-bottom:1px solid #ccd;padding:.25rem .6rem;text-align:right;vertical-align:top}}th:first-child,td:first-child,td.definition{{text-align:left}}\
td.definition{{font-size:.85rem;color:#445;max-width:28rem}}h2{{margin-top:2rem}}.note{{font-size:.9rem;color:#445}}</style></head><body>\
<h1>Trade facilitation as practiced: {country}, {name}</h1>\
<p>WTO Trade Facilitation Agreement indicators measured from the regional single window's own events, for the consignments \
imported into {country} and lodged from {from} to {to} (UTC): {n} consignments ({n_before} in {before}). Each figure stands beside \
the median of the region's importing countries and {country}'s own figure in {before}.{left_out}</p>",
        country = escape(&r.country),
        name = r.period.name(),
        from = &rfc3339(from)[..10],
        to = &rfc3339(to)[..10],
        n = counted(r.consignments.0),
        n_before = counted(r.consignments.1),
        before = r.period.previous().name(),
        left_out = if r.not_computed > 0 {
            " Some of them are not computed yet for Art. 10 (facts kept before the monitor): it leaves them out, and the agencies' parts not computed are left out of Art. 7.4 and 8.".to_owned()
        } else {
            String::new()
        },
    );
    let mut article = "";
    for l in &r.lines {
        if l.indicator.article != article {
            if !article.is_empty() {
                out.push_str("</table>");
            }
            article = l.indicator.article;
            out.push_str(&format!(
                "<h2>{}</h2><table><tr><th>indicator</th><th>unit</th><th>{}</th><th>counted</th><th>region's median</th><th>{}</th><th>change</th><th>definition</th></tr>",
                article_title(article),
                escape(&r.country),
                r.period.previous().name()
            ));
        }
        let [value, median, previous, change] = printed(l);
        // A figure not shown shows nothing of what it counts either.
        let (value, counted) = match (l.value, l.count) {
            (None, 0) => (value, String::new()),
            (None, _) => ("not shown (see the method)".to_owned(), String::new()),
            (Some(_), n) => (value, n.to_string()),
        };
        out.push_str(&format!(
            "<tr data-indicator=\"{}\"><td>{}</td><td>{}</td><td class=\"value\">{value}</td><td>{counted}</td><td class=\"median\">{median}</td><td class=\"previous\">{previous}</td><td>{change}</td><td class=\"definition\">{}</td></tr>",
            l.indicator.key,
            escape(l.indicator.title),
            l.indicator.unit.name(),
            escape(l.indicator.definition)
        ));
    }
    if !article.is_empty() {
        out.push_str("</table>");
    }
    out.push_str(&format!(
        "<h2>Method</h2><p class=\"note\">{}</p><p class=\"note\">Joint inspections: within {} minutes. A figure computed over fewer \
than {} consignments, agencies' parts or findings is not shown, nor its count, and a country under that threshold is not in the region's \
median; nor is the hit rate of all sources where the random selections' would leave the others' over fewer findings. \
The consignments' facts as they stood at {}: consignments lodged in the period and decided since are counted as they were then. \
Full definitions, events and caveats: docs/tfa.md.</p></body></html>",
        escape(tfa::METHOD),
        r.joint_window_minutes,
        r.min_count,
        rfc3339(r.computed_at)
    ));
    out
}

/// The report as CSV: one line per indicator.
pub fn csv(r: &CountryReport) -> String {
    let mut out = String::from("article,indicator,unit,country,period,value,counted,region_median,countries_in_median,previous_period,previous_value,change,definition\n");
    let quote = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() };
    for l in &r.lines {
        let [value, median, previous, change] = printed(l);
        let counted = if l.value.is_some() { l.count.to_string() } else { String::new() };
        out.push_str(&format!(
            "{},{},{},{},{},{value},{counted},{median},{},{},{previous},{change},{}\n",
            l.indicator.article,
            l.indicator.key,
            quote(l.indicator.unit.name()),
            quote(&r.country),
            r.period.name(),
            l.countries,
            r.period.previous().name(),
            quote(l.indicator.definition)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_years_quarters_and_months_each_with_the_one_before() {
        let q3 = CalendarPeriod::parse("2026-Q3").unwrap();
        assert_eq!(q3.bounds(), (month_start(2026, 7), month_start(2026, 10)));
        assert_eq!(q3.previous().name(), "2026-Q2");
        assert_eq!(CalendarPeriod::parse("2026-Q1").unwrap().previous().name(), "2025-Q4");
        assert_eq!(CalendarPeriod::parse("2026-Q4").unwrap().bounds().1, month_start(2027, 1));
        assert_eq!(CalendarPeriod::parse("2026-12").unwrap().bounds(), (month_start(2026, 12), month_start(2027, 1)));
        assert_eq!(CalendarPeriod::parse("2026-01").unwrap().previous().name(), "2025-12");
        assert_eq!(CalendarPeriod::parse("2026").unwrap().bounds(), (month_start(2026, 1), month_start(2027, 1)));
        assert_eq!(crate::clock::days_from_civil(2026, 7, 1) * 86_400_000, q3.bounds().0);
        for wrong in ["2026-Q5", "2026-Q0", "2026-13", "2026-1", "26", "2026-Q03", "Q3", ""] {
            assert!(CalendarPeriod::parse(wrong).is_err(), "{wrong}");
        }
    }

    /// A period whose countries have these findings: (country, rule findings and
    /// irregularities, random findings and irregularities).
    fn findings(countries: &[(&str, (usize, usize), (usize, usize))]) -> TfaPeriod {
        let groups = countries
            .iter()
            .map(|(group, rule, random)| {
                let mut articles = Articles::default();
                articles.risk_management.all.by_source = [("rule", rule), ("random", random)]
                    .into_iter()
                    .map(|(source, (findings, irregularities))| tfa::SourceHits {
                        source: source.into(),
                        inspections: *findings,
                        findings: *findings,
                        irregularities: *irregularities,
                        hit_rate: None,
                    })
                    .collect();
                tfa::TfaCell { group: (*group).into(), articles }
            })
            .collect();
        TfaPeriod { from: String::new(), to: String::new(), region: Articles::default(), groups, region_median: Default::default() }
    }

    #[test]
    fn a_hit_rate_is_not_shown_when_it_or_what_it_leaves_rests_on_too_few_findings() {
        let line = |lines: &[Line], key: &str| lines.iter().find(|l| l.indicator.key == key).cloned().unwrap();
        // BR: 3 rule findings beside 10 random: the random rate is shown, so the overall one
        // would give the rule's over 3. UY: 10 and 10, both shown. AR: 2 in all.
        let current = findings(&[("BR", (3, 1), (10, 2)), ("UY", (10, 5), (10, 1)), ("AR", (0, 0), (2, 1))]);
        // The period before: BR's 2 rule findings beside 5 random.
        let previous = findings(&[("BR", (2, 1), (5, 1))]);
        let lines = lines(&current, &previous, "BR", 5);
        let all = line(&lines, "hit-rate");
        assert_eq!((all.value, all.count), (None, 13), "the overall hit rate would give the rule's over 3 findings");
        assert_eq!(all.previous, None, "the period before is judged on its own counts: 2 beside 5");
        assert_eq!((all.region_median, all.countries), (Some(0.3), 1), "UY's alone (6 of 20): BR's is not shown, AR's under the threshold");
        let random = line(&lines, "hit-rate-random");
        assert_eq!((random.value, random.previous), (Some(0.2), Some(0.2)));
        assert_eq!(random.countries, 2, "BR's and UY's");
        assert!(random.region_median.is_some_and(|m| (m - 0.15).abs() < 1e-12), "{:?}", random.region_median);
        let uy = super::lines(&current, &previous, "UY", 5);
        assert_eq!(line(&uy, "hit-rate").value, Some(0.3), "10 beside 10: shown");
    }

    #[test]
    fn every_article_the_monitor_measures_has_indicators_and_a_title() {
        for article in ["7.1", "7.4", "7.6", "7.8", "8", "10.1", "10.4"] {
            assert!(INDICATORS.iter().any(|i| i.article == article), "{article}");
            assert!(!article_title(article).is_empty());
        }
        let mut keys: Vec<&str> = INDICATORS.iter().map(|i| i.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), INDICATORS.len(), "keys are unique");
    }
}
