//! The api function's settings.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::adapters::postgres::DatabaseConfig;
use crate::adapters::secrets::PepperSource;
use crate::domain::{DEFAULT_MARKET_ORDER_TTL, ExpiryPolicy, IdempotencyKey, MAX_TIME_IN_FORCE};

/// How long orders live by default (`MARKET_ORDER_TTL_SECONDS`, at most 30 days).
pub fn expiry_policy<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<ExpiryPolicy, ConfigError> {
    let market_order_ttl = env.seconds(
        "MARKET_ORDER_TTL_SECONDS",
        DEFAULT_MARKET_ORDER_TTL.as_secs(),
    )?;
    if market_order_ttl.is_zero() || market_order_ttl > MAX_TIME_IN_FORCE {
        return Err(ConfigError::Invalid {
            name: "MARKET_ORDER_TTL_SECONDS",
            reason: "must be from 1 second to 30 days".into(),
        });
    }
    Ok(ExpiryPolicy { market_order_ttl })
}

/// How long an idempotency key names its order (`IDEMPOTENCY_KEY_RETENTION_SECONDS`, default 24
/// hours): the api answers a reused key with its order within it, and the sweeper releases the
/// key after it. Set the same value for both.
pub fn idempotency_retention<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Duration, ConfigError> {
    let retention = env.seconds(
        "IDEMPOTENCY_KEY_RETENTION_SECONDS",
        IdempotencyKey::DEFAULT_RETENTION.as_secs(),
    )?;
    if retention.is_zero() {
        return Err(ConfigError::Invalid {
            name: "IDEMPOTENCY_KEY_RETENTION_SECONDS",
            reason: "must be at least 1 second".into(),
        });
    }
    Ok(retention)
}

/// Settings of the api function.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database: DatabaseConfig,
    pub queue_url: String,
    /// The one SQS attempt a request makes; the sweeper retries whatever this misses.
    pub enqueue_timeout: Duration,
    pub pepper: PepperSource,
    pub expiry: ExpiryPolicy,
    /// How long an idempotency key names its order.
    pub idempotency_retention: Duration,
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
            expiry: expiry_policy(env)?,
            idempotency_retention: idempotency_retention(env)?,
        })
    }
}
