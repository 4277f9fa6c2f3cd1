//! Incidents on Postgres (the `IncidentLog` port). The rows are written by the transitions that
//! fail or expire orders (`transitions`); this claims what admins have not been told yet (the
//! alerter and the sweeper both announce, and must not both publish one alert) and marks it told.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::Row;

use super::orders::PostgresOrderStore;
use super::statements;
use super::store_errors::query_error;
use crate::ports::{Incident, IncidentLog, StoreError};

/// How long one announcer holds an incident's next alert: longer than a publish takes; if it
/// crashes, another announcer publishes after this (at least once, not twice at once).
const CLAIM: &str = "interval '30 seconds'";

const INCIDENT_COLUMNS: &str = "id, kind, opened_at, last_seen_at, order_count, \
     first_order_ids, sample_error, closed_at";

fn incident_from_row(row: &Row) -> Incident {
    Incident {
        id: row.get("id"),
        kind: row.get("kind"),
        opened_at: row.get("opened_at"),
        last_seen_at: row.get("last_seen_at"),
        order_count: i64::from(row.get::<_, i32>("order_count")),
        first_order_ids: row.get("first_order_ids"),
        sample_error: row.get("sample_error"),
        closed_at: row.get("closed_at"),
    }
}

#[async_trait]
impl IncidentLog for PostgresOrderStore {
    async fn unannounced(&self) -> Result<Vec<Incident>, StoreError> {
        let client = self.client().await?;
        let rows = statements::rows(
            &client,
            &format!(
                "UPDATE alert_incidents SET announce_claimed_until = now() + {CLAIM} \
                     WHERE opened_alert_at IS NULL \
                       AND (announce_claimed_until IS NULL OR announce_claimed_until < now()) \
                     RETURNING {INCIDENT_COLUMNS}"
            ),
            &[],
        )
        .await
        .map_err(query_error("claim unannounced incidents"))?;
        let mut incidents: Vec<Incident> = rows.iter().map(incident_from_row).collect();
        incidents.sort_by_key(|i| i.id);
        Ok(incidents)
    }

    async fn close_quiet(&self, quiet: Duration) -> Result<Vec<Incident>, StoreError> {
        let client = self.client().await?;
        // Only announced incidents close, so that admins hear "opened" before "over".
        statements::execute(
            &client,
            "UPDATE alert_incidents SET closed_at = now(), updated_at = now() \
                 WHERE closed_at IS NULL AND opened_alert_at IS NOT NULL \
                   AND last_seen_at < now() - make_interval(secs => $1)",
            &[&quiet.as_secs_f64()],
        )
        .await
        .map_err(query_error("close quiet incidents"))?;
        let rows = statements::rows(
            &client,
            &format!(
                "UPDATE alert_incidents SET announce_claimed_until = now() + {CLAIM} \
                     WHERE closed_at IS NOT NULL AND closed_alert_at IS NULL \
                       AND (announce_claimed_until IS NULL OR announce_claimed_until < now()) \
                     RETURNING {INCIDENT_COLUMNS}"
            ),
            &[],
        )
        .await
        .map_err(query_error("claim closed incidents"))?;
        let mut incidents: Vec<Incident> = rows.iter().map(incident_from_row).collect();
        incidents.sort_by_key(|i| i.id);
        Ok(incidents)
    }

    async fn mark_announced(&self, id: i64) -> Result<(), StoreError> {
        self.mark_incident("opened_alert_at", id).await
    }

    async fn mark_closed_announced(&self, id: i64) -> Result<(), StoreError> {
        self.mark_incident("closed_alert_at", id).await
    }

    async fn release_claim(&self, id: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        statements::execute(
            &client,
            "UPDATE alert_incidents SET announce_claimed_until = NULL WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(query_error("release incident claim"))?;
        Ok(())
    }
}

impl PostgresOrderStore {
    async fn mark_incident(&self, column: &'static str, id: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        statements::execute(
            &client,
            &format!(
                "UPDATE alert_incidents SET {column} = now(), updated_at = now(), \
                            announce_claimed_until = NULL \
                     WHERE id = $1 AND {column} IS NULL"
            ),
            &[&id],
        )
        .await
        .map_err(query_error("mark incident announced"))?;
        Ok(())
    }
}
