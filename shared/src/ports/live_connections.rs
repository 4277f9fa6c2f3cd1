//! The clients connected to the live order updates through API Gateway's WebSocket API: who is
//! connected (`LiveConnections`, kept by `$connect`/`$disconnect`) and how a message reaches one
//! connection (`ConnectionPush`, the API Gateway Management API).

use async_trait::async_trait;

use super::{BoxError, StoreError};
use crate::auth::KeyId;
use crate::domain::ClientId;

/// One connection, as `$connect` stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConnection {
    /// API Gateway's connection id.
    pub connection_id: String,
    pub client_id: ClientId,
    /// The key it connected with (a revoked key's connections are closed).
    pub key_id: KeyId,
    /// `?after=<event_id>`: send the client's events after it first. `None`: live events only.
    pub resume_after: Option<i64>,
}

/// The connections table.
#[async_trait]
pub trait LiveConnections: Send + Sync {
    /// Stores a checked connection (again: the same row).
    async fn connect(&self, connection: &LiveConnection) -> Result<(), StoreError>;
    /// Forgets a connection; forgetting an unknown one is no error.
    async fn disconnect(&self, connection_id: &str) -> Result<(), StoreError>;
    /// Every stored connection.
    async fn all(&self) -> Result<Vec<LiveConnection>, StoreError>;
    /// The connections whose key has been revoked (or deleted) since they connected.
    async fn revoked(&self) -> Result<Vec<String>, StoreError>;
}

/// Why a message did not reach a connection.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is gone (API Gateway's `410 Gone`): forget it.
    #[error("the connection is gone")]
    Gone,
    /// Anything else (throttling, a network error): the fan-out tries the next message later.
    #[error("could not reach the connection")]
    Failed(#[source] BoxError),
}

/// Messages to one WebSocket connection.
#[async_trait]
pub trait ConnectionPush: Send + Sync {
    async fn push(&self, connection_id: &str, message: &str) -> Result<(), PushError>;
    /// Closes the connection from the server side (a revoked key).
    async fn close(&self, connection_id: &str) -> Result<(), PushError>;
}
