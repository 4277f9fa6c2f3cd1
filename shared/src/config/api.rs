//! The api function's settings.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::adapters::postgres::DatabaseConfig;
use crate::adapters::secrets::PepperSource;

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
