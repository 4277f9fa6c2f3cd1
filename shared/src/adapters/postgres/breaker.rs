//! The exchange breaker on Postgres (the `ExchangeBreaker` port): one row that every placer
//! instance reads and updates, so the failure count and the probe slot are shared. Plain
//! statements only: nothing is kept on the connection.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::orders::PostgresOrderStore;
use super::statements;
use super::store_errors::query_error;
use crate::ports::{BreakerSettings, ExchangeBreaker, Permit, StoreError};

#[async_trait]
impl ExchangeBreaker for PostgresOrderStore {
    async fn permit(&self, settings: &BreakerSettings) -> Result<Permit, StoreError> {
        let client = self.client().await?;
        // One round trip: an open breaker whose probe is due hands the probe to exactly one
        // caller (the conditional update), everybody else learns when to come back.
        let row = statements::one(
            &client,
            "WITH probe AS ( \
                   UPDATE exchange_breaker \
                   SET next_probe_at = now() + make_interval(secs => $1), updated_at = now() \
                   WHERE id = 1 AND state = 'open' AND next_probe_at <= now() \
                   RETURNING next_probe_at \
                 ) \
                 SELECT 'probe' AS permit, next_probe_at FROM probe \
                 UNION ALL \
                 SELECT CASE WHEN state = 'closed' THEN 'call' ELSE 'wait' END, next_probe_at \
                 FROM exchange_breaker WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM probe)",
            &[&settings.probe_interval.as_secs_f64()],
        )
        .await
        .map_err(query_error("breaker permit"))?;
        let permit: &str = row.get("permit");
        let next_probe_at: Option<OffsetDateTime> = row.get("next_probe_at");
        Ok(match (permit, next_probe_at) {
            ("call", _) => Permit::Call,
            ("probe", _) => Permit::Probe,
            (_, Some(until)) => Permit::Wait { until },
            // Open without a probe time cannot be written by `record`; treat it as closed.
            (_, None) => Permit::Call,
        })
    }

    async fn record(
        &self,
        exchange_up: bool,
        settings: &BreakerSettings,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        if exchange_up {
            // Written only when there is something to reset: the common case changes nothing.
            let closed = statements::execute(
                &client,
                "UPDATE exchange_breaker SET state = 'closed', consecutive_failures = 0, \
                            opened_at = NULL, next_probe_at = NULL, updated_at = now() \
                     WHERE id = 1 AND (state <> 'closed' OR consecutive_failures > 0)",
                &[],
            )
            .await
            .map_err(query_error("breaker success"))?;
            if closed > 0 {
                tracing::info!("exchange breaker closed: the exchange answers again");
            }
            return Ok(());
        }
        let row = statements::one(
            &client,
            "UPDATE exchange_breaker SET \
                   consecutive_failures = consecutive_failures + 1, \
                   opened_at = CASE WHEN state = 'closed' AND consecutive_failures + 1 >= $1 \
                                    THEN now() ELSE opened_at END, \
                   next_probe_at = CASE WHEN state = 'closed' AND consecutive_failures + 1 >= $1 \
                                        THEN now() + make_interval(secs => $2) \
                                        ELSE next_probe_at END, \
                   state = CASE WHEN consecutive_failures + 1 >= $1 THEN 'open' ELSE state END, \
                   updated_at = now() \
                 WHERE id = 1 \
                 RETURNING state, consecutive_failures, \
                           COALESCE(opened_at = now(), false) AS just_opened",
            &[
                &(settings.failure_threshold.max(1) as i32),
                &settings.probe_interval.as_secs_f64(),
            ],
        )
        .await
        .map_err(query_error("breaker failure"))?;
        if row.get::<_, bool>("just_opened") {
            tracing::warn!(
                failures = row.get::<_, i32>("consecutive_failures"),
                "exchange breaker opened: only probes reach the exchange until one succeeds"
            );
        }
        Ok(())
    }
}
