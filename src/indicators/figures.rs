//! The figures of the release-time indicators: the facts of the consignments asked for, grouped
//! by the segments asked for (and periods, for a trend), each group's cell computed by
//! `super::statistics`, the cells in parallel (rayon) on up to four of the machine's cores.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use rayon::prelude::*;

use crate::clock::Millis;
use crate::store::{AgencyReleaseTimes, ConsignmentReleaseTimes};

pub use super::request::{Dimension, FiguresRequest, Interval, Trend};
pub use super::statistics::{cell, stats, Cell, Outliers, Stats, Summary, METHOD};

/// The answer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    #[schemars(with = "String")]
    pub interval: Interval,
    pub from: String,
    pub to: String,
    pub group_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub trend: Option<Trend>,
    pub mode_bin_ms: i64,
    /// Cells of fewer consignments were suppressed (public figures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_count: Option<usize>,
    /// Only intervals that closed before this time are counted (public figures only: a
    /// month's figures do not change once published).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_before: Option<String>,
    pub method: &'static str,
    /// Every row counted, whatever its group.
    pub overall: Cell,
    /// One per group.
    pub groups: Vec<Cell>,
    /// One per group and period, when a trend is asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trend_cells: Vec<Cell>,
}

/// FNV-1a for the group keys, hashed once per row: they are short segment values (codes the
/// schemas bound: countries, modes, UN/LOCODEs, HS chapters, agency ids), a few dozen distinct
/// ones per query, so the standard keyed hash's protection against crafted collisions buys
/// little here and costs several times more per row.
pub(super) type Fnv = std::hash::BuildHasherDefault<FnvHasher>;

#[derive(Default)]
pub(super) struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// What the figures read of a consignment's facts: the store's rows, or a gateway's index of
/// them (`super::index`).
pub trait ConsignmentFacts {
    fn lodged_at(&self) -> Millis;
    fn arrived_at(&self) -> Option<Millis>;
    fn released_at(&self) -> Option<Millis>;
    fn hold_ms(&self) -> i64;
    fn query_trader_ms(&self) -> i64;
    fn query_agency_ms(&self) -> i64;
    /// Its value of a segment that is the consignment's (not an agency's).
    fn segment(&self, d: Dimension) -> Cow<'_, str>;
    /// The participant that opened it.
    fn owner(&self) -> Cow<'_, str>;
    /// When it was released or refused.
    fn decided_at(&self) -> Option<Millis>;
    /// What it took in paperwork (the TFA monitor's Art. 10.1), once computed.
    fn formalities(&self) -> Option<crate::store::Formalities>;
}

/// What the figures read of an agency's part in a consignment.
pub trait AgencyFacts {
    fn agency(&self) -> Cow<'_, str>;
    fn agency_kind(&self) -> Cow<'_, str>;
    fn routed_at(&self) -> Millis;
    fn first_answer_at(&self) -> Option<Millis>;
    fn decided_at(&self) -> Option<Millis>;
    fn hold_ms(&self) -> i64;
    fn query_trader_ms(&self) -> i64;
    fn query_agency_ms(&self) -> i64;
    /// How risk management treated it (the TFA monitor's Art. 7.4), once computed.
    fn treatment(&self) -> Option<Treatment>;
}

/// How risk management treated an agency's part in a consignment (Art. 7.4), as the monitor
/// reads it from [`crate::store::AgencySelectivity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Treatment {
    /// The strictest channel selected; none: not selected.
    pub channel: Option<crate::risk::Channel>,
    /// What selected it.
    pub source: crate::risk::Source,
    /// Whether its inspections found an irregularity; none: no inspection reported performed.
    pub irregularity: Option<bool>,
    /// Whether a standing instruction gave its decision.
    pub standing_instruction: bool,
}

