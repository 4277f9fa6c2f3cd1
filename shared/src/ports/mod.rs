//! The capabilities the handlers need from the outside world, one small trait each. Every trait
//! has one real adapter in `adapters/`; handlers take `Arc<dyn …>` so Lambda, the local runner
//! and the tests wire the very same code to different endpoints.

/// Any error from an adapter's client library, kept whole so that the log shows the cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

mod access;
mod alerts;
mod breaker;
mod client_orders;
mod exchange;
mod executions;
mod incidents;
mod live_connections;
mod order_lifecycle;
mod order_queue;
mod order_store;
mod order_updates;
pub mod placement_message;

pub use access::*;
pub use alerts::*;
pub use breaker::*;
pub use client_orders::*;
pub use exchange::*;
pub use executions::*;
pub use incidents::*;
pub use live_connections::*;
pub use order_lifecycle::*;
pub use order_queue::*;
pub use order_store::*;
pub use order_updates::*;
pub use placement_message::{MessageAction, PLACEMENT_MESSAGE_VERSION, PlacementMessage};
