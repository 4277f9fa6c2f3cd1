//! Admin operations on failed orders: the code behind the `orders-admin` tool, kept here so the
//! tests drive exactly what an admin runs.

use time::OffsetDateTime;

use crate::domain::{OrderId, OrderStatus};
use crate::ports::{OrderLifecycle, OrderQueue, StoreError};
use crate::telemetry::error_chain;
use crate::usecases::enqueue::{BACKGROUND_SEND_TIMEOUT, send_for_placement};

/// What a retry request did for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryResult {
    /// Back to `pending` and sent to the queue.
    Requeued,
    /// Back to `pending`, but the send failed: the sweeper will send it.
    RequeuedSweeperWillSend,
    /// Not `failed` (never was, or someone retried it already): nothing done.
    NotFailed,
    /// `failed`, but its time in force has run out: a retry could only expire it, so it stays
    /// `failed` (the client must place a new order).
    TimeInForcePassed,
}

/// Moves one failed order back to `pending` and sends it again.
pub async fn retry_failed_order(
    store: &dyn OrderLifecycle,
    queue: &dyn OrderQueue,
    id: OrderId,
) -> Result<RetryResult, StoreError> {
    // The retry itself would not refuse it (the placer's claim would expire it): ask first, so
    // that the admin is not told "requeued" for an order that can never be placed. An expiry
    // passing between the two steps still ends it `expired` at the claim.
    match store.find_order(id).await? {
        Some(order) if order.status == OrderStatus::Failed => {
            if order.is_expired_at(OffsetDateTime::now_utc()) {
                return Ok(RetryResult::TimeInForcePassed);
            }
        }
        _ => return Ok(RetryResult::NotFailed),
    }
    let Some(order) = store.requeue_failed(id).await? else {
        return Ok(RetryResult::NotFailed);
    };
    match send_for_placement(store, queue, &order, BACKGROUND_SEND_TIMEOUT).await {
        Ok(()) => {
            tracing::info!(order_id = %id, "failed order requeued by an admin");
            Ok(RetryResult::Requeued)
        }
        Err(error) => {
            tracing::warn!(order_id = %id, error = %error_chain(&error), "requeued; the sweeper will send it");
            Ok(RetryResult::RequeuedSweeperWillSend)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{Order, OrderStatus};
    use crate::fakes::{FakeOrderStore, FakeQueue, QueueBehaviour, client, market_order};
    use crate::ports::OrderStore;

    /// An order that ran out of retries and whose admin alert went out.
    async fn failed_order(store: &FakeOrderStore) -> Order {
        let order = store.seed(&client("acme"), &market_order(10));
        store.mark_enqueued(&order).await.unwrap();
        store
            .mark_failed(order.id, "retries exhausted")
            .await
            .unwrap()
            .unwrap();
        store.mark_alerted(order.id).await.unwrap();
        order
    }

    #[tokio::test]
    async fn a_failed_order_is_requeued_and_sent() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let order = failed_order(&store).await;

        let result = retry_failed_order(&store, &queue, order.id).await.unwrap();

        assert_eq!(result, RetryResult::Requeued);
        let requeued = store.order(order.id).unwrap();
        assert_eq!(requeued.status, OrderStatus::Pending);
        assert_eq!(requeued.alerted_at, None, "a new failure alerts again");
        assert_eq!(queue.sent_ids(), [order.id]);
        assert!(store.is_enqueued(order.id));
        let last = store.events_of(order.id).pop().unwrap();
        assert_eq!(
            (last.from, last.to, last.reason.as_str()),
            (
                Some(OrderStatus::Failed),
                OrderStatus::Pending,
                "admin retry"
            )
        );
    }

    #[tokio::test]
    async fn an_order_that_is_not_failed_is_left_alone() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let pending = store.seed(&client("acme"), &market_order(1));
        let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(1));
        let retried_twice = failed_order(&store).await;
        retry_failed_order(&store, &queue, retried_twice.id)
            .await
            .unwrap();

        for id in [pending.id, ghost.id, retried_twice.id] {
            let result = retry_failed_order(&store, &queue, id).await.unwrap();
            assert_eq!(result, RetryResult::NotFailed, "{id}");
        }
        assert_eq!(queue.sent_ids(), [retried_twice.id]);
        assert_eq!(
            store.order(pending.id).unwrap().status,
            OrderStatus::Pending
        );
    }

    #[tokio::test]
    async fn a_requeued_order_whose_send_fails_is_left_for_the_sweeper() {
        let store = FakeOrderStore::new();
        let queue = FakeQueue::behaving(QueueBehaviour::Fail);
        let order = failed_order(&store).await;

        let result = retry_failed_order(&store, &queue, order.id).await.unwrap();

        assert_eq!(result, RetryResult::RequeuedSweeperWillSend);
        assert_eq!(store.order(order.id).unwrap().status, OrderStatus::Pending);
        assert!(!store.is_enqueued(order.id));

        // The sweeper's query finds it once its grace period is over.
        let grace = Duration::from_secs(30);
        store.advance_clock(grace + Duration::from_secs(1));
        let stranded = store
            .claim_unenqueued(grace, Duration::from_secs(60), 10)
            .await
            .unwrap();
        assert_eq!(
            stranded.iter().map(|o| o.id).collect::<Vec<_>>(),
            [order.id]
        );
    }

    #[tokio::test]
    async fn a_failed_order_whose_time_ran_out_is_not_retried() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let order = failed_order(&store).await;
        store.set_expires_at(
            order.id,
            time::OffsetDateTime::now_utc() - Duration::from_secs(1),
        );

        let result = retry_failed_order(&store, &queue, order.id).await.unwrap();

        assert_eq!(result, RetryResult::TimeInForcePassed);
        assert_eq!(queue.attempts(), 0);
        assert_eq!(store.order(order.id).unwrap().status, OrderStatus::Failed);
        assert_eq!(store.calls(crate::fakes::StoreOp::RequeueFailed), 0);
    }

    #[tokio::test]
    async fn a_store_outage_is_an_error_and_sends_nothing() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let order = failed_order(&store).await;
        store.set_down(true);

        let result = retry_failed_order(&store, &queue, order.id).await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(queue.attempts(), 0);
        assert_eq!(store.order(order.id).unwrap().status, OrderStatus::Failed);
    }
}
