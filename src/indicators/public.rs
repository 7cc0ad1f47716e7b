//! The public release-time figures: what anyone may read without identity, built so that no
//! answer, nor any set of answers, gives away one consignment's times.
//!
//! - **A fixed set of tables.** For an interval and one calendar month: the overall figure, the
//!   figures by each single segment of [`groupings`], and per day and per week (over every
//!   consignment). No other grouping (two segments at once, a segment per day) is published,
//!   and no other period: answers over periods that overlap would tell, by their difference,
//!   the consignments of the part they do not share.
//! - **Fixed once published.** A month is published once it has ended and the region's settling
//!   time has passed; its figures count only the intervals that closed (release, decision...)
//!   before then, so that a consignment released later does not change them: polling a month
//!   that is still moving would show each consignment as it enters.
//! - **Small cells suppressed** (primary suppression): a cell of fewer consignments than the
//!   threshold, or one whose consignments other than its largest owner's are fewer than the
//!   threshold (that owner could subtract its own).
//! - **No cell follows from the others** (complementary suppression). Counts and means are
//!   sums: a table's cells add up to the overall figure, days add up to weeks, an agency kind's
//!   cell is its agencies' cells, and any set of cells of one table that holds exactly the
//!   consignments of a set of cells of another has the same sum (a corridor made of two border
//!   posts; two corridors that crossed the same two posts). Every such relation is found in the
//!   data (the connected parts of each two tables' cells that share values), and
//!   cells are suppressed, smallest first, until no suppressed cell's count or sum is
//!   determined by the cells shown (an audit by linear algebra over every table of the month).
//! - **No single consignment's figure.** No minimum or maximum; no figures without outliers
//!   when fewer outliers than the threshold were left out (the difference would be theirs);
//!   the mode's bins are at least [`MIN_MODE_BIN_MS`] wide.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::figures::{
    agency_closed_at, agency_value, cell, consignment_closed_at, consignment_value, AgencyFacts, Cell, ConsignmentFacts, Dimension,
    Figures, Fnv, Interval, Trend, METHOD,
};
use crate::clock::{rfc3339, Millis};

/// The narrowest bin of the public figures' mode: an hour (a mode binned to the second is the
/// earliest consignment's own time when no two are alike).
pub const MIN_MODE_BIN_MS: i64 = 3_600_000;

/// The segments the public figures of `interval` are grouped by, one at a time. Agency and
/// agency kind group agencies' parts: the intervals of an agency's own (its answers, its holds
/// and queries), not the release intervals, which are the consignment's (grouped by agency, a
/// consignment would count once per agency).
pub fn groupings(interval: Interval) -> Vec<Dimension> {
    let consignments_own = matches!(interval, Interval::ArrivalToRelease | Interval::LodgementToRelease | Interval::ArrivalToLodgement);
    Dimension::ALL.into_iter().filter(|d| !(consignments_own && d.per_agency())).collect()
}

/// The trends published: per day and per week of the period, over every consignment.
pub const TRENDS: [Trend; 2] = [Trend::Day, Trend::Week];

/// The consignments counted: lodged in `[from, to)`, their interval closed before
/// `closed_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Millis,
    pub to: Millis,
    pub closed_before: Millis,
}

/// One table of a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Overall,
    By(Dimension),
    Trend(Trend),
    /// Groups the caller names, under this name (the TFA monitor's country: a destination).
    Named(&'static str),
}

/// Every public table of an interval over a period, suppressed together.
#[derive(Debug, Clone)]
pub struct Publication {
    pub interval: Interval,
    pub period: Period,
    pub mode_bin_ms: i64,
    pub min_count: usize,
    /// Each family of tables over the same values (the consignments; or the agencies' parts),
    /// the overall table first, with its cells.
    families: Vec<Vec<(Table, Vec<Cell>)>>,
}

impl Publication {
    /// The answer grouped by `group_by` (one segment) or per `trend` period, `None` when the
    /// public figures do not publish that (a segment not in [`groupings`], or both at once).
    pub fn figures(&self, group_by: Option<Dimension>, trend: Option<Trend>) -> Option<Figures> {
        let (family, groups, trend_cells) = match (group_by, trend) {
            (Some(_), Some(_)) => return None,
            (Some(d), None) => {
                let family = self.families.iter().find(|f| f.iter().any(|(t, _)| *t == Table::By(d)))?;
                (family, table(family, Table::By(d))?.to_vec(), Vec::new())
            }
            (None, trend) => {
                let family = self.families.first()?;
                let trend_cells = match trend {
                    Some(t) => table(family, Table::Trend(t))?.to_vec(),
                    None => Vec::new(),
                };
                (family, table(family, Table::Overall)?.to_vec(), trend_cells)
            }
        };
        let overall = table(family, Table::Overall)?.first()?.clone();
        Some(Figures {
            interval: self.interval,
            from: rfc3339(self.period.from),
            to: rfc3339(self.period.to),
            group_by: group_by.iter().map(|d| d.as_str().to_owned()).collect(),
            trend,
            mode_bin_ms: self.mode_bin_ms,
            min_count: Some(self.min_count),
            closed_before: Some(rfc3339(self.period.closed_before)),
            method: METHOD,
            overall,
            groups,
            trend_cells,
        })
    }

    /// Every answer it gives: by each segment, per each trend, and overall.
    pub fn views(&self) -> Vec<(Option<Dimension>, Option<Trend>)> {
        let mut views = vec![(None, None)];
        views.extend(groupings(self.interval).into_iter().map(|d| (Some(d), None)));
        views.extend(TRENDS.into_iter().map(|t| (None, Some(t))));
        views
    }
}

