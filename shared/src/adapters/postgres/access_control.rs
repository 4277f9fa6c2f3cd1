//! API keys and per-client limits on Postgres.
//!
//! `admit` is one round trip: it reads the key, and — only if the presented secret's hash matches
//! the stored one — counts the request in the client's row (a fixed one-second window) and, for
//! a POST, checks the open-order count. The database compares hashes only to decide whether to
//! count; the authentication decision is the constant-time comparison in `KeyHasher::verify`
//! on the hash the query returns. (A timing difference in the database's comparison could at most
//! reveal a prefix of HMAC(pepper, guess), which tells nothing without the pepper.)
//!
//! The counter update is committed without waiting for fsync (`synchronous_commit = off`): the
//! client's row is locked from the update to the commit, so a synchronous commit would serialise
//! all of one client's requests behind one disk flush each; a crash forgets at most a few counts.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Pool, tokio_postgres};
use tokio_postgres::{Row, SimpleQueryMessage};

use super::store_errors::{checkout, query_error};
use crate::auth::{ApiKey, KeyHasher, KeyId};
use crate::domain::ClientId;
use crate::ports::{
    AccessControl, Admission, ClientLimits, ClientRecord, ClientRegistry, KeyRecord, RequestKind,
    StoreError,
};

/// When a rate-limited client may try again: the counting window is one second.
pub const RATE_RETRY_AFTER: Duration = Duration::from_secs(1);
/// When a client at its open-order limit may try again: placements take about half a second
/// each, so a backlog needs a few seconds to shrink.
pub const OPEN_ORDERS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Access control and key administration; cheap to clone.
#[derive(Clone)]
pub struct PostgresAccessControl {
    pool: Pool,
    hasher: KeyHasher,
}

impl PostgresAccessControl {
    pub fn new(pool: Pool, hasher: KeyHasher) -> Self {
        Self { pool, hasher }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        checkout(&self.pool).await
    }
}

/// The admission statement. Only validated values are spliced in (a key id of 16 hex digits,
/// a hash as hex, a boolean), because `SET LOCAL` needs the simple-query protocol, which has no
/// parameters; the two statements then run as one implicit transaction in one round trip.
fn admission_sql(key_id: &KeyId, hash_hex: &str, place_order: bool) -> String {
    // `stale`: a POST, and the open-order count is older than a second. The recount then runs
    // under the client row's lock (SET expressions of a row being updated), so one statement a
    // second recounts while concurrent ones wait a moment and see the fresh value.
    let stale = format!(
        "{place_order} AND (clients.open_counted_at IS NULL \
         OR clients.open_counted_at < now() - interval '1 second')"
    );
    let next_rate_count =
        "CASE WHEN clients.rate_window = w.second THEN clients.rate_count + 1 ELSE 1 END";
    format!(
        "SET LOCAL synchronous_commit = off;
         WITH k AS (
             SELECT client_id, key_hash FROM api_keys
             WHERE key_id = '{key_id}' AND revoked_at IS NULL
         ), w AS (
             SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS second
         ), c AS (
             UPDATE clients SET
                 rate_count = {next_rate_count},
                 rate_window = w.second,
                 open_orders = CASE WHEN {stale} THEN (
                         SELECT count(*)::int FROM (
                             SELECT 1 FROM orders o
                             WHERE o.client_id = clients.id
                               AND o.status IN ('pending', 'placing')
                             LIMIT clients.max_open_orders
                         ) open
                     ) ELSE clients.open_orders END
                     + CASE WHEN {place_order}
                                 AND {next_rate_count} <= clients.requests_per_second
                            THEN 1 ELSE 0 END,
                 open_counted_at = CASE WHEN {stale} THEN now() ELSE clients.open_counted_at END
             FROM k, w
             WHERE clients.id = k.client_id AND k.key_hash = '\\x{hash_hex}'::bytea
             RETURNING clients.id, clients.rate_count, clients.requests_per_second,
                       clients.open_orders, clients.max_open_orders
         )
         SELECT k.client_id, encode(k.key_hash, 'hex') AS key_hash, c.rate_count,
                c.requests_per_second, c.open_orders, c.max_open_orders
         FROM k LEFT JOIN c ON true"
    )
}

fn corrupt(problem: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: "api_keys/clients".into(),
        problem: problem.into(),
    }
}

fn number(row: &tokio_postgres::SimpleQueryRow, column: &str) -> Result<u32, StoreError> {
    row.get(column)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(format!("{column} is not a count")))
}

