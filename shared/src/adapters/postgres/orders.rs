//! The orders themselves on Postgres (the `OrderStore` port): create with idempotency, find,
//! list, the sweeper's claim of orders never enqueued, the enqueued mark and the health ping.
//! Status changes live in `lifecycle`; both are methods of the one `PostgresOrderStore`.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::order_rows::{ORDER_COLUMNS, order_from_row};
use super::statements::{self, Param};
use super::store_errors::{checkout, query_error};
use time::OffsetDateTime;

use crate::domain::{ClientId, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus, Transition};
use crate::ports::{
    CancelOutcome, CreateOutcome, ListFilter, OrderPage, OrderStore, SentMessage, StoreError,
};

/// The order store; cheap to clone (the pool is reference-counted).
#[derive(Clone)]
pub struct PostgresOrderStore {
    pool: Pool,
    /// How long an idempotency key names its order; older keys are released by the sweeper.
    idempotency_retention: Duration,
}

impl PostgresOrderStore {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            idempotency_retention: IdempotencyKey::DEFAULT_RETENTION,
        }
    }

    /// Keeps idempotency keys for `retention` instead of the default 24 hours.
    pub fn with_idempotency_retention(mut self, retention: Duration) -> Self {
        self.idempotency_retention = retention;
        self
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

    /// Opens the first connection in the background (see [`super::warm_up`]); call once at the
    /// cold start, right after `connect`, so it overlaps the rest of the init, and await the
    /// handle before serving the first event.
    pub fn warm_up(&self) -> tokio::task::JoinHandle<()> {
        super::warm_up(&self.pool)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled connection, or `Unavailable` (shared with the lifecycle transitions).
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        checkout(&self.pool).await
    }
}

#[async_trait]
impl OrderStore for PostgresOrderStore {
    async fn create_order(
        &self,
        owner: &ClientId,
        order: &NewOrder,
        expires_at: OffsetDateTime,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<CreateOutcome, StoreError> {
        let client = self.client().await?;
        super::client_orders::create_for_client(
            &client,
            owner,
            order,
            expires_at,
            idempotency_key,
            self.idempotency_retention,
        )
        .await
    }

    async fn mark_all_enqueued(&self, sent: &[SentMessage]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let ids: Vec<uuid::Uuid> = sent.iter().map(|s| s.order_id.as_uuid()).collect();
        let parks: Vec<Option<OffsetDateTime>> = sent.iter().map(|s| s.parked_until).collect();
        // An order parked since its message was sent (a placer got the message first and
        // parked it, dropping the message) keeps its park, even one due at once: marking it
        // would leave it with no message and no sweeper (SentMessage). Only `enqueued_at`
        // changes, which no index holds (V11): the new row version can stay on its page without
        // new index entries (a HOT update). `updated_at` is an index key.
        statements::execute(
            &client,
            "UPDATE orders o SET enqueued_at = now() \
             FROM unnest($1, $2) AS sent(id, parked_until) \
             WHERE o.id = sent.id AND o.enqueued_at IS NULL \
               AND o.next_attempt_at IS NOT DISTINCT FROM sent.parked_until",
            &[&ids, &parks],
        )
        .await
        .map_err(query_error("mark orders enqueued"))?;
        Ok(())
    }

    async fn find_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        let row = statements::optional(
            &client,
            &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"),
            &[&id.as_uuid()],
        )
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
        let row = statements::optional(
            &client,
            &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND client_id = $2"),
            &[&id.as_uuid(), &owner.as_str()],
        )
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
        let mut params: Vec<&dyn Param> = vec![&fetch, &owner];
        if let Some(status) = &status {
            params.push(status);
            conditions.push(format!("status = ${}", params.len()));
        }
        if let Some(before) = &before {
            params.push(before);
            conditions.push(format!("id < ${}", params.len()));
        }
        let where_clause = format!("WHERE {}", conditions.join(" AND "));
        let rows = statements::rows(
            &client,
            &format!("SELECT {ORDER_COLUMNS} FROM orders {where_clause} ORDER BY id DESC LIMIT $1"),
            &params,
        )
        .await
        .map_err(query_error("list orders"))?;
        let orders = rows
            .iter()
            .map(order_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OrderPage::from_one_extra(orders, filter.limit))
    }

