//! The exchange working the orders it accepted: market orders fill at once (in 1 to
//! `market_fills_max` reports), limit orders fill over time at their limit price, orders with an
//! `expires_at` expire, and a cancel cancels the unfilled rest or is refused when nothing is left
//! to cancel. Every change is published on the feed while the market's lock is held, so the
//! reports of one order are in the feed in the order they happened. The market also counts, per
//! order, what it filled — the truth an ingester's totals are compared with.

use std::collections::{BTreeMap, HashMap, HashSet};

use order_shared::domain::{
    Decimal, ExecutionEvent, ExecutionId, OrderId, Price, Quantity, Shares,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::book::PlacedOrder;
use crate::feed::{Draft, FeedWriter};
use crate::rng::XorShift;

/// Where an order stands at the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkState {
    /// Open: some or all of it can still fill.
    Working,
    Filled,
    /// Its unfilled rest was canceled.
    Canceled,
    /// Its unfilled rest expired.
    Expired,
}

/// One order's executions as `GET /feed/stats` (and a lookup) show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderExecutions {
    pub exchange_order_id: String,
    pub quantity: i64,
    /// Shares filled, counted once per fill (an injected duplicate report is not a fill).
    pub filled_quantity: i64,
    pub state: WorkState,
    /// Fill reports (partial or final) published for it, duplicates not included.
    pub fills: u64,
    /// Whether the load mode made it up (not placed through `POST /orders`).
    pub synthetic: bool,
}

/// What became of a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelAnswer {
    /// Canceled now (`canceled` > 0 shares, a report published) or before (the same numbers
    /// again, nothing published).
    Canceled {
        exchange_order_id: String,
        canceled: i64,
        filled: i64,
    },
    /// Nothing left to cancel: a `cancel_refused` report was published.
    TooLate {
        exchange_order_id: String,
        state: WorkState,
        filled: i64,
    },
    Unknown,
}

#[derive(Debug)]
struct Working {
    exchange_order_id: String,
    quantity: i64,
    filled: i64,
    /// Shares canceled or expired (the rest when the order ended so).
    closed: i64,
    state: WorkState,
    /// `None` for a market order.
    limit_price: Option<Price>,
    reference_price: Price,
    expires_at: Option<OffsetDateTime>,
    fills: u64,
    synthetic: bool,
}

impl Working {
    fn remaining(&self) -> i64 {
        self.quantity - self.filled - self.closed
    }

    fn view(&self) -> OrderExecutions {
        OrderExecutions {
            exchange_order_id: self.exchange_order_id.clone(),
            quantity: self.quantity,
            filled_quantity: self.filled,
            state: self.state,
            fills: self.fills,
            synthetic: self.synthetic,
        }
    }
}

/// The load mode's orders in flight: filled one share per report, in turn.
#[derive(Debug)]
pub(crate) struct LoadPlan {
    pub(crate) fills_per_order: i64,
    pub(crate) concurrent_orders: usize,
    /// Ids to use first (the caller's), then fresh ones.
    pub(crate) ids: std::vec::IntoIter<Uuid>,
    active: Vec<Uuid>,
    next: usize,
}

impl LoadPlan {
    pub(crate) fn new(fills_per_order: i64, concurrent_orders: usize, ids: Vec<Uuid>) -> Self {
        Self {
            fills_per_order: fills_per_order.max(1),
            concurrent_orders: concurrent_orders.max(1),
            ids: ids.into_iter(),
            active: Vec::new(),
            next: 0,
        }
    }
}

/// Totals over all orders, for `GET /feed/stats`.
#[derive(Debug, Default)]
pub(crate) struct MarketCounts {
    pub(crate) orders: BTreeMap<String, OrderExecutions>,
    pub(crate) orders_by_state: BTreeMap<WorkState, u64>,
    pub(crate) total_filled_quantity: i64,
    pub(crate) cancels_accepted: u64,
    pub(crate) cancels_refused: u64,
}

#[derive(Default)]
pub(crate) struct Market {
    orders: HashMap<Uuid, Working>,
    /// Placed orders still working: what the engine looks at on every interval.
    open: HashSet<Uuid>,
    cancels_accepted: u64,
    cancels_refused: u64,
}

