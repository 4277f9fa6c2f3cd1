//! The profiles of a soak: how many orders at what rate, when each fault happens, and the
//! runner's timing settings that make those faults meaningful within the run.

use std::time::Duration;

use anyhow::bail;

/// When each fault happens, relative to the start of posting.
#[derive(Debug, Clone)]
pub struct Plan {
    pub orders: usize,
    pub rate: f64,
    pub runner_kills: Vec<Duration>,
    /// A short exchange outage, well inside the retries' old budget.
    pub exchange_down_at: Duration,
    pub exchange_down_for: Duration,
    pub sqs_freeze_at: Duration,
    pub sqs_freeze_for: Duration,
    pub postgres_restart_at: Duration,
    /// The long exchange outage: far longer than the old retry budget (about 30 s) and than
    /// the market orders' time in force, while orders keep coming. The load is posted across
    /// it, and the runner is killed once inside it (see `runner_kills`).
    pub long_outage_at: Duration,
    pub long_outage_for: Duration,
    /// When the poison messages are put into the orders queue.
    pub poison_at: Duration,
    /// When the ingester is stopped for a moment (a backlog of reports builds up), resumed and
    /// SIGKILLed while it writes that backlog; it is restarted as a new process each time.
    pub ingester_kills: Vec<Duration>,
    /// When the exchange drops every feed connection at once (`POST /feed/drop`), on top of the
    /// rare drops of `feed_drop_rate` all along.
    pub feed_drops: Vec<Duration>,
    /// A stretch in which the exchange re-sends many reports (a new sequence number for the same
    /// execution) and its connections send many messages twice.
    pub duplicates_at: Duration,
    pub duplicates_for: Duration,
    /// How long after its 201 a canceling client sends `DELETE /orders/{id}`.
    pub cancel_after: Duration,
    /// The explicit `expires_at` some orders carry, this long after they are first posted.
    pub explicit_expiry: Duration,
    pub drain_timeout: Duration,
    pub runner: RunnerTiming,
}

/// The runner's settings that the soak scales with the profile.
#[derive(Debug, Clone)]
pub struct RunnerTiming {
    /// `MARKET_ORDER_TTL_SECONDS`: shorter than the long outage, so that market orders accepted
    /// early in it expire in it, and those accepted late in it are still live at recovery.
    pub market_order_ttl: Duration,
    /// `RETRY_MAX_SECONDS`: the back-off cap, so also how soon after recovery parked orders
    /// come back.
    pub retry_max: Duration,
    /// `BREAKER_PROBE_SECONDS`: one call to a failing exchange per this interval.
    pub breaker_probe: Duration,
    /// `ALERT_WINDOW_SECONDS`: an incident is over after this long without a failure or expiry.
    pub alert_window: Duration,
    /// `SWEEP_INTERVAL_SECONDS`.
    pub sweep_interval: Duration,
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
            // About 2 minutes of load: the short faults in the first 40 s, a calm stretch that
            // gives the "before" exchange call rate, then 60 s of exchange outage with the load
            // still coming and a runner kill inside it.
            "short" => Plan {
                orders: 1_650,
                rate: 15.0,
                runner_kills: vec![secs(8), secs(33), secs(80)],
                exchange_down_at: secs(12),
                exchange_down_for: secs(10),
                sqs_freeze_at: secs(27),
                sqs_freeze_for: secs(6),
                postgres_restart_at: secs(20),
                long_outage_at: secs(55),
                long_outage_for: secs(60),
                poison_at: secs(40),
                // One after the Postgres restart, one during the duplicates, one as the orders
                // held back by the long outage are placed (and filled) at last.
                ingester_kills: vec![secs(25), secs(47), secs(117)],
                feed_drops: vec![secs(10), secs(38), secs(75)],
                duplicates_at: secs(40),
                duplicates_for: secs(10),
                cancel_after: secs(1),
                explicit_expiry: secs(20),
                drain_timeout: secs(150),
                runner: RunnerTiming {
                    market_order_ttl: secs(30),
                    retry_max: secs(8),
                    breaker_probe: secs(2),
                    alert_window: secs(10),
                    sweep_interval: secs(2),
                },
            },
            // About 15 minutes of load, 10 of them with the exchange down; market orders keep
            // the design's default time in force (5 minutes).
            "long" => Plan {
                orders: 12_000,
                rate: 14.0,
                runner_kills: vec![secs(20), secs(75), secs(140), secs(400), secs(620)],
                exchange_down_at: secs(40),
                exchange_down_for: secs(30),
                sqs_freeze_at: secs(100),
                sqs_freeze_for: secs(10),
                postgres_restart_at: secs(160),
                long_outage_at: secs(200),
                long_outage_for: secs(600),
                poison_at: secs(120),
                ingester_kills: vec![secs(50), secs(130), secs(300), secs(500), secs(700)],
                feed_drops: vec![secs(25), secs(90), secs(250), secs(450), secs(650)],
                duplicates_at: secs(110),
                duplicates_for: secs(20),
                cancel_after: secs(1),
                explicit_expiry: secs(120),
                drain_timeout: secs(900),
                runner: RunnerTiming {
                    market_order_ttl: secs(300),
                    retry_max: secs(30),
                    breaker_probe: secs(5),
                    alert_window: secs(60),
                    sweep_interval: secs(2),
                },
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

    /// When the long outage ends.
    pub fn long_outage_end(&self) -> Duration {
        self.long_outage_at + self.long_outage_for
    }
}