impl Treatment {
    pub fn of(s: &crate::store::AgencySelectivity) -> Treatment {
        let channel = match s.channel {
            "red" => Some(crate::risk::Channel::Red),
            "yellow" => Some(crate::risk::Channel::Yellow),
            "green" => Some(crate::risk::Channel::Green),
            _ => None,
        };
        let source = match s.source {
            "mandatory" => crate::risk::Source::Mandatory,
            "rule" => crate::risk::Source::Rule,
            "model" => crate::risk::Source::Model,
            "random" => crate::risk::Source::Random,
            _ => crate::risk::Source::None,
        };
        Treatment { channel, source, irregularity: s.finding.as_deref().map(|f| f == "irregularity"), standing_instruction: s.standing_instruction }
    }
}

pub(super) fn consignment_value(c: &impl ConsignmentFacts, interval: Interval) -> Option<i64> {
    let positive = |v: i64| (v > 0).then_some(v);
    match interval {
        Interval::ArrivalToRelease => Some(c.released_at()? - c.arrived_at()?),
        Interval::LodgementToRelease => Some(c.released_at()? - c.lodged_at()),
        Interval::ArrivalToLodgement => Some(c.lodged_at() - c.arrived_at()?),
        Interval::Hold => positive(c.hold_ms()),
        Interval::QueryTrader => positive(c.query_trader_ms()),
        Interval::QueryAgency => positive(c.query_agency_ms()),
        Interval::AgencyFirstAnswer | Interval::AgencyDecision => None,
    }
}

pub(super) fn agency_value(c: &impl ConsignmentFacts, a: &impl AgencyFacts, interval: Interval) -> Option<i64> {
    let positive = |v: i64| (v > 0).then_some(v);
    match interval {
        Interval::AgencyFirstAnswer => Some(a.first_answer_at()? - a.routed_at()),
        Interval::AgencyDecision => Some(a.decided_at()? - a.routed_at()),
        Interval::Hold => positive(a.hold_ms()),
        Interval::QueryTrader => positive(a.query_trader_ms()),
        Interval::QueryAgency => positive(a.query_agency_ms()),
        other => consignment_value(c, other),
    }
}

/// When a consignment's interval closed, so that nothing can change it any more: its last
/// event (release; arrival or lodgement), or for its holds and queries, its decision.
pub(super) fn consignment_closed_at(c: &impl ConsignmentFacts, interval: Interval) -> Option<Millis> {
    match interval {
        Interval::ArrivalToRelease | Interval::LodgementToRelease => c.released_at(),
        Interval::ArrivalToLodgement => Some(c.lodged_at().max(c.arrived_at()?)),
        Interval::Hold | Interval::QueryTrader | Interval::QueryAgency => c.decided_at(),
        Interval::AgencyFirstAnswer | Interval::AgencyDecision => None,
    }
}

/// When an agency's part of an interval closed: its first answer, or its decision.
pub(super) fn agency_closed_at(c: &impl ConsignmentFacts, a: &impl AgencyFacts, interval: Interval) -> Option<Millis> {
    match interval {
        Interval::AgencyFirstAnswer => a.first_answer_at(),
        Interval::AgencyDecision | Interval::Hold | Interval::QueryTrader | Interval::QueryAgency => a.decided_at(),
        other => consignment_closed_at(c, other),
    }
}

/// A consignment's value of a segment, from its facts as the store keeps them.
pub fn segment_of(c: &ConsignmentReleaseTimes, d: Dimension) -> Cow<'_, str> {
    fn known(v: &Option<String>) -> Cow<'_, str> {
        Cow::Borrowed(v.as_deref().unwrap_or("unknown"))
    }
    match d {
        Dimension::DocumentType => Cow::Borrowed(&c.document_type),
        Dimension::Corridor => Cow::Owned(format!("{}-{}", c.origin, c.destination)),
        Dimension::BorderPost => known(&c.dims.border_post),
        Dimension::TransportMode => known(&c.dims.transport_mode),
        Dimension::HsChapter => known(&c.dims.hs_chapter),
        Dimension::Channel => Cow::Borrowed(&c.channel),
        Dimension::PreArrival => Cow::Borrowed(pre_arrival(c.lodged_at, c.arrived_at)),
        Dimension::RiskChannel => Cow::Borrowed(&c.risk_channel),
        Dimension::Agency | Dimension::AgencyKind => Cow::Borrowed("unknown"),
    }
}

