//! The SQS message body that carries an order to the placer: to place it, or to cancel what is
//! still open of it at the exchange. It is a wire contract between deployed versions, so it is
//! versioned and only ever grows optional fields.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Order;

/// The current message schema version; a placer refuses versions it does not know (the message
/// then ends in the DLQ and is reported) instead of guessing.
pub const PLACEMENT_MESSAGE_VERSION: u32 = 1;

/// What the placer needs to place an order. The order id is also the client order id the
/// exchange de-duplicates on; the other fields let the placer log and meter without a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementMessage {
    pub version: u32,
    pub order_id: Uuid,
    #[serde(rename = "type")]
    pub order_type: String,
    pub side: String,
    pub instrument: String,
    pub limit_price: Option<String>,
    pub quantity: i64,
    /// Absent for a placement, so that a placement message reads the same to a placer of the
    /// previous release. Such a placer refuses a cancel (an unknown field): the message reaches
    /// the DLQ and the alerter reports it, and nothing is placed by mistake.
    #[serde(default, skip_serializing_if = "MessageAction::is_place")]
    pub action: MessageAction,
}

/// What the placer is asked to do with the order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageAction {
    /// Place it (claim, send, record the exchange's answer).
    #[default]
    Place,
    /// Ask the exchange to cancel its unfilled rest; the exchange's execution report ends it.
    Cancel,
}

impl MessageAction {
    fn is_place(&self) -> bool {
        *self == Self::Place
    }
}

impl PlacementMessage {
    pub fn for_order(order: &Order) -> Self {
        Self {
            version: PLACEMENT_MESSAGE_VERSION,
            order_id: order.id.as_uuid(),
            order_type: order.details.order_type().as_str().to_owned(),
            side: order.details.side().as_str().to_owned(),
            instrument: order.details.instrument().as_str().to_owned(),
            limit_price: order.details.limit_price().map(|p| p.to_string()),
            quantity: order.details.quantity().get(),
            action: MessageAction::Place,
        }
    }

    /// The message that asks the placer to cancel what is still open of a working order.
    pub fn cancel_for(order: &Order) -> Self {
        Self {
            action: MessageAction::Cancel,
            ..Self::for_order(order)
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a PlacementMessage always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeOrderStore;
    use crate::fakes::{client, market_order};

    #[test]
    fn a_placement_message_has_no_action_field_and_a_cancel_says_cancel() {
        let order = FakeOrderStore::new().seed(&client("acme"), &market_order(3));
        let place: serde_json::Value =
            serde_json::from_str(&PlacementMessage::for_order(&order).to_json()).unwrap();
        assert!(place.get("action").is_none(), "{place}");
        let cancel = PlacementMessage::cancel_for(&order).to_json();
        let parsed: PlacementMessage = serde_json::from_str(&cancel).unwrap();
        assert_eq!(parsed.action, MessageAction::Cancel);
        assert_eq!(parsed.order_id, order.id.as_uuid());
        let old: PlacementMessage = serde_json::from_value(place).unwrap();
        assert_eq!(old.action, MessageAction::Place);
    }
}
