//! Fault tests of the placement pipeline (api → SQS → placer → exchange, DLQ → alerter → SNS),
//! in process against real Postgres, real moto SQS/SNS and the simulated exchange over HTTP.
//! Each test owns its database, queues, topic and exchange, so they run in parallel safely.

use std::collections::BTreeSet;
use std::time::Duration;

use exchange_sim::{ControlPatch, SimSettings};
use order_shared::adapters::sns::SnsAlertPublisher;
use order_shared::domain::OrderId;
use order_shared::handlers::admin::{RetryResult, retry_failed_order};
use order_shared::handlers::placer::handle_placement_batch;
use order_shared::ports::PlacementMessage;
use order_shared::usecases::backoff::Backoff;
use serde_json::Value;
use system_tests::pipeline::{EventRow, Pipeline, PipelineOptions, record};
use system_tests::{LIMIT_ORDER, MARKET_ORDER};
use uuid::Uuid;

/// An instrument the simulated exchange refuses for good in the rejection test.
const REJECTED_ISIN: &str = "DE0007164600";

fn with_sim(sim: SimSettings) -> PipelineOptions {
    PipelineOptions {
        sim,
        ..PipelineOptions::default()
    }
}

fn sim(failure_rate: f64) -> SimSettings {
    SimSettings {
        failure_rate,
        ..PipelineOptions::default().sim
    }
}

fn event(from: Option<&str>, to: &str, attempt: i32) -> (Option<String>, String, i32) {
    (from.map(str::to_owned), to.to_owned(), attempt)
}

fn transitions(events: &[EventRow]) -> Vec<(Option<String>, String, i32)> {
    events
        .iter()
        .map(|e| (e.from.clone(), e.to.clone(), e.attempt))
        .collect()
}

