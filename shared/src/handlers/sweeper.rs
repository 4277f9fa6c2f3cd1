//! The sweeper's handler, on a schedule: expire the waiting orders whose time in force ran out,
//! enqueue the orders whose message is not in the queue (the api's one send attempt failed, its
//! Lambda died between commit and send, or the order was parked after a failure and is due
//! now), report how many orders are parked and how many execution reports are stuck, and tell
//! admins about incidents.

use std::time::Duration;

use futures::StreamExt;
use tracing::Instrument;

use crate::domain::Order;
use crate::ports::{AlertPublisher, IncidentLog, OrderQueue, OrderStore, StoreError};
use crate::telemetry::error_chain;
use crate::usecases::enqueue::{BACKGROUND_SEND_TIMEOUT, send_cancel_within, send_for_placement};
use crate::usecases::incidents::{Announced, announce_incidents};

/// Orders one sweep sends at the same time.
const SEND_CONCURRENCY: usize = 16;

/// How the sweeper picks stranded orders.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Orders younger than this are left alone: their request may still be sending them.
    pub grace: Duration,
    /// How long a claimed order is hidden from other sweepers while this one sends it.
    pub claim_for: Duration,
    /// Orders per run (to send, and to expire); the rest wait for the next run.
    pub batch_size: u32,
    /// An incident is over once no order failed or expired for this long.
    pub alert_window: Duration,
}

/// How old a `POST`'s admission must be to count as abandoned: its insert follows at once, on the
/// same connection, so a minute is far past any live request.
pub const ABANDONED_ADMISSION_AGE: Duration = Duration::from_secs(60);

/// How long a client's cancel of a working order may stay unanswered before its cancel is sent
/// again. The exchange answers a delivered cancel within seconds (its report reaches the order
/// through the ingester); a minute means the message was lost, dropped by the placer during a
/// long exchange outage, or never sent. Sending it again is harmless: the exchange's cancel is
/// idempotent.
pub const UNANSWERED_CANCEL_AGE: Duration = Duration::from_secs(60);

/// How long an execution report may wait unapplied before it counts as stuck. A report waits
/// for its order's `placed` record, which normally follows within seconds; after a lost answer
/// the placer learns of the placement by looking the order up, after its retry back-off
/// (`RETRY_MAX_SECONDS`, 5 minutes by default) — a quarter of an hour is past all of that, so a
/// report still waiting contradicts its order or names one we do not have.
pub const STUCK_EXECUTION_AGE: Duration = Duration::from_secs(15 * 60);

/// Sends the cancel again for every order whose cancel has been unanswered for
/// [`UNANSWERED_CANCEL_AGE`] (up to `limit`); returns how many were sent.
pub async fn resend_unanswered_cancels(
    store: &dyn OrderStore,
    queue: &dyn OrderQueue,
    limit: u32,
) -> Result<usize, StoreError> {
    let orders = store
        .claim_unanswered_cancels(UNANSWERED_CANCEL_AGE, limit)
        .await?;
    let mut sent = 0;
    for order in &orders {
        match send_cancel_within(queue, order, BACKGROUND_SEND_TIMEOUT).await {
            Ok(()) => sent += 1,
            // Claimed again after another `UNANSWERED_CANCEL_AGE`.
            Err(error) => tracing::warn!(
                order_id = %order.id,
                error = %error_chain(&error),
                "could not send the cancel again; the next sweep will"
            ),
        }
    }
    if !orders.is_empty() {
        tracing::info!(
            claimed = orders.len(),
            sent,
            "unanswered cancels sent again"
        );
    }
    Ok(sent)
}

/// What one sweep did, logged and returned to tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub claimed: usize,
    pub enqueued: usize,
    pub failed: usize,
    /// Waiting orders whose time in force ran out: now `expired`, never sent.
    pub expired: usize,
}

/// The ports of one scheduled run.
#[derive(Clone, Copy)]
pub struct SweeperPorts<'a> {
    pub store: &'a dyn OrderStore,
    pub incidents: &'a dyn IncidentLog,
    pub queue: &'a dyn OrderQueue,
    pub alerts: &'a dyn AlertPublisher,
}

/// What a scheduled run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub sweep: SweepReport,
    pub parked: u64,
    /// Execution reports waiting unapplied for longer than [`STUCK_EXECUTION_AGE`].
    pub stuck_executions: u64,
    pub incidents: Announced,
}

