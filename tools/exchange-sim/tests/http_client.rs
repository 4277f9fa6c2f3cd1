//! The order service's HTTP exchange client (`order_shared::adapters::http_exchange`) against the
//! simulator and against a tiny server answering odd statuses: every answer must land in the
//! right bucket — acknowledged, rejected for good, transient (not taken) or unknown (maybe
//! placed) — and no outcome may carry the key. (These tests live here because `order-shared`
//! must not depend on the simulator.)

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use exchange_sim::{ControlPatch, SimSettings};
use order_shared::adapters::http_exchange::HttpExchange;
use order_shared::domain::{
    ClientId, Isin, NewOrder, Order, OrderId, OrderStatus, OrderType, Price, Quantity, Side,
};
use order_shared::ports::{
    CancelRefusal, Exchange, ExchangeCancelOutcome, LookupOutcome, PlacementOutcome,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

mod common;

use common::{APPLE, any_port, quiet, start};

const SIEMENS: &str = "DE0007236101";
const KEY: &str = "test-key-7f3a9c";

fn client(base_url: &str, key: Option<&str>) -> HttpExchange {
    client_with_timeout(base_url, key, Duration::from_secs(5))
}

fn client_with_timeout(base_url: &str, key: Option<&str>, timeout: Duration) -> HttpExchange {
    HttpExchange::new(
        base_url.to_owned(),
        key.map(str::to_owned),
        Duration::from_secs(1),
        timeout,
    )
    .unwrap()
}

fn limit_order(instrument: &str) -> Order {
    let details = NewOrder::new(
        OrderType::Limit,
        Side::Buy,
        Isin::parse(instrument).unwrap(),
        Some(Price::parse("187.25").unwrap()),
        Quantity::new(10).unwrap(),
    )
    .unwrap();
    order(details)
}

fn market_order() -> Order {
    let details = NewOrder::new(
        OrderType::Market,
        Side::Sell,
        Isin::parse(APPLE).unwrap(),
        None,
        Quantity::new(3).unwrap(),
    )
    .unwrap();
    order(details)
}

fn order(details: NewOrder) -> Order {
    Order {
        id: OrderId::generate(),
        client_id: ClientId::parse("default").unwrap(),
        created_at: OffsetDateTime::now_utc(),
        details,
        status: OrderStatus::Pending,
        attempts: 0,
        last_error: None,
        exchange_order_id: None,
        placed_at: None,
        alerted_at: None,
        expires_at: None,
        next_attempt_at: None,
        outcome_unknown: false,
        filled_quantity: order_shared::domain::Shares::ZERO,
        average_fill_price: None,
    }
}

fn acknowledged(outcome: PlacementOutcome) -> String {
    match outcome {
        PlacementOutcome::Acknowledged { exchange_order_id } => exchange_order_id,
        other => panic!("expected acknowledged, got {other:?}"),
    }
}

fn transient(outcome: PlacementOutcome) -> String {
    match outcome {
        PlacementOutcome::Transient { error } => {
            assert!(!error.contains(KEY), "the key leaked: {error}");
            error
        }
        other => panic!("expected transient, got {other:?}"),
    }
}

fn unknown(outcome: PlacementOutcome) -> String {
    match outcome {
        PlacementOutcome::Unknown { error } => {
            assert!(!error.contains(KEY), "the key leaked: {error}");
            error
        }
        other => panic!("expected unknown, got {other:?}"),
    }
}

fn rejected(outcome: PlacementOutcome) -> String {
    match outcome {
        PlacementOutcome::Rejected { reason } => reason,
        other => panic!("expected rejected, got {other:?}"),
    }
}

// --- against the simulator -------------------------------------------------------------------

#[tokio::test]
async fn places_once_and_finds_the_order_again() {
    let sim = start(SimSettings {
        api_key: Some(KEY.into()),
        // The order stays as it was placed: no fills while the test looks at it.
        limit_fill_rate: 0.0,
        ..quiet()
    })
    .await;
    let exchange = client(&format!("{}/", sim.base_url), Some(KEY));
    let mut order = limit_order(APPLE);
    order.expires_at = Some(datetime!(2099-01-02 03:04:05.25 +01:00));

    let first = acknowledged(exchange.place(&order).await);
    let again = acknowledged(exchange.place(&order).await);
    assert_eq!(first, again);
    assert_eq!(
        exchange.lookup(order.id).await.unwrap(),
        LookupOutcome::Placed {
            exchange_order_id: first.clone()
        }
    );
    assert_eq!(
        exchange.lookup(OrderId::generate()).await.unwrap(),
        LookupOutcome::Unknown
    );

    let stats = sim.stats();
    assert_eq!(stats.placements[&order.id.to_string()], 1);
    assert_eq!(stats.place_calls[&order.id.to_string()], 2);

    // What the exchange received is the order, field for field.
    let seen: Value = reqwest::Client::new()
        .get(format!("{}/orders/{}", sim.base_url, order.id))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen,
        json!({
            "exchange_order_id": first, "client_order_id": order.id.to_string(),
            "instrument": APPLE, "side": "buy", "type": "limit", "limit_price": "187.25",
            "quantity": 10, "expires_at": "2099-01-02T02:04:05.25Z",
            // And how far the exchange has worked it.
            "state": "working", "filled_quantity": 0,
        })
    );
}

