//! `Exchange` in memory: scripted answers, counted calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::domain::{Order, OrderId};
use crate::ports::{
    CancelRefusal, Exchange, ExchangeCancelOutcome, LookupError, LookupOutcome, PlacementOutcome,
};

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
    /// Answers for the next cancels of one order, used first, in order.
    cancel_answers: HashMap<OrderId, VecDeque<ExchangeCancelOutcome>>,
    /// Orders whose fill won: a cancel of them is refused.
    filled: HashSet<OrderId>,
    canceled: HashSet<OrderId>,
    cancels: HashMap<OrderId, usize>,
}

/// The stock exchange in memory.
///
/// A placement takes the next answer scripted for its order ([`script_for`](Self::script_for)),
/// else the next scripted for any order ([`script`](Self::script)), else acknowledges. Like the
/// real exchange it de-duplicates on the client order id: a repeated acknowledged placement gets
/// the same exchange order id ([`exchange_order_id`](Self::exchange_order_id)). A lookup answers
/// what was set with [`set_lookup`](Self::set_lookup), else what the exchange holds. A cancel
/// takes the next answer scripted with [`script_cancel`](Self::script_cancel), else is refused
/// for an order it does not hold (`UnknownOrder`) or one marked filled with
/// [`fill`](Self::fill) (`AlreadyFilled`), else accepted — again and again, as the real exchange
/// repeats its answer to a cancel.
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

    /// The order's fill won: its cancels are refused from now on.
    pub fn fill(&self, id: OrderId) {
        self.lock().filled.insert(id);
    }

    /// Answers for the next cancels of one order.
    pub fn script_cancel(
        &self,
        id: OrderId,
        outcomes: impl IntoIterator<Item = ExchangeCancelOutcome>,
    ) {
        self.lock()
            .cancel_answers
            .entry(id)
            .or_default()
            .extend(outcomes);
    }

    /// How often a cancel of this order was sent (whatever it answered).
    pub fn cancels(&self, id: OrderId) -> usize {
        self.lock().cancels.get(&id).copied().unwrap_or(0)
    }

    /// Whether a cancel of this order was accepted by the exchange itself (not a scripted answer).
    pub fn is_canceled(&self, id: OrderId) -> bool {
        self.lock().canceled.contains(&id)
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

    async fn cancel(&self, client_order_id: OrderId) -> ExchangeCancelOutcome {
        let mut state = self.lock();
        *state.cancels.entry(client_order_id).or_default() += 1;
        if let Some(answer) = state
            .cancel_answers
            .get_mut(&client_order_id)
            .and_then(VecDeque::pop_front)
        {
            return answer;
        }
        let Some(exchange_order_id) = state.accepted.get(&client_order_id).cloned() else {
            return ExchangeCancelOutcome::Refused {
                refusal: CancelRefusal::UnknownOrder,
                reason: format!("unknown order {client_order_id}"),
            };
        };
        if state.filled.contains(&client_order_id) {
            return ExchangeCancelOutcome::Refused {
                refusal: CancelRefusal::AlreadyFilled,
                reason: "order is already filled".into(),
            };
        }
        state.canceled.insert(client_order_id);
        ExchangeCancelOutcome::Accepted { exchange_order_id }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::OrderStatus;
    use crate::fakes::{client, limit_order};

    fn placed_order() -> Order {
        Order {
            id: OrderId::generate(),
            client_id: client("default"),
            created_at: OffsetDateTime::now_utc(),
            details: limit_order("10.00", 5),
            status: OrderStatus::Placing,
            attempts: 1,
            last_error: None,
            exchange_order_id: None,
            placed_at: None,
            alerted_at: None,
            expires_at: None,
            next_attempt_at: None,
            outcome_unknown: false,
            filled_quantity: crate::domain::Shares::ZERO,
            average_fill_price: None,
        }
    }

    #[tokio::test]
    async fn a_cancel_is_accepted_repeatedly_until_the_fill_wins_and_unknown_orders_are_refused() {
        let exchange = FakeExchange::new();
        let order = placed_order();
        let never_placed = OrderId::generate();
        assert!(matches!(
            exchange.cancel(never_placed).await,
            ExchangeCancelOutcome::Refused {
                refusal: CancelRefusal::UnknownOrder,
                ..
            }
        ));

        exchange.place(&order).await;
        let accepted = ExchangeCancelOutcome::Accepted {
            exchange_order_id: FakeExchange::exchange_order_id(order.id),
        };
        assert_eq!(exchange.cancel(order.id).await, accepted);
        assert_eq!(exchange.cancel(order.id).await, accepted);
        assert!(exchange.is_canceled(order.id));

        let filled = placed_order();
        exchange.place(&filled).await;
        exchange.fill(filled.id);
        assert!(matches!(
            exchange.cancel(filled.id).await,
            ExchangeCancelOutcome::Refused {
                refusal: CancelRefusal::AlreadyFilled,
                ..
            }
        ));
        assert!(!exchange.is_canceled(filled.id));
        assert_eq!(exchange.cancels(order.id), 2);
        assert_eq!(exchange.cancels(never_placed), 1);
    }

    #[tokio::test]
    async fn scripted_cancel_answers_come_first_in_order() {
        let exchange = FakeExchange::new();
        let order = placed_order();
        exchange.place(&order).await;
        let down = ExchangeCancelOutcome::Transient {
            error: "exchange is down".into(),
        };
        exchange.script_cancel(order.id, [down.clone(), down.clone()]);
        assert_eq!(exchange.cancel(order.id).await, down);
        assert_eq!(exchange.cancel(order.id).await, down);
        assert!(!exchange.is_canceled(order.id));
        assert!(matches!(
            exchange.cancel(order.id).await,
            ExchangeCancelOutcome::Accepted { .. }
        ));
        assert_eq!(exchange.cancels(order.id), 3);
    }
}