fn table(family: &[(Table, Vec<Cell>)], t: Table) -> Option<&[Cell]> {
    family.iter().find(|(k, _)| *k == t).map(|(_, cells)| cells.as_slice())
}

/// One cell while values are gathered.
struct Gathered {
    key: String,
    period: Option<Millis>,
    values: Vec<i64>,
    /// Consignments counted (an agency's part is a value; its consignment, the unit the
    /// threshold counts).
    units: usize,
    /// The consignment of the last value added, so that its other values count it once.
    last_unit: Option<u64>,
    /// Consignments per owner.
    owners: HashMap<u32, u32, Fnv>,
}

/// Tables over the same values: each value's cell in every table.
pub(super) struct Family {
    tables: Vec<Table>,
    by_key: Vec<HashMap<String, u32, Fnv>>,
    by_period: Vec<HashMap<Millis, u32, Fnv>>,
    cells: Vec<Vec<Gathered>>,
    /// Value-major: the cell of value `v` in table `t` is `members[v * tables.len() + t]`.
    members: Vec<u32>,
    /// Whether a cell of one owner's consignments alone is suppressed too (the TFA monitor's:
    /// its figures would be that trader's, for the public to read).
    sole_owner_suppressed: bool,
}

impl Family {
    pub(super) fn new(tables: Vec<Table>) -> Family {
        let n = tables.len();
        Family {
            tables,
            by_key: (0..n).map(|_| HashMap::default()).collect(),
            by_period: (0..n).map(|_| HashMap::default()).collect(),
            cells: (0..n).map(|_| Vec::new()).collect(),
            members: Vec::new(),
            sole_owner_suppressed: false,
        }
    }

    /// A family whose cells of one owner's consignments alone are suppressed too.
    pub(super) fn suppressing_sole_owners(tables: Vec<Table>) -> Family {
        Family { sole_owner_suppressed: true, ..Family::new(tables) }
    }

    /// Adds `value` of `owner` to its cell of table `t`: the one of `key`, or of `period`; the
    /// value is a consignment of its own.
    pub(super) fn add(&mut self, t: usize, key: &str, period: Option<Millis>, value: i64, owner: u32) {
        self.add_of(t, key, period, value, owner, None);
    }

    /// Adds `value` of `owner`, one of consignment `unit`'s (whose values are added one after
    /// another: each cell counts it once), to its cell of table `t`; `None`: a consignment of
    /// its own.
    pub(super) fn add_of(&mut self, t: usize, key: &str, period: Option<Millis>, value: i64, owner: u32, unit: Option<u64>) {
        let cells = &mut self.cells[t];
        let found = match period {
            Some(p) => self.by_period[t].get(&p).copied(),
            None => self.by_key[t].get(key).copied(),
        };
        let at = found.unwrap_or_else(|| {
            let at = cells.len() as u32;
            cells.push(Gathered { key: key.to_owned(), period, values: Vec::new(), units: 0, last_unit: None, owners: HashMap::default() });
            match period {
                Some(p) => self.by_period[t].insert(p, at),
                None => self.by_key[t].insert(key.to_owned(), at),
            };
            at
        });
        let c = &mut cells[at as usize];
        c.values.push(value);
        if unit.is_none() || c.last_unit != unit {
            c.units += 1;
            c.last_unit = unit;
            *c.owners.entry(owner).or_default() += 1;
        }
        self.members.push(at);
    }

    /// The tables' cells, suppressed as the module says.
    pub(super) fn publish(self, mode_bin_ms: i64, min_count: usize) -> Vec<(Table, Vec<Cell>)> {
        self.audit(min_count).render(mode_bin_ms, min_count)
    }

    /// The cells in their order, suppressed: those under the threshold, then as many more as
    /// the audit asks.
    pub(super) fn audit(self, min_count: usize) -> Audited {
        let Family { tables, mut cells, mut members, sole_owner_suppressed, .. } = self;
        // Each table's cells in one order, by period then value, whatever order the rows came
        // in: every computation of the same facts, on any gateway, suppresses the same cells
        // (two answers suppressed differently would show, together, what each hides).
        for (t, gathered) in cells.iter_mut().enumerate() {
            let mut order: Vec<usize> = (0..gathered.len()).collect();
            order.sort_by(|a, b| (gathered[*a].period, &gathered[*a].key).cmp(&(gathered[*b].period, &gathered[*b].key)));
            let mut place = vec![0u32; order.len()];
            for (new, old) in order.iter().enumerate() {
                place[*old] = new as u32;
            }
            let mut taken: Vec<Option<Gathered>> = std::mem::take(gathered).into_iter().map(Some).collect();
            *gathered = order.iter().filter_map(|old| taken[*old].take()).collect();
            for m in members.iter_mut().skip(t).step_by(tables.len()) {
                *m = place[*m as usize];
            }
        }
        let sizes: Vec<usize> = cells.iter().map(Vec::len).collect();
        let counts: Vec<usize> = cells.iter().flatten().map(|c| c.values.len()).collect();
        let overall: Vec<bool> = tables.iter().zip(&sizes).flat_map(|(t, n)| std::iter::repeat_n(*t == Table::Overall, *n)).collect();
        // Primary: too few consignments, or too few besides the largest owner's (and, where the
        // family says so, none besides).
        let mut suppressed: Vec<bool> = cells
            .iter()
            .flatten()
            .map(|c| {
                let n = c.units;
                let others = n - c.owners.values().max().copied().unwrap_or(0) as usize;
                n < min_count || ((others > 0 || sole_owner_suppressed) && others < min_count)
            })
            .collect();
        let equations = relations(&sizes, &members, &counts, tables.first() == Some(&Table::Overall));
        drop(members);
        protect(&equations, &counts, &overall, &mut suppressed);
        Audited { tables, cells, counts, overall, equations, suppressed }
    }
}

