//! `OrderStore` on Postgres. Every status change is a conditional `UPDATE … WHERE status = …`
//! with its `order_events` row in the same statement or transaction.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Pool, tokio_postgres};
use tokio_postgres::Row;
use uuid::Uuid;

use super::store_errors::{checkout, query_error};
use crate::domain::{
    ClientId, IdempotencyKey, Isin, NewOrder, Order, OrderId, OrderStatus, OrderType, Price,
    Quantity, Side,
};
use crate::ports::{
    ClaimOutcome, CreateOutcome, FailedOrder, ListFilter, OrderLifecycle, OrderPage, OrderStore,
    StoreError,
};

/// The order store; cheap to clone (the pool is reference-counted).
#[derive(Clone)]
pub struct PostgresOrderStore {
    pool: Pool,
}

const ORDER_COLUMNS: &str = "id, client_id, created_at, order_type, side, instrument, limit_price, quantity, \
     status, attempts, last_error, exchange_order_id, placed_at, alerted_at";

impl PostgresOrderStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Builds the pool from configuration, reading the database secret when there is one.
    pub async fn connect(
        config: &super::DatabaseConfig,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, super::PoolError> {
        let secrets = match config.credentials {
            super::DatabaseCredentials::Secret { .. } => {
                Some(crate::adapters::secrets::SecretReader::new(sdk))
            }
            super::DatabaseCredentials::Url(_) => None,
        };
        Ok(Self::new(super::build_pool(config, secrets).await?))
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        checkout(&self.pool).await
    }
}

