//! "Send to the queue, then mark enqueued": how an order reaches the placer, whoever sends it.
//!
//! The order's commit is what guarantees its placement; this send is an optimisation of the
//! latency only. A send that fails or times out leaves the order unmarked, and the sweeper sends
//! it later. The mark only saves the sweeper that work, so a lost mark costs one duplicate message
//! (which the placer's conditional claim makes harmless) and is logged, not returned.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::domain::{Order, OrderId};
use crate::ports::{OrderQueue, OrderStore, QueueError, SentMessage};
use crate::telemetry::error_chain;

/// The bound of a background send (the sweeper, the admin retry): long enough for the SDK's own
/// retries, short enough that one hung call cannot stall a sweep of hundreds of orders.
pub const BACKGROUND_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The send did not happen; the order stays unmarked for the sweeper.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The queue refused or could not be reached.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No answer within the bound; the message may still arrive (a harmless duplicate then).
    #[error("sending order {order_id} timed out after {after:?}")]
    TimedOut { order_id: OrderId, after: Duration },
}

/// Sends one placement message for `order` within `timeout`, then marks the order enqueued
/// (the sweeper and the admin retry: nobody waits on them).
pub async fn send_for_placement(
    store: &dyn OrderStore,
    queue: &dyn OrderQueue,
    order: &Order,
    timeout: Duration,
) -> Result<(), EnqueueError> {
    send_within(queue, order, timeout).await?;
    if let Err(error) = store.mark_enqueued(order).await {
        tracing::warn!(
            order_id = %order.id,
            error = %error_chain(&error),
            "enqueued but not marked; the sweeper will send a harmless duplicate"
        );
    }
    Ok(())
}

/// Sends one placement message for `order` within `timeout`. This is the only place that bounds
/// a send: callers pass their bound, adapters add none.
pub async fn send_within(
    queue: &dyn OrderQueue,
    order: &Order,
    timeout: Duration,
) -> Result<(), EnqueueError> {
    match tokio::time::timeout(timeout, queue.enqueue(order)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(EnqueueError::TimedOut {
            order_id: order.id,
            after: timeout,
        }),
    }
}

/// Sends one cancel message for a working order within `timeout`. Nothing is marked: the order's
/// `pending_cancel` is the record, and the sweeper sends the cancel again while it lasts.
pub async fn send_cancel_within(
    queue: &dyn OrderQueue,
    order: &Order,
    timeout: Duration,
) -> Result<(), EnqueueError> {
    match tokio::time::timeout(timeout, queue.enqueue_cancel(order)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(EnqueueError::TimedOut {
            order_id: order.id,
            after: timeout,
        }),
    }
}

/// How many marks wait at most; past that a mark is dropped (a harmless duplicate message later).
const MARKS_WAITING: usize = 10_000;
/// Marks written by one statement at most.
const MARKS_PER_STATEMENT: usize = 500;
/// How long the writer lets marks gather after the first one arrives. Each statement commits
/// with its own WAL flush; at low concurrency one mark per order would add a disk flush to every
/// order (benchmarks: 2.15 flushes per POST at one connection). A mark that waits this long
/// costs nothing: the sweeper looks only at orders unmarked for its grace period (seconds).
const MARKS_LINGER: Duration = Duration::from_millis(50);

/// The api's enqueued marks, written by a background task many orders per statement, so that a
/// `POST /orders` answers as soon as its message is sent. Whatever is waiting when the process
/// ends is lost, which costs one duplicate message per order (the sweeper sends those after its
/// grace period); in Lambda the task runs between invocations while the instance is not frozen.
#[derive(Clone)]
pub struct EnqueuedMarks {
    sender: mpsc::Sender<SentMessage>,
}

