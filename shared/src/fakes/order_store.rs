//! `OrderStore` and `OrderLifecycle` in memory, with the same conditional transitions as the
//! Postgres store and an audit trail to inspect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::outage;
use crate::domain::{ClientId, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus};
use crate::ports::{
    ClaimOutcome, CreateOutcome, FailedOrder, ListFilter, OrderLifecycle, OrderPage, OrderStore,
    StoreError,
};

/// One method of the store, to make just that one fail (see [`FakeOrderStore::fail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    CreateOrder,
    MarkEnqueued,
    FindOrder,
    FindClientOrder,
    ListOrders,
    ClaimUnenqueued,
    Ping,
    ClaimForPlacement,
    RecordPlaced,
    RecordRejected,
    ReleaseForRetry,
    RecordPlacedByLookup,
    MarkFailed,
    MarkAlerted,
    RequeueFailed,
    AttemptTimes,
    ListFailed,
}

/// One row of the audit trail (`order_events`): every status change, with the attempt count
/// the order had after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub order_id: OrderId,
    /// `None` for the creation.
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: String,
    pub attempt: i32,
    pub at: OffsetDateTime,
}

/// An order with the columns the domain type does not show.
#[derive(Debug, Clone)]
struct Row {
    order: Order,
    idempotency_key: Option<IdempotencyKey>,
    fingerprint: String,
    enqueued_at: Option<OffsetDateTime>,
    lease_expires_at: Option<OffsetDateTime>,
    sweep_claimed_until: Option<OffsetDateTime>,
    updated_at: OffsetDateTime,
}

impl Row {
    /// `placing` under a lease that has run out: another worker may take the order over. A
    /// `placing` order without a lease never qualifies (as `NULL < now()` in SQL).
    fn lease_expired(&self, now: OffsetDateTime) -> bool {
        self.order.status == OrderStatus::Placing
            && self.lease_expires_at.is_some_and(|until| until < now)
    }
}

#[derive(Default)]
struct State {
    rows: BTreeMap<OrderId, Row>,
    events: Vec<AuditEvent>,
    down: bool,
    failing: HashSet<StoreOp>,
    calls: HashMap<StoreOp, usize>,
    /// How far the store's clock runs ahead of the real one.
    clock_offset: Duration,
}

