//! A client's own orders behind its admission, for the api's busiest routes: the key check, the
//! per-client limits and the order operation together, so that an adapter can answer all three
//! in one database round trip (`POST /orders` and the GETs of `/orders`).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Admission, CreateOutcome, OrderPage, StoreError};
use crate::auth::ApiKey;
use crate::domain::{
    ClientId, ExecutionReport, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus,
};

/// What a request got that asked for something together with its admission.
#[derive(Debug)]
pub enum Gated<T> {
    /// Admitted as this client, and this is what the request asked for.
    Admitted(ClientId, T),
    /// Not admitted (never `Admission::Admitted`): nothing was read or changed for it.
    Refused(Admission),
}

/// Which of the client's orders to list, newest first.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub status: Option<OrderStatus>,
    /// Only orders older than this one (keyset pagination).
    pub before: Option<OrderId>,
    pub limit: u32,
}

/// One entry of an order's audit trail: a transition, why, at which attempt, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    /// `None` for the order's acceptance.
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: String,
    pub attempt: i32,
    pub at: OffsetDateTime,
}

/// The api's admitted order operations; the client is the key's, never the caller's choice.
#[async_trait]
pub trait ClientOrders: Send + Sync {
    /// Admits a `POST /orders` (its rate and open-order limits) and, if admitted, commits the new
    /// `pending` order and its first audit event — or finds the order the idempotency key
    /// already names, as `OrderStore::create_order` does.
    async fn place(
        &self,
        key: &ApiKey,
        order: &NewOrder,
        expires_at: OffsetDateTime,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Gated<CreateOutcome>, StoreError>;

    /// Admits a read and returns the order if it is the key's client's.
    async fn order(&self, key: &ApiKey, id: OrderId) -> Result<Gated<Option<Order>>, StoreError>;

    /// Admits a read and returns the order's audit trail, oldest first, if the order is the key's
    /// client's (`None` otherwise).
    async fn order_events(
        &self,
        key: &ApiKey,
        id: OrderId,
    ) -> Result<Gated<Option<Vec<OrderEvent>>>, StoreError>;

    /// Admits a read and returns the execution reports applied to the order, in feed order, if
    /// the order is the key's client's (`None` otherwise). Reports still waiting to be applied
    /// are left out, so the fills add up to the order's `filled_quantity`.
    async fn order_executions(
        &self,
        key: &ApiKey,
        id: OrderId,
    ) -> Result<Gated<Option<Vec<ExecutionReport>>>, StoreError>;

    /// Admits a read and returns a page of the key's client's orders.
    async fn orders(&self, key: &ApiKey, query: &ListQuery)
    -> Result<Gated<OrderPage>, StoreError>;
}
