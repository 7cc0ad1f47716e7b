//! The statistics of one cell of release times: count, mean (WTO TFA Art. 7.6's figure), median,
//! p90, mode, extremes, and Tukey's outliers, each figure also without them; the method stated
//! in every answer ([`METHOD`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// How the figures are computed, as every answer and the published report state it.
pub const METHOD: &str = "Quantiles (median, p90, and the quartiles of the outlier rule) by linear interpolation between \
closest ranks. Mode: the start of the most frequent bin of `modeBinMs` (the earliest of equally frequent bins). Outliers \
(Tukey): values below Q1 - 1.5 x IQR or above Q3 + 1.5 x IQR; each figure is also given without them. Intervals are in \
milliseconds; an interval still open is not counted. Consignments are selected and put in periods by their lodgement time.";

/// The statistics of one set of intervals: how many, and their figures when there are any.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub count: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// The figures of a non-empty set of intervals.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The average: the figure WTO TFA Art. 7.6 asks members to publish.
    pub mean_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    /// The start of the most frequent bin.
    pub mode_ms: i64,
    /// The extremes: each is one consignment's own time, so the public figures leave them out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<i64>,
}

/// One cell: a group (and period), its figures, and its outliers.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// The segment: one value per dimension grouped by.
    pub group: BTreeMap<String, String>,
    /// The period's first day, for a trend's cells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Suppressed in the public figures (too few consignments, or so that another cannot be
    /// computed from the rest): no figure is given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub stats: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outliers: Option<Outliers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_outliers: Option<Stats>,
}

/// The outliers of a cell, by the rule in [`METHOD`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outliers {
    pub count: usize,
    pub low_fence_ms: f64,
    pub high_fence_ms: f64,
}

/// The figures of one cell's `values` (reordered), binning the mode by `mode_bin_ms`.
pub fn cell(group: BTreeMap<String, String>, period: Option<String>, mut values: Vec<i64>, mode_bin_ms: i64) -> Cell {
    if values.is_empty() {
        let none = Some(Stats { count: 0, summary: None });
        return Cell { group, period, suppressed: false, stats: none, outliers: None, without_outliers: None };
    }
    // Quantiles by selection, not a full sort: a cell can hold millions of values.
    let [q1, q3] = quantiles(&mut values, [0.25, 0.75]);
    let iqr = q3 - q1;
    let (low, high) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let mut inside: Vec<i64> = values.iter().copied().filter(|v| (*v as f64) >= low && (*v as f64) <= high).collect();
    let outliers = values.len() - inside.len();
    Cell {
        group,
        period,
        suppressed: false,
        stats: Some(stats(&mut values, mode_bin_ms)),
        outliers: Some(Outliers { count: outliers, low_fence_ms: low, high_fence_ms: high }),
        without_outliers: Some(stats(&mut inside, mode_bin_ms)),
    }
}

/// The statistics of `values` (reordered).
pub fn stats(values: &mut [i64], mode_bin_ms: i64) -> Stats {
    Stats { count: values.len(), summary: summary(values, mode_bin_ms) }
}

/// The figures of `values` (reordered); `None` for none.
fn summary(values: &mut [i64], mode_bin_ms: i64) -> Option<Summary> {
    let (mut min, mut max) = (*values.first()?, *values.first()?);
    let mut sum: i128 = 0;
    for v in values.iter() {
        min = min.min(*v);
        max = max.max(*v);
        sum += i128::from(*v);
    }
    let bin = mode_bin_ms.max(1);
    let (first, last) = (min.div_euclid(bin), max.div_euclid(bin));
    // The most frequent bin, the earliest of equally frequent ones: counted in an array over
    // the bins' range when it is not huge (the usual case), else in a map.
    let mode = if last - first < 1 << 20 {
        let mut counts = vec![0u32; (last - first + 1) as usize];
        for v in values.iter() {
            counts[(v.div_euclid(bin) - first) as usize] += 1;
        }
        let (best, _) = counts.iter().enumerate().fold((0usize, 0u32), |(bi, bc), (i, c)| if *c > bc { (i, *c) } else { (bi, bc) });
        first + best as i64
    } else {
        let mut bins: HashMap<i64, usize> = HashMap::new();
        for v in values.iter() {
            *bins.entry(v.div_euclid(bin)).or_default() += 1;
        }
        bins.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map_or(0, |(b, _)| b)
    };
    let [median, p90] = quantiles(values, [0.5, 0.9]);
    Some(Summary {
        mean_ms: sum as f64 / values.len() as f64,
        median_ms: median,
        p90_ms: p90,
        mode_ms: mode * bin,
        min_ms: Some(min),
        max_ms: Some(max),
    })
}

