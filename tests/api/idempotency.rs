//! Idempotency: one key, one order, one message.

use std::collections::HashSet;

use futures::future::join_all;
use http::StatusCode;
use system_tests::{LIMIT_ORDER, MARKET_ORDER, TestResponse};
use uuid::Uuid;

use crate::helpers::{Harness, error_fields, header, id_of, limit_with};

const KEY_REUSED: &str = "Idempotency-Key was already used with a different order";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_and_same_normalised_order_returns_the_original_order() {
    let h = Harness::start().await;
    let first = h.api.post_order(LIMIT_ORDER, Some("order-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    assert_eq!(header(&first, "idempotent-replayed"), None);

    // The same order written differently: lower-case ISIN, a number instead of a string,
    // attributes in another order.
    let same = r#"{"quantity":10,"limit_price":120.5,"instrument":"us0378331005","side":"buy","type":"limit"}"#;
    let replay = h.api.post_order(same, Some("order-1")).await;

    assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.json);
    assert_eq!(id_of(&replay), id_of(&first));
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(replay.json, first.json, "the original order, unchanged");
    assert_eq!(
        header(&replay, "location"),
        Some(format!("/orders/{}", id_of(&first)).as_str())
    );
    assert_eq!(h.orders().await, 1);
    assert_eq!(h.events().await, 1);
    let messages = h.queue.drain().await;
    assert_eq!(messages.len(), 1, "no second placement: {messages:?}");
    assert_eq!(messages[0]["order_id"], id_of(&first).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_with_a_different_order_is_422_and_stores_nothing() {
    let h = Harness::start().await;
    let first = h.api.post_order(LIMIT_ORDER, Some("order-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);

    for other in [
        limit_with("quantity", "11"),
        limit_with("limit_price", r#""120.51""#),
        limit_with("side", r#""sell""#),
        MARKET_ORDER.to_owned(),
    ] {
        let response = h.api.post_order(&other, Some("order-1")).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{other}: {}",
            response.json
        );
        assert_eq!(response.json["message"], KEY_REUSED);
        assert_eq!(error_fields(&response.json), ["Idempotency-Key"]);
    }

    assert_eq!(h.orders().await, 1);
    assert_eq!(h.events().await, 1);
    assert_eq!(h.queue.drain().await.len(), 1);
    // The key still belongs to the first order.
    let retry = h.api.post_order(LIMIT_ORDER, Some("order-1")).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(id_of(&retry), id_of(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_that_fails_validation_does_not_use_up_its_key() {
    let h = Harness::start().await;
    let bad = h
        .api
        .post_order(&limit_with("quantity", "0"), Some("order-1"))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.orders().await, 0);

    let good = h.api.post_order(LIMIT_ORDER, Some("order-1")).await;

    assert_eq!(good.status, StatusCode::CREATED, "{}", good.json);
    assert_eq!(header(&good, "idempotent-replayed"), None, "a new order");
    assert_eq!(h.orders().await, 1);
    let messages = h.queue.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["order_id"], id_of(&good).to_string());
    let stored_key =
        h.db.client()
            .await
            .query_one(
                "SELECT idempotency_key FROM idempotency_keys WHERE order_id = $1",
                &[&id_of(&good)],
            )
            .await
            .unwrap()
            .get::<_, Option<String>>(0);
    assert_eq!(stored_key.as_deref(), Some("order-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_independent_and_100_characters_are_allowed() {
    let h = Harness::start().await;
    let long_key = "k".repeat(100);
    let a = h.api.post_order(LIMIT_ORDER, Some(&long_key)).await;
    let b = h.api.post_order(LIMIT_ORDER, Some("another-key")).await;

    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.json);
    assert_ne!(id_of(&a), id_of(&b));
    assert_eq!(h.orders().await, 2);
    assert_eq!(h.queue.drain().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_posts_with_one_key_create_one_order_and_one_message() {
    let h = Harness::start().await;
    let requests = (0..50).map(|_| {
        let api = h.api.clone();
        tokio::spawn(async move { api.post_order(LIMIT_ORDER, Some("burst-key")).await })
    });
    let responses: Vec<TestResponse> = join_all(requests)
        .await
        .into_iter()
        .map(|joined| joined.expect("request task"))
        .collect();

    for response in &responses {
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    }
    let ids: HashSet<Uuid> = responses.iter().map(id_of).collect();
    assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");
    let originals = responses
        .iter()
        .filter(|r| header(r, "idempotent-replayed").is_none())
        .count();
    assert_eq!(originals, 1, "exactly one request created the order");
    assert_eq!(h.orders().await, 1);
    assert_eq!(h.events().await, 1);
    let messages = h.queue.drain().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let id = ids.into_iter().next().unwrap();
    assert_eq!(messages[0]["order_id"], id.to_string());
}
