//! The api's admitted order operations on Postgres (the `ClientOrders` port): each request's
//! admission and its work in one round trip.
//!
//! Each statement calls one of the PL/pgSQL functions of migration V7, so that Postgres plans
//! the real work once per server connection (an unnamed statement is planned at each execution).
//! A read is one statement: the admission, then the read under `adm_ok`. A `POST /orders`
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

use super::access_control::PostgresAccessControl;
use super::executions::execution_from_row;
use super::order_rows::order_from_row;
use super::statements::{self, Param};
use super::store_errors::query_error;
use crate::auth::ApiKey;
use crate::domain::{
    ClientId, ExecutionReport, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus,
};
use crate::ports::{
    Admission, ClientOrders, CreateOutcome, Gated, ListQuery, OrderEvent, OrderPage, RequestKind,
    StoreError,
};

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
    let key_text = key.map(IdempotencyKey::as_str);
    for _ in 0..2 {
        let rows = statements::rows(
            client,
            INSERT_SQL,
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
                &Some(owner.as_str()),
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

/// The order insert with its audit event (`api_insert_order`, migration V7): `$1`–`$11` are id,
/// type, side, instrument, limit price, quantity, idempotency key, fingerprint, expiry, the keys'
/// retention in seconds and the owning client — null for the client of the admission token named
/// by the id, which the insert consumes (no token: no order and no row). Returns the new order
/// (`created`), else the order the key names within the retention.
const INSERT_SQL: &str = "SELECT r.created, (r.order_row).*, r.request_fingerprint \
     FROM api_insert_order($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) r";

/// The admission of a POST that writes, if it admits, the token the insert consumes.
const ADMIT_ORDER_SQL: &str = "SELECT * FROM api_admit_order($1, $2, $3)";

/// `GET /orders/{id}`: the admission's columns and the order's (null when not found or refused).
const ORDER_SQL: &str = "SELECT (r.verdict).*, (r.order_row).* FROM api_order($1, $2, $3) r";

/// `GET /orders/{id}/events`: one row per event, or one row of nulls past the admission.
const ORDER_EVENTS_SQL: &str = "SELECT (r.verdict).*, r.order_id, r.from_status, r.to_status, \
     r.reason, r.attempt, r.event_at FROM api_order_events($1, $2, $3) r";

/// `GET /orders/{id}/executions` (V9): one row per applied report, or one row of nulls past the
/// admission.
const ORDER_EXECUTIONS_SQL: &str = "SELECT (r.verdict).*, r.order_id, r.execution_id, \
     r.sequence, r.kind, r.exchange_order_id, r.quantity, r.price, r.cumulative_quantity, \
     r.remaining_quantity, r.executed_at, NULL::text AS waiting_reason \
     FROM api_order_executions($1, $2, $3) r";

/// `GET /orders`: `$3` rows at most, `$4` a status or null, `$5` an id to list before or null.
const ORDERS_SQL: &str =
    "SELECT (r.verdict).*, (r.order_row).* FROM api_orders($1, $2, $3, $4, $5) r";

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
        let key_text = idempotency_key.map(IdempotencyKey::as_str);
        let price = order.limit_price().map(|p| p.as_decimal());
        let retention = self.idempotency_retention().as_secs_f64();
        let token_owner: Option<&str> = None;
        let insert_params: [&dyn Param; 11] = [
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
            &token_owner,
        ];
        let admit_params: [&dyn Param; 3] = [&key_id, &hash, &id];
        let client = self.client().await?;
        // Both statements leave before either answer comes back: one round trip.
        let (admission, inserted) = tokio::join!(
            statements::optional(&client, ADMIT_ORDER_SQL, &admit_params),
            statements::rows(&client, INSERT_SQL, &insert_params),
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
        let row = statements::optional(&client, ORDER_SQL, &[&key_id, &hash, &id.as_uuid()])
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
        let rows = statements::rows(&client, ORDER_EVENTS_SQL, &[&key_id, &hash, &id.as_uuid()])
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

    async fn order_executions(
        &self,
        key: &ApiKey,
        id: OrderId,
    ) -> Result<Gated<Option<Vec<ExecutionReport>>>, StoreError> {
        let kind = RequestKind::Read;
        let (key_id, hash) = self.credentials(key);
        let client = self.client().await?;
        // One row per applied report (by `executions_order_idx`), or one row of nulls past the
        // admission when the order has none or is not the client's.
        let rows = statements::rows(
            &client,
            ORDER_EXECUTIONS_SQL,
            &[&key_id, &hash, &id.as_uuid()],
        )
        .await
        .map_err(query_error("find client order executions"))?;
        self.gate(key, kind, rows.first(), || {
            if rows
                .first()
                .is_none_or(|row| row.get::<_, Option<Uuid>>("order_id").is_none())
            {
                return Ok(None);
            }
            rows.iter()
                .filter(|row| row.get::<_, Option<&str>>("execution_id").is_some())
                .map(execution_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
    }

    async fn orders(
        &self,
        key: &ApiKey,
        query: &ListQuery,
    ) -> Result<Gated<OrderPage>, StoreError> {
        let kind = RequestKind::Read;
        let (key_id, hash) = self.credentials(key);
        let fetch = i64::from(query.limit) + 1;
        let status = query.status.map(OrderStatus::as_str);
        let before = query.before.map(|id| id.as_uuid());
        let client = self.client().await?;
        let rows = statements::rows(
            &client,
            ORDERS_SQL,
            &[&key_id, &hash, &fetch, &status, &before],
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
