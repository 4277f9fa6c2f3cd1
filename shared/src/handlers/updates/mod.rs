//! Live order updates pushed to clients over a WebSocket (issue #16): every change of a client's
//! own orders, from the audit trail, each with its event id; a client that reconnects with the
//! last event id it saw first gets everything after it, then the live stream.
//!
//! - [`hub`]: one poller per process reads new audit events in id order (no `LISTEN`, which
//!   would pin RDS Proxy) up to the [`UpdateHorizon`](crate::usecases::update_horizon), and
//!   hands them to every session.
//! - [`session`]: one connection — authenticated by API key, catch-up from the database, then
//!   the live events of its own client only; its key is checked again while it lasts, and a
//!   revoked key's connection is closed.
//! - [`fanout`]: the same stream in AWS, where a connection is a row of `live_connections` and
//!   each message a call to the API Gateway Management API.
//! - [`connections`]: API Gateway's `$connect` and `$disconnect`, which keep that table.
//! - [`messages`]: the JSON a client receives.

pub mod connections;
pub mod credentials;
pub mod fanout;
pub mod hub;
pub mod messages;
pub mod session;

pub use hub::{HubSettings, UpdateHub};
pub use session::{UpdatesContext, router};
