//! In-memory fakes of the ports, for fast tests of the handlers without Postgres, SQS, SNS or an
//! exchange. Each keeps the contract documented on its port trait (the order store's conditional
//! transitions, idempotency and leases above all) and adds what a test needs: a way to look
//! inside (what was stored, sent, published) and a way to make it fail.
//!
//! Built for this crate's unit tests, and for other crates' tests with the `fakes` feature:
//! `order-shared = { workspace = true, features = ["fakes"] }` in their `[dev-dependencies]`.
//! They replace no integration test against the real endpoints: they add speed.

mod access;
mod alerts;
mod breaker;
mod client_orders;
mod exchange;
mod fixtures;
mod live;
mod order_queue;
mod order_store;

pub use access::FakeAccess;
pub use alerts::FakeAlerts;
pub use breaker::FakeBreaker;
pub use client_orders::FakeClientOrders;
pub use exchange::FakeExchange;
pub use fixtures::{
    cancel_record, canceled_report, client, fill_report, limit_order, market_order,
    placement_record, raw_record, sqs_event,
};
pub use live::{FakeLiveConnections, FakeOrderUpdates, FakePush, PushAnswer};
pub use order_queue::{FakeQueue, FakeRetries, QueueBehaviour};
pub use order_store::{AuditEvent, FakeOrderStore, StoreOp};

use crate::ports::BoxError;

/// The error every fake returns when it is told to fail.
fn outage(what: &str) -> BoxError {
    format!("{what} is down (fake outage)").into()
}
