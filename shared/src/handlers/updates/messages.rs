//! What a live-update client receives: one JSON text message per order change.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::OrderStatus;
use crate::ports::OrderUpdate;

/// One change of one of the client's orders.
#[derive(Debug, Serialize)]
pub struct UpdateMessage<'a> {
    /// Always `order_update`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The audit event's id: reconnect with `?after=<event_id>` to resume after it.
    pub event_id: i64,
    pub order_id: Uuid,
    /// The status before; `null` for the order's acceptance.
    pub from: Option<OrderStatus>,
    /// The status after (`pending` on acceptance; `placed`, `rejected`, `failed`, `expired`,
    /// `canceled`, `partially_filled`, `filled`, …).
    pub status: OrderStatus,
    pub reason: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl<'a> From<&'a OrderUpdate> for UpdateMessage<'a> {
    fn from(update: &'a OrderUpdate) -> Self {
        Self {
            kind: "order_update",
            event_id: update.event_id,
            order_id: update.order_id.as_uuid(),
            from: update.from,
            status: update.status,
            reason: &update.reason,
            at: update.at.to_offset(time::UtcOffset::UTC),
        }
    }
}

impl UpdateMessage<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an update message always serialises")
    }
}
