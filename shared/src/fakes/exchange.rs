//! `Exchange` in memory: scripted answers, counted calls.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::domain::{Order, OrderId};
use crate::ports::{Exchange, LookupError, LookupOutcome, PlacementOutcome};

#[derive(Default)]
struct ExchangeState {
    /// Answers for one order, used first, in order.
    per_order: HashMap<OrderId, VecDeque<PlacementOutcome>>,
    /// Answers for whichever placement comes next.
    next: VecDeque<PlacementOutcome>,
    placements: HashMap<OrderId, usize>,
    /// What the exchange holds: client order id → its own id.
    accepted: HashMap<OrderId, String>,
    lookup_answers: HashMap<OrderId, LookupOutcome>,
    lookups_failing: bool,
    lookups: HashMap<OrderId, usize>,
}

/// The stock exchange in memory.
///
/// A placement takes the next answer scripted for its order ([`script_for`](Self::script_for)),
/// else the next scripted for any order ([`script`](Self::script)), else acknowledges. Like the
/// real exchange it de-duplicates on the client order id: a repeated acknowledged placement gets
/// the same exchange order id ([`exchange_order_id`](Self::exchange_order_id)). A lookup answers
/// what was set with [`set_lookup`](Self::set_lookup), else what the exchange holds.
#[derive(Default)]
pub struct FakeExchange {
    state: Mutex<ExchangeState>,
}

impl FakeExchange {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, ExchangeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id the exchange gives an order it acknowledges without a scripted answer.
    pub fn exchange_order_id(id: OrderId) -> String {
        format!("EX-{id}")
    }

    /// Answers for the next placements, whatever their order.
    pub fn script(&self, outcomes: impl IntoIterator<Item = PlacementOutcome>) {
        self.lock().next.extend(outcomes);
    }

    /// Answers for the next placements of one order.
    pub fn script_for(&self, id: OrderId, outcomes: impl IntoIterator<Item = PlacementOutcome>) {
        self.lock()
            .per_order
            .entry(id)
            .or_default()
            .extend(outcomes);
    }

    /// What a lookup of this order answers from now on.
    pub fn set_lookup(&self, id: OrderId, outcome: LookupOutcome) {
        self.lock().lookup_answers.insert(id, outcome);
    }

    /// Makes every lookup fail (`true`), as a down or slow exchange would, or answer again.
    pub fn set_lookups_failing(&self, failing: bool) {
        self.lock().lookups_failing = failing;
    }

    /// How often this client order id was sent for placement.
    pub fn placements(&self, id: OrderId) -> usize {
        self.lock().placements.get(&id).copied().unwrap_or(0)
    }

    /// Placements of all orders.
    pub fn total_placements(&self) -> usize {
        self.lock().placements.values().sum()
    }

    /// How often this order was looked up (failed lookups included).
    pub fn lookups(&self, id: OrderId) -> usize {
        self.lock().lookups.get(&id).copied().unwrap_or(0)
    }

    /// Lookups of all orders.
    pub fn total_lookups(&self) -> usize {
        self.lock().lookups.values().sum()
    }
}

#[async_trait]
impl Exchange for FakeExchange {
    async fn place(&self, order: &Order) -> PlacementOutcome {
        let mut state = self.lock();
        *state.placements.entry(order.id).or_default() += 1;
        let scripted = state
            .per_order
            .get_mut(&order.id)
            .and_then(VecDeque::pop_front)
            .or_else(|| state.next.pop_front());
        let outcome = scripted.unwrap_or_else(|| PlacementOutcome::Acknowledged {
            exchange_order_id: state
                .accepted
                .get(&order.id)
                .cloned()
                .unwrap_or_else(|| Self::exchange_order_id(order.id)),
        });
        if let PlacementOutcome::Acknowledged { exchange_order_id } = &outcome {
            state
                .accepted
                .entry(order.id)
                .or_insert_with(|| exchange_order_id.clone());
        }
        outcome
    }

    async fn lookup(&self, client_order_id: OrderId) -> Result<LookupOutcome, LookupError> {
        let mut state = self.lock();
        *state.lookups.entry(client_order_id).or_default() += 1;
        if state.lookups_failing {
            return Err(LookupError("exchange unreachable (fake outage)".into()));
        }
        if let Some(answer) = state.lookup_answers.get(&client_order_id) {
            return Ok(answer.clone());
        }
        Ok(match state.accepted.get(&client_order_id) {
            Some(exchange_order_id) => LookupOutcome::Placed {
                exchange_order_id: exchange_order_id.clone(),
            },
            None => LookupOutcome::Unknown,
        })
    }
}
