//! The exchange's memory: which client order ids it has accepted, under which exchange order id,
//! and how often each was asked for — the counts tests read to prove "placed exactly once" — plus
//! the calls per minute a soak reads to show how hard the exchange was hit during an outage.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
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
    /// Its time in force (RFC 3339, UTC), if it came with one.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The `GET /stats` document. Keys of the per-id maps are client order ids (lower-case
/// hyphenated UUIDs); keys of the per-minute maps are the minute's start (RFC 3339, UTC). Every
/// counter only grows, so a soak can sample it and take differences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Times each accepted id was counted as a placement: always 1, because repeats are
    /// absorbed. A value above 1 would mean the exchange executed an order twice.
    pub placements: BTreeMap<String, u64>,
    /// Every authenticated, well-formed `POST /orders` per id, whatever it answered (down,
    /// injected failure, refusal, placement or duplicate): the attempts.
    pub place_calls: BTreeMap<String, u64>,
    pub total_placed: u64,
    /// The sum of `place_calls`: every placement attempt so far.
    pub total_calls: u64,
    /// Calls for an id that was already placed, answered with the original exchange order id.
    pub duplicates_absorbed: u64,
    /// The largest value in `placements` (0 when nothing was placed).
    pub max_placements_per_order: u64,
    /// Placements refused because their `expires_at` had passed, per id (never placed).
    pub expired_refusals: BTreeMap<String, u64>,
    pub total_expired_refusals: u64,
    /// Placements refused because the instrument is not tradable.
    pub total_instrument_refusals: u64,
    /// Accepted placements whose answer was held back (`timeout_after_accept`).
    pub total_answers_held_back: u64,
    /// Accepted placements whose connection was closed unanswered (`drop_after_accept`).
    pub total_connections_dropped: u64,
    /// Placement attempts per minute, as `place_calls` counts them.
    pub calls_per_minute: BTreeMap<String, u64>,
    /// Authenticated lookups (`GET /orders/{id}`), whatever they answered.
    pub total_lookups: u64,
    pub lookups_per_minute: BTreeMap<String, u64>,
}

/// Why the exchange refused an order for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its `expires_at` had passed when it arrived.
    Expired,
    /// The instrument is on the refusal list.
    InstrumentNotTradable,
}

/// What became of a placement that got past the infrastructure failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    New(PlacedOrder),
    /// The id was accepted before: the original order, whatever the new call says.
    Duplicate(PlacedOrder),
    Refused(Refusal),
}

/// An answer the simulator accepted and then did not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Withheld {
    HeldBack,
    Dropped,
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    orders: HashMap<Uuid, PlacedOrder>,
    placements: HashMap<Uuid, u64>,
    calls: HashMap<Uuid, u64>,
    duplicates_absorbed: u64,
    expired_refusals: HashMap<Uuid, u64>,
    instrument_refusals: u64,
    held_back: u64,
    dropped: u64,
    /// Keyed by whole minutes since the Unix epoch.
    calls_per_minute: BTreeMap<i64, u64>,
    lookups: u64,
    lookups_per_minute: BTreeMap<i64, u64>,
}

impl Book {
    pub(crate) fn record_call(&mut self, id: Uuid, at: OffsetDateTime) {
        *self.calls.entry(id).or_default() += 1;
        *self.calls_per_minute.entry(minute(at)).or_default() += 1;
    }

    pub(crate) fn record_lookup(&mut self, at: OffsetDateTime) {
        self.lookups += 1;
        *self.lookups_per_minute.entry(minute(at)).or_default() += 1;
    }

    pub(crate) fn record_withheld(&mut self, withheld: Withheld) {
        match withheld {
            Withheld::HeldBack => self.held_back += 1,
            Withheld::Dropped => self.dropped += 1,
        }
    }

