//! `OrderQueue` and `RetryScheduler` in memory.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::outage;
use crate::domain::{Order, OrderId};
use crate::ports::{BoxError, OrderQueue, PlacementMessage, QueueError, RetryScheduler};

/// How the fake queue answers a send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueBehaviour {
    /// Takes the message.
    #[default]
    Accept,
    /// Refuses it at once, as an unreachable queue would.
    Fail,
    /// Never answers: only the caller's timeout ends the send.
    Hang,
}

#[derive(Default)]
struct QueueState {
    behaviour: QueueBehaviour,
    sent: Vec<PlacementMessage>,
    attempts: usize,
}

/// The orders queue in memory: records every message it took, as the placer would receive it.
#[derive(Default)]
pub struct FakeQueue {
    state: Mutex<QueueState>,
}

impl FakeQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue that answers every send with `behaviour`.
    pub fn behaving(behaviour: QueueBehaviour) -> Self {
        let queue = Self::default();
        queue.set_behaviour(behaviour);
        queue
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_behaviour(&self, behaviour: QueueBehaviour) {
        self.lock().behaviour = behaviour;
    }

    /// The messages the queue took, in the order it took them.
    pub fn sent(&self) -> Vec<PlacementMessage> {
        self.lock().sent.clone()
    }

    /// The order ids of the messages the queue took.
    pub fn sent_ids(&self) -> Vec<OrderId> {
        self.lock()
            .sent
            .iter()
            .map(|message| OrderId::from(message.order_id))
            .collect()
    }

    /// Every send, taken, refused or hung.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }
}

#[async_trait]
impl OrderQueue for FakeQueue {
    async fn enqueue(&self, order: &Order) -> Result<(), QueueError> {
        self.send(order, PlacementMessage::for_order(order)).await
    }

    async fn enqueue_cancel(&self, order: &Order) -> Result<(), QueueError> {
        self.send(order, PlacementMessage::cancel_for(order)).await
    }
}

impl FakeQueue {
    async fn send(&self, order: &Order, message: PlacementMessage) -> Result<(), QueueError> {
        let behaviour = {
            let mut state = self.lock();
            state.attempts += 1;
            if state.behaviour == QueueBehaviour::Accept {
                state.sent.push(message);
            }
            state.behaviour
        };
        match behaviour {
            QueueBehaviour::Accept => Ok(()),
            QueueBehaviour::Fail => Err(QueueError {
                order_id: order.id,
                source: outage("the orders queue"),
            }),
            QueueBehaviour::Hang => std::future::pending().await,
        }
    }
}

#[derive(Default)]
struct RetriesState {
    failing: bool,
    scheduled: Vec<(String, Duration)>,
}

/// Records the back-off delays a handler asked for, per receipt handle.
#[derive(Default)]
pub struct FakeRetries {
    state: Mutex<RetriesState>,
}

impl FakeRetries {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, RetriesState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every delay asked for, with the receipt handle of its message (failed calls included).
    pub fn scheduled(&self) -> Vec<(String, Duration)> {
        self.lock().scheduled.clone()
    }

    /// The delay asked for the message with this receipt handle, if any (the last one).
    pub fn delay_for(&self, receipt_handle: &str) -> Option<Duration> {
        self.lock()
            .scheduled
            .iter()
            .rev()
            .find(|(handle, _)| handle == receipt_handle)
            .map(|(_, delay)| *delay)
    }

    /// Makes every call fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }
}

#[async_trait]
impl RetryScheduler for FakeRetries {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), BoxError> {
        let mut state = self.lock();
        state.scheduled.push((receipt_handle.to_owned(), delay));
        if state.failing {
            return Err(outage("the orders queue"));
        }
        Ok(())
    }
}
