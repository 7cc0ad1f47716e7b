//! Selection within each agency's inspection budget: every document sent to an agency gets a
//! channel. Mandatory rules first; then the highest scores, up to the budget's rates (red:
//! physical inspection, yellow: documentary); then a share of the budget (the exploration,
//! 10% by default) chosen at random among the others, so that what inspections find is also
//! learned from documents no rule or model pointed at.
//!
//! The decision is made as each document arrives, without waiting for the ones after it. Each
//! agency's lane keeps the priorities of its recent documents (the score, ties broken at
//! random) and selects a document whose priority is among the top of that window, as long as
//! the lane has credit: each document adds the rate, each selection spends one. Credit bounds
//! the count over any stretch of documents, bursts of high scores included (at most the rate
//! times the documents plus a few). A lane that falls behind (after a burst, the window's top
//! is out of reach) reaches further down the ranking as it owes more, and past a few owed
//! takes the next documents whatever their priority until it catches up.

use super::rules::Assessment;
use super::{Channel, Reason, ReasonKind, Selection, Source};

/// Recent documents a lane ranks a new one among.
const WINDOW: usize = 512;

/// An agency's inspection rates (shares of its documents).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub red: f64,
    pub yellow: f64,
}

/// One rate's accounting in a lane.
#[derive(Debug, Clone, Default)]
struct Credit {
    /// Selections owed: grows by the rate per document, spent one per selection. Negative after
    /// mandatory selections beyond the budget (the scores then wait).
    owed: f64,
}

impl Credit {
    /// Selections a lane may owe before it takes whatever comes: a few, more for a high rate.
    fn slack(rate: f64) -> f64 {
        (0.2 * rate * WINDOW as f64).max(3.0)
    }
    fn earn(&mut self, rate: f64) {
        // A long spell of mandatory selections leaves no more than a window's worth owed back.
        self.owed = (self.owed + rate).clamp(-(rate * WINDOW as f64).max(2.0), 1.0 + Self::slack(rate));
    }
    fn can(&self) -> bool {
        self.owed >= 1.0
    }
    fn behind(&self, rate: f64) -> bool {
        self.owed >= Self::slack(rate)
    }
    /// The share of the recent documents a selection is taken from now: the rate, widened by
    /// what is owed (a lane behind reaches further down the ranking before it takes anything).
    fn reach(&self, rate: f64) -> f64 {
        rate * self.owed.max(1.0)
    }
    fn spend(&mut self) {
        self.owed -= 1.0;
    }
    /// A random selection among the `others` share of documents: each drawn with the chance
    /// that keeps `rate` of all documents, unless the lane is well ahead; and whatever the
    /// draw once it is well behind.
    fn draw(&mut self, rng: &mut Rng, rate: f64, others: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let chance = (rate / others).min(1.0);
        let go = (self.owed > -Self::slack(rate) && rng.unit() < chance) || self.behind(rate);
        if go {
            self.spend();
        }
        go
    }
}

/// The state of one agency's selection.
#[derive(Debug, Clone)]
pub struct Lane {
    budget: Budget,
    exploration: f64,
    /// The last [`WINDOW`] priorities, a ring.
    recent: Vec<f64>,
    next: usize,
    /// The same priorities in ascending order: a cut is read, not computed.
    sorted: Vec<f64>,
    red: Credit,
    yellow: Credit,
    random_red: Credit,
    random_yellow: Credit,
    rng: Rng,
}

impl Lane {
    pub fn new(budget: Budget, exploration: f64, seed: u64) -> Lane {
        Lane {
            budget,
            exploration,
            recent: Vec::with_capacity(WINDOW),
            next: 0,
            sorted: Vec::with_capacity(WINDOW),
            red: Credit::default(),
            yellow: Credit::default(),
            random_red: Credit::default(),
            random_yellow: Credit::default(),
            rng: Rng(seed | 1),
        }
    }

    /// The priority at which the top `share` of the recent documents starts.
    fn cut(&self, share: f64) -> f64 {
        if self.sorted.is_empty() || share <= 0.0 {
            return f64::INFINITY;
        }
        let k = (((1.0 - share) * self.sorted.len() as f64).floor() as usize).min(self.sorted.len() - 1);
        self.sorted[k]
    }

