//! The ingester's settings (a long-running service, `services/ingester`).

use super::{ConfigError, Env};
use crate::adapters::feed_socket::FeedSocketConfig;
use crate::adapters::postgres::DatabaseConfig;
use crate::handlers::ingester::IngesterSettings;

/// Settings of the ingester.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    pub database: DatabaseConfig,
    pub feed: FeedSocketConfig,
    pub ingester: IngesterSettings,
    /// Secrets Manager secret holding the exchange's API key (bare, or JSON `{"api_key": …}`),
    /// read at start; it wins over `EXCHANGE_API_KEY`.
    pub exchange_api_key_secret_arn: Option<String>,
}

/// How the feed is reached: `EXECUTION_FEED_URL` (`ws://…/feed`, `wss://` in AWS), the
/// exchange's API key (`EXCHANGE_API_KEY`; the service also reads
/// `EXCHANGE_API_KEY_SECRET_ARN`), `EXCHANGE_CONNECT_TIMEOUT_MS` and
/// `EXECUTION_FEED_SILENCE_SECONDS`.
pub fn feed_socket<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    url: String,
) -> Result<FeedSocketConfig, ConfigError> {
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(ConfigError::Invalid {
            name: "EXECUTION_FEED_URL",
            reason: format!("expected a ws:// or wss:// URL, got `{url}`"),
        });
    }
    Ok(FeedSocketConfig {
        url,
        api_key: env.optional("EXCHANGE_API_KEY"),
        connect_timeout: env.millis("EXCHANGE_CONNECT_TIMEOUT_MS", 1_000)?,
        // The exchange pings idle connections every 10 s.
        silence_timeout: env.seconds("EXECUTION_FEED_SILENCE_SECONDS", 30)?,
    })
}

/// The ingester's behaviour (the service and the local runner).
pub fn ingester_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<IngesterSettings, ConfigError> {
    let holder = env.optional("INGESTER_ID").unwrap_or_else(|| {
        format!(
            "ingester-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        )
    });
    let defaults = IngesterSettings::new(holder);
    let settings = IngesterSettings {
        lease: env.seconds("INGESTER_LEASE_SECONDS", defaults.lease.as_secs())?,
        batch_size: env.parsed("INGESTER_BATCH_SIZE", defaults.batch_size)?,
        linger: env.millis("INGESTER_LINGER_MS", defaults.linger.as_millis() as u64)?,
        reconnect_min: env.millis(
            "INGESTER_RECONNECT_MIN_MS",
            defaults.reconnect_min.as_millis() as u64,
        )?,
        reconnect_max: env.millis(
            "INGESTER_RECONNECT_MAX_MS",
            defaults.reconnect_max.as_millis() as u64,
        )?,
        stranded_every: env.millis(
            "INGESTER_RETRY_WAITING_MS",
            defaults.stranded_every.as_millis() as u64,
        )?,
        stranded_limit: env.parsed("INGESTER_RETRY_WAITING_LIMIT", defaults.stranded_limit)?,
        ..defaults
    };
    if settings.batch_size == 0 {
        return Err(ConfigError::Invalid {
            name: "INGESTER_BATCH_SIZE",
            reason: "must be at least 1".into(),
        });
    }
    if settings.lease.as_secs() < 3 {
        return Err(ConfigError::Invalid {
            name: "INGESTER_LEASE_SECONDS",
            reason: "must be at least 3".into(),
        });
    }
    Ok(settings)
}

impl IngesterConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            // One connection writes the batches; one more for the lease renewal and reads.
            database: env.database(2)?,
            feed: feed_socket(env, env.required("EXECUTION_FEED_URL")?)?,
            ingester: ingester_settings(env)?,
            exchange_api_key_secret_arn: env.optional("EXCHANGE_API_KEY_SECRET_ARN"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::env;

    #[test]
    fn the_ingester_needs_a_websocket_feed_url_and_keeps_its_key_out_of_debug() {
        let base = [("DATABASE_URL", "postgres://x/y")];
        assert_eq!(
            IngesterConfig::from_env(&env(&base)).unwrap_err(),
            ConfigError::Missing("EXECUTION_FEED_URL")
        );
        let http = [
            ("DATABASE_URL", "postgres://x/y"),
            ("EXECUTION_FEED_URL", "http://x/feed"),
        ];
        assert!(matches!(
            IngesterConfig::from_env(&env(&http)).unwrap_err(),
            ConfigError::Invalid {
                name: "EXECUTION_FEED_URL",
                ..
            }
        ));
        let config = IngesterConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("EXECUTION_FEED_URL", "wss://exchange.example/feed"),
            ("EXCHANGE_API_KEY", "s3cret-key"),
            ("INGESTER_ID", "task-1"),
            ("INGESTER_BATCH_SIZE", "500"),
        ]))
        .unwrap();
        assert_eq!(config.ingester.holder, "task-1");
        assert_eq!(config.ingester.batch_size, 500);
        assert_eq!(config.ingester.lease, Duration::from_secs(15));
        assert_eq!(config.database.pool_size, 2);
        assert!(!format!("{config:?}").contains("s3cret"));
        let tiny_lease = [
            ("DATABASE_URL", "postgres://x/y"),
            ("EXECUTION_FEED_URL", "ws://x/feed"),
            ("INGESTER_LEASE_SECONDS", "1"),
        ];
        assert!(IngesterConfig::from_env(&env(&tiny_lease)).is_err());
    }
}
