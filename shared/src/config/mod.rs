//! Configuration from environment variables, one module per binary, each read once at start-up
//! (the cold start). A missing or bad value fails fast with the variable's name; secrets never
//! reach `Debug` output. This is the outermost layer of the library: it builds the adapters' and
//! handlers' settings, and nothing below imports it.

mod alerter;
mod api;
mod ingester;
mod live;
mod placer;
mod sweeper;

pub use alerter::{AlerterConfig, alert_window, dead_letter_resends};
pub use api::{ApiConfig, expiry_policy, idempotency_retention};
pub use ingester::{IngesterConfig, feed_socket, ingester_settings};
pub use live::{LiveConnectConfig, LiveFanoutConfig};
pub use placer::{PlacerConfig, placer_settings};
pub use sweeper::{SweeperConfig, sweep_settings};

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::adapters::http_exchange::ExchangeConfig;
use crate::adapters::postgres::{DatabaseConfig, DatabaseCredentials, TlsMode};
use crate::adapters::secrets::PepperSource;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("set exactly one of DATABASE_URL and DATABASE_SECRET_ARN")]
    DatabaseSource,
    #[error("set exactly one of API_KEY_PEPPER and API_KEY_PEPPER_SECRET_ARN")]
    PepperSource,
}

/// Reads variables through a lookup function so tests can pass a map instead of mutating the
/// process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

/// The real process environment.
pub fn process_env() -> Env<impl Fn(&str) -> Option<String>> {
    Env(|name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name)
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    pub fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                }),
        }
    }

    pub fn millis(&self, name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parsed(name, default_ms).map(Duration::from_millis)
    }

    pub fn seconds(&self, name: &'static str, default_s: u64) -> Result<Duration, ConfigError> {
        self.parsed(name, default_s).map(Duration::from_secs)
    }

    /// The pepper of the API key hashes: needed by the api and by the admin tool.
    pub fn pepper(&self) -> Result<PepperSource, ConfigError> {
        match (
            self.optional("API_KEY_PEPPER"),
            self.optional("API_KEY_PEPPER_SECRET_ARN"),
        ) {
            (Some(value), None) => Ok(PepperSource::Value(value)),
            (None, Some(arn)) => Ok(PepperSource::SecretArn(arn)),
            _ => Err(ConfigError::PepperSource),
        }
    }

    /// The migrator only: the secret of the application role that the other functions connect
    /// as (`APP_DATABASE_SECRET_ARN`, RDS format; only `username` and `password` are used). The
    /// migrator creates that role and grants it DML on the tables; without it (local runs, an
    /// existing database managed elsewhere) no role is managed.
    pub fn application_role_secret(&self) -> Option<String> {
        self.optional("APP_DATABASE_SECRET_ARN")
    }

    /// The database settings shared by every function.
    pub fn database(&self, default_pool_size: usize) -> Result<DatabaseConfig, ConfigError> {
        let credentials = match (
            self.optional("DATABASE_URL"),
            self.optional("DATABASE_SECRET_ARN"),
        ) {
            (Some(url), None) => DatabaseCredentials::Url(url),
            (None, Some(arn)) => DatabaseCredentials::Secret {
                arn,
                host_override: self.optional("DATABASE_HOST"),
                dbname_override: self.optional("DATABASE_NAME"),
            },
            _ => return Err(ConfigError::DatabaseSource),
        };
        let default_tls = match credentials {
            DatabaseCredentials::Url(_) => "disable",
            DatabaseCredentials::Secret { .. } => "verify-full",
        };
        let tls = match self
            .optional("DATABASE_TLS")
            .as_deref()
            .unwrap_or(default_tls)
        {
            "disable" => TlsMode::Disable,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(ConfigError::Invalid {
                    name: "DATABASE_TLS",
                    reason: format!("expected `disable` or `verify-full`, got `{other}`"),
                });
            }
        };
        let pool_size = self.parsed("DATABASE_POOL_SIZE", default_pool_size)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "DATABASE_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(DatabaseConfig {
            credentials,
            tls,
            ca_file: self.optional("DATABASE_CA_FILE").map(PathBuf::from),
            pool_size,
            connect_timeout: self.millis("DATABASE_CONNECT_TIMEOUT_MS", 2_000)?,
        })
    }

    /// How to reach the exchange (the placer, the alerter and the local runner).
    pub fn exchange(&self) -> Result<ExchangeConfig, ConfigError> {
        Ok(ExchangeConfig {
            base_url: self.required("EXCHANGE_BASE_URL")?,
            api_key: self.optional("EXCHANGE_API_KEY"),
            api_key_secret_arn: self.optional("EXCHANGE_API_KEY_SECRET_ARN"),
            connect_timeout: self.millis("EXCHANGE_CONNECT_TIMEOUT_MS", 1_000)?,
            request_timeout: self.millis("EXCHANGE_TIMEOUT_MS", 5_000)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// An environment of exactly `pairs` (shared with the other config modules' tests).
    pub(crate) fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn api_config_needs_a_queue_and_one_database_source() {
        let missing_queue = ApiConfig::from_env(&env(&[("DATABASE_URL", "postgres://x/y")]));
        assert_eq!(
            missing_queue.unwrap_err(),
            ConfigError::Missing("ORDERS_QUEUE_URL")
        );
        let both = ApiConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("DATABASE_SECRET_ARN", "arn:aws:secretsmanager:x"),
            ("ORDERS_QUEUE_URL", "http://q"),
        ]));
        assert_eq!(both.unwrap_err(), ConfigError::DatabaseSource);
        let no_pepper = ApiConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("ORDERS_QUEUE_URL", "http://q"),
        ]));
        assert_eq!(no_pepper.unwrap_err(), ConfigError::PepperSource);
    }

    #[test]
    fn the_pepper_comes_from_exactly_one_place_and_is_never_printed() {
        let value = env(&[("API_KEY_PEPPER", "p3pper-value")]).pepper().unwrap();
        assert!(!format!("{value:?}").contains("p3pper"));
        let arn = env(&[("API_KEY_PEPPER_SECRET_ARN", "arn:x")])
            .pepper()
            .unwrap();
        assert_eq!(arn, PepperSource::SecretArn("arn:x".into()));
        let both = env(&[
            ("API_KEY_PEPPER", "p"),
            ("API_KEY_PEPPER_SECRET_ARN", "arn:x"),
        ]);
        assert_eq!(both.pepper().unwrap_err(), ConfigError::PepperSource);
    }

    #[test]
    fn secrets_default_to_verified_tls_and_urls_to_plain() {
        let secret = env(&[("DATABASE_SECRET_ARN", "arn")]).database(2).unwrap();
        assert_eq!(secret.tls, TlsMode::VerifyFull);
        let url = env(&[("DATABASE_URL", "postgres://x/y")])
            .database(2)
            .unwrap();
        assert_eq!(url.tls, TlsMode::Disable);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = ApiConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("ORDERS_QUEUE_URL", "http://q"),
            ("API_KEY_PEPPER", "p"),
            ("ENQUEUE_TIMEOUT_MS", "soon"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("ENQUEUE_TIMEOUT_MS"), "{err}");
        let err = env(&[("DATABASE_URL", "u"), ("DATABASE_TLS", "maybe")])
            .database(2)
            .unwrap_err();
        assert!(err.to_string().contains("DATABASE_TLS"), "{err}");
    }
}
