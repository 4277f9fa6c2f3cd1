//! API keys and per-client limits on Postgres.
//!
//! `admit` is one round trip: it reads the key, and — only if the presented secret's hash matches
//! the stored one — counts the request in the client's row (a fixed one-second window) and, for
//! a POST, checks the open-order count. The database compares hashes only to decide whether to
//! count; the authentication decision is the constant-time comparison in `KeyHasher::verify`
//! on the hash the query returns. (A timing difference in the database's comparison could at most
//! reveal a prefix of HMAC(pepper, guess), which tells nothing without the pepper.)
//!
//! The counters live in the UNLOGGED table `client_usage`: updating it writes no WAL, so the
//! transaction commits without waiting for a disk flush. That matters because a client's usage
//! row is locked from the update to the commit: a flush inside that window would serialise all
//! of one client's requests behind one disk write each. After a crash the table is empty and refills itself (a few counts are forgotten,
//! never an order).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use deadpool_postgres::tokio_postgres::Row;

use super::statements;
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
    /// How long an idempotency key names its order (`POST /orders`).
    idempotency_retention: std::time::Duration,
}

impl PostgresAccessControl {
    pub fn new(pool: Pool, hasher: KeyHasher) -> Self {
        Self {
            pool,
            hasher,
            idempotency_retention: crate::domain::IdempotencyKey::DEFAULT_RETENTION,
        }
    }

    /// Keeps idempotency keys for `retention` instead of the default 24 hours.
    pub fn with_idempotency_retention(mut self, retention: std::time::Duration) -> Self {
        self.idempotency_retention = retention;
        self
    }

    pub(super) fn idempotency_retention(&self) -> std::time::Duration {
        self.idempotency_retention
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        checkout(&self.pool).await
    }
}

/// The statement of a request's admission (`$1` key id, `$2` HMAC of the presented secret, `$3`
/// whether it is a POST): the function `api_admission` (migration V7), which keeps its plan in the
/// server connection. It returns one row when the key exists and is not revoked, with the `adm_*`
/// columns `verdict` reads; `adm_ok` says the hash matched and the client is within its limits.
const ADMIT_SQL: &str = "SELECT * FROM api_admission($1, $2, $3)";

fn corrupt(problem: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: "api_keys/clients".into(),
        problem: problem.into(),
    }
}

impl PostgresAccessControl {
    /// The presented key's id and secret hash: the admission's `$1` and `$2`.
    pub(super) fn credentials(&self, key: &ApiKey) -> (String, Vec<u8>) {
        (
            key.id().as_str().to_owned(),
            self.hasher.hash(key).0.to_vec(),
        )
    }

    /// The decision from the admission's columns of `row` (`None`: no such key). The database
    /// compared hashes only to decide whether to count; the authentication decision is this
    /// constant-time comparison, made also when there is no row, so that unknown keys take as
    /// long as wrong ones.
    pub(super) fn verdict(
        &self,
        key: &ApiKey,
        kind: RequestKind,
        row: Option<&Row>,
    ) -> Result<Admission, StoreError> {
        let stored: Option<Vec<u8>> = row.map(|r| r.get("adm_key_hash"));
        if !self.hasher.verify(key, stored.as_deref()) {
            return Ok(Admission::Unauthenticated);
        }
        let Some(row) = row else {
            return Ok(Admission::Unauthenticated);
        };
        let Some(rate_count) = row.get::<_, Option<i32>>("adm_rate_count") else {
            // The hash matched here but not in the database: cannot happen; refuse.
            return Ok(Admission::Unauthenticated);
        };
        let client_id = ClientId::parse(row.get("adm_client_id"))
            .map_err(|e| corrupt(format!("client_id: {e}")))?;
        let count = |v: i32| u32::try_from(v).unwrap_or(0);
        let rate_limit = count(row.get("adm_requests_per_second"));
        if count(rate_count) > rate_limit {
            return Ok(Admission::RateLimited {
                limit: rate_limit,
                retry_after: RATE_RETRY_AFTER,
            });
        }
        // Every POST within the rate counts itself in: past the limit means refused. (A refused
        // POST thus over-counts by one until the next recount, at most a second.)
        let open_limit = count(row.get("adm_max_open_orders"));
        let open_orders = count(row.get::<_, Option<i32>>("adm_open_orders").unwrap_or(0));
        if kind == RequestKind::PlaceOrder && open_orders > open_limit {
            return Ok(Admission::TooManyOpenOrders {
                limit: open_limit,
                retry_after: OPEN_ORDERS_RETRY_AFTER,
            });
        }
        Ok(Admission::Admitted(client_id))
    }
}

#[async_trait]
impl AccessControl for PostgresAccessControl {
    async fn admit(&self, key: &ApiKey, kind: RequestKind) -> Result<Admission, StoreError> {
        let (key_id, hash) = self.credentials(key);
        let client = self.client().await?;
        let row = statements::optional(
            &client,
            ADMIT_SQL,
            &[&key_id, &hash, &(kind == RequestKind::PlaceOrder)],
        )
        .await
        .map_err(query_error("admit request"))?;
        self.verdict(key, kind, row.as_ref())
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
        let row = statements::one(
            &client,
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
        statements::rows(
            &client,
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
        let row = statements::optional(
            &client,
            &format!(
                "INSERT INTO api_keys (key_id, client_id, key_hash, label) \
                     SELECT $1, id, $3, $4 FROM clients WHERE id = $2 \
                     RETURNING {KEY_COLUMNS}"
            ),
            &[
                &key.id().as_str(),
                &owner.as_str(),
                &hash.0.to_vec(),
                &label,
            ],
        )
        .await
        .map_err(query_error("create API key"))?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, owner: Option<&ClientId>) -> Result<Vec<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let owner = owner.map(ClientId::as_str);
        statements::rows(
            &client,
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
        let row = statements::optional(
            &client,
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
