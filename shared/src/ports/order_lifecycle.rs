//! The order's state transitions on the store, as the placer, the alerter and the admin drive them.

use std::time::Duration;

use time::OffsetDateTime;

use async_trait::async_trait;

use super::{OrderStore, StoreError};
use crate::domain::{Order, OrderId, OrderStatus};

/// What claiming an order for placement found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// Now `placing` under a lease, with `attempts` counting this attempt.
    Claimed(Order),
    /// `placed`, `rejected` or `failed`: nothing to do; the message can go.
    AlreadyFinal(OrderStatus),
    /// Another placer holds a valid lease: the message must come back later, not be deleted.
    LeasedElsewhere,
    /// No such order: the message is poison and must reach the DLQ to be reported.
    Unknown,
    /// Its time in force ran out before anyone sent it: now `expired`, never sent.
    Expired(Order),
}

/// How a released order comes back after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPlan {
    /// `None`: soon, through the queue (its message comes back). `Some(t)`: parked in the
    /// database until `t`; its message is dropped and the sweeper sends a new one when due.
    pub park_until: Option<OffsetDateTime>,
    /// The attempt may have reached the exchange: retry under the same id or look it up.
    pub outcome_unknown: bool,
}

/// The placement state machine on the store. Every method is one conditional transition with
/// its audit event; `None` means the order was not in a state that allows it (a duplicate or
/// late message), which callers treat as "someone else already did it".
#[async_trait]
pub trait OrderLifecycle: OrderStore {
    /// `pending` (or `placing` with an expired lease) → `placing` for `lease`.
    async fn claim_for_placement(
        &self,
        id: OrderId,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError>;

    /// `placing` → `placed`.
    async fn record_placed(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError>;

    /// `placing` → `rejected` (final, no retry).
    async fn record_rejected(&self, id: OrderId, reason: &str)
    -> Result<Option<Order>, StoreError>;

    /// `placing` → `pending` after a transient error, keeping the error for the client and the
    /// admin, to come back as `plan` says.
    async fn release_for_retry(
        &self,
        id: OrderId,
        error: &str,
        plan: RetryPlan,
    ) -> Result<Option<Order>, StoreError>;

    /// Parks a `pending` order until `until` without an attempt (the exchange's breaker is open):
    /// its message is dropped and the sweeper sends a new one when due. Not a status change.
    /// `false` when the order was not `pending` (nothing parked: its message must stay).
    async fn defer(&self, id: OrderId, until: OffsetDateTime) -> Result<bool, StoreError>;

    /// `pending` → `expired` when its time has run out and no outcome is in doubt.
    async fn expire(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// `pending` (or `placing` with an expired lease) → `expired`, once a lookup confirmed that
    /// the exchange does not have the order and its time has run out.
    async fn expire_after_lookup(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// `pending`/`placing` → `placed` when a lookup shows the exchange did take the order.
    async fn record_placed_by_lookup(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError>;

    /// `pending` (or `placing` with an expired lease) → `failed` (retries exhausted). An order
    /// under a valid lease is left alone: a placer is working on it right now.
    async fn mark_failed(&self, id: OrderId, reason: &str) -> Result<Option<Order>, StoreError>;

    /// Sends a `pending` order again after its placement message was dead-lettered: clears its
    /// enqueued mark and parks it until now, so that the sweeper's next run sends a new message,
    /// and counts the resend. Only while fewer than `max` resends were made: `Some(count so far)`
    /// when it was sent again, `None` when not (not `pending`, or its resends are spent). Not a
    /// status change.
    async fn resend_after_dead_letter(
        &self,
        id: OrderId,
        max: u32,
    ) -> Result<Option<u32>, StoreError>;

    /// Records that the admin alert for this failure was published.
    async fn mark_alerted(&self, id: OrderId) -> Result<(), StoreError>;

    /// `failed` → `pending` for an admin retry, clearing the enqueued and alerted marks.
    async fn requeue_failed(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// When the first and the last placement attempt started (from the audit trail).
    async fn attempt_times(
        &self,
        id: OrderId,
    ) -> Result<(Option<time::OffsetDateTime>, Option<time::OffsetDateTime>), StoreError>;

    /// Failed orders (oldest first) that failed at or after `since`.
    async fn list_failed(
        &self,
        since: Option<time::OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<FailedOrder>, StoreError>;
}

/// A failed order with what an admin needs to decide on a retry.
#[derive(Debug, Clone)]
pub struct FailedOrder {
    pub order: Order,
    pub failed_at: time::OffsetDateTime,
    pub alerted_at: Option<time::OffsetDateTime>,
}
