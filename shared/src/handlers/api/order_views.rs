//! The JSON shapes of orders on the wire (the domain types stay free of serialisation concerns).

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Order, OrderStatus, OrderType, Side};

/// An order as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// RFC 3339 UTC. After this the order is never sent to the exchange: unless placed by then
    /// it ends `expired`. `null` only for orders accepted before time in force existed (they
    /// never expire).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-06T15:00:00Z")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub side: Side,
    /// ISIN, upper-case.
    pub instrument: String,
    /// Decimal string with two places, `null` for market orders.
    #[schema(value_type = Option<String>, example = "120.50")]
    pub limit_price: Option<String>,
    pub quantity: i64,
    pub status: OrderStatus,
    /// Placement attempts made so far.
    pub attempts: i32,
    /// The last exchange error or the rejection reason; after an attempt that may have reached
    /// the exchange it reads "outcome unknown, being confirmed with the exchange: …".
    pub last_error: Option<String>,
    /// `true` while the order is open and an attempt may have reached the exchange (a timeout
    /// or a connection lost after sending): it is retried under the same id or looked up at the
    /// exchange, never placed twice and never `failed` on a guess. `false` once it is final.
    pub outcome_unknown: bool,
    pub exchange_order_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub placed_at: Option<OffsetDateTime>,
}

impl From<&Order> for OrderView {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id.as_uuid(),
            created_at: order.created_at.to_offset(time::UtcOffset::UTC),
            expires_at: order.expires_at.map(|t| t.to_offset(time::UtcOffset::UTC)),
            order_type: order.details.order_type(),
            side: order.details.side(),
            instrument: order.details.instrument().as_str().to_owned(),
            limit_price: order.details.limit_price().map(|p| p.to_string()),
            quantity: order.details.quantity().get(),
            status: order.status,
            attempts: order.attempts,
            last_error: order.last_error.clone(),
            outcome_unknown: order.outcome_unknown && !order.status.is_final(),
            exchange_order_id: order.exchange_order_id.clone(),
            placed_at: order.placed_at.map(|t| t.to_offset(time::UtcOffset::UTC)),
        }
    }
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The body of `POST /orders` (documentation only: the parser in `domain` reads the raw JSON so
/// that every problem can be reported at once).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(as = OrderRequest)]
pub struct OrderRequestSchema {
    #[schema(rename = "type")]
    order_type: OrderType,
    side: Side,
    /// ISIN (ISO 6166), 12 characters; lower case is accepted.
    #[schema(example = "US0378331005")]
    instrument: String,
    /// Required for `limit`, forbidden for `market`; > 0, ≤ 1000000000.00, at most 2 decimal
    /// places; a JSON number or a decimal string.
    #[schema(value_type = Option<String>, example = "120.50")]
    limit_price: Option<String>,
    /// 1 to 1000000000.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    quantity: i64,
    /// Optional time in force: RFC 3339 with an offset (`2026-12-06T15:00:00Z`), in the future,
    /// at most 30 days ahead. After it the order is never sent to the exchange; unless placed by
    /// then it ends `expired`. Default: market orders 5 minutes after acceptance (configurable
    /// by the operator), limit orders 30 days after acceptance.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-06T15:00:00Z")]
    expires_at: Option<String>,
}
