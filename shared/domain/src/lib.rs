//! `order-domain`: the order domain: types that can only hold valid values, the request parser that builds them
//! once at the edge, and the order state machine. Nothing here knows about HTTP, SQL or AWS, so the
//! rules can be tested (and changed) without any of them.

mod client;
mod execution;
mod field_error;
mod fills;
mod idempotency;
mod isin;
mod new_order;
mod order;
mod price;
mod quantity;
mod status;
mod time_in_force;

pub use client::ClientId;
pub use execution::{ExecutionEvent, ExecutionId, ExecutionKind, ExecutionReport, Shares};
pub use field_error::{FieldError, OrderRejection};
pub use fills::{AVERAGE_PRICE_PLACES, Applied, FillState, Settlement, Waiting, apply_in_sequence};
pub use idempotency::IdempotencyKey;
pub use isin::Isin;
pub use new_order::{NewOrder, OrderType, Side, repeated_attribute_error, repeated_attributes};
pub use order::{Order, OrderId};
pub use price::Price;
pub use quantity::Quantity;
pub use status::{ExpiryRule, OrderStatus, Transition};
pub use time_in_force::{DEFAULT_MARKET_ORDER_TTL, ExpiryPolicy, MAX_TIME_IN_FORCE};

/// The exact decimal type of prices, for callers that check bounds.
pub use rust_decimal::Decimal;