impl Market {
    /// Starts working an order the exchange just accepted. A market order fills at once.
    pub(crate) fn open(
        &mut self,
        placed: &PlacedOrder,
        id: Uuid,
        now: OffsetDateTime,
        market_fills_max: u32,
        rng: &mut XorShift,
        feed: &mut FeedWriter<'_>,
    ) {
        if self.orders.contains_key(&id) {
            return;
        }
        let limit_price = placed
            .limit_price
            .as_deref()
            .and_then(|text| Price::parse(text).ok());
        let expires_at = placed.expires_at.as_deref().and_then(|text| {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
        });
        let order = Working {
            exchange_order_id: placed.exchange_order_id.clone(),
            quantity: placed.quantity,
            filled: 0,
            closed: 0,
            state: WorkState::Working,
            limit_price,
            reference_price: reference_price(&placed.instrument),
            expires_at,
            fills: 0,
            synthetic: false,
        };
        let is_market = order.limit_price.is_none();
        self.orders.insert(id, order);
        if is_market {
            let quantity = placed.quantity;
            let pieces = i64::from(market_fills_max.max(1)).min(quantity);
            let mut pieces = rng.one_to(pieces);
            while pieces > 0 {
                let remaining = self.orders[&id].remaining();
                // Each piece leaves at least one share for every piece after it.
                let part = if pieces == 1 {
                    remaining
                } else {
                    rng.one_to(remaining - (pieces - 1))
                };
                let price = jitter(self.orders[&id].reference_price, rng);
                self.fill(id, part, price, now, feed);
                pieces -= 1;
            }
        } else {
            self.open.insert(id);
        }
    }

    /// One interval of the exchange's life: expiries first, then, with probability
    /// `limit_fill_rate`, a fill for each working limit order (at most 60 % of its rest,
    /// rounded up).
    pub(crate) fn tick(
        &mut self,
        now: OffsetDateTime,
        limit_fill_rate: f64,
        rng: &mut XorShift,
        feed: &mut FeedWriter<'_>,
    ) {
        let mut open: Vec<Uuid> = self.open.iter().copied().collect();
        // The same order every time for the same set, so that runs are easier to follow.
        open.sort_unstable();
        for id in open {
            let order = &self.orders[&id];
            if order.expires_at.is_some_and(|expiry| expiry <= now) {
                self.close(id, WorkState::Expired, now, feed);
                continue;
            }
            if let Some(price) = order.limit_price {
                if !rng.chance(limit_fill_rate) {
                    continue;
                }
                let remaining = order.remaining();
                let most = (remaining * 3 + 4) / 5;
                let part = rng.one_to(most).min(remaining);
                self.fill(id, part, price, now, feed);
            }
        }
    }

    /// Cancels the order's unfilled rest. Idempotent: a canceled order is canceled again with
    /// the same answer and no new report.
    pub(crate) fn cancel(
        &mut self,
        id: Uuid,
        now: OffsetDateTime,
        feed: &mut FeedWriter<'_>,
    ) -> CancelAnswer {
        let Some(order) = self.orders.get(&id) else {
            return CancelAnswer::Unknown;
        };
        match order.state {
            WorkState::Working => {
                self.close(id, WorkState::Canceled, now, feed);
                self.cancels_accepted += 1;
                let order = &self.orders[&id];
                CancelAnswer::Canceled {
                    exchange_order_id: order.exchange_order_id.clone(),
                    canceled: order.closed,
                    filled: order.filled,
                }
            }
            WorkState::Canceled => {
                self.cancels_accepted += 1;
                CancelAnswer::Canceled {
                    exchange_order_id: order.exchange_order_id.clone(),
                    canceled: order.closed,
                    filled: order.filled,
                }
            }
            state @ (WorkState::Filled | WorkState::Expired) => {
                let answer = CancelAnswer::TooLate {
                    exchange_order_id: order.exchange_order_id.clone(),
                    state,
                    filled: order.filled,
                };
                let draft = Draft {
                    execution_id: execution_id(),
                    client_order_id: OrderId::from(id),
                    exchange_order_id: order.exchange_order_id.clone(),
                    event: ExecutionEvent::CancelRefused,
                    cumulative: shares(order.filled),
                    remaining: Shares::ZERO,
                    time: now,
                };
                feed.publish(draft);
                self.cancels_refused += 1;
                answer
            }
        }
    }

