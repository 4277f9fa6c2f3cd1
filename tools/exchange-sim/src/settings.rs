//! The simulator's knobs: their defaults, how the binary reads them from `EXCHANGE_SIM_*`
//! variables, and the `/control` documents that read and change them while it runs (so that a
//! test can take the exchange down and bring it back without restarting anything).
//!
//! | Variable | `/control` field | Default | Effect |
//! |---|---|---|---|
//! | `EXCHANGE_SIM_LISTEN` | – | `127.0.0.1:4010` | where the binary listens |
//! | `EXCHANGE_SIM_LATENCY_MS` | `latency_ms` | 500 | time every placement takes to answer |
//! | `EXCHANGE_SIM_LOOKUP_LATENCY_MS` | `lookup_latency_ms` | 50 | time every lookup takes |
//! | `EXCHANGE_SIM_FAILURE_RATE` | `failure_rate` | 0.1 | share of placements answered 503 |
//! | – | `down` | false | every placement and lookup answers 503 |
//! | `EXCHANGE_SIM_REJECT_INSTRUMENTS` | `reject_instruments` | – | ISINs refused for good (422) |
//! | `EXCHANGE_SIM_API_KEY` | – | – | key required in `x-api-key` (401 otherwise) |
//! | `EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT` | `timeout_after_accept` | false | every accepted placement's answer is held back |
//! | `EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_RATE` | `timeout_after_accept_rate` | 0 | share of accepted placements held back |
//! | `EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_DELAY_MS` | `timeout_after_accept_delay_ms` | 30000 | how long it is held back |
//! | `EXCHANGE_SIM_DROP_AFTER_ACCEPT` | `drop_after_accept` | false | every accepted placement's connection is closed unanswered |
//! | `EXCHANGE_SIM_DROP_AFTER_ACCEPT_RATE` | `drop_after_accept_rate` | 0 | share of accepted placements dropped so |
//! | `EXCHANGE_SIM_FILL_INTERVAL_MS` | `fill_interval_ms` | 250 | how often working limit orders may fill and expiries are checked |
//! | `EXCHANGE_SIM_LIMIT_FILL_RATE` | `limit_fill_rate` | 0.2 | chance per interval that a working limit order gets a fill |
//! | `EXCHANGE_SIM_MARKET_FILLS_MAX` | `market_fills_max` | 3 | a market order fills at once in 1 to this many reports |
//! | `EXCHANGE_SIM_FEED_CAPACITY` | – | 500000 | execution reports kept for resuming clients (oldest dropped first) |
//! | `EXCHANGE_SIM_FEED_DUPLICATE_RATE` | `feed_duplicate_rate` | 0 | share of reports published twice (same execution id, next sequence number) |
//! | `EXCHANGE_SIM_FEED_REDELIVER_RATE` | `feed_redeliver_rate` | 0 | share of feed messages a connection sends twice in a row (same sequence number) |
//! | `EXCHANGE_SIM_FEED_DROP_RATE` | `feed_drop_rate` | 0 | share of feed messages after which the connection is dropped (no close frame) |
//!
//! The last five make "unknown outcomes" on demand: the order is accepted and recorded (a retry
//! under the same client order id gets the same exchange order id, a lookup finds it) but the
//! client hears nothing — a timeout (held back) or a connection lost after sending (dropped).
//! When both apply to one placement, the drop wins. A drop needs the connection the simulator
//! serves itself ([`crate::spawn`]); behind [`crate::router`] on another server it degrades to
//! holding the answer back. Booleans accept `true`/`false`/`1`/`0`; rates are from 0 to 1.
//!
//! Working orders (see [`crate::market`]): a market order fills as soon as it is accepted, in 1 to
//! `market_fills_max` reports; a limit order gets a fill with probability `limit_fill_rate` every
//! `fill_interval`, each taking at most 60 % of its open rest (rounded up), so orders of 3 shares
//! or more fill over several reports. `limit_fill_rate` 0 leaves limit orders working until they
//! are canceled or expire. The last three rows are the feed's fault injection (see
//! [`crate::feed`]); `POST /feed/drop` drops every feed connection at once.
//!
//! Whatever the settings, a placement whose `expires_at` has passed is refused (422) and counted,
//! unless its client order id was accepted before (then the original answer is repeated).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the binary listens unless `EXCHANGE_SIM_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 4010);

