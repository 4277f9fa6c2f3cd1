//! The live-update connections table (the `LiveConnections` port), one statement per call.

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::statements;
use super::store_errors::{checkout, query_error};
use crate::auth::KeyId;
use crate::domain::ClientId;
use crate::ports::{LiveConnection, LiveConnections, StoreError};

/// `live_connections` (V10).
#[derive(Clone)]
pub struct PostgresLiveConnections {
    pool: Pool,
}

impl PostgresLiveConnections {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LiveConnections for PostgresLiveConnections {
    async fn connect(&self, connection: &LiveConnection) -> Result<(), StoreError> {
        let client = checkout(&self.pool).await?;
        statements::execute(
            &client,
            "INSERT INTO live_connections (connection_id, client_id, key_id, resume_after) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (connection_id) DO UPDATE \
               SET client_id = EXCLUDED.client_id, key_id = EXCLUDED.key_id, \
                   resume_after = EXCLUDED.resume_after, updated_at = now()",
            &[
                &connection.connection_id.as_str(),
                &connection.client_id.as_str(),
                &connection.key_id.as_str(),
                &connection.resume_after,
            ],
        )
        .await
        .map_err(query_error("store a live connection"))?;
        Ok(())
    }

    async fn disconnect(&self, connection_id: &str) -> Result<(), StoreError> {
        let client = checkout(&self.pool).await?;
        statements::execute(
            &client,
            "DELETE FROM live_connections WHERE connection_id = $1",
            &[&connection_id],
        )
        .await
        .map_err(query_error("forget a live connection"))?;
        Ok(())
    }

    async fn all(&self) -> Result<Vec<LiveConnection>, StoreError> {
        let client = checkout(&self.pool).await?;
        let rows = statements::rows(
            &client,
            "SELECT connection_id, client_id, key_id, resume_after FROM live_connections",
            &[],
        )
        .await
        .map_err(query_error("list live connections"))?;
        rows.iter()
            .map(|row| {
                let connection_id: String = row.get("connection_id");
                let corrupt = |problem: String| StoreError::Corrupt {
                    id: format!("live connection {connection_id}"),
                    problem,
                };
                Ok(LiveConnection {
                    client_id: ClientId::parse(row.get("client_id")).map_err(corrupt)?,
                    key_id: KeyId::parse(row.get("key_id"))
                        .map_err(|_| corrupt("malformed key id".into()))?,
                    resume_after: row.get("resume_after"),
                    connection_id,
                })
            })
            .collect()
    }

    async fn revoked(&self) -> Result<Vec<String>, StoreError> {
        let client = checkout(&self.pool).await?;
        let rows = statements::rows(
            &client,
            "SELECT c.connection_id FROM live_connections c \
             LEFT JOIN api_keys k ON k.key_id = c.key_id \
             WHERE k.key_id IS NULL OR k.revoked_at IS NOT NULL",
            &[],
        )
        .await
        .map_err(query_error("find revoked live connections"))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
