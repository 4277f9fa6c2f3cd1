//! The SQS message body that carries an order to the placer. It is a wire contract between
//! deployed versions, so it is versioned and only ever grows optional fields.

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
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a PlacementMessage always serialises")
    }
}
