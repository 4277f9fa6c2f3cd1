//! Everything the order-placement Lambdas share: the domain, the ports and their adapters, and
//! one handler per trigger, so that Lambda, the local runner and the tests run the same code.

pub mod adapters;
pub mod admin;
pub mod alerter;
pub mod api;
pub mod backoff;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod migrator;
pub mod placement_message;
pub mod placer;
pub mod ports;
pub mod sqs_event_source;
pub mod sweeper;
pub mod telemetry;
