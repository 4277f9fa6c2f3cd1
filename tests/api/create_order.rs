//! Accepting orders: what a valid order leaves behind in the response, the `orders` and
//! `order_events` tables and on the queue.

use std::collections::HashSet;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use system_tests::{LIMIT_ORDER, MARKET_ORDER};
use uuid::Uuid;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{
    Harness, MAX_BODY, assert_rfc3339_utc, error_fields, header, id_of, limit_with,
};

/// Posts `body`, then checks the response, the row, its audit event and the one message against
/// the expected order attributes (`type`, `side`, `instrument`, `limit_price`, `quantity`).
async fn assert_order_accepted(body: &str, expected: Value) {
    let h = Harness::start().await;
    let response = h.api.post_order(body, None).await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    let id = id_of(&response);
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    let json = &response.json;
    for field in ["type", "side", "instrument", "limit_price", "quantity"] {
        assert_eq!(json[field], expected[field], "response `{field}` in {json}");
    }
    assert_eq!(json["status"], "pending");
    let created_at = json["created_at"].as_str().expect("created_at is a string");
    assert_rfc3339_utc(created_at);
    let expires_at = json["expires_at"].as_str().expect("expires_at is a string");
    assert_rfc3339_utc(expires_at);
    assert_eq!(
        header(&response, "location"),
        Some(format!("/orders/{id}").as_str())
    );
    assert_eq!(header(&response, "idempotent-replayed"), None);

    // Exactly one row, as sent, enqueued (the mark follows the response), with the timestamp
    // the response shows.
    assert_eq!(h.orders().await, 1);
    assert!(
        h.marked_enqueued(id).await,
        "enqueued_at is set after the send"
    );
    let client = h.db.client().await;
    let row = client
        .query_one(
            "SELECT order_type, side, instrument, limit_price::text, quantity, status, \
                    created_at = $2::text::timestamptz, \
                    abs(extract(epoch FROM now() - created_at)) < 60, \
                    expires_at = $3::text::timestamptz \
             FROM orders WHERE id = $1",
            &[&id, &created_at, &expires_at],
        )
        .await
        .expect("the order row");
    assert_eq!(row.get::<_, String>(0), expected["type"]);
    assert_eq!(row.get::<_, String>(1), expected["side"]);
    assert_eq!(row.get::<_, String>(2), expected["instrument"]);
    assert_eq!(
        row.get::<_, Option<String>>(3).map(Value::String),
        expected["limit_price"]
            .as_str()
            .map(|s| Value::String(s.into()))
    );
    assert_eq!(json!(row.get::<_, i64>(4)), expected["quantity"]);
    assert_eq!(row.get::<_, String>(5), "pending");
    assert!(
        row.get::<_, bool>(6),
        "created_at in the response is the stored one"
    );
    assert!(row.get::<_, bool>(7), "created_at is now");
    assert!(
        row.get::<_, bool>(8),
        "expires_at in the response is the stored one"
    );

    // One audit event: (new) → pending.
    let events = client
        .query(
            "SELECT order_id, from_status, to_status FROM order_events",
            &[],
        )
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].get::<_, Uuid>(0), id);
    assert_eq!(events[0].get::<_, Option<String>>(1), None);
    assert_eq!(events[0].get::<_, String>(2), "pending");

    // One placement message for this order.
    let messages = h.queue.drain().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message["version"], 1);
    assert_eq!(message["order_id"], id.to_string());
    for field in ["type", "side", "instrument", "limit_price", "quantity"] {
        assert_eq!(
            message[field], expected[field],
            "message `{field}` in {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn valid_limit_order_is_stored_enqueued_and_answered_with_201() {
    assert_order_accepted(
        LIMIT_ORDER,
        json!({"type": "limit", "side": "buy", "instrument": "US0378331005",
               "limit_price": "120.50", "quantity": 10}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn valid_market_order_is_stored_enqueued_and_answered_with_201() {
    assert_order_accepted(
        MARKET_ORDER,
        json!({"type": "market", "side": "sell", "instrument": "DE000BAY0017",
               "limit_price": null, "quantity": 5}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_input_is_normalised_before_it_is_stored_and_sent() {
    // Lower-case ISIN, a JSON number price with an exponent, no `limit_price` on a market order.
    assert_order_accepted(
        r#"{"type":"limit","side":"sell","instrument":"us0378331005","limit_price":1.2e2,"quantity":1000000000}"#,
        json!({"type": "limit", "side": "sell", "instrument": "US0378331005",
               "limit_price": "120.00", "quantity": 1_000_000_000}),
    )
    .await;
    assert_order_accepted(
        r#"{"type":"market","side":"buy","instrument":"DE000BAY0017","quantity":1}"#,
        json!({"type": "market", "side": "buy", "instrument": "DE000BAY0017",
               "limit_price": null, "quantity": 1}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]

async fn limit_price_in_exponent_notation_is_never_silently_changed() {
    // 10^72 × 10^-70 = 100, written as a JSON number and as a decimal string.
    let hundred = format!("1{}e-70", "0".repeat(72));
    for raw in [hundred.clone(), format!("\"{hundred}\"")] {
        let h = Harness::start().await;
        let response = h
            .api
            .post_order(&limit_with("limit_price", &raw), None)
            .await;
        match response.status {
            // Refusing such a notation would be acceptable; changing the value is not.
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(error_fields(&response.json), ["limit_price"]);
                assert_eq!(h.orders().await, 0);
                assert_eq!(h.queue.drain().await, Vec::<Value>::new());
            }
            StatusCode::CREATED => {
                assert_eq!(response.json["limit_price"], "100.00", "{raw}");
                let stored =
                    h.db.client()
                        .await
                        .query_one("SELECT limit_price::text FROM orders", &[])
                        .await
                        .unwrap()
                        .get::<_, String>(0);
                assert_eq!(stored, "100.00", "{raw}");
                let messages = h.queue.drain().await;
                assert_eq!(messages.len(), 1);
                assert_eq!(messages[0]["limit_price"], "100.00", "{raw}");
            }
            other => panic!("{raw}: unexpected {other}: {}", response.json),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn body_of_exactly_16_kib_is_accepted() {
    let h = Harness::start().await;
    let mut body = LIMIT_ORDER.to_owned();
    body.push_str(&" ".repeat(MAX_BODY - body.len()));
    assert_eq!(body.len(), MAX_BODY);

    let response = h.api.post_order(&body, None).await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    assert_eq!(h.orders().await, 1);
    assert_eq!(h.queue.drain().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn content_type_with_charset_is_accepted() {
    let h = Harness::start().await;
    let response = h
        .api
        .send(
            Request::post("/orders")
                .header("content-type", "Application/JSON; charset=utf-8")
                .body(Body::from(LIMIT_ORDER))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    assert_eq!(h.orders().await, 1);
    assert_eq!(h.queue.drain().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_order_without_a_key_is_two_orders() {
    let h = Harness::start().await;
    let first = h.create(LIMIT_ORDER).await;
    let second = h.create(LIMIT_ORDER).await;

    assert_ne!(first, second);
    assert!(second > first, "a later order has a larger UUIDv7");
    assert_eq!(h.orders().await, 2);
    let sent: HashSet<String> = h
        .queue
        .drain()
        .await
        .iter()
        .map(|m| m["order_id"].as_str().expect("order_id").to_owned())
        .collect();
    assert_eq!(sent, HashSet::from([first.to_string(), second.to_string()]));
}

/// `expires_at - created_at` of a stored order, in seconds.
async fn stored_time_in_force(h: &Harness, id: Uuid) -> f64 {
    h.db.client()
        .await
        .query_one(
            "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM orders WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the order row")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requested_expiry_is_stored_and_shown_in_utc() {
    let h = Harness::start().await;
    // Two hours ahead, whole seconds, written with a +02:00 offset.
    let now = OffsetDateTime::now_utc();
    let wanted = OffsetDateTime::from_unix_timestamp(now.unix_timestamp() + 7200).unwrap();
    let written = wanted
        .to_offset(time::macros::offset!(+2))
        .format(&Rfc3339)
        .unwrap();

    let response = h
        .api
        .post_order(&limit_with("expires_at", &format!("\"{written}\"")), None)
        .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    assert_eq!(
        response.json["expires_at"],
        wanted.format(&Rfc3339).unwrap()
    );
    let id = id_of(&response);
    let stored: OffsetDateTime =
        h.db.client()
            .await
            .query_one("SELECT expires_at FROM orders WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
    assert_eq!(stored, wanted);
    let read = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(read.json["expires_at"], response.json["expires_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_expires_at_market_orders_live_5_minutes_and_limit_orders_30_days() {
    let h = Harness::start().await;
    let market = h.create(MARKET_ORDER).await;
    let limit = h.create(LIMIT_ORDER).await;
    let limit_null = h.create(&limit_with("expires_at", "null")).await;

    // The api's clock picks the expiry, the database's the creation time: a moment apart.
    for (id, expected) in [
        (market, 300.0),
        (limit, 30.0 * 86_400.0),
        (limit_null, 30.0 * 86_400.0),
    ] {
        let ttl = stored_time_in_force(&h, id).await;
        assert!(
            (ttl - expected).abs() < 2.0,
            "{id}: {ttl}s, not {expected}s"
        );
    }
}

/// The enqueued mark is a HOT update (migration V11): its new row version stays on the order's
/// page and no index of `orders` gets an entry for it, which had made the mark as dear as the
/// insert. Read from the heap pages themselves (pageinspect): each marked order leaves exactly
/// one live heap-only tuple — the version the mark wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_enqueued_mark_adds_no_index_entries() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(h.create(LIMIT_ORDER).await);
    }
    for id in &ids {
        assert!(h.marked_enqueued(*id).await, "{id} marked");
    }
    let client = h.db.client().await;
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        .await
        .expect("pageinspect (a contrib module of PostgreSQL)");
    // HEAP_ONLY_TUPLE (0x8000): a version written by a HOT update; t_xmax = 0: the live one.
    let heap_only: i64 = client
        .query_one(
            "SELECT count(*) FROM generate_series(0, \
                 (pg_relation_size('orders') / current_setting('block_size')::int)::int - 1) AS b, \
               LATERAL heap_page_items(get_raw_page('orders', b)) \
             WHERE t_infomask2 & 32768 <> 0 AND t_xmax = 0",
            &[],
        )
        .await
        .expect("heap pages")
        .get(0);
    assert_eq!(heap_only, ids.len() as i64);
}