#[async_trait]
impl OrderStore for PostgresOrderStore {
    async fn create_order(
        &self,
        owner: &ClientId,
        order: &NewOrder,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<CreateOutcome, StoreError> {
        let client = self.client().await?;
        let insert = client
            .prepare_cached(&format!(
                "WITH inserted AS ( \
                   INSERT INTO orders (id, order_type, side, instrument, limit_price, quantity, \
                                       idempotency_key, request_fingerprint, client_id) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                   ON CONFLICT (client_id, idempotency_key) DO NOTHING \
                   RETURNING {ORDER_COLUMNS} \
                 ), event AS ( \
                   INSERT INTO order_events (order_id, from_status, to_status, reason, attempt) \
                   SELECT id, NULL, 'pending', 'order accepted', 0 FROM inserted \
                 ) \
                 SELECT {ORDER_COLUMNS} FROM inserted"
            ))
            .await
            .map_err(query_error("prepare insert order"))?;
        let fingerprint = order.fingerprint();
        let key = idempotency_key.map(IdempotencyKey::as_str);
        let price = order.limit_price().map(|p| p.as_decimal());
        // Two rounds at most: if the key's first owner rolled back between our conflicting
        // insert and our read, the second insert wins the key.
        for _ in 0..2 {
            let id = OrderId::generate();
            let rows = client
                .query(
                    &insert,
                    &[
                        &id.as_uuid(),
                        &order.order_type().as_str(),
                        &order.side().as_str(),
                        &order.instrument().as_str(),
                        &price,
                        &order.quantity().get(),
                        &key,
                        &fingerprint,
                        &owner.as_str(),
                    ],
                )
                .await
                .map_err(query_error("insert order"))?;
            if let Some(row) = rows.first() {
                return Ok(CreateOutcome::Created(order_from_row(row)?));
            }
            let existing = client
                .query_opt(
                    &format!(
                        "SELECT {ORDER_COLUMNS}, request_fingerprint FROM orders \
                         WHERE client_id = $1 AND idempotency_key = $2"
                    ),
                    &[&owner.as_str(), &key],
                )
                .await
                .map_err(query_error("find order by idempotency key"))?;
            if let Some(row) = existing {
                let stored: String = row.get("request_fingerprint");
                return Ok(if stored == fingerprint {
                    CreateOutcome::Replayed(order_from_row(&row)?)
                } else {
                    CreateOutcome::KeyReused
                });
            }
        }
        Err(StoreError::Query {
            what: "insert order",
            source: "idempotency key conflict without an owning order".into(),
        })
    }

    async fn mark_enqueued(&self, id: OrderId) -> Result<(), StoreError> {
        let client = self.client().await?;
        // One simple-query round trip, run as one implicit transaction; `SET LOCAL` makes only
        // this commit skip the fsync wait (a lost mark costs one duplicate message, no order).
        client
            .batch_execute(&format!(
                "SET LOCAL synchronous_commit = off; \
                 UPDATE orders SET enqueued_at = now(), updated_at = now() \
                 WHERE id = '{}' AND enqueued_at IS NULL",
                id.as_uuid()
            ))
            .await
            .map_err(query_error("mark order enqueued"))
    }

    async fn find_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .await
            .map_err(query_error("prepare find order"))?;
        let row = client
            .query_opt(&statement, &[&id.as_uuid()])
            .await
            .map_err(query_error("find order"))?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn find_client_order(
        &self,
        owner: &ClientId,
        id: OrderId,
    ) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND client_id = $2"
            ))
            .await
            .map_err(query_error("prepare find client order"))?;
        let row = client
            .query_opt(&statement, &[&id.as_uuid(), &owner.as_str()])
            .await
            .map_err(query_error("find client order"))?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn list_orders(&self, filter: &ListFilter) -> Result<OrderPage, StoreError> {
        let client = self.client().await?;
        // One statement per filter combination, so each gets a plan that uses its index.
        let owner = filter.client.as_str();
        let mut conditions = vec!["client_id = $2".to_owned()];
        let status = filter.status.map(OrderStatus::as_str);
        let before = filter.before.map(|id| id.as_uuid());
        let fetch = i64::from(filter.limit) + 1;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&fetch, &owner];
        if let Some(status) = &status {
            params.push(status);
            conditions.push(format!("status = ${}", params.len()));
        }
        if let Some(before) = &before {
            params.push(before);
            conditions.push(format!("id < ${}", params.len()));
        }
        let where_clause = format!("WHERE {}", conditions.join(" AND "));
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders {where_clause} ORDER BY id DESC LIMIT $1"
            ))
            .await
            .map_err(query_error("prepare list orders"))?;
        let rows = client
            .query(&statement, &params)
            .await
            .map_err(query_error("list orders"))?;
        let mut orders = rows
            .iter()
            .map(order_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if orders.len() > filter.limit as usize {
            orders.truncate(filter.limit as usize);
            orders.last().map(|o| o.id)
        } else {
            None
        };
        Ok(OrderPage {
            orders,
            next_cursor,
        })
    }

    async fn claim_unenqueued(
        &self,
        grace: Duration,
        claim_for: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE orders SET sweep_claimed_until = now() + make_interval(secs => $2), \
                                   updated_at = now() \
                 WHERE id IN ( \
                   SELECT id FROM orders \
                   WHERE status = 'pending' AND enqueued_at IS NULL \
                     AND created_at < now() - make_interval(secs => $1) \
                     AND (sweep_claimed_until IS NULL OR sweep_claimed_until < now()) \
                   ORDER BY created_at \
                   LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) \
                 RETURNING {ORDER_COLUMNS}"
            ))
            .await
            .map_err(query_error("prepare claim unenqueued orders"))?;
        let rows = client
            .query(
                &statement,
                &[
                    &grace.as_secs_f64(),
                    &claim_for.as_secs_f64(),
                    &i64::from(limit),
                ],
            )
            .await
            .map_err(query_error("claim unenqueued orders"))?;
        let mut orders = rows
            .iter()
            .map(order_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        orders.sort_by_key(|o| o.id);
        Ok(orders)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(query_error("ping"))?;
        Ok(())
    }
}

