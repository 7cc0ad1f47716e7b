//! The published release-time report (`ventanilla report release-times`): the figures WTO TFA
//! Art. 7.6 asks members to publish, per segment, with the method stated and suppressed as the
//! public figures are (`super::public`: the same cells, for a calendar month, as the public API
//! gives), as HTML (printable; PDF through Chromium) or CSV.

use super::figures::{AgencyPart, Cell, Dimension, Figures, Interval, METHOD};
use super::public::{publication, Period};
use crate::clock::{rfc3339, Millis};
use crate::domain::AgencyId;
use crate::store::{ReleaseTimesQuery, Store, StoreError};

/// The report's sections: each interval, by each segment it is published by.
pub const SECTIONS: [(Interval, &[Dimension]); 6] = [
    (Interval::ArrivalToRelease, &[Dimension::Corridor, Dimension::TransportMode, Dimension::BorderPost, Dimension::HsChapter, Dimension::Channel, Dimension::PreArrival]),
    (Interval::LodgementToRelease, &[Dimension::Corridor, Dimension::TransportMode, Dimension::Channel]),
    (Interval::ArrivalToLodgement, &[Dimension::Corridor]),
    (Interval::AgencyDecision, &[Dimension::AgencyKind, Dimension::TransportMode]),
    (Interval::Hold, &[Dimension::AgencyKind]),
    (Interval::QueryTrader, &[Dimension::AgencyKind]),
];

/// What the report is made of: for each section, its figures by each of its segments (the
/// first of each, by none: the interval overall).
pub struct Report {
    pub from: Millis,
    pub to: Millis,
    /// Intervals that closed from then on are not counted.
    pub closed_before: Millis,
    pub min_count: usize,
    pub sections: Vec<(Interval, Vec<Figures>)>,
}

/// The report of the consignments lodged in `[from, to)`, public cells only, counting the
/// intervals that closed before `to + settle_ms` (as the public figures of a month do).
pub async fn build(
    store: &dyn Store,
    from: Millis,
    to: Millis,
    min_count: usize,
    settle_ms: Millis,
    kind_of: &(dyn Fn(&AgencyId) -> String + Sync),
) -> Result<Report, StoreError> {
    let q = ReleaseTimesQuery { from, to, owner: None, agency: None };
    let (consignments, agencies) = store.read_with(move |l| Ok((l.release_times(&q)?, l.agency_release_times(&q)?))).await?;
    let period = Period { from, to, closed_before: to.saturating_add(settle_ms) };
    let min_count = min_count.max(1);
    let mut sections = Vec::new();
    for (interval, dimensions) in SECTIONS {
        let parts = agencies.iter().map(|(c, a)| (c, AgencyPart { part: a, kind: kind_of(&a.agency).into() }));
        let published = publication(interval, consignments.iter(), parts, period, 3_600_000, min_count);
        let all: Vec<Figures> =
            std::iter::once(None).chain(dimensions.iter().copied().map(Some)).filter_map(|d| published.figures(d, None)).collect();
        sections.push((interval, all));
    }
    Ok(Report { from, to, closed_before: period.closed_before, min_count, sections })
}

fn title(i: Interval) -> &'static str {
    match i {
        Interval::ArrivalToRelease => "Average release time: arrival of the goods to release (WCO TRS; WTO TFA Art. 7.6)",
        Interval::LodgementToRelease => "Lodgement of the declaration to release",
        Interval::ArrivalToLodgement => "Arrival to lodgement (negative: lodged before arrival, pre-arrival processing)",
        Interval::AgencyFirstAnswer => "Each agency: document routed to its first answer",
        Interval::AgencyDecision => "Each agency: document routed to its decision",
        Interval::Hold => "Time on hold (inspection, sampling)",
        Interval::QueryTrader => "Queries: time waiting for the trader",
        Interval::QueryAgency => "Queries: time waiting for the agency",
    }
}