/// `pre-arrival` when lodged before the goods arrived, `post-arrival` after, `unknown` when
/// their arrival is not known.
pub fn pre_arrival(lodged_at: Millis, arrived_at: Option<Millis>) -> &'static str {
    match arrived_at {
        Some(arrived) if lodged_at < arrived => "pre-arrival",
        Some(_) => "post-arrival",
        None => "unknown",
    }
}

impl<T: ConsignmentFacts> ConsignmentFacts for &T {
    fn lodged_at(&self) -> Millis {
        (**self).lodged_at()
    }
    fn arrived_at(&self) -> Option<Millis> {
        (**self).arrived_at()
    }
    fn released_at(&self) -> Option<Millis> {
        (**self).released_at()
    }
    fn hold_ms(&self) -> i64 {
        (**self).hold_ms()
    }
    fn query_trader_ms(&self) -> i64 {
        (**self).query_trader_ms()
    }
    fn query_agency_ms(&self) -> i64 {
        (**self).query_agency_ms()
    }
    fn segment(&self, d: Dimension) -> Cow<'_, str> {
        (**self).segment(d)
    }
    fn owner(&self) -> Cow<'_, str> {
        (**self).owner()
    }
    fn decided_at(&self) -> Option<Millis> {
        (**self).decided_at()
    }
    fn formalities(&self) -> Option<crate::store::Formalities> {
        (**self).formalities()
    }
}

impl ConsignmentFacts for ConsignmentReleaseTimes {
    fn lodged_at(&self) -> Millis {
        self.lodged_at
    }
    fn arrived_at(&self) -> Option<Millis> {
        self.arrived_at
    }
    fn released_at(&self) -> Option<Millis> {
        self.released_at
    }
    fn hold_ms(&self) -> i64 {
        self.hold_ms
    }
    fn query_trader_ms(&self) -> i64 {
        self.query_trader_ms
    }
    fn query_agency_ms(&self) -> i64 {
        self.query_agency_ms
    }
    fn segment(&self, d: Dimension) -> Cow<'_, str> {
        segment_of(self, d)
    }
    fn owner(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.owner)
    }
    fn decided_at(&self) -> Option<Millis> {
        self.decided_at
    }
    fn formalities(&self) -> Option<crate::store::Formalities> {
        self.formalities
    }
}

/// An agency's part as the store keeps it, with its agency's kind.
#[derive(Clone)]
pub struct AgencyPart<'a> {
    pub part: &'a AgencyReleaseTimes,
    pub kind: Cow<'a, str>,
}

impl AgencyFacts for AgencyPart<'_> {
    fn agency(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.part.agency.as_str())
    }
    fn agency_kind(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.kind)
    }
    fn routed_at(&self) -> Millis {
        self.part.routed_at
    }
    fn first_answer_at(&self) -> Option<Millis> {
        self.part.first_answer_at
    }
    fn decided_at(&self) -> Option<Millis> {
        self.part.decided_at
    }
    fn hold_ms(&self) -> i64 {
        self.part.hold_ms
    }
    fn query_trader_ms(&self) -> i64 {
        self.part.query_trader_ms
    }
    fn query_agency_ms(&self) -> i64 {
        self.part.query_agency_ms
    }
    fn treatment(&self) -> Option<Treatment> {
        self.part.selectivity.as_ref().map(Treatment::of)
    }
}