impl State {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    fn insert(
        &mut self,
        client: &ClientId,
        details: &NewOrder,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Order {
        let now = self.now();
        let order = Order {
            id: OrderId::generate(),
            client_id: client.clone(),
            created_at: now,
            details: details.clone(),
            status: OrderStatus::Pending,
            attempts: 0,
            last_error: None,
            exchange_order_id: None,
            placed_at: None,
            alerted_at: None,
        };
        self.rows.insert(
            order.id,
            Row {
                order: order.clone(),
                idempotency_key: idempotency_key.cloned(),
                fingerprint: details.fingerprint(),
                enqueued_at: None,
                lease_expires_at: None,
                sweep_claimed_until: None,
                updated_at: now,
            },
        );
        self.events.push(AuditEvent {
            order_id: order.id,
            from: None,
            to: OrderStatus::Pending,
            reason: "order accepted".into(),
            attempt: 0,
            at: now,
        });
        order
    }

    /// One conditional transition with its audit event, as the Postgres store's
    /// `transition_sql`: the order changes only if `allowed` (the store's own condition) holds
    /// and the domain's state machine allows the step. Taking over an expired lease keeps the
    /// order `placing`: that is no change of status, so the table is not asked.
    fn transition(
        &mut self,
        id: OrderId,
        to: OrderStatus,
        reason: &str,
        allowed: impl FnOnce(&Row, OffsetDateTime) -> bool,
        apply: impl FnOnce(&mut Row, OffsetDateTime),
    ) -> Option<Order> {
        let now = self.now();
        let row = self.rows.get_mut(&id)?;
        let from = row.order.status;
        if !allowed(row, now) || (from != to && !from.can_become(to)) {
            return None;
        }
        row.order.status = to;
        row.updated_at = now;
        apply(row, now);
        self.events.push(AuditEvent {
            order_id: id,
            from: Some(from),
            to,
            reason: reason.to_owned(),
            attempt: row.order.attempts,
            at: now,
        });
        Some(row.order.clone())
    }
}

/// The order store in memory.
///
/// - Transitions are conditional exactly as documented on [`OrderLifecycle`], and also refused
///   when [`OrderStatus::can_become`] refuses them; each one appends an [`AuditEvent`].
/// - Leases and sweep claims follow the store's clock: the real time plus whatever
///   [`advance_clock`](Self::advance_clock) added. [`expire_lease`](Self::expire_lease) ends one
///   lease at once, as if its placer had crashed long ago.
/// - [`set_down`](Self::set_down) makes every method fail as an outage would,
///   [`fail`](Self::fail) only one of them; the helpers for tests (`seed`, `order`, `events`, …)
///   keep working.
#[derive(Default)]
pub struct FakeOrderStore {
    state: Mutex<State>,
}

impl FakeOrderStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state for one call of `op`, or the outage it was told to have.
    fn call(&self, op: StoreOp) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut state = self.lock();
        *state.calls.entry(op).or_default() += 1;
        if state.down || state.failing.contains(&op) {
            return Err(StoreError::Unavailable(outage("the order store")));
        }
        Ok(state)
    }

    /// Stores a new `pending` order for `client`, as `create_order` would (even when the store
    /// is told to fail): the usual first step of a test.
    pub fn seed(&self, client: &ClientId, details: &NewOrder) -> Order {
        self.lock().insert(client, details, None)
    }

    /// The order as stored now.
    pub fn order(&self, id: OrderId) -> Option<Order> {
        self.lock().rows.get(&id).map(|row| row.order.clone())
    }

    /// Every stored order, oldest first.
    pub fn orders(&self) -> Vec<Order> {
        self.lock()
            .rows
            .values()
            .map(|row| row.order.clone())
            .collect()
    }

    /// The whole audit trail, in the order it was written.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().events.clone()
    }

    /// The audit trail of one order.
    pub fn events_of(&self, id: OrderId) -> Vec<AuditEvent> {
        self.lock()
            .events
            .iter()
            .filter(|event| event.order_id == id)
            .cloned()
            .collect()
    }

    /// Whether the order is marked as having reached the queue.
    pub fn is_enqueued(&self, id: OrderId) -> bool {
        self.lock()
            .rows
            .get(&id)
            .is_some_and(|row| row.enqueued_at.is_some())
    }

    /// Until when a placer holds the order (`None`: nobody does).
    pub fn lease_expires_at(&self, id: OrderId) -> Option<OffsetDateTime> {
        self.lock()
            .rows
            .get(&id)
            .and_then(|row| row.lease_expires_at)
    }

    /// Ends the order's lease now, as if its placer had died; panics if the order has no lease.
    pub fn expire_lease(&self, id: OrderId) {
        let mut state = self.lock();
        let now = state.now();
        let row = state
            .rows
            .get_mut(&id)
            .expect("expire_lease: no such order");
        assert!(
            row.lease_expires_at.is_some(),
            "expire_lease: order {id} has no lease"
        );
        row.lease_expires_at = Some(now - Duration::from_millis(1));
    }

    /// Moves the store's clock forward: leases, sweep claims and the sweeper's grace period all
    /// see the later time; new orders are created at it.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock_offset += by;
    }

    /// The store's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.lock().now()
    }

    /// An outage of the whole store (`true`) or its end (`false`).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Makes one method fail until [`recover`](Self::recover).
    pub fn fail(&self, op: StoreOp) {
        self.lock().failing.insert(op);
    }

    pub fn recover(&self, op: StoreOp) {
        self.lock().failing.remove(&op);
    }

    /// How often a method was called (failed calls included).
    pub fn calls(&self, op: StoreOp) -> usize {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }
}

