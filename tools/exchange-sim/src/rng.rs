//! xorshift64: enough randomness for failure rates, fill sizes and prices, without a crate.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        // Mixed with a random UUID so that simulators started in the same instant differ.
        let seed = nanos ^ (Uuid::new_v4().as_u128() as u64);
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `rate` (never for 0, always for 1).
    pub(crate) fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.next_f64() < rate
    }

    /// Uniform in `1..=max` (1 when `max` ≤ 1).
    pub(crate) fn one_to(&mut self, max: i64) -> i64 {
        if max <= 1 {
            1
        } else {
            1 + (self.next_u64() % max as u64) as i64
        }
    }
}
