//! What a release-time figure is asked for (`super::figures` computes it): the interval
//! measured, the segments grouped by, and the periods of a trend. The HTTP query's words and
//! the report's are these types' names.

use serde::Serialize;

use crate::clock::Millis;

/// The interval measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interval {
    /// Arrival of the goods to release: the WCO TRS figure (WTO TFA Art. 7.6).
    ArrivalToRelease,
    /// First submission to release.
    LodgementToRelease,
    /// Arrival to lodgement: negative when the declaration was lodged before arrival.
    ArrivalToLodgement,
    /// An agency's part: its document routed to its first answer.
    AgencyFirstAnswer,
    /// An agency's part: its document routed to its final decision.
    AgencyDecision,
    /// Time on hold.
    Hold,
    /// Time a query waited for the trader.
    QueryTrader,
    /// Time a query waited for the agency after the trader answered.
    QueryAgency,
}

impl Interval {
    pub const ALL: [Interval; 8] = [
        Interval::ArrivalToRelease,
        Interval::LodgementToRelease,
        Interval::ArrivalToLodgement,
        Interval::AgencyFirstAnswer,
        Interval::AgencyDecision,
        Interval::Hold,
        Interval::QueryTrader,
        Interval::QueryAgency,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::ArrivalToRelease => "arrival-to-release",
            Interval::LodgementToRelease => "lodgement-to-release",
            Interval::ArrivalToLodgement => "arrival-to-lodgement",
            Interval::AgencyFirstAnswer => "agency-first-answer",
            Interval::AgencyDecision => "agency-decision",
            Interval::Hold => "hold",
            Interval::QueryTrader => "query-trader",
            Interval::QueryAgency => "query-agency",
        }
    }
    pub fn parse(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == s)
    }
    /// Measured per agency's part, not per consignment.
    pub fn per_agency(self) -> bool {
        matches!(self, Interval::AgencyFirstAnswer | Interval::AgencyDecision)
    }
}

/// A segment the figures can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dimension {
    Agency,
    AgencyKind,
    DocumentType,
    /// Origin to destination, `AR-BR`.
    Corridor,
    BorderPost,
    TransportMode,
    HsChapter,
    /// `with-hold`, `with-query` or `without`.
    Channel,
    /// `pre-arrival`, `post-arrival`, or `unknown` (no arrival known).
    PreArrival,
    /// The strictest risk channel of its deliveries: `red`, `yellow`, `green`, `unselected`.
    RiskChannel,
}

impl Dimension {
    pub const ALL: [Dimension; 10] = [
        Dimension::Agency,
        Dimension::AgencyKind,
        Dimension::DocumentType,
        Dimension::Corridor,
        Dimension::BorderPost,
        Dimension::TransportMode,
        Dimension::HsChapter,
        Dimension::Channel,
        Dimension::PreArrival,
        Dimension::RiskChannel,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Agency => "agency",
            Dimension::AgencyKind => "agencyKind",
            Dimension::DocumentType => "documentType",
            Dimension::Corridor => "corridor",
            Dimension::BorderPost => "borderPost",
            Dimension::TransportMode => "transportMode",
            Dimension::HsChapter => "hsChapter",
            Dimension::Channel => "channel",
            Dimension::PreArrival => "preArrival",
            Dimension::RiskChannel => "riskChannel",
        }
    }
    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
    /// Read from each agency's part rather than the consignment.
    pub fn per_agency(self) -> bool {
        matches!(self, Dimension::Agency | Dimension::AgencyKind)
    }
}

/// Periods of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Day,
    /// ISO weeks, from Monday.
    Week,
}

impl Trend {
    pub fn parse(s: &str) -> Option<Trend> {
        match s {
            "day" => Some(Trend::Day),
            "week" => Some(Trend::Week),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Day => "day",
            Trend::Week => "week",
        }
    }
    /// The start (midnight UTC) of the period holding `at`.
    pub fn period_start(self, at: Millis) -> Millis {
        const DAY: Millis = 86_400_000;
        let day = at.div_euclid(DAY);
        let start = match self {
            Trend::Day => day,
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            Trend::Week => day - (day + 3).rem_euclid(7),
        };
        start * DAY
    }
    /// The first day (`YYYY-MM-DD`, UTC) of the period holding `at`.
    #[cfg(test)]
    fn period(self, at: Millis) -> String {
        crate::clock::rfc3339(self.period_start(at))[..10].to_owned()
    }
}

/// What a reader asks for.
#[derive(Debug, Clone)]
pub struct FiguresRequest {
    pub interval: Interval,
    pub group_by: Vec<Dimension>,
    pub trend: Option<Trend>,
    /// Width of the mode's bins.
    pub mode_bin_ms: i64,
    /// Read from each agency's part whatever the interval (an agency reads its own parts only).
    pub agency_rows: bool,
}

impl FiguresRequest {
    /// Whether the figures are read from each agency's part rather than each consignment.
    pub fn per_agency(&self) -> bool {
        self.agency_rows || self.interval.per_agency() || self.group_by.iter().any(|d| d.per_agency())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-30 is a Monday; 2026-12-06 a Sunday.
        let at = |d: &str| crate::clock::parse_rfc3339(d).unwrap();
        assert_eq!(Trend::Week.period(at("2026-12-06")), "2026-11-30");
        assert_eq!(Trend::Week.period(at("2026-11-30")), "2026-11-30");
        assert_eq!(Trend::Day.period(at("2026-12-06") + 3_600_000), "2026-12-06");
    }
}
