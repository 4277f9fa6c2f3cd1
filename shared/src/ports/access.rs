//! API keys and per-client limits: the api's admission check and the admin's registry.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::auth::{ApiKey, KeyId};
use crate::domain::ClientId;

/// What a request asks for, as far as the per-client limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Reads: count against the request rate only.
    Read,
    /// `POST /orders`: also checked against the client's open-order limit.
    PlaceOrder,
}

/// The answer to "may this request go ahead?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The key is valid and the client is within its limits.
    Admitted(ClientId),
    /// No valid key: unknown, revoked or wrong secret (deliberately one answer for all).
    Unauthenticated,
    /// Over the client's requests-per-second limit.
    RateLimited { limit: u32, retry_after: Duration },
    /// The client has `limit` orders that are not final yet.
    TooManyOpenOrders { limit: u32, retry_after: Duration },
}

/// Authentication and the per-client limits, in one round trip per request. The state lives in
/// the database, not in memory: every Lambda instance must see the same counts.
#[async_trait]
pub trait AccessControl: Send + Sync {
    async fn admit(&self, key: &ApiKey, kind: RequestKind) -> Result<Admission, StoreError>;
}

/// A client and its limits, as the admin tool shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: ClientId,
    pub requests_per_second: u32,
    pub max_open_orders: u32,
    pub created_at: time::OffsetDateTime,
}

/// Limits to set; `None` keeps the current (or, for a new client, the default) value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientLimits {
    pub requests_per_second: Option<u32>,
    pub max_open_orders: Option<u32>,
}

/// An API key as the admin tool lists it: never the secret, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub client_id: ClientId,
    pub label: String,
    pub created_at: time::OffsetDateTime,
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// The admin's side of clients and keys (the `orders-admin` tool).
#[async_trait]
pub trait ClientRegistry: Send + Sync {
    /// Creates the client if it does not exist and applies the given limits either way.
    async fn upsert_client(
        &self,
        id: &ClientId,
        limits: ClientLimits,
    ) -> Result<ClientRecord, StoreError>;

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Stores a new key's hash for an existing client; `None` if there is no such client.
    async fn create_key(
        &self,
        client: &ClientId,
        key: &ApiKey,
        label: &str,
    ) -> Result<Option<KeyRecord>, StoreError>;

    async fn list_keys(&self, client: Option<&ClientId>) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes a key for good; `None` if there is no such key (revoking twice keeps the first
    /// revocation time).
    async fn revoke_key(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
}