#[async_trait]
impl OrderStore for FakeOrderStore {
    async fn create_order(
        &self,
        client: &ClientId,
        order: &NewOrder,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.call(StoreOp::CreateOrder)?;
        if let Some(key) = idempotency_key {
            let owner = state.rows.values().find(|row| {
                row.order.client_id == *client && row.idempotency_key.as_ref() == Some(key)
            });
            if let Some(row) = owner {
                return Ok(if row.fingerprint == order.fingerprint() {
                    CreateOutcome::Replayed(row.order.clone())
                } else {
                    CreateOutcome::KeyReused
                });
            }
        }
        Ok(CreateOutcome::Created(state.insert(
            client,
            order,
            idempotency_key,
        )))
    }

    async fn mark_enqueued(&self, id: OrderId) -> Result<(), StoreError> {
        let mut state = self.call(StoreOp::MarkEnqueued)?;
        let now = state.now();
        if let Some(row) = state
            .rows
            .get_mut(&id)
            .filter(|row| row.enqueued_at.is_none())
        {
            row.enqueued_at = Some(now);
            row.updated_at = now;
        }
        Ok(())
    }

    async fn find_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let state = self.call(StoreOp::FindOrder)?;
        Ok(state.rows.get(&id).map(|row| row.order.clone()))
    }

    async fn find_client_order(
        &self,
        client: &ClientId,
        id: OrderId,
    ) -> Result<Option<Order>, StoreError> {
        let state = self.call(StoreOp::FindClientOrder)?;
        Ok(state
            .rows
            .get(&id)
            .filter(|row| row.order.client_id == *client)
            .map(|row| row.order.clone()))
    }

    async fn list_orders(&self, filter: &ListFilter) -> Result<OrderPage, StoreError> {
        let state = self.call(StoreOp::ListOrders)?;
        let orders: Vec<Order> = state
            .rows
            .values()
            .rev()
            .map(|row| &row.order)
            .filter(|order| order.client_id == filter.client)
            .filter(|order| filter.status.is_none_or(|status| order.status == status))
            .filter(|order| filter.before.is_none_or(|before| order.id < before))
            .take(filter.limit as usize + 1)
            .cloned()
            .collect();
        Ok(OrderPage::from_one_extra(orders, filter.limit))
    }

    async fn claim_unenqueued(
        &self,
        grace: Duration,
        claim_for: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let mut state = self.call(StoreOp::ClaimUnenqueued)?;
        let now = state.now();
        let mut stranded: Vec<&mut Row> = state
            .rows
            .values_mut()
            .filter(|row| {
                row.order.status == OrderStatus::Pending
                    && row.enqueued_at.is_none()
                    && row.order.created_at < now - grace
                    && row.sweep_claimed_until.is_none_or(|until| until < now)
            })
            .collect();
        stranded.sort_by_key(|row| row.order.created_at);
        let mut claimed: Vec<Order> = stranded
            .into_iter()
            .take(limit as usize)
            .map(|row| {
                row.sweep_claimed_until = Some(now + claim_for);
                row.updated_at = now;
                row.order.clone()
            })
            .collect();
        claimed.sort_by_key(|order| order.id);
        Ok(claimed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call(StoreOp::Ping).map(drop)
    }
}

#[async_trait]
impl OrderLifecycle for FakeOrderStore {
    async fn claim_for_placement(
        &self,
        id: OrderId,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.call(StoreOp::ClaimForPlacement)?;
        let claimed = state.transition(
            id,
            OrderStatus::Placing,
            "claimed for placement",
            |row, now| row.order.status == OrderStatus::Pending || row.lease_expired(now),
            |row, now| {
                row.order.attempts += 1;
                row.lease_expires_at = Some(now + lease);
            },
        );
        if let Some(order) = claimed {
            return Ok(ClaimOutcome::Claimed(order));
        }
        Ok(match state.rows.get(&id) {
            None => ClaimOutcome::Unknown,
            Some(row) if row.order.status.is_final() => {
                ClaimOutcome::AlreadyFinal(row.order.status)
            }
            Some(_) => ClaimOutcome::LeasedElsewhere,
        })
    }