/// One conditional transition with its audit row, as a single atomic statement: lock the row if
/// it is in an allowed state, update it, append the event. `$1` is the order id, `$2` the
/// event's reason; `extra_set` may use `$3` onwards.
fn transition_sql(allowed: &str, to: OrderStatus, extra_set: &str) -> String {
    format!(
        "WITH prev AS ( \
           SELECT id, status AS from_status FROM orders WHERE id = $1 AND ({allowed}) FOR UPDATE \
         ), upd AS ( \
           UPDATE orders o SET status = '{to}', updated_at = now() {extra_set} \
           FROM prev WHERE o.id = prev.id \
           RETURNING o.*, prev.from_status \
         ), event AS ( \
           INSERT INTO order_events (order_id, from_status, to_status, reason, attempt) \
           SELECT id, from_status, status, $2, attempts FROM upd \
         ) \
         SELECT {ORDER_COLUMNS} FROM upd"
    )
}

impl PostgresOrderStore {
    async fn transition(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(query_error(what))?;
        let row = client
            .query_opt(&statement, params)
            .await
            .map_err(query_error(what))?;
        row.as_ref().map(order_from_row).transpose()
    }
}

#[async_trait]
impl OrderLifecycle for PostgresOrderStore {
    async fn claim_for_placement(
        &self,
        id: OrderId,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let sql = transition_sql(
            "status = 'pending' OR (status = 'placing' AND lease_expires_at < now())",
            OrderStatus::Placing,
            ", attempts = o.attempts + 1, lease_expires_at = now() + make_interval(secs => $3)",
        );
        let claimed = self
            .transition(
                "claim order",
                &sql,
                &[
                    &id.as_uuid(),
                    &"claimed for placement",
                    &lease.as_secs_f64(),
                ],
            )
            .await?;
        if let Some(order) = claimed {
            return Ok(ClaimOutcome::Claimed(order));
        }
        Ok(match self.find_order(id).await? {
            None => ClaimOutcome::Unknown,
            Some(order) if order.status.is_final() => ClaimOutcome::AlreadyFinal(order.status),
            // Still `placing` under a valid lease (or it just changed hands): try again later.
            Some(_) => ClaimOutcome::LeasedElsewhere,
        })
    }

    async fn record_placed(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        let sql = transition_sql(
            "status = 'placing'",
            OrderStatus::Placed,
            ", exchange_order_id = $3, placed_at = now(), lease_expires_at = NULL",
        );
        self.transition(
            "record placed",
            &sql,
            &[
                &id.as_uuid(),
                &"acknowledged by the exchange",
                &exchange_order_id,
            ],
        )
        .await
    }

    async fn record_rejected(
        &self,
        id: OrderId,
        reason: &str,
    ) -> Result<Option<Order>, StoreError> {
        let sql = transition_sql(
            "status = 'placing'",
            OrderStatus::Rejected,
            ", last_error = $3, lease_expires_at = NULL",
        );
        let event = format!("rejected by the exchange: {reason}");
        self.transition("record rejected", &sql, &[&id.as_uuid(), &event, &reason])
            .await
    }

    async fn release_for_retry(
        &self,
        id: OrderId,
        error: &str,
    ) -> Result<Option<Order>, StoreError> {
        let sql = transition_sql(
            "status = 'placing'",
            OrderStatus::Pending,
            ", last_error = $3, lease_expires_at = NULL",
        );
        let event = format!("transient exchange error: {error}");
        self.transition("release for retry", &sql, &[&id.as_uuid(), &event, &error])
            .await
    }

    async fn record_placed_by_lookup(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        let sql = transition_sql(
            "status IN ('pending', 'placing')",
            OrderStatus::Placed,
            ", exchange_order_id = $3, placed_at = now(), lease_expires_at = NULL",
        );
        self.transition(
            "record placed by lookup",
            &sql,
            &[
                &id.as_uuid(),
                &"found placed by an exchange lookup after retries ran out",
                &exchange_order_id,
            ],
        )
        .await
    }