    /// Accepts an order once per client order id. The caller holds the lock for the whole
    /// check-and-insert, so two concurrent first calls still create one order. An id accepted
    /// before gets its original order back before `refuse` is asked: a retry of an order the
    /// exchange already has is not refused because it has expired since (it was placed in time).
    pub(crate) fn accept(
        &mut self,
        id: Uuid,
        refuse: impl FnOnce() -> Option<Refusal>,
        order: impl FnOnce(String) -> PlacedOrder,
    ) -> Accepted {
        if let Some(existing) = self.orders.get(&id) {
            self.duplicates_absorbed += 1;
            return Accepted::Duplicate(existing.clone());
        }
        if let Some(refusal) = refuse() {
            match refusal {
                Refusal::Expired => *self.expired_refusals.entry(id).or_default() += 1,
                Refusal::InstrumentNotTradable => self.instrument_refusals += 1,
            }
            return Accepted::Refused(refusal);
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
        let per_minute = |map: &BTreeMap<i64, u64>| -> BTreeMap<String, u64> {
            map.iter().map(|(m, n)| (minute_label(*m), *n)).collect()
        };
        Stats {
            placements: keyed(&self.placements),
            place_calls: keyed(&self.calls),
            total_placed: self.placements.values().sum(),
            total_calls: self.calls.values().sum(),
            duplicates_absorbed: self.duplicates_absorbed,
            max_placements_per_order: self.placements.values().copied().max().unwrap_or(0),
            expired_refusals: keyed(&self.expired_refusals),
            total_expired_refusals: self.expired_refusals.values().sum(),
            total_instrument_refusals: self.instrument_refusals,
            total_answers_held_back: self.held_back,
            total_connections_dropped: self.dropped,
            calls_per_minute: per_minute(&self.calls_per_minute),
            total_lookups: self.lookups,
            lookups_per_minute: per_minute(&self.lookups_per_minute),
        }
    }
}

fn minute(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

/// The start of a minute as RFC 3339 in UTC (`2025-01-01T12:34:00Z`); sorts as it reads.
fn minute_label(minute: i64) -> String {
    OffsetDateTime::from_unix_timestamp(minute * 60)
        .ok()
        .and_then(|start| start.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("minute {minute}"))
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
            expires_at: None,
        }
    }

    fn accept(book: &mut Book, id: Uuid) -> Accepted {
        book.accept(id, || None, order(id))
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn an_id_is_placed_once_and_repeats_are_absorbed() {
        let mut book = Book::default();
        let id = Uuid::new_v4();
        let other = Uuid::new_v4();
        for _ in 0..3 {
            book.record_call(id, now());
        }
        let Accepted::New(first) = accept(&mut book, id) else {
            panic!("first placement must be new");
        };
        let Accepted::Duplicate(again) = accept(&mut book, id) else {
            panic!("second placement must be a duplicate");
        };
        assert_eq!(first, again);
        assert!(first.exchange_order_id.starts_with("EX-"));
        book.record_call(other, now());

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

    #[test]
    fn refusals_are_counted_and_never_placed_but_an_accepted_id_is_not_refused() {
        let mut book = Book::default();
        let late = Uuid::new_v4();
        let placed = Uuid::new_v4();
        for _ in 0..2 {
            assert_eq!(
                book.accept(late, || Some(Refusal::Expired), order(late)),
                Accepted::Refused(Refusal::Expired)
            );
        }
        assert_eq!(
            book.accept(
                placed,
                || Some(Refusal::InstrumentNotTradable),
                order(placed)
            ),
            Accepted::Refused(Refusal::InstrumentNotTradable)
        );
        let Accepted::New(first) = accept(&mut book, placed) else {
            panic!("must be placed");
        };
        // Placed in time; a retry after its expiry still gets the original answer.
        assert_eq!(
            book.accept(placed, || Some(Refusal::Expired), order(placed)),
            Accepted::Duplicate(first)
        );

        let stats = book.stats();
        assert_eq!(stats.expired_refusals.get(&late.to_string()), Some(&2));
        assert_eq!(stats.total_expired_refusals, 2);
        assert_eq!(stats.total_instrument_refusals, 1);
        assert!(!stats.placements.contains_key(&late.to_string()));
        assert_eq!(stats.total_placed, 1);
        assert_eq!(book.find(late), None);
    }

    #[test]
    fn calls_and_lookups_are_counted_per_minute() {
        let mut book = Book::default();
        let id = Uuid::new_v4();
        let at = time::macros::datetime!(2030-05-06 07:08:59 UTC);
        book.record_call(id, at);
        book.record_call(id, at + time::Duration::seconds(1));
        book.record_call(id, at + time::Duration::seconds(2));
        book.record_lookup(at);
        book.record_withheld(Withheld::HeldBack);
        book.record_withheld(Withheld::Dropped);
        book.record_withheld(Withheld::Dropped);

        let stats = book.stats();
        assert_eq!(
            stats.calls_per_minute,
            BTreeMap::from([
                ("2030-05-06T07:08:00Z".to_string(), 1),
                ("2030-05-06T07:09:00Z".to_string(), 2),
            ])
        );
        assert_eq!(stats.total_calls, 3);
        assert_eq!(stats.total_lookups, 1);
        assert_eq!(
            stats.lookups_per_minute,
            BTreeMap::from([("2030-05-06T07:08:00Z".to_string(), 1)])
        );
        assert_eq!(stats.total_answers_held_back, 1);
        assert_eq!(stats.total_connections_dropped, 2);
    }
}
