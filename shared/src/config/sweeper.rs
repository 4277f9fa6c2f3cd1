//! The sweeper function's settings.

use super::{ConfigError, Env};
use crate::adapters::postgres::DatabaseConfig;
use crate::handlers::sweeper::SweepSettings;

/// Settings of the sweeper.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub database: DatabaseConfig,
    pub queue_url: String,
    pub sweep: SweepSettings,
    pub alert_topic_arn: String,
    /// Idempotency keys older than this are released.
    pub idempotency_retention: std::time::Duration,
}

/// How the sweeper picks stranded orders (the Lambda and the local runner).
pub fn sweep_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<SweepSettings, ConfigError> {
    Ok(SweepSettings {
        grace: env.seconds("SWEEP_GRACE_SECONDS", 30)?,
        claim_for: env.seconds("SWEEP_CLAIM_SECONDS", 60)?,
        batch_size: env.parsed("SWEEP_BATCH_SIZE", 500)?,
        alert_window: super::alert_window(env)?,
    })
}

impl SweeperConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: env.database(2)?,
            queue_url: env.required("ORDERS_QUEUE_URL")?,
            sweep: sweep_settings(env)?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN")?,
            idempotency_retention: super::idempotency_retention(env)?,
        })
    }
}