impl EnqueuedMarks {
    /// Starts the writer on the current tokio runtime; it ends when the last handle is dropped.
    pub fn start(store: Arc<dyn OrderStore>) -> Self {
        let (sender, mut receiver) = mpsc::channel(MARKS_WAITING);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MARKS_PER_STATEMENT);
            while receiver.recv_many(&mut batch, MARKS_PER_STATEMENT).await > 0 {
                let deadline = tokio::time::Instant::now() + MARKS_LINGER;
                while batch.len() < MARKS_PER_STATEMENT {
                    let room = MARKS_PER_STATEMENT - batch.len();
                    match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, room))
                        .await
                    {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                if let Err(error) = store.mark_all_enqueued(&batch).await {
                    tracing::warn!(
                        orders = batch.len(),
                        first_order_id = %batch[0].order_id,
                        error = %error_chain(&error),
                        "enqueued but not marked; the sweeper will send harmless duplicates"
                    );
                }
                batch.clear();
            }
        });
        Self { sender }
    }

    /// Queues the mark of an order whose message was sent.
    pub fn record(&self, order: &Order) {
        if self.sender.try_send(SentMessage::of(order)).is_err() {
            tracing::warn!(order_id = %order.id, "too many enqueued marks waiting; this one is dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeOrderStore, FakeQueue, QueueBehaviour, StoreOp, client, market_order};

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_sent_order_is_marked_enqueued() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let order = store.seed(&client("acme"), &market_order(10));

        send_for_placement(&store, &queue, &order, TIMEOUT)
            .await
            .unwrap();

        assert_eq!(queue.sent_ids(), [order.id]);
        assert_eq!(queue.sent()[0].quantity, 10);
        assert!(store.is_enqueued(order.id));
    }

    #[tokio::test]
    async fn a_refused_send_leaves_the_order_for_the_sweeper() {
        let store = FakeOrderStore::new();
        let queue = FakeQueue::behaving(QueueBehaviour::Fail);
        let order = store.seed(&client("acme"), &market_order(10));

        let result = send_for_placement(&store, &queue, &order, TIMEOUT).await;

        assert!(matches!(result, Err(EnqueueError::Queue(e)) if e.order_id == order.id));
        assert!(!store.is_enqueued(order.id));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_send_times_out_after_the_bound_and_leaves_the_order_unmarked() {
        let store = FakeOrderStore::new();
        let queue = FakeQueue::behaving(QueueBehaviour::Hang);
        let order = store.seed(&client("acme"), &market_order(10));
        let started = tokio::time::Instant::now();

        let result = send_for_placement(&store, &queue, &order, TIMEOUT).await;

        assert!(matches!(
            result,
            Err(EnqueueError::TimedOut { order_id, after }) if order_id == order.id && after == TIMEOUT
        ));
        assert_eq!(started.elapsed(), TIMEOUT);
        assert!(!store.is_enqueued(order.id));
    }

    #[tokio::test(start_paused = true)]
    async fn marks_recorded_close_together_are_written_by_one_statement() {
        let store = Arc::new(FakeOrderStore::new());
        let orders: Vec<_> = (1..=3)
            .map(|n| store.seed(&client("acme"), &market_order(n)))
            .collect();
        let marks = EnqueuedMarks::start(store.clone());

        marks.record(&orders[0]);
        tokio::time::sleep(MARKS_LINGER / 2).await;
        marks.record(&orders[1]);
        marks.record(&orders[2]);
        tokio::time::sleep(MARKS_LINGER).await;

        assert!(orders.iter().all(|o| store.is_enqueued(o.id)));
        assert_eq!(store.calls(StoreOp::MarkEnqueued), 1);

        // The next mark after the linger is a statement of its own.
        let later = store.seed(&client("acme"), &market_order(4));
        marks.record(&later);
        tokio::time::sleep(MARKS_LINGER * 2).await;
        assert!(store.is_enqueued(later.id));
        assert_eq!(store.calls(StoreOp::MarkEnqueued), 2);
    }

    #[tokio::test]
    async fn a_lost_mark_is_no_error_because_the_message_was_sent() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let order = store.seed(&client("acme"), &market_order(10));
        store.fail(StoreOp::MarkEnqueued);

        send_for_placement(&store, &queue, &order, TIMEOUT)
            .await
            .unwrap();

        assert_eq!(queue.sent_ids(), [order.id]);
        assert!(!store.is_enqueued(order.id));
    }
}
