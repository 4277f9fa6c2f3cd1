//! One adapter per port, each wrapping a real client: Postgres, SQS, Secrets Manager.

pub mod postgres;
pub mod secrets;
pub mod sqs;
