//! The local system as a library: its configuration (`config`, every environment variable in
//! one place), its wiring (`system::LocalSystem`), and the two pieces that stand in for AWS
//! locally — Lambda's SQS event source mapping (`event_source`) and an alert publisher into a
//! queue where SNS cannot deliver (`alerts`). Used by the runner's `main`, by the integration
//! test harness and (through the binary) by the chaos soak; never linked into a Lambda.

pub mod alerts;
pub mod config;
pub mod event_source;
pub mod system;

pub use config::{Background, ExchangeChoice, LocalConfig, LocalIngester, LocalKey};
pub use system::LocalSystem;