/// The `qs` quantiles of non-empty `values` (reordered), each by linear interpolation between
/// its two closest ranks, found by selection: O(n) per rank, no full sort.
fn quantiles<const N: usize>(values: &mut [i64], qs: [f64; N]) -> [f64; N] {
    let last = (values.len() - 1) as f64;
    let mut ranks: Vec<usize> = qs.iter().flat_map(|q| [(q * last).floor() as usize, (q * last).ceil() as usize]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    // Each rank selected in what lies right of the previous one.
    let mut at: Vec<(usize, i64)> = Vec::with_capacity(ranks.len());
    let (mut rest, mut offset) = (&mut *values, 0usize);
    for r in ranks {
        let (_, v, right) = std::mem::take(&mut rest).select_nth_unstable(r - offset);
        at.push((r, *v));
        rest = right;
        offset = r + 1;
    }
    let value = |r: usize| at.iter().find(|(k, _)| *k == r).map_or(0.0, |(_, v)| *v as f64);
    qs.map(|q| {
        let rank = q * last;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let (a, b) = (value(lo), value(hi));
        a + (b - a) * (rank - lo as f64)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_statistics_of_a_known_set() {
        let values = [10, 20, 20, 30, 40, 50, 60, 70, 80, 1000];
        let s = summary(&mut values.clone(), 10).unwrap();
        assert_eq!(stats(&mut values.clone(), 10).count, 10);
        assert_eq!((s.min_ms, s.max_ms, s.mode_ms), (Some(10), Some(1000), 20));
        assert!((s.mean_ms - 138.0).abs() < 1e-9);
        assert!((s.median_ms - 45.0).abs() < 1e-9);
        assert!((s.p90_ms - 172.0).abs() < 1e-9, "{}", s.p90_ms);
        assert!(summary(&mut [], 10).is_none());
        assert_eq!(stats(&mut [], 10), Stats { count: 0, summary: None });
        assert_eq!(quantiles(&mut [7], [0.9]), [7.0]);
        // Selection gives what a sort gives, in any order.
        let mut shuffled = [1000, 70, 20, 60, 10, 50, 20, 80, 40, 30];
        let q = quantiles(&mut shuffled, [0.25, 0.5, 0.9]);
        assert!(q.iter().zip([22.5, 45.0, 172.0]).all(|(a, b)| (a - b).abs() < 1e-9), "{q:?}");
    }

    #[test]
    fn outliers_by_tukeys_fences_and_the_figures_without_them() {
        let c = cell(BTreeMap::new(), None, vec![10, 20, 20, 30, 40, 50, 60, 70, 80, 1000], 10);
        let o = c.outliers.unwrap();
        // Q1 = 22.5, Q3 = 67.5, IQR = 45: fences at -45 and 135.
        assert_eq!((o.count, o.low_fence_ms, o.high_fence_ms), (1, -45.0, 135.0));
        let w = c.without_outliers.unwrap();
        let ws = w.summary.unwrap();
        assert_eq!((w.count, ws.max_ms), (9, Some(80)));
        assert!((ws.mean_ms - 42.222_222).abs() < 1e-5);
    }
}
