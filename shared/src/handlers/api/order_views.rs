//! The JSON shapes of orders on the wire (the domain types stay free of serialisation concerns).

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{ExecutionEvent, ExecutionReport, Order, OrderStatus, OrderType, Side};
use crate::ports::OrderEvent;

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
    #[schema(value_type = Option<String>, example = "120.50", pattern = "^[0-9]+\\.[0-9]{2}$")]
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
    /// Shares the exchange has filled so far: 0 until the first fill, `quantity` once `filled`.
    /// A `canceled` or `expired` order that was working at the exchange keeps what traded.
    #[schema(minimum = 0)]
    pub filled_quantity: i64,
    /// Shares still open: `quantity − filled_quantity` while the order is open or working at the
    /// exchange, 0 once it is final.
    #[schema(minimum = 0)]
    pub remaining_quantity: i64,
    /// The average price of the filled shares, a decimal string with six places; `null` before
    /// the first fill.
    #[schema(value_type = Option<String>, example = "120.483333", pattern = "^[0-9]+\\.[0-9]{6}$")]
    pub average_fill_price: Option<String>,
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
            filled_quantity: order.filled_quantity.get(),
            remaining_quantity: order.remaining_quantity(),
            average_fill_price: order
                .average_fill_price
                .map(|p| format!("{:.6}", p.round_dp(6))),
        }
    }
}

/// An order's executions at the exchange, in the exchange's order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecutionList {
    pub order_id: Uuid,
    pub executions: Vec<ExecutionView>,
}

/// What an execution report says happened.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionKindView {
    /// Some shares traded; some are still open.
    PartialFill,
    /// The last open shares traded: the order is filled.
    Fill,
    /// The unfilled rest was canceled on the client's request.
    Canceled,
    /// The unfilled rest expired with the order's time in force.
    Expired,
    /// A cancel came too late (the order had filled or expired); nothing changed.
    CancelRefused,
}

/// One execution report of an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    /// The exchange's id of this execution (unique).
    pub execution_id: String,
    pub kind: ExecutionKindView,
    /// Shares traded (fills), canceled or expired (the unfilled rest); 0 for a refused cancel.
    #[schema(minimum = 0)]
    pub quantity: i64,
    /// The fill's price, a decimal string with two places; `null` unless a fill.
    #[schema(value_type = Option<String>, example = "120.50", pattern = "^[0-9]+\\.[0-9]{2}$")]
    pub price: Option<String>,
    /// Shares filled up to and including this execution.
    #[schema(minimum = 0)]
    pub cumulative_quantity: i64,
    /// Shares still open after it.
    #[schema(minimum = 0)]
    pub remaining_quantity: i64,
    /// When it happened at the exchange, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub executed_at: OffsetDateTime,
}

