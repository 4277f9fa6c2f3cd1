//! The profiles of a soak: how many orders at what rate, and when each fault happens.

use std::time::Duration;

use anyhow::bail;

/// When each fault happens, relative to the start of posting.
#[derive(Debug, Clone)]
pub struct Plan {
    pub orders: usize,
    pub rate: f64,
    pub runner_kills: Vec<Duration>,
    pub exchange_down_at: Duration,
    pub exchange_down_for: Duration,
    pub sqs_freeze_at: Duration,
    pub sqs_freeze_for: Duration,
    pub postgres_restart_at: Duration,
    pub drain_timeout: Duration,
}

impl Plan {
    /// The plan of `profile` (`short` or `long`), with the number of orders and the rate
    /// overridden when given.
    pub fn for_profile(
        profile: &str,
        orders: Option<usize>,
        rate: Option<f64>,
    ) -> anyhow::Result<Self> {
        let secs = Duration::from_secs;
        let mut plan = match profile {
            "short" => Plan {
                orders: 1_000,
                rate: 25.0,
                runner_kills: vec![secs(8), secs(33)],
                exchange_down_at: secs(12),
                exchange_down_for: secs(10),
                sqs_freeze_at: secs(27),
                sqs_freeze_for: secs(6),
                postgres_restart_at: secs(20),
                drain_timeout: secs(240),
            },
            "long" => Plan {
                orders: 10_000,
                rate: 40.0,
                runner_kills: vec![secs(20), secs(75), secs(140), secs(200)],
                exchange_down_at: secs(40),
                exchange_down_for: secs(30),
                sqs_freeze_at: secs(100),
                sqs_freeze_for: secs(10),
                postgres_restart_at: secs(160),
                drain_timeout: secs(900),
            },
            other => bail!("unknown profile `{other}` (short or long)"),
        };
        if let Some(orders) = orders {
            plan.orders = orders;
        }
        if let Some(rate) = rate {
            plan.rate = rate;
        }
        Ok(plan)
    }
}