/// A family's cells, ordered and suppressed, before they are turned into figures.
pub(super) struct Audited {
    tables: Vec<Table>,
    cells: Vec<Vec<Gathered>>,
    counts: Vec<usize>,
    overall: Vec<bool>,
    equations: Vec<Equation>,
    /// By global id: each table's cells one after another.
    suppressed: Vec<bool>,
}

/// A cell as two families of the same tables both name it: its table's place, its key or
/// period.
pub(super) type CellKey = (usize, String, Option<Millis>);

impl Audited {
    fn keys(&self) -> impl Iterator<Item = CellKey> + '_ {
        self.cells.iter().enumerate().flat_map(|(t, cells)| cells.iter().map(move |g| (t, g.key.clone(), g.period)))
    }

    /// The cells suppressed.
    pub(super) fn suppressed(&self) -> Vec<CellKey> {
        self.keys().zip(&self.suppressed).filter(|(_, s)| **s).map(|(k, _)| k).collect()
    }

    /// Suppresses the cells of `keys` it has too, then as many more as the audit asks; whether
    /// any was not suppressed already.
    pub(super) fn suppress_also(&mut self, keys: &[CellKey]) -> bool {
        let ids: Vec<usize> = self.keys().enumerate().filter(|(_, k)| keys.contains(k)).map(|(id, _)| id).collect();
        let mut changed = false;
        for id in ids {
            changed |= !std::mem::replace(&mut self.suppressed[id], true);
        }
        if changed {
            protect(&self.equations, &self.counts, &self.overall, &mut self.suppressed);
        }
        changed
    }

    /// The figures: each table's cells, those suppressed with nothing but their group.
    pub(super) fn render(self, mode_bin_ms: i64, min_count: usize) -> Vec<(Table, Vec<Cell>)> {
        let Audited { tables, cells, suppressed, .. } = self;
        let mut ids = 0..;
        let mut out = Vec::with_capacity(tables.len());
        for (t, gathered) in tables.into_iter().zip(cells) {
            let mut cells: Vec<Cell> = gathered
                .into_iter()
                .map(|g| {
                    let hidden = ids.next().is_some_and(|id| suppressed[id]);
                    let group: BTreeMap<String, String> = match t {
                        Table::By(d) => BTreeMap::from([(d.as_str().to_owned(), g.key)]),
                        Table::Named(name) => BTreeMap::from([(name.to_owned(), g.key)]),
                        Table::Overall | Table::Trend(_) => BTreeMap::new(),
                    };
                    let label = g.period.map(|p| rfc3339(p)[..10].to_owned());
                    if hidden {
                        Cell { group, period: label, suppressed: true, stats: None, outliers: None, without_outliers: None }
                    } else {
                        public_cell(cell(group, label, g.values, mode_bin_ms), min_count)
                    }
                })
                .collect();
            if t == Table::Overall && cells.is_empty() {
                // Nothing counted: the overall figure is of nothing, below any threshold.
                let mut none = cell(BTreeMap::new(), None, Vec::new(), mode_bin_ms);
                none.suppressed = min_count > 0;
                if none.suppressed {
                    none.stats = None;
                }
                cells.push(none);
            }
            out.push((t, cells));
        }
        out
    }
}

/// A shown cell as the public reads it: no extremes (each is one consignment's time), and no
/// figures without its outliers when fewer than `min_count` were left out.
fn public_cell(mut c: Cell, min_count: usize) -> Cell {
    for s in [c.stats.as_mut(), c.without_outliers.as_mut()].into_iter().flatten() {
        if let Some(summary) = s.summary.as_mut() {
            summary.min_ms = None;
            summary.max_ms = None;
        }
    }
    if c.outliers.as_ref().is_some_and(|o| o.count > 0 && o.count < min_count) {
        c.without_outliers = None;
    }
    c
}

/// An exact relation between cells (global ids): the sum of `plus` is the sum of `minus` (a
/// cell and the cells it is made of; or cells of two tables that hold the same values).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Equation {
    plus: Vec<usize>,
    minus: Vec<usize>,
}

impl Equation {
    fn cells(&self) -> impl Iterator<Item = usize> + '_ {
        self.plus.iter().chain(&self.minus).copied()
    }

    fn contains(&self, cell: usize) -> bool {
        self.plus.contains(&cell) || self.minus.contains(&cell)
    }
}