#[tokio::test]
async fn market_orders_carry_no_price() {
    let sim = start(quiet()).await;
    let exchange = client(&sim.base_url, None);
    let order = market_order();
    acknowledged(exchange.place(&order).await);
    let seen: Value = reqwest::get(format!("{}/orders/{}", sim.base_url, order.id))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["limit_price"], Value::Null);
    assert_eq!(seen["type"], "market");
    assert_eq!(seen["side"], "sell");
    assert_eq!(seen["quantity"], 3);
    // Without a time in force, none is sent (and the exchange keeps none).
    assert_eq!(seen["expires_at"], Value::Null);
}

#[tokio::test]
async fn injected_failures_and_downtime_are_transient() {
    let sim = start(SimSettings {
        failure_rate: 1.0,
        ..quiet()
    })
    .await;
    let exchange = client(&sim.base_url, None);
    let order = limit_order(APPLE);
    let error = transient(exchange.place(&order).await);
    assert!(error.contains("503"), "{error}");

    sim.control(&ControlPatch {
        failure_rate: Some(0.0),
        down: Some(true),
        ..ControlPatch::default()
    })
    .unwrap();
    transient(exchange.place(&order).await);
    let error = exchange.lookup(order.id).await.unwrap_err();
    assert!(error.0.contains("503"), "{error}");
    assert!(sim.stats().placements.is_empty());

    sim.control(&ControlPatch {
        down: Some(false),
        ..ControlPatch::default()
    })
    .unwrap();
    acknowledged(exchange.place(&order).await);
    assert_eq!(sim.stats().placements[&order.id.to_string()], 1);
}