/// One scheduled run: the sweep, the parked-orders and stuck-executions gauges, and the
/// incident alerts. A failed
/// step is logged and the others still run; the run fails only when the sweep itself could not.
pub async fn run_scheduled(
    ports: SweeperPorts<'_>,
    settings: &SweepSettings,
) -> Result<TickReport, StoreError> {
    let sweep = sweep_once(ports.store, ports.queue, settings).await;
    let parked = match ports.store.parked_count().await {
        Ok(parked) => {
            crate::telemetry::metrics::parked_orders(parked);
            parked
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not count parked orders");
            0
        }
    };
    let stuck_executions = match ports.store.stuck_execution_count(STUCK_EXECUTION_AGE).await {
        Ok(stuck) => {
            crate::telemetry::metrics::stuck_executions(stuck);
            if stuck > 0 {
                tracing::warn!(
                    stuck,
                    "execution reports wait unapplied for more than {} minutes; an admin must \
                     look: SELECT * FROM executions WHERE applied_at IS NULL",
                    STUCK_EXECUTION_AGE.as_secs() / 60
                );
            }
            stuck
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not count stuck execution reports");
            0
        }
    };
    let incidents =
        match announce_incidents(ports.incidents, ports.alerts, settings.alert_window).await {
            Ok(announced) => announced,
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "could not announce incidents");
                Announced::default()
            }
        };
    Ok(TickReport {
        sweep: sweep?,
        parked,
        stuck_executions,
        incidents,
    })
}

/// Sends one stranded order in its own span; `true` when it reached the queue.
async fn send_stranded(store: &dyn OrderStore, queue: &dyn OrderQueue, order: &Order) -> bool {
    let span = tracing::info_span!("sweep_order", order_id = %order.id);
    let sent = send_for_placement(store, queue, order, BACKGROUND_SEND_TIMEOUT)
        .instrument(span.clone())
        .await;
    span.in_scope(|| match &sent {
        Ok(()) => tracing::info!("stranded order enqueued"),
        Err(error) => {
            tracing::error!(error = %error_chain(error), "could not enqueue stranded order")
        }
    });
    sent.is_ok()
}