    /// Publishes up to `count` load-mode reports (one share filled each, orders in turn) and
    /// returns how many it published.
    pub(crate) fn load_step(
        &mut self,
        plan: &mut LoadPlan,
        count: u64,
        now: OffsetDateTime,
        rng: &mut XorShift,
        feed: &mut FeedWriter<'_>,
    ) -> u64 {
        while plan.active.len() < plan.concurrent_orders {
            let id = self.new_synthetic(plan, rng);
            plan.active.push(id);
        }
        for _ in 0..count {
            if plan.next >= plan.active.len() {
                plan.next = 0;
            }
            let id = plan.active[plan.next];
            let price = jitter(self.orders[&id].reference_price, rng);
            self.fill(id, 1, price, now, feed);
            if self.orders[&id].state != WorkState::Working {
                // Its slot goes to a new order, whose turn comes with the slot's.
                plan.active[plan.next] = self.new_synthetic(plan, rng);
            }
            plan.next += 1;
        }
        count
    }

    fn new_synthetic(&mut self, plan: &mut LoadPlan, rng: &mut XorShift) -> Uuid {
        let id = loop {
            let id = plan.ids.next().unwrap_or_else(Uuid::now_v7);
            if !self.orders.contains_key(&id) {
                break id;
            }
        };
        let cents = 5_000 + (rng.next_u64() % 20_000) as i64;
        self.orders.insert(
            id,
            Working {
                exchange_order_id: format!("EX-{}", Uuid::now_v7()),
                quantity: plan.fills_per_order,
                filled: 0,
                closed: 0,
                state: WorkState::Working,
                limit_price: None,
                reference_price: Price::try_from(Decimal::new(cents, 2))
                    .expect("50.00 to 249.99 is a price"),
                expires_at: None,
                fills: 0,
                synthetic: true,
            },
        );
        id
    }

    /// Whether any of these ids is already an order here.
    pub(crate) fn knows_any(&self, ids: &[Uuid]) -> Option<Uuid> {
        ids.iter().copied().find(|id| self.orders.contains_key(id))
    }

    pub(crate) fn executions(&self, id: Uuid) -> Option<OrderExecutions> {
        self.orders.get(&id).map(Working::view)
    }

    pub(crate) fn counts(&self, with_orders: bool) -> MarketCounts {
        let mut counts = MarketCounts {
            cancels_accepted: self.cancels_accepted,
            cancels_refused: self.cancels_refused,
            ..MarketCounts::default()
        };
        for (id, order) in &self.orders {
            *counts.orders_by_state.entry(order.state).or_default() += 1;
            counts.total_filled_quantity += order.filled;
            if with_orders {
                counts.orders.insert(id.to_string(), order.view());
            }
        }
        counts
    }

    fn fill(
        &mut self,
        id: Uuid,
        quantity: i64,
        price: Price,
        now: OffsetDateTime,
        feed: &mut FeedWriter<'_>,
    ) {
        let order = self.orders.get_mut(&id).expect("a working order");
        debug_assert!(quantity >= 1 && quantity <= order.remaining());
        order.filled += quantity;
        order.fills += 1;
        let remaining = order.remaining();
        let quantity = Quantity::new(quantity).expect("a fill of at least one share");
        let event = if remaining == 0 {
            order.state = WorkState::Filled;
            self.open.remove(&id);
            ExecutionEvent::Fill { quantity, price }
        } else {
            ExecutionEvent::PartialFill { quantity, price }
        };
        feed.publish(Draft {
            execution_id: execution_id(),
            client_order_id: OrderId::from(id),
            exchange_order_id: order.exchange_order_id.clone(),
            event,
            cumulative: shares(order.filled),
            remaining: shares(remaining),
            time: now,
        });
    }

    /// Ends a working order's rest as canceled or expired, with its report.
    fn close(
        &mut self,
        id: Uuid,
        state: WorkState,
        now: OffsetDateTime,
        feed: &mut FeedWriter<'_>,
    ) {
        let order = self.orders.get_mut(&id).expect("a working order");
        let rest = order.remaining();
        order.closed = rest;
        order.state = state;
        self.open.remove(&id);
        let quantity = Quantity::new(rest).expect("a working order has shares open");
        let event = match state {
            WorkState::Expired => ExecutionEvent::Expired { quantity },
            _ => ExecutionEvent::Canceled { quantity },
        };
        feed.publish(Draft {
            execution_id: execution_id(),
            client_order_id: OrderId::from(id),
            exchange_order_id: order.exchange_order_id.clone(),
            event,
            cumulative: shares(order.filled),
            remaining: Shares::ZERO,
            time: now,
        });
    }
}

/// A fresh execution id: unique across simulator runs, so that a restarted simulator's reports
/// are never taken for an earlier run's.
fn execution_id() -> ExecutionId {
    ExecutionId::parse(&format!("EXE-{}", Uuid::now_v7())).expect("a UUID is a valid execution id")
}

