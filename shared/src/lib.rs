//! Everything the order-placement Lambdas share: the domain, the ports and their adapters, and
//! one handler per trigger, so that Lambda, the local runner and the tests run the same code.

pub mod adapters;
pub mod admin;
pub mod alerter;
pub mod api;
pub mod auth;
pub mod backoff;
pub mod config;
/// The domain lives in its own crate (no AWS, HTTP or SQL dependencies, so that the fuzzer and
/// the unit tests build it alone); re-exported here so every function names it the same way.
pub use order_domain as domain;
pub mod metrics;
pub mod migrator;
pub mod placement_message;
pub mod placer;
pub mod ports;
pub mod shutdown;
pub mod sqs_event_source;
pub mod sweeper;
pub mod telemetry;