/// One sweep: expire what ran out, claim a batch of orders due to be sent, send them (a few at
/// a time), mark the sent ones. A failed send is retried by a later sweep once the claim
/// expires. Safe to run concurrently with itself.
pub async fn sweep_once(
    store: &dyn OrderStore,
    queue: &dyn OrderQueue,
    settings: &SweepSettings,
) -> Result<SweepReport, StoreError> {
    // Expired first, so that nothing past its time is sent below.
    let expired = store.expire_due(settings.batch_size).await?;
    if !expired.is_empty() {
        crate::telemetry::metrics::orders_expired(expired.len());
        tracing::warn!(
            count = expired.len(),
            "waiting orders expired before they could be placed"
        );
    }
    let orders = store
        .claim_unenqueued(settings.grace, settings.claim_for, settings.batch_size)
        .await?;
    let mut report = SweepReport {
        claimed: orders.len(),
        expired: expired.len(),
        ..SweepReport::default()
    };
    // A few sends at once: after a long outage thousands of parked orders come due, and one at
    // a time (each a round trip to SQS and one to Postgres) would drain them slowly; a hung
    // queue then also costs one timeout per group, not one per order.
    let sends: Vec<_> = orders
        .iter()
        .map(|order| send_stranded(store, queue, order))
        .collect();
    let outcomes: Vec<bool> = futures::stream::iter(sends)
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;
    report.enqueued = outcomes.iter().filter(|sent| **sent).count();
    report.failed = outcomes.len() - report.enqueued;
    // A cancel the exchange has not answered is sent again; a failure here must not stop the
    // sweep's other work, so it is only logged (the next run tries again).
    if let Err(error) = resend_unanswered_cancels(store, queue, settings.batch_size).await {
        tracing::warn!(
            error = %crate::telemetry::error_chain(&error),
            "could not look for unanswered cancels"
        );
    }
    // Housekeeping: nothing depends on it, so a failure is only logged.
    match store
        .forget_abandoned_admissions(ABANDONED_ADMISSION_AGE)
        .await
    {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "abandoned admissions forgotten"),
        Err(error) => tracing::warn!(
            error = %crate::telemetry::error_chain(&error),
            "could not forget abandoned admissions"
        ),
    }
    // Idempotency keys past their retention are free again; a bounded batch per run (the
    // sweeper's batch size) keeps each run short, and the next run takes the rest.
    match store
        .release_expired_idempotency_keys(settings.batch_size)
        .await
    {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "expired idempotency keys released"),
        Err(error) => tracing::warn!(
            error = %crate::telemetry::error_chain(&error),
            "could not release expired idempotency keys"
        ),
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
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::{Order, OrderStatus};
    use crate::fakes::{
        FakeAlerts, FakeOrderStore, FakeQueue, QueueBehaviour, StoreOp, client, market_order,
    };
    use crate::ports::{CreateOutcome, OrderLifecycle, RetryPlan};

    const SETTINGS: SweepSettings = SweepSettings {
        grace: Duration::from_secs(30),
        claim_for: Duration::from_secs(60),
        batch_size: 500,
        alert_window: Duration::from_secs(300),
    };
    const LEASE: Duration = Duration::from_secs(30);

    fn stranded(store: &FakeOrderStore, count: usize) -> Vec<Order> {
        (0..count)
            .map(|i| store.seed(&client("acme"), &market_order(i as i64 + 1)))
            .collect()
    }

    /// A `pending` order, never enqueued, whose time in force ran out `ago`.
    fn expired(store: &FakeOrderStore, ago: Duration) -> Order {
        store.seed_expiring(
            &client("acme"),
            &market_order(1),
            OffsetDateTime::now_utc() - ago,
        )
    }

    /// An order whose attempt failed and which the placer parked until `until`.
    async fn parked(store: &FakeOrderStore, until: OffsetDateTime, outcome_unknown: bool) -> Order {
        let order = store.seed(&client("acme"), &market_order(5));
        store.mark_enqueued(&order).await.unwrap();
        store.claim_for_placement(order.id, LEASE).await.unwrap();
        let plan = RetryPlan {
            park_until: Some(until),
            outcome_unknown,
        };
        store
            .release_for_retry(order.id, "503", plan)
            .await
            .unwrap()
            .unwrap()
    }

    /// An order that failed (and so opened or joined an incident).
    async fn failed(store: &FakeOrderStore) -> Order {
        let order = store.seed(&client("acme"), &market_order(3));
        store.mark_enqueued(&order).await.unwrap();
        store
            .mark_failed(order.id, "gave up")
            .await
            .unwrap()
            .unwrap()
    }

    /// Lets the grace period of every order created so far run out.
    fn after_grace(store: &FakeOrderStore) {
        store.advance_clock(SETTINGS.grace + Duration::from_secs(1));
    }

    fn status(store: &FakeOrderStore, order: &Order) -> OrderStatus {
        store.order(order.id).unwrap().status
    }

    /// The sweeper's ports on fakes, for `run_scheduled`.
    struct Sweeper {
        store: FakeOrderStore,
        queue: FakeQueue,
        alerts: FakeAlerts,
    }

    impl Sweeper {
        /// One parked order (for an hour), one failed order (an incident to announce) and one
        /// stranded order past its grace: a run with every step's work to do.
        async fn with_one_of_everything() -> Self {
            let sweeper = Self::new();
            parked(
                &sweeper.store,
                sweeper.store.now() + Duration::from_secs(3_600),
                false,
            )
            .await;
            failed(&sweeper.store).await;
            stranded(&sweeper.store, 1);
            after_grace(&sweeper.store);
            sweeper
        }

        fn new() -> Self {
            Self {
                store: FakeOrderStore::new(),
                queue: FakeQueue::new(),
                alerts: FakeAlerts::new(),
            }
        }

        async fn run(&self) -> Result<TickReport, StoreError> {
            let ports = SweeperPorts {
                store: &self.store,
                incidents: &self.store,
                queue: &self.queue,
                alerts: &self.alerts,
            };
            run_scheduled(ports, &SETTINGS).await
        }

        fn alert_kinds(&self) -> Vec<String> {
            self.alerts
                .bodies()
                .iter()
                .map(|b| b["kind"].as_str().unwrap().to_owned())
                .collect()
        }
    }

    // --- sending stranded orders --------------------------------------------------------------

    #[tokio::test]
    async fn stranded_orders_are_sent_and_marked_once() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let orders = stranded(&store, 2);
        let already_sent = store.seed(&client("acme"), &market_order(9));
        store.mark_enqueued(&already_sent).await.unwrap();
        after_grace(&store);
        let young = store.seed(&client("acme"), &market_order(7));

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(
            report,
            SweepReport {
                claimed: 2,
                enqueued: 2,
                failed: 0,
                expired: 0,
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
            .claim_for_placement(orders[0].id, LEASE)
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
        assert_eq!(status(&store, &orders[0]), OrderStatus::Placed);
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
    async fn a_sweep_releases_expired_idempotency_keys_a_batch_at_a_time_leaving_orders_alone() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        store.set_idempotency_retention(Duration::from_secs(3600));
        let acme = client("acme");
        let key = |k: &str| crate::domain::IdempotencyKey::parse(k).unwrap();
        let in_a_day = OffsetDateTime::now_utc() + Duration::from_secs(86_400);
        for k in ["k1", "k2", "k3"] {
            store
                .create_order(&acme, &market_order(1), in_a_day, Some(&key(k)))
                .await
                .unwrap();
        }
        for order in store.orders() {
            store.mark_enqueued(&order).await.unwrap();
        }
        let before = store.orders();
        let small = SweepSettings {
            batch_size: 2,
            ..SETTINGS
        };

        sweep_once(&store, &queue, &small).await.unwrap();
        assert_eq!(store.held_idempotency_keys(), 3, "none expired yet");

        store.advance_clock(Duration::from_secs(3600));
        sweep_once(&store, &queue, &small).await.unwrap();
        assert_eq!(store.held_idempotency_keys(), 1, "a batch of two");
        sweep_once(&store, &queue, &small).await.unwrap();
        assert_eq!(store.held_idempotency_keys(), 0);

        assert_eq!(store.orders(), before, "no order changed");
        // A released key names a new order.
        let outcome = store
            .create_order(&acme, &market_order(1), in_a_day, Some(&key("k1")))
            .await
            .unwrap();
        assert!(matches!(outcome, CreateOutcome::Created(_)), "{outcome:?}");
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
                failed: 2,
                expired: 0,
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
    async fn a_hung_queue_fails_each_order_after_one_background_timeout_not_one_each() {
        let store = FakeOrderStore::new();
        let queue = FakeQueue::behaving(QueueBehaviour::Hang);
        let orders = stranded(&store, 3);
        after_grace(&store);
        let started = tokio::time::Instant::now();

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(report.failed, 3);
        assert!(orders.iter().all(|order| !store.is_enqueued(order.id)));
        // One bounded attempt per order, sent side by side: one timeout for the group.
        assert_eq!(started.elapsed(), BACKGROUND_SEND_TIMEOUT);
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

    // --- time in force ------------------------------------------------------------------------

    #[tokio::test]
    async fn due_orders_are_expired_before_anything_is_sent() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let live = stranded(&store, 1).remove(0);
        let never_sent = expired(&store, Duration::from_secs(1));
        // Expired while its message waits in the queue (or the DLQ): expired all the same.
        let queued = expired(&store, Duration::from_secs(2));
        store.mark_enqueued(&queued).await.unwrap();
        after_grace(&store);

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(
            report,
            SweepReport {
                claimed: 1,
                enqueued: 1,
                failed: 0,
                expired: 2,
            }
        );
        assert_eq!(queue.sent_ids(), [live.id], "nothing past its time is sent");
        for order in [&never_sent, &queued] {
            assert_eq!(status(&store, order), OrderStatus::Expired);
            assert_eq!(
                store.events_of(order.id).pop().unwrap().reason,
                "its time in force ran out before it could be placed"
            );
        }
        let incidents = store.incidents();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].0.kind, "expired");
        assert_eq!(incidents[0].0.order_count, 2);
    }

    #[tokio::test]
    async fn expiry_takes_at_most_its_batch_oldest_expiry_first() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let newest = expired(&store, Duration::from_secs(1));
        let oldest = expired(&store, Duration::from_secs(30));
        let middle = expired(&store, Duration::from_secs(10));
        after_grace(&store);
        let small = SweepSettings {
            batch_size: 2,
            ..SETTINGS
        };

        let report = sweep_once(&store, &queue, &small).await.unwrap();

        assert_eq!((report.expired, report.claimed), (2, 0));
        assert_eq!(status(&store, &oldest), OrderStatus::Expired);
        assert_eq!(status(&store, &middle), OrderStatus::Expired);
        assert_eq!(status(&store, &newest), OrderStatus::Pending, "next run");
        assert!(queue.sent().is_empty(), "the rest is not sent either");
        let next = sweep_once(&store, &queue, &small).await.unwrap();
        assert_eq!(next.expired, 1);
        assert_eq!(status(&store, &newest), OrderStatus::Expired);
    }

    #[tokio::test]
    async fn an_expired_order_whose_outcome_is_unknown_is_sent_to_be_looked_up_not_expired() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let order = parked(&store, store.now(), true).await;
        store.set_expires_at(order.id, OffsetDateTime::now_utc() - Duration::from_secs(1));
        after_grace(&store);

        let report = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!((report.expired, report.enqueued), (0, 1));
        assert_eq!(queue.sent_ids(), [order.id]);
        assert_eq!(status(&store, &order), OrderStatus::Pending);
    }

    #[tokio::test]
    async fn a_failed_expiry_fails_the_sweep_before_anything_is_sent() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        stranded(&store, 1);
        expired(&store, Duration::from_secs(1));
        after_grace(&store);
        store.fail(StoreOp::ExpireDue);

        let result = sweep_once(&store, &queue, &SETTINGS).await;

        assert!(result.is_err());
        assert_eq!(queue.attempts(), 0);
        assert_eq!(store.calls(StoreOp::ClaimUnenqueued), 0);
    }

    // --- parked orders ------------------------------------------------------------------------

    #[tokio::test]
    async fn parked_orders_are_sent_again_only_when_due() {
        let (store, queue) = (FakeOrderStore::new(), FakeQueue::new());
        let later = store.now() + Duration::from_secs(120);
        let released = parked(&store, later, false).await;
        let deferred = store.seed(&client("acme"), &market_order(6));
        store.mark_enqueued(&deferred).await.unwrap();
        assert!(store.defer(deferred.id, later).await.unwrap());
        after_grace(&store);

        let early = sweep_once(&store, &queue, &SETTINGS).await.unwrap();
        assert_eq!(early.claimed, 0, "not due yet");
        assert!(queue.sent().is_empty());

        store.advance_clock(Duration::from_secs(120));
        let due = sweep_once(&store, &queue, &SETTINGS).await.unwrap();

        assert_eq!(due.enqueued, 2);
        let mut sent = queue.sent_ids();
        sent.sort();
        let mut expected = vec![released.id, deferred.id];
        expected.sort();
        assert_eq!(sent, expected);
        assert!(store.is_enqueued(released.id) && store.is_enqueued(deferred.id));
    }

    // --- the scheduled run --------------------------------------------------------------------

    #[tokio::test]
    async fn a_scheduled_run_sweeps_counts_parked_orders_and_announces_incidents() {
        let sweeper = Sweeper::new();
        let in_an_hour = sweeper.store.now() + Duration::from_secs(3_600);
        parked(&sweeper.store, in_an_hour, false).await;
        parked(&sweeper.store, in_an_hour, true).await;
        let failures = [failed(&sweeper.store).await, failed(&sweeper.store).await];
        let lost = stranded(&sweeper.store, 1).remove(0);
        after_grace(&sweeper.store);

        let report = sweeper.run().await.unwrap();

        assert_eq!(report.sweep.enqueued, 1);
        assert_eq!(sweeper.queue.sent_ids(), [lost.id]);
        assert_eq!(report.parked, 2);
        assert_eq!(
            report.incidents,
            Announced {
                opened: 1,
                over: 0,
                unpublished: 0
            }
        );
        let bodies = sweeper.alerts.bodies();
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["kind"], "incident_opened");
        assert_eq!(bodies[0]["order_count"], 2);
        assert_eq!(
            bodies[0]["first_order_ids"],
            serde_json::json!(failures.map(|o| o.id.to_string()))
        );
    }

    #[tokio::test]
    async fn an_incident_is_announced_once_and_over_once_after_a_quiet_window() {
        let sweeper = Sweeper::new();
        failed(&sweeper.store).await;

        let first = sweeper.run().await.unwrap();
        let second = sweeper.run().await.unwrap();
        // A failure inside the window keeps the incident open.
        sweeper
            .store
            .advance_clock(SETTINGS.alert_window - Duration::from_secs(10));
        failed(&sweeper.store).await;
        sweeper
            .store
            .advance_clock(SETTINGS.alert_window - Duration::from_secs(10));
        let still_open = sweeper.run().await.unwrap();
        sweeper.store.advance_clock(Duration::from_secs(20));
        let over = sweeper.run().await.unwrap();
        let after = sweeper.run().await.unwrap();

        assert_eq!(first.incidents.opened, 1);
        assert_eq!(second.incidents, Announced::default());
        assert_eq!(still_open.incidents, Announced::default());
        assert_eq!(over.incidents.over, 1);
        assert_eq!(after.incidents, Announced::default());
        assert_eq!(sweeper.alert_kinds(), ["incident_opened", "incident_over"]);
        assert_eq!(sweeper.alerts.bodies()[1]["order_count"], 2);
    }

    #[tokio::test]
    async fn an_unpublished_incident_alert_is_tried_again_by_the_next_run() {
        let sweeper = Sweeper::new();
        failed(&sweeper.store).await;
        sweeper.alerts.set_failing(true);

        let failing = sweeper.run().await.unwrap();
        sweeper.alerts.set_failing(false);
        let next = sweeper.run().await.unwrap();

        assert_eq!(failing.incidents.unpublished, 1);
        assert_eq!(failing.incidents.opened, 0);
        assert_eq!(next.incidents.opened, 1);
        assert_eq!(sweeper.alert_kinds(), ["incident_opened"]);
    }

    #[tokio::test]
    async fn an_unreadable_parked_count_does_not_stop_the_sweep_or_the_alerts() {
        let sweeper = Sweeper::with_one_of_everything().await;
        sweeper.store.fail(StoreOp::ParkedCount);

        let report = sweeper.run().await.unwrap();

        assert_eq!(report.parked, 0, "unknown, reported as none");
        assert_eq!(report.sweep.enqueued, 1);
        assert_eq!(report.incidents.opened, 1);
    }

    #[tokio::test]
    async fn execution_reports_waiting_past_the_stuck_age_are_counted_for_an_admin() {
        let sweeper = Sweeper::new();
        sweeper.store.keep_waiting_execution();
        sweeper.store.keep_waiting_execution();
        sweeper
            .store
            .advance_clock(STUCK_EXECUTION_AGE - Duration::from_secs(1));
        let young = sweeper.run().await.unwrap();
        // One more kept now: two are past the age, the new one is not.
        sweeper.store.keep_waiting_execution();
        sweeper.store.advance_clock(Duration::from_secs(2));
        let old = sweeper.run().await.unwrap();

        assert_eq!(young.stuck_executions, 0, "waiting, not stuck yet");
        assert_eq!(old.stuck_executions, 2);
    }

    #[tokio::test]
    async fn an_unreadable_stuck_count_does_not_stop_the_sweep_the_parked_count_or_the_alerts() {
        let sweeper = Sweeper::with_one_of_everything().await;
        sweeper.store.fail(StoreOp::StuckExecutionCount);

        let report = sweeper.run().await.unwrap();

        assert_eq!(report.stuck_executions, 0, "unknown, reported as none");
        assert_eq!(report.sweep.enqueued, 1);
        assert_eq!(report.parked, 1);
        assert_eq!(report.incidents.opened, 1);
    }

    #[tokio::test]
    async fn unreadable_incidents_do_not_stop_the_sweep_or_the_parked_count() {
        let sweeper = Sweeper::with_one_of_everything().await;
        sweeper.store.fail(StoreOp::Incidents);

        let report = sweeper.run().await.unwrap();

        assert_eq!(report.sweep.enqueued, 1);
        assert_eq!(report.parked, 1);
        assert_eq!(report.incidents, Announced::default());
        assert!(sweeper.alerts.published().is_empty());

        sweeper.store.recover(StoreOp::Incidents);
        assert_eq!(sweeper.run().await.unwrap().incidents.opened, 1);
    }

    #[tokio::test]
    async fn a_failed_sweep_still_counts_parked_orders_and_announces_incidents() {
        let sweeper = Sweeper::new();
        failed(&sweeper.store).await;
        sweeper.store.fail(StoreOp::ExpireDue);

        let result = sweeper.run().await;

        assert!(result.is_err(), "the run reports the sweep's failure");
        assert_eq!(sweeper.store.calls(StoreOp::ParkedCount), 1);
        assert_eq!(sweeper.alert_kinds(), ["incident_opened"]);
    }
}