    async fn record_placed(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::RecordPlaced)?;
        Ok(state.transition(
            id,
            OrderStatus::Placed,
            "acknowledged by the exchange",
            |row, _| row.order.status == OrderStatus::Placing,
            |row, now| {
                row.order.exchange_order_id = Some(exchange_order_id.to_owned());
                row.order.placed_at = Some(now);
                row.lease_expires_at = None;
            },
        ))
    }

    async fn record_rejected(
        &self,
        id: OrderId,
        reason: &str,
    ) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::RecordRejected)?;
        Ok(state.transition(
            id,
            OrderStatus::Rejected,
            &format!("rejected by the exchange: {reason}"),
            |row, _| row.order.status == OrderStatus::Placing,
            |row, _| {
                row.order.last_error = Some(reason.to_owned());
                row.lease_expires_at = None;
            },
        ))
    }

    async fn release_for_retry(
        &self,
        id: OrderId,
        error: &str,
    ) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::ReleaseForRetry)?;
        Ok(state.transition(
            id,
            OrderStatus::Pending,
            &format!("transient exchange error: {error}"),
            |row, _| row.order.status == OrderStatus::Placing,
            |row, _| {
                row.order.last_error = Some(error.to_owned());
                row.lease_expires_at = None;
            },
        ))
    }

    async fn record_placed_by_lookup(
        &self,
        id: OrderId,
        exchange_order_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::RecordPlacedByLookup)?;
        Ok(state.transition(
            id,
            OrderStatus::Placed,
            "found placed by an exchange lookup after retries ran out",
            |row, _| {
                matches!(
                    row.order.status,
                    OrderStatus::Pending | OrderStatus::Placing
                )
            },
            |row, now| {
                row.order.exchange_order_id = Some(exchange_order_id.to_owned());
                row.order.placed_at = Some(now);
                row.lease_expires_at = None;
            },
        ))
    }

    async fn mark_failed(&self, id: OrderId, reason: &str) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::MarkFailed)?;
        Ok(state.transition(
            id,
            OrderStatus::Failed,
            reason,
            |row, now| row.order.status == OrderStatus::Pending || row.lease_expired(now),
            |row, _| {
                row.lease_expires_at = None;
                if row.order.last_error.is_none() {
                    row.order.last_error = Some(reason.to_owned());
                }
            },
        ))
    }

    async fn mark_alerted(&self, id: OrderId) -> Result<(), StoreError> {
        let mut state = self.call(StoreOp::MarkAlerted)?;
        let now = state.now();
        if let Some(row) = state.rows.get_mut(&id) {
            row.order.alerted_at = Some(now);
            row.updated_at = now;
        }
        Ok(())
    }

    async fn requeue_failed(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::RequeueFailed)?;
        Ok(state.transition(
            id,
            OrderStatus::Pending,
            "admin retry",
            |row, _| row.order.status == OrderStatus::Failed,
            |row, _| {
                row.order.alerted_at = None;
                row.enqueued_at = None;
                row.sweep_claimed_until = None;
                row.lease_expires_at = None;
            },
        ))
    }

    async fn attempt_times(
        &self,
        id: OrderId,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StoreError> {
        let state = self.call(StoreOp::AttemptTimes)?;
        let attempts = || {
            state
                .events
                .iter()
                .filter(|event| event.order_id == id && event.to == OrderStatus::Placing)
                .map(|event| event.at)
        };
        Ok((attempts().min(), attempts().max()))
    }

    async fn list_failed(
        &self,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<FailedOrder>, StoreError> {
        let state = self.call(StoreOp::ListFailed)?;
        let mut failed: Vec<&Row> = state
            .rows
            .values()
            .filter(|row| row.order.status == OrderStatus::Failed)
            .filter(|row| since.is_none_or(|since| row.updated_at >= since))
            .collect();
        failed.sort_by_key(|row| row.updated_at);
        Ok(failed
            .into_iter()
            .take(limit as usize)
            .map(|row| {
                let failed_at = state
                    .events
                    .iter()
                    .filter(|e| e.order_id == row.order.id && e.to == OrderStatus::Failed)
                    .map(|e| e.at)
                    .max();
                FailedOrder {
                    order: row.order.clone(),
                    failed_at: failed_at.unwrap_or(row.order.created_at),
                    alerted_at: row.order.alerted_at,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{client, market_order};

    const LEASE: Duration = Duration::from_secs(30);

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).unwrap()
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_the_same_order_and_refuses_another() {
        let store = FakeOrderStore::new();
        let acme = client("acme");
        let CreateOutcome::Created(first) = store
            .create_order(&acme, &market_order(10), Some(&key("k1")))
            .await
            .unwrap()
        else {
            panic!("first use of a key creates the order");
        };
        let replay = store
            .create_order(&acme, &market_order(10), Some(&key("k1")))
            .await
            .unwrap();
        assert!(matches!(replay, CreateOutcome::Replayed(order) if order.id == first.id));
        let reuse = store
            .create_order(&acme, &market_order(11), Some(&key("k1")))
            .await
            .unwrap();
        assert!(matches!(reuse, CreateOutcome::KeyReused));
        // Keys belong to a client: another client's same key is a new order.
        let other = store
            .create_order(&client("globex"), &market_order(10), Some(&key("k1")))
            .await
            .unwrap();
        assert!(matches!(other, CreateOutcome::Created(_)));
        assert_eq!(store.orders().len(), 2);
    }

    #[tokio::test]
    async fn a_lease_keeps_other_claims_and_the_alerter_off_until_it_expires() {
        let store = FakeOrderStore::new();
        let order = store.seed(&client("acme"), &market_order(1));
        assert!(matches!(
            store.claim_for_placement(order.id, LEASE).await.unwrap(),
            ClaimOutcome::Claimed(claimed) if claimed.attempts == 1
        ));
        assert!(matches!(
            store.claim_for_placement(order.id, LEASE).await.unwrap(),
            ClaimOutcome::LeasedElsewhere
        ));
        assert!(
            store
                .mark_failed(order.id, "gave up")
                .await
                .unwrap()
                .is_none()
        );

        store.expire_lease(order.id);
        assert!(matches!(
            store.claim_for_placement(order.id, LEASE).await.unwrap(),
            ClaimOutcome::Claimed(claimed) if claimed.attempts == 2
        ));
        store.advance_clock(LEASE + Duration::from_secs(1));
        let failed = store
            .mark_failed(order.id, "gave up")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(failed.status, OrderStatus::Failed);
        assert_eq!(store.lease_expires_at(order.id), None);
    }

    #[tokio::test]
    async fn final_orders_never_move_and_every_recorded_step_is_in_the_domain_table() {
        let store = FakeOrderStore::new();
        let order = store.seed(&client("acme"), &market_order(1));
        store.claim_for_placement(order.id, LEASE).await.unwrap();
        store.record_placed(order.id, "X-1").await.unwrap().unwrap();
        assert!(matches!(
            store.claim_for_placement(order.id, LEASE).await.unwrap(),
            ClaimOutcome::AlreadyFinal(OrderStatus::Placed)
        ));
        assert!(
            store
                .record_rejected(order.id, "no")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .release_for_retry(order.id, "x")
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.mark_failed(order.id, "x").await.unwrap().is_none());
        assert!(store.requeue_failed(order.id).await.unwrap().is_none());
        assert!(
            store
                .record_placed_by_lookup(order.id, "X-2")
                .await
                .unwrap()
                .is_none()
        );
        let placed = store.order(order.id).unwrap();
        assert_eq!(placed.exchange_order_id.as_deref(), Some("X-1"));
        for event in store.events() {
            if let Some(from) = event.from {
                assert!(from.can_become(event.to), "{from} -> {}", event.to);
            }
        }
    }

    #[tokio::test]
    async fn an_outage_fails_every_call_but_the_test_helpers() {
        let store = FakeOrderStore::new();
        let order = store.seed(&client("acme"), &market_order(1));
        store.set_down(true);
        assert!(store.ping().await.is_err());
        assert!(store.find_order(order.id).await.is_err());
        assert!(store.claim_for_placement(order.id, LEASE).await.is_err());
        assert_eq!(store.order(order.id).unwrap().status, OrderStatus::Pending);
        store.set_down(false);
        store.fail(StoreOp::Ping);
        assert!(store.ping().await.is_err());
        assert!(store.find_order(order.id).await.unwrap().is_some());
        assert_eq!(store.calls(StoreOp::Ping), 2);
    }
}
