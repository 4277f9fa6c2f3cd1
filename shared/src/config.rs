//! Configuration from environment variables, read once at start-up (the cold start). A missing
//! or bad value fails fast with the variable's name; secrets never reach `Debug` output.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::adapters::postgres::{DatabaseConfig, DatabaseCredentials, TlsMode};

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

/// Where the API key pepper (the HMAC key of the stored key hashes) comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PepperSource {
    /// The pepper itself (local runs and tests); never printed.
    Value(String),
    /// A Secrets Manager secret holding it (AWS); read once at cold start.
    SecretArn(String),
}

impl std::fmt::Debug for PepperSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("PepperSource::Value(***)"),
            Self::SecretArn(arn) => write!(f, "PepperSource::SecretArn({arn})"),
        }
    }
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
}

/// Settings of the api function.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database: DatabaseConfig,
    pub queue_url: String,
    /// The one SQS attempt a request makes; the sweeper retries whatever this misses.
    pub enqueue_timeout: Duration,
    pub pepper: PepperSource,
}

impl ApiConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            // One request per Lambda instance at a time: two connections cover the request and
            // a reconnect; instances × 2 must stay under RDS Proxy's connection limit.
            database: env.database(2)?,
            queue_url: env.required("ORDERS_QUEUE_URL")?,
            enqueue_timeout: env.millis("ENQUEUE_TIMEOUT_MS", 1_000)?,
            pepper: env.pepper()?,
        })
    }
}

/// Settings of the sweeper.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub database: DatabaseConfig,
    pub queue_url: String,
    pub sweep: SweepSettings,
}

/// How the sweeper picks stranded orders.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Orders younger than this are left alone: their request may still be sending them.
    pub grace: Duration,
    /// How long a claimed order is hidden from other sweepers while this one sends it.
    pub claim_for: Duration,
    /// Orders per run; the rest wait for the next run.
    pub batch_size: u32,
}

impl SweepSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            grace: env.seconds("SWEEP_GRACE_SECONDS", 30)?,
            claim_for: env.seconds("SWEEP_CLAIM_SECONDS", 60)?,
            batch_size: env.parsed("SWEEP_BATCH_SIZE", 500)?,
        })
    }
}

impl SweeperConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: env.database(2)?,
            queue_url: env.required("ORDERS_QUEUE_URL")?,
            sweep: SweepSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
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

/// How to reach the exchange.
#[derive(Clone)]
pub struct ExchangeConfig {
    pub base_url: String,
    /// The API key itself (local runs); never printed.
    pub api_key: Option<String>,
    /// A Secrets Manager secret holding the API key (AWS); read at start-up.
    pub api_key_secret_arn: Option<String>,
    pub connect_timeout: Duration,
    /// Bounds one placement call; the exchange takes ≈0.5 s, so this leaves room for its slow
    /// moments while keeping the lease (and the visibility timeout) short.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ExchangeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("api_key_secret_arn", &self.api_key_secret_arn)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl ExchangeConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: env.required("EXCHANGE_BASE_URL")?,
            api_key: env.optional("EXCHANGE_API_KEY"),
            api_key_secret_arn: env.optional("EXCHANGE_API_KEY_SECRET_ARN"),
            connect_timeout: env.millis("EXCHANGE_CONNECT_TIMEOUT_MS", 1_000)?,
            request_timeout: env.millis("EXCHANGE_TIMEOUT_MS", 5_000)?,
        })
    }
}

/// Settings of the placer function.
#[derive(Debug, Clone)]
pub struct PlacerConfig {
    pub database: DatabaseConfig,
    /// The orders queue, for ChangeMessageVisibility (back-off).
    pub queue_url: String,
    pub exchange: ExchangeConfig,
    pub placer: crate::placer::PlacerSettings,
}

/// The placer's behaviour, shared by the Lambda and the local runner.
pub fn placer_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    exchange: &ExchangeConfig,
) -> Result<crate::placer::PlacerSettings, ConfigError> {
    let default_lease = exchange.request_timeout.as_secs() + 10;
    Ok(crate::placer::PlacerSettings {
        lease: env.seconds("PLACEMENT_LEASE_SECONDS", default_lease)?,
        concurrency: env.parsed("PLACER_CONCURRENCY", 10)?,
        backoff: crate::backoff::Backoff {
            base: env.seconds("RETRY_BASE_SECONDS", 2)?,
            max: env.seconds("RETRY_MAX_SECONDS", 300)?,
        },
    })
}

impl PlacerConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let exchange = ExchangeConfig::from_env(env)?;
        Ok(Self {
            // Records of a batch run concurrently, each holding a connection briefly.
            database: env.database(4)?,
            queue_url: env.required("ORDERS_QUEUE_URL")?,
            placer: placer_settings(env, &exchange)?,
            exchange,
        })
    }
}

/// Settings of the alerter function.
#[derive(Debug, Clone)]
pub struct AlerterConfig {
    pub database: DatabaseConfig,
    pub exchange: ExchangeConfig,
    pub alert_topic_arn: String,
}

impl AlerterConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: env.database(2)?,
            exchange: ExchangeConfig::from_env(env)?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN")?,
        })
    }
}
