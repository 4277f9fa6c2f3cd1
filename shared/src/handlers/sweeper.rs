//! The sweeper's handler: enqueue orders that were committed but whose message never reached
//! the queue (the api's one send attempt failed, or its Lambda died between commit and send).

use std::time::Duration;

use tracing::Instrument;

use crate::ports::{OrderQueue, OrderStore, StoreError};
use crate::telemetry::error_chain;
use crate::usecases::enqueue::{BACKGROUND_SEND_TIMEOUT, send_for_placement};

/// How the sweeper picks stranded orders.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Orders younger than this are left alone: their request may still be sending them.
    pub grace: Duration,
    /// How long a claimed order is hidden from other sweepers while this one sends it.
    pub claim_for: Duration,
    /// Orders per run; the rest wait for the next run.
    pub batch_size: u32,
}

/// What one sweep did, logged and returned to tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub claimed: usize,
    pub enqueued: usize,
    pub failed: usize,
}

/// One sweep: claim a batch of stranded orders, send each, mark the sent ones. A failed send is
/// retried by a later sweep once the claim expires. Safe to run concurrently with itself.
pub async fn sweep_once(
    store: &dyn OrderStore,
    queue: &dyn OrderQueue,
    settings: &SweepSettings,
) -> Result<SweepReport, StoreError> {
    let orders = store
        .claim_unenqueued(settings.grace, settings.claim_for, settings.batch_size)
        .await?;
    let mut report = SweepReport {
        claimed: orders.len(),
        ..SweepReport::default()
    };
    for order in &orders {
        let span = tracing::info_span!("sweep_order", order_id = %order.id);
        let sent = send_for_placement(store, queue, order, BACKGROUND_SEND_TIMEOUT)
            .instrument(span.clone())
            .await;
        match sent {
            Ok(()) => {
                report.enqueued += 1;
                span.in_scope(|| tracing::info!("stranded order enqueued"));
            }
            Err(error) => {
                report.failed += 1;
                span.in_scope(|| {
                    tracing::error!(error = %error_chain(&error), "could not enqueue stranded order")
                });
            }
        }
    }
    if report.claimed > 0 {
        tracing::info!(
            claimed = report.claimed,
            enqueued = report.enqueued,
            failed = report.failed,
            "sweep finished"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Order, OrderStatus};
    use crate::fakes::{FakeOrderStore, FakeQueue, QueueBehaviour, StoreOp, client, market_order};
    use crate::ports::OrderLifecycle;

    const SETTINGS: SweepSettings = SweepSettings {
        grace: Duration::from_secs(30),
        claim_for: Duration::from_secs(60),
        batch_size: 500,
    };

    fn stranded(store: &FakeOrderStore, count: usize) -> Vec<Order> {
        (0..count)
            .map(|i| store.seed(&client("acme"), &market_order(i as i64 + 1)))
            .collect()
    }

    /// Lets the grace period of every order created so far run out.
    fn after_grace(store: &FakeOrderStore) {
        store.advance_clock(SETTINGS.grace + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn stranded_orders_are_sent_and_marked_once() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let orders = stranded(&store, 2);
        let already_sent = store.seed(&client("acme"), &market_order(9));
        store.mark_enqueued(already_sent.id).await.unwrap();
        after_grace(&store);
        let young = store.seed(&client("acme"), &market_order(7));

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(
            report,
            SweepReport {
                claimed: 2,
                enqueued: 2,
                failed: 0
            }
        );
        assert_eq!(queue.sent_ids(), [orders[0].id, orders[1].id]);
        assert!(orders.iter().all(|order| store.is_enqueued(order.id)));
        assert!(!store.is_enqueued(young.id));

        store.advance_clock(SETTINGS.claim_for + Duration::from_secs(1));
        let again = sweep_once(&store, &queue, &SETTINGS).await.unwrap();
        assert_eq!(again.claimed, 1, "only the young order, now past its grace");
        assert_eq!(queue.sent_ids()[2..], [young.id]);
    }

    #[tokio::test]
    async fn orders_the_placer_has_taken_are_not_swept() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let orders = stranded(&store, 2);
        store
            .claim_for_placement(orders[0].id, Duration::from_secs(30))
            .await
            .unwrap();
        store
            .record_placed(orders[0].id, "EX-1")
            .await
            .unwrap()
            .unwrap();
        after_grace(&store);

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(report.claimed, 1);
        assert_eq!(queue.sent_ids(), [orders[1].id]);
        assert_eq!(
            store.order(orders[0].id).unwrap().status,
            OrderStatus::Placed
        );
    }

    #[tokio::test]
    async fn a_sweep_takes_at_most_its_batch_oldest_first() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let orders = stranded(&store, 3);
        after_grace(&store);
        let small = SweepSettings {
            batch_size: 2,
            ..SETTINGS
        };

        let report = sweep_once(&store, &queue, &small).await.unwrap();

        assert_eq!(report.claimed, 2);
        assert_eq!(queue.sent_ids(), [orders[0].id, orders[1].id]);
    }

    #[tokio::test]
    async fn a_failed_send_is_counted_and_left_for_a_later_sweep() {
        let store = FakeOrderStore::new();
        let queue = FakeQueue::behaving(QueueBehaviour::Fail);
        let orders = stranded(&store, 2);
        after_grace(&store);

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(
            report,
            SweepReport {
                claimed: 2,
                enqueued: 0,
                failed: 2
            }
        );
        assert!(orders.iter().all(|order| !store.is_enqueued(order.id)));
        // Claimed orders are hidden from a concurrent sweep until the claim runs out.
        queue.set_behaviour(QueueBehaviour::Accept);
        assert_eq!(
            sweep_once(&store, &queue, &SETTINGS).await.unwrap().claimed,
            0
        );
        store.advance_clock(SETTINGS.claim_for + Duration::from_secs(1));
        let later = sweep_once(&store, &queue, &SETTINGS).await.unwrap();
        assert_eq!(later.enqueued, 2);
        assert!(orders.iter().all(|order| store.is_enqueued(order.id)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_queue_fails_each_order_after_the_background_timeout() {
        let store = FakeOrderStore::new();
        let queue = FakeQueue::behaving(QueueBehaviour::Hang);
        let orders = stranded(&store, 3);
        after_grace(&store);
        let started = tokio::time::Instant::now();

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(report.failed, 3);
        assert!(orders.iter().all(|order| !store.is_enqueued(order.id)));
        // One bounded attempt per order, one after the other.
        assert_eq!(started.elapsed(), BACKGROUND_SEND_TIMEOUT * 3);
    }

    #[tokio::test]
    async fn a_lost_mark_costs_one_duplicate_message() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let orders = stranded(&store, 1);
        after_grace(&store);
        store.fail(StoreOp::MarkEnqueued);

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();
        assert_eq!(
            report.enqueued, 1,
            "the send worked; the mark is only an optimisation"
        );

        store.recover(StoreOp::MarkEnqueued);
        store.advance_clock(SETTINGS.claim_for + Duration::from_secs(1));
        sweep_once(&store, &queue, &SETTINGS).await.unwrap();
        assert_eq!(queue.sent_ids(), [orders[0].id, orders[0].id]);
        assert!(store.is_enqueued(orders[0].id));
    }

    #[tokio::test]
    async fn a_store_outage_fails_the_sweep_without_sending() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        stranded(&store, 1);
        after_grace(&store);
        store.set_down(true);

        let result = sweep_once(&store, &queue, &SETTINGS).await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(queue.attempts(), 0);
    }
}
