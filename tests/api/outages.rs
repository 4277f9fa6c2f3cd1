//! Faults: an unreachable or hanging queue, a failed mark, a database outage, a failed insert.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use system_tests::order_shared::adapters::sqs::SqsOrderQueue;
use system_tests::order_shared::handlers::api::INTERNAL_ERROR_MESSAGE;
use system_tests::{
    LIMIT_ORDER, MARKET_ORDER, TestApi, TestDatabase, TestQueue, unreachable_queue,
    unreachable_store,
};
use uuid::Uuid;

use crate::helpers::{Harness, header, id_of, limit_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_is_accepted_but_left_unmarked_when_the_queue_is_unreachable() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let api = TestApi::new(
        Arc::new(db.store.clone()),
        Arc::new(unreachable_queue().await),
    )
    .await;

    let started = Instant::now();
    let response = api.post_order(LIMIT_ORDER, None).await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "one short attempt, took {:?}",
        started.elapsed()
    );
    assert_eq!(response.json["status"], "pending");
    let id = id_of(&response);
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 1);
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, enqueued_at IS NULL FROM orders WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert!(
        row.get::<_, bool>(1),
        "enqueued_at stays NULL for the sweeper"
    );
    assert_eq!(queue.drain().await, Vec::<Value>::new());
}

/// A "queue" that accepts connections and never answers.
async fn hanging_queue() -> (SqsOrderQueue, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let endpoint = format!("http://{address}");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    let queue = SqsOrderQueue::single_attempt(&sdk, format!("{endpoint}/123456789012/orders"));
    (queue, holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_is_accepted_promptly_when_the_queue_hangs() {
    let db = TestDatabase::create().await;
    let (queue, holder) = hanging_queue().await;
    let api = TestApi::new(Arc::new(db.store.clone()), Arc::new(queue)).await;

    let started = Instant::now();
    let response = api.post_order(MARKET_ORDER, None).await;
    let took = started.elapsed();
    holder.abort();

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    assert!(took < Duration::from_secs(3), "bounded send, took {took:?}");
    let id = id_of(&response);
    let unmarked = db
        .client()
        .await
        .query_one(
            "SELECT enqueued_at IS NULL FROM orders WHERE id = $1 AND status = 'pending'",
            &[&id],
        )
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(unmarked, "left for the sweeper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_is_accepted_and_sent_when_the_enqueued_mark_cannot_be_written() {
    let h = Harness::start().await;
    h.db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_mark() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'mark refused'; END $$; \
             CREATE TRIGGER refuse_mark BEFORE UPDATE OF enqueued_at ON orders \
               FOR EACH ROW EXECUTE FUNCTION refuse_mark();",
        )
        .await
        .unwrap();

    let response = h.api.post_order(LIMIT_ORDER, None).await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    let id = id_of(&response);
    assert_eq!(h.stored_state(id).await, ("pending".to_owned(), false));
    let messages = h.queue.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["order_id"], id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_gives_the_exact_500_and_sends_nothing() {
    let queue = TestQueue::create().await;
    let api = TestApi::new(
        Arc::new(unreachable_store().await),
        Arc::new(queue.adapter()),
    )
    .await;
    let internal = json!({"message": "Internal server error while placing the order"});
    assert_eq!(internal["message"], INTERNAL_ERROR_MESSAGE);

    let posted = api.post_order(LIMIT_ORDER, Some("during-outage")).await;
    assert_eq!(posted.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(posted.json, internal);
    assert_eq!(queue.drain().await, Vec::<Value>::new(), "nothing sent");

    let fetched = api.get(&format!("/orders/{}", Uuid::now_v7())).await;
    assert_eq!(fetched.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fetched.json, internal);

    let listed = api.get("/orders").await;
    assert_eq!(listed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(listed.json, internal);

    let health = api.get("/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(health.json["message"].is_string(), "{}", health.json);

    // Keys are checked first, against the database: during the outage even bad input gets the
    // 500 (nothing can be authenticated), while a request without a key is still a plain 401.
    let invalid = api
        .post_order(&limit_with("quantity", "0"), Some("during-outage"))
        .await;
    assert_eq!(invalid.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(invalid.json, internal);
    let anonymous = api
        .send_as_is(
            Request::post("/orders")
                .header("content-type", "application/json")
                .body(Body::from(LIMIT_ORDER))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(queue.drain().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_insert_leaves_no_half_written_order() {
    let h = Harness::start().await;
    // The audit insert fails: the order must not be stored without it.
    h.db.client()
        .await
        .batch_execute("ALTER TABLE order_events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        .await
        .unwrap();

    let response = h.api.post_order(LIMIT_ORDER, Some("k")).await;

    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.json, json!({"message": INTERNAL_ERROR_MESSAGE}));
    assert_eq!(h.orders().await, 0);
    assert_eq!(h.events().await, 0);
    assert_eq!(h.queue.drain().await, Vec::<Value>::new());

    // Once the database recovers, the same key places the order.
    h.db.client()
        .await
        .batch_execute("ALTER TABLE order_events DROP CONSTRAINT refuse_all")
        .await
        .unwrap();
    let retry = h.api.post_order(LIMIT_ORDER, Some("k")).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.json);
    assert_eq!(header(&retry, "idempotent-replayed"), None);
    assert_eq!(h.orders().await, 1);
    assert_eq!(h.queue.drain().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_start_up_connection_is_lent_to_the_first_request_and_an_outage_only_delays_it() {
    // With the database up: one connection opened before any request, and what comes next
    // (the test's key registration, one statement after another) borrows it instead of opening
    // its own.
    let db = TestDatabase::create().await;
    db.store.warm_up().await.expect("the warm-up task ends");
    let status = db.store.pool().status();
    assert_eq!((status.size, status.available), (1, 1), "{status:?}");
    let queue = TestQueue::create().await;
    let api = TestApi::new(Arc::new(db.store.clone()), Arc::new(queue.adapter())).await;
    assert_eq!(db.store.pool().status().size, 1);
    let posted = api.post_order(LIMIT_ORDER, None).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.json);

    // With the database down: the warm-up gives up after the connect timeout without failing
    // the start-up, and requests get the same 500 as without it.
    let down = unreachable_store().await;
    down.warm_up()
        .await
        .expect("the warm-up task ends without a panic");
    assert_eq!(down.pool().status().size, 0);
    let api = TestApi::new(Arc::new(down), Arc::new(queue.adapter())).await;
    let posted = api.post_order(LIMIT_ORDER, None).await;
    assert_eq!(posted.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(posted.json["message"], INTERNAL_ERROR_MESSAGE);
}