fn shares(n: i64) -> Shares {
    Shares::new(n).expect("the market's share counts stay within an order's quantity")
}

/// A made-up but stable price per instrument, 10.00 to 499.99.
fn reference_price(instrument: &str) -> Price {
    let hash = instrument
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let cents = 1_000 + (hash % 49_000) as i64;
    Price::try_from(Decimal::new(cents, 2)).expect("10.00 to 499.99 is a price")
}

/// The reference price moved by up to ±0.5 %, in whole cents, never below 0.01.
fn jitter(reference: Price, rng: &mut XorShift) -> Price {
    let cents = (reference.as_decimal() * Decimal::ONE_HUNDRED)
        .trunc()
        .try_into()
        .unwrap_or(10_000_i64);
    let spread = (cents / 200).max(1);
    let moved = cents - spread + (rng.next_u64() % (2 * spread as u64 + 1)) as i64;
    Price::try_from(Decimal::new(moved.max(1), 2)).unwrap_or(reference)
}

#[cfg(test)]
mod tests {
    use order_shared::adapters::execution_feed::parse_report;
    use order_shared::domain::{ExecutionKind, ExecutionReport};

    use super::*;
    use crate::feed::Feed;

    fn placed(kind: &str, quantity: i64, expires_at: Option<&str>) -> PlacedOrder {
        PlacedOrder {
            exchange_order_id: format!("EX-{}", Uuid::new_v4()),
            client_order_id: String::new(),
            instrument: "US0378331005".into(),
            side: "buy".into(),
            order_type: kind.into(),
            limit_price: (kind == "limit").then(|| "187.25".into()),
            quantity,
            expires_at: expires_at.map(str::to_owned),
        }
    }