#[async_trait]
impl AccessControl for PostgresAccessControl {
    async fn admit(&self, key: &ApiKey, kind: RequestKind) -> Result<Admission, StoreError> {
        let hash = self.hasher.hash(key);
        let sql = admission_sql(
            key.id(),
            &hex::encode(hash.0),
            kind == RequestKind::PlaceOrder,
        );
        let client = self.client().await?;
        let messages = client
            .simple_query(&sql)
            .await
            .map_err(query_error("admit request"))?;
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let stored = row
            .and_then(|r| r.get("key_hash"))
            .map(hex::decode)
            .transpose()
            .map_err(|_| corrupt("key_hash is not hex"))?;
        // Always verified, also with no row, so that unknown keys take as long as wrong ones.
        if !self.hasher.verify(key, stored.as_deref()) {
            return Ok(Admission::Unauthenticated);
        }
        let row = row.expect("a stored hash comes from a row");
        let client_id = ClientId::parse(row.get("client_id").unwrap_or_default())
            .map_err(|e| corrupt(format!("client_id: {e}")))?;
        if row.get("rate_count").is_none() {
            // The key matched but its client row did not update: the key was revoked or its
            // client removed between the two halves of the statement. Treat as unknown.
            return Ok(Admission::Unauthenticated);
        }
        let rate_count = number(row, "rate_count")?;
        let rate_limit = number(row, "requests_per_second")?;
        if rate_count > rate_limit {
            return Ok(Admission::RateLimited {
                limit: rate_limit,
                retry_after: RATE_RETRY_AFTER,
            });
        }
        // Every POST within the rate counts itself in: past the limit means refused. (A refused
        // or invalid POST thus over-counts by one until the next recount, at most a second.)
        let open_limit = number(row, "max_open_orders")?;
        if kind == RequestKind::PlaceOrder && number(row, "open_orders")? > open_limit {
            return Ok(Admission::TooManyOpenOrders {
                limit: open_limit,
                retry_after: OPEN_ORDERS_RETRY_AFTER,
            });
        }
        Ok(Admission::Admitted(client_id))
    }
}

fn client_from_row(row: &Row) -> Result<ClientRecord, StoreError> {
    let count = |column: &str| -> Result<u32, StoreError> {
        u32::try_from(row.get::<_, i32>(column)).map_err(|_| corrupt(format!("{column} < 0")))
    };
    Ok(ClientRecord {
        id: ClientId::parse(row.get("id")).map_err(corrupt)?,
        requests_per_second: count("requests_per_second")?,
        max_open_orders: count("max_open_orders")?,
        created_at: row.get("created_at"),
    })
}

fn key_from_row(row: &Row) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        key_id: KeyId::parse(row.get("key_id")).map_err(|e| corrupt(e.to_string()))?,
        client_id: ClientId::parse(row.get("client_id")).map_err(corrupt)?,
        label: row.get("label"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    })
}

const CLIENT_COLUMNS: &str = "id, requests_per_second, max_open_orders, created_at";
const KEY_COLUMNS: &str = "key_id, client_id, label, created_at, revoked_at";

fn limit_param(value: Option<u32>) -> Result<Option<i32>, StoreError> {
    value
        .map(|v| i32::try_from(v).map_err(|_| corrupt("limit above 2^31")))
        .transpose()
}

#[async_trait]
impl ClientRegistry for PostgresAccessControl {
    async fn upsert_client(
        &self,
        id: &ClientId,
        limits: ClientLimits,
    ) -> Result<ClientRecord, StoreError> {
        let client = self.client().await?;
        let rps = limit_param(limits.requests_per_second)?;
        let open = limit_param(limits.max_open_orders)?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO clients AS c (id, requests_per_second, max_open_orders) \
                     VALUES ($1, COALESCE($2, 50), COALESCE($3, 1000)) \
                     ON CONFLICT (id) DO UPDATE SET \
                       requests_per_second = COALESCE($2, c.requests_per_second), \
                       max_open_orders = COALESCE($3, c.max_open_orders) \
                     RETURNING {CLIENT_COLUMNS}"
                ),
                &[&id.as_str(), &rps, &open],
            )
            .await
            .map_err(query_error("upsert client"))?;
        client_from_row(&row)
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"),
                &[],
            )
            .await
            .map_err(query_error("list clients"))?
            .iter()
            .map(client_from_row)
            .collect()
    }

    async fn create_key(
        &self,
        owner: &ClientId,
        key: &ApiKey,
        label: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let hash = self.hasher.hash(key);
        let row = client
            .query_opt(
                &format!(
                    "INSERT INTO api_keys (key_id, client_id, key_hash, label) \
                     SELECT $1, id, $3, $4 FROM clients WHERE id = $2 \
                     RETURNING {KEY_COLUMNS}"
                ),
                &[&key.id().as_str(), &owner.as_str(), &&hash.0[..], &label],
            )
            .await
            .map_err(query_error("create API key"))?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, owner: Option<&ClientId>) -> Result<Vec<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let owner = owner.map(ClientId::as_str);
        client
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys \
                     WHERE $1::text IS NULL OR client_id = $1 ORDER BY client_id, created_at"
                ),
                &[&owner],
            )
            .await
            .map_err(query_error("list API keys"))?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn revoke_key(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) \
                     WHERE key_id = $1 RETURNING {KEY_COLUMNS}"
                ),
                &[&key_id.as_str()],
            )
            .await
            .map_err(query_error("revoke API key"))?;
        row.as_ref().map(key_from_row).transpose()
    }
}
