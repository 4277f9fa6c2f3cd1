//! Fault tests of the placement pipeline (api → SQS → placer → exchange, DLQ → alerter → SNS),
//! in process against real Postgres, real moto SQS/SNS and the simulated exchange over HTTP.
//! Each test owns its database, queues, topic and exchange, so they run in parallel safely.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use exchange_sim::{ControlPatch, SimSettings, WorkState};
use http::StatusCode;
use order_shared::adapters::sns::SnsAlertPublisher;
use order_shared::domain::OrderId;
use order_shared::handlers::admin::{RetryResult, retry_failed_order};
use order_shared::handlers::placer::{PlacerPorts, handle_placement_batch};
use order_shared::ports::{BreakerSettings, PlacementMessage};
use order_shared::usecases::backoff::Backoff;
use serde_json::Value;
use system_tests::pipeline::{EventRow, Pipeline, PipelineOptions, record};
use system_tests::{LIMIT_ORDER, MARKET_ORDER};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The order body with a time in force.
fn expiring(body: &str, expires_at: OffsetDateTime) -> String {
    let mut order: Value = serde_json::from_str(body).expect("JSON body");
    order["expires_at"] = Value::String(expires_at.format(&Rfc3339).expect("RFC 3339"));
    order.to_string()
}

/// An instrument the simulated exchange refuses for good in the rejection test.
const REJECTED_ISIN: &str = "DE0007164600";

fn with_sim(sim: SimSettings) -> PipelineOptions {
    PipelineOptions {
        sim,
        ..PipelineOptions::default()
    }
}

