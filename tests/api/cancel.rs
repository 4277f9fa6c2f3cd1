//! `DELETE /orders/{id}`: a `pending` order is canceled (and can never be claimed afterwards),
//! a canceled one is canceled again, one being placed or already final is a `409`, and another
//! client's is a `404` — with the `order_events` row every cancel leaves behind.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use order_shared::domain::{OrderId, OrderStatus};
use order_shared::ports::{ClaimOutcome, ClientLimits, OrderLifecycle};
use serde_json::json;
use system_tests::{LIMIT_ORDER, MARKET_ORDER, TestApi, TestResponse};
use uuid::Uuid;

use crate::helpers::{Harness, header, id_of};

const LEASE: Duration = Duration::from_secs(30);

async fn cancel(api: &TestApi, id: impl std::fmt::Display) -> TestResponse {
    api.send(
        Request::delete(format!("/orders/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// `(from_status, to_status, reason)` of every event of the order, oldest first.
async fn events_of(h: &Harness, id: Uuid) -> Vec<(Option<String>, String, String)> {
    h.db.client()
        .await
        .query(
            "SELECT from_status, to_status, reason FROM order_events \
             WHERE order_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Moves an order as the pipeline would have (the statuses a client cannot cancel from).
async fn set_status(h: &Harness, id: Uuid, status: &str) {
    h.db.client()
        .await
        .execute(
            "UPDATE orders SET status = $2 WHERE id = $1",
            &[&id, &status],
        )
        .await
        .expect("update status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canceling_a_pending_order_answers_200_with_it_and_audits_the_cancel() {
    let h = Harness::start().await;
    let created = h.api.post_order(MARKET_ORDER, None).await;
    let id = id_of(&created);

    let response = cancel(&h.api, id).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    let json = &response.json;
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["status"], "canceled");
    for field in ["created_at", "expires_at", "type", "instrument", "quantity"] {
        assert_eq!(json[field], created.json[field], "`{field}`");
    }
    assert_eq!(h.stored_state(id).await.0, "canceled");
    let events = events_of(&h, id).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((&events[0].0, events[0].1.as_str()), (&None, "pending"));
    assert_eq!(
        events[1],
        (
            Some("pending".into()),
            "canceled".into(),
            "canceled by the client".into()
        )
    );
    // GET shows afterwards what DELETE answered.
    let read = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(read.json, response.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canceling_a_canceled_order_again_is_200_and_audited_once() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;

    let first = cancel(&h.api, id).await;
    let again = cancel(&h.api, id).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    assert_eq!(again.json, first.json);
    assert_eq!(events_of(&h, id).await.len(), 2, "one creation, one cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canceled_order_is_never_claimed_for_placement() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;
    assert_eq!(cancel(&h.api, id).await.status, StatusCode::OK);

    // Its message is still in the queue; the placer's claim finds it canceled.
    assert_eq!(h.queue.drain().await.len(), 1);
    let claim =
        h.db.store
            .claim_for_placement(OrderId::from(id), LEASE)
            .await
            .expect("claim");

    assert!(
        matches!(claim, ClaimOutcome::AlreadyFinal(OrderStatus::Canceled)),
        "{claim:?}"
    );
    let row =
        h.db.client()
            .await
            .query_one("SELECT status, attempts FROM orders WHERE id = $1", &[&id])
            .await
            .unwrap();
    assert_eq!(row.get::<_, String>(0), "canceled");
    assert_eq!(row.get::<_, i32>(1), 0, "never attempted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_being_placed_is_409_with_retry_after_one_second() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;
    let claim =
        h.db.store
            .claim_for_placement(OrderId::from(id), LEASE)
            .await
            .expect("claim");
    assert!(matches!(claim, ClaimOutcome::Claimed(_)), "{claim:?}");

    let response = cancel(&h.api, id).await;

    assert_eq!(response.status, StatusCode::CONFLICT, "{}", response.json);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    let message = response.json["message"].as_str().expect("a message");
    assert!(message.contains("being placed"), "{message}");
    assert_eq!(h.stored_state(id).await.0, "placing");
    assert_eq!(events_of(&h, id).await.len(), 2, "creation and claim only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_final_order_is_409_naming_its_status() {
    let h = Harness::start().await;
    for status in ["filled", "rejected", "failed", "expired"] {
        let id = h.create(LIMIT_ORDER).await;
        set_status(&h, id, status).await;

        let response = cancel(&h.api, id).await;

        assert_eq!(response.status, StatusCode::CONFLICT, "{status}");
        assert_eq!(
            response.json,
            json!({"message": format!("Order is already `{status}` and can no longer be canceled")}),
        );
        assert_eq!(header(&response, "retry-after"), None, "{status}");
        assert_eq!(h.stored_state(id).await.0, status, "unchanged");
        assert_eq!(
            events_of(&h, id).await.len(),
            1,
            "{status}: no cancel event"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canceling_an_unknown_malformed_or_other_clients_order_is_404() {
    let h = Harness::start().await;
    let other = h
        .api
        .other_client(
            "other-client",
            ClientLimits {
                requests_per_second: Some(1_000),
                max_open_orders: Some(1_000),
            },
        )
        .await;
    let others = id_of(&other.post_order(LIMIT_ORDER, None).await);

    for id in [
        others.to_string(),
        Uuid::now_v7().to_string(),
        Uuid::nil().to_string(),
        "not-a-uuid".into(),
    ] {
        let response = cancel(&h.api, &id).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(response.json, json!({"message": "Order not found"}), "{id}");
    }
    assert_eq!(h.stored_state(others).await.0, "pending");
    assert_eq!(events_of(&h, others).await.len(), 1);
    // Its owner can cancel it.
    assert_eq!(cancel(&other, others).await.status, StatusCode::OK);
}

/// A client's cancel and a placer's claim race for the same orders: for every order exactly one
/// wins — canceled and never claimed, or claimed and the cancel answered `409`.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn cancel_and_claim_racing_for_an_order_never_both_win() {
    const ORDERS: u32 = 60;
    let h = Harness::start().await;
    // How long a warm cancel takes here (it authenticates and reads before its update, so a
    // claim started with it wins, and one started after it loses): the slowest of three.
    let mut cancel_takes = Duration::ZERO;
    for _ in 0..3 {
        let probe = h.create(MARKET_ORDER).await;
        let started = std::time::Instant::now();
        assert_eq!(cancel(&h.api, probe).await.status, StatusCode::OK);
        cancel_takes = cancel_takes.max(started.elapsed());
    }

    let (mut canceled, mut claimed) = (0, 0);
    for i in 0..ORDERS {
        let id = h.create(MARKET_ORDER).await;
        // The claim starts anywhere from together with the cancel to about when the cancel
        // would have finished, so the two meet at every point of the cancel's work.
        let delay = cancel_takes.mul_f64(f64::from(i) / f64::from(ORDERS));
        let api = h.api.clone();
        let store = h.db.store.clone();
        let canceling = tokio::spawn(async move { cancel(&api, id).await.status });
        let claiming = tokio::spawn(async move {
            // Spin rather than sleep: the timer's millisecond steps are too coarse here.
            let started = std::time::Instant::now();
            while started.elapsed() < delay {
                tokio::task::yield_now().await;
            }
            store
                .claim_for_placement(OrderId::from(id), LEASE)
                .await
                .expect("claim")
        });
        let (cancel_status, claim) = (canceling.await.unwrap(), claiming.await.unwrap());

        let stored = h.stored_state(id).await.0;
        match (cancel_status, &claim) {
            (StatusCode::OK, ClaimOutcome::AlreadyFinal(OrderStatus::Canceled)) => {
                assert_eq!(stored, "canceled", "{id}");
                canceled += 1;
            }
            (StatusCode::CONFLICT, ClaimOutcome::Claimed(_)) => {
                assert_eq!(stored, "placing", "{id}");
                claimed += 1;
            }
            other => panic!("{id}: both or neither won: {other:?}"),
        }
        let events = events_of(&h, id).await;
        assert_eq!(
            events.len(),
            2,
            "{id}: creation and the winner's move: {events:?}"
        );
    }
    assert_eq!(canceled + claimed, ORDERS);
    // Both sides won some races, so the races really overlapped.
    assert!(
        canceled > 0 && claimed > 0,
        "{canceled} canceled, {claimed} claimed (a cancel took {cancel_takes:?})"
    );
}