/// Hours, with two decimals, as the report prints durations.
fn hours(ms: f64) -> String {
    format!("{:.2}", ms / 3_600_000.0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn segment(cell: &Cell) -> String {
    if cell.group.is_empty() {
        "all".to_owned()
    } else {
        cell.group.values().cloned().collect::<Vec<_>>().join(" / ")
    }
}

/// The figures of a cell, in hours: mean, median, p90, mode, min, max, outliers, mean without
/// outliers; `None` when suppressed or empty.
fn row(cell: &Cell) -> Option<[String; 7]> {
    let stats = cell.stats.as_ref()?;
    let s = stats.summary.as_ref()?;
    let without = cell.without_outliers.as_ref().and_then(|w| w.summary.as_ref()).map_or_else(String::new, |w| hours(w.mean_ms));
    Some([
        stats.count.to_string(),
        hours(s.mean_ms),
        hours(s.median_ms),
        hours(s.p90_ms),
        hours(s.mode_ms as f64),
        cell.outliers.as_ref().map_or(0, |o| o.count).to_string(),
        without,
    ])
}

/// The published columns: no minimum or maximum, each one consignment's own time.
const COLUMNS: [&str; 7] = ["consignments", "mean (h)", "median (h)", "p90 (h)", "mode (h)", "outliers", "mean without outliers (h)"];

/// The report as one self-contained HTML page.
pub fn html(r: &Report) -> String {
    let mut out = String::new();
    let period = format!("{} to {}", &rfc3339(r.from)[..10], &rfc3339(r.to)[..10]);
    out.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Release-time report, {period}</title>\
<style>body{{font-family:sans-serif;margin:2rem;color:#1d2733}}table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}\
th,td{{border-bottom:1px solid #ccd;padding:.25rem .6rem;text-align:right}}th:first-child,td:first-child{{text-align:left}}\
h2{{margin-top:2rem}}.note{{font-size:.9rem;color:#445}}</style></head><body>\
<h1>Release-time report</h1><p>Consignments lodged from {period} (UTC), measured from the single window's own events.</p>"
    ));
    for (interval, all) in &r.sections {
        out.push_str(&format!("<h2 id=\"{}\">{}</h2>", interval.as_str(), escape(title(*interval))));
        for f in all {
            let by = if f.group_by.is_empty() { "all consignments".to_owned() } else { format!("by {}", f.group_by.join(", ")) };
            out.push_str(&format!("<h3>{}</h3><table data-interval=\"{}\" data-group-by=\"{}\"><tr><th>segment</th>", escape(&by), interval.as_str(), f.group_by.join(",")));
            for c in COLUMNS {
                out.push_str(&format!("<th>{c}</th>"));
            }
            out.push_str("</tr>");
            let cells: Vec<&Cell> = if f.group_by.is_empty() { vec![&f.overall] } else { f.groups.iter().collect() };
            for cell in cells {
                out.push_str(&format!("<tr><td>{}</td>", escape(&segment(cell))));
                match row(cell) {
                    Some(values) => values.iter().for_each(|v| out.push_str(&format!("<td>{v}</td>"))),
                    None if cell.suppressed => out.push_str(&format!("<td colspan=\"{}\">suppressed (see the method)</td>", COLUMNS.len())),
                    None => out.push_str(&format!("<td colspan=\"{}\">none</td>", COLUMNS.len())),
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        }
    }
    out.push_str(&format!(
        "<h2>Method</h2><p class=\"note\">{}</p><p class=\"note\">Events: lodgement is the first submission of a document \
naming no border post; arrival is the first answer to the carrier's border-crossing notice (the border post registering the \
goods); release is when every agency has released its current documents. Amended versions replace the ones they amend; \
answers that changed nothing (duplicates, late, stale) are not counted. Holds and queries of several agencies at once are \
counted once per consignment. Intervals that closed from {} on are not counted. Segments of fewer than {} consignments, or \
of fewer besides their largest trader's, are suppressed, and others with them wherever one could be computed from the rest \
(a table's total, the days of a week, an agency kind's agencies), so that no trader's own times can be read.</p></body></html>",
        escape(METHOD),
        rfc3339(r.closed_before),
        r.min_count
    ));
    out
}

/// The report as CSV: one line per interval, segment and cell.
pub fn csv(r: &Report) -> String {
    let mut out = String::from("interval,group_by,segment,suppressed,consignments,mean_h,median_h,p90_h,mode_h,outliers,mean_without_outliers_h\n");
    let quote = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() };
    for (interval, all) in &r.sections {
        for f in all {
            let cells: Vec<&Cell> = if f.group_by.is_empty() { vec![&f.overall] } else { f.groups.iter().collect() };
            for cell in cells {
                let values = row(cell).map(|v| v.join(",")).unwrap_or_else(|| ",".repeat(COLUMNS.len() - 1));
                out.push_str(&format!(
                    "{},{},{},{},{}\n",
                    interval.as_str(),
                    quote(&f.group_by.join("+")),
                    quote(&segment(cell)),
                    cell.suppressed,
                    values
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_publishes_only_what_the_public_figures_do() {
        for (interval, dimensions) in SECTIONS {
            for d in dimensions {
                assert!(super::super::public::groupings(interval).contains(d), "{interval:?} by {d:?}");
            }
        }
    }
}
