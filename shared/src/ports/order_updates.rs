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

/// Events after a point, read in one snapshot, with what the stream needs to know about the
/// transactions that may still add events below the newest one read.
#[derive(Debug, Clone, Default)]
pub struct UpdatePoll {
    pub updates: Vec<OrderUpdate>,
    /// Every transaction with a smaller id had ended when the snapshot was taken.
    pub xmin: u64,
    /// A transaction id above that of every transaction that had started when the read was made
    /// (so above the writer of any event id missing among `updates`). Not the snapshot's `xmax`:
    /// Postgres sets that to the last *completed* id + 1, and a transaction still running may
    /// hold an id at or above it.
    pub gap_bound: u64,
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