    async fn claim_unenqueued(
        &self,
        grace: Duration,
        claim_for: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "UPDATE orders SET sweep_claimed_until = now() + make_interval(secs => $2), \
                                   updated_at = now() \
                 WHERE id IN ( \
                   SELECT id FROM orders \
                   WHERE status = 'pending' AND enqueued_at IS NULL \
                     AND created_at < now() - make_interval(secs => $1) \
                     AND (sweep_claimed_until IS NULL OR sweep_claimed_until < now()) \
                     AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
                     AND (expires_at IS NULL OR expires_at > now() OR outcome_unknown) \
                   ORDER BY created_at \
                   LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) \
                 RETURNING {ORDER_COLUMNS}"
        );
        let rows = statements::rows(
            &client,
            &sql,
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

    async fn cancel_order(
        &self,
        owner: &ClientId,
        id: OrderId,
    ) -> Result<CancelOutcome, StoreError> {
        // Ownership never changes, so checking it first leaves the cancel itself one atomic
        // conditional update, which a placer's claim either beats or loses to.
        if self.find_client_order(owner, id).await?.is_none() {
            return Ok(CancelOutcome::NotFound);
        }
        if let Some(order) = self.cancel_pending(id).await? {
            return Ok(CancelOutcome::Canceled(order));
        }
        // Working at the exchange: the cancel becomes a request the exchange answers.
        if let Some(order) = self.request_cancel(id).await? {
            return Ok(CancelOutcome::CancelRequested(order));
        }
        Ok(match self.find_client_order(owner, id).await? {
            None => CancelOutcome::NotFound,
            Some(order) => match order.status {
                OrderStatus::Canceled => CancelOutcome::AlreadyCanceled(order),
                OrderStatus::PendingCancel => CancelOutcome::CancelPending(order),
                // Moved on between the two updates (a placer placed it, or a fill arrived):
                // the client asks again and meets the order where it is now.
                OrderStatus::Pending
                | OrderStatus::Placing
                | OrderStatus::Placed
                | OrderStatus::PartiallyFilled => CancelOutcome::BeingPlaced(order),
                _ => CancelOutcome::Final(order),
            },
        })
    }

    async fn claim_unanswered_cancels(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let client = self.client().await?;
        // `updated_at` doubles as "cancel last sent": the request, a fill, or the last resend.
        let rows = statements::rows(
            &client,
            &format!(
                "UPDATE orders SET updated_at = now() WHERE id IN ( \
                   SELECT id FROM orders \
                   WHERE status = 'pending_cancel' \
                     AND updated_at <= now() - make_interval(secs => $1) \
                   ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING {ORDER_COLUMNS}"
            ),
            &[&older_than.as_secs_f64(), &i64::from(limit)],
        )
        .await
        .map_err(query_error("claim unanswered cancels"))?;
        rows.iter().map(order_from_row).collect()
    }

    async fn expire_due(&self, limit: u32) -> Result<Vec<Order>, StoreError> {
        self.transition_oldest(
            Transition::Expire,
            "expire due orders",
            "expires_at",
            "its time in force ran out before it could be placed",
            limit,
        )
        .await
    }

    async fn parked_count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = statements::one(
            &client,
            "SELECT count(*) FROM orders \
                 WHERE status = 'pending' AND enqueued_at IS NULL AND next_attempt_at > now()",
            &[],
        )
        .await
        .map_err(query_error("count parked orders"))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn stuck_execution_count(&self, older_than: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        // executions_waiting_idx holds exactly the unapplied reports (normally none or a few).
        let row = statements::one(
            &client,
            "SELECT count(*) FROM executions \
                 WHERE applied_at IS NULL AND created_at < now() - make_interval(secs => $1)",
            &[&older_than.as_secs_f64()],
        )
        .await
        .map_err(query_error("count stuck execution reports"))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn release_expired_idempotency_keys(&self, limit: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        // Oldest first, skipping a key that a request is taking over right now (it is not
        // expired any more once that commits; the lock's re-check then leaves it out).
        statements::execute(
            &client,
            "DELETE FROM idempotency_keys WHERE (client_id, idempotency_key) IN ( \
               SELECT client_id, idempotency_key FROM idempotency_keys \
               WHERE created_at <= now() - make_interval(secs => $1) \
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&self.idempotency_retention.as_secs_f64(), &i64::from(limit)],
        )
        .await
        .map_err(query_error("release expired idempotency keys"))
    }

    async fn forget_abandoned_admissions(&self, older_than: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        statements::execute(
            &client,
            "DELETE FROM admission_tokens WHERE created_at < now() - make_interval(secs => $1)",
            &[&older_than.as_secs_f64()],
        )
        .await
        .map_err(query_error("forget abandoned admissions"))
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
