//! The HTTP API against a real Postgres and a real (moto) SQS queue: what a client sees, and
//! what every request leaves behind in the `orders` and `order_events` tables and on the queue.
//! Each test gets its own database and queue.
//!
//! One test binary, one module per topic; the harness and the shared helpers are in `helpers`.

mod helpers;

mod bad_input;
mod cancel;
mod create_order;
mod fills;
mod health_and_routing;
mod history;
mod idempotency;
mod idempotency_retention;
mod outages;
mod read_and_list;