    fn reports(feed: &Feed) -> Vec<ExecutionReport> {
        feed.read_after(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|text| parse_report(text.as_str()).unwrap())
            .collect()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn a_market_order_fills_at_once_in_pieces_that_sum_to_its_quantity() {
        let mut rng = XorShift::from_clock();
        for _ in 0..50 {
            let (feed, mut market) = (Feed::new(100), Market::default());
            let id = Uuid::now_v7();
            market.open(
                &placed("market", 7, None),
                id,
                now(),
                4,
                &mut rng,
                &mut feed.writer(0.0),
            );
            let reports = reports(&feed);
            assert!((1..=4).contains(&reports.len()), "{reports:?}");
            let (last, partials) = reports.split_last().unwrap();
            assert_eq!(last.kind(), ExecutionKind::Fill);
            assert!(
                partials
                    .iter()
                    .all(|r| r.kind() == ExecutionKind::PartialFill)
            );
            let sum: i64 = reports
                .iter()
                .map(|r| r.event().traded().unwrap().0.get())
                .sum();
            assert_eq!(sum, 7);
            assert_eq!(last.cumulative_quantity().get(), 7);
            assert_eq!(market.executions(id).unwrap().state, WorkState::Filled);
            assert!(market.open.is_empty());
        }
    }

    #[test]
    fn a_limit_order_fills_over_time_at_its_price_then_a_cancel_is_refused() {
        let mut rng = XorShift::from_clock();
        let (feed, mut market) = (Feed::new(100), Market::default());
        let id = Uuid::now_v7();
        market.open(
            &placed("limit", 10, None),
            id,
            now(),
            3,
            &mut rng,
            &mut feed.writer(0.0),
        );
        assert!(reports(&feed).is_empty());
        market.tick(now(), 0.0, &mut rng, &mut feed.writer(0.0));
        assert!(reports(&feed).is_empty());
        for _ in 0..20 {
            market.tick(now(), 1.0, &mut rng, &mut feed.writer(0.0));
        }
        let fills = reports(&feed);
        assert!(fills.len() >= 2, "{fills:?}");
        assert_eq!(fills[0].kind(), ExecutionKind::PartialFill);
        assert_eq!(fills.last().unwrap().kind(), ExecutionKind::Fill);
        let price = Price::parse("187.25").unwrap();
        assert!(fills.iter().all(|r| r.event().traded().unwrap().1 == price));

        let answer = market.cancel(id, now(), &mut feed.writer(0.0));
        assert!(matches!(
            answer,
            CancelAnswer::TooLate {
                state: WorkState::Filled,
                filled: 10,
                ..
            }
        ));
        let refused = reports(&feed).pop().unwrap();
        assert_eq!(refused.kind(), ExecutionKind::CancelRefused);
        assert_eq!(refused.cumulative_quantity().get(), 10);
    }

    #[test]
    fn a_cancel_cancels_the_rest_once_and_an_expiry_ends_the_rest() {
        let mut rng = XorShift::from_clock();
        let (feed, mut market) = (Feed::new(100), Market::default());
        let id = Uuid::now_v7();
        market.open(
            &placed("limit", 10, None),
            id,
            now(),
            3,
            &mut rng,
            &mut feed.writer(0.0),
        );
        market.tick(now(), 1.0, &mut rng, &mut feed.writer(0.0));
        let filled = market.executions(id).unwrap().filled_quantity;
        assert!((1..=6).contains(&filled));
        let first = market.cancel(id, now(), &mut feed.writer(0.0));
        let again = market.cancel(id, now(), &mut feed.writer(0.0));
        assert_eq!(first, again);
        assert!(
            matches!(first, CancelAnswer::Canceled { canceled, .. } if canceled == 10 - filled)
        );
        let all = reports(&feed);
        assert_eq!(
            all.len(),
            2,
            "one fill, one cancel, nothing for the repeated cancel"
        );
        assert_eq!(all[1].event().quantity().unwrap().get(), 10 - filled);
        market.tick(now(), 1.0, &mut rng, &mut feed.writer(0.0));
        assert_eq!(reports(&feed).len(), 2, "a canceled order no longer fills");

        let expiring = Uuid::now_v7();
        market.open(
            &placed("limit", 5, Some("2020-01-01T00:00:00Z")),
            expiring,
            now(),
            3,
            &mut rng,
            &mut feed.writer(0.0),
        );
        market.tick(now(), 1.0, &mut rng, &mut feed.writer(0.0));
        let expired = reports(&feed).pop().unwrap();
        assert_eq!(expired.kind(), ExecutionKind::Expired);
        assert_eq!(expired.event().quantity().unwrap().get(), 5);
        assert!(matches!(
            market.cancel(expiring, now(), &mut feed.writer(0.0)),
            CancelAnswer::TooLate {
                state: WorkState::Expired,
                ..
            }
        ));
        assert_eq!(
            market.cancel(Uuid::now_v7(), now(), &mut feed.writer(0.0)),
            CancelAnswer::Unknown
        );
    }

    #[test]
    fn the_load_mode_fills_its_orders_one_share_at_a_time_and_counts_them() {
        let mut rng = XorShift::from_clock();
        let (feed, mut market) = (Feed::new(10_000), Market::default());
        let given = Uuid::now_v7();
        let mut plan = LoadPlan::new(4, 3, vec![given]);
        let published = market.load_step(&mut plan, 1200, now(), &mut rng, &mut feed.writer(0.0));
        assert_eq!(published, 1200);
        let all = reports(&feed);
        assert_eq!(all.len(), 1200);
        let counts = market.counts(true);
        assert_eq!(counts.total_filled_quantity, 1200);
        assert_eq!(counts.orders[&given.to_string()].filled_quantity, 4);
        // Three slots of 400 reports each: 100 orders filled per slot, and a fresh one waiting.
        assert_eq!(counts.orders_by_state[&WorkState::Filled], 300);
        assert_eq!(counts.orders_by_state[&WorkState::Working], 3);
        assert!(counts.orders.values().all(|order| order.synthetic));
        // Per order: cumulative quantities rise one by one, the fourth report is the fill.
        let mut seen: HashMap<OrderId, i64> = HashMap::new();
        for report in &all {
            let count = seen.entry(report.client_order_id()).or_default();
            *count += 1;
            assert_eq!(report.cumulative_quantity().get(), *count);
            assert_eq!(report.kind() == ExecutionKind::Fill, *count == 4);
        }
    }

    #[test]
    fn prices_are_stable_per_instrument_and_jitter_stays_close() {
        let reference = reference_price("US0378331005");
        assert_eq!(reference, reference_price("US0378331005"));
        let mut rng = XorShift::from_clock();
        let cents = |p: Price| (p.as_decimal() * Decimal::ONE_HUNDRED).trunc();
        for _ in 0..100 {
            let moved = jitter(reference, &mut rng);
            let delta = (cents(moved) - cents(reference)).abs();
            assert!(delta <= (cents(reference) / Decimal::from(200)).ceil());
        }
    }
}