    async fn mark_failed(&self, id: OrderId, reason: &str) -> Result<Option<Order>, StoreError> {
        // Never under a placer's valid lease: its placement may be acknowledged any moment.
        let sql = transition_sql(
            "status = 'pending' OR (status = 'placing' AND lease_expires_at < now())",
            OrderStatus::Failed,
            ", lease_expires_at = NULL, last_error = COALESCE(o.last_error, $3)",
        );
        self.transition("mark failed", &sql, &[&id.as_uuid(), &reason, &reason])
            .await
    }

    async fn mark_alerted(&self, id: OrderId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE orders SET alerted_at = now(), updated_at = now() WHERE id = $1",
                &[&id.as_uuid()],
            )
            .await
            .map_err(query_error("mark alerted"))?;
        Ok(())
    }

    async fn requeue_failed(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let sql = transition_sql(
            "status = 'failed'",
            OrderStatus::Pending,
            ", enqueued_at = NULL, alerted_at = NULL, sweep_claimed_until = NULL, \
               lease_expires_at = NULL",
        );
        self.transition("requeue failed", &sql, &[&id.as_uuid(), &"admin retry"])
            .await
    }

    async fn attempt_times(
        &self,
        id: OrderId,
    ) -> Result<(Option<time::OffsetDateTime>, Option<time::OffsetDateTime>), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(created_at), max(created_at) FROM order_events \
                 WHERE order_id = $1 AND to_status = 'placing'",
                &[&id.as_uuid()],
            )
            .await
            .map_err(query_error("attempt times"))?;
        Ok((row.get(0), row.get(1)))
    }

    async fn list_failed(
        &self,
        since: Option<time::OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<FailedOrder>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ORDER_COLUMNS}, \
                       (SELECT max(created_at) FROM order_events e \
                        WHERE e.order_id = orders.id AND e.to_status = 'failed') AS failed_at \
                     FROM orders \
                     WHERE status = 'failed' AND ($1::timestamptz IS NULL OR updated_at >= $1) \
                     ORDER BY updated_at LIMIT $2"
                ),
                &[&since, &i64::from(limit)],
            )
            .await
            .map_err(query_error("list failed orders"))?;
        rows.iter()
            .map(|row| {
                let order = order_from_row(row)?;
                let failed_at: Option<time::OffsetDateTime> = row.get("failed_at");
                Ok(FailedOrder {
                    failed_at: failed_at.unwrap_or(order.created_at),
                    alerted_at: order.alerted_at,
                    order,
                })
            })
            .collect()
    }
}

/// Rebuilds the domain order from a row; a row the domain would refuse is reported, not hidden.
fn order_from_row(row: &Row) -> Result<Order, StoreError> {
    let id: Uuid = row.get("id");
    let corrupt = |problem: String| StoreError::Corrupt {
        id: id.to_string(),
        problem,
    };
    let order_type: OrderType = row.get::<_, &str>("order_type").parse().map_err(corrupt)?;
    let side: Side = row.get::<_, &str>("side").parse().map_err(corrupt)?;
    let instrument = Isin::parse(row.get("instrument")).map_err(corrupt)?;
    let limit_price = row
        .get::<_, Option<rust_decimal::Decimal>>("limit_price")
        .map(Price::try_from)
        .transpose()
        .map_err(corrupt)?;
    let quantity = Quantity::new(row.get("quantity")).map_err(corrupt)?;
    let details = NewOrder::new(order_type, side, instrument, limit_price, quantity)
        .map_err(|e| corrupt(e.message))?;
    let client_id = ClientId::parse(row.get("client_id")).map_err(corrupt)?;
    Ok(Order {
        id: OrderId::from(id),
        client_id,
        created_at: row.get("created_at"),
        details,
        status: row.get::<_, &str>("status").parse().map_err(corrupt)?,
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
        exchange_order_id: row.get("exchange_order_id"),
        placed_at: row.get("placed_at"),
        alerted_at: row.get("alerted_at"),
    })
}
