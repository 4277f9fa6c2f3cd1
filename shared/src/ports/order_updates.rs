//! Order changes as clients are told about them live: the audit trail (`order_events`) read in
//! event-id order, for the live-update stream (issue #16).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{ClientId, OrderId, OrderStatus};

/// One change of one order: an `order_events` row with its order's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUpdate {
    /// The audit event's id: increasing in the order the events were written, the client's
    /// resume point.
    pub event_id: i64,
    pub order_id: OrderId,
    pub client_id: ClientId,
    /// `None` for the order's acceptance.
    pub from: Option<OrderStatus>,
    pub status: OrderStatus,
    pub reason: String,
    pub at: OffsetDateTime,
}

/// Events after a point, read in one snapshot, with that snapshot's transaction bounds: every
/// transaction below `xmin` had finished when it was taken, none at or above `xmax` had started.
#[derive(Debug, Clone, Default)]
pub struct UpdatePoll {
    pub updates: Vec<OrderUpdate>,
    pub xmin: u64,
    pub xmax: u64,
}

/// The store side of the live-update stream. No session state: each call is one statement.
#[async_trait]
pub trait OrderUpdateStore: Send + Sync {
    /// Up to `limit` events with an id above `after`, in id order, with the read's snapshot.
    async fn updates_after(&self, after: i64, limit: u32) -> Result<UpdatePoll, StoreError>;

    /// Up to `limit` of `client`'s events with an id above `after` and at most `up_to`, in id
    /// order (a reconnecting client's catch-up, bounded by what the stream has delivered).
    async fn client_updates(
        &self,
        client: &ClientId,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<OrderUpdate>, StoreError>;

    /// The newest event id (0 when there is none): where the stream starts.
    async fn latest_event_id(&self) -> Result<i64, StoreError>;
}
