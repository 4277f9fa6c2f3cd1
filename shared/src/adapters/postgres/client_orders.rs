//! The api's admitted order operations on Postgres (the `ClientOrders` port): each request's
//! admission and its work in one round trip.
//!
//! A read is one statement: the admission's CTEs, then the read under `adm_ok`. A `POST /orders`
//! is two statements sent together (tokio-postgres pipelines concurrent queries on one
//! connection), each its own transaction: the admission, which also writes a token named by the
//! new order's id when it admits; then the insert, which consumes that token and stores the order
//! only if there was one. In one statement the client's usage row would stay locked until the
//! order's commit had waited for its WAL flush, serialising each client's orders behind one disk
//! flush each; the admission touches only unlogged tables, so it commits without one.

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::access_control::{PostgresAccessControl, admission_ctes};
use super::order_rows::{ORDER_COLUMNS, order_from_row};
use super::statements::{self, Param};
use super::store_errors::query_error;
use crate::auth::ApiKey;
use crate::domain::{ClientId, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus};
use crate::ports::{
    Admission, ClientOrders, CreateOutcome, Gated, ListQuery, OrderEvent, OrderPage, RequestKind,
    StoreError,
};

/// `ORDER_COLUMNS` of the table aliased `o`.
fn qualified_order_columns() -> String {
    ORDER_COLUMNS
        .split(',')
        .map(|c| format!("o.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The order of a row that has one (a `LEFT JOIN` leaves the order's columns null otherwise).
fn order_in(row: &Row) -> Result<Option<Order>, StoreError> {
    match row.get::<_, Option<Uuid>>("id") {
        Some(_) => order_from_row(row).map(Some),
        None => Ok(None),
    }
}

impl PostgresAccessControl {
    /// The admission's verdict from a statement's first row; the work's rows count only when it
    /// admits.
    fn gate<T>(
        &self,
        key: &ApiKey,
        kind: RequestKind,
        row: Option<&Row>,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<Gated<T>, StoreError> {
        match self.verdict(key, kind, row)? {
            Admission::Admitted(client) => Ok(Gated::Admitted(client, work()?)),
            refused => Ok(Gated::Refused(refused)),
        }
    }

    /// After an admitted insert that stored nothing and found no order under the key: the key's
    /// owner committed after the insert's snapshot was taken, or rolled back. The admission is
    /// spent; look again, and insert if the owner rolled back (two rounds at most).
    async fn settle_key_race(
        &self,
        owner: &ClientId,
        order: &NewOrder,
        expires_at: OffsetDateTime,
        key: &IdempotencyKey,
    ) -> Result<CreateOutcome, StoreError> {
        let client = self.client().await?;
        create_for_client(
            &client,
            owner,
            order,
            expires_at,
            Some(key),
            self.idempotency_retention(),
        )
        .await
    }
}

/// Stores the order for `owner`, or finds the order its idempotency key names within
/// `retention` (two rounds at most: if the key's first owner rolled back between our
/// conflicting insert and our read, the second insert wins the key). For callers that have
/// admitted the request already.
pub(super) async fn create_for_client(
    client: &deadpool_postgres::tokio_postgres::Client,
    owner: &ClientId,
    order: &NewOrder,
    expires_at: OffsetDateTime,
    key: Option<&IdempotencyKey>,
    retention: std::time::Duration,
) -> Result<CreateOutcome, StoreError> {
    let fingerprint = order.fingerprint();
    let sql = insert_sql("SELECT $11::text AS client_id");
    let key_text = key.map(IdempotencyKey::as_str);
    for _ in 0..2 {
        let rows = statements::rows(
            client,
            &sql,
            &[
                &OrderId::generate().as_uuid(),
                &order.order_type().as_str(),
                &order.side().as_str(),
                &order.instrument().as_str(),
                &order.limit_price().map(|p| p.as_decimal()),
                &order.quantity().get(),
                &key_text,
                &fingerprint,
                &expires_at,
                &retention.as_secs_f64(),
                &owner.as_str(),
            ],
        )
        .await
        .map_err(query_error("insert order"))?;
        match rows.first() {
            Some(row) if row.get::<_, bool>("created") => {
                return Ok(CreateOutcome::Created(order_from_row(row)?));
            }
            Some(row) => return replay_or_reuse(row, &fingerprint),
            // Without a key every insert stores its order.
            None if key.is_none() => break,
            None => {}
        }
    }
    Err(StoreError::Query {
        what: "insert order",
        source: "idempotency key conflict without an owning order".into(),
    })
}

/// The order insert with its audit event, for the client that `client_source` names (a query with
/// a `client_id` column and at most one row: the consumed token, or the client itself). `$1`–`$10`:
/// id, type, side, instrument, limit price, quantity, idempotency key, fingerprint, expiry, the
/// keys' retention in seconds. Returns the new order (`created`), else the order the key named
/// within the retention before this statement began.
///
/// The key is taken in `idempotency_keys` first: a new row, or an expired one not yet released
/// (taken over for the new order); the order is stored only if the key was taken (or there is
/// none). A concurrent request with the same key waits for the row lock and then finds it taken.
fn insert_sql(client_source: &str) -> String {
    let initial = OrderStatus::INITIAL;
    let existing = qualified_order_columns();
    format!(
        "WITH t AS ({client_source}), key AS (
            INSERT INTO idempotency_keys AS k (client_id, idempotency_key, order_id,
                                              request_fingerprint)
            SELECT t.client_id, $7, $1, $8 FROM t WHERE $7::text IS NOT NULL
            ON CONFLICT (client_id, idempotency_key) DO UPDATE
                SET order_id = EXCLUDED.order_id,
                    request_fingerprint = EXCLUDED.request_fingerprint,
                    created_at = now(), updated_at = now()
                WHERE k.created_at <= now() - make_interval(secs => $10)
            RETURNING order_id
        ), inserted AS (
            INSERT INTO orders (id, order_type, side, instrument, limit_price, quantity,
                                request_fingerprint, client_id, expires_at)
            SELECT $1, $2, $3, $4, $5, $6, $8, t.client_id, $9 FROM t
            WHERE $7::text IS NULL OR EXISTS (SELECT 1 FROM key)
            RETURNING {ORDER_COLUMNS}
        ), event AS (
            INSERT INTO order_events (order_id, from_status, to_status, reason, attempt)
            SELECT id, NULL, '{initial}', 'order accepted', 0 FROM inserted
        )
        SELECT true AS created, {ORDER_COLUMNS}, NULL::text AS request_fingerprint FROM inserted
        UNION ALL
        SELECT false, {existing}, k.request_fingerprint
        FROM idempotency_keys k
        JOIN t ON k.client_id = t.client_id
        JOIN orders o ON o.id = k.order_id
        WHERE $7::text IS NOT NULL AND k.idempotency_key = $7
          AND k.created_at > now() - make_interval(secs => $10)
          AND NOT EXISTS (SELECT 1 FROM inserted)"
    )
}

fn replay_or_reuse(row: &Row, fingerprint: &str) -> Result<CreateOutcome, StoreError> {
    let stored: String = row.get("request_fingerprint");
    Ok(if stored == fingerprint {
        CreateOutcome::Replayed(order_from_row(row)?)
    } else {
        CreateOutcome::KeyReused
    })
}

#[async_trait]
impl ClientOrders for PostgresAccessControl {
    async fn place(
        &self,
        key: &ApiKey,
        order: &NewOrder,
        expires_at: OffsetDateTime,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Gated<CreateOutcome>, StoreError> {
        let kind = RequestKind::PlaceOrder;
        let (key_id, hash) = self.credentials(key);
        let id = OrderId::generate().as_uuid();
        let fingerprint = order.fingerprint();
        let admit_sql = format!(
            "WITH {}, token AS (
                INSERT INTO admission_tokens (order_id, client_id)
                SELECT $3, adm_client_id FROM admission WHERE adm_ok
            )
            SELECT * FROM admission",
            admission_ctes(kind)
        );
        let insert_sql =
            insert_sql("DELETE FROM admission_tokens WHERE order_id = $1 RETURNING client_id");
        let key_text = idempotency_key.map(IdempotencyKey::as_str);
        let price = order.limit_price().map(|p| p.as_decimal());
        let retention = self.idempotency_retention().as_secs_f64();
        let insert_params: [&dyn Param; 10] = [
            &id,
            &order.order_type().as_str(),
            &order.side().as_str(),
            &order.instrument().as_str(),
            &price,
            &order.quantity().get(),
            &key_text,
            &fingerprint,
            &expires_at,
            &retention,
        ];
        let admit_params: [&dyn Param; 3] = [&key_id, &hash, &id];
        let client = self.client().await?;
        // Both statements leave before either answer comes back: one round trip.
        let (admission, inserted) = tokio::join!(
            statements::optional(&client, &admit_sql, &admit_params),
            statements::rows(&client, &insert_sql, &insert_params),
        );
        drop(client);
        let admission = admission.map_err(query_error("admit order"))?;
        let inserted = inserted.map_err(query_error("insert order"))?;
        let verdict = self.verdict(key, kind, admission.as_ref())?;
        let Admission::Admitted(owner) = verdict else {
            if !inserted.is_empty() {
                // Cannot happen: the token is written only under the same verdict.
                tracing::error!(order_id = %id, "an order was stored for a refused request");
            }
            return Ok(Gated::Refused(verdict));
        };
        let outcome = match inserted.first() {
            Some(row) if row.get::<_, bool>("created") => {
                CreateOutcome::Created(order_from_row(row)?)
            }
            Some(row) => replay_or_reuse(row, &fingerprint)?,
            None => match idempotency_key {
                Some(key) => self.settle_key_race(&owner, order, expires_at, key).await?,
                None => {
                    return Err(StoreError::Query {
                        what: "insert order",
                        source: "an admitted order's token was not found".into(),
                    });
                }
            },
        };
        Ok(Gated::Admitted(owner, outcome))
    }

    async fn order(&self, key: &ApiKey, id: OrderId) -> Result<Gated<Option<Order>>, StoreError> {
        let kind = RequestKind::Read;
        let (key_id, hash) = self.credentials(key);
        let client = self.client().await?;
        let row = statements::optional(
            &client,
            &format!(
                "WITH {} SELECT a.*, {} FROM admission a \
                 LEFT JOIN orders o ON a.adm_ok AND o.id = $3 AND o.client_id = a.adm_client_id",
                admission_ctes(kind),
                qualified_order_columns()
            ),
            &[&key_id, &hash, &id.as_uuid()],
        )
        .await
        .map_err(query_error("find client order"))?;
        self.gate(key, kind, row.as_ref(), || match &row {
            Some(row) => order_in(row),
            None => Ok(None),
        })
    }

    async fn order_events(
        &self,
        key: &ApiKey,
        id: OrderId,
    ) -> Result<Gated<Option<Vec<OrderEvent>>>, StoreError> {
        let kind = RequestKind::Read;
        let (key_id, hash) = self.credentials(key);
        let client = self.client().await?;
        // One row per event (by `order_events_order_id_idx`), or one row of nulls past the
        // admission when the order has no events or is not the client's.
        let rows = statements::rows(
            &client,
            &format!(
                "WITH {} SELECT a.*, o.id AS order_id, e.from_status, e.to_status, e.reason,                    e.attempt, e.created_at AS event_at                  FROM admission a                  LEFT JOIN orders o ON a.adm_ok AND o.id = $3 AND o.client_id = a.adm_client_id                  LEFT JOIN order_events e ON e.order_id = o.id                  ORDER BY e.id",
                admission_ctes(kind),
            ),
            &[&key_id, &hash, &id.as_uuid()],
        )
        .await
        .map_err(query_error("find client order events"))?;
        self.gate(key, kind, rows.first(), || {
            if rows
                .first()
                .is_none_or(|row| row.get::<_, Option<Uuid>>("order_id").is_none())
            {
                return Ok(None);
            }
            let corrupt = |problem: String| StoreError::Corrupt {
                id: id.to_string(),
                problem,
            };
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let Some(to) = row.get::<_, Option<&str>>("to_status") else {
                    continue;
                };
                events.push(OrderEvent {
                    from: row
                        .get::<_, Option<&str>>("from_status")
                        .map(str::parse)
                        .transpose()
                        .map_err(corrupt)?,
                    to: to.parse().map_err(corrupt)?,
                    reason: row.get("reason"),
                    attempt: row.get("attempt"),
                    at: row.get("event_at"),
                });
            }
            Ok(Some(events))
        })
    }

    async fn orders(
        &self,
        key: &ApiKey,
        query: &ListQuery,
    ) -> Result<Gated<OrderPage>, StoreError> {
        let kind = RequestKind::Read;
        let (key_id, hash) = self.credentials(key);
        // One statement per filter combination, so each gets a plan that uses its index.
        let fetch = i64::from(query.limit) + 1;
        let status = query.status.map(OrderStatus::as_str);
        let before = query.before.map(|id| id.as_uuid());
        let mut params: Vec<&dyn Param> = vec![&key_id, &hash, &fetch];
        let mut conditions = vec!["client_id = a.adm_client_id".to_owned()];
        if let Some(status) = &status {
            params.push(status);
            conditions.push(format!("status = ${}", params.len()));
        }
        if let Some(before) = &before {
            params.push(before);
            conditions.push(format!("id < ${}", params.len()));
        }
        let client = self.client().await?;
        let rows = statements::rows(
            &client,
            &format!(
                "WITH {} SELECT a.*, o.* FROM admission a LEFT JOIN LATERAL ( \
                   SELECT {ORDER_COLUMNS} FROM orders WHERE a.adm_ok AND {} \
                   ORDER BY id DESC LIMIT $3) o ON true",
                admission_ctes(kind),
                conditions.join(" AND ")
            ),
            &params,
        )
        .await
        .map_err(query_error("list client orders"))?;
        self.gate(key, kind, rows.first(), || {
            let mut orders = Vec::with_capacity(rows.len());
            for row in &rows {
                orders.extend(order_in(row)?);
            }
            Ok(OrderPage::from_one_extra(orders, query.limit))
        })
    }
}
