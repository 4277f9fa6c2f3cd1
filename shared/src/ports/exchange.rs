//! The stock exchange as the placer, the alerter and (for cancels of working orders) the
//! canceler see it.

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

/// The exchange's answer to a cancel of a placed order's unfilled rest. A cancel is idempotent
/// at the exchange (a second cancel of a canceled order is accepted again and changes nothing),
/// so unlike a placement there is no "maybe": a cancel whose answer was lost is simply sent again,
/// and such a call is [`ExchangeCancelOutcome::Transient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeCancelOutcome {
    /// Taken: the unfilled rest is canceled (now, or by an earlier cancel). How many shares that
    /// was arrives with the `canceled` execution report; fills reported before it stand.
    Accepted { exchange_order_id: String },
    /// Refused for good: there is nothing to cancel. Never retried.
    Refused {
        refusal: CancelRefusal,
        reason: String,
    },
    /// Not taken, and might work later (5xx, 401/403/408/409/429, a timeout, no connection):
    /// retried.
    Transient { error: String },
}

/// Why the exchange refused a cancel for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRefusal {
    /// The order was filled before the cancel arrived: the fill won.
    AlreadyFilled,
    /// The order's time in force ran out first; its rest expired (an `expired` report says so).
    AlreadyExpired,
    /// The exchange has no order under this client order id.
    UnknownOrder,
    /// The exchange refused the request itself (a 400/422 without one of the reasons above).
    Invalid,
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
    /// Asks the exchange to cancel what is still open of a placed order.
    async fn cancel(&self, client_order_id: OrderId) -> ExchangeCancelOutcome;
}
