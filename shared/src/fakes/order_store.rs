//! `OrderStore` and `OrderLifecycle` in memory, with the same conditional transitions as the
//! Postgres store, an audit trail to inspect, and the incidents that failed and expired orders
//! open (`IncidentLog`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::outage;
use crate::domain::{
    ClientId, ExecutionReport, FillState, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus,
    Transition,
};
use crate::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, FailedOrder, Incident, IncidentLog, ListFilter,
    OrderLifecycle, OrderPage, OrderStore, RetryPlan, SentMessage, StoreError,
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
    CancelOrder,
    ExpireDue,
    ParkedCount,
    Defer,
    ResendAfterDeadLetter,
    Expire,
    ExpireAfterLookup,
    /// Reading incidents: `unannounced` and `close_quiet`.
    Incidents,
    /// Marking an incident's alert published: `mark_announced` and `mark_closed_announced`.
    MarkIncident,
    ReleaseIdempotencyKeys,
    ClaimUnansweredCancels,
    StuckExecutionCount,
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
    fingerprint: String,
    enqueued_at: Option<OffsetDateTime>,
    lease_expires_at: Option<OffsetDateTime>,
    sweep_claimed_until: Option<OffsetDateTime>,
    updated_at: OffsetDateTime,
    dead_letter_resends: u32,
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
    incidents: Vec<FakeIncident>,
    /// Idempotency keys by (client, key): the order each names and when it was taken, as the
    /// Postgres `idempotency_keys` table.
    keys: HashMap<(String, String), TakenKey>,
    /// `None`: `IdempotencyKey::DEFAULT_RETENTION`.
    idempotency_retention: Option<Duration>,
    /// Execution reports applied to orders (`executions` with `applied_at`), in feed order.
    executions: Vec<ExecutionReport>,
    /// When each report kept unapplied was received (`executions` with `applied_at` NULL).
    waiting_executions: Vec<OffsetDateTime>,
}

/// An idempotency key in use.
#[derive(Debug, Clone)]
struct TakenKey {
    order_id: OrderId,
    taken_at: OffsetDateTime,
}

/// An incident with its alert marks, as `alert_incidents` holds it.
#[derive(Debug, Clone)]
struct FakeIncident {
    incident: Incident,
    announced: bool,
    closed_announced: bool,
    /// An announcer holds its next alert until then (as `announce_claimed_until`).
    claimed_until: Option<OffsetDateTime>,
}

/// How long an announcer holds an incident's next alert (as in the Postgres adapter).
const ANNOUNCE_CLAIM: Duration = Duration::from_secs(30);

impl State {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    fn retention(&self) -> Duration {
        self.idempotency_retention
            .unwrap_or(IdempotencyKey::DEFAULT_RETENTION)
    }