#[tokio::test]
async fn refused_instruments_are_rejected_with_the_exchange_reason() {
    let sim = start(SimSettings {
        reject_instruments: [SIEMENS.to_string()].into(),
        ..quiet()
    })
    .await;
    let exchange = client(&sim.base_url, None);
    let reason = rejected(exchange.place(&limit_order(SIEMENS)).await);
    assert_eq!(reason, format!("instrument {SIEMENS} is not tradable"));
    assert!(sim.stats().placements.is_empty());
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_transient_not_a_rejection() {
    let sim = start(SimSettings {
        api_key: Some(KEY.into()),
        ..quiet()
    })
    .await;
    for exchange in [
        client(&sim.base_url, None),
        client(&sim.base_url, Some("rotated-away")),
    ] {
        let order = limit_order(APPLE);
        let error = transient(exchange.place(&order).await);
        assert!(error.contains("401"), "{error}");
        assert!(exchange.lookup(order.id).await.is_err());
    }
    assert_eq!(sim.stats().total_calls, 0);
    let debug = format!("{:?}", client(&sim.base_url, Some(KEY)));
    assert!(!debug.contains(KEY), "{debug}");
}

#[tokio::test]
async fn an_expired_order_is_rejected_and_never_placed() {
    let sim = start(quiet()).await;
    let exchange = client(&sim.base_url, None);
    let mut order = market_order();
    order.expires_at = Some(OffsetDateTime::now_utc() - time::Duration::seconds(1));
    let reason = rejected(exchange.place(&order).await);
    assert!(
        reason.starts_with("order expired before it reached the exchange"),
        "{reason}"
    );
    assert_eq!(
        exchange.lookup(order.id).await.unwrap(),
        LookupOutcome::Unknown
    );
    let stats = sim.stats();
    assert!(stats.placements.is_empty());
    assert_eq!(stats.expired_refusals[&order.id.to_string()], 1);
    assert_eq!(stats.place_calls[&order.id.to_string()], 1);

    // One still in force is placed.
    order.expires_at = Some(OffsetDateTime::now_utc() + time::Duration::minutes(5));
    acknowledged(exchange.place(&order).await);
    assert_eq!(sim.stats().placements[&order.id.to_string()], 1);
}

/// An unknown outcome from the simulator: the order was accepted and recorded although the
/// client heard nothing, so a lookup finds it and a retry under the same id is de-duplicated.
async fn assert_placed_behind_the_clients_back(
    sim: &exchange_sim::SimHandle,
    exchange: &HttpExchange,
    order: &Order,
) {
    assert_eq!(sim.stats().placements[&order.id.to_string()], 1);
    let LookupOutcome::Placed { exchange_order_id } = exchange.lookup(order.id).await.unwrap()
    else {
        panic!("the accepted order must be found");
    };
    sim.control(&ControlPatch {
        timeout_after_accept: Some(false),
        timeout_after_accept_rate: Some(0.0),
        drop_after_accept: Some(false),
        drop_after_accept_rate: Some(0.0),
        ..ControlPatch::default()
    })
    .unwrap();
    assert_eq!(acknowledged(exchange.place(order).await), exchange_order_id);
    let stats = sim.stats();
    assert_eq!(stats.placements[&order.id.to_string()], 1);
    assert!(stats.duplicates_absorbed >= 1);
}

#[tokio::test]
async fn a_timeout_after_accepting_is_unknown_and_the_lookup_finds_the_hidden_success() {
    let sim = start(SimSettings {
        timeout_after_accept: true,
        timeout_after_accept_delay: Duration::from_secs(5),
        ..quiet()
    })
    .await;
    let exchange = client_with_timeout(&sim.base_url, Some(KEY), Duration::from_millis(300));
    let order = limit_order(APPLE);

    let error = unknown(exchange.place(&order).await);
    assert!(error.contains("did not answer within 300 ms"), "{error}");
    assert_eq!(sim.stats().total_answers_held_back, 1);
    assert_placed_behind_the_clients_back(&sim, &exchange, &order).await;
}

#[tokio::test]
async fn a_held_back_share_of_one_is_unknown_too() {
    let sim = start(SimSettings {
        timeout_after_accept_rate: 1.0,
        timeout_after_accept_delay: Duration::from_secs(5),
        ..quiet()
    })
    .await;
    let exchange = client_with_timeout(&sim.base_url, None, Duration::from_millis(300));
    let order = market_order();
    unknown(exchange.place(&order).await);
    assert_placed_behind_the_clients_back(&sim, &exchange, &order).await;
}

#[tokio::test]
async fn a_connection_dropped_after_accepting_is_unknown() {
    let sim = start(SimSettings {
        drop_after_accept: true,
        ..quiet()
    })
    .await;
    // A generous timeout: the outcome must come from the lost connection, not from waiting.
    let exchange = client_with_timeout(&sim.base_url, Some(KEY), Duration::from_secs(10));
    let order = limit_order(APPLE);

    let started = std::time::Instant::now();
    let error = unknown(exchange.place(&order).await);
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    assert!(error.contains("connection to the exchange lost"), "{error}");
    assert!(!error.contains("did not answer"), "{error}");
    // A retry while the exchange still drops: unknown again, and still one placement.
    unknown(exchange.place(&order).await);
    let stats = sim.stats();
    assert_eq!(stats.total_connections_dropped, 2);
    assert_eq!(stats.place_calls[&order.id.to_string()], 2);
    assert_placed_behind_the_clients_back(&sim, &exchange, &order).await;
}

#[tokio::test]
async fn a_dropped_share_of_one_is_unknown_too() {
    let sim = start(SimSettings {
        drop_after_accept_rate: 1.0,
        ..quiet()
    })
    .await;
    let exchange = client(&sim.base_url, None);
    let order = market_order();
    unknown(exchange.place(&order).await);
    assert_placed_behind_the_clients_back(&sim, &exchange, &order).await;
}

#[tokio::test]
async fn nothing_is_withheld_from_a_refusal() {
    let sim = start(SimSettings {
        drop_after_accept: true,
        timeout_after_accept: true,
        reject_instruments: [SIEMENS.to_string()].into(),
        ..quiet()
    })
    .await;
    // Shorter than the 30 s an answer would be held back, long enough for a loaded machine.
    let exchange = client_with_timeout(&sim.base_url, None, Duration::from_secs(5));
    rejected(exchange.place(&limit_order(SIEMENS)).await);
    let mut late = market_order();
    late.expires_at = Some(OffsetDateTime::now_utc() - time::Duration::minutes(1));
    rejected(exchange.place(&late).await);
    let stats = sim.stats();
    assert_eq!(stats.total_connections_dropped, 0);
    assert_eq!(stats.total_answers_held_back, 0);
    assert_eq!(stats.total_instrument_refusals, 1);
    assert_eq!(stats.total_expired_refusals, 1);
}

#[tokio::test]
async fn a_slow_lookup_is_a_lookup_error() {
    let sim = start(SimSettings {
        lookup_latency: Duration::from_secs(5),
        ..quiet()
    })
    .await;
    let exchange = client_with_timeout(&sim.base_url, None, Duration::from_millis(200));
    let error = exchange.lookup(OrderId::generate()).await.unwrap_err();
    assert!(error.0.contains("did not answer"), "{error}");
}

#[tokio::test]
async fn an_unreachable_exchange_is_transient() {
    // A port that was free a moment ago: nothing listens there any more, so the connection is
    // refused and the order certainly never left.
    let port = local_process::free_port().unwrap();
    let exchange = client(&format!("http://127.0.0.1:{port}"), Some(KEY));
    let order = limit_order(APPLE);
    let error = transient(exchange.place(&order).await);
    assert!(error.contains("could not connect"), "{error}");
    let error = exchange.lookup(order.id).await.unwrap_err();
    assert!(error.0.contains("could not connect"), "{error}");
}

// --- cancels --------------------------------------------------------------------------------

fn refused(outcome: ExchangeCancelOutcome) -> (CancelRefusal, String) {
    match outcome {
        ExchangeCancelOutcome::Refused { refusal, reason } => {
            assert!(!reason.contains(KEY), "the key leaked: {reason}");
            (refusal, reason)
        }
        other => panic!("expected a refused cancel, got {other:?}"),
    }
}

fn cancel_transient(outcome: ExchangeCancelOutcome) -> String {
    match outcome {
        ExchangeCancelOutcome::Transient { error } => {
            assert!(!error.contains(KEY), "the key leaked: {error}");
            error
        }
        other => panic!("expected a transient cancel, got {other:?}"),
    }
}

#[tokio::test]
async fn a_working_order_is_canceled_and_canceled_again_with_the_same_answer() {
    let sim = start(SimSettings {
        api_key: Some(KEY.into()),
        limit_fill_rate: 0.0,
        ..quiet()
    })
    .await;
    let exchange = client(&sim.base_url, Some(KEY));
    let order = limit_order(APPLE);
    let exchange_order_id = acknowledged(exchange.place(&order).await);

    let accepted = ExchangeCancelOutcome::Accepted { exchange_order_id };
    assert_eq!(exchange.cancel(order.id).await, accepted);
    assert_eq!(exchange.cancel(order.id).await, accepted);

    let stats = sim.feed_stats();
    assert_eq!(stats.cancels_accepted, 2);
    // One `canceled` report for the whole rest, none for the repeat.
    assert_eq!(stats.reports_by_kind.canceled, 1);
    let executions = &stats.orders[&order.id.to_string()];
    assert_eq!(executions.state, exchange_sim::WorkState::Canceled);
    assert_eq!(executions.filled_quantity, 0);
}

#[tokio::test]
async fn a_cancel_after_the_fill_or_the_expiry_or_of_an_unknown_order_is_refused_for_good() {
    let sim = start(SimSettings {
        fill_interval: Duration::from_millis(10),
        limit_fill_rate: 0.0,
        ..quiet()
    })
    .await;
    let exchange = client(&sim.base_url, None);

    // A market order fills at once.
    let filled = market_order();
    acknowledged(exchange.place(&filled).await);
    let (refusal, reason) = refused(exchange.cancel(filled.id).await);
    assert_eq!(refusal, CancelRefusal::AlreadyFilled);
    assert!(reason.contains("filled"), "{reason}");

    let mut expiring = limit_order(APPLE);
    expiring.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_millis(300));
    acknowledged(exchange.place(&expiring).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        refused(exchange.cancel(expiring.id).await).0,
        CancelRefusal::AlreadyExpired
    );

    assert_eq!(
        refused(exchange.cancel(OrderId::generate()).await).0,
        CancelRefusal::UnknownOrder
    );

    let stats = sim.feed_stats();
    assert_eq!(stats.cancels_refused, 2);
    assert_eq!(stats.reports_by_kind.cancel_refused, 2);
    assert_eq!(stats.reports_by_kind.expired, 1);
}

