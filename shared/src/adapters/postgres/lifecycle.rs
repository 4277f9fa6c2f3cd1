//! The order lifecycle on Postgres (the `OrderLifecycle` port): the placer's, the alerter's and
//! the admin's status changes, each one conditional update with its `order_events` row, plus the
//! audit-trail reads beside them (attempt times, failed orders). The statement of each move, and
//! so its guard, comes from the domain's `Transition` table through `transitions`.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::order_rows::{ORDER_COLUMNS, order_from_row};
use super::orders::PostgresOrderStore;
use super::statements::{self, Param};
use super::store_errors::query_error;
use super::transitions::{batch_transition_sql, transition_sql};
use crate::domain::{Order, OrderId, Transition};
use crate::ports::{ClaimOutcome, FailedOrder, OrderLifecycle, OrderStore, RetryPlan, StoreError};

impl PostgresOrderStore {
    /// Makes one move of the domain's state machine: the order after it, or `None` when the order
    /// was in no status the move starts from. `params` are `$1` (id), `$2` (reason) and `$3` (the
    /// move's own column, see `transitions`).
    async fn transition(
        &self,
        transition: Transition,
        what: &'static str,
        params: &[&dyn Param],
    ) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        let row = statements::optional(&client, &transition_sql(transition), params)
            .await
            .map_err(query_error(what))?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// One move for up to `limit` orders at once, the first by `order_by` (see `transitions`).
    pub(super) async fn transition_oldest(
        &self,
        transition: Transition,
        what: &'static str,
        order_by: &str,
        reason: &str,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let client = self.client().await?;
        let rows = statements::rows(
            &client,
            &batch_transition_sql(transition, order_by),
            &[&i64::from(limit), &reason],
        )
        .await
        .map_err(query_error(what))?;
        rows.iter().map(order_from_row).collect()
    }

    /// `placed`/`partially_filled` → `pending_cancel`: the client asked to cancel an order working
    /// at the exchange (the ownership check is the caller's; the cancel itself goes to the
    /// exchange through the queue, and the exchange's report ends the order).
    pub async fn request_cancel(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.transition(
            Transition::RequestCancel,
            "request cancel",
            &[&id.as_uuid(), &"cancel requested by the client"],
        )
        .await
    }

    /// `pending` → `canceled` (the ownership check is the caller's).
    pub async fn cancel_pending(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.transition(
            Transition::Cancel,
            "cancel order",
            &[&id.as_uuid(), &"canceled by the client"],
        )
        .await
    }
}

#[async_trait]
impl OrderLifecycle for PostgresOrderStore {
    async fn claim_for_placement(
        &self,
        id: OrderId,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let claimed = self
            .transition(
                Transition::Claim,
                "claim order",
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
        // Not claimable: perhaps because its time ran out, and then it ends here, never sent.
        if let Some(order) = self.expire(id).await? {
            return Ok(ClaimOutcome::Expired(order));
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
        self.transition(
            Transition::Place,
            "record placed",
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
        let event = format!("rejected by the exchange: {reason}");
        self.transition(
            Transition::Reject,
            "record rejected",
            &[&id.as_uuid(), &event, &reason],
        )
        .await
    }

    async fn release_for_retry(
        &self,
        id: OrderId,
        error: &str,
        plan: RetryPlan,
    ) -> Result<Option<Order>, StoreError> {
        let kind = if plan.outcome_unknown {
            "outcome unknown"
        } else {
            "transient exchange error"
        };
        let event = match plan.park_until {
            None => format!("{kind}: {error}"),
            Some(until) => format!("{kind}, parked until {until}: {error}"),
        };
        self.transition(
            Transition::Release,
            "release for retry",
            &[
                &id.as_uuid(),
                &event,
                &error,
                &plan.park_until,
                &plan.outcome_unknown,
            ],
        )
        .await
    }

    async fn defer(&self, id: OrderId, until: OffsetDateTime) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let parked = statements::execute(
            &client,
            "UPDATE orders SET next_attempt_at = $2, enqueued_at = NULL, \
                        sweep_claimed_until = NULL, updated_at = now() \
                 WHERE id = $1 AND status = 'pending'",
            &[&id.as_uuid(), &until],
        )
        .await
        .map_err(query_error("defer order"))?;
        Ok(parked == 1)
    }

    async fn expire(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.transition(
            Transition::Expire,
            "expire order",
            &[
                &id.as_uuid(),
                &"its time in force ran out before it could be placed",
            ],
        )
        .await
    }

    async fn expire_after_lookup(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.transition(
            Transition::ExpireAfterLookup,
            "expire order after lookup",
            &[
                &id.as_uuid(),
                &"its time in force ran out and the exchange does not have it",
            ],
        )
        .await
    }

    async fn record_placed_by_lookup(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        self.transition(
            Transition::PlaceByLookup,
            "record placed by lookup",
            &[
                &id.as_uuid(),
                &"found placed by an exchange lookup after retries ran out",
                &exchange_order_id,
            ],
        )
        .await
    }

    async fn mark_failed(&self, id: OrderId, reason: &str) -> Result<Option<Order>, StoreError> {
        // Never under a placer's valid lease (`Transition::Fail` waits for it to expire): its
        // placement may be acknowledged any moment.
        self.transition(
            Transition::Fail,
            "mark failed",
            &[&id.as_uuid(), &reason, &reason],
        )
        .await
    }

    // Parked until now rather than not parked: due for the sweeper at once, and a stale mark of
    // an earlier message (one that saw no park) cannot land on it (`SentMessage`).
    async fn resend_after_dead_letter(
        &self,
        id: OrderId,
        max: u32,
    ) -> Result<Option<u32>, StoreError> {
        let client = self.client().await?;
        let row = statements::optional(
            &client,
            "UPDATE orders SET dead_letter_resends = dead_letter_resends + 1, enqueued_at = NULL, \
                        next_attempt_at = now(), sweep_claimed_until = NULL, updated_at = now() \
                 WHERE id = $1 AND status = 'pending' AND dead_letter_resends < $2 \
                 RETURNING dead_letter_resends",
            &[&id.as_uuid(), &i64::from(max)],
        )
        .await
        .map_err(query_error("resend after a dead letter"))?;
        Ok(row.map(|row| row.get::<_, i32>(0).max(0) as u32))
    }

    async fn mark_alerted(&self, id: OrderId) -> Result<(), StoreError> {
        let client = self.client().await?;
        statements::execute(
            &client,
            "UPDATE orders SET alerted_at = now(), updated_at = now() WHERE id = $1",
            &[&id.as_uuid()],
        )
        .await
        .map_err(query_error("mark alerted"))?;
        Ok(())
    }

    async fn requeue_failed(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.transition(
            Transition::Requeue,
            "requeue failed",
            &[&id.as_uuid(), &"admin retry"],
        )
        .await
    }

    async fn attempt_times(
        &self,
        id: OrderId,
    ) -> Result<(Option<time::OffsetDateTime>, Option<time::OffsetDateTime>), StoreError> {
        let client = self.client().await?;
        let row = statements::one(
            &client,
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
        let rows = statements::rows(
            &client,
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
