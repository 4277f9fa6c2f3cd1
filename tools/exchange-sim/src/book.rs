//! The exchange's memory: which client order ids it has accepted, under which exchange order id,
//! and how often each was asked for — the counts tests read to prove "placed exactly once".

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An order as the exchange received it on its first accepted placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    pub exchange_order_id: String,
    pub client_order_id: String,
    pub instrument: String,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub limit_price: Option<String>,
    pub quantity: i64,
}

/// The `GET /stats` document. Keys are client order ids (lower-case hyphenated UUIDs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Times each accepted id was counted as a placement: always 1, because repeats are
    /// absorbed. A value above 1 would mean the exchange executed an order twice.
    pub placements: BTreeMap<String, u64>,
    /// Every authenticated, well-formed `POST /orders` per id, whatever it answered (down,
    /// injected failure, rejection, placement or duplicate).
    pub place_calls: BTreeMap<String, u64>,
    pub total_placed: u64,
    pub total_calls: u64,
    /// Calls for an id that was already placed, answered with the original exchange order id.
    pub duplicates_absorbed: u64,
    /// The largest value in `placements` (0 when nothing was placed).
    pub max_placements_per_order: u64,
}

/// Whether a placement created the order or found it already there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    New(PlacedOrder),
    Duplicate(PlacedOrder),
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    orders: HashMap<Uuid, PlacedOrder>,
    placements: HashMap<Uuid, u64>,
    calls: HashMap<Uuid, u64>,
    duplicates_absorbed: u64,
}

impl Book {
    pub(crate) fn record_call(&mut self, id: Uuid) {
        *self.calls.entry(id).or_default() += 1;
    }

    /// Accepts an order once per client order id. The caller holds the lock for the whole
    /// check-and-insert, so two concurrent first calls still create one order.
    pub(crate) fn accept(
        &mut self,
        id: Uuid,
        order: impl FnOnce(String) -> PlacedOrder,
    ) -> Accepted {
        if let Some(existing) = self.orders.get(&id) {
            self.duplicates_absorbed += 1;
            return Accepted::Duplicate(existing.clone());
        }
        let placed = order(format!("EX-{}", Uuid::new_v4()));
        self.orders.insert(id, placed.clone());
        *self.placements.entry(id).or_default() += 1;
        Accepted::New(placed)
    }

    pub(crate) fn find(&self, id: Uuid) -> Option<PlacedOrder> {
        self.orders.get(&id).cloned()
    }

    pub(crate) fn stats(&self) -> Stats {
        let keyed = |map: &HashMap<Uuid, u64>| -> BTreeMap<String, u64> {
            map.iter().map(|(id, n)| (id.to_string(), *n)).collect()
        };
        Stats {
            placements: keyed(&self.placements),
            place_calls: keyed(&self.calls),
            total_placed: self.placements.values().sum(),
            total_calls: self.calls.values().sum(),
            duplicates_absorbed: self.duplicates_absorbed,
            max_placements_per_order: self.placements.values().copied().max().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: Uuid) -> impl FnOnce(String) -> PlacedOrder {
        move |exchange_order_id| PlacedOrder {
            exchange_order_id,
            client_order_id: id.to_string(),
            instrument: "US0378331005".into(),
            side: "buy".into(),
            order_type: "market".into(),
            limit_price: None,
            quantity: 1,
        }
    }

    #[test]
    fn an_id_is_placed_once_and_repeats_are_absorbed() {
        let mut book = Book::default();
        let id = Uuid::new_v4();
        let other = Uuid::new_v4();
        for _ in 0..3 {
            book.record_call(id);
        }
        let Accepted::New(first) = book.accept(id, order(id)) else {
            panic!("first placement must be new");
        };
        let Accepted::Duplicate(again) = book.accept(id, order(id)) else {
            panic!("second placement must be a duplicate");
        };
        assert_eq!(first, again);
        assert!(first.exchange_order_id.starts_with("EX-"));
        book.record_call(other);

        let stats = book.stats();
        assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
        assert_eq!(stats.place_calls.get(&id.to_string()), Some(&3));
        assert_eq!(stats.place_calls.get(&other.to_string()), Some(&1));
        assert!(!stats.placements.contains_key(&other.to_string()));
        assert_eq!(stats.total_placed, 1);
        assert_eq!(stats.total_calls, 4);
        assert_eq!(stats.duplicates_absorbed, 1);
        assert_eq!(stats.max_placements_per_order, 1);
        assert_eq!(book.find(other), None);
        assert_eq!(book.find(id), Some(first));
    }
}