#[tokio::test]
async fn a_cancel_is_transient_while_the_exchange_fails_or_refuses_the_key() {
    let sim = start(SimSettings {
        api_key: Some(KEY.into()),
        limit_fill_rate: 0.0,
        ..quiet()
    })
    .await;
    let exchange = client(&sim.base_url, Some(KEY));
    let order = limit_order(APPLE);
    acknowledged(exchange.place(&order).await);

    sim.control(&ControlPatch {
        down: Some(true),
        ..ControlPatch::default()
    })
    .unwrap();
    assert!(cancel_transient(exchange.cancel(order.id).await).contains("503"));
    sim.control(&ControlPatch {
        down: Some(false),
        failure_rate: Some(1.0),
        ..ControlPatch::default()
    })
    .unwrap();
    assert!(cancel_transient(exchange.cancel(order.id).await).contains("503"));
    sim.control(&ControlPatch {
        failure_rate: Some(0.0),
        ..ControlPatch::default()
    })
    .unwrap();
    let wrong_key = client(&sim.base_url, Some("not-the-key"));
    assert!(cancel_transient(wrong_key.cancel(order.id).await).contains("API key"));
    assert_eq!(sim.feed_stats().cancels_accepted, 0);

    // Once it answers again, the cancel goes through.
    assert!(matches!(
        exchange.cancel(order.id).await,
        ExchangeCancelOutcome::Accepted { .. }
    ));
}

