//! The placer function's settings.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::adapters::http_exchange::ExchangeConfig;
use crate::adapters::postgres::DatabaseConfig;
use crate::handlers::placer::PlacerSettings;
use crate::ports::BreakerSettings;
use crate::usecases::backoff::Backoff;

/// Settings of the placer function.
#[derive(Debug, Clone)]
pub struct PlacerConfig {
    pub database: DatabaseConfig,
    /// The orders queue, for ChangeMessageVisibility (back-off).
    pub queue_url: String,
    pub exchange: ExchangeConfig,
    pub placer: PlacerSettings,
}

/// The placer's behaviour, shared by the Lambda and the local runner.
/// The lease outlasts one exchange call (`exchange_timeout`) by 10 s by default.
pub fn placer_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    exchange_timeout: Duration,
) -> Result<PlacerSettings, ConfigError> {
    let default_lease = exchange_timeout.as_secs() + 10;
    Ok(PlacerSettings {
        lease: env.seconds("PLACEMENT_LEASE_SECONDS", default_lease)?,
        concurrency: env.parsed("PLACER_CONCURRENCY", 10)?,
        backoff: Backoff {
            base: env.seconds("RETRY_BASE_SECONDS", 2)?,
            max: env.seconds("RETRY_MAX_SECONDS", 300)?,
        },
        short_wait_max: env.seconds("SQS_SHORT_WAIT_MAX_SECONDS", 30)?,
        // Two receives below the template's maxReceiveCount (5): a retried message never
        // reaches the DLQ, whose alarm is for poison messages and crashing handlers.
        park_from_receive: env.parsed("PARK_FROM_RECEIVE", 3)?,
        breaker: BreakerSettings {
            failure_threshold: env.parsed("BREAKER_FAILURE_THRESHOLD", 10)?,
            probe_interval: env.seconds("BREAKER_PROBE_SECONDS", 5)?,
        },
    })
}

impl PlacerConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let exchange = env.exchange()?;
        Ok(Self {
            // Records of a batch run concurrently, each holding a connection briefly.
            database: env.database(4)?,
            queue_url: env.required("ORDERS_QUEUE_URL")?,
            placer: placer_settings(env, exchange.request_timeout)?,
            exchange,
        })
    }
}
