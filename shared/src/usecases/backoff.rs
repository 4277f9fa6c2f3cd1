//! Retry delays for transient exchange errors.

use std::time::Duration;

/// Exponential back-off with "equal jitter": the n-th retry waits between half and all of
/// `base × 2^(n-1)` (capped at `max`), so retries of a batch that failed together spread out
/// instead of hitting the recovering exchange at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before the next delivery, after `receive_count` receives (1 = first delivery).
    /// `jitter` is a uniform sample in `[0, 1)`, passed in so the schedule is testable.
    pub fn delay(&self, receive_count: u32, jitter: f64) -> Duration {
        let exponent = receive_count.saturating_sub(1).min(30);
        let ceiling = self
            .base
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.max)
            .min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// `delay` with a fresh random jitter.
    pub fn jittered(&self, receive_count: u32) -> Duration {
        self.delay(receive_count, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    #[test]
    fn delays_double_per_receive_until_the_cap() {
        let ceilings: Vec<u64> = (1..=8).map(|n| BACKOFF.delay(n, 1.0).as_secs()).collect();
        assert_eq!(ceilings, vec![2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn jitter_spreads_each_delay_over_its_upper_half() {
        for n in 1..=8 {
            let low = BACKOFF.delay(n, 0.0);
            let high = BACKOFF.delay(n, 1.0);
            assert_eq!(low * 2, high, "receive {n}");
            let sample = BACKOFF.jittered(n);
            assert!(low <= sample && sample <= high, "receive {n}: {sample:?}");
        }
    }

    #[test]
    fn absurd_receive_counts_do_not_overflow() {
        assert_eq!(BACKOFF.delay(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(BACKOFF.delay(0, 1.0), Duration::from_secs(2));
    }
}