/// The figures `request` asks for, of the consignments (`consignments`, read when the figures
/// are per consignment) or of the agencies' parts (`agencies`, with their consignments, read
/// when they are per agency): the caller selects the period and the reader's scope.
pub fn figures<'a, C, A>(
    request: &FiguresRequest,
    consignments: impl Iterator<Item = C>,
    agencies: impl Iterator<Item = (C, A)>,
    from: Millis,
    to: Millis,
) -> Figures
where
    C: ConsignmentFacts + 'a,
    A: AgencyFacts + 'a,
{
    // Groups by their key's text (the segments' values, each followed by a separator no value
    // holds), built in one reused buffer: no allocation per row.
    const SEP: char = '\u{1f}';
    let mut groups: HashMap<String, Vec<i64>, Fnv> = HashMap::default();
    let mut trend: HashMap<(String, i64), Vec<i64>, Fnv> = HashMap::default();
    let mut all = Vec::new();
    let mut text = String::new();
    let mut add = |text: &str, lodged_at: Millis, value: i64| {
        all.push(value);
        match groups.get_mut(text) {
            Some(values) => values.push(value),
            None => {
                groups.insert(text.to_owned(), vec![value]);
            }
        }
        if let Some(t) = request.trend {
            trend.entry((text.to_owned(), t.period_start(lodged_at))).or_default().push(value);
        }
    };
    if request.per_agency() {
        for (c, a) in agencies {
            let Some(value) = agency_value(&c, &a, request.interval) else { continue };
            text.clear();
            for d in &request.group_by {
                let v = match d {
                    Dimension::Agency => a.agency(),
                    Dimension::AgencyKind => a.agency_kind(),
                    other => c.segment(*other),
                };
                text.push_str(&v);
                text.push(SEP);
            }
            add(&text, c.lodged_at(), value);
        }
    } else {
        for c in consignments {
            let Some(value) = consignment_value(&c, request.interval) else { continue };
            text.clear();
            for d in &request.group_by {
                text.push_str(&c.segment(*d));
                text.push(SEP);
            }
            add(&text, c.lodged_at(), value);
        }
    }
    let named = |key: &str| -> BTreeMap<String, String> {
        request.group_by.iter().map(|d| d.as_str().to_owned()).zip(key.split(SEP).map(str::to_owned)).collect()
    };
    let mut jobs: Vec<Job> = vec![(BTreeMap::new(), None, all)];
    jobs.extend(groups.into_iter().map(|(k, v)| (named(&k), None, v)));
    jobs.extend(trend.into_iter().map(|((k, p), v)| (named(&k), Some((p, crate::clock::rfc3339(p)[..10].to_owned())), v)));
    let mut cells = cells_in_parallel(jobs, request).into_iter();
    let overall = cells.next().map(|(_, c)| c).unwrap_or_else(|| cell(BTreeMap::new(), None, Vec::new(), request.mode_bin_ms));
    let (mut group_cells, mut trend_cells): (Vec<_>, Vec<_>) = cells.partition(|(p, _)| p.is_none());
    group_cells.sort_by(|a, b| a.1.group.cmp(&b.1.group));
    trend_cells.sort_by(|a, b| a.1.group.cmp(&b.1.group).then(a.0.cmp(&b.0)));
    Figures {
        interval: request.interval,
        from: crate::clock::rfc3339(from),
        to: crate::clock::rfc3339(to),
        group_by: request.group_by.iter().map(|d| d.as_str().to_owned()).collect(),
        trend: request.trend,
        mode_bin_ms: request.mode_bin_ms,
        min_count: None,
        closed_before: None,
        method: METHOD,
        overall,
        groups: group_cells.into_iter().map(|(_, c)| c).collect(),
        trend_cells: trend_cells.into_iter().map(|(_, c)| c).collect(),
    }
}

/// A cell to compute: its group, its period (start, first day) in a trend, its values.
type Job = (BTreeMap<String, String>, Option<(i64, String)>, Vec<i64>);

/// The cells of `jobs`, in their order, computed on the figures' own threads ([`pool`]).
fn cells_in_parallel(jobs: Vec<Job>, request: &FiguresRequest) -> Vec<(Option<i64>, Cell)> {
    let one = |(group, period, values): Job| {
        let (start, label) = period.map_or((None, None), |(p, l)| (Some(p), Some(l)));
        (start, cell(group, label, values, request.mode_bin_ms))
    };
    match pool() {
        Some(pool) => pool.install(|| jobs.into_par_iter().map(one).collect()),
        None => jobs.into_iter().map(one).collect(),
    }
}

/// The threads the figures' cells are computed on: as many as the machine has cores, four at
/// most, so a computation never takes every core from the threads that serve requests. `None`
/// when the system gives no thread: the cells are then computed on the caller's.
pub(super) fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("figures-{i}")).build().ok()
    })
    .as_ref()
}
