//! The stock exchange as the placer and the alerter see it.

use async_trait::async_trait;

use crate::domain::{Order, OrderId};

/// The exchange's answer to a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementOutcome {
    /// Accepted; the exchange's own id for the order.
    Acknowledged { exchange_order_id: String },
    /// Refused for good (a business refusal, 400/422-like): never retried.
    Rejected { reason: String },
    /// Not taken, and might work later (5xx, 401/403/408/409/429, no connection): retried.
    Transient { error: String },
    /// Maybe placed: the request went out and no answer came back (a timeout, a connection lost
    /// after sending). Retried under the same client order id (the exchange de-duplicates) or
    /// looked up; never given up as `failed`.
    Unknown { error: String },
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