/// The relations between the cells of a family's tables: for each two tables, each set of
/// cells of one that holds exactly the values of a set of cells of the other (the smallest such
/// sets: the connected parts of the graph of the cells that share values). A cell of one table
/// made of cells of the other (a table's cells and the overall, days and their week, agencies
/// and their kind) is one; so are two countries and the three border posts their consignments
/// crossed, whatever else the data nests.
///
/// With an overall table (`has_overall`), a part that holds every cell of both tables is left
/// out: the overall's relation with each of them gives it.
fn relations(sizes: &[usize], members: &[u32], counts: &[usize], has_overall: bool) -> Vec<Equation> {
    let tables = sizes.len();
    let offsets: Vec<usize> = sizes.iter().scan(0, |at, n| Some(std::mem::replace(at, *at + n))).collect();
    let mut equations: BTreeSet<Equation> = BTreeSet::new();
    for a in 0..tables {
        for b in a + 1..tables {
            // The pairs of cells (a's, b's) that share values.
            let (na, nb) = (sizes[a], sizes[b]);
            let cell_pairs = members.chunks_exact(tables).map(|m| (m[a], m[b]));
            let shared: Vec<(u32, u32)> = if na.saturating_mul(nb) <= 1 << 20 {
                let mut dense = vec![false; na * nb];
                cell_pairs.for_each(|(x, y)| dense[x as usize * nb + y as usize] = true);
                dense.into_iter().enumerate().filter(|(_, s)| *s).map(|(i, _)| ((i / nb) as u32, (i % nb) as u32)).collect()
            } else {
                let set: BTreeSet<(u32, u32)> = cell_pairs.collect();
                set.into_iter().collect()
            };
            // Connected parts: a's cells are nodes 0..na, b's na..na+nb.
            let mut parent: Vec<usize> = (0..na + nb).collect();
            fn root(parent: &mut [usize], mut x: usize) -> usize {
                while parent[x] != x {
                    parent[x] = parent[parent[x]];
                    x = parent[x];
                }
                x
            }
            for &(x, y) in &shared {
                let (rx, ry) = (root(&mut parent, x as usize), root(&mut parent, na + y as usize));
                if rx != ry {
                    parent[rx.max(ry)] = rx.min(ry);
                }
            }
            let mut parts: BTreeMap<usize, Equation> = BTreeMap::new();
            for node in 0..na + nb {
                let r = root(&mut parent, node);
                let e = parts.entry(r).or_insert(Equation { plus: Vec::new(), minus: Vec::new() });
                if node < na {
                    e.plus.push(offsets[a] + node);
                } else {
                    e.minus.push(offsets[b] + node - na);
                }
            }
            for (_, mut e) in parts {
                if e.plus.is_empty() || e.minus.is_empty() {
                    continue;
                }
                // Both sides hold the same values.
                debug_assert_eq!(e.plus.iter().map(|c| counts[*c]).sum::<usize>(), e.minus.iter().map(|c| counts[*c]).sum::<usize>());
                if has_overall && a != 0 && e.plus.len() == na && e.minus.len() == nb {
                    continue;
                }
                e.plus.sort_unstable();
                e.minus.sort_unstable();
                // x + y = z and z = x + y are one relation.
                if e.minus < e.plus {
                    std::mem::swap(&mut e.plus, &mut e.minus);
                }
                equations.insert(e);
            }
        }
    }
    equations.into_iter().collect()
}

/// Suppresses more cells until no suppressed cell's count or sum follows from `equations` and
/// the cells shown: first wherever an equation holds a single suppressed cell (the smallest
/// other cell of it goes too, the overall figure last), then by an audit of all of them at once.
fn protect(equations: &[Equation], counts: &[usize], overall: &[bool], suppressed: &mut [bool]) {
    // The cell to suppress with a disclosed one: the smallest shown among `candidates`, the
    // overall figure only when there is no other.
    let pick = |candidates: &mut dyn Iterator<Item = usize>, suppressed: &[bool]| {
        candidates.filter(|c| !suppressed[*c]).min_by_key(|c| (overall[*c], counts[*c], *c))
    };
    // Each round suppresses one more cell: at most as many rounds as cells.
    for _ in 0..=counts.len() {
        if let Some(single) = equations.iter().find(|e| e.cells().filter(|c| suppressed[*c]).count() == 1) {
            if let Some(c) = pick(&mut single.cells(), suppressed) {
                suppressed[c] = true;
                continue;
            }
        }
        let Some(disclosed) = determined(equations, suppressed) else { return };
        // A shown cell of a relation that holds it; else of one that holds a suppressed cell
        // tied to it through others (what its value was derived through); the overall last.
        let mut tied = vec![disclosed];
        let mut reached: HashSet<usize> = HashSet::from([disclosed]);
        let mut candidates: Vec<usize> = Vec::new();
        while let Some(u) = tied.pop() {
            for e in equations.iter().filter(|e| e.contains(u)) {
                for c in e.cells() {
                    if !suppressed[c] {
                        candidates.push(c);
                    } else if reached.insert(c) {
                        tied.push(c);
                    }
                }
            }
            if candidates.iter().any(|c| !overall[*c]) {
                break;
            }
        }
        match pick(&mut candidates.into_iter(), suppressed) {
            Some(c) => suppressed[c] = true,
            None => return,
        }
    }
}

