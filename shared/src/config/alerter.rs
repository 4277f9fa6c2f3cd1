//! The alerter function's settings.

use super::{ConfigError, Env};
use crate::adapters::http_exchange::ExchangeConfig;
use crate::adapters::postgres::DatabaseConfig;
use crate::handlers::alerter::{AlerterSettings, DEFAULT_DEAD_LETTER_RESENDS};

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

/// How many times the alerter sends a dead-lettered pending order again before failing it.
pub fn dead_letter_resends<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<u32, ConfigError> {
    let resends = env.parsed("ALERTER_DEAD_LETTER_RESENDS", DEFAULT_DEAD_LETTER_RESENDS)?;
    if resends > 10 {
        return Err(ConfigError::Invalid {
            name: "ALERTER_DEAD_LETTER_RESENDS",
            reason: format!(
                "{resends} resends would keep an order that crashes the placer from its admin \
                 for hours; at most 10"
            ),
        });
    }
    Ok(resends)
}

impl AlerterConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: env.database(2)?,
            exchange: env.exchange()?,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN")?,
            alerter: AlerterSettings {
                alert_window: alert_window(env)?,
                dead_letter_resends: dead_letter_resends(env)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn dead_letter_resends_default_to_three_and_stop_at_ten() {
        assert_eq!(dead_letter_resends(&env(&[])).unwrap(), 3);
        let none = env(&[("ALERTER_DEAD_LETTER_RESENDS", "0")]);
        assert_eq!(dead_letter_resends(&none).unwrap(), 0);
        let many = env(&[("ALERTER_DEAD_LETTER_RESENDS", "11")]);
        assert!(matches!(
            dead_letter_resends(&many),
            Err(ConfigError::Invalid {
                name: "ALERTER_DEAD_LETTER_RESENDS",
                ..
            })
        ));
    }
}
