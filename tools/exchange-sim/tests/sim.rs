//! The simulator's HTTP contract, exercised over real sockets: idempotent placement, injected
//! failures, refusals (expired orders among them), lookups, withheld answers, the run-time
//! switches, the API key and the counts in `/stats`.

use std::time::{Duration, Instant};

use exchange_sim::{SimHandle, SimSettings, Stats};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

mod common;

use common::{APPLE, quiet, start};

fn order(id: Uuid, instrument: &str) -> Value {
    json!({
        "client_order_id": id.to_string(),
        "instrument": instrument,
        "side": "buy",
        "type": "limit",
        "limit_price": "187.25",
        "quantity": 10,
    })
}

async fn place(sim: &SimHandle, body: &Value, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/orders", sim.base_url))
        .json(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn get(sim: &SimHandle, path: &str) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{}{path}", sim.base_url))
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn control(sim: &SimHandle, patch: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/control", sim.base_url))
        .json(&patch)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn stats(sim: &SimHandle) -> Stats {
    let (status, body) = get(sim, "/stats").await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn placing_the_same_id_twice_returns_the_same_exchange_id_and_counts_once() {
    let sim = start(quiet()).await;
    let id = Uuid::now_v7();

    let (first_status, first) = place(&sim, &order(id, APPLE), None).await;
    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(first["client_order_id"], id.to_string());
    let exchange_id = first["exchange_order_id"].as_str().unwrap().to_owned();
    assert!(exchange_id.starts_with("EX-"), "{exchange_id}");

    for _ in 0..2 {
        let (status, again) = place(&sim, &order(id, APPLE), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["exchange_order_id"], exchange_id.as_str());
    }

    let other = Uuid::now_v7();
    let (status, _) = place(&sim, &order(other, APPLE), None).await;
    assert_eq!(status, StatusCode::CREATED);

    let stats = stats(&sim).await;
    assert_eq!(stats.placements[&id.to_string()], 1);
    assert_eq!(stats.place_calls[&id.to_string()], 3);
    assert_eq!(stats.placements[&other.to_string()], 1);
    assert_eq!(stats.total_placed, 2);
    assert_eq!(stats.total_calls, 4);
    assert_eq!(stats.duplicates_absorbed, 2);
    assert_eq!(stats.max_placements_per_order, 1);
    assert_eq!(sim.stats(), stats);
}

#[tokio::test]
async fn concurrent_first_placements_create_one_order() {
    let sim = start(quiet()).await;
    let id = Uuid::now_v7();
    let body = order(id, APPLE);
    let answers = futures::future::join_all((0..8).map(|_| place(&sim, &body, None))).await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|(_, body)| body["exchange_order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    let stats = sim.stats();
    assert_eq!(stats.placements[&id.to_string()], 1);
    assert_eq!(stats.place_calls[&id.to_string()], 8);
}

#[tokio::test]
async fn a_failure_rate_of_one_fails_every_call_and_places_nothing() {
    let sim = start(SimSettings {
        failure_rate: 1.0,
        ..quiet()
    })
    .await;
    let id = Uuid::now_v7();
    for _ in 0..5 {
        let (status, body) = place(&sim, &order(id, APPLE), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["error"].is_string(), "{body}");
    }
    let stats = stats(&sim).await;
    assert!(stats.placements.is_empty());
    assert_eq!(stats.place_calls[&id.to_string()], 5);
    assert_eq!(stats.total_placed, 0);
    assert_eq!(stats.max_placements_per_order, 0);

    // Lookups are not subject to the failure rate.
    let (status, body) = get(&sim, &format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "unknown"}));
}

#[tokio::test]
async fn rejected_instruments_are_refused_for_good_and_not_placed() {
    let sim = start(SimSettings {
        reject_instruments: ["DE0007164600".to_string()].into(),
        ..quiet()
    })
    .await;
    let id = Uuid::now_v7();
    let (status, body) = place(&sim, &order(id, "DE0007164600"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"reason": "instrument DE0007164600 is not tradable"})
    );
    let stats = stats(&sim).await;
    assert!(stats.placements.is_empty());
    assert_eq!(stats.place_calls[&id.to_string()], 1);

    let (status, _) = place(&sim, &order(Uuid::now_v7(), APPLE), None).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn lookups_know_placed_orders_only() {
    let sim = start(quiet()).await;
    let id = Uuid::now_v7();
    let (_, placed) = place(&sim, &order(id, APPLE), None).await;

    let (status, body) = get(&sim, &format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["exchange_order_id"], placed["exchange_order_id"]);
    assert_eq!(body["client_order_id"], id.to_string());
    assert_eq!(body["instrument"], APPLE);
    assert_eq!(body["limit_price"], "187.25");
    assert_eq!(body["quantity"], 10);

    let (status, body) = get(&sim, &format!("/orders/{}", Uuid::now_v7())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "unknown"}));

    let (status, _) = get(&sim, "/orders/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Lookups are not placements.
    assert_eq!(stats(&sim).await.total_calls, 1);
}

#[tokio::test]
async fn the_down_switch_fails_placements_and_lookups_until_lifted() {
    let sim = start(quiet()).await;
    let id = Uuid::now_v7();

    let (status, view) = control(&sim, json!({"down": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["down"], true);
    let (status, _) = get(&sim, "/control").await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = place(&sim, &order(id, APPLE), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = get(&sim, &format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&sim, "/health").await.0, StatusCode::OK);
    assert!(stats(&sim).await.placements.is_empty());

    let (_, view) = control(&sim, json!({"down": false})).await;
    assert_eq!(view["down"], false);
    let (status, _) = place(&sim, &order(id, APPLE), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let stats = stats(&sim).await;
    assert_eq!(stats.placements[&id.to_string()], 1);
    assert_eq!(stats.place_calls[&id.to_string()], 2);
}

#[tokio::test]
async fn control_shows_and_validates_settings() {
    let sim = start(quiet()).await;
    let (status, view) = get(&sim, "/control").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        view,
        json!({
            "latency_ms": 0, "lookup_latency_ms": 0, "failure_rate": 0.0, "down": false,
            "reject_instruments": [], "timeout_after_accept": false,
            "timeout_after_accept_rate": 0.0, "timeout_after_accept_delay_ms": 30000,
            "drop_after_accept": false, "drop_after_accept_rate": 0.0,
            "fill_interval_ms": 250, "limit_fill_rate": 0.2, "market_fills_max": 3,
            "feed_capacity": 500000, "feed_duplicate_rate": 0.0, "feed_redeliver_rate": 0.0,
            "feed_drop_rate": 0.0,
            "api_key_required": false,
        })
    );

    let (status, view) = control(
        &sim,
        json!({"failure_rate": 0.25, "reject_instruments": ["us0378331005"], "latency_ms": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["failure_rate"], 0.25);
    assert_eq!(view["reject_instruments"], json!([APPLE]));
    assert_eq!(view["latency_ms"], 1);

    let (status, view) = control(
        &sim,
        json!({"drop_after_accept_rate": 0.5, "timeout_after_accept_rate": 0.125}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["drop_after_accept_rate"], 0.5);
    assert_eq!(view["timeout_after_accept_rate"], 0.125);

    for bad in [
        json!({"failure_rate": 1.5}),
        json!({"drop_after_accept_rate": 2}),
        json!({"timeout_after_accept_rate": -0.5}),
        json!({"drop_after_accept": 1}),
        json!({"dwon": true}),
        json!({"down": "yes"}),
    ] {
        let (status, body) = control(&sim, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string());
    }
    assert_eq!(get(&sim, "/control").await.1["failure_rate"], 0.25);
}

#[tokio::test]
async fn latency_applies_to_every_placement_answer() {
    let sim = start(SimSettings {
        latency: Duration::from_millis(150),
        failure_rate: 1.0,
        ..quiet()
    })
    .await;
    let started = Instant::now();
    let (status, _) = place(&sim, &order(Uuid::now_v7(), APPLE), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_configured_api_key_is_required() {
    let sim = start(SimSettings {
        api_key: Some("right-key".into()),
        ..quiet()
    })
    .await;
    let id = Uuid::now_v7();
    for key in [None, Some("wrong-key")] {
        let (status, body) = place(&sim, &order(id, APPLE), key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(body["error"].is_string());
    }
    assert_eq!(
        get(&sim, &format!("/orders/{id}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stats(&sim).await.total_calls, 0);

    let (status, _) = place(&sim, &order(id, APPLE), Some("right-key")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(get(&sim, "/control").await.1["api_key_required"], true);
}

#[tokio::test]
async fn malformed_placements_are_bad_requests() {
    let sim = start(quiet()).await;
    let mut body = order(Uuid::now_v7(), APPLE);
    body["quantity"] = json!(0);
    let (status, answer) = place(&sim, &body, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["reason"].is_string());
    let (status, _) = place(&sim, &json!({"client_order_id": "x"}), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(stats(&sim).await.total_calls, 0);
}

#[tokio::test]
async fn timeout_after_accept_records_the_placement_while_the_client_gives_up() {
    let sim = start(SimSettings {
        timeout_after_accept: true,
        timeout_after_accept_delay: Duration::from_secs(5),
        ..quiet()
    })
    .await;
    let id = Uuid::now_v7();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client
        .post(format!("{}/orders", sim.base_url))
        .json(&order(id, APPLE))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let stats = stats(&sim).await;
    assert_eq!(stats.placements[&id.to_string()], 1);
    let (status, found) = get(&sim, &format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);

    // Once the exchange answers in time again, the retry gets the original id.
    control(&sim, json!({"timeout_after_accept": false})).await;
    let (status, again) = place(&sim, &order(id, APPLE), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["exchange_order_id"], found["exchange_order_id"]);
    assert_eq!(sim.stats().placements[&id.to_string()], 1);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = start(quiet()).await;
    let url = format!("{}/health", sim.base_url);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::OK);
    sim.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&url).send().await.is_err());
}

fn with_expiry(id: Uuid, expires_at: Value) -> Value {
    let mut body = order(id, APPLE);
    body["expires_at"] = expires_at;
    body
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn an_order_arriving_after_its_expiry_is_refused_counted_and_not_placed() {
    let sim = start(quiet()).await;
    let id = Uuid::now_v7();
    let past = rfc3339(OffsetDateTime::now_utc() - time::Duration::seconds(1));
    for _ in 0..2 {
        let (status, body) = place(&sim, &with_expiry(id, json!(past)), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let reason = body["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("order expired before it reached the exchange"),
            "{reason}"
        );
    }
    assert_eq!(
        get(&sim, &format!("/orders/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let stats = stats(&sim).await;
    assert!(stats.placements.is_empty());
    assert_eq!(stats.expired_refusals[&id.to_string()], 2);
    assert_eq!(stats.total_expired_refusals, 2);
    assert_eq!(stats.place_calls[&id.to_string()], 2);
    assert_eq!(stats.total_placed, 0);
}

#[tokio::test]
async fn orders_in_force_or_without_an_expiry_are_placed() {
    let sim = start(quiet()).await;
    let (without, null, future) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (status, _) = place(&sim, &order(without, APPLE), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = place(&sim, &with_expiry(null, Value::Null), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = place(
        &sim,
        &with_expiry(future, json!("2099-06-01T12:00:00+02:00")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, found) = get(&sim, &format!("/orders/{future}")).await;
    assert_eq!(found["expires_at"], "2099-06-01T10:00:00Z");
    let (_, found) = get(&sim, &format!("/orders/{without}")).await;
    assert_eq!(found["expires_at"], Value::Null);
    assert_eq!(stats(&sim).await.total_placed, 3);
}

#[tokio::test]
async fn a_retry_of_an_accepted_order_after_its_expiry_gets_the_original_answer() {
    // Placed in time, answer lost, retried late: the exchange has it, so it says so.
    let sim = start(quiet()).await;
    let id = Uuid::now_v7();
    // Far enough ahead that a loaded machine still delivers the first call in time.
    let soon = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let (status, first) = place(&sim, &with_expiry(id, json!(rfc3339(soon))), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let left = soon - OffsetDateTime::now_utc() + time::Duration::milliseconds(100);
    tokio::time::sleep(left.try_into().unwrap_or_default()).await;
    let (status, again) = place(&sim, &with_expiry(id, json!(rfc3339(soon))), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["exchange_order_id"], first["exchange_order_id"]);
    let stats = stats(&sim).await;
    assert_eq!(stats.placements[&id.to_string()], 1);
    assert_eq!(stats.total_expired_refusals, 0);
}

#[tokio::test]
async fn a_malformed_expiry_is_a_bad_request() {
    let sim = start(quiet()).await;
    for bad in [
        json!("next week"),
        json!("2099-06-01"),
        json!(1_900_000_000),
    ] {
        let (status, body) = place(&sim, &with_expiry(Uuid::now_v7(), bad.clone()), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["reason"].is_string());
    }
    assert_eq!(stats(&sim).await.total_calls, 0);
}

#[tokio::test]
async fn drop_after_accept_records_the_placement_and_closes_the_connection_unanswered() {
    let sim = start(SimSettings {
        drop_after_accept: true,
        ..quiet()
    })
    .await;
    let id = Uuid::now_v7();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let error = client
        .post(format!("{}/orders", sim.base_url))
        .json(&order(id, APPLE))
        .send()
        .await
        .unwrap_err();
    // Lost after it was sent: neither a failure to connect nor a timeout.
    assert!(!error.is_connect(), "{error:?}");
    assert!(!error.is_timeout(), "{error:?}");

    let stats = stats(&sim).await;
    assert_eq!(stats.placements[&id.to_string()], 1);
    assert_eq!(stats.total_connections_dropped, 1);
    let (status, found) = get(&sim, &format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);

    // The simulator still serves other connections (and other routes on the same one).
    control(&sim, json!({"drop_after_accept": false})).await;
    let (status, again) = place(&sim, &order(id, APPLE), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["exchange_order_id"], found["exchange_order_id"]);
    assert_eq!(sim.stats().placements[&id.to_string()], 1);
}

#[tokio::test]
async fn withheld_shares_follow_their_rates() {
    let sim = start(SimSettings {
        drop_after_accept_rate: 0.5,
        ..quiet()
    })
    .await;
    let client = reqwest::Client::new();
    let mut lost = 0;
    for _ in 0..40 {
        let sent = client
            .post(format!("{}/orders", sim.base_url))
            .json(&order(Uuid::now_v7(), APPLE))
            .send()
            .await;
        if sent.is_err() {
            lost += 1;
        }
    }
    let stats = stats(&sim).await;
    assert_eq!(stats.total_placed, 40);
    assert_eq!(stats.total_connections_dropped, lost);
    assert!(
        (5..=35).contains(&lost),
        "{lost} of 40 dropped at a rate of 0.5"
    );
}

#[tokio::test]
async fn stats_count_attempts_placements_and_calls_per_minute() {
    let sim = start(SimSettings {
        down: true,
        ..quiet()
    })
    .await;
    let id = Uuid::now_v7();
    for _ in 0..3 {
        let (status, _) = place(&sim, &order(id, APPLE), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        get(&sim, &format!("/orders/{id}")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    control(&sim, json!({"down": false})).await;
    for _ in 0..2 {
        place(&sim, &order(id, APPLE), None).await;
    }
    get(&sim, &format!("/orders/{id}")).await;

    let stats = stats(&sim).await;
    assert_eq!(stats.place_calls[&id.to_string()], 5);
    assert_eq!(stats.total_calls, 5);
    assert_eq!(stats.placements[&id.to_string()], 1);
    assert_eq!(stats.duplicates_absorbed, 1);
    assert_eq!(stats.calls_per_minute.values().sum::<u64>(), 5);
    assert_eq!(stats.total_lookups, 2);
    assert_eq!(stats.lookups_per_minute.values().sum::<u64>(), 2);
    for minute in stats.calls_per_minute.keys() {
        let start = OffsetDateTime::parse(minute, &Rfc3339).unwrap();
        assert_eq!(start.second(), 0, "{minute}");
        assert!(OffsetDateTime::now_utc() - start < time::Duration::minutes(2));
    }
}
