//! `GET /orders/{id}/events`: an order's audit trail from `order_events`, oldest first, for its
//! own client only — in one statement with the request's admission.

use std::time::Duration;

use http::StatusCode;
use order_shared::domain::OrderId;
use order_shared::ports::{ClaimOutcome, ClientLimits, OrderLifecycle, RetryPlan};
use serde_json::{Value, json};
use system_tests::{LIMIT_ORDER, MARKET_ORDER};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::Harness;

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orders_history_lists_every_stored_transition_oldest_first() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;
    let order = OrderId::from(id);
    let claim = h.db.store.claim_for_placement(order, LEASE).await.unwrap();
    assert!(matches!(claim, ClaimOutcome::Claimed(_)), "{claim:?}");
    h.db.store
        .release_for_retry(
            order,
            "503 from the exchange",
            RetryPlan {
                park_until: None,
                outcome_unknown: false,
            },
        )
        .await
        .unwrap();
    let canceled = h
        .api
        .send(
            http::Request::delete(format!("/orders/{id}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.json);

    let response = h.api.get(&format!("/orders/{id}/events")).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    assert_eq!(response.json["order_id"], id.to_string());
    let events = response.json["events"].as_array().expect("events");
    // Exactly the rows of `order_events`, in the order they were written.
    let stored: Vec<Value> =
        h.db.client()
            .await
            .query(
                "SELECT from_status, to_status, reason, attempt, created_at \
                 FROM order_events WHERE order_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                json!({
                    "from": row.get::<_, Option<String>>(0),
                    "to": row.get::<_, String>(1),
                    "reason": row.get::<_, String>(2),
                    "attempt": row.get::<_, i32>(3),
                    "at": row.get::<_, OffsetDateTime>(4).unix_timestamp_nanos() / 1000,
                })
            })
            .collect();
    let shown: Vec<Value> = events
        .iter()
        .map(|e| {
            let at = OffsetDateTime::parse(e["at"].as_str().unwrap(), &Rfc3339).unwrap();
            assert!(e["at"].as_str().unwrap().ends_with('Z'), "UTC: {e}");
            json!({
                "from": e["from"], "to": e["to"], "reason": e["reason"],
                "attempt": e["attempt"], "at": at.unix_timestamp_nanos() / 1000,
            })
        })
        .collect();
    assert_eq!(shown, stored);
    let steps: Vec<(&Value, &Value)> = events.iter().map(|e| (&e["from"], &e["to"])).collect();
    assert_eq!(
        steps,
        [
            (&json!(null), &json!("pending")),
            (&json!("pending"), &json!("placing")),
            (&json!("placing"), &json!("pending")),
            (&json!("pending"), &json!("canceled")),
        ]
    );
    assert!(
        events[2]["reason"]
            .as_str()
            .unwrap()
            .contains("503 from the exchange"),
        "{}",
        events[2]
    );
    assert_eq!(events[2]["attempt"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_clients_unknown_or_malformed_orders_history_is_404() {
    let h = Harness::start().await;
    let id = h.create(MARKET_ORDER).await;
    let other = h.api.other_client("globex", ClientLimits::default()).await;

    for (api, uri) in [
        (&other, format!("/orders/{id}/events")),
        (&h.api, format!("/orders/{}/events", uuid::Uuid::now_v7())),
        (&h.api, "/orders/42/events".to_owned()),
    ] {
        let response = api.get(&uri).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            response.json,
            json!({"message": "Order not found"}),
            "{uri}"
        );
    }
    // Its own client still sees it.
    let own = h.api.get(&format!("/orders/{id}/events")).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orders_history_needs_a_valid_key() {
    let h = Harness::start().await;
    let id = h.create(MARKET_ORDER).await;

    let response = h
        .api
        .send_as_is(
            http::Request::get(format!("/orders/{id}/events"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}