impl From<&ExecutionReport> for ExecutionView {
    fn from(report: &ExecutionReport) -> Self {
        let event = report.event();
        let kind = match event {
            ExecutionEvent::PartialFill { .. } => ExecutionKindView::PartialFill,
            ExecutionEvent::Fill { .. } => ExecutionKindView::Fill,
            ExecutionEvent::Canceled { .. } => ExecutionKindView::Canceled,
            ExecutionEvent::Expired { .. } => ExecutionKindView::Expired,
            ExecutionEvent::CancelRefused => ExecutionKindView::CancelRefused,
        };
        Self {
            execution_id: report.execution_id().as_str().to_owned(),
            kind,
            quantity: event.quantity().map_or(0, |q| q.get()),
            price: event.traded().map(|(_, price)| price.to_string()),
            cumulative_quantity: report.cumulative_quantity().get(),
            remaining_quantity: report.remaining_quantity().get(),
            executed_at: report.time().to_offset(time::UtcOffset::UTC),
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

/// An order's audit trail: every status it went through, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderHistory {
    pub order_id: Uuid,
    pub events: Vec<OrderEventView>,
}

/// One transition of an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderEventView {
    /// The status before; `null` for the order's acceptance.
    pub from: Option<OrderStatus>,
    /// The status after.
    pub to: OrderStatus,
    /// Why (e.g. "order accepted", the exchange's error, "canceled by the client").
    pub reason: String,
    /// The placement attempt the transition belongs to (0 before the first).
    #[schema(minimum = 0)]
    pub attempt: i32,
    /// When, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<&OrderEvent> for OrderEventView {
    fn from(event: &OrderEvent) -> Self {
        Self {
            from: event.from,
            to: event.to,
            reason: event.reason.clone(),
            attempt: event.attempt,
            at: event.at.to_offset(time::UtcOffset::UTC),
        }
    }
}

/// The body of `POST /orders`: a market or a limit order (documentation only: the parser in
/// `domain` reads the raw JSON so that every problem can be reported at once). Every rule the
/// parser enforces that OpenAPI can state is stated here; the rest is in the descriptions (the
/// ISIN's check digit, `expires_at` being in the future and at most 30 days ahead, a decimal
/// string's value range, a quantity written as an integer, an attribute given twice being
/// refused).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(as = OrderRequest)]
#[serde(untagged)]
pub enum OrderRequestSchema {
    Market(MarketOrderRequest),
    Limit(LimitOrderRequest),
}

/// Only `market`.
#[allow(dead_code, non_camel_case_types)]
#[derive(utoipa::ToSchema)]
pub enum MarketType {
    market,
}

/// Only `limit`.
#[allow(dead_code, non_camel_case_types)]
#[derive(utoipa::ToSchema)]
pub enum LimitType {
    limit,
}

/// A decimal string as the server reads it: digits and an optional fraction (no sign, no
/// exponent). Its value must be > 0, at most 1000000000.00, with at most 2 decimal places.
const DECIMAL_STRING_PATTERN: &str = "^[0-9]+(\\.[0-9]+)?$";

/// A market order: executed at the market price, so it has no `limit_price`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketOrderRequest {
    #[schema(rename = "type", inline)]
    order_type: MarketType,
    side: Side,
    /// ISIN (ISO 6166), 12 characters with a valid check digit; lower case is accepted.
    #[schema(
        example = "US0378331005",
        pattern = "^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$",
        min_length = 12,
        max_length = 12
    )]
    instrument: String,
    /// Prohibited for a market order: absent or `null`.
    #[schema(schema_with = null_only, required = false)]
    limit_price: Option<()>,
    /// A JSON integer, 1 to 1000000000, written as one: `10.0` and `1e3` are refused, although
    /// JSON Schema's `integer` admits them.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    quantity: i64,
    /// Optional time in force: RFC 3339 with an offset (`2026-12-06T15:00:00Z`), in the future,
    /// at most 30 days ahead. After it the order is never sent to the exchange; unless placed by
    /// then it ends `expired`. Absent or `null`: 5 minutes after acceptance (configurable by the
    /// operator).
    // No example: any fixed time is in the past one day, and the document's own example would
    // then be a 422 (the operation's body example leaves `expires_at` out).
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// A limit order: executed at `limit_price` or better.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOrderRequest {
    #[schema(rename = "type", inline)]
    order_type: LimitType,
    side: Side,
    /// ISIN (ISO 6166), 12 characters with a valid check digit; lower case is accepted.
    #[schema(
        example = "US0378331005",
        pattern = "^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$",
        min_length = 12,
        max_length = 12
    )]
    instrument: String,
    /// Required: > 0, at most 1000000000.00, at most 2 decimal places; a JSON number or a
    /// decimal string (never read through a float).
    #[schema(schema_with = limit_price)]
    limit_price: String,
    /// A JSON integer, 1 to 1000000000, written as one: `10.0` and `1e3` are refused, although
    /// JSON Schema's `integer` admits them.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    quantity: i64,
    /// Optional time in force: RFC 3339 with an offset (`2026-12-06T15:00:00Z`), in the future,
    /// at most 30 days ahead. After it the order is never sent to the exchange; unless placed by
    /// then it ends `expired`. Absent or `null`: 30 days after acceptance.
    // No example: any fixed time is in the past one day, and the document's own example would
    // then be a 422 (the operation's body example leaves `expires_at` out).
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// `null` and nothing else.
fn null_only() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Null)
        .description(Some(
            "Prohibited for type `market`: absent or `null` (\"Providing a `limit_price` is \
             prohibited for type `market`\")",
        ))
        .build()
}

/// A price as a JSON number (two decimal places at most) or as a decimal string.
fn limit_price() -> utoipa::openapi::Schema {
    use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0))
                    .maximum(Some(1_000_000_000))
                    .multiple_of(Some(0.01)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(DECIMAL_STRING_PATTERN))
                    .description(Some(
                        "A decimal string (`\"120.50\"`): its value > 0, at most 1000000000.00, at \
                     most 2 decimal places",
                    )),
            )
            .description(Some(
                "Required for type `limit` (\"Attribute `limit_price` is required for type \
             `limit`\"): > 0, at most 1000000000.00, at most 2 decimal places",
            ))
            .examples([serde_json::json!("120.50")])
            .build(),
    )
}