/// A suppressed cell whose value follows from the equations and the shown cells: one whose
/// unit vector is in the row space of the equations restricted to the suppressed cells
/// (reduced row echelon form: a pivot column whose row has nothing in any free column).
fn determined(equations: &[Equation], suppressed: &[bool]) -> Option<usize> {
    const EPS: f64 = 1e-9;
    let unknowns: Vec<usize> = (0..suppressed.len()).filter(|c| suppressed[*c]).collect();
    let column: HashMap<usize, usize> = unknowns.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let width = unknowns.len();
    let mut rows: Vec<Vec<f64>> = equations
        .iter()
        .filter(|e| e.cells().any(|c| suppressed[c]))
        .map(|e| {
            let mut row = vec![0.0; width];
            for (c, sign) in e.plus.iter().map(|c| (c, 1.0)).chain(e.minus.iter().map(|c| (c, -1.0))) {
                if let Some(col) = column.get(c) {
                    row[*col] += sign;
                }
            }
            row
        })
        .collect();
    let mut pivots: Vec<(usize, usize)> = Vec::new();
    let mut r = 0;
    for c in 0..width {
        if r == rows.len() {
            break;
        }
        let Some(p) = (r..rows.len()).max_by(|a, b| rows[*a][c].abs().total_cmp(&rows[*b][c].abs())) else { break };
        if rows[p][c].abs() < EPS {
            continue;
        }
        rows.swap(r, p);
        let lead = rows[r][c];
        rows[r].iter_mut().for_each(|x| *x /= lead);
        let pivot = rows[r].clone();
        for (i, row) in rows.iter_mut().enumerate() {
            let f = row[c];
            if i != r && f.abs() >= EPS {
                row.iter_mut().zip(&pivot).for_each(|(x, p)| *x -= f * p);
            }
        }
        pivots.push((r, c));
        r += 1;
    }
    let is_pivot: HashSet<usize> = pivots.iter().map(|p| p.1).collect();
    pivots
        .iter()
        .find(|(r, c)| (0..width).all(|j| j == *c || is_pivot.contains(&j) || rows[*r][j].abs() < EPS))
        .map(|(_, c)| unknowns[*c])
}

/// Interned owners.
#[derive(Default)]
pub(super) struct Owners(HashMap<String, u32, Fnv>);

impl Owners {
    pub(super) fn id(&mut self, owner: &str) -> u32 {
        if let Some(id) = self.0.get(owner) {
            return *id;
        }
        let id = self.0.len() as u32;
        self.0.insert(owner.to_owned(), id);
        id
    }
}

