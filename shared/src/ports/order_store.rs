//! Durable storage of orders: create, read, list, and the sweeper's view of stranded orders.

use std::time::Duration;

use time::OffsetDateTime;

use async_trait::async_trait;

use super::BoxError;
use crate::domain::{ClientId, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus};

/// The order store failed; the request or message that needed it must fail too.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or no connection was free in time (retryable).
    #[error("order store unavailable")]
    Unavailable(#[source] BoxError),
    /// A statement failed (retryable for the caller, but logged as an error).
    #[error("order store query failed: {what}")]
    Query {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// A stored row breaks the domain's rules; somebody wrote it around the API.
    #[error("stored order {id} is invalid: {problem}")]
    Corrupt { id: String, problem: String },
}

/// A placement message that reached the queue, as its enqueued mark needs it: the order, and
/// its park (`next_attempt_at`) when the message was sent. The mark comes after the send (the
/// api's by up to 50 ms), and a placer may take the message in between and park the order,
/// dropping the message; a park due at once then looks like no park at all. Marking such an
/// order would tell the sweeper its message is queued when none is, and nothing would send it
/// again. So a mark lands only where the park is still the one its sender saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentMessage {
    pub order_id: OrderId,
    pub parked_until: Option<OffsetDateTime>,
}

impl SentMessage {
    pub fn of(order: &Order) -> Self {
        Self {
            order_id: order.id,
            parked_until: order.next_attempt_at,
        }
    }
}

/// What creating an order did.
#[derive(Debug)]
pub enum CreateOutcome {
    /// A new order was committed as `pending` (its placement is now guaranteed).
    Created(Order),
    /// The idempotency key was used before with the same order: this is that order.
    Replayed(Order),
    /// The idempotency key was used before with a different order.
    KeyReused,
}

/// What a client's cancel request found.
#[derive(Debug)]
pub enum CancelOutcome {
    /// It was `pending`: now `canceled`, and no placer can claim it any more.
    Canceled(Order),
    /// Canceled before: the same answer again (cancel is idempotent).
    AlreadyCanceled(Order),
    /// A placer holds it (`placing`), or its last attempt may have reached the exchange and is
    /// being confirmed: ask again in a moment.
    BeingPlaced(Order),
    /// It was working at the exchange (`placed`, `partially_filled`): now `pending_cancel`; the
    /// cancel goes to the exchange through the queue, and the exchange's report ends the order
    /// (`canceled` for the unfilled rest, or `filled` if the fill won).
    CancelRequested(Order),
    /// A cancel was requested before and is not answered yet (`pending_cancel`): the same
    /// answer again, and the cancel is sent again (the exchange's cancel is idempotent).
    CancelPending(Order),
    /// A final status (filled, rejected, failed, expired): too late to cancel.
    Final(Order),
    /// No such order, or another client's.
    NotFound,
}

/// A page of the newest-first order list.
#[derive(Debug)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass back as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<OrderId>,
}

impl OrderPage {
    /// A page from up to `limit + 1` orders, newest first: the extra one only tells that there is
    /// a next page, which starts after the last order shown.
    pub fn from_one_extra(mut orders: Vec<Order>, limit: u32) -> Self {
        let limit = limit as usize;
        let next_cursor = if orders.len() > limit {
            orders.truncate(limit);
            orders.last().map(|order| order.id)
        } else {
            None
        };
        Self {
            orders,
            next_cursor,
        }
    }
}

/// Filters for listing orders.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Only this client's orders: a client never sees another's.
    pub client: ClientId,
    pub status: Option<OrderStatus>,
    /// Only orders older than this one (keyset pagination).
    pub before: Option<OrderId>,
    pub limit: u32,
}

/// Durable storage of orders and their audit trail.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Commits a new `pending` order and its first audit event atomically, or finds the order an
    /// idempotency key already belongs to.
    async fn create_order(
        &self,
        client: &ClientId,
        order: &NewOrder,
        expires_at: OffsetDateTime,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<CreateOutcome, StoreError>;

    /// `pending` → `canceled` for the client's own order, atomically against a placer's claim:
    /// exactly one of the two wins. An order whose outcome is unknown (maybe placed) is not
    /// canceled until that is settled.
    async fn cancel_order(
        &self,
        client: &ClientId,
        id: OrderId,
    ) -> Result<CancelOutcome, StoreError>;

    /// Records that the order's message reached the queue. Losing this mark is harmless (the
    /// sweeper sends one duplicate message), so nobody waits for it.
    async fn mark_enqueued(&self, order: &Order) -> Result<(), StoreError> {
        self.mark_all_enqueued(&[SentMessage::of(order)]).await
    }

    /// Cancels requested at least `older_than` ago and still unanswered (`pending_cancel`), up
    /// to `limit`, oldest first; each is stamped so that it is returned again only after another
    /// `older_than` (the sweeper sends their cancels again: the first message may have been
    /// lost, dropped during a long exchange outage, or never sent).
    async fn claim_unanswered_cancels(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError>;

    /// `mark_enqueued` for many orders: the api marks the orders it sent in batches, off the
    /// requests' latency path. A mark lands only on an order that is unmarked and parked as
    /// its sender saw it ([`SentMessage`]).
    async fn mark_all_enqueued(&self, sent: &[SentMessage]) -> Result<(), StoreError>;

    /// Any client's order: for the placement pipeline, never for a client's request.
    async fn find_order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// The order only if it belongs to `client`; another client's order is "not found".
    async fn find_client_order(
        &self,
        client: &ClientId,
        id: OrderId,
    ) -> Result<Option<Order>, StoreError>;

    async fn list_orders(&self, filter: &ListFilter) -> Result<OrderPage, StoreError>;

    /// Claims up to `limit` orders that are `pending`, not marked enqueued (never sent, or parked
    /// and now due), older than `grace` and not expired (unless an attempt's outcome is unknown:
    /// those must be looked up), for `claim_for` — so that a concurrent sweeper skips them.
    async fn claim_unenqueued(
        &self,
        grace: Duration,
        claim_for: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError>;

    /// Expires up to `limit` waiting orders whose time in force has run out (none with an
    /// unknown outcome: those are looked up first), with their audit events and incident.
    async fn expire_due(&self, limit: u32) -> Result<Vec<Order>, StoreError>;

    /// Orders parked until a later attempt (a metric and an alarm: an outage in progress).
    async fn parked_count(&self) -> Result<u64, StoreError>;

    /// Execution reports the ingester has kept unapplied for longer than `older_than` (a metric
    /// and an alarm). A report waits only until its order is recorded `placed`, which follows
    /// the exchange's answer within seconds; one still waiting long after contradicts its order
    /// or names an order we do not have, and the ingester will never apply it alone: an admin
    /// must look. Here rather than on the ingester's port because the sweeper, which reports
    /// every minute, is what counts it.
    async fn stuck_execution_count(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Deletes what admissions left behind for requests that never finished (the connection was
    /// lost between a `POST`'s admission and its insert), older than `older_than`; how many.
    async fn forget_abandoned_admissions(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Releases up to `limit` idempotency keys older than the store's retention, oldest first:
    /// each is free for a new order afterwards. Never changes an order. Returns how many.
    async fn release_expired_idempotency_keys(&self, limit: u32) -> Result<u64, StoreError>;

    /// Cheap round trip for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;
}
