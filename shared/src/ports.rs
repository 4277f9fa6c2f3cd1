//! The capabilities the handlers need from the outside world, one small trait each. Every trait
//! has one real adapter in `adapters/`; handlers take `Arc<dyn …>` so Lambda, the local runner
//! and the tests wire the very same code to different endpoints.

use std::time::Duration;

use async_trait::async_trait;

use crate::auth::{ApiKey, KeyId};
use crate::domain::{ClientId, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus};

/// Any error from an adapter's client library, kept whole so that the log shows the cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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

/// A page of the newest-first order list.
#[derive(Debug)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass back as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<OrderId>,
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
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<CreateOutcome, StoreError>;

    /// Records that the order's message reached the queue. Losing this mark is harmless (the
    /// sweeper sends one duplicate message), so it is written without waiting for fsync.
    async fn mark_enqueued(&self, id: OrderId) -> Result<(), StoreError>;

    /// Any client's order: for the placement pipeline, never for a client's request.
    async fn find_order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// The order only if it belongs to `client`; another client's order is "not found".
    async fn find_client_order(
        &self,
        client: &ClientId,
        id: OrderId,
    ) -> Result<Option<Order>, StoreError>;

    async fn list_orders(&self, filter: &ListFilter) -> Result<OrderPage, StoreError>;

    /// Claims up to `limit` orders that are `pending`, were never marked enqueued and are older
    /// than `grace`, for `claim_for` — so that a concurrent sweeper skips them.
    async fn claim_unenqueued(
        &self,
        grace: Duration,
        claim_for: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError>;

    /// Cheap round trip for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The queue could not take the message; the order stays stranded for the sweeper.
#[derive(Debug, thiserror::Error)]
#[error("could not enqueue order {order_id}")]
pub struct QueueError {
    pub order_id: OrderId,
    #[source]
    pub source: BoxError,
}

/// The queue that feeds the placer.
#[async_trait]
pub trait OrderQueue: Send + Sync {
    /// Sends one placement message for the order.
    async fn enqueue(&self, order: &Order) -> Result<(), QueueError>;
}

/// The exchange's answer to a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementOutcome {
    /// Accepted; the exchange's own id for the order.
    Acknowledged { exchange_order_id: String },
    /// Refused for good (a business refusal, 400/422-like): never retried.
    Rejected { reason: String },
    /// Might work later (5xx, 401/403/408/409/429, timeouts, connection errors): retried.
    /// A timeout may hide a success, which the exchange's de-duplication makes harmless.
    Transient { error: String },
}

/// What the exchange knows about a client order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    Placed { exchange_order_id: String },
    Unknown,
}

/// The exchange could not answer a lookup (it is down or slow).
#[derive(Debug, thiserror::Error)]
#[error("exchange lookup failed: {0}")]
pub struct LookupError(pub String);

/// The stock exchange. The order id is the client order id, so that a retried placement after a
/// crash between "accepted" and "row updated" is de-duplicated by the exchange.
#[async_trait]
pub trait Exchange: Send + Sync {
    async fn place(&self, order: &Order) -> PlacementOutcome;
    async fn lookup(&self, client_order_id: OrderId) -> Result<LookupOutcome, LookupError>;
}

/// An alert for the on-call admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub subject: String,
    /// JSON an admin (or a tool) can act on.
    pub body: String,
}

/// Publishing failed; the alert must be retried (the record is reported as failed).
#[derive(Debug, thiserror::Error)]
#[error("could not publish the alert")]
pub struct PublishError(#[source] pub BoxError);

/// Where admin alerts go (SNS in AWS).
#[async_trait]
pub trait AlertPublisher: Send + Sync {
    async fn publish(&self, alert: &Alert) -> Result<(), PublishError>;
}

/// Delays the next delivery of a queue message (SQS ChangeMessageVisibility), for back-off.
#[async_trait]
pub trait RetryScheduler: Send + Sync {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), BoxError>;
}

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

    /// `placing` → `pending` after a transient error, keeping the error for the admin.
    async fn release_for_retry(
        &self,
        id: OrderId,
        error: &str,
    ) -> Result<Option<Order>, StoreError>;

    /// `pending`/`placing` → `placed` when a lookup shows the exchange did take the order.
    async fn record_placed_by_lookup(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError>;

    /// `pending` (or `placing` with an expired lease) → `failed` (retries exhausted). An order
    /// under a valid lease is left alone: a placer is working on it right now.
    async fn mark_failed(&self, id: OrderId, reason: &str) -> Result<Option<Order>, StoreError>;

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

/// What a request asks for, as far as the per-client limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Reads: count against the request rate only.
    Read,
    /// `POST /orders`: also checked against the client's open-order limit.
    PlaceOrder,
}

/// The answer to "may this request go ahead?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The key is valid and the client is within its limits.
    Admitted(ClientId),
    /// No valid key: unknown, revoked or wrong secret (deliberately one answer for all).
    Unauthenticated,
    /// Over the client's requests-per-second limit.
    RateLimited { limit: u32, retry_after: Duration },
    /// The client has `limit` orders that are not final yet.
    TooManyOpenOrders { limit: u32, retry_after: Duration },
}

/// Authentication and the per-client limits, in one round trip per request. The state lives in
/// the database, not in memory: every Lambda instance must see the same counts.
#[async_trait]
pub trait AccessControl: Send + Sync {
    async fn admit(&self, key: &ApiKey, kind: RequestKind) -> Result<Admission, StoreError>;
}

/// A client and its limits, as the admin tool shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: ClientId,
    pub requests_per_second: u32,
    pub max_open_orders: u32,
    pub created_at: time::OffsetDateTime,
}

/// Limits to set; `None` keeps the current (or, for a new client, the default) value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientLimits {
    pub requests_per_second: Option<u32>,
    pub max_open_orders: Option<u32>,
}

/// An API key as the admin tool lists it: never the secret, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub client_id: ClientId,
    pub label: String,
    pub created_at: time::OffsetDateTime,
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// The admin's side of clients and keys (the `orders-admin` tool).
#[async_trait]
pub trait ClientRegistry: Send + Sync {
    /// Creates the client if it does not exist and applies the given limits either way.
    async fn upsert_client(
        &self,
        id: &ClientId,
        limits: ClientLimits,
    ) -> Result<ClientRecord, StoreError>;

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Stores a new key's hash for an existing client; `None` if there is no such client.
    async fn create_key(
        &self,
        client: &ClientId,
        key: &ApiKey,
        label: &str,
    ) -> Result<Option<KeyRecord>, StoreError>;

    async fn list_keys(&self, client: Option<&ClientId>) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes a key for good; `None` if there is no such key (revoking twice keeps the first
    /// revocation time).
    async fn revoke_key(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
}
