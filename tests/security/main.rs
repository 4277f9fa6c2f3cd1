//! Authentication, per-client isolation and abuse limits, through the real Router on a real
//! Postgres: what a caller without a valid key, another client, or a client over its limits gets,
//! and that none of them stores anything. Plus the property that no JSON body, however odd,
//! makes the API answer 5xx.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use system_tests::order_shared::auth::ApiKey;
use system_tests::order_shared::ports::{ClientLimits, ClientRegistry};
use system_tests::{LIMIT_ORDER, MARKET_ORDER, TestApi, TestDatabase, TestQueue, TestResponse};

const UNAUTHENTICATED: &str = "A valid API key is required: send `Authorization: Bearer <key>`";

async fn harness() -> (TestDatabase, TestQueue, TestApi) {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let api = TestApi::new(Arc::new(db.store.clone()), Arc::new(queue.adapter())).await;
    (db, queue, api)
}

fn request(method: &str, uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    if method == "POST" {
        builder = builder.header("content-type", "application/json");
        builder.body(Body::from(LIMIT_ORDER)).unwrap()
    } else {
        builder.body(Body::empty()).unwrap()
    }
}

fn assert_unauthenticated(response: &TestResponse, what: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        response.json
    );
    assert_eq!(
        response.json,
        json!({ "message": UNAUTHENTICATED }),
        "{what}"
    );
    assert_eq!(
        response
            .headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_protected_route_is_401_for_missing_malformed_unknown_and_revoked_keys() {
    let (db, _queue, api) = harness().await;
    let existing = api.post_order(MARKET_ORDER, None).await;
    assert_eq!(existing.status, StatusCode::CREATED);
    let existing_id = existing.json["id"].as_str().unwrap().to_owned();

    let revoked = api
        .other_client("revoked-client", ClientLimits::default())
        .await;
    let revoked_record = api
        .access
        .revoke_key(revoked.key.id())
        .await
        .unwrap()
        .expect("key exists");
    assert!(revoked_record.revoked_at.is_some());
    let unknown = ApiKey::generate().unwrap();
    // The registered key's id with another secret: a guess at one known key.
    let wrong_secret = format!("Bearer sok_{}_{}", api.key.id(), "0".repeat(64));
    let valid = api.key.expose();

    let headers: Vec<(String, Option<String>)> = vec![
        ("missing".into(), None),
        ("empty".into(), Some(String::new())),
        ("scheme only".into(), Some("Bearer".into())),
        ("not our format".into(), Some("Bearer abc123".into())),
        ("basic scheme".into(), Some(format!("Basic {valid}"))),
        ("no scheme".into(), Some(valid.clone())),
        (
            "truncated".into(),
            Some(format!("Bearer {}", &valid[..valid.len() - 1])),
        ),
        (
            "unknown".into(),
            Some(format!("Bearer {}", unknown.expose())),
        ),
        ("revoked".into(), Some(revoked.bearer())),
        ("wrong secret".into(), Some(wrong_secret)),
    ];
    let routes = [
        ("POST", "/orders".to_owned()),
        ("GET", "/orders".to_owned()),
        ("GET", "/orders?status=pending".to_owned()),
        ("GET", format!("/orders/{existing_id}")),
        ("GET", format!("/orders/{}", uuid::Uuid::now_v7())),
        ("GET", format!("/orders/{existing_id}/events")),
        ("GET", "/openapi.json".to_owned()),
    ];
    let orders_before = db.count("SELECT count(*) FROM orders").await;
    for (what, header) in &headers {
        for (method, uri) in &routes {
            let response = api
                .send_as_is(request(method, uri, header.as_deref()))
                .await;
            assert_unauthenticated(&response, &format!("{what}: {method} {uri}"));
        }
    }
    assert_eq!(
        db.count("SELECT count(*) FROM orders").await,
        orders_before,
        "no rejected request stored an order"
    );

    // /health stays open (load balancers and monitors have no key); the key still works.
    let health = api.send_as_is(request("GET", "/health", None)).await;
    assert_eq!(health.status, StatusCode::OK);
    let mine = api.get(&format!("/orders/{existing_id}")).await;
    assert_eq!(mine.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_can_neither_read_nor_list_another_clients_orders() {
    let (_db, _queue, alice) = harness().await;
    let bob = alice.other_client("bob", ClientLimits::default()).await;
    let posted = alice.post_order(LIMIT_ORDER, None).await;
    assert_eq!(posted.status, StatusCode::CREATED);
    let id = posted.json["id"].as_str().unwrap().to_owned();

    // Bob: 404, exactly as for an id that does not exist at all.
    let bobs_view = bob.get(&format!("/orders/{id}")).await;
    let nowhere = bob.get(&format!("/orders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(bobs_view.status, StatusCode::NOT_FOUND);
    assert_eq!(bobs_view.json, nowhere.json);
    let bobs_list = bob.get("/orders").await;
    assert_eq!(bobs_list.status, StatusCode::OK);
    assert_eq!(bobs_list.json["orders"], json!([]));
    for status in ["pending", "placing", "placed"] {
        let filtered = bob.get(&format!("/orders?status={status}")).await;
        assert_eq!(filtered.json["orders"], json!([]), "{status}");
    }
    // A cursor from Alice's list does not open Alice's orders to Bob either.
    let bobs_page = bob
        .get(&format!("/orders?cursor={}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(bobs_page.json["orders"], json!([]));

    // Alice sees hers.
    let alices_view = alice.get(&format!("/orders/{id}")).await;
    assert_eq!(alices_view.status, StatusCode::OK);
    let alices_list = alice.get("/orders").await;
    let ids: Vec<&str> = alices_list.json["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_do_not_collide_across_clients() {
    let (db, _queue, alice) = harness().await;
    let bob = alice.other_client("bob", ClientLimits::default()).await;
    let a = alice.post_order(LIMIT_ORDER, Some("order-1")).await;
    let b = bob.post_order(MARKET_ORDER, Some("order-1")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.json);
    assert_ne!(a.json["id"], b.json["id"]);
    assert!(b.headers.get("idempotent-replayed").is_none());

    // Each client's replay finds its own order; another order under the key is still a 422.
    let again = alice.post_order(LIMIT_ORDER, Some("order-1")).await;
    assert_eq!(again.json["id"], a.json["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let reused = alice.post_order(MARKET_ORDER, Some("order-1")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rows = db
        .client()
        .await
        .query(
            "SELECT o.client_id FROM idempotency_keys k JOIN orders o ON o.id = k.order_id \
             WHERE k.idempotency_key = 'order-1' AND k.client_id = o.client_id \
             ORDER BY o.client_id",
            &[],
        )
        .await
        .unwrap();
    let owners: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(owners, vec!["bob".to_owned(), "test-client".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_past_the_rate_limit_get_429_with_retry_after_and_store_nothing() {
    let (db, _queue, api) = harness().await;
    let limited = api
        .other_client(
            "limited",
            ClientLimits {
                requests_per_second: Some(5),
                max_open_orders: Some(1000),
            },
        )
        .await;
    // 12 requests well within a second fall into at most two one-second windows, so one of
    // them holds at least 6: more than the limit of 5, whatever the clock.
    let mut statuses = Vec::new();
    let mut limited_response = None;
    for _ in 0..12 {
        let response = limited.get("/orders").await;
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            limited_response = Some(response);
            statuses.push(429);
        } else {
            statuses.push(response.status.as_u16());
        }
    }
    let response = limited_response.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert_eq!(response.headers["retry-after"], "1");
    assert_eq!(
        response.json["message"],
        "Rate limit exceeded: at most 5 requests per second for this client"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );

    // A POST refused for the rate stores nothing; the other client is not affected.
    let before = db.count("SELECT count(*) FROM orders").await;
    let mut posted = Vec::new();
    for _ in 0..12 {
        posted.push(limited.post_order(LIMIT_ORDER, None).await.status.as_u16());
    }
    let created = posted.iter().filter(|s| **s == 201).count() as i64;
    assert!(posted.contains(&429), "{posted:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM orders").await,
        before + created
    );
    assert_eq!(api.get("/orders").await.status, StatusCode::OK);

    // The next window admits the client again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(limited.get("/orders").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_past_the_open_order_limit_get_429_until_some_are_final() {
    let (db, _queue, api) = harness().await;
    let busy = api
        .other_client(
            "busy",
            ClientLimits {
                requests_per_second: Some(1000),
                max_open_orders: Some(3),
            },
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = busy.post_order(MARKET_ORDER, None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
        ids.push(response.json["id"].as_str().unwrap().to_owned());
    }
    let refused = busy.post_order(MARKET_ORDER, None).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.json
    );
    assert_eq!(refused.headers["retry-after"], "5");
    assert!(
        refused.json["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many open orders: at most 3 orders"),
        "{}",
        refused.json
    );
    assert_eq!(
        db.count("SELECT count(*) FROM orders WHERE client_id = 'busy'")
            .await,
        3,
        "the refused order was not stored"
    );
    // Reads are not limited by open orders.
    assert_eq!(busy.get("/orders").await.status, StatusCode::OK);

    // One order is placed: after the next recount (at most a second) there is room for one.
    db.client()
        .await
        .execute(
            "UPDATE orders SET status = 'placed', placed_at = now(), exchange_order_id = 'x' \
             WHERE id = $1::text::uuid",
            &[&ids[0]],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let admitted = busy.post_order(MARKET_ORDER, None).await;
    assert_eq!(admitted.status, StatusCode::CREATED, "{}", admitted.json);
    let full_again = busy.post_order(MARKET_ORDER, None).await;
    assert_eq!(full_again.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_documents_the_bearer_scheme_and_the_open_health_route() {
    let (_db, _queue, api) = harness().await;
    let doc = api.get("/openapi.json").await.json;
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{ "api_key": [] }]));
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([{}]));
    for (path, method) in [
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{id}", "get"),
        ("/orders/{id}/events", "get"),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        assert!(responses.get("401").is_some(), "{method} {path}: 401");
        assert!(responses.get("429").is_some(), "{method} {path}: 429");
    }
}

// ---------------------------------------------------------------------------------------------
// Property: no body makes the API answer 5xx.

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Order-shaped objects whose fields are each valid, invalid or of any JSON type: they reach
/// far deeper into the parser than arbitrary JSON does.
fn order_like() -> impl Strategy<Value = Value> {
    let field = |valid: Vec<Value>| {
        prop_oneof![
            3 => proptest::sample::select(valid),
            1 => any_json(),
            1 => Just(Value::Null),
        ]
    };
    (
        field(vec![
            json!("limit"),
            json!("market"),
            json!("LIMIT"),
            json!("stop"),
        ]),
        field(vec![json!("buy"), json!("sell"), json!("hold")]),
        field(vec![
            json!("US0378331005"),
            json!("DE000BAY0017"),
            json!("US0378331006"),
            json!("us0378331005"),
        ]),
        field(vec![
            json!("120.50"),
            json!(120.5),
            json!("0"),
            json!("-1"),
            json!("1e3"),
            json!("1000000000.00"),
            json!("1000000000.01"),
            json!("0.001"),
            json!(""),
        ]),
        field(vec![
            json!(10),
            json!(0),
            json!(1_000_000_001_i64),
            json!("10"),
            json!(1.5),
        ]),
        any::<bool>(),
    )
        .prop_map(
            |(order_type, side, instrument, price, quantity, with_price)| {
                let mut order = serde_json::Map::new();
                order.insert("type".into(), order_type);
                order.insert("side".into(), side);
                order.insert("instrument".into(), instrument);
                if with_price {
                    order.insert("limit_price".into(), price);
                }
                order.insert("quantity".into(), quantity);
                Value::Object(order)
            },
        )
}

/// proptest runs synchronously: a runtime to block on, and the harness made on it.
fn blocking_harness() -> (tokio::runtime::Runtime, TestDatabase, TestQueue, TestApi) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (db, queue, api) = runtime.block_on(harness());
    (runtime, db, queue, api)
}

#[test]
fn no_json_body_makes_the_router_answer_5xx() {
    let (runtime, _db, _queue, api) = blocking_harness();
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(body in prop_oneof![any_json(), order_like()], idempotency in proptest::option::of(".{0,120}"))| {
        let text = body.to_string();
        let response = runtime.block_on(async {
            let mut request = Request::post("/orders").header("content-type", "application/json");
            if let Some(key) = idempotency.as_deref().filter(|k| http::HeaderValue::from_str(k).is_ok()) {
                request = request.header("idempotency-key", key);
            }
            api.send(request.body(Body::from(text.clone())).unwrap()).await
        });
        prop_assert!(
            response.status.is_success() || response.status.is_client_error(),
            "{} for {}: {}", response.status, text, response.json
        );
    });
}

#[test]
fn an_attribute_given_twice_is_always_a_422_naming_it_and_stores_nothing() {
    let (runtime, db, _queue, api) = blocking_harness();
    let config = ProptestConfig {
        cases: 100,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let attributes = ["type", "side", "instrument", "limit_price", "quantity"];
    proptest!(config, |(
        repeated in proptest::sample::select(attributes.to_vec()),
        value in prop_oneof![any_json(), order_like().prop_map(|o| o["quantity"].clone())],
        first in any::<bool>(),
    )| {
        // A valid limit order, with `repeated` named a second time (before or after the valid
        // value): whatever the values, and whichever a reader would keep, the body is refused.
        let valid = r#""type":"limit","side":"buy","instrument":"US0378331005","limit_price":"120.50","quantity":10"#;
        let extra = format!("{}:{}", json!(repeated), value);
        let text = if first { format!("{{{extra},{valid}}}") } else { format!("{{{valid},{extra}}}") };
        let response = runtime.block_on(async {
            let request = Request::post("/orders").header("content-type", "application/json");
            api.send(request.body(Body::from(text.clone())).unwrap()).await
        });
        prop_assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}: {}", text, response.json);
        let named = response.json["errors"].as_array().unwrap().iter().any(|e| {
            e["field"] == repeated
                && e["message"].as_str().unwrap().contains("is given more than once")
        });
        prop_assert!(named, "{}: {}", text, response.json);
    });
    let stored = runtime.block_on(db.count("SELECT count(*) FROM orders"));
    assert_eq!(stored, 0, "no ambiguous body stored an order");
}

#[test]
fn no_byte_string_makes_the_router_answer_5xx() {
    let (runtime, _db, _queue, api) = blocking_harness();
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(bytes in prop::collection::vec(any::<u8>(), 0..256))| {
        let response = runtime.block_on(async {
            let request = Request::post("/orders").header("content-type", "application/json");
            api.send(request.body(Body::from(bytes.clone())).unwrap()).await
        });
        prop_assert!(response.status.is_client_error(), "{} for {:?}", response.status, bytes);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_counters_refill_after_a_crash_empties_them() {
    let (db, _queue, api) = harness().await;
    assert_eq!(api.get("/orders").await.status, StatusCode::OK);
    // After a crash Postgres empties unlogged tables; the next request must just work.
    db.client()
        .await
        .batch_execute("TRUNCATE client_usage")
        .await
        .unwrap();
    let posted = api.post_order(LIMIT_ORDER, None).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.json);
    let rows = db
        .count(
            "SELECT count(*) FROM client_usage WHERE client_id = 'test-client' AND rate_count >= 1",
        )
        .await;
    assert_eq!(rows, 1);
    let persistence: String = db
        .client()
        .await
        .query_one(
            "SELECT relpersistence::text FROM pg_class WHERE relname = 'client_usage'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        persistence, "u",
        "client_usage is UNLOGGED: its commits never wait for fsync"
    );
}