/// The publication of `interval` over `period`: from the consignments (`consignments`) or the
/// agencies' parts (`agencies`, with their consignments) lodged in `[period.from, period.to)`,
/// which the caller selects; whatever closed on or after `period.closed_before` is left out.
pub fn publication<C, A>(
    interval: Interval,
    consignments: impl Iterator<Item = C>,
    agencies: impl Iterator<Item = (C, A)>,
    period: Period,
    mode_bin_ms: i64,
    min_count: usize,
) -> Publication
where
    C: ConsignmentFacts,
    A: AgencyFacts,
{
    let mut owners = Owners::default();
    let trends = TRENDS.map(Table::Trend);
    let segments = groupings(interval);
    let closed = |at: Option<Millis>| at.is_some_and(|at| at < period.closed_before);
    let mut families = Vec::new();
    if interval.per_agency() {
        let mut tables = vec![Table::Overall];
        tables.extend(segments.iter().map(|d| Table::By(*d)));
        tables.extend(trends);
        let mut f = Family::new(tables.clone());
        for (c, a) in agencies {
            let Some(value) = agency_value(&c, &a, interval).filter(|_| closed(agency_closed_at(&c, &a, interval))) else { continue };
            let owner = owners.id(&c.owner());
            for (t, table) in tables.iter().enumerate() {
                match table {
                    Table::Overall => f.add(t, "", None, value, owner),
                    Table::Named(name) => unreachable!("the release times have no table of named groups ({name})"),
                    Table::By(Dimension::Agency) => f.add(t, &a.agency(), None, value, owner),
                    Table::By(Dimension::AgencyKind) => f.add(t, &a.agency_kind(), None, value, owner),
                    Table::By(d) => f.add(t, &c.segment(*d), None, value, owner),
                    Table::Trend(tr) => f.add(t, "", Some(tr.period_start(c.lodged_at())), value, owner),
                }
            }
        }
        families.push(f.publish(mode_bin_ms, min_count));
    } else {
        let mut tables = vec![Table::Overall];
        tables.extend(segments.iter().filter(|d| !d.per_agency()).map(|d| Table::By(*d)));
        tables.extend(trends);
        let mut f = Family::new(tables.clone());
        for c in consignments {
            let Some(value) = consignment_value(&c, interval).filter(|_| closed(consignment_closed_at(&c, interval))) else { continue };
            let owner = owners.id(&c.owner());
            for (t, table) in tables.iter().enumerate() {
                match table {
                    Table::Overall => f.add(t, "", None, value, owner),
                    Table::Named(name) => unreachable!("the release times have no table of named groups ({name})"),
                    Table::By(d) => f.add(t, &c.segment(*d), None, value, owner),
                    Table::Trend(tr) => f.add(t, "", Some(tr.period_start(c.lodged_at())), value, owner),
                }
            }
        }
        families.push(f.publish(mode_bin_ms, min_count));
        // Holds and queries also by agency: each agency's own, a family of the parts.
        let by_agency: Vec<Dimension> = segments.iter().copied().filter(|d| d.per_agency()).collect();
        if !by_agency.is_empty() {
            let mut tables = vec![Table::Overall];
            tables.extend(by_agency.iter().map(|d| Table::By(*d)));
            let mut f = Family::new(tables.clone());
            for (c, a) in agencies {
                let Some(value) = agency_value(&c, &a, interval).filter(|_| closed(agency_closed_at(&c, &a, interval))) else { continue };
                let owner = owners.id(&c.owner());
                for (t, table) in tables.iter().enumerate() {
                    match table {
                        Table::By(Dimension::Agency) => f.add(t, &a.agency(), None, value, owner),
                        Table::By(_) => f.add(t, &a.agency_kind(), None, value, owner),
                        _ => f.add(t, "", None, value, owner),
                    }
                }
            }
            families.push(f.publish(mode_bin_ms, min_count));
        }
    }
    Publication { interval, period, mode_bin_ms, min_count, families }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::figures::{segment_of, AgencyPart};
    use crate::store::{AgencyReleaseTimes, ConsignmentReleaseTimes, DocumentDims};

    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 24 * HOUR;

    /// A consignment lodged `day` days after 1970-01-01, released `hours` later.
    fn row(n: usize, day: i64, mode: &str, channel: &str, hours: i64) -> ConsignmentReleaseTimes {
        let lodged = day * DAY + n as i64;
        ConsignmentReleaseTimes {
            ucr: crate::domain::Ucr::parse(&format!("U-{n}")).unwrap(),
            owner: format!("trader-{n}"),
            lodged_at: lodged,
            arrived_at: Some(lodged),
            released_at: Some(lodged + hours * HOUR),
            decided_at: Some(lodged + hours * HOUR),
            outcome: "released".into(),
            document_type: "customsDeclaration".into(),
            origin: "AR".into(),
            destination: "BR".into(),
            dims: DocumentDims { transport_mode: Some(mode.into()), hs_chapter: Some("02".into()), border_post: Some("BRURG".into()) },
            channel: channel.into(),
            hold_ms: 0,
            query_trader_ms: 0,
            query_agency_ms: 0,
            risk_channel: "green".into(),
            formalities: None,
        }
    }

    const MONTH: Period = Period { from: 0, to: 31 * DAY, closed_before: 40 * DAY };

    fn publish(rows: &[ConsignmentReleaseTimes], interval: Interval) -> Publication {
        let none = std::iter::empty::<(&ConsignmentReleaseTimes, AgencyPart<'_>)>();
        publication(interval, rows.iter(), none, MONTH, HOUR, 5)
    }

    /// Each cell of a table: its segment's value, whether suppressed, its count when shown.
    fn shown(p: &Publication, d: Dimension) -> Vec<(String, bool, Option<usize>)> {
        let f = p.figures(Some(d), None).unwrap();
        f.groups.iter().map(|g| (g.group[d.as_str()].clone(), g.suppressed, g.stats.as_ref().map(|s| s.count))).collect()
    }

    /// Count and sum of the cells shown, and of the overall figure.
    fn sums(cells: &[Cell]) -> (usize, f64) {
        cells.iter().filter_map(|c| c.stats.as_ref()).fold((0, 0.0), |(n, s), st| {
            (n + st.count, s + st.count as f64 * st.summary.as_ref().map_or(0.0, |x| x.mean_ms))
        })
    }

    #[test]
    fn the_issues_differencing_finds_nothing_to_subtract() {
        // Road: 12 without inspection, 1 held (that one consignment's time is what the
        // differencing of the issue read). Sea: 8. Air: 6. Every channel of road is a cell.
        let mut rows = Vec::new();
        for i in 0..12 {
            rows.push(row(i, 1 + i as i64 % 20, "road", "without", 5 + i as i64));
        }
        rows.push(row(100, 3, "road", "with-hold", 77));
        for i in 0..8 {
            rows.push(row(200 + i, 2 + i as i64, "sea", "without", 30));
        }
        for i in 0..6 {
            rows.push(row(300 + i, 4 + i as i64, "air", "with-query", 2));
        }
        let p = publish(&rows, Interval::LodgementToRelease);
        // Two segments at once are not published at all.
        assert!(p.figures(Some(Dimension::TransportMode), Some(Trend::Day)).is_none());
        // By channel: with-hold (1) is suppressed, and a second with it.
        let channels = shown(&p, Dimension::Channel);
        assert_eq!(channels.iter().filter(|c| c.1).count(), 2, "{channels:?}");
        let overall = p.figures(None, None).unwrap().overall;
        assert!(!overall.suppressed);
        // Whatever an answer shows, the suppressed cells of every table are at least two,
        // so that the total minus the shown ones is the sum of two or more cells.
        for d in groupings(Interval::LodgementToRelease) {
            let f = p.figures(Some(d), None).unwrap();
            let hidden = f.groups.iter().filter(|g| g.suppressed).count();
            assert!(hidden != 1, "{d:?}: one suppressed cell alone would be the overall minus the others");
        }
        for t in TRENDS {
            let f = p.figures(None, Some(t)).unwrap();
            let hidden: Vec<_> = f.trend_cells.iter().filter(|c| c.suppressed).collect();
            assert!(hidden.len() != 1, "{t:?}");
            let (n, _) = sums(&f.trend_cells);
            assert!(n <= overall.stats.as_ref().unwrap().count);
        }
        // No cell shows one consignment's own figures.
        let held = rows.iter().find(|r| r.channel == "with-hold").unwrap();
        let held_ms = (held.released_at.unwrap() - held.lodged_at) as f64;
        for view in p.views() {
            let f = p.figures(view.0, view.1).unwrap();
            for c in std::iter::once(&f.overall).chain(&f.groups).chain(&f.trend_cells) {
                if let Some(s) = c.stats.as_ref().and_then(|s| s.summary.as_ref()) {
                    assert!(c.stats.as_ref().unwrap().count >= 5);
                    assert_eq!((s.min_ms, s.max_ms), (None, None));
                    assert!(s.mean_ms != held_ms || c.stats.as_ref().unwrap().count > 1);
                }
            }
        }
    }

    #[test]
    fn two_countries_and_the_posts_they_share_are_one_relation() {
        // Countries A, B, C, D (cells 0..4) and posts P1..P4 (cells 4..8): A and B cross at P1
        // and P2, C and D at P3 and P4. No cell is made of whole cells of the other table, yet
        // A + B = P1 + P2 and C + D = P3 + P4.
        let pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3)];
        let members: Vec<u32> = pairs.iter().flat_map(|(c, p)| [*c, *p]).collect();
        let counts = [2usize; 8];
        let equations = relations(&[4, 4], &members, &counts, false);
        let sets: Vec<(Vec<usize>, Vec<usize>)> = equations.iter().map(|e| (e.plus.clone(), e.minus.clone())).collect();
        assert_eq!(sets, [(vec![0, 1], vec![4, 5]), (vec![2, 3], vec![6, 7])]);
        // A alone suppressed would be P1 + P2 - B: one more goes with it.
        let mut suppressed = [true, false, false, false, false, false, false, false];
        assert_eq!(determined(&equations, &suppressed), Some(0));
        protect(&equations, &counts, &[false; 8], &mut suppressed);
        assert_eq!(determined(&equations, &suppressed), None);
        assert!(suppressed.iter().filter(|s| **s).count() >= 2, "{suppressed:?}");
    }

    #[test]
    fn a_day_alone_below_the_threshold_takes_another_with_it_in_its_week() {
        // 1970-01-05 is a Monday: that week's days have 6, 6, 6, 6, 6, 6 and 1 consignments.
        let mut rows = Vec::new();
        let mut n = 0;
        for (day, count) in [(4, 6), (5, 6), (6, 6), (7, 6), (8, 6), (9, 6), (10, 1)] {
            for _ in 0..count {
                rows.push(row(n, day, "road", "without", 3));
                n += 1;
            }
        }
        let p = publish(&rows, Interval::LodgementToRelease);
        let days = p.figures(None, Some(Trend::Day)).unwrap().trend_cells;
        let hidden: Vec<&str> = days.iter().filter(|c| c.suppressed).map(|c| c.period.as_deref().unwrap()).collect();
        assert_eq!(hidden.len(), 2, "the week minus its days shown would be the lone day: {hidden:?}");
        assert!(hidden.contains(&"1970-01-11"));
        let weeks = p.figures(None, Some(Trend::Week)).unwrap().trend_cells;
        assert_eq!(weeks.len(), 1);
        assert!(!weeks[0].suppressed, "one week of 37");
    }

    fn part(agency: &str, hours: i64) -> AgencyReleaseTimes {
        AgencyReleaseTimes {
            agency: crate::domain::AgencyId::parse(agency).unwrap(),
            routed_at: 0,
            first_answer_at: Some(hours * HOUR),
            decided_at: Some(hours * HOUR),
            decision: Some("released".into()),
            hold_ms: 0,
            query_trader_ms: 0,
            query_agency_ms: 0,
            selectivity: None,
        }
    }

    #[test]
    fn an_agency_suppressed_is_not_its_kind_minus_the_agencies_shown() {
        // Customs: ar-customs 9 parts, br-customs 7, uy-customs 1. Sanitary: br-senasa 2,
        // ar-senasa 8. By agency: uy-customs and br-senasa suppressed; with only those two, the
        // customs kind minus ar- and br-customs would be uy-customs' one part.
        let rows: Vec<ConsignmentReleaseTimes> = (0..27).map(|i| row(i, 2, "road", "without", 1)).collect();
        let mut parts = Vec::new();
        let mut i = 0;
        for (agency, kind, n) in [("ar-customs", "customs", 9), ("br-customs", "customs", 7), ("uy-customs", "customs", 1), ("br-senasa", "sanitary", 2), ("ar-senasa", "sanitary", 8)] {
            for _ in 0..n {
                parts.push((&rows[i], AgencyPart { part: Box::leak(Box::new(part(agency, 3 + i as i64))), kind: kind.into() }));
                i += 1;
            }
        }
        let p = publication(Interval::AgencyDecision, std::iter::empty(), parts.into_iter(), MONTH, HOUR, 5);
        let agencies = shown(&p, Dimension::Agency);
        let kinds = shown(&p, Dimension::AgencyKind);
        let customs_shown = kinds.iter().any(|k| k.0 == "customs" && !k.1);
        let customs_hidden = agencies.iter().filter(|a| a.0.ends_with("customs") && a.1).count();
        assert!(!customs_shown || customs_hidden != 1, "customs {kinds:?} by agency {agencies:?}");
        // Nor is sanitary: br-senasa (2) alone hidden under a shown sanitary kind.
        let sanitary_shown = kinds.iter().any(|k| k.0 == "sanitary" && !k.1);
        let sanitary_hidden = agencies.iter().filter(|a| a.0.ends_with("senasa") && a.1).count();
        assert!(!sanitary_shown || sanitary_hidden != 1, "sanitary {kinds:?} by agency {agencies:?}");
        // Agencies by a consignment's release interval are not published.
        assert!(!groupings(Interval::ArrivalToRelease).contains(&Dimension::Agency));
        assert!(groupings(Interval::Hold).contains(&Dimension::AgencyKind));
    }

    #[test]
    fn a_cell_mostly_one_owners_is_suppressed_and_late_closings_are_not_counted() {
        // Sea: 6 of one trader and 1 of another (the first could subtract its own six); rail 2.
        let mut rows: Vec<ConsignmentReleaseTimes> = (0..7).map(|i| row(i, 2 + i as i64 % 7, "sea", "without", 10)).collect();
        for r in rows.iter_mut().take(6) {
            r.owner = "big-trader".into();
        }
        rows.extend((0..2).map(|i| row(7 + i, 2 + i as i64, "rail", "without", 4)));
        // Road and air: 6 each, and one more road released after the period's cut-off.
        for i in 0..12 {
            rows.push(row(10 + i, 2 + i as i64 % 7, if i % 2 == 0 { "road" } else { "air" }, "without", 1));
        }
        rows.push(row(30, 30, "road", "without", 24 * 20));
        let p = publish(&rows, Interval::LodgementToRelease);
        let modes = shown(&p, Dimension::TransportMode);
        let expected: Vec<(String, bool, Option<usize>)> =
            vec![("air".into(), false, Some(6)), ("rail".into(), true, None), ("road".into(), false, Some(6)), ("sea".into(), true, None)];
        assert_eq!(modes, expected);
        // The overall figure stands: 21 counted; the late one is not.
        let overall = p.figures(None, None).unwrap().overall;
        assert_eq!(overall.stats.unwrap().count, 21);
    }

    #[test]
    fn no_figures_without_outliers_when_fewer_than_the_threshold_were_left_out() {
        let mut rows: Vec<ConsignmentReleaseTimes> = (0..9).map(|i| row(i, 2, "road", "without", 2 + i as i64 % 3)).collect();
        rows.push(row(9, 2, "road", "without", 200));
        let p = publish(&rows, Interval::LodgementToRelease);
        let o = p.figures(None, None).unwrap().overall;
        assert_eq!(o.outliers.as_ref().unwrap().count, 1);
        assert!(o.without_outliers.is_none(), "its count and mean less the overall's would be the outlier's own time");
    }

    #[test]
    fn the_audit_finds_what_no_single_equation_shows() {
        // x0 = x1 + x2, x4 = x1 + x3, x5 = x2 + x3: each relation has two hidden cells, yet
        // together they give each of x1, x2 and x3.
        let eq = |sum: usize, parts: &[usize]| Equation { plus: vec![sum], minus: parts.to_vec() };
        let equations = vec![eq(0, &[1, 2]), eq(4, &[1, 3]), eq(5, &[2, 3])];
        let counts = [30, 3, 4, 2, 20, 25];
        let mut suppressed = [false, true, true, true, false, false];
        assert_eq!(determined(&equations, &suppressed), Some(1));
        protect(&equations, &counts, &[false; 6], &mut suppressed);
        assert_eq!(suppressed, [false, true, true, true, true, false], "the smallest shown cell with x1");
        assert_eq!(determined(&equations, &suppressed), None);
        // A pattern already protected is left alone.
        let equations = vec![eq(0, &[1, 2]), eq(4, &[1, 3])];
        let mut suppressed = [false, true, true, true, false, false];
        protect(&equations, &counts, &[false; 6], &mut suppressed);
        assert_eq!(suppressed, [false, true, true, true, false, false]);
    }

    #[test]
    fn no_suppressed_cell_follows_from_the_published_tables_of_random_months() {
        // Small months of few segment values, so that cells nest across tables often; every
        // relation between the published tables is found here again from the rows themselves.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut draw = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let interval = Interval::ArrivalToLodgement;
        for round in 0..150 {
            let n = 3 + draw(60) as usize;
            let rows: Vec<ConsignmentReleaseTimes> = (0..n)
                .map(|i| {
                    let mut r = row(i, draw(10) as i64, ["road", "sea", "air"][draw(3) as usize], ["without", "with-hold"][draw(2) as usize], 1);
                    r.dims.hs_chapter = Some(["02", "10", "84"][draw(3) as usize].into());
                    r.dims.border_post = Some(["BRURG", "ARPSL"][draw(2) as usize].into());
                    r.arrived_at = Some(r.lodged_at + [-1, 1][draw(2) as usize] * (1 + draw(50) as i64) * HOUR / 10);
                    r.owner = format!("trader-{}", draw(4));
                    r
                })
                .collect();
            let p = publish(&rows, interval);
            // Each published cell: its rows, and whether it is suppressed.
            let mut cells: Vec<(HashSet<usize>, bool)> = Vec::new();
            let mut tables: Vec<Vec<usize>> = Vec::new();
            for (group_by, trend) in p.views() {
                let f = p.figures(group_by, trend).unwrap();
                let published = match (group_by, trend) {
                    (None, Some(_)) => f.trend_cells,
                    (_, _) => f.groups,
                };
                let mut table = Vec::new();
                for c in published {
                    let members: HashSet<usize> = rows
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| match (group_by, trend, &c.period) {
                            (Some(d), _, _) => segment_of(r, d) == c.group[d.as_str()].as_str(),
                            (None, Some(t), Some(period)) => rfc3339(t.period_start(r.lodged_at))[..10] == *period,
                            _ => true,
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if let Some(stats) = &c.stats {
                        assert!(stats.count >= 5 && stats.count == members.len(), "round {round}: a shown cell of {}", stats.count);
                    }
                    assert!(!members.is_empty());
                    table.push(cells.len());
                    cells.push((members, c.suppressed));
                }
                tables.push(table);
            }
            let mut equations = Vec::new();
            for a in &tables {
                for b in &tables {
                    for &outer in a {
                        let inside: Vec<usize> = b.iter().copied().filter(|x| *x != outer && cells[*x].0.is_subset(&cells[outer].0)).collect();
                        let covered: usize = inside.iter().map(|x| cells[*x].0.len()).sum();
                        if !inside.is_empty() && covered == cells[outer].0.len() {
                            equations.push(Equation { plus: vec![outer], minus: inside });
                        }
                    }
                }
            }
            let suppressed: Vec<bool> = cells.iter().map(|c| c.1).collect();
            assert_eq!(determined(&equations, &suppressed), None, "round {round}: a suppressed cell follows from the others");
        }
    }
}