/// How the simulated exchange behaves. `Default` is the design's unreliable exchange: 500 ms per
/// placement and 10 % transient failures.
#[derive(Clone, PartialEq)]
pub struct SimSettings {
    /// Where the binary listens. [`crate::spawn`] takes its address as an argument instead, so
    /// that tests can bind port 0; this field is only what `from_env` read.
    pub listen: SocketAddr,
    /// Time every `POST /orders` takes before it answers, whatever the answer.
    pub latency: Duration,
    /// Time every `GET /orders/{id}` takes; lookups are cheaper than placements on a real
    /// exchange, and a small value keeps reconciliation tests fast.
    pub lookup_latency: Duration,
    /// Probability (0 to 1) that a placement fails with a transient 503 before it is accepted.
    pub failure_rate: f64,
    /// While set, every placement and lookup answers 503.
    pub down: bool,
    /// Instruments (upper-case) refused for good with 422: the one permanent failure.
    pub reject_instruments: BTreeSet<String>,
    /// When set, `POST /orders` and `GET /orders/{id}` require it in `x-api-key` (401 otherwise).
    pub api_key: Option<String>,
    /// When set, a placement is accepted and recorded but the answer is held back for
    /// `timeout_after_accept_delay`: the client times out on an order the exchange has — the
    /// case de-duplication and lookups exist for.
    pub timeout_after_accept: bool,
    /// Probability (0 to 1) that an accepted placement is held back so, when
    /// `timeout_after_accept` is off: unknown outcomes sprinkled among normal answers.
    pub timeout_after_accept_rate: f64,
    pub timeout_after_accept_delay: Duration,
    /// When set, a placement is accepted and recorded, then its connection is closed without an
    /// answer: the client sees the connection lost after sending.
    pub drop_after_accept: bool,
    /// Probability (0 to 1) that an accepted placement is dropped so, when `drop_after_accept`
    /// is off.
    pub drop_after_accept_rate: f64,
    /// How often working limit orders may fill and expiries are checked (at least 1 ms).
    pub fill_interval: Duration,
    /// Probability (0 to 1) per `fill_interval` that a working limit order gets a fill.
    pub limit_fill_rate: f64,
    /// A market order fills at once in 1 to this many reports (at least 1).
    pub market_fills_max: u32,
    /// Execution reports kept in memory for clients that resume (`?after=N`); the oldest are
    /// dropped first. A report takes about 400 bytes, so the default is ≈ 200 MB at most.
    pub feed_capacity: usize,
    /// Probability (0 to 1) that a report is published a second time, under the next sequence
    /// number with the same execution id and content: the exchange re-sending after a failover.
    pub feed_duplicate_rate: f64,
    /// Probability (0 to 1) that a connection sends a message twice in a row (same sequence).
    pub feed_redeliver_rate: f64,
    /// Probability (0 to 1) that a connection is dropped, without a close frame, right after a
    /// message.
    pub feed_drop_rate: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            latency: Duration::from_millis(500),
            lookup_latency: Duration::from_millis(50),
            failure_rate: 0.10,
            down: false,
            reject_instruments: BTreeSet::new(),
            api_key: None,
            timeout_after_accept: false,
            timeout_after_accept_rate: 0.0,
            timeout_after_accept_delay: Duration::from_secs(30),
            drop_after_accept: false,
            drop_after_accept_rate: 0.0,
            fill_interval: Duration::from_millis(250),
            limit_fill_rate: 0.2,
            market_fills_max: 3,
            feed_capacity: 500_000,
            feed_duplicate_rate: 0.0,
            feed_redeliver_rate: 0.0,
            feed_drop_rate: 0.0,
        }
    }
}

/// Hand-written so that the API key never reaches a log line.
impl fmt::Debug for SimSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSettings")
            .field("listen", &self.listen)
            .field("latency", &self.latency)
            .field("lookup_latency", &self.lookup_latency)
            .field("failure_rate", &self.failure_rate)
            .field("down", &self.down)
            .field("reject_instruments", &self.reject_instruments)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout_after_accept", &self.timeout_after_accept)
            .field("timeout_after_accept_rate", &self.timeout_after_accept_rate)
            .field(
                "timeout_after_accept_delay",
                &self.timeout_after_accept_delay,
            )
            .field("drop_after_accept", &self.drop_after_accept)
            .field("drop_after_accept_rate", &self.drop_after_accept_rate)
            .field("fill_interval", &self.fill_interval)
            .field("limit_fill_rate", &self.limit_fill_rate)
            .field("market_fills_max", &self.market_fills_max)
            .field("feed_capacity", &self.feed_capacity)
            .field("feed_duplicate_rate", &self.feed_duplicate_rate)
            .field("feed_redeliver_rate", &self.feed_redeliver_rate)
            .field("feed_drop_rate", &self.feed_drop_rate)
            .finish()
    }
}

