//! The alerter function's settings.

use super::{ConfigError, Env};
use crate::adapters::http_exchange::ExchangeConfig;
use crate::adapters::postgres::DatabaseConfig;
use crate::handlers::alerter::AlerterSettings;

/// Settings of the alerter function.
#[derive(Debug, Clone)]
pub struct AlerterConfig {
    pub database: DatabaseConfig,
    pub exchange: ExchangeConfig,
    pub alert_topic_arn: String,
    pub alerter: AlerterSettings,
}

/// The alert window shared by the alerter and the sweeper: an incident is over once no order
/// failed or expired for this long.
pub fn alert_window<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<std::time::Duration, ConfigError> {
    env.seconds("ALERT_WINDOW_SECONDS", 300)
}

impl AlerterConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: env.database(2)?,
            exchange: env.exchange()?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN")?,
            alerter: AlerterSettings {
                alert_window: alert_window(env)?,
            },
        })
    }
}
