//! Seeded draws for the simulations (`ventanilla simulate`, its e-commerce traffic): SplitMix64,
//! small and good enough for traffic; the same seed draws the same traffic. Not for keys.

use crate::clock::Millis;

/// SplitMix64 from a seed.
pub struct Draws(pub u64);

impl Draws {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Evenly in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Evenly in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// `min` plus an exponential part of mean `mean - min`.
    pub fn delay(&mut self, (min, mean): (Millis, Millis)) -> Millis {
        min + (-(1.0 - self.unit()).ln() * (mean - min) as f64) as Millis
    }
}
