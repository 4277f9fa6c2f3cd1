//! The alerter function's settings.

use super::{ConfigError, Env};
use crate::adapters::http_exchange::ExchangeConfig;
use crate::adapters::postgres::DatabaseConfig;

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
            exchange: env.exchange()?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN")?,
        })
    }
}