/// An `EXCHANGE_SIM_*` variable has a value the simulator cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct SettingsError {
    /// The variable to fix.
    pub var: &'static str,
    pub problem: String,
}

impl SimSettings {
    /// Reads the `EXCHANGE_SIM_*` variables in the module's table. Unset or empty variables keep
    /// the defaults.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|var| match std::env::var(var) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SettingsError {
                var,
                problem: "is not valid UTF-8".into(),
            }),
        })
    }

    /// `from_env` over any source of variables, so that parsing is testable without touching
    /// the process environment.
    pub fn from_lookup(
        lookup: impl Fn(&'static str) -> Result<Option<String>, SettingsError>,
    ) -> Result<Self, SettingsError> {
        let get = |var: &'static str| -> Result<Option<String>, SettingsError> {
            Ok(lookup(var)?
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty()))
        };
        let mut settings = Self::default();
        if let Some(value) = get("EXCHANGE_SIM_LISTEN")? {
            settings.listen = value.parse().map_err(|_| SettingsError {
                var: "EXCHANGE_SIM_LISTEN",
                problem: format!("must be an address like 127.0.0.1:4010, got `{value}`"),
            })?;
        }
        if let Some(value) = get("EXCHANGE_SIM_LATENCY_MS")? {
            settings.latency = millis("EXCHANGE_SIM_LATENCY_MS", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_LOOKUP_LATENCY_MS")? {
            settings.lookup_latency = millis("EXCHANGE_SIM_LOOKUP_LATENCY_MS", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_FAILURE_RATE")? {
            settings.failure_rate = rate("EXCHANGE_SIM_FAILURE_RATE", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_REJECT_INSTRUMENTS")? {
            settings.reject_instruments = instrument_set(value.split(','));
        }
        settings.api_key = get("EXCHANGE_SIM_API_KEY")?;
        if let Some(value) = get("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT")? {
            settings.timeout_after_accept = boolean("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_RATE")? {
            settings.timeout_after_accept_rate =
                rate("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_RATE", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_DELAY_MS")? {
            settings.timeout_after_accept_delay =
                millis("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_DELAY_MS", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_DROP_AFTER_ACCEPT")? {
            settings.drop_after_accept = boolean("EXCHANGE_SIM_DROP_AFTER_ACCEPT", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_DROP_AFTER_ACCEPT_RATE")? {
            settings.drop_after_accept_rate = rate("EXCHANGE_SIM_DROP_AFTER_ACCEPT_RATE", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_FILL_INTERVAL_MS")? {
            settings.fill_interval =
                millis("EXCHANGE_SIM_FILL_INTERVAL_MS", &value)?.max(Duration::from_millis(1));
        }
        if let Some(value) = get("EXCHANGE_SIM_LIMIT_FILL_RATE")? {
            settings.limit_fill_rate = rate("EXCHANGE_SIM_LIMIT_FILL_RATE", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_MARKET_FILLS_MAX")? {
            settings.market_fills_max = positive("EXCHANGE_SIM_MARKET_FILLS_MAX", &value)?
                .try_into()
                .map_err(|_| SettingsError {
                    var: "EXCHANGE_SIM_MARKET_FILLS_MAX",
                    problem: format!("is too large: `{value}`"),
                })?;
        }
        if let Some(value) = get("EXCHANGE_SIM_FEED_CAPACITY")? {
            settings.feed_capacity = positive("EXCHANGE_SIM_FEED_CAPACITY", &value)?
                .try_into()
                .map_err(|_| SettingsError {
                    var: "EXCHANGE_SIM_FEED_CAPACITY",
                    problem: format!("is too large: `{value}`"),
                })?;
        }
        if let Some(value) = get("EXCHANGE_SIM_FEED_DUPLICATE_RATE")? {
            settings.feed_duplicate_rate = rate("EXCHANGE_SIM_FEED_DUPLICATE_RATE", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_FEED_REDELIVER_RATE")? {
            settings.feed_redeliver_rate = rate("EXCHANGE_SIM_FEED_REDELIVER_RATE", &value)?;
        }
        if let Some(value) = get("EXCHANGE_SIM_FEED_DROP_RATE")? {
            settings.feed_drop_rate = rate("EXCHANGE_SIM_FEED_DROP_RATE", &value)?;
        }
        Ok(settings)
    }

    /// Applies a `/control` change; nothing changes unless all of it is valid.
    pub fn apply(&mut self, patch: &ControlPatch) -> Result<(), String> {
        for (field, value) in [
            ("failure_rate", patch.failure_rate),
            ("timeout_after_accept_rate", patch.timeout_after_accept_rate),
            ("drop_after_accept_rate", patch.drop_after_accept_rate),
            ("limit_fill_rate", patch.limit_fill_rate),
            ("feed_duplicate_rate", patch.feed_duplicate_rate),
            ("feed_redeliver_rate", patch.feed_redeliver_rate),
            ("feed_drop_rate", patch.feed_drop_rate),
        ] {
            if let Some(rate) = value.filter(|rate| !valid_rate(*rate)) {
                return Err(format!("{field} must be from 0 to 1, got {rate}"));
            }
        }
        if patch.fill_interval_ms == Some(0) {
            return Err("fill_interval_ms must be at least 1".into());
        }
        if patch.market_fills_max == Some(0) {
            return Err("market_fills_max must be at least 1".into());
        }
        if let Some(ms) = patch.latency_ms {
            self.latency = Duration::from_millis(ms);
        }
        if let Some(ms) = patch.lookup_latency_ms {
            self.lookup_latency = Duration::from_millis(ms);
        }
        if let Some(rate) = patch.failure_rate {
            self.failure_rate = rate;
        }
        if let Some(down) = patch.down {
            self.down = down;
        }
        if let Some(instruments) = &patch.reject_instruments {
            self.reject_instruments = instrument_set(instruments.iter().map(String::as_str));
        }
        if let Some(on) = patch.timeout_after_accept {
            self.timeout_after_accept = on;
        }
        if let Some(rate) = patch.timeout_after_accept_rate {
            self.timeout_after_accept_rate = rate;
        }
        if let Some(ms) = patch.timeout_after_accept_delay_ms {
            self.timeout_after_accept_delay = Duration::from_millis(ms);
        }
        if let Some(on) = patch.drop_after_accept {
            self.drop_after_accept = on;
        }
        if let Some(rate) = patch.drop_after_accept_rate {
            self.drop_after_accept_rate = rate;
        }
        if let Some(ms) = patch.fill_interval_ms {
            self.fill_interval = Duration::from_millis(ms);
        }
        if let Some(rate) = patch.limit_fill_rate {
            self.limit_fill_rate = rate;
        }
        if let Some(max) = patch.market_fills_max {
            self.market_fills_max = max;
        }
        if let Some(rate) = patch.feed_duplicate_rate {
            self.feed_duplicate_rate = rate;
        }
        if let Some(rate) = patch.feed_redeliver_rate {
            self.feed_redeliver_rate = rate;
        }
        if let Some(rate) = patch.feed_drop_rate {
            self.feed_drop_rate = rate;
        }
        Ok(())
    }

    /// The `GET /control` document.
    pub fn view(&self) -> ControlView {
        ControlView {
            latency_ms: millis_of(self.latency),
            lookup_latency_ms: millis_of(self.lookup_latency),
            failure_rate: self.failure_rate,
            down: self.down,
            reject_instruments: self.reject_instruments.iter().cloned().collect(),
            timeout_after_accept: self.timeout_after_accept,
            timeout_after_accept_rate: self.timeout_after_accept_rate,
            timeout_after_accept_delay_ms: millis_of(self.timeout_after_accept_delay),
            drop_after_accept: self.drop_after_accept,
            drop_after_accept_rate: self.drop_after_accept_rate,
            fill_interval_ms: millis_of(self.fill_interval),
            limit_fill_rate: self.limit_fill_rate,
            market_fills_max: self.market_fills_max,
            feed_capacity: self.feed_capacity,
            feed_duplicate_rate: self.feed_duplicate_rate,
            feed_redeliver_rate: self.feed_redeliver_rate,
            feed_drop_rate: self.feed_drop_rate,
            api_key_required: self.api_key.is_some(),
        }
    }

    /// Whether placements of this instrument are refused for good.
    pub fn rejects(&self, instrument: &str) -> bool {
        self.reject_instruments
            .contains(&instrument.trim().to_ascii_uppercase())
    }
}

/// The body of `POST /control`: any subset of the fields; absent fields keep their values and
/// unknown fields are refused (a typo must not silently leave the exchange up).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_instruments: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_after_accept: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_after_accept_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_after_accept_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_accept: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_accept_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_fill_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_fills_max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_duplicate_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_redeliver_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_drop_rate: Option<f64>,
}

/// The current settings as `GET /control` (and `POST /control`) show them. The API key itself
/// is never shown, only whether one is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlView {
    pub latency_ms: u64,
    pub lookup_latency_ms: u64,
    pub failure_rate: f64,
    pub down: bool,
    pub reject_instruments: Vec<String>,
    pub timeout_after_accept: bool,
    pub timeout_after_accept_rate: f64,
    pub timeout_after_accept_delay_ms: u64,
    pub drop_after_accept: bool,
    pub drop_after_accept_rate: f64,
    pub fill_interval_ms: u64,
    pub limit_fill_rate: f64,
    pub market_fills_max: u32,
    /// Read from `EXCHANGE_SIM_FEED_CAPACITY` at start; not changeable at run time.
    pub feed_capacity: usize,
    pub feed_duplicate_rate: f64,
    pub feed_redeliver_rate: f64,
    pub feed_drop_rate: f64,
    pub api_key_required: bool,
}

fn valid_rate(rate: f64) -> bool {
    (0.0..=1.0).contains(&rate)
}

fn rate(var: &'static str, value: &str) -> Result<f64, SettingsError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|rate| valid_rate(*rate))
        .ok_or_else(|| SettingsError {
            var,
            problem: format!("must be a number from 0 to 1, got `{value}`"),
        })
}

fn boolean(var: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SettingsError {
            var,
            problem: format!("must be true or false, got `{value}`"),
        }),
    }
}

fn millis(var: &'static str, value: &str) -> Result<Duration, SettingsError> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| SettingsError {
            var,
            problem: format!("must be a whole number of milliseconds, got `{value}`"),
        })
}

fn positive(var: &'static str, value: &str) -> Result<u64, SettingsError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| SettingsError {
            var,
            problem: format!("must be a whole number of at least 1, got `{value}`"),
        })
}

fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// ISINs are compared upper-case, as the order API normalises them.
fn instrument_set<'a>(items: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    items
        .map(|item| item.trim().to_ascii_uppercase())
        .filter(|item| !item.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&'static str, &str)]) -> Result<SimSettings, SettingsError> {
        let vars: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        SimSettings::from_lookup(|var| Ok(vars.get(var).cloned()))
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(parse(&[]).unwrap(), SimSettings::default());
        assert_eq!(
            parse(&[("EXCHANGE_SIM_API_KEY", "  ")]).unwrap().api_key,
            None
        );
    }

    #[test]
    fn reads_every_variable() {
        let settings = parse(&[
            ("EXCHANGE_SIM_LISTEN", "0.0.0.0:9000"),
            ("EXCHANGE_SIM_LATENCY_MS", "20"),
            ("EXCHANGE_SIM_LOOKUP_LATENCY_MS", "5"),
            ("EXCHANGE_SIM_FAILURE_RATE", "0.5"),
            (
                "EXCHANGE_SIM_REJECT_INSTRUMENTS",
                " us0378331005, ,DE0007164600",
            ),
            ("EXCHANGE_SIM_API_KEY", "k"),
            ("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT", "TRUE"),
            ("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_RATE", "0.25"),
            ("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_DELAY_MS", "1500"),
            ("EXCHANGE_SIM_DROP_AFTER_ACCEPT", "1"),
            ("EXCHANGE_SIM_DROP_AFTER_ACCEPT_RATE", "0.5"),
            ("EXCHANGE_SIM_FILL_INTERVAL_MS", "40"),
            ("EXCHANGE_SIM_LIMIT_FILL_RATE", "0.75"),
            ("EXCHANGE_SIM_MARKET_FILLS_MAX", "5"),
            ("EXCHANGE_SIM_FEED_CAPACITY", "1000"),
            ("EXCHANGE_SIM_FEED_DUPLICATE_RATE", "0.01"),
            ("EXCHANGE_SIM_FEED_REDELIVER_RATE", "0.02"),
            ("EXCHANGE_SIM_FEED_DROP_RATE", "0.03"),
        ])
        .unwrap();
        assert_eq!(settings.fill_interval, Duration::from_millis(40));
        assert_eq!(settings.limit_fill_rate, 0.75);
        assert_eq!(settings.market_fills_max, 5);
        assert_eq!(settings.feed_capacity, 1000);
        assert_eq!(settings.feed_duplicate_rate, 0.01);
        assert_eq!(settings.feed_redeliver_rate, 0.02);
        assert_eq!(settings.feed_drop_rate, 0.03);
        assert!(settings.timeout_after_accept);
        assert_eq!(settings.timeout_after_accept_rate, 0.25);
        assert_eq!(
            settings.timeout_after_accept_delay,
            Duration::from_millis(1500)
        );
        assert!(settings.drop_after_accept);
        assert_eq!(settings.drop_after_accept_rate, 0.5);
        assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(settings.latency, Duration::from_millis(20));
        assert_eq!(settings.lookup_latency, Duration::from_millis(5));
        assert_eq!(settings.failure_rate, 0.5);
        assert!(settings.rejects("US0378331005"));
        assert!(settings.rejects("de0007164600"));
        assert_eq!(settings.reject_instruments.len(), 2);
        assert_eq!(settings.api_key.as_deref(), Some("k"));
        assert!(!format!("{settings:?}").contains("\"k\""));
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("EXCHANGE_SIM_LISTEN", "localhost"),
            ("EXCHANGE_SIM_LATENCY_MS", "-1"),
            ("EXCHANGE_SIM_LOOKUP_LATENCY_MS", "1.5"),
            ("EXCHANGE_SIM_FAILURE_RATE", "1.5"),
            ("EXCHANGE_SIM_FAILURE_RATE", "NaN"),
            ("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT", "yes"),
            ("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_RATE", "2"),
            ("EXCHANGE_SIM_TIMEOUT_AFTER_ACCEPT_DELAY_MS", "soon"),
            ("EXCHANGE_SIM_DROP_AFTER_ACCEPT", "on"),
            ("EXCHANGE_SIM_DROP_AFTER_ACCEPT_RATE", "-0.1"),
            ("EXCHANGE_SIM_FILL_INTERVAL_MS", "fast"),
            ("EXCHANGE_SIM_LIMIT_FILL_RATE", "3"),
            ("EXCHANGE_SIM_MARKET_FILLS_MAX", "0"),
            ("EXCHANGE_SIM_FEED_CAPACITY", "0"),
            ("EXCHANGE_SIM_FEED_DUPLICATE_RATE", "x"),
            ("EXCHANGE_SIM_FEED_REDELIVER_RATE", "-1"),
            ("EXCHANGE_SIM_FEED_DROP_RATE", "1.01"),
        ] {
            let error = parse(&[(var, value)]).unwrap_err();
            assert_eq!(error.var, var);
            assert!(error.to_string().starts_with(var), "{error}");
        }
    }

    #[test]
    fn patches_apply_all_or_nothing() {
        let mut settings = SimSettings::default();
        let bad = ControlPatch {
            down: Some(true),
            failure_rate: Some(2.0),
            ..ControlPatch::default()
        };
        assert!(settings.apply(&bad).is_err());
        assert!(!settings.down);
        for bad in [
            ControlPatch {
                drop_after_accept: Some(true),
                drop_after_accept_rate: Some(1.5),
                ..ControlPatch::default()
            },
            ControlPatch {
                timeout_after_accept_rate: Some(-1.0),
                ..ControlPatch::default()
            },
        ] {
            let error = settings.apply(&bad).unwrap_err();
            assert!(error.contains("_after_accept_rate"), "{error}");
        }
        for (bad, field) in [
            (
                ControlPatch {
                    feed_drop_rate: Some(2.0),
                    ..ControlPatch::default()
                },
                "feed_drop_rate",
            ),
            (
                ControlPatch {
                    fill_interval_ms: Some(0),
                    ..ControlPatch::default()
                },
                "fill_interval_ms",
            ),
            (
                ControlPatch {
                    market_fills_max: Some(0),
                    limit_fill_rate: Some(0.5),
                    ..ControlPatch::default()
                },
                "market_fills_max",
            ),
        ] {
            let error = settings.apply(&bad).unwrap_err();
            assert!(error.contains(field), "{error}");
        }
        assert_eq!(settings.limit_fill_rate, 0.2);
        assert!(!settings.drop_after_accept);

        let good = ControlPatch {
            down: Some(true),
            latency_ms: Some(0),
            reject_instruments: Some(vec!["x1".into()]),
            ..ControlPatch::default()
        };
        settings.apply(&good).unwrap();
        let view = settings.view();
        assert!(view.down);
        assert_eq!(view.latency_ms, 0);
        assert_eq!(view.reject_instruments, ["X1"]);
        assert_eq!(view.failure_rate, 0.10);
    }
}
