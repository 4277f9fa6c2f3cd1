//! Everything the order-placement Lambdas share, in layers that depend inward only:
//!
//! - `domain` (its own crate): order types, validation, the state machine;
//! - `auth`: API key credentials (no I/O);
//! - `ports`: the traits the handlers need from the outside world;
//! - `usecases`: steps several handlers share (send for placement, back-off);
//! - `handlers`: one per trigger (api, placer, alerter, sweeper, migrator) and the admin's;
//! - `adapters`: Postgres, SQS, SNS, Secrets Manager, the HTTP exchange — each implements ports;
//! - `config`: each binary's settings from the environment, building adapters' and handlers'.
//!
//! `telemetry` (tracing, metrics) is used by every layer and uses none. Lambda, the local runner
//! and the tests wire the same handlers to different adapters; see `docs/ARCHITECTURE.md`.

pub mod adapters;
pub mod auth;
pub mod config;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
/// The domain lives in its own crate (no AWS, HTTP or SQL dependencies, so that the fuzzer and
/// the unit tests build it alone); re-exported here so every function names it the same way.
pub use order_domain as domain;
pub mod handlers;
pub mod ports;
pub mod telemetry;
pub mod usecases;