// --- against a server with odd answers --------------------------------------------------------

/// Answers `/{status}/{body}/orders` and `/{status}/{body}/orders/{id}` with that status and a
/// body of the named kind, so that each case is just a base URL.
async fn odd_server() -> (String, tokio::task::JoinHandle<()>) {
    async fn answer(status: u16, kind: &str, headers: &HeaderMap) -> Response {
        let status = StatusCode::from_u16(status).unwrap();
        let json_body = |value: Value| {
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                value.to_string(),
            )
                .into_response()
        };
        match kind {
            "reason" => json_body(json!({"reason": "quantity exceeds the lot limit"})),
            "error" => json_body(json!({"error": "busy, come back later"})),
            "ack" => json_body(json!({"exchange_order_id": "EX-odd", "client_order_id": "c"})),
            "noid" => json_body(json!({"client_order_id": "c"})),
            "echo" => {
                let key = headers
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                json_body(json!({"error": format!("key {key} is not valid"), "reason": key}))
            }
            "filled" => {
                json_body(json!({"reason": "order is already filled", "refusal": "filled"}))
            }
            "expired" => json_body(json!({"reason": "order has expired", "refusal": "expired"})),
            "unknown" => json_body(json!({"error": "unknown order", "refusal": "unknown_order"})),
            "redirect" => (
                status,
                [(header::LOCATION, "/201/ack/orders")],
                String::new(),
            )
                .into_response(),
            "text" => (status, "  plain refusal\n".to_string()).into_response(),
            "garbage" => (status, "<html>oops</html>".to_string()).into_response(),
            _ => (status, String::new()).into_response(),
        }
    }
    let app = Router::new()
        .route(
            "/{status}/{kind}/orders",
            post(
                |Path((status, kind)): Path<(u16, String)>, headers: HeaderMap| async move {
                    answer(status, &kind, &headers).await
                },
            ),
        )
        .route(
            "/{status}/{kind}/orders/{id}/cancel",
            post(
                |Path((status, kind, _id)): Path<(u16, String, String)>,
                 headers: HeaderMap| async move {
                    answer(status, &kind, &headers).await
                },
            ),
        )
        .route(
            "/{status}/{kind}/orders/{id}",
            get(
                |Path((status, kind, _id)): Path<(u16, String, String)>,
                 headers: HeaderMap| async move {
                    answer(status, &kind, &headers).await
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

#[tokio::test]
async fn every_status_lands_in_the_right_bucket() {
    let (base, server) = odd_server().await;
    let place = |status: u16, kind: &'static str| {
        let exchange = client(&format!("{base}/{status}/{kind}"), Some(KEY));
        async move { exchange.place(&limit_order(APPLE)).await }
    };

    // Acknowledged: any 2xx naming the exchange order id.
    for status in [200, 201, 202] {
        assert_eq!(acknowledged(place(status, "ack").await), "EX-odd");
    }

    // Rejected for good: 400 and 422, with the body's reason or text.
    for status in [400, 422] {
        assert_eq!(
            rejected(place(status, "reason").await),
            "quantity exceeds the lot limit"
        );
        assert_eq!(rejected(place(status, "text").await), "plain refusal");
        assert!(rejected(place(status, "empty").await).contains(&status.to_string()));
    }

    // Transient: key problems, throttling, conflicts, timeouts, server errors, anything odd.
    for status in [
        401, 403, 404, 405, 408, 409, 418, 429, 500, 502, 503, 504, 301, 302, 307,
    ] {
        let error = transient(place(status, "error").await);
        assert!(error.contains(&status.to_string()), "{status}: {error}");
    }
    assert!(transient(place(429, "error").await).ends_with("busy, come back later"));
    // A redirect is not followed (the key must not travel elsewhere).
    assert!(transient(place(302, "redirect").await).contains("302"));
    // A success nobody can read is not an acknowledgement, but the exchange did take the order.
    for kind in ["garbage", "noid", "empty"] {
        unknown(place(201, kind).await);
    }
    // An exchange echoing the key back does not get it into an outcome.
    transient(place(401, "echo").await);
    transient(place(500, "echo").await);
    let reason = rejected(place(422, "echo").await);
    assert!(!reason.contains(KEY), "{reason}");

    server.abort();
}

#[tokio::test]
async fn lookups_only_trust_200_and_404() {
    let (base, server) = odd_server().await;
    let lookup = |status: u16, kind: &'static str| {
        let exchange = client(&format!("{base}/{status}/{kind}"), Some(KEY));
        async move { exchange.lookup(OrderId::generate()).await }
    };
    assert_eq!(
        lookup(200, "ack").await.unwrap(),
        LookupOutcome::Placed {
            exchange_order_id: "EX-odd".into()
        }
    );
    assert_eq!(lookup(404, "error").await.unwrap(), LookupOutcome::Unknown);
    for (status, kind) in [
        (200, "garbage"),
        (200, "noid"),
        (201, "ack"),
        (400, "reason"),
        (401, "echo"),
        (429, "error"),
        (500, "echo"),
        (503, "empty"),
    ] {
        let error = lookup(status, kind).await.unwrap_err();
        assert!(!error.0.contains(KEY), "the key leaked: {error}");
    }
    server.abort();
}

#[tokio::test]
async fn cancel_answers_land_in_the_right_bucket() {
    let (base, server) = odd_server().await;
    let cancel = |status: u16, kind: &'static str| {
        let exchange = client(&format!("{base}/{status}/{kind}"), Some(KEY));
        async move { exchange.cancel(OrderId::generate()).await }
    };
    assert_eq!(
        cancel(200, "ack").await,
        ExchangeCancelOutcome::Accepted {
            exchange_order_id: "EX-odd".into()
        }
    );
    for (status, kind, refusal) in [
        (422, "filled", CancelRefusal::AlreadyFilled),
        (422, "expired", CancelRefusal::AlreadyExpired),
        (404, "unknown", CancelRefusal::UnknownOrder),
        (400, "reason", CancelRefusal::Invalid),
        (422, "text", CancelRefusal::Invalid),
    ] {
        assert_eq!(
            refused(cancel(status, kind).await).0,
            refusal,
            "{status} {kind}"
        );
    }
    assert!(!refused(cancel(422, "echo").await).1.contains(KEY));
    // A 404 without the exchange's word that the order is unknown may be a wrong URL; a success
    // without an id is sent again (a cancel is idempotent); the rest as for placements.
    for (status, kind) in [
        (404, "error"),
        (404, "empty"),
        (200, "noid"),
        (200, "garbage"),
        (401, "echo"),
        (409, "error"),
        (429, "error"),
        (500, "echo"),
        (503, "empty"),
        (302, "redirect"),
    ] {
        cancel_transient(cancel(status, kind).await);
    }
    server.abort();
}

#[tokio::test]
async fn bad_configuration_fails_at_construction_without_showing_the_key() {
    let timeouts = (Duration::from_secs(1), Duration::from_secs(1));
    assert!(HttpExchange::new("::not a url".into(), None, timeouts.0, timeouts.1).is_err());
    let error = HttpExchange::new(
        "http://127.0.0.1:1".into(),
        Some(format!("{KEY}\r\nx-injected: 1")),
        timeouts.0,
        timeouts.1,
    )
    .unwrap_err();
    assert!(!format!("{error} {error:?}").contains(KEY));
}
