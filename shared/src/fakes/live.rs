//! The live-update ports in memory: an audit trail whose events can be held back as if their
//! transaction had not committed yet (`FakeOrderUpdates`), the connections table
//! (`FakeLiveConnections`) and API Gateway's side of the connections (`FakePush`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::outage;
use crate::domain::{ClientId, OrderId, OrderStatus};
use crate::ports::{
    ConnectionPush, LiveConnection, LiveConnections, OrderUpdate, OrderUpdateStore, PushError,
    StoreError, UpdatePoll,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Trail {
    /// Committed events by id.
    events: BTreeMap<i64, OrderUpdate>,
    next_id: i64,
    /// The fake transaction clock: `xmin` and `xmax` of the next read.
    xmin: u64,
    gap_bound: u64,
}

/// The audit trail in memory. [`record`](Self::record) commits an event at once;
/// [`reserve`](Self::reserve) draws an id whose event commits only at
/// [`commit`](Self::commit), as a transaction still running would.
#[derive(Default)]
pub struct FakeOrderUpdates {
    trail: Mutex<Trail>,
}

impl FakeOrderUpdates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits a change of `order` (of `client`) to `status`; returns its event id.
    pub fn record(&self, client: &ClientId, order: OrderId, status: OrderStatus) -> i64 {
        let id = self.reserve();
        self.commit(id, client, order, status);
        id
    }

    /// Draws the next event id for an event that is not committed yet.
    pub fn reserve(&self) -> i64 {
        let mut trail = lock(&self.trail);
        trail.next_id += 1;
        trail.next_id
    }

    /// Commits the event of a reserved id.
    pub fn commit(&self, id: i64, client: &ClientId, order: OrderId, status: OrderStatus) {
        let mut trail = lock(&self.trail);
        trail.events.insert(
            id,
            OrderUpdate {
                event_id: id,
                order_id: order,
                client_id: client.clone(),
                from: None,
                status,
                reason: format!("event {id}"),
                at: OffsetDateTime::now_utc(),
            },
        );
    }

    /// Sets what the next reads report: every transaction below `xmin` has ended, and every one
    /// that has started is below `gap_bound`.
    pub fn set_snapshot(&self, xmin: u64, gap_bound: u64) {
        let mut trail = lock(&self.trail);
        trail.xmin = xmin;
        trail.gap_bound = gap_bound;
    }
}

#[async_trait]
impl OrderUpdateStore for FakeOrderUpdates {
    async fn updates_after(&self, after: i64, limit: u32) -> Result<UpdatePoll, StoreError> {
        let trail = lock(&self.trail);
        Ok(UpdatePoll {
            updates: trail
                .events
                .range(after + 1..)
                .take(limit as usize)
                .map(|(_, u)| u.clone())
                .collect(),
            xmin: trail.xmin,
            gap_bound: trail.gap_bound,
        })
    }

    async fn client_updates(
        &self,
        client: &ClientId,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<OrderUpdate>, StoreError> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let trail = lock(&self.trail);
        Ok(trail
            .events
            .range(after + 1..=up_to)
            .map(|(_, u)| u)
            .filter(|u| u.client_id == *client)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        Ok(lock(&self.trail).events.keys().last().copied().unwrap_or(0))
    }
}

#[derive(Default)]
struct Connections {
    rows: BTreeMap<String, LiveConnection>,
    revoked_keys: HashSet<String>,
}

/// The connections table in memory, with keys that can be revoked.
#[derive(Default)]
pub struct FakeLiveConnections {
    state: Mutex<Connections>,
}

impl FakeLiveConnections {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn revoke_key(&self, key_id: &str) {
        lock(&self.state).revoked_keys.insert(key_id.to_owned());
    }

    pub fn ids(&self) -> Vec<String> {
        lock(&self.state).rows.keys().cloned().collect()
    }
}

#[async_trait]
impl LiveConnections for FakeLiveConnections {
    async fn connect(&self, connection: &LiveConnection) -> Result<(), StoreError> {
        lock(&self.state)
            .rows
            .insert(connection.connection_id.clone(), connection.clone());
        Ok(())
    }

    async fn disconnect(&self, connection_id: &str) -> Result<(), StoreError> {
        lock(&self.state).rows.remove(connection_id);
        Ok(())
    }

    async fn all(&self) -> Result<Vec<LiveConnection>, StoreError> {
        Ok(lock(&self.state).rows.values().cloned().collect())
    }

    async fn revoked(&self) -> Result<Vec<String>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .rows
            .values()
            .filter(|c| state.revoked_keys.contains(c.key_id.as_str()))
            .map(|c| c.connection_id.clone())
            .collect())
    }
}

/// How a connection answers a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushAnswer {
    Deliver,
    Gone,
    Fail,
}

#[derive(Default)]
struct Pushes {
    received: HashMap<String, Vec<String>>,
    closed: Vec<String>,
    /// Answers for the next pushes to a connection (then `Deliver`).
    answers: HashMap<String, Vec<PushAnswer>>,
}

/// API Gateway's side: what each connection received, and scripted failures.
#[derive(Default)]
pub struct FakePush {
    state: Mutex<Pushes>,
}

impl FakePush {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next pushes to `connection_id` answer these, in order.
    pub fn script(&self, connection_id: &str, answers: &[PushAnswer]) {
        lock(&self.state)
            .answers
            .entry(connection_id.to_owned())
            .or_default()
            .extend(answers.iter().rev());
    }

    /// The messages a connection received, in order.
    pub fn received(&self, connection_id: &str) -> Vec<serde_json::Value> {
        lock(&self.state)
            .received
            .get(connection_id)
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| serde_json::from_str(m).expect("JSON"))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn closed(&self) -> Vec<String> {
        lock(&self.state).closed.clone()
    }
}

#[async_trait]
impl ConnectionPush for FakePush {
    async fn push(&self, connection_id: &str, message: &str) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        let answer = state
            .answers
            .get_mut(connection_id)
            .and_then(Vec::pop)
            .unwrap_or(PushAnswer::Deliver);
        match answer {
            PushAnswer::Deliver => {
                state
                    .received
                    .entry(connection_id.to_owned())
                    .or_default()
                    .push(message.to_owned());
                Ok(())
            }
            PushAnswer::Gone => Err(PushError::Gone),
            PushAnswer::Fail => Err(PushError::Failed(outage("API Gateway"))),
        }
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        lock(&self.state).closed.push(connection_id.to_owned());
        Ok(())
    }
}