    fn insert(
        &mut self,
        client: &ClientId,
        details: &NewOrder,
        expires_at: Option<OffsetDateTime>,
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
            expires_at,
            next_attempt_at: None,
            outcome_unknown: false,
            filled_quantity: crate::domain::Shares::ZERO,
            average_fill_price: None,
        };
        self.rows.insert(
            order.id,
            Row {
                order: order.clone(),
                fingerprint: details.fingerprint(),
                enqueued_at: None,
                lease_expires_at: None,
                sweep_claimed_until: None,
                updated_at: now,
                dead_letter_resends: 0,
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
        let order = row.order.clone();
        if to.alerts_admins() {
            self.record_incident(&order, now);
        }
        Some(order)
    }

    /// What the Postgres transitions do in the same statement: join the open incident of this
    /// kind, or open one.
    fn record_incident(&mut self, order: &Order, now: OffsetDateTime) {
        let kind = order.status.as_str().to_owned();
        let open = self
            .incidents
            .iter_mut()
            .find(|i| i.incident.kind == kind && i.incident.closed_at.is_none());
        match open {
            Some(open) => {
                let incident = &mut open.incident;
                incident.order_count += 1;
                incident.last_seen_at = now;
                if incident.first_order_ids.len() < 10 {
                    incident.first_order_ids.push(order.id.as_uuid());
                }
                if incident.sample_error.is_none() {
                    incident.sample_error = order.last_error.clone();
                }
            }
            None => {
                let id = self.incidents.len() as i64 + 1;
                self.incidents.push(FakeIncident {
                    incident: Incident {
                        id,
                        kind,
                        opened_at: now,
                        last_seen_at: now,
                        order_count: 1,
                        first_order_ids: vec![order.id.as_uuid()],
                        sample_error: order.last_error.clone(),
                        closed_at: None,
                    },
                    announced: false,
                    closed_announced: false,
                    claimed_until: None,
                });
            }
        }
    }

    /// `expires_at` has passed at `now` (an order without one never expires).
    fn expired(row: &Row, now: OffsetDateTime) -> bool {
        row.order.expires_at.is_some_and(|at| at <= now)
    }
}

/// The notional an order's average fill price stands for (the fake keeps no separate column):
/// exact for the fakes' tests, which fill at one price or check only the quantities.
fn fake_notional(order: &Order) -> crate::domain::Decimal {
    order
        .average_fill_price
        .map(|average| average * crate::domain::Decimal::from(order.filled_quantity.get()))
        .unwrap_or_default()
        .round_dp(2)
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

    /// Applies an exchange's execution report to its order as the ingester would (the domain's
    /// `FillState::apply`: fill state, status move and its audit event), and keeps it for the
    /// order's list of executions. A test's stand-in for the ingester; panics on a report that
    /// would not apply, since a test that sends one has a bug.
    pub fn apply_execution(&self, report: &ExecutionReport) -> Order {
        let mut state = self.lock();
        let now = state.now();
        let id = report.client_order_id();
        let row = state
            .rows
            .get_mut(&id)
            .expect("an execution for a stored order");
        let before = FillState {
            status: row.order.status,
            quantity: row.order.details.quantity(),
            filled: row.order.filled_quantity,
            notional: fake_notional(&row.order),
        };
        let applied = before
            .apply(report)
            .unwrap_or_else(|waiting| panic!("report does not apply: {waiting:?}"));
        row.order.filled_quantity = applied.state.filled;
        row.order.average_fill_price = applied.state.average_price();
        row.order.status = applied.state.status;
        row.updated_at = now;
        let order = row.order.clone();
        if let Some(transition) = applied.transition {
            state.events.push(AuditEvent {
                order_id: id,
                from: Some(before.status),
                to: transition.to(),
                reason: format!("execution report {}", report.execution_id()),
                attempt: order.attempts,
                at: now,
            });
        }
        state.executions.push(report.clone());
        order
    }

    /// The reports applied to an order, in feed order.
    pub fn executions_of(&self, id: OrderId) -> Vec<ExecutionReport> {
        self.lock()
            .executions
            .iter()
            .filter(|report| report.client_order_id() == id)
            .cloned()
            .collect()
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

    /// Like `seed`, with a time in force.
    pub fn seed_expiring(
        &self,
        client: &ClientId,
        details: &NewOrder,
        expires_at: OffsetDateTime,
    ) -> Order {
        self.lock().insert(client, details, Some(expires_at))
    }

    /// Moves the order's time in force to `expires_at` (e.g. into the past, as if its time had
    /// run out while it waited); panics if there is no such order.
    pub fn set_expires_at(&self, id: OrderId, expires_at: OffsetDateTime) {
        let mut state = self.lock();
        let row = state
            .rows
            .get_mut(&id)
            .expect("set_expires_at: no such order");
        row.order.expires_at = Some(expires_at);
    }

    /// Every incident, with whether its opening and closing alerts were marked published.
    pub fn incidents(&self) -> Vec<(Incident, bool, bool)> {
        self.lock()
            .incidents
            .iter()
            .map(|i| (i.incident.clone(), i.announced, i.closed_announced))
            .collect()
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

    /// Keeps idempotency keys for `retention` instead of the default 24 hours.
    pub fn set_idempotency_retention(&self, retention: Duration) {
        self.lock().idempotency_retention = Some(retention);
    }

    /// How many idempotency keys are held (released ones are gone).
    pub fn held_idempotency_keys(&self) -> usize {
        self.lock().keys.len()
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

    /// Keeps an execution report unapplied, received now (by the store's clock), as the
    /// ingester does with one that contradicts its order.
    pub fn keep_waiting_execution(&self) {
        let mut state = self.lock();
        let now = state.now();
        state.waiting_executions.push(now);
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
        expires_at: OffsetDateTime,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.call(StoreOp::CreateOrder)?;
        let now = state.now();
        let retention = state.retention();
        let slot = idempotency_key.map(|key| (client.as_str().to_owned(), key.as_str().to_owned()));
        if let Some(slot) = &slot {
            // A key within its retention names its order; an older one is free again.
            let owner = state
                .keys
                .get(slot)
                .filter(|taken| now < taken.taken_at + retention)
                .and_then(|taken| state.rows.get(&taken.order_id));
            if let Some(row) = owner {
                return Ok(if row.fingerprint == order.fingerprint() {
                    CreateOutcome::Replayed(row.order.clone())
                } else {
                    CreateOutcome::KeyReused
                });
            }
        }
        let created = state.insert(client, order, Some(expires_at));
        if let Some(slot) = slot {
            state.keys.insert(
                slot,
                TakenKey {
                    order_id: created.id,
                    taken_at: now,
                },
            );
        }
        Ok(CreateOutcome::Created(created))
    }

    async fn cancel_order(
        &self,
        client: &ClientId,
        id: OrderId,
    ) -> Result<CancelOutcome, StoreError> {
        let mut state = self.call(StoreOp::CancelOrder)?;
        if state
            .rows
            .get(&id)
            .is_none_or(|row| row.order.client_id != *client)
        {
            return Ok(CancelOutcome::NotFound);
        }
        if let Some(order) = state.transition(
            id,
            OrderStatus::Canceled,
            "canceled by the client",
            |row, _| row.order.status == OrderStatus::Pending && !row.order.outcome_unknown,
            |_, _| {},
        ) {
            return Ok(CancelOutcome::Canceled(order));
        }
        if let Some(order) = state.transition(
            id,
            OrderStatus::PendingCancel,
            "cancel requested by the client",
            |row, _| Transition::RequestCancel.from().contains(&row.order.status),
            |_, _| {},
        ) {
            return Ok(CancelOutcome::CancelRequested(order));
        }
        let order = state.rows[&id].order.clone();
        Ok(match order.status {
            OrderStatus::Canceled => CancelOutcome::AlreadyCanceled(order),
            OrderStatus::PendingCancel => CancelOutcome::CancelPending(order),
            OrderStatus::Pending | OrderStatus::Placing => CancelOutcome::BeingPlaced(order),
            _ => CancelOutcome::Final(order),
        })
    }

    async fn claim_unanswered_cancels(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let mut state = self.call(StoreOp::ClaimUnansweredCancels)?;
        let now = state.now();
        let mut due: Vec<(OffsetDateTime, OrderId)> = state
            .rows
            .values()
            .filter(|row| {
                row.order.status == OrderStatus::PendingCancel && row.updated_at <= now - older_than
            })
            .map(|row| (row.updated_at, row.order.id))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| {
                let row = state.rows.get_mut(&id).expect("listed above");
                row.updated_at = now;
                row.order.clone()
            })
            .collect())
    }

    async fn expire_due(&self, limit: u32) -> Result<Vec<Order>, StoreError> {
        let mut state = self.call(StoreOp::ExpireDue)?;
        let now = state.now();
        let mut due: Vec<(OffsetDateTime, OrderId)> = state
            .rows
            .values()
            .filter(|row| {
                row.order.status == OrderStatus::Pending
                    && State::expired(row, now)
                    && !row.order.outcome_unknown
            })
            .filter_map(|row| row.order.expires_at.map(|at| (at, row.order.id)))
            .collect();
        due.sort();
        // The oldest expiries first; one statement then moves them (and joins their incident)
        // in id order, as the Postgres store's `array_agg(id ORDER BY id)` does.
        let mut batch: Vec<OrderId> = due
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect();
        batch.sort();
        Ok(batch
            .into_iter()
            .filter_map(|id| {
                state.transition(
                    id,
                    OrderStatus::Expired,
                    "its time in force ran out before it could be placed",
                    |_, _| true,
                    |row, _| row.lease_expires_at = None,
                )
            })
            .collect())
    }

    async fn parked_count(&self) -> Result<u64, StoreError> {
        let state = self.call(StoreOp::ParkedCount)?;
        let now = state.now();
        Ok(state
            .rows
            .values()
            .filter(|row| {
                row.order.status == OrderStatus::Pending
                    && row.enqueued_at.is_none()
                    && row.order.next_attempt_at.is_some_and(|at| at > now)
            })
            .count() as u64)
    }

    async fn stuck_execution_count(&self, older_than: Duration) -> Result<u64, StoreError> {
        let state = self.call(StoreOp::StuckExecutionCount)?;
        let before = state.now() - older_than;
        Ok(state
            .waiting_executions
            .iter()
            .filter(|received| **received < before)
            .count() as u64)
    }

    /// One call however many orders, like the one statement of the Postgres store.
    async fn mark_all_enqueued(&self, sent: &[SentMessage]) -> Result<(), StoreError> {
        let mut state = self.call(StoreOp::MarkEnqueued)?;
        let now = state.now();
        for sent in sent {
            if let Some(row) = state.rows.get_mut(&sent.order_id).filter(|row| {
                row.enqueued_at.is_none() && row.order.next_attempt_at == sent.parked_until
            }) {
                // Like the Postgres store's mark (V11): `updated_at` stays as it was.
                row.enqueued_at = Some(now);
            }
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
                    && row.order.next_attempt_at.is_none_or(|at| at <= now)
                    && (!State::expired(row, now) || row.order.outcome_unknown)
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

    async fn release_expired_idempotency_keys(&self, limit: u32) -> Result<u64, StoreError> {
        let mut state = self.call(StoreOp::ReleaseIdempotencyKeys)?;
        let cutoff = state.now() - state.retention();
        let mut expired: Vec<((String, String), OffsetDateTime)> = state
            .keys
            .iter()
            .filter(|(_, taken)| taken.taken_at <= cutoff)
            .map(|(slot, taken)| (slot.clone(), taken.taken_at))
            .collect();
        expired.sort_by_key(|(_, taken_at)| *taken_at);
        expired.truncate(limit as usize);
        for (slot, _) in &expired {
            state.keys.remove(slot);
        }
        Ok(expired.len() as u64)
    }

    async fn forget_abandoned_admissions(&self, _: Duration) -> Result<u64, StoreError> {
        // Admissions in memory leave nothing behind (`FakeClientOrders` admits, then stores).
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call(StoreOp::Ping).map(drop)
    }
}

/// `pending` → `expired` once its time has run out and no outcome is in doubt.
fn expire(state: &mut State, id: OrderId) -> Option<Order> {
    state.transition(
        id,
        OrderStatus::Expired,
        "its time in force ran out before it could be placed",
        |row, now| {
            row.order.status == OrderStatus::Pending
                && State::expired(row, now)
                && !row.order.outcome_unknown
        },
        |row, _| row.lease_expires_at = None,
    )
}

#[async_trait]
impl IncidentLog for FakeOrderStore {
    async fn unannounced(&self) -> Result<Vec<Incident>, StoreError> {
        let mut state = self.call(StoreOp::Incidents)?;
        let now = state.now();
        Ok(state
            .incidents
            .iter_mut()
            .filter(|i| !i.announced && i.claimed_until.is_none_or(|until| until < now))
            .map(|i| {
                i.claimed_until = Some(now + ANNOUNCE_CLAIM);
                i.incident.clone()
            })
            .collect())
    }

    async fn close_quiet(&self, quiet: Duration) -> Result<Vec<Incident>, StoreError> {
        let mut state = self.call(StoreOp::Incidents)?;
        let now = state.now();
        for open in state.incidents.iter_mut() {
            if open.incident.closed_at.is_none()
                && open.announced
                && open.incident.last_seen_at < now - quiet
            {
                open.incident.closed_at = Some(now);
            }
        }
        Ok(state
            .incidents
            .iter_mut()
            .filter(|i| {
                i.incident.closed_at.is_some()
                    && !i.closed_announced
                    && i.claimed_until.is_none_or(|until| until < now)
            })
            .map(|i| {
                i.claimed_until = Some(now + ANNOUNCE_CLAIM);
                i.incident.clone()
            })
            .collect())
    }

    async fn mark_announced(&self, id: i64) -> Result<(), StoreError> {
        let mut state = self.call(StoreOp::MarkIncident)?;
        if let Some(incident) = state.incidents.iter_mut().find(|i| i.incident.id == id) {
            incident.announced = true;
            incident.claimed_until = None;
        }
        Ok(())
    }

    async fn mark_closed_announced(&self, id: i64) -> Result<(), StoreError> {
        let mut state = self.call(StoreOp::MarkIncident)?;
        if let Some(incident) = state.incidents.iter_mut().find(|i| i.incident.id == id) {
            incident.closed_announced = true;
            incident.claimed_until = None;
        }
        Ok(())
    }

    async fn release_claim(&self, id: i64) -> Result<(), StoreError> {
        let mut state = self.call(StoreOp::MarkIncident)?;
        if let Some(incident) = state.incidents.iter_mut().find(|i| i.incident.id == id) {
            incident.claimed_until = None;
        }
        Ok(())
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
            |row, now| {
                (row.order.status == OrderStatus::Pending || row.lease_expired(now))
                    && (!State::expired(row, now)
                        || row.order.outcome_unknown
                        || row.lease_expired(now))
            },
            |row, now| {
                row.order.attempts += 1;
                row.lease_expires_at = Some(now + lease);
            },
        );
        // The fake's `transition` has already set the status; a takeover is recognisable by the
        // event it appended (placing → placing).
        let claimed = claimed.map(|order| {
            let takeover = state
                .events
                .last()
                .is_some_and(|e| e.order_id == id && e.from == Some(OrderStatus::Placing));
            if takeover {
                let row = state.rows.get_mut(&id).expect("claimed row");
                row.order.outcome_unknown = true;
                row.order.clone()
            } else {
                order
            }
        });
        if let Some(order) = claimed {
            return Ok(ClaimOutcome::Claimed(order));
        }
        if let Some(order) = expire(&mut state, id) {
            return Ok(ClaimOutcome::Expired(order));
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
                row.order.outcome_unknown = false;
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
        plan: RetryPlan,
    ) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::ReleaseForRetry)?;
        // The audit reason as the Postgres store writes it.
        let kind = if plan.outcome_unknown {
            "outcome unknown"
        } else {
            "transient exchange error"
        };
        let reason = match plan.park_until {
            None => format!("{kind}: {error}"),
            Some(until) => format!("{kind}, parked until {until}: {error}"),
        };
        Ok(state.transition(
            id,
            OrderStatus::Pending,
            &reason,
            |row, _| row.order.status == OrderStatus::Placing,
            |row, _| {
                row.order.last_error = Some(error.to_owned());
                row.lease_expires_at = None;
                row.order.next_attempt_at = plan.park_until;
                row.order.outcome_unknown = plan.outcome_unknown;
                if plan.park_until.is_some() {
                    row.enqueued_at = None;
                    row.sweep_claimed_until = None;
                }
            },
        ))
    }

    async fn defer(&self, id: OrderId, until: OffsetDateTime) -> Result<bool, StoreError> {
        let mut state = self.call(StoreOp::Defer)?;
        let now = state.now();
        let Some(row) = state
            .rows
            .get_mut(&id)
            .filter(|row| row.order.status == OrderStatus::Pending)
        else {
            return Ok(false);
        };
        row.order.next_attempt_at = Some(until);
        row.enqueued_at = None;
        row.sweep_claimed_until = None;
        row.updated_at = now;
        Ok(true)
    }

    async fn resend_after_dead_letter(
        &self,
        id: OrderId,
        max: u32,
    ) -> Result<Option<u32>, StoreError> {
        let mut state = self.call(StoreOp::ResendAfterDeadLetter)?;
        let now = state.now();
        let Some(row) = state.rows.get_mut(&id).filter(|row| {
            row.order.status == OrderStatus::Pending && row.dead_letter_resends < max
        }) else {
            return Ok(None);
        };
        row.dead_letter_resends += 1;
        row.enqueued_at = None;
        row.order.next_attempt_at = Some(now);
        row.sweep_claimed_until = None;
        row.updated_at = now;
        Ok(Some(row.dead_letter_resends))
    }

    async fn expire(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::Expire)?;
        Ok(expire(&mut state, id))
    }

    async fn expire_after_lookup(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut state = self.call(StoreOp::ExpireAfterLookup)?;
        Ok(state.transition(
            id,
            OrderStatus::Expired,
            "its time in force ran out and the exchange does not have it",
            |row, now| {
                (row.order.status == OrderStatus::Pending || row.lease_expired(now))
                    && State::expired(row, now)
            },
            |row, _| {
                row.lease_expires_at = None;
                row.order.outcome_unknown = false;
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
                row.order.outcome_unknown = false;
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
                row.dead_letter_resends = 0;
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
    const SOON: RetryPlan = RetryPlan {
        park_until: None,
        outcome_unknown: false,
    };

    fn in_a_day() -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::from_secs(86_400)
    }

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).unwrap()
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_the_same_order_and_refuses_another() {
        let store = FakeOrderStore::new();
        let acme = client("acme");
        let CreateOutcome::Created(first) = store
            .create_order(&acme, &market_order(10), in_a_day(), Some(&key("k1")))
            .await
            .unwrap()
        else {
            panic!("first use of a key creates the order");
        };
        let replay = store
            .create_order(&acme, &market_order(10), in_a_day(), Some(&key("k1")))
            .await
            .unwrap();
        assert!(matches!(replay, CreateOutcome::Replayed(order) if order.id == first.id));
        let reuse = store
            .create_order(&acme, &market_order(11), in_a_day(), Some(&key("k1")))
            .await
            .unwrap();
        assert!(matches!(reuse, CreateOutcome::KeyReused));
        // Keys belong to a client: another client's same key is a new order.
        let other = store
            .create_order(
                &client("globex"),
                &market_order(10),
                in_a_day(),
                Some(&key("k1")),
            )
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
                .release_for_retry(order.id, "x", SOON)
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

    #[tokio::test]
    async fn an_expired_order_is_expired_by_the_claim_unless_its_outcome_is_unknown() {
        let store = FakeOrderStore::new();
        let past = OffsetDateTime::now_utc() - Duration::from_secs(1);
        let waiting = store.seed_expiring(&client("acme"), &market_order(1), past);
        assert!(matches!(
            store.claim_for_placement(waiting.id, LEASE).await.unwrap(),
            ClaimOutcome::Expired(order)
                if order.status == OrderStatus::Expired && order.attempts == 0
        ));
        assert!(store.expire(waiting.id).await.unwrap().is_none(), "final");

        // An attempt's outcome in doubt: claimable past its expiry (to be looked up), never
        // expired without a lookup.
        let doubtful = store.seed_expiring(&client("acme"), &market_order(2), in_a_day());
        store.claim_for_placement(doubtful.id, LEASE).await.unwrap();
        let unknown = RetryPlan {
            park_until: None,
            outcome_unknown: true,
        };
        store
            .release_for_retry(doubtful.id, "timeout", unknown)
            .await
            .unwrap()
            .unwrap();
        store.set_expires_at(doubtful.id, past);
        assert!(store.expire(doubtful.id).await.unwrap().is_none());
        assert!(store.expire_due(10).await.unwrap().is_empty());
        assert!(matches!(
            store.claim_for_placement(doubtful.id, LEASE).await.unwrap(),
            ClaimOutcome::Claimed(order) if order.outcome_unknown && order.attempts == 2
        ));
        // A valid lease keeps the lookup's expiry off; an expired one does not.
        assert!(
            store
                .expire_after_lookup(doubtful.id)
                .await
                .unwrap()
                .is_none()
        );
        store.expire_lease(doubtful.id);
        let expired = store
            .expire_after_lookup(doubtful.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(expired.status, OrderStatus::Expired);
        assert!(!expired.outcome_unknown);
        assert_eq!(store.lease_expires_at(doubtful.id), None);
    }

    #[tokio::test]
    async fn a_parked_release_drops_the_enqueued_mark_until_the_order_is_due() {
        let store = FakeOrderStore::new();
        let order = store.seed(&client("acme"), &market_order(1));
        store.mark_enqueued(&order).await.unwrap();
        store.claim_for_placement(order.id, LEASE).await.unwrap();
        let until = store.now() + Duration::from_secs(600);
        let plan = RetryPlan {
            park_until: Some(until),
            outcome_unknown: false,
        };

        let released = store
            .release_for_retry(order.id, "503", plan)
            .await
            .unwrap()
            .unwrap();

        assert_eq!(released.next_attempt_at, Some(until));
        assert!(!store.is_enqueued(order.id));
        assert_eq!(store.parked_count().await.unwrap(), 1);
        let reason = store.events_of(order.id).pop().unwrap().reason;
        assert_eq!(
            reason,
            format!("transient exchange error, parked until {until}: 503")
        );
        let grace = Duration::from_secs(1);
        store.advance_clock(Duration::from_secs(60));
        assert!(
            store
                .claim_unenqueued(grace, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        store.advance_clock(Duration::from_secs(600));
        assert_eq!(store.parked_count().await.unwrap(), 0);
        let due = store.claim_unenqueued(grace, LEASE, 10).await.unwrap();
        assert_eq!(due.iter().map(|o| o.id).collect::<Vec<_>>(), [order.id]);
    }

    #[tokio::test]
    async fn a_release_through_the_queue_keeps_the_enqueued_mark() {
        let store = FakeOrderStore::new();
        let order = store.seed(&client("acme"), &market_order(1));
        store.mark_enqueued(&order).await.unwrap();
        store.claim_for_placement(order.id, LEASE).await.unwrap();
        let unknown = RetryPlan {
            park_until: None,
            outcome_unknown: true,
        };

        let released = store
            .release_for_retry(order.id, "timeout", unknown)
            .await
            .unwrap()
            .unwrap();

        assert!(store.is_enqueued(order.id));
        assert_eq!(released.next_attempt_at, None);
        assert!(released.outcome_unknown);
        assert_eq!(
            store.events_of(order.id).last().unwrap().reason,
            "outcome unknown: timeout"
        );
        // A placement settles the doubt.
        store.claim_for_placement(order.id, LEASE).await.unwrap();
        let placed = store.record_placed(order.id, "X-1").await.unwrap().unwrap();
        assert!(!placed.outcome_unknown);
    }

    #[tokio::test]
    async fn a_dead_lettered_pending_order_is_sent_again_at_most_max_times() {
        let store = FakeOrderStore::new();
        let pending = store.seed(&client("acme"), &market_order(1));
        let placing = store.seed(&client("acme"), &market_order(2));
        store.mark_enqueued(&pending).await.unwrap();
        store.claim_for_placement(placing.id, LEASE).await.unwrap();

        assert_eq!(
            store.resend_after_dead_letter(pending.id, 2).await.unwrap(),
            Some(1)
        );
        assert!(!store.is_enqueued(pending.id), "the sweeper sends it");
        store.mark_enqueued(&pending).await.unwrap();
        assert_eq!(
            store.resend_after_dead_letter(pending.id, 2).await.unwrap(),
            Some(2)
        );
        assert_eq!(
            store.resend_after_dead_letter(pending.id, 2).await.unwrap(),
            None,
            "spent"
        );
        assert_eq!(
            store.resend_after_dead_letter(placing.id, 2).await.unwrap(),
            None,
            "a placer's"
        );
        assert_eq!(store.events_of(pending.id).len(), 1, "no status change");
    }

    #[tokio::test]
    async fn a_late_mark_leaves_an_order_parked_since_its_send_to_the_sweeper() {
        let store = FakeOrderStore::new();
        let order = store.seed(&client("acme"), &market_order(1));
        let sent = SentMessage::of(&order);
        // A placer took the message first and parked the order until now (an open breaker).
        assert!(store.defer(order.id, store.now()).await.unwrap());

        store.mark_all_enqueued(&[sent]).await.unwrap();

        assert!(!store.is_enqueued(order.id));
        let grace = Duration::from_secs(1);
        store.advance_clock(grace + Duration::from_secs(1));
        let due = store.claim_unenqueued(grace, LEASE, 10).await.unwrap();
        assert_eq!(due.iter().map(|o| o.id).collect::<Vec<_>>(), [order.id]);
        // The sweeper's own mark, with the park it saw, lands.
        store.mark_enqueued(&due[0]).await.unwrap();
        assert!(store.is_enqueued(order.id));
    }

    #[tokio::test]
    async fn defer_parks_only_a_pending_order() {
        let store = FakeOrderStore::new();
        let pending = store.seed(&client("acme"), &market_order(1));
        let placing = store.seed(&client("acme"), &market_order(2));
        store.mark_enqueued(&pending).await.unwrap();
        store.claim_for_placement(placing.id, LEASE).await.unwrap();
        let until = store.now() + Duration::from_secs(60);

        assert!(store.defer(pending.id, until).await.unwrap());
        assert!(!store.defer(placing.id, until).await.unwrap());
        assert!(!store.defer(OrderId::generate(), until).await.unwrap());

        let parked = store.order(pending.id).unwrap();
        assert_eq!(parked.status, OrderStatus::Pending);
        assert_eq!(parked.next_attempt_at, Some(until));
        assert_eq!(parked.attempts, 0, "no attempt");
        assert!(!store.is_enqueued(pending.id));
        assert_eq!(store.events_of(pending.id).len(), 1, "no status change");
        assert_eq!(store.order(placing.id).unwrap().next_attempt_at, None);
    }

    #[tokio::test]
    async fn a_cancel_and_a_claim_exclude_each_other() {
        let store = FakeOrderStore::new();
        let acme = client("acme");
        let canceled = store.seed(&acme, &market_order(1));
        let claimed = store.seed(&acme, &market_order(2));

        assert!(matches!(
            store.cancel_order(&acme, canceled.id).await.unwrap(),
            CancelOutcome::Canceled(order) if order.status == OrderStatus::Canceled
        ));
        assert!(matches!(
            store.claim_for_placement(canceled.id, LEASE).await.unwrap(),
            ClaimOutcome::AlreadyFinal(OrderStatus::Canceled)
        ));
        assert!(matches!(
            store.cancel_order(&acme, canceled.id).await.unwrap(),
            CancelOutcome::AlreadyCanceled(_)
        ));

        store.claim_for_placement(claimed.id, LEASE).await.unwrap();
        assert!(matches!(
            store.cancel_order(&acme, claimed.id).await.unwrap(),
            CancelOutcome::BeingPlaced(_)
        ));
        store.record_placed(claimed.id, "X-1").await.unwrap();
        // Working at the exchange: the cancel becomes a request the exchange answers.
        assert!(matches!(
            store.cancel_order(&acme, claimed.id).await.unwrap(),
            CancelOutcome::CancelRequested(order) if order.status == OrderStatus::PendingCancel
        ));
        assert!(matches!(
            store.cancel_order(&acme, claimed.id).await.unwrap(),
            CancelOutcome::CancelPending(_)
        ));
        assert!(matches!(
            store
                .cancel_order(&client("globex"), claimed.id)
                .await
                .unwrap(),
            CancelOutcome::NotFound
        ));
    }

    #[tokio::test]
    async fn failures_join_one_open_incident_per_kind_which_closes_only_once_announced() {
        let store = FakeOrderStore::new();
        let mut failed = Vec::new();
        for quantity in 1..=12 {
            let order = store.seed(&client("acme"), &market_order(quantity));
            store.claim_for_placement(order.id, LEASE).await.unwrap();
            store
                .release_for_retry(order.id, &format!("error {quantity}"), SOON)
                .await
                .unwrap();
            store
                .mark_failed(order.id, "gave up")
                .await
                .unwrap()
                .unwrap();
            failed.push(order.id.as_uuid());
        }
        let past = OffsetDateTime::now_utc() - Duration::from_secs(1);
        let expiring = store.seed_expiring(&client("acme"), &market_order(1), past);
        store.expire_due(10).await.unwrap();

        let incidents = store.unannounced().await.unwrap();
        assert_eq!(incidents.len(), 2);
        let failures = &incidents[0];
        assert_eq!(failures.kind, "failed");
        assert_eq!(failures.order_count, 12);
        assert_eq!(failures.first_order_ids, failed[..10]);
        assert_eq!(failures.sample_error.as_deref(), Some("error 1"));
        assert_eq!(incidents[1].kind, "expired");
        assert_eq!(incidents[1].first_order_ids, [expiring.id.as_uuid()]);
        assert_eq!(incidents[1].sample_error, None);

        let quiet = Duration::from_secs(300);
        store.advance_clock(quiet + Duration::from_secs(1));
        assert!(
            store.close_quiet(quiet).await.unwrap().is_empty(),
            "not announced: not closed"
        );
        store.mark_announced(failures.id).await.unwrap();
        let closed = store.close_quiet(quiet).await.unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].id, failures.id);
        assert!(closed[0].closed_at.is_some());
        store.mark_closed_announced(failures.id).await.unwrap();
        assert!(store.close_quiet(quiet).await.unwrap().is_empty());

        // A failure after the incident closed opens a new one.
        let order = store.seed(&client("acme"), &market_order(1));
        store
            .mark_failed(order.id, "gave up")
            .await
            .unwrap()
            .unwrap();
        let open: Vec<_> = store
            .unannounced()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == "failed")
            .collect();
        assert_eq!(open.len(), 1);
        assert_ne!(open[0].id, failures.id);
        assert_eq!(open[0].order_count, 1);
        assert_eq!(open[0].sample_error.as_deref(), Some("gave up"));
    }
}
