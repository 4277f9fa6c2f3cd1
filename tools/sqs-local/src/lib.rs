//! An in-memory, SQS-compatible HTTP endpoint for local runs, tests and benchmarks, so that they
//! measure this project rather than an emulator (moto walks the whole queue on every send) and
//! need no Python.
//!
//! It speaks the AWS JSON 1.0 protocol the AWS SDKs use for SQS and covers what this system and
//! its tools use: queues with attributes (create, get URL, get/set attributes, list, delete,
//! purge, tags), send and receive with message attributes, delays, long polling, visibility
//! timeouts, receive counts, dead-letter queues (redrive policies) and DLQ redrive (message move
//! tasks), with the error codes and statuses the SDKs map. No persistence, no FIFO queues, no
//! authentication. `docs/SQS-LOCAL.md` lists the behaviour in detail, and the conformance suite
//! (`tests/conformance.rs`) checks it against moto.
//!
//! - [`broker`]: the queues and the operations on them; every operation is O(1) or O(log n).
//! - [`message`], [`attribute`] and [`checksum`]: what a message and its attributes are, how a
//!   message is validated, its MD5 digests.
//! - [`protocol`]: the request and result documents.
//! - [`error`]: errors as the SDKs expect them.
//! - `http`: the axum routes; `wire`: the content type they share with error responses; `id`:
//!   random ids (messages, requests, move tasks).
//! - `server`: [`router`], [`spawn`] and [`SqsLocalHandle`], re-exported here.
//! - `sdk` (feature `sdk`): embedding behind the AWS SDK, for the local runner.
//!
//! Imports point one way, with no cycles: in the order `sdk`, `server`, `http`, `broker`,
//! `message`, `protocol`, `checksum`, `attribute`, `error`, `wire`, `id`, each module imports only
//! modules listed after it (the same holds inside `broker`, see there). This file only declares
//! modules and re-exports.
//!
//! Embed it with [`spawn`] (port 0 picks a free port) or run the `sqs-local` binary.

pub mod attribute;
pub mod broker;
pub mod checksum;
pub mod error;
mod http;
mod id;
pub mod message;
pub mod protocol;
#[cfg(feature = "sdk")]
pub mod sdk;
mod server;
mod wire;

pub use broker::{ACCOUNT_ID, Broker};
pub use error::{ErrorKind, SqsError};
pub use server::{DEFAULT_LISTEN, SqsLocalHandle, router, spawn};
