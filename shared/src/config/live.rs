//! The live order updates' settings in AWS: the `$connect`/`$disconnect` function
//! (`functions/live-connect`) and the fan-out service (`services/live-fanout`).

use std::time::Duration;

use super::{ConfigError, Env};
use crate::adapters::postgres::DatabaseConfig;
use crate::adapters::secrets::PepperSource;
use crate::handlers::updates::HubSettings;
use crate::handlers::updates::fanout::FanoutSettings;

/// Settings of the `$connect`/`$disconnect` function: it checks keys as the api does.
#[derive(Debug, Clone)]
pub struct LiveConnectConfig {
    pub database: DatabaseConfig,
    pub pepper: PepperSource,
}

impl LiveConnectConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            // One event at a time per instance: the key check, then the row.
            database: env.database(1)?,
            pepper: env.pepper()?,
        })
    }
}

/// Settings of the fan-out.
#[derive(Debug, Clone)]
pub struct LiveFanoutConfig {
    pub database: DatabaseConfig,
    /// The WebSocket API's management endpoint (`LIVE_UPDATES_ENDPOINT`,
    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
    pub endpoint: String,
    pub fanout: FanoutSettings,
}

impl LiveFanoutConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let endpoint = env.required("LIVE_UPDATES_ENDPOINT")?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "LIVE_UPDATES_ENDPOINT",
                reason: format!("expected the WebSocket API's https:// endpoint, got `{endpoint}`"),
            });
        }
        let defaults = FanoutSettings::default();
        let fanout = FanoutSettings {
            hub: HubSettings {
                poll_interval: env.millis(
                    "LIVE_FANOUT_POLL_MS",
                    defaults.hub.poll_interval.as_millis() as u64,
                )?,
                ..defaults.hub
            },
            refresh: env.millis(
                "LIVE_FANOUT_REFRESH_MS",
                defaults.refresh.as_millis() as u64,
            )?,
            recheck: env.seconds(
                "LIVE_FANOUT_KEY_RECHECK_SECONDS",
                defaults.recheck.as_secs(),
            )?,
            concurrency: env.parsed("LIVE_FANOUT_CONCURRENCY", defaults.concurrency)?,
        };
        if fanout.concurrency == 0 || fanout.hub.poll_interval < Duration::from_millis(5) {
            return Err(ConfigError::Invalid {
                name: "LIVE_FANOUT_CONCURRENCY",
                reason: "concurrency must be at least 1 and the poll interval at least 5 ms".into(),
            });
        }
        Ok(Self {
            // One statement at a time: a step reads the trail, the table and the revoked keys
            // and deletes gone connections one after another; the sends need no connection.
            database: env.database(1)?,
            endpoint,
            fanout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn the_fan_out_needs_the_management_endpoint_and_reads_its_settings() {
        assert_eq!(
            LiveFanoutConfig::from_env(&env(&[("DATABASE_URL", "postgres://x/y")])).unwrap_err(),
            ConfigError::Missing("LIVE_UPDATES_ENDPOINT")
        );
        assert!(matches!(
            LiveFanoutConfig::from_env(&env(&[
                ("DATABASE_URL", "postgres://x/y"),
                ("LIVE_UPDATES_ENDPOINT", "wss://x/prod"),
            ]))
            .unwrap_err(),
            ConfigError::Invalid { .. }
        ));
        let config = LiveFanoutConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://x/y"),
            (
                "LIVE_UPDATES_ENDPOINT",
                "https://abc.execute-api.eu-central-1.amazonaws.com/live",
            ),
            ("LIVE_FANOUT_POLL_MS", "50"),
        ]))
        .unwrap();
        assert_eq!(config.fanout.hub.poll_interval, Duration::from_millis(50));
        assert_eq!(config.fanout.concurrency, 32);
        assert_eq!(config.database.pool_size, 1);
    }
}