/// The alerter fails a dead-lettered live order at once (`ALERTER_DEAD_LETTER_RESENDS=0`): for
/// the tests of what follows a failure. The resends have their own test.
fn no_resends(options: PipelineOptions) -> PipelineOptions {
    PipelineOptions {
        dead_letter_resends: 0,
        ..options
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
    // Every failed call released its order for a retry (through the queue or parked).
    let mut releases = 0;
    for id in &ids {
        releases += p
            .events(*id)
            .await
            .iter()
            .filter(|e| e.from.as_deref() == Some("placing") && e.to == "pending")
            .count() as u64;
    }
    assert_eq!(releases, stats.total_calls - ids.len() as u64, "{stats:?}");
    assert!(state.alerts.is_empty(), "{:?}", state.alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_longer_than_the_old_retry_budget_fails_no_order_and_places_each_once_after() {
    // The old budget was `max_receive_count` receives a few seconds apart; this outage lasts
    // several times that. The breaker opens after 3 failures and then lets one probe through
    // every 500 ms.
    let p = Pipeline::start(PipelineOptions {
        breaker: BreakerSettings {
            failure_threshold: 3,
            probe_interval: Duration::from_millis(500),
        },
        ..with_sim(SimSettings {
            down: true,
            ..sim(0.0)
        })
    })
    .await;
    let far = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    let mut ids = p.post_orders(6, &expiring(LIMIT_ORDER, far)).await;
    ids.extend(p.post_orders(6, &expiring(MARKET_ORDER, far)).await);

    let outage = Instant::now();
    let mut state = p
        .pump_until(Duration::from_secs(30), |s| {
            s.all_in(&ids, &["pending", "placing"])
                && ids
                    .iter()
                    .all(|id| s.order(*id).is_some_and(|o| o.attempts >= 1))
        })
        .await;
    while outage.elapsed() < Duration::from_secs(12) {
        state = p.pump_until(Duration::from_secs(5), |_| true).await;
        p.run_placer_once().await;
        p.run_alerter_once().await;
        p.run_sweeper_once().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = p.stats();
    assert!(
        state.all_in(&ids, &["pending", "placing"]),
        "no order fails or ends during the outage: {:#?}",
        state.orders
    );
    assert!(state.alerts.is_empty(), "{:#?}", state.alerts);
    assert_eq!(state.dead_letter_depth, 0, "outages never fill the DLQ");
    assert_eq!(during.total_placed, 0);
    // Without the breaker every order would be tried every second or so; with it the exchange
    // sees the first failures, then about two probes a second.
    let budget = 3 + ids.len() as u64 + 2 * 13 + 4;
    assert!(
        during.total_calls <= budget,
        "calls during the outage stay a trickle: {} > {budget}",
        during.total_calls
    );
    for order in &state.orders {
        assert!(
            !order.outcome_unknown,
            "a 503 is a clear refusal: {order:?}"
        );
        let last_error = order.last_error.clone().unwrap_or_default();
        assert!(
            last_error.contains("503") || last_error.contains("breaker"),
            "{order:?}"
        );
    }

    p.control(ControlPatch {
        down: Some(false),
        ..ControlPatch::default()
    });
    let state = p
        .pump_until(Duration::from_secs(60), |s| {
            s.all_in(&ids, &["placed"]) && s.queues_empty()
        })
        .await;
    let stats = p.stats();
    for id in &ids {
        assert_eq!(stats.placements.get(&id.to_string()), Some(&1), "{id}");
        assert!(state.order(*id).unwrap().exchange_order_id.is_some());
    }
    assert_eq!(stats.max_placements_per_order, 1);
    assert!(state.alerts.is_empty(), "nothing failed, nobody is paged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_whose_expiry_passes_during_the_outage_ends_expired_and_is_never_sent_after() {
    let p = Pipeline::start(PipelineOptions {
        alert_window: Duration::from_secs(1),
        ..with_sim(SimSettings {
            down: true,
            ..sim(0.0)
        })
    })
    .await;
    let expires_at = OffsetDateTime::now_utc() + Duration::from_secs(4);
    let short = p.post_order(&expiring(MARKET_ORDER, expires_at)).await;
    let long = p
        .post_order(&expiring(
            LIMIT_ORDER,
            OffsetDateTime::now_utc() + Duration::from_secs(3600),
        ))
        .await;

    let state = p
        .pump_until(Duration::from_secs(30), |s| s.status(short) == "expired")
        .await;
    let calls_at_expiry = p.stats().place_calls.get(&short.to_string()).copied();
    assert!(
        calls_at_expiry.unwrap_or(0) >= 1,
        "it was tried before it expired"
    );
    assert_eq!(state.status(long), "pending", "the live one waits on");

    p.control(ControlPatch {
        down: Some(false),
        ..ControlPatch::default()
    });
    let state = p
        .pump_until(Duration::from_secs(30), |s| {
            s.status(long) == "placed"
                && s.queues_empty()
                && kinds(&s.alerts).contains(&"incident_over")
        })
        .await;
    let stats = p.stats();
    assert_eq!(
        stats.place_calls.get(&short.to_string()).copied(),
        calls_at_expiry,
        "0 calls at the exchange after its expiry"
    );
    assert_eq!(stats.placements.get(&short.to_string()), None);
    assert_eq!(stats.placements.get(&long.to_string()), Some(&1));
    let expired = state.order(short).unwrap();
    assert!(expired.exchange_order_id.is_none());
    let events = p.events(short).await;
    assert_eq!(events.last().unwrap().to, "expired");
    // One incident for the expiry: opened and over, one message each.
    assert_eq!(kinds(&state.alerts), ["incident_opened", "incident_over"]);
    assert_eq!(state.alerts[0]["cause"], "expired");
    assert_eq!(state.alerts[0]["first_order_ids"][0], short.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_lookup_keeps_the_order_open_and_it_ends_placed_once() {
    // The exchange accepts the first attempt but answers too late: the outcome is unknown.
    let p = Pipeline::start(PipelineOptions {
        exchange_timeout: Duration::from_millis(500),
        ..with_sim(SimSettings {
            timeout_after_accept: true,
            timeout_after_accept_delay: Duration::from_millis(1_500),
            ..sim(0.0)
        })
    })
    .await;
    // It expires before the exchange can be asked again.
    let id = p
        .post_order(&expiring(
            MARKET_ORDER,
            OffsetDateTime::now_utc() + Duration::from_secs(2),
        ))
        .await;
    let first = p.run_placer_once().await;
    assert_eq!(first.received, 1);
    let order = p.order(id).await;
    assert!(order.outcome_unknown, "{order:?}");
    assert_eq!(order.status, "pending");
    assert!(
        order
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("being confirmed")),
        "the order says what is happening: {order:?}"
    );
    assert!(
        p.exchange_order_id(id).await.is_some(),
        "the exchange has it"
    );

    // The exchange goes down; the expiry passes; lookups fail.
    p.control(ControlPatch {
        down: Some(true),
        ..ControlPatch::default()
    });
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.order(id).is_some_and(|o| o.attempts >= 2)
        })
        .await;
    let order = state.order(id).unwrap();
    assert_eq!(
        order.status, "pending",
        "never failed or expired on a guess: {order:?}"
    );
    assert!(order.outcome_unknown);
    assert!(state.alerts.is_empty());

    p.control(ControlPatch {
        down: Some(false),
        timeout_after_accept: Some(false),
        ..ControlPatch::default()
    });
    let state = p
        .pump_until(Duration::from_secs(30), |s| {
            s.status(id) == "placed" && s.queues_empty()
        })
        .await;
    let stats = p.stats();
    assert_eq!(
        stats.placements.get(&id.to_string()),
        Some(&1),
        "placed once"
    );
    assert_eq!(
        state.order(id).unwrap().exchange_order_id,
        p.exchange_order_id(id).await
    );
    assert!(state.alerts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancels_racing_the_placer_never_cancel_a_placed_order() {
    let p = Pipeline::start(with_sim(SimSettings {
        latency: Duration::from_millis(5),
        // Placed limit orders stay working, so a cancel after placement has something to cancel.
        limit_fill_rate: 0.0,
        ..sim(0.0)
    }))
    .await;
    let ids = p.post_orders(100, LIMIT_ORDER).await;
    let placing = async {
        // No ingester here: a cancel sent to the exchange leaves the order `pending_cancel`.
        p.pump_until(Duration::from_secs(60), |s| {
            s.all_in(&ids, &["pending_cancel", "canceled"]) && s.queues_empty()
        })
        .await
    };
    let p = &p;
    let canceling = async {
        futures::future::join_all(ids.iter().map(|id| async move {
            // Spread the cancels over the placer's work.
            tokio::time::sleep(Duration::from_millis((id.as_u128() % 4_000) as u64)).await;
            loop {
                let (status, _) = p.cancel(*id).await;
                // `placing`: 409 with Retry-After; ask again until it is decided either way.
                if status == StatusCode::CONFLICT {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return (*id, status);
            }
        }))
        .await
    };
    let (state, answers) = tokio::join!(placing, canceling);
    let stats = p.stats();
    let (mut canceled, mut placed) = (0, 0);
    for (id, answer) in answers {
        let order = state.order(id).unwrap();
        let placements = stats.placements.get(&id.to_string()).copied().unwrap_or(0);
        match order.status.as_str() {
            "canceled" => {
                assert_eq!(answer, StatusCode::OK, "{order:?}");
                assert_eq!(placements, 0, "a canceled order never reaches the exchange");
                assert_eq!(stats.place_calls.get(&id.to_string()), None);
                canceled += 1;
            }
            // Placed first: the cancel became a request to the exchange.
            "pending_cancel" => {
                assert_eq!(answer, StatusCode::ACCEPTED, "{order:?}");
                assert_eq!(placements, 1);
                placed += 1;
            }
            other => panic!("{id} ended {other}"),
        }
    }
    assert_eq!(canceled + placed, 100);
    // The cancels are spread over the placer's work, so both sides of the race happen.
    assert!(
        canceled > 0 && placed > 0,
        "{canceled} canceled, {placed} placed"
    );
    // Every cancel of a placed order was delivered by the placer and taken by the exchange,
    // which canceled each of them once. A cancel request may reach it twice (a redelivered
    // message, an answer lost to a client timeout on a busy machine): the exchange's cancel is
    // idempotent, so a repeat is accepted again without a second report.
    let feed = p.feed_stats();
    assert!(feed.cancels_accepted >= placed, "{feed:?}");
    assert_eq!(feed.reports_by_kind.canceled, placed);
    assert_eq!(
        feed.orders_by_state
            .get(&WorkState::Canceled)
            .copied()
            .unwrap_or(0),
        placed
    );
    eprintln!("race: {canceled} canceled, {placed} placed then canceled at the exchange");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_failures_in_one_incident_make_one_alert_not_one_per_order() {
    let p = Pipeline::start(PipelineOptions {
        alert_window: Duration::from_secs(1),
        ..no_resends(with_sim(sim(0.0)))
    })
    .await;
    // Twenty orders whose placer crashed on every try: their messages are dead letters, and
    // the exchange never heard of them.
    let ids = p.post_orders(20, LIMIT_ORDER).await;
    for id in &ids {
        let message = p.placement_message(*id).await;
        p.send_raw(&p.queues.dead_letters, &message).await;
    }
    let mut state = p.pump_until(Duration::from_secs(1), |_| true).await;
    while !state.all_in(&ids, &["failed"]) {
        p.run_alerter_once().await;
        state = p.pump_until(Duration::from_secs(1), |_| true).await;
    }
    let state = p
        .pump_until(Duration::from_secs(30), |s| {
            kinds(&s.alerts).contains(&"incident_over") && s.queues_empty()
        })
        .await;
    assert_eq!(
        kinds(&state.alerts),
        ["incident_opened", "incident_over"],
        "{:#?}",
        state.alerts
    );
    let over = &state.alerts[1];
    assert_eq!(over["cause"], "failed");
    assert_eq!(over["order_count"], 20);
    assert_eq!(over["first_order_ids"].as_array().map(Vec::len), Some(10));
    assert!(
        over["what_to_do"]["retry"]
            .as_str()
            .is_some_and(|c| c.starts_with("orders-admin retry --all-failed-since")),
        "{over}"
    );
    assert_eq!(
        p.stats().total_calls,
        0,
        "the exchange was only asked, never sent"
    );
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
async fn accepted_but_timed_out_orders_are_retried_under_their_id_and_placed_once() {
    let p = Pipeline::start(PipelineOptions {
        exchange_timeout: Duration::from_millis(1_000),
        ..with_sim(SimSettings {
            timeout_after_accept: true,
            timeout_after_accept_delay: Duration::from_millis(2_500),
            ..sim(0.0)
        })
    })
    .await;
    let id = p.post_order(MARKET_ORDER).await;
    let first = p.run_placer_once().await;
    assert_eq!(first.received, 1);
    let order = p.order(id).await;
    assert_eq!(order.status, "pending", "maybe placed: never failed");
    assert!(order.outcome_unknown, "{order:?}");

    p.control(ControlPatch {
        timeout_after_accept: Some(false),
        ..ControlPatch::default()
    });
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
    assert!(!order.outcome_unknown);
    assert_eq!(
        order.attempts, 2,
        "the same client order id, sent again: {order:?}"
    );
    let stats = p.stats();
    assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
    assert_eq!(stats.place_calls.get(&id.to_string()), Some(&2));
    assert_eq!(
        stats.duplicates_absorbed, 1,
        "the exchange de-duplicated the retry"
    );
    let events = p.events(id).await;
    assert!(events.iter().all(|e| e.to != "failed"));
    assert!(
        events[2].reason.contains("outcome unknown"),
        "the trail says why: {:?}",
        events[2]
    );
    assert!(state.alerts.is_empty(), "no alert for a placed order");
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

    // Canceled before any placer claimed it.
    let canceled = p.post_order(MARKET_ORDER).await;
    assert_eq!(p.cancel(canceled).await.0, StatusCode::OK);
    p.pump_until(Duration::from_secs(20), |s| s.queues_empty())
        .await;
    assert_eq!(
        transitions(&p.events(canceled).await),
        vec![
            event(None, "pending", 0),
            event(Some("pending"), "canceled", 0)
        ]
    );

    // Expired while the exchange was down: tried, parked, expired.
    p.control(ControlPatch {
        down: Some(true),
        ..ControlPatch::default()
    });
    let expired = p
        .post_order(&expiring(
            MARKET_ORDER,
            OffsetDateTime::now_utc() + Duration::from_secs(3),
        ))
        .await;
    p.pump_until(Duration::from_secs(20), |s| s.status(expired) == "expired")
        .await;
    let events = p.events(expired).await;
    let trail = transitions(&events);
    assert_eq!(
        trail[..2],
        [
            event(None, "pending", 0),
            event(Some("pending"), "placing", 1)
        ]
    );
    assert_eq!(trail.last().unwrap().1, "expired");
    assert!(
        trail
            .iter()
            .all(|(_, to, _)| to != "failed" && to != "placed")
    );
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
        action: Default::default(),
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
async fn admin_retry_places_an_order_that_failed_as_a_dead_letter() {
    let p = Pipeline::start(PipelineOptions {
        alert_window: Duration::from_secs(1),
        ..no_resends(with_sim(sim(0.0)))
    })
    .await;
    // The placer crashed on it every time: its message is a dead letter, the exchange never got
    // it, so the alerter fails it and tells the admins (one incident).
    let id = p.post_order(LIMIT_ORDER).await;
    let message = p.placement_message(id).await;
    p.send_raw(&p.queues.dead_letters, &message).await;
    let report = p.run_alerter_once().await;
    assert_eq!((report.received, report.failed.len()), (1, 0));
    let failed = p.order(id).await;
    assert_eq!(failed.status, "failed");
    let alerts = p.alerts().await;
    assert_eq!(kinds(&alerts), ["incident_opened"]);
    assert_eq!(alerts[0]["first_order_ids"][0], id.to_string());

    let result = retry_failed_order(p.store.as_ref(), &p.order_queue(), OrderId::from(id))
        .await
        .expect("retry");
    assert_eq!(result, RetryResult::Requeued);
    let requeued = p.order(id).await;
    assert_eq!(requeued.status, "pending");
    assert!(requeued.enqueued_at.is_some(), "{requeued:?}");
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
    assert!(placed.exchange_order_id.is_some() && placed.placed_at.is_some());
    let stats = p.stats();
    assert_eq!(stats.placements.get(&id.to_string()), Some(&1));
    assert_eq!(stats.total_placed, 1);
    let events = p.events(id).await;
    let retry = events
        .iter()
        .position(|e| e.reason == "admin retry")
        .expect("an admin retry event");
    assert_eq!(
        (events[retry].from.as_deref(), events[retry].to.as_str()),
        (Some("failed"), "pending")
    );
    assert_eq!(events.last().unwrap().to, "placed");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incident_alert_that_cannot_be_published_is_published_later_exactly_once() {
    let p = Pipeline::start(no_resends(with_sim(sim(0.0)))).await;
    let nowhere = SnsAlertPublisher::new(
        &p.sdk,
        format!(
            "arn:aws:sns:us-east-1:123456789012:missing-{}",
            Uuid::new_v4().simple()
        ),
    );
    let id = p.post_order(MARKET_ORDER).await;
    let message = p.placement_message(id).await;
    p.send_raw(&p.queues.dead_letters, &message).await;

    let report = p.run_alerter_once_with(&nowhere).await;
    assert_eq!(report.received, 1);
    assert_eq!(p.order(id).await.status, "failed");
    assert!(p.alerts().await.is_empty(), "SNS refused it");
    p.run_sweeper_once_with(&nowhere).await;
    assert!(p.alerts().await.is_empty());

    // The next run with a working topic tells the admins, once.
    let tick = p.run_sweeper_once().await;
    assert_eq!(tick.incidents.opened, 1, "{tick:?}");
    p.run_sweeper_once().await;
    p.run_alerter_once().await;
    let alerts = p.alerts().await;
    assert_eq!(kinds(&alerts), ["incident_opened"], "{alerts:#?}");
    assert_eq!(alerts[0]["first_order_ids"][0], id.to_string());
}
/// A database outage longer than a message's receives: no placer can claim the order, so its
/// message is dead-lettered although no attempt reached the exchange. Once the database is back
/// the alerter finds that the exchange does not have the order and hands it back to the sweeper
/// instead of failing it; it is placed once, and no admin is alerted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_longer_than_a_messages_receives_fails_no_order() {
    let p = Pipeline::start(with_sim(sim(0.0))).await;
    let id = p.post_order(LIMIT_ORDER).await;
    let down = system_tests::unreachable_store().await;
    let outage = PlacerPorts {
        store: &down,
        breaker: &down,
        ..p.placer_ports()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut receives = 0;
    while p.queue_depth(&p.queues.dead_letters).await == 0 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        let report = p.run_placer_once_with(outage).await;
        receives += report.received;
        assert_eq!(report.failed.len(), report.received, "nothing handled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(receives >= 3, "{receives} receives");
    assert_eq!(p.order(id).await.status, "pending");
    assert_eq!(p.stats().total_placed, 0, "no attempt reached the exchange");

    // The database is back: the alerter resends, the sweeper sends, the placer places.
    let report = p.run_alerter_once().await;
    assert_eq!((report.received, report.failed.len()), (1, 0));
    let order = p.order(id).await;
    assert_eq!(order.status, "pending", "not failed: {order:?}");
    assert!(order.enqueued_at.is_none(), "handed to the sweeper");
    assert_eq!(p.run_sweeper_once().await.sweep.enqueued, 1);
    let state = p
        .pump_until(Duration::from_secs(20), |s| {
            s.status(id) == "placed" && s.queues_empty()
        })
        .await;
    assert_eq!(state.status(id), "placed");
    assert_eq!(p.stats().placements.get(&id.to_string()), Some(&1));
    assert!(p.alerts().await.is_empty(), "nobody alerted");
    assert!(p.events(id).await.iter().all(|e| e.to != "failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_of_final_orders_are_dropped_without_an_alert() {
    let p = Pipeline::start(with_sim(sim(0.0))).await;
    let placed = p.post_order(LIMIT_ORDER).await;
    let canceled = p.post_order(MARKET_ORDER).await;
    assert_eq!(p.cancel(canceled).await.0, StatusCode::OK);
    p.pump_until(Duration::from_secs(20), |s| {
        s.status(placed) == "placed" && s.queues_empty()
    })
    .await;

    for id in [placed, canceled] {
        let message = p.placement_message(id).await;
        p.send_raw(&p.queues.dead_letters, &message).await;
        let report = p.alerter_handles(vec![record("again", &message, 3)]).await;
        assert!(report.failed.is_empty());
    }
    let state = p
        .pump_until(Duration::from_secs(20), |s| s.queues_empty())
        .await;
    assert_eq!(state.alerter_failures, 0);
    assert!(p.alerts().await.is_empty());
    assert_eq!(p.order(placed).await.status, "placed");
    assert_eq!(p.order(canceled).await.status, "canceled");
    assert_eq!(p.stats().placements.get(&canceled.to_string()), None);
}
/// Two dead letters of one order (the api's message and a sweeper duplicate, say) arriving in
/// one alerter batch: the order fails once and the admins hear once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dead_letters_of_one_order_in_one_batch_fail_it_once_with_one_alert() {
    let p = Pipeline::start(no_resends(with_sim(sim(0.0)))).await;
    let id = p.post_order(LIMIT_ORDER).await;
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
    let alerts = p.alerts().await;
    assert_eq!(kinds(&alerts), ["incident_opened"], "{alerts:#?}");
    assert_eq!(alerts[0]["order_count"], 1);
    assert_eq!(
        p.events(id)
            .await
            .iter()
            .filter(|e| e.to == "failed")
            .count(),
        1
    );
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