    /// Adds a priority to the window, the oldest leaving it once it is full.
    fn remember(&mut self, priority: f64) {
        let place = |sorted: &Vec<f64>, p: f64| sorted.partition_point(|x| x.total_cmp(&p).is_lt());
        if self.recent.len() < WINDOW {
            self.recent.push(priority);
        } else {
            let old = std::mem::replace(&mut self.recent[self.next], priority);
            self.next = (self.next + 1) % WINDOW;
            let at = place(&self.sorted, old);
            self.sorted.remove(at);
        }
        let at = place(&self.sorted, priority);
        self.sorted.insert(at, priority);
    }

    /// The channel of the next document, whose rules said `a` (and a model `model` points
    /// more, when one is live).
    pub fn select(&mut self, a: &Assessment, model: Option<(f64, &str)>) -> Selection {
        let score = a.score + model.map_or(0.0, |(s, _)| s);
        // Ties (often: no rule holds) are broken at random, so equal documents are equally likely.
        let priority = score + self.rng.unit() * 1e-9;
        let chosen = self.budget.red * (1.0 - self.exploration);
        let documentary = self.budget.yellow * (1.0 - self.exploration);
        self.red.earn(chosen);
        self.yellow.earn(documentary);
        self.random_red.earn(self.budget.red * self.exploration);
        self.random_yellow.earn(self.budget.yellow * self.exploration);
        let red_cut = self.cut(self.red.reach(chosen));
        let yellow_cut = self.cut(chosen + self.yellow.reach(documentary));
        self.remember(priority);
        // The share of documents left to the random draw.
        let others = (1.0 - chosen - documentary).max(0.01);
        let by_score = if model.is_some_and(|(m, _)| m > a.score) { Source::Model } else { Source::Rule };
        let (channel, source) = if let Some(c) = a.mandatory {
            match c {
                Channel::Red => self.red.spend(),
                Channel::Yellow => self.yellow.spend(),
                Channel::Green => {}
            }
            (c, Source::Mandatory)
        } else if self.red.can() && (priority >= red_cut || self.red.behind(chosen)) {
            self.red.spend();
            (Channel::Red, by_score)
        } else if self.yellow.can() && (priority >= yellow_cut || self.yellow.behind(documentary)) {
            self.yellow.spend();
            (Channel::Yellow, by_score)
        } else if self.random_red.draw(&mut self.rng, self.budget.red * self.exploration, others) {
            (Channel::Red, Source::Random)
        } else if self.random_yellow.draw(&mut self.rng, self.budget.yellow * self.exploration, others) {
            (Channel::Yellow, Source::Random)
        } else {
            (Channel::Green, Source::None)
        };
        let mut reasons = reasons(a);
        if source == Source::Random {
            reasons.push(Reason {
                kind: ReasonKind::Random,
                name: "exploration".into(),
                contribution: 0.0,
                text: "chosen at random among the documents no rule or model selected, so that risk keeps being learned".into(),
            });
        }
        Selection { channel, score, source, reasons, model_version: model.map(|(_, v)| v.to_owned()), model_score: None }
    }
}

/// The reasons of an assessment, as a selection gives them: the mandatory rules first, then the
/// largest contributions, at most [`super::MAX_REASONS`].
pub(super) fn reasons(a: &Assessment) -> Vec<Reason> {
    let mut hits: Vec<&(String, f64, String)> = a.hits.iter().collect();
    // Mandatory hits contribute 0 points: they go first; then by contribution, largest first.
    hits.sort_by(|x, y| (x.1 != 0.0).cmp(&(y.1 != 0.0)).then(y.1.total_cmp(&x.1)));
    hits.into_iter()
        .take(super::MAX_REASONS)
        .map(|(name, points, text)| Reason { kind: ReasonKind::Rule, name: name.clone(), contribution: *points, text: text.clone() })
        .collect()
}

/// xorshift64*: fast, and seeded from the system's randomness per lane; not a key, but not
/// guessable from outside either.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
