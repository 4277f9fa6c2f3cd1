//! A stored order as the store returns it.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use rust_decimal::Decimal;

use super::{ClientId, NewOrder, OrderStatus, Shares};

/// An order's identity: a UUIDv7, so ids sort by creation time (the list's keyset) and the id
/// doubles as the client order id the exchange de-duplicates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for OrderId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

impl FromStr for OrderId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| "must be an order id (a UUID)".to_string())
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything the API shows about an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: OrderId,
    /// The client whose API key created it; only that client can read it.
    pub client_id: ClientId,
    pub created_at: OffsetDateTime,
    pub details: NewOrder,
    pub status: OrderStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub exchange_order_id: Option<String>,
    pub placed_at: Option<OffsetDateTime>,
    /// When the admin alert for its failure was published (`None`: not alerted yet).
    pub alerted_at: Option<OffsetDateTime>,
    /// After this it is never sent to the exchange (`None`: accepted before time in force
    /// existed; such an order never expires).
    pub expires_at: Option<OffsetDateTime>,
    /// Parked until then after a transient failure: the sweeper sends it again when it is due.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The last attempt may have reached the exchange (a timeout or a connection lost after
    /// sending): it is retried under the same id or looked up, never given up as `failed`.
    pub outcome_unknown: bool,
    /// Shares the exchange has filled so far (by the execution reports applied): 0 until the
    /// first fill, the order's quantity once `filled`; a `canceled` or `expired` order keeps
    /// what traded before.
    pub filled_quantity: Shares,
    /// The average price of the filled shares (six places); `None` before the first fill.
    pub average_fill_price: Option<Decimal>,
}

impl Order {
    /// Shares still open: not yet filled, canceled or expired. 0 once the order is done at the
    /// exchange (`filled`, or `canceled`/`expired` there) or never reached it.
    pub fn remaining_quantity(&self) -> i64 {
        let open = self.details.quantity().get() - self.filled_quantity.get();
        match self.status {
            OrderStatus::Filled
            | OrderStatus::Canceled
            | OrderStatus::Expired
            | OrderStatus::Rejected
            | OrderStatus::Failed => 0,
            _ => open.max(0),
        }
    }

    /// Whether its time in force has run out at `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expiry| expiry <= now)
    }
}