fn kinds(alerts: &[Value]) -> Vec<&str> {
    alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_with_transient_failures_are_all_placed_exactly_once() {
    // 10 receives: an order fails only if 10 calls in a row fail (1e-10 at 10 %).
    let p = Pipeline::start(PipelineOptions {
        max_receive_count: 10,
        ..with_sim(sim(0.1))
    })
    .await;
    let mut ids = p.post_orders(25, LIMIT_ORDER).await;
    ids.extend(p.post_orders(25, MARKET_ORDER).await);

    let state = p
        .pump_until(Duration::from_secs(40), |s| {
            s.all_in(&ids, &["placed", "rejected", "failed"]) && s.queues_empty()
        })
        .await;

    let stats = p.stats();
    for id in &ids {
        let order = state.order(*id).expect("order row");
        assert_eq!(order.status, "placed", "{order:?}");
        assert!(order.attempts >= 1, "{order:?}");
        assert!(order.placed_at.is_some() && order.enqueued_at.is_some());
        assert!(order.lease_expires_at.is_none(), "{order:?}");
        let exchange_id = order.exchange_order_id.clone().expect("exchange_order_id");
        assert_eq!(p.exchange_order_id(*id).await, Some(exchange_id));
        assert_eq!(stats.placements.get(&id.to_string()), Some(&1), "{id}");
        assert_eq!(
            stats.place_calls.get(&id.to_string()).copied(),
            Some(order.attempts as u64),
            "every attempt is one exchange call: {order:?}"
        );
    }
    assert_eq!(stats.placements.len(), ids.len());
    assert_eq!(stats.total_placed, ids.len() as u64);
    assert_eq!(stats.max_placements_per_order, 1);
    let total_attempts: i64 = state.orders.iter().map(|o| i64::from(o.attempts)).sum();
    assert_eq!(
        total_attempts as u64, stats.total_calls,
        "every attempt is one exchange call: {stats:?}"
    );
    // Every failed call is reported for redelivery. Under load a record may also be reported
    // once more without a call (its visibility ran out mid-handling and the duplicate found the
    // lease held), which costs a receive, never a placement.
    assert!(
        state.placer_failures as u64 >= stats.total_calls - ids.len() as u64,
        "every failed call was reported for redelivery: {} reported, {stats:?}",
        state.placer_failures
    );
    assert!(state.alerts.is_empty(), "{:?}", state.alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exchange_down_fails_every_order_and_alerts_each_once() {
    let p = Pipeline::start(with_sim(sim(1.0))).await;
    let max = p.options.max_receive_count as i32;
    let ids = p.post_orders(5, LIMIT_ORDER).await;

    let state = p
        .pump_until(Duration::from_secs(40), |s| {
            s.all_in(&ids, &["failed"])
                && ids.iter().all(|id| !s.alerts_for(*id).is_empty())
                && s.queues_empty()
        })
        .await;
    // A few more rounds: nothing else may come out.
    for _ in 0..3 {
        p.run_alerter_once().await;
        p.run_placer_once().await;
    }
    let alerts = p.alerts().await;
    assert_eq!(alerts.len(), ids.len(), "{alerts:#?}");

    let stats = p.stats();
    assert_eq!(stats.total_placed, 0);
    assert_eq!(stats.max_placements_per_order, 0);
    for id in &ids {
        let order = p.order(*id).await;
        assert_eq!(order.status, "failed");
        assert_eq!(order.attempts, max, "{order:?}");
        let last_error = order.last_error.clone().expect("last_error");
        assert!(
            last_error.contains("503"),
            "the exchange's last error is kept: {last_error}"
        );
        assert!(order.alerted_at.is_some(), "{order:?}");
        assert!(order.exchange_order_id.is_none());
        assert_eq!(
            stats.place_calls.get(&id.to_string()).copied(),
            Some(max as u64)
        );

        let alerts = state.alerts_for(*id);
        assert_eq!(alerts.len(), 1, "one alert per order: {alerts:#?}");
        let alert = alerts[0];
        assert_eq!(alert["kind"], "order_failed");
        assert_eq!(alert["order_id"], id.to_string());
        assert_eq!(alert["attempts"], max);
        assert_eq!(alert["last_error"], last_error.as_str());
        assert_eq!(alert["instrument"], "US0378331005");
        assert_eq!(alert["limit_price"], "120.50");
        assert!(
            alert["how_to_retry"]
                .as_str()
                .is_some_and(|h| h.contains(&id.to_string())),
            "{alert}"
        );
        assert!(alert["first_attempt_at"].is_string() && alert["last_attempt_at"].is_string());

        let events = p.events(*id).await;
        let last = events.last().expect("events");
        assert_eq!(
            (last.from.as_deref(), last.to.as_str()),
            (Some("pending"), "failed")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_rejection_is_final_after_one_attempt_without_alert() {
    let p = Pipeline::start(with_sim(SimSettings {
        reject_instruments: BTreeSet::from([REJECTED_ISIN.to_owned()]),
        ..sim(0.0)
    }))
    .await;
    let body = format!(
        r#"{{"type":"limit","side":"sell","instrument":"{}","limit_price":"99.99","quantity":3}}"#,
        REJECTED_ISIN.to_lowercase()
    );
    let id = p.post_order(&body).await;

    let state = p
        .pump_until(Duration::from_secs(20), |s| s.status(id) == "rejected")
        .await;
    assert_eq!(state.placer_failures, 0, "a rejection is not retried");
    assert!(state.queues_empty(), "the message was deleted: {state:?}");
    // Nothing comes back later either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.run_placer_once().await.received, 0);
    assert_eq!(p.run_alerter_once().await.received, 0);

    let order = p.order(id).await;
    assert_eq!(order.attempts, 1);
    assert!(
        order
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not tradable")),
        "{order:?}"
    );
    assert!(order.exchange_order_id.is_none() && order.placed_at.is_none());
    assert!(order.alerted_at.is_none());
    let stats = p.stats();
    assert_eq!(stats.place_calls.get(&id.to_string()), Some(&1));
    assert_eq!(stats.total_placed, 0);
    assert!(p.alerts().await.is_empty());
    assert_eq!(
        transitions(&p.events(id).await),
        vec![
            event(None, "pending", 0),
            event(Some("pending"), "placing", 1),
            event(Some("placing"), "rejected", 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_delivery_places_once() {
    // Some latency, so that two records of one order really overlap at the exchange.
    let p = Pipeline::start(with_sim(SimSettings {
        latency: Duration::from_millis(100),
        ..sim(0.0)
    }))
    .await;

    // 1. The same message twice in the queue (SQS at-least-once, or a sweeper duplicate).
    let first = p.post_order(LIMIT_ORDER).await;
    let message = p.placement_message(first).await;
    p.send_raw(&p.queues.orders, &message).await;
    p.send_raw(&p.queues.orders, &message).await;
    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.status(first) == "placed" && s.queues_empty()
        })
        .await;
    assert!(state.alerts.is_empty());

    // 2. Two records of one order in one batch, handled concurrently.
    let second = p.post_order(MARKET_ORDER).await;
    let message = p.placement_message(second).await;
    let mut batch = aws_lambda_events::sqs::SqsEvent::default();
    batch.records = vec![record("a", &message, 1), record("b", &message, 1)];
    let response = handle_placement_batch(batch, p.placer_ports(), &p.settings).await;
    assert!(
        response.batch_item_failures.len() <= 1,
        "at most the losing record comes back: {response:?}"
    );
    assert_eq!(p.order(second).await.status, "placed");
    // Its own queued message arrives afterwards and is dropped as a duplicate.
    p.pump_until(Duration::from_secs(20), |s| s.queues_empty())
        .await;

    let stats = p.stats();
    for id in [first, second] {
        assert_eq!(stats.placements.get(&id.to_string()), Some(&1), "{id}");
        assert_eq!(
            stats.place_calls.get(&id.to_string()),
            Some(&1),
            "duplicates never reach the exchange: {id}"
        );
        let events = p.events(id).await;
        assert_eq!(events.iter().filter(|e| e.to == "placed").count(), 1);
        assert_eq!(events.iter().filter(|e| e.to == "placing").count(), 1);
        let order = p.order(id).await;
        assert_eq!((order.status.as_str(), order.attempts), ("placed", 1));
    }
    assert_eq!(stats.max_placements_per_order, 1);
    assert!(p.alerts().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_between_exchange_ack_and_row_update_does_not_place_twice() {
    // The redelivery must find the lease expired: lease 1 s, retry delay 2–3 s.
    let p = Pipeline::start(PipelineOptions {
        lease: Duration::from_secs(1),
        exchange_timeout: Duration::from_millis(900),
        backoff: Backoff {
            base: Duration::from_secs(4),
            max: Duration::from_secs(4),
        },
        max_receive_count: 5,
        visibility_timeout_seconds: 10,
        ..with_sim(sim(0.0))
    })
    .await;
    p.fail_next_placed_update().await;
    let id = p.post_order(LIMIT_ORDER).await;

    let first = p.run_placer_once().await;
    assert_eq!(first.received, 1);
    assert_eq!(first.failed.len(), 1, "placed but not recorded: retried");
    let order = p.order(id).await;
    assert_eq!(
        (order.status.as_str(), order.attempts),
        ("placing", 1),
        "the exchange took it, the row does not say so"
    );
    assert!(order.exchange_order_id.is_none());
    let accepted = p
        .exchange_order_id(id)
        .await
        .expect("the exchange has the order");
    assert_eq!(p.stats().placements.get(&id.to_string()), Some(&1));

    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.status(id) == "placed" && s.queues_empty()
        })
        .await;
    assert_eq!(p.placed_update_attempts().await, 2, "the fault fired once");
    let order = state.order(id).expect("order");
    assert_eq!(order.exchange_order_id.as_deref(), Some(accepted.as_str()));
    assert_eq!(order.attempts, 2);
    let stats = p.stats();
    assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
    assert_eq!(stats.place_calls.get(&id.to_string()), Some(&2));
    assert_eq!(stats.duplicates_absorbed, 1);
    assert_eq!(stats.max_placements_per_order, 1);
    assert_eq!(
        transitions(&p.events(id).await),
        vec![
            event(None, "pending", 0),
            event(Some("pending"), "placing", 1),
            // The redelivery takes the expired lease over.
            event(Some("placing"), "placing", 2),
            event(Some("placing"), "placed", 2),
        ]
    );
    assert!(state.alerts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepted_but_timed_out_orders_are_found_placed_by_the_alerter() {
    let p = Pipeline::start(PipelineOptions {
        exchange_timeout: Duration::from_millis(1_000),
        ..with_sim(SimSettings {
            timeout_after_accept: true,
            timeout_after_accept_delay: Duration::from_millis(2_500),
            ..sim(0.0)
        })
    })
    .await;
    let max = p.options.max_receive_count as i32;
    let id = p.post_order(MARKET_ORDER).await;

    let state = p
        .pump_until(Duration::from_secs(30), |s| {
            s.status(id) == "placed" && s.queues_empty()
        })
        .await;
    let order = state.order(id).expect("order");
    let on_exchange = p.exchange_order_id(id).await.expect("exchange has it");
    assert_eq!(
        order.exchange_order_id.as_deref(),
        Some(on_exchange.as_str())
    );
    assert!(order.placed_at.is_some());
    assert_eq!(order.attempts, max, "every attempt timed out: {order:?}");
    assert!(order.alerted_at.is_none());
    assert_eq!(state.placer_failures, max as usize);
    assert_eq!(state.alerter_failures, 0);
    let stats = p.stats();
    assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
    assert_eq!(stats.place_calls.get(&id.to_string()), Some(&(max as u64)));
    assert_eq!(stats.max_placements_per_order, 1);
    let events = p.events(id).await;
    let last = events.last().expect("events");
    assert_eq!(
        (last.from.as_deref(), last.to.as_str()),
        (Some("pending"), "placed")
    );
    assert!(last.reason.contains("lookup"), "{last:?}");
    assert!(events.iter().all(|e| e.to != "failed"));
    assert!(p.alerts().await.is_empty(), "no alert for a placed order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_transition_is_in_the_audit_trail() {
    let p = Pipeline::start(with_sim(sim(1.0))).await;

    // Placed after exactly one transient failure.
    let retried = p.post_order(LIMIT_ORDER).await;
    let report = p.run_placer_once().await;
    assert_eq!((report.received, report.failed.len()), (1, 1));
    p.control(ControlPatch {
        failure_rate: Some(0.0),
        ..ControlPatch::default()
    });
    p.pump_until(Duration::from_secs(20), |s| {
        s.status(retried) == "placed" && s.queues_empty()
    })
    .await;
    let events = p.events(retried).await;
    assert_eq!(
        transitions(&events),
        vec![
            event(None, "pending", 0),
            event(Some("pending"), "placing", 1),
            event(Some("placing"), "pending", 1),
            event(Some("pending"), "placing", 2),
            event(Some("placing"), "placed", 2),
        ]
    );
    assert!(
        events[2].reason.contains("503"),
        "the transient error is in the trail: {:?}",
        events[2]
    );

    // Failed after every retry.
    p.control(ControlPatch {
        down: Some(true),
        ..ControlPatch::default()
    });
    let failed = p.post_order(MARKET_ORDER).await;
    p.pump_until(Duration::from_secs(20), |s| {
        s.status(failed) == "failed" && s.queues_empty()
    })
    .await;
    let events = p.events(failed).await;
    let max = p.options.max_receive_count as i32;
    let mut expected = vec![event(None, "pending", 0)];
    for attempt in 1..=max {
        expected.push(event(Some("pending"), "placing", attempt));
        expected.push(event(Some("placing"), "pending", attempt));
    }
    expected.push(event(Some("pending"), "failed", max));
    assert_eq!(transitions(&events), expected);
    assert!(events.last().unwrap().reason.contains("retries exhausted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_reach_the_dlq_and_are_reported_without_hurting_their_batch() {
    // A body that is not a placement message is refused before any retry delay is set, so it
    // comes back after the visibility timeout: keep that short (and the lease shorter).
    let p = Pipeline::start(PipelineOptions {
        max_receive_count: 2,
        visibility_timeout_seconds: 2,
        lease: Duration::from_secs(1),
        exchange_timeout: Duration::from_millis(900),
        ..with_sim(sim(0.0))
    })
    .await;
    let garbage = "this is {not JSON";
    let unknown = PlacementMessage {
        version: 1,
        order_id: Uuid::now_v7(),
        order_type: "market".into(),
        side: "buy".into(),
        instrument: "US0378331005".into(),
        limit_price: None,
        quantity: 1,
    }
    .to_json();
    p.send_raw(&p.queues.orders, garbage).await;
    p.send_raw(&p.queues.orders, &unknown).await;
    let ids = p.post_orders(3, LIMIT_ORDER).await;

    let state = p
        .pump_until(Duration::from_secs(30), |s| {
            s.all_in(&ids, &["placed"]) && s.alerts.len() >= 2 && s.queues_empty()
        })
        .await;
    assert_eq!(kinds(&state.alerts), vec!["poison_message"; 2]);
    let bodies: BTreeSet<&str> = state
        .alerts
        .iter()
        .map(|a| a["body"].as_str().expect("raw body"))
        .collect();
    assert_eq!(bodies, BTreeSet::from([garbage, unknown.as_str()]));
    for alert in &state.alerts {
        assert_eq!(alert["body_truncated"], false);
        assert!(alert["problem"].is_string() && alert["message_id"].is_string());
    }
    let unknown_alert = state
        .alerts
        .iter()
        .find(|a| a["body"] == unknown.as_str())
        .unwrap();
    assert!(
        unknown_alert["problem"]
            .as_str()
            .unwrap()
            .contains("no known order")
    );
    let stats = p.stats();
    for id in &ids {
        assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
    }
    assert_eq!(stats.total_placed, 3);
    assert_eq!(
        state.placer_failures, 4,
        "each poison message failed once per receive, the orders never"
    );
    assert_eq!(state.orders.len(), 3, "no order was made up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_retry_after_the_exchange_recovers_places_the_failed_order() {
    let p = Pipeline::start(PipelineOptions {
        max_receive_count: 2,
        ..with_sim(SimSettings {
            down: true,
            ..sim(0.0)
        })
    })
    .await;
    let id = p.post_order(LIMIT_ORDER).await;
    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.status(id) == "failed" && s.alerts_for(id).len() == 1 && s.queues_empty()
        })
        .await;
    let failed = state.order(id).unwrap();
    assert!(failed.alerted_at.is_some());
    let last_error = failed.last_error.clone().expect("last_error");
    assert!(last_error.contains("down"), "{last_error}");

    p.control(ControlPatch {
        down: Some(false),
        ..ControlPatch::default()
    });
    let result = retry_failed_order(p.store.as_ref(), &p.order_queue(), OrderId::from(id))
        .await
        .expect("retry");
    assert_eq!(result, RetryResult::Requeued);
    let requeued = p.order(id).await;
    assert_eq!(requeued.status, "pending");
    assert!(requeued.enqueued_at.is_some(), "{requeued:?}");
    assert!(requeued.alerted_at.is_none(), "{requeued:?}");
    // A second retry of the same order does nothing.
    assert_eq!(
        retry_failed_order(p.store.as_ref(), &p.order_queue(), OrderId::from(id))
            .await
            .unwrap(),
        RetryResult::NotFailed
    );

    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.status(id) == "placed" && s.queues_empty()
        })
        .await;
    let placed = state.order(id).unwrap();
    assert_eq!(placed.attempts, 3, "two failed attempts, then the retry");
    assert!(placed.exchange_order_id.is_some() && placed.placed_at.is_some());
    let stats = p.stats();
    assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
    assert_eq!(stats.total_placed, 1);
    assert_eq!(state.alerts.len(), 1, "only the original failure alerted");
    let events = p.events(id).await;
    let retry = events
        .iter()
        .position(|e| e.reason == "admin retry")
        .expect("an admin retry event");
    assert_eq!(
        (events[retry].from.as_deref(), events[retry].to.as_str()),
        (Some("failed"), "pending")
    );
    assert_eq!(
        transitions(&events[retry + 1..]),
        vec![
            event(Some("pending"), "placing", 3),
            event(Some("placing"), "placed", 3),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alert_publish_failure_is_retried_and_alerted_at_only_after_success() {
    let p = Pipeline::start(PipelineOptions {
        max_receive_count: 2,
        ..with_sim(sim(1.0))
    })
    .await;
    let nowhere = SnsAlertPublisher::new(
        &p.sdk,
        format!(
            "arn:aws:sns:us-east-1:123456789012:missing-{}",
            Uuid::new_v4().simple()
        ),
    );
    let id = p.post_order(MARKET_ORDER).await;

    let state = p
        .pump_until_with(&nowhere, Duration::from_secs(20), |s| {
            s.status(id) == "failed" && s.alerter_failures >= 1
        })
        .await;
    let order = state.order(id).unwrap();
    assert!(
        order.alerted_at.is_none(),
        "not alerted while the publish fails: {order:?}"
    );
    assert!(state.alerts.is_empty());
    assert_eq!(state.dead_letter_depth, 1, "the dead letter is kept");

    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.order(id).is_some_and(|o| o.alerted_at.is_some()) && s.queues_empty()
        })
        .await;
    assert_eq!(state.alerts.len(), 1, "{:#?}", state.alerts);
    assert_eq!(state.alerts[0]["kind"], "order_failed");
    assert_eq!(state.alerts[0]["order_id"], id.to_string());
    assert_eq!(state.order(id).unwrap().status, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerter_skips_already_alerted_failures() {
    let p = Pipeline::start(PipelineOptions {
        max_receive_count: 2,
        ..with_sim(sim(1.0))
    })
    .await;
    let id = p.post_order(LIMIT_ORDER).await;
    p.pump_until(Duration::from_secs(20), |s| {
        s.order(id).is_some_and(|o| o.alerted_at.is_some()) && s.queues_empty()
    })
    .await;
    let alerted_at = p.order(id).await.alerted_at;

    // The same dead letter again, through the DLQ…
    let message = p.placement_message(id).await;
    p.send_raw(&p.queues.dead_letters, &message).await;
    let state = p
        .pump_until(Duration::from_secs(20), |s| s.queues_empty())
        .await;
    assert_eq!(state.alerter_failures, 0);
    // …and handed to the alerter directly.
    let report = p.alerter_handles(vec![record("again", &message, 3)]).await;
    assert!(report.failed.is_empty());

    let alerts = p.alerts().await;
    assert_eq!(alerts.len(), 1, "exactly one alert: {alerts:#?}");
    assert_eq!(alerts[0]["order_id"], id.to_string());
    let order = p.order(id).await;
    assert_eq!(order.alerted_at, alerted_at, "the mark is not rewritten");
    assert_eq!(
        p.events(id)
            .await
            .iter()
            .filter(|e| e.to == "failed")
            .count(),
        1
    );
}

/// Two dead letters of one order (the api's message and a sweeper duplicate, say) arriving in
/// one alerter batch are handled concurrently: both see the order unalerted, both publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerter_alerts_once_for_two_dead_letters_of_one_order_in_one_batch() {
    let p = Pipeline::start(PipelineOptions {
        max_receive_count: 2,
        ..with_sim(sim(1.0))
    })
    .await;
    let id = p.post_order(LIMIT_ORDER).await;
    // Only the placer runs: retries run out, the order stays `pending`, the message moves on.
    while p.order(id).await.attempts < 2 || p.queue_depth(&p.queues.orders).await > 0 {
        p.run_placer_once().await;
    }
    assert_eq!(p.order(id).await.status, "pending");

    let message = p.placement_message(id).await;
    let report = p
        .alerter_handles(vec![
            record("first", &message, 3),
            record("second", &message, 3),
        ])
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    let order = p.order(id).await;
    assert_eq!(order.status, "failed");
    assert!(order.alerted_at.is_some());
    let alerts = p.alerts().await;
    assert_eq!(alerts.len(), 1, "one alert per order, got {alerts:#?}");
}

/// Two messages for one order (the design allows a duplicate: "a lost mark means one harmless
/// duplicate message"): one ran out of retries and sits in the DLQ, the other is being placed
/// right now under a valid lease. The alerter must not fail an order a placer is placing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerter_leaves_an_order_that_is_being_placed_alone() {
    let p = Pipeline::start(PipelineOptions {
        exchange_timeout: Duration::from_secs(3),
        lease: Duration::from_secs(5),
        visibility_timeout_seconds: 10,
        ..with_sim(SimSettings {
            latency: Duration::from_millis(1_000),
            ..sim(0.0)
        })
    })
    .await;
    let id = p.post_order(LIMIT_ORDER).await;
    let message = p.placement_message(id).await;

    // A placer takes the live message; the exchange answers after 1 s.
    let mut live = aws_lambda_events::sqs::SqsEvent::default();
    live.records = vec![record("live", &message, 1)];
    let placing = handle_placement_batch(live, p.placer_ports(), &p.settings);
    // Meanwhile the alerter gets the exhausted duplicate.
    let alerting = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            p.order(id).await.status,
            "placing",
            "the placer holds the lease"
        );
        p.alerter_handles(vec![record("dead", &message, 3)]).await
    };
    let (placed, alerted) = tokio::join!(placing, alerting);
    assert!(placed.batch_item_failures.is_empty(), "{placed:?}");

    let stats = p.stats();
    assert_eq!(
        stats.placements.get(&id.to_string()),
        Some(&1),
        "the exchange has it"
    );
    let order = p.order(id).await;
    let alerts = p.alerts().await;
    assert_eq!(
        (order.status.as_str(), alerts.len()),
        ("placed", 0),
        "placed at the exchange, so placed here and no alert; alerter: {alerted:?}, \
         order: {order:?}, alerts: {alerts:#?}, events: {:#?}",
        p.events(id).await
    );
}
