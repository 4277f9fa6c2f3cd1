//! The simulator's knobs: their defaults, how the binary reads them from `EXCHANGE_SIM_*`
//! variables, and the `/control` documents that read and change them while it runs (so that a
//! test can take the exchange down and bring it back without restarting anything).

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
    pub timeout_after_accept_delay: Duration,
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
            timeout_after_accept_delay: Duration::from_secs(30),
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
            .field(
                "timeout_after_accept_delay",
                &self.timeout_after_accept_delay,
            )
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
    /// Reads `EXCHANGE_SIM_LISTEN` (default `127.0.0.1:4010`), `EXCHANGE_SIM_LATENCY_MS`,
    /// `EXCHANGE_SIM_LOOKUP_LATENCY_MS`, `EXCHANGE_SIM_FAILURE_RATE` (0 to 1),
    /// `EXCHANGE_SIM_REJECT_INSTRUMENTS` (comma list) and `EXCHANGE_SIM_API_KEY`. Unset or empty
    /// variables keep the defaults.
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
            let rate = value.parse::<f64>().ok().filter(|rate| valid_rate(*rate));
            settings.failure_rate = rate.ok_or_else(|| SettingsError {
                var: "EXCHANGE_SIM_FAILURE_RATE",
                problem: format!("must be a number from 0 to 1, got `{value}`"),
            })?;
        }
        if let Some(value) = get("EXCHANGE_SIM_REJECT_INSTRUMENTS")? {
            settings.reject_instruments = instrument_set(value.split(','));
        }
        settings.api_key = get("EXCHANGE_SIM_API_KEY")?;
        Ok(settings)
    }

    /// Applies a `/control` change; nothing changes unless all of it is valid.
    pub fn apply(&mut self, patch: &ControlPatch) -> Result<(), String> {
        if let Some(rate) = patch.failure_rate.filter(|rate| !valid_rate(*rate)) {
            return Err(format!("failure_rate must be from 0 to 1, got {rate}"));
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
        if let Some(ms) = patch.timeout_after_accept_delay_ms {
            self.timeout_after_accept_delay = Duration::from_millis(ms);
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
            timeout_after_accept_delay_ms: millis_of(self.timeout_after_accept_delay),
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
    pub timeout_after_accept_delay_ms: Option<u64>,
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
    pub timeout_after_accept_delay_ms: u64,
    pub api_key_required: bool,
}

fn valid_rate(rate: f64) -> bool {
    (0.0..=1.0).contains(&rate)
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
        ])
        .unwrap();
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
