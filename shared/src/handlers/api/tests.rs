//! The whole router in process, on fakes: every route's answers, the store and the queue behind
//! them. (The same routes against Postgres and SQS are tested in `tests/api`.)

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt;

use super::{ApiContext, INTERNAL_ERROR_MESSAGE, router};
use crate::auth::ApiKey;
use crate::domain::{ExpiryPolicy, Order, OrderStatus};
use crate::fakes::{
    FakeAccess, FakeClientOrders, FakeOrderStore, FakeQueue, QueueBehaviour, canceled_report,
    client, fill_report, market_order,
};
use crate::ports::{
    Admission, ClaimOutcome, ClientOrders, CreateOutcome, Gated, ListQuery, MessageAction,
    OrderLifecycle, OrderPage, RequestKind, StoreError,
};
use crate::usecases::enqueue::EnqueuedMarks;

const LIMIT_ORDER: &str = r#"{"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"120.5","quantity":10}"#;
const MARKET_ORDER: &str =
    r#"{"type":"market","side":"sell","instrument":"US0378331005","quantity":5}"#;
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// A market order's default time in force in these tests (not the production default, so that
/// the test shows the configured value is the one used).
const MARKET_ORDER_TTL: Duration = Duration::from_secs(120);
const THIRTY_DAYS: Duration = Duration::from_secs(30 * 24 * 3600);
const LEASE: Duration = Duration::from_secs(30);

/// The api on fakes, with one client (`acme`) and its key.
struct Api {
    store: Arc<FakeOrderStore>,
    queue: Arc<FakeQueue>,
    access: Arc<FakeAccess>,
    /// In place of the fake access check in front of the fake store, when a test needs it.
    orders: Option<Arc<dyn ClientOrders>>,
    key: ApiKey,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Api {
    fn new() -> Self {
        let key = ApiKey::generate().unwrap();
        Self {
            store: Arc::new(FakeOrderStore::new()),
            queue: Arc::new(FakeQueue::new()),
            access: Arc::new(FakeAccess::admitting(&key, &client("acme"))),
            orders: None,
            key,
        }
    }

    fn with_access(access: FakeAccess) -> Self {
        Self {
            access: Arc::new(access),
            ..Self::new()
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.key.expose())
    }

    /// Sends the request exactly as given.
    async fn send(&self, request: Request<Body>) -> Answer {
        let api = router(ApiContext {
            store: self.store.clone(),
            queue: self.queue.clone(),
            access: self.access.clone(),
            orders: self.orders.clone().unwrap_or_else(|| {
                Arc::new(FakeClientOrders::new(
                    self.access.clone(),
                    self.store.clone(),
                ))
            }),
            enqueued_marks: EnqueuedMarks::start(self.store.clone()),
            enqueue_timeout: ENQUEUE_TIMEOUT,
            expiry: ExpiryPolicy {
                market_order_ttl: MARKET_ORDER_TTL,
            },
        });
        let response = api
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("every body is JSON, got {status}: {text}"));
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    async fn post(&self, body: &str, idempotency_key: Option<&str>) -> Answer {
        let mut request = Request::post("/orders")
            .header(header::AUTHORIZATION, self.bearer())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(
            Request::get(uri)
                .header(header::AUTHORIZATION, self.bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn delete(&self, uri: &str) -> Answer {
        self.send(
            Request::delete(uri)
                .header(header::AUTHORIZATION, self.bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn cancel(&self, order: &Order) -> Answer {
        self.delete(&format!("/orders/{}", order.id)).await
    }

    /// A stored order of `acme`'s.
    fn order(&self, quantity: i64) -> Order {
        self.store.seed(&client("acme"), &market_order(quantity))
    }

    /// A stored order of `acme`'s, placed at the exchange (working there).
    async fn placed(&self, quantity: i64) -> Order {
        let order = self.order(quantity);
        self.store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        self.store
            .record_placed(order.id, "EX-1")
            .await
            .unwrap()
            .expect("placed")
    }

    fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
        answer.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.json["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|order| order["id"].as_str().unwrap().to_owned())
        .collect()
}

// --- POST /orders -------------------------------------------------------------------------

#[tokio::test]
async fn posting_an_order_stores_and_enqueues_it_and_answers_201_with_its_location() {
    let api = Api::new();

    let answer = api.post(LIMIT_ORDER, None).await;

    assert_eq!(answer.status, StatusCode::CREATED);
    let stored = api.store.orders();
    assert_eq!(stored.len(), 1);
    let order = &stored[0];
    assert_eq!(order.client_id, client("acme"));
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(
        Api::header(&answer, "location"),
        Some(format!("/orders/{}", order.id).as_str())
    );
    assert_eq!(answer.json["id"], order.id.to_string());
    assert_eq!(answer.json["status"], "pending");
    assert_eq!(answer.json["type"], "limit");
    assert_eq!(answer.json["instrument"], "US0378331005");
    assert_eq!(answer.json["limit_price"], "120.50");
    assert_eq!(answer.json["quantity"], 10);
    assert_eq!(answer.json["attempts"], 0);
    assert_eq!(api.queue.sent_ids(), [order.id]);
    // The mark is written in the background, after the answer.
    for _ in 0..100 {
        if api.store.is_enqueued(order.id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(api.store.is_enqueued(order.id));
    assert!(Api::header(&answer, "x-request-id").is_some());
    assert_eq!(
        api.access.requests(),
        [(api.key.id().clone(), RequestKind::PlaceOrder)]
    );
}

#[tokio::test]
async fn an_invalid_order_is_422_with_every_problem_and_stores_nothing() {
    let api = Api::new();

    let answer = api
        .post(r#"{"type":"limit","side":"hold","quantity":0}"#, None)
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["message"], "The order is invalid");
    let mut fields: Vec<&str> = answer.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["instrument", "limit_price", "quantity", "side"]);
    assert!(api.store.orders().is_empty());
    assert_eq!(api.queue.attempts(), 0);
}

#[tokio::test]
async fn malformed_bodies_are_refused_before_anything_is_stored() {
    let api = Api::new();
    let wrong_type = api
        .send(
            Request::post("/orders")
                .header(header::AUTHORIZATION, api.bearer())
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(LIMIT_ORDER))
                .unwrap(),
        )
        .await;
    let not_json = api.post("{oops", None).await;
    let not_an_object = api.post("[1, 2]", None).await;
    let too_large = api
        .post(
            &format!(r#"{{"pad":"{}"}}"#, "x".repeat(super::MAX_BODY_BYTES)),
            None,
        )
        .await;

    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_an_object.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        not_an_object.json["message"],
        "Request body must be a JSON object"
    );
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(api.store.orders().is_empty());
    assert_eq!(api.queue.attempts(), 0);
}

#[tokio::test]
async fn a_repeated_request_with_its_idempotency_key_replays_the_original_order() {
    let api = Api::new();

    let first = api.post(LIMIT_ORDER, Some("req-1")).await;
    // The same order written differently is the same order.
    let again = api
        .post(
            r#"{"quantity":10,"limit_price":120.50,"instrument":"us0378331005","side":"buy","type":"limit"}"#,
            Some("req-1"),
        )
        .await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(Api::header(&first, "idempotent-replayed"), None);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(Api::header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(
        Api::header(&again, "location"),
        Api::header(&first, "location")
    );
    assert_eq!(api.store.orders().len(), 1);
    assert_eq!(api.queue.sent().len(), 1, "a replay sends nothing");
}

#[tokio::test]
async fn an_idempotency_key_names_its_order_for_the_retention_and_a_new_one_after_it() {
    let api = Api::new();
    api.store
        .set_idempotency_retention(Duration::from_secs(3600));
    let first = api.post(LIMIT_ORDER, Some("k-1")).await;

    api.store.advance_clock(Duration::from_secs(3599));
    let replay = api.post(LIMIT_ORDER, Some("k-1")).await;
    assert_eq!(replay.json["id"], first.json["id"]);
    assert_eq!(Api::header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(
        api.post(MARKET_ORDER, Some("k-1")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    api.store.advance_clock(Duration::from_secs(1));
    let renewed = api.post(MARKET_ORDER, Some("k-1")).await;
    assert_eq!(renewed.status, StatusCode::CREATED, "{}", renewed.json);
    assert_ne!(renewed.json["id"], first.json["id"]);
    assert_eq!(Api::header(&renewed, "idempotent-replayed"), None);
    assert_eq!(api.store.orders().len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_order_is_422() {
    let api = Api::new();
    api.post(LIMIT_ORDER, Some("req-1")).await;

    let answer = api
        .post(
            &LIMIT_ORDER.replace(r#""quantity":10"#, r#""quantity":11"#),
            Some("req-1"),
        )
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer.json,
        json!({
            "message": "Idempotency-Key was already used with a different order",
            "errors": [{"field": "Idempotency-Key", "message": "was already used with a different order"}],
        })
    );
    assert_eq!(api.store.orders().len(), 1);
    assert_eq!(api.queue.sent().len(), 1);
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_422_and_stores_nothing() {
    let api = Api::new();

    let answer = api.post(LIMIT_ORDER, Some(&"k".repeat(101))).await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["errors"][0]["field"], "Idempotency-Key");
    assert!(api.store.orders().is_empty());
}

#[tokio::test]
async fn a_store_outage_is_a_500_that_reveals_nothing() {
    let api = Api::new();
    api.store.set_down(true);

    let answer = api.post(LIMIT_ORDER, None).await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        answer.text,
        r#"{"message":"Internal server error while placing the order"}"#
    );
    assert_eq!(answer.json["message"], INTERNAL_ERROR_MESSAGE);
    assert!(api.store.orders().is_empty());
    assert_eq!(api.queue.attempts(), 0);
}

/// Order operations that panic: a bug in a handler's path, after the body was read and the key
/// presented.
struct PanickingOrders;

#[async_trait::async_trait]
impl ClientOrders for PanickingOrders {
    async fn place(
        &self,
        _: &ApiKey,
        _: &crate::domain::NewOrder,
        _: OffsetDateTime,
        _: Option<&crate::domain::IdempotencyKey>,
    ) -> Result<Gated<CreateOutcome>, StoreError> {
        panic!("a bug while placing");
    }

    async fn order(
        &self,
        _: &ApiKey,
        _: crate::domain::OrderId,
    ) -> Result<Gated<Option<Order>>, StoreError> {
        panic!("a bug while reading");
    }

    async fn orders(&self, _: &ApiKey, _: &ListQuery) -> Result<Gated<OrderPage>, StoreError> {
        panic!("a bug while listing");
    }

    async fn order_events(
        &self,
        _: &ApiKey,
        _: crate::domain::OrderId,
    ) -> Result<Gated<Option<Vec<crate::ports::OrderEvent>>>, StoreError> {
        panic!("a bug while reading the history");
    }

    async fn order_executions(
        &self,
        _: &ApiKey,
        _: crate::domain::OrderId,
    ) -> Result<Gated<Option<Vec<crate::domain::ExecutionReport>>>, StoreError> {
        panic!("a bug while reading the executions");
    }
}

/// Log lines written while it is the thread's default subscriber (JSON, with span fields).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn a_panic_in_a_handler_is_the_contracts_500_logged_with_the_request_id() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime has one thread: the request runs under this subscriber.
    let _logging = tracing::subscriber::set_default(subscriber);
    let api = Api {
        orders: Some(Arc::new(PanickingOrders)),
        ..Api::new()
    };

    for (request, panic) in [
        (
            Request::post("/orders")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(LIMIT_ORDER)),
            "a bug while placing",
        ),
        (
            Request::get("/orders").body(Body::empty()),
            "a bug while listing",
        ),
        (
            Request::get("/orders/0190a0b1-0000-7000-8000-000000000001").body(Body::empty()),
            "a bug while reading",
        ),
    ] {
        let mut request = request.unwrap();
        let request_id = format!("panic-{}", uuid::Uuid::new_v4());
        let headers = request.headers_mut();
        headers.insert(header::AUTHORIZATION, api.bearer().parse().unwrap());
        headers.insert("x-request-id", request_id.parse().unwrap());

        let answer = api.send(request).await;

        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            answer.text,
            r#"{"message":"Internal server error while placing the order"}"#
        );
        assert_eq!(Api::header(&answer, "x-request-id"), Some(&*request_id));
        let logged = logs.text();
        let line = logged
            .lines()
            .find(|line| line.contains(panic))
            .unwrap_or_else(|| panic!("the panic is logged: {logged}"));
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["fields"]["request_id"], request_id.as_str(), "{line}");
    }
    assert!(api.store.orders().is_empty(), "nothing was stored");
    assert_eq!(api.queue.attempts(), 0, "nothing was sent");
}

#[tokio::test]
async fn an_order_is_accepted_while_the_queue_is_down_and_left_for_the_sweeper() {
    let api = Api::new();
    api.queue.set_behaviour(QueueBehaviour::Fail);

    let answer = api.post(LIMIT_ORDER, None).await;

    assert_eq!(answer.status, StatusCode::CREATED);
    let order = &api.store.orders()[0];
    assert_eq!(answer.json["id"], order.id.to_string());
    assert!(!api.store.is_enqueued(order.id));
}

#[tokio::test(start_paused = true)]
async fn a_hung_queue_delays_the_answer_by_the_enqueue_bound_only() {
    let api = Api::new();
    api.queue.set_behaviour(QueueBehaviour::Hang);
    let started = tokio::time::Instant::now();

    let answer = api.post(LIMIT_ORDER, None).await;

    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(started.elapsed(), ENQUEUE_TIMEOUT);
    assert!(!api.store.is_enqueued(api.store.orders()[0].id));
}

// --- Time in force (expires_at) -----------------------------------------------------------

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap()
}

fn parse_time(json: &Value) -> OffsetDateTime {
    let text = json
        .as_str()
        .unwrap_or_else(|| panic!("a time string, got {json}"));
    assert!(text.ends_with('Z'), "`{text}` is in UTC");
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

fn with_expiry(body: &str, expires_at: &str) -> String {
    let mut order: serde_json::Map<String, Value> = serde_json::from_str(body).unwrap();
    order.insert("expires_at".into(), Value::String(expires_at.into()));
    Value::Object(order).to_string()
}

#[tokio::test]
async fn an_order_keeps_the_expiry_it_asks_for_and_shows_it_in_utc() {
    let api = Api::new();
    // An hour ahead, written in another offset, whole seconds.
    let wanted = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
        .unwrap()
        + Duration::from_secs(3600);
    let written = rfc3339(wanted.to_offset(time::macros::offset!(+2)));
    assert!(written.ends_with("+02:00"), "{written}");

    let answer = api.post(&with_expiry(LIMIT_ORDER, &written), None).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!(answer.json["expires_at"], rfc3339(wanted));
    let order = &api.store.orders()[0];
    assert_eq!(order.expires_at, Some(wanted));
    let read = api.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(read.json["expires_at"], answer.json["expires_at"]);
}

#[tokio::test]
async fn without_expires_at_a_market_order_gets_the_configured_ttl_and_a_limit_order_30_days() {
    let api = Api::new();
    let before = OffsetDateTime::now_utc();

    let market = api.post(MARKET_ORDER, None).await;
    let limit = api.post(LIMIT_ORDER, None).await;
    // `null` is the same as leaving it out.
    let explicit_null = api
        .post(&LIMIT_ORDER.replace('}', r#","expires_at":null}"#), None)
        .await;

    let after = OffsetDateTime::now_utc();
    for answer in [&market, &limit, &explicit_null] {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    let within = |answer: &Answer, ttl: Duration| {
        let expires_at = parse_time(&answer.json["expires_at"]);
        let slack = Duration::from_millis(1);
        assert!(
            before + ttl - slack <= expires_at && expires_at <= after + ttl + slack,
            "{expires_at} is {ttl:?} after acceptance"
        );
    };
    within(&market, MARKET_ORDER_TTL);
    within(&limit, THIRTY_DAYS);
    within(&explicit_null, THIRTY_DAYS);
    for order in api.store.orders() {
        let expected = if order.details.limit_price().is_some() {
            THIRTY_DAYS
        } else {
            MARKET_ORDER_TTL
        };
        let ttl = order.expires_at.expect("every new order has an expiry") - order.created_at;
        assert!(
            (ttl - expected).abs() < time::Duration::seconds(1),
            "{ttl} for {:?}",
            order.details.order_type()
        );
    }
}

#[tokio::test]
async fn an_expiry_in_the_past_beyond_30_days_or_malformed_is_422_and_stores_nothing() {
    let api = Api::new();
    let now = OffsetDateTime::now_utc();
    let cases = [
        (
            rfc3339(now - Duration::from_secs(1)),
            "Attribute `expires_at` must be in the future",
        ),
        (
            "2020-01-01T00:00:00Z".into(),
            "Attribute `expires_at` must be in the future",
        ),
        (
            rfc3339(now + THIRTY_DAYS + Duration::from_secs(60)),
            "Attribute `expires_at` must be at most 30 days ahead",
        ),
        ("tomorrow".into(), ""),
        ("2026-12-06 15:00:00".into(), ""),
        ("2026-12-06T15:00:00".into(), ""),
    ];

    for (expires_at, message) in cases {
        let answer = api
            .post(&with_expiry(MARKET_ORDER, &expires_at), Some("key-1"))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{expires_at}"
        );
        assert_eq!(
            answer.json["message"], "The order is invalid",
            "{expires_at}"
        );
        let errors = answer.json["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{expires_at}: {}", answer.json);
        assert_eq!(errors[0]["field"], "expires_at", "{expires_at}");
        if !message.is_empty() {
            assert_eq!(errors[0]["message"], message, "{expires_at}");
        }
    }
    let not_a_string = api
        .post(
            &MARKET_ORDER.replace('}', r#","expires_at":1767225600}"#),
            None,
        )
        .await;
    assert_eq!(not_a_string.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_a_string.json["errors"][0]["field"], "expires_at");

    assert!(api.store.orders().is_empty());
    assert_eq!(api.queue.attempts(), 0);
    // The refused requests did not use up their idempotency key.
    let fixed = api.post(MARKET_ORDER, Some("key-1")).await;
    assert_eq!(fixed.status, StatusCode::CREATED);
    assert_eq!(Api::header(&fixed, "idempotent-replayed"), None);
}

#[tokio::test]
async fn an_order_from_before_time_in_force_shows_a_null_expiry() {
    let api = Api::new();
    // `seed` stores an order without an expiry, as the previous release did.
    let order = api.order(1);

    let answer = api.get(&format!("/orders/{}", order.id)).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["expires_at"], Value::Null);
}

#[tokio::test]
async fn an_order_whose_outcome_is_being_confirmed_stays_open_and_says_so() {
    let api = Api::new();
    let order = api.order(1);
    api.store
        .claim_for_placement(order.id, LEASE)
        .await
        .unwrap();
    api.store
        .release_for_retry(
            order.id,
            "outcome unknown, being confirmed with the exchange: timed out after 5s",
            crate::ports::RetryPlan {
                park_until: None,
                outcome_unknown: true,
            },
        )
        .await
        .unwrap()
        .expect("released");

    let open = api.get(&format!("/orders/{}", order.id)).await;

    assert_eq!(open.json["status"], "pending");
    assert_eq!(open.json["outcome_unknown"], true);
    assert!(
        open.json["last_error"]
            .as_str()
            .unwrap()
            .starts_with("outcome unknown, being confirmed with the exchange"),
        "{}",
        open.json
    );

    api.store
        .claim_for_placement(order.id, LEASE)
        .await
        .unwrap();
    api.store.record_placed(order.id, "EX-1").await.unwrap();
    let placed = api.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(placed.json["status"], "placed");
    assert_eq!(placed.json["outcome_unknown"], false);
}

// --- DELETE /orders/{id} ------------------------------------------------------------------

#[tokio::test]
async fn canceling_a_pending_order_answers_200_with_the_canceled_order_and_audits_it() {
    let api = Api::new();
    let order = api.order(3);

    let answer = api.cancel(&order).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["id"], order.id.to_string());
    assert_eq!(answer.json["status"], "canceled");
    assert_eq!(answer.json["quantity"], 3);
    assert_eq!(
        api.store.order(order.id).unwrap().status,
        OrderStatus::Canceled
    );
    let events = api.store.events_of(order.id);
    let last = events.last().unwrap();
    assert_eq!(
        (last.from, last.to),
        (Some(OrderStatus::Pending), OrderStatus::Canceled)
    );
    assert_eq!(last.reason, "canceled by the client");
    // A cancel adds no open order: it is admitted as a read.
    assert_eq!(
        api.access.requests(),
        [(api.key.id().clone(), RequestKind::Read)]
    );
}

#[tokio::test]
async fn canceling_a_canceled_order_again_is_200_with_the_same_order() {
    let api = Api::new();
    let order = api.order(1);

    let first = api.cancel(&order).await;
    let again = api.cancel(&order).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json, first.json);
    let cancels = api
        .store
        .events_of(order.id)
        .iter()
        .filter(|e| e.to == OrderStatus::Canceled)
        .count();
    assert_eq!(cancels, 1, "audited once");
}

#[tokio::test]
async fn a_canceled_order_can_never_be_claimed_for_placement() {
    let api = Api::new();
    let order = api.order(1);
    api.cancel(&order).await;

    let claim = api
        .store
        .claim_for_placement(order.id, LEASE)
        .await
        .unwrap();

    assert!(
        matches!(claim, ClaimOutcome::AlreadyFinal(OrderStatus::Canceled)),
        "{claim:?}"
    );
    let stored = api.store.order(order.id).unwrap();
    assert_eq!(stored.status, OrderStatus::Canceled);
    assert_eq!(stored.attempts, 0);
}

#[tokio::test]
async fn an_order_being_placed_is_409_with_retry_after_one_second() {
    let api = Api::new();
    let order = api.order(1);
    api.store
        .claim_for_placement(order.id, LEASE)
        .await
        .unwrap();

    let answer = api.cancel(&order).await;

    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(Api::header(&answer, "retry-after"), Some("1"));
    assert_eq!(
        answer.json,
        json!({"message": "Order is being placed and cannot be canceled right now; ask again in a moment"})
    );
    assert_eq!(
        api.store.order(order.id).unwrap().status,
        OrderStatus::Placing
    );

    // Once the attempt fails transiently the order is pending again, and the cancel goes through.
    api.store
        .release_for_retry(
            order.id,
            "503 from the exchange",
            crate::ports::RetryPlan {
                park_until: None,
                outcome_unknown: false,
            },
        )
        .await
        .unwrap();
    let retried = api.cancel(&order).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(retried.json["status"], "canceled");
}

#[tokio::test]
async fn an_order_that_may_have_reached_the_exchange_is_not_canceled_until_confirmed() {
    let api = Api::new();
    let order = api.order(1);
    api.store
        .claim_for_placement(order.id, LEASE)
        .await
        .unwrap();
    api.store
        .release_for_retry(
            order.id,
            "outcome unknown, being confirmed with the exchange: timeout after sending",
            crate::ports::RetryPlan {
                park_until: None,
                outcome_unknown: true,
            },
        )
        .await
        .unwrap();

    let answer = api.cancel(&order).await;

    // Maybe placed: a cancel now could end `canceled` an order the exchange executes.
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(Api::header(&answer, "retry-after"), Some("1"));
    let stored = api.store.order(order.id).unwrap();
    assert_eq!(stored.status, OrderStatus::Pending);
    assert!(stored.outcome_unknown);
}

#[tokio::test]
async fn a_final_order_is_409_naming_its_status() {
    let api = Api::new();
    let filled = api.placed(1).await;
    api.store
        .apply_execution(&fill_report(&filled, 1, 0, 1, "10.00"));
    let rejected = api.order(2);
    api.store
        .claim_for_placement(rejected.id, LEASE)
        .await
        .unwrap();
    api.store
        .record_rejected(rejected.id, "instrument not tradable")
        .await
        .unwrap();
    let failed = api.order(3);
    api.store.mark_failed(failed.id, "poison").await.unwrap();
    let expired = api.store.seed_expiring(
        &client("acme"),
        &market_order(4),
        OffsetDateTime::now_utc() - Duration::from_secs(1),
    );
    api.store
        .expire(expired.id)
        .await
        .unwrap()
        .expect("expired");

    for (order, status) in [
        (&filled, OrderStatus::Filled),
        (&rejected, OrderStatus::Rejected),
        (&failed, OrderStatus::Failed),
        (&expired, OrderStatus::Expired),
    ] {
        assert_eq!(api.store.order(order.id).unwrap().status, status);
        let answer = api.cancel(order).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{status}");
        assert_eq!(
            answer.json,
            json!({"message": format!("Order is already `{status}` and can no longer be canceled")}),
        );
        assert_eq!(Api::header(&answer, "retry-after"), None, "{status}");
        assert_eq!(
            api.store.order(order.id).unwrap().status,
            status,
            "unchanged"
        );
    }
}

#[tokio::test]
async fn canceling_an_unknown_malformed_or_other_clients_order_is_404() {
    let api = Api::new();
    let others = api.store.seed(&client("globex"), &market_order(1));
    let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(1));

    for id in [others.id.to_string(), ghost.id.to_string(), "42".into()] {
        let answer = api.delete(&format!("/orders/{id}")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(answer.json, json!({"message": "Order not found"}), "{id}");
    }
    assert_eq!(
        api.store.order(others.id).unwrap().status,
        OrderStatus::Pending
    );
    assert_eq!(api.store.events_of(others.id).len(), 1, "only its creation");
}

#[tokio::test]
async fn canceling_while_the_store_is_down_is_500() {
    let api = Api::new();
    let order = api.order(1);
    api.store.set_down(true);

    let answer = api.cancel(&order).await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json, json!({"message": INTERNAL_ERROR_MESSAGE}));
    api.store.set_down(false);
    assert_eq!(
        api.store.order(order.id).unwrap().status,
        OrderStatus::Pending
    );
}

#[tokio::test]
async fn canceling_without_a_valid_key_is_401_and_changes_nothing() {
    let api = Api::new();
    let order = api.order(1);

    let answer = api
        .send(
            Request::delete(format!("/orders/{}", order.id))
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.store.order(order.id).unwrap().status,
        OrderStatus::Pending
    );
}

// --- Authentication and limits ------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_valid_key_is_401_and_stores_nothing() {
    let api = Api::new();
    let stranger = ApiKey::generate().unwrap();
    let post = |authorization: Option<String>| {
        let mut request = Request::post("/orders").header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(Body::from(LIMIT_ORDER)).unwrap()
    };

    for request in [
        post(None),
        post(Some("Bearer not-a-key".into())),
        post(Some(format!("Basic {}", api.key.expose()))),
        post(Some(format!("Bearer {}", stranger.expose()))),
    ] {
        let answer = api.send(request).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(Api::header(&answer, "www-authenticate"), Some("Bearer"));
        assert_eq!(
            answer.json["message"],
            "A valid API key is required: send `Authorization: Bearer <key>`"
        );
    }
    assert!(api.store.orders().is_empty());
    // Only the well-formed key reached the key store.
    assert_eq!(api.access.requests().len(), 1);
}

#[tokio::test]
async fn a_rate_limited_client_gets_429_with_retry_after() {
    let api = Api::with_access(FakeAccess::answering(Admission::RateLimited {
        limit: 5,
        retry_after: Duration::from_secs(2),
    }));

    let answer = api.post(LIMIT_ORDER, None).await;

    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(Api::header(&answer, "retry-after"), Some("2"));
    assert_eq!(
        answer.json["message"],
        "Rate limit exceeded: at most 5 requests per second for this client"
    );
    assert!(api.store.orders().is_empty());
}

#[tokio::test]
async fn a_client_with_too_many_open_orders_gets_429_with_at_least_one_second_to_wait() {
    let api = Api::with_access(FakeAccess::answering(Admission::TooManyOpenOrders {
        limit: 100,
        retry_after: Duration::from_millis(200),
    }));

    let answer = api.post(LIMIT_ORDER, None).await;

    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(Api::header(&answer, "retry-after"), Some("1"));
    assert!(
        answer.json["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many open orders: at most 100")
    );
    assert!(api.store.orders().is_empty());
}

#[tokio::test]
async fn a_key_store_outage_is_a_500_that_reveals_nothing() {
    let api = Api::new();
    api.access.set_down(true);

    let answer = api.get("/orders").await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json, json!({"message": INTERNAL_ERROR_MESSAGE}));
}

// --- GET /orders/{id} ---------------------------------------------------------------------

#[tokio::test]
async fn a_client_reads_its_order_with_its_progress() {
    let api = Api::new();
    let order = api.order(7);
    api.store
        .claim_for_placement(order.id, Duration::from_secs(30))
        .await
        .unwrap();
    api.store.record_placed(order.id, "EX-7").await.unwrap();

    let answer = api.get(&format!("/orders/{}", order.id)).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["id"], order.id.to_string());
    assert_eq!(answer.json["status"], "placed");
    assert_eq!(answer.json["attempts"], 1);
    assert_eq!(answer.json["exchange_order_id"], "EX-7");
    assert!(answer.json["placed_at"].is_string());
    assert_eq!(answer.json["limit_price"], Value::Null);
    assert_eq!(
        api.access.requests(),
        [(api.key.id().clone(), RequestKind::Read)]
    );
}

#[tokio::test]
async fn an_unknown_malformed_or_other_clients_order_is_404() {
    let api = Api::new();
    let others = api.store.seed(&client("globex"), &market_order(1));
    let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(1));

    for id in [others.id.to_string(), ghost.id.to_string(), "42".into()] {
        let answer = api.get(&format!("/orders/{id}")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(answer.json, json!({"message": "Order not found"}), "{id}");
    }
}

#[tokio::test]
async fn reading_an_order_while_the_store_is_down_is_500() {
    let api = Api::new();
    let order = api.order(1);
    api.store.set_down(true);

    let answer = api.get(&format!("/orders/{}", order.id)).await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json, json!({"message": INTERNAL_ERROR_MESSAGE}));
}

// --- GET /orders --------------------------------------------------------------------------

// --- GET /orders/{id}/events ----------------------------------------------------------------

#[tokio::test]
async fn a_client_reads_its_orders_history_oldest_first() {
    let api = Api::new();
    let order = api.order(4);
    api.store
        .claim_for_placement(order.id, LEASE)
        .await
        .unwrap();
    api.store
        .release_for_retry(
            order.id,
            "503 from the exchange",
            crate::ports::RetryPlan {
                park_until: None,
                outcome_unknown: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(api.cancel(&order).await.status, StatusCode::OK);

    let answer = api.get(&format!("/orders/{}/events", order.id)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["order_id"], order.id.to_string());
    let events = answer.json["events"].as_array().unwrap();
    let steps: Vec<(Value, Value, Value, Value)> = events
        .iter()
        .map(|e| {
            (
                e["from"].clone(),
                e["to"].clone(),
                e["reason"].clone(),
                e["attempt"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                json!(null),
                json!("pending"),
                json!("order accepted"),
                json!(0)
            ),
            (
                json!("pending"),
                json!("placing"),
                json!("claimed for placement"),
                json!(1)
            ),
            (
                json!("placing"),
                json!("pending"),
                json!("transient exchange error: 503 from the exchange"),
                json!(1)
            ),
            (
                json!("pending"),
                json!("canceled"),
                json!("canceled by the client"),
                json!(1)
            ),
        ]
    );
    // The times are the stored ones, in UTC, never decreasing.
    let stored = api.store.events_of(order.id);
    let times: Vec<OffsetDateTime> = events
        .iter()
        .map(|e| OffsetDateTime::parse(e["at"].as_str().unwrap(), &Rfc3339).unwrap())
        .collect();
    assert_eq!(times, stored.iter().map(|e| e.at).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .all(|e| e["at"].as_str().unwrap().ends_with('Z'))
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        api.access.requests().last(),
        Some(&(api.key.id().clone(), RequestKind::Read))
    );
}

#[tokio::test]
async fn the_history_of_an_unknown_malformed_or_other_clients_order_is_404() {
    let api = Api::new();
    let others = api.store.seed(&client("globex"), &market_order(1));
    let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(1));

    for id in [others.id.to_string(), ghost.id.to_string(), "42".into()] {
        let answer = api.get(&format!("/orders/{id}/events")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(answer.json, json!({"message": "Order not found"}), "{id}");
    }
}

#[tokio::test]
async fn the_history_needs_a_valid_key_and_is_500_while_the_store_is_down() {
    let api = Api::new();
    let order = api.order(1);
    let without_key = api
        .send(
            Request::get(format!("/orders/{}/events", order.id))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(without_key.status, StatusCode::UNAUTHORIZED);

    api.store.set_down(true);
    let answer = api.get(&format!("/orders/{}/events", order.id)).await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json, json!({"message": INTERNAL_ERROR_MESSAGE}));
}

#[tokio::test]
async fn the_list_pages_through_the_clients_orders_newest_first() {
    let api = Api::new();
    let orders: Vec<Order> = (1..=3).map(|q| api.order(q)).collect();
    api.store.seed(&client("globex"), &market_order(1));

    let first = api.get("/orders?limit=2").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        ids(&first),
        [orders[2].id.to_string(), orders[1].id.to_string()]
    );
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(cursor, orders[1].id.to_string());

    let second = api.get(&format!("/orders?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), [orders[0].id.to_string()]);
    assert_eq!(second.json["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_list_filters_by_status() {
    let api = Api::new();
    let placed = api.order(1);
    api.order(2);
    api.store
        .claim_for_placement(placed.id, Duration::from_secs(30))
        .await
        .unwrap();
    api.store.record_placed(placed.id, "EX-1").await.unwrap();

    let answer = api.get("/orders?status=placed").await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(ids(&answer), [placed.id.to_string()]);
}

#[tokio::test]
async fn the_list_names_every_bad_parameter() {
    let api = Api::new();
    api.order(1);

    let answer = api
        .get("/orders?limit=0&status=done&cursor=nope&colour=red")
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["message"], "Invalid query parameters");
    let fields: Vec<&str> = answer.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["colour", "status", "limit", "cursor"]);
}

#[tokio::test]
async fn listing_while_the_store_is_down_is_500() {
    let api = Api::new();
    api.store.set_down(true);

    let answer = api.get("/orders").await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json, json!({"message": INTERNAL_ERROR_MESSAGE}));
}

// --- /health and routing ------------------------------------------------------------------

#[tokio::test]
async fn health_is_ok_without_a_key_when_the_store_answers() {
    let api = Api::new();

    let answer = api
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({"status": "ok", "database": "ok"}));
    assert!(api.access.requests().is_empty());
}

#[tokio::test]
async fn health_is_503_when_the_store_is_down() {
    let api = Api::new();
    api.store.set_down(true);

    let answer = api
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;

    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json, json!({"message": "Database unavailable"}));
}

#[tokio::test]
async fn the_openapi_document_describes_cancel_and_time_in_force() {
    let api = Api::new();

    let doc = api.get("/openapi.json").await.json;

    let cancel = &doc["paths"]["/orders/{id}"]["delete"];
    for status in ["200", "401", "404", "409", "429", "500"] {
        assert!(
            cancel["responses"].get(status).is_some(),
            "{status}: {cancel}"
        );
    }
    assert!(
        cancel["responses"]["409"]["headers"]
            .get("Retry-After")
            .is_some()
    );
    let schemas = &doc["components"]["schemas"];
    for schema in ["OrderView", "MarketOrderRequest", "LimitOrderRequest"] {
        let expires_at = &schemas[schema]["properties"]["expires_at"];
        assert!(expires_at.is_object(), "{schema}: {}", schemas[schema]);
    }
    for schema in ["MarketOrderRequest", "LimitOrderRequest"] {
        assert!(
            schemas[schema]["properties"]["expires_at"]["description"]
                .as_str()
                .unwrap()
                .contains("30 days")
        );
    }
    assert!(schemas["OrderView"]["properties"]["outcome_unknown"].is_object());
    let statuses = schemas["OrderStatus"]["enum"].as_array().unwrap();
    for status in ["expired", "canceled"] {
        assert!(
            statuses.contains(&json!(status)),
            "{status} in {statuses:?}"
        );
    }
}

/// The rules the server enforces, as the document states them (the ones OpenAPI can express), so
/// that a client generated from it builds only requests the server accepts.
#[tokio::test]
async fn the_openapi_document_states_the_rules_the_server_enforces() {
    let doc = Api::new().get("/openapi.json").await.json;
    let schemas = &doc["components"]["schemas"];
    let param = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has parameter {name}"))["schema"]
            .clone()
    };

    // GET /orders: the page size's range, the cursor's format.
    let limit = param("/orders", "get", "limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(1), &json!(100))
    );
    assert_eq!(param("/orders", "get", "cursor")["format"], "uuid");
    assert_eq!(param("/orders/{id}", "get", "id")["format"], "uuid");
    assert_eq!(param("/orders/{id}", "delete", "id")["format"], "uuid");
    assert_eq!(param("/orders/{id}/events", "get", "id")["format"], "uuid");
    let key = param("/orders", "post", "Idempotency-Key");
    assert_eq!(
        (&key["minLength"], &key["maxLength"]),
        (&json!(1), &json!(100))
    );
    assert_eq!(key["pattern"], "^[ -~]+$", "printable ASCII");
    let key_description = doc["paths"]["/orders"]["post"]["parameters"][0]["description"]
        .as_str()
        .unwrap();
    assert!(key_description.contains("24 hours"), "{key_description}");

    // POST /orders: one schema per order type, told apart by `type`.
    let body = &doc["paths"]["/orders"]["post"]["requestBody"];
    assert_eq!(body["required"], true);
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OrderRequest"
    );
    assert_eq!(
        schemas["OrderRequest"]["oneOf"],
        json!([
            {"$ref": "#/components/schemas/MarketOrderRequest"},
            {"$ref": "#/components/schemas/LimitOrderRequest"},
        ])
    );
    let market = &schemas["MarketOrderRequest"];
    let limit = &schemas["LimitOrderRequest"];
    assert_eq!(market["properties"]["type"]["enum"], json!(["market"]));
    assert_eq!(limit["properties"]["type"]["enum"], json!(["limit"]));
    assert_eq!(
        market["required"],
        json!(["type", "side", "instrument", "quantity"])
    );
    assert_eq!(
        limit["required"],
        json!(["type", "side", "instrument", "limit_price", "quantity"])
    );
    // A market order's limit price can only be absent or null.
    assert_eq!(market["properties"]["limit_price"]["type"], "null");
    // A limit order's is a number or a decimal string, in range, at most two places.
    let price = &limit["properties"]["limit_price"]["oneOf"];
    assert_eq!(price[0]["type"], "number");
    assert_eq!(price[0]["exclusiveMinimum"], 0);
    assert_eq!(price[0]["maximum"], 1_000_000_000);
    assert_eq!(price[0]["multipleOf"], 0.01);
    assert_eq!(price[1]["type"], "string");
    assert_eq!(price[1]["pattern"], "^[0-9]+(\\.[0-9]+)?$");
    for schema in [market, limit] {
        assert_eq!(schema["additionalProperties"], false, "unknown fields");
        let properties = &schema["properties"];
        assert_eq!(properties["side"]["$ref"], "#/components/schemas/Side");
        let instrument = &properties["instrument"];
        assert_eq!(instrument["pattern"], "^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$");
        assert_eq!(
            (&instrument["minLength"], &instrument["maxLength"]),
            (&json!(12), &json!(12))
        );
        let quantity = &properties["quantity"];
        assert_eq!(quantity["type"], "integer");
        assert_eq!(
            (&quantity["minimum"], &quantity["maximum"]),
            (&json!(1), &json!(1_000_000_000))
        );
        assert_eq!(properties["expires_at"]["format"], "date-time");
        assert_eq!(properties["expires_at"]["type"], json!(["string", "null"]));
    }
    assert_eq!(schemas["Side"]["enum"], json!(["buy", "sell"]));

    // Every status each operation can answer, with the error body.
    for (path, method, statuses) in [
        (
            "/orders",
            "post",
            &["201", "400", "401", "413", "415", "422", "429", "500"][..],
        ),
        ("/orders", "get", &["200", "401", "422", "429", "500"][..]),
        (
            "/orders/{id}",
            "get",
            &["200", "401", "404", "429", "500"][..],
        ),
        (
            "/orders/{id}/executions",
            "get",
            &["200", "401", "404", "429", "500"][..],
        ),
        (
            "/orders/{id}",
            "delete",
            &["200", "202", "401", "404", "409", "429", "500"][..],
        ),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        let mut documented: Vec<&String> = responses.as_object().unwrap().keys().collect();
        documented.sort();
        let mut expected: Vec<&str> = statuses.to_vec();
        expected.sort();
        assert_eq!(documented, expected, "{method} {path}");
        for status in statuses.iter().filter(|s| !s.starts_with('2')) {
            assert_eq!(
                responses[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
    }
}

/// schemathesis found it: JSON Schema's `integer` admits `277.0`, which the server refuses by
/// design (never guessed at). OpenAPI cannot say "written as an integer", so the description does,
/// and a client reading it learns that `10.0` is a 422 like the server answers.
#[tokio::test]
async fn a_quantity_written_with_a_fraction_is_422_and_the_document_says_so() {
    let api = Api::new();

    let answer = api
        .post(
            &MARKET_ORDER.replace(r#""quantity":5"#, r#""quantity":5.0"#),
            None,
        )
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["errors"][0]["field"], "quantity");
    assert!(api.store.orders().is_empty());
    let doc = api.get("/openapi.json").await.json;
    for schema in ["MarketOrderRequest", "LimitOrderRequest"] {
        let quantity = &doc["components"]["schemas"][schema]["properties"]["quantity"];
        let description = quantity["description"].as_str().unwrap();
        assert!(
            description.contains("`10.0` and `1e3` are refused"),
            "{schema}: {description}"
        );
    }
}

/// The document's own request example is accepted, on any day: a fixed `expires_at` in it (as
/// there was, `2026-12-06T15:00:00Z`) turns it into a 422 once that time has passed, for
/// schemathesis's examples phase and for "Try it out" alike.
#[tokio::test]
async fn the_documents_request_example_places_an_order_on_any_day() {
    let api = Api::new();
    let doc = api.get("/openapi.json").await.json;
    let example =
        &doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["example"];

    let answer = api.post(&example.to_string(), None).await;

    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{example}: {}",
        answer.json
    );
    for schema in ["MarketOrderRequest", "LimitOrderRequest"] {
        let expires_at = &doc["components"]["schemas"][schema]["properties"]["expires_at"];
        assert!(
            expires_at.get("example").is_none() && expires_at.get("examples").is_none(),
            "{schema}: a fixed time goes stale: {expires_at}"
        );
    }
}

/// The links from a created order to the operations on it (OpenAPI `links`): a client, and
/// schemathesis's stateful phase, follow them with the new order's id.
#[tokio::test]
async fn the_openapi_document_links_a_created_order_to_the_operations_on_it() {
    let doc = Api::new().get("/openapi.json").await.json;
    let operation_ids: Vec<&Value> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|operation| &operation["operationId"])
        .collect();

    let links = &doc["paths"]["/orders"]["post"]["responses"]["201"]["links"];

    for (name, operation_id) in [
        ("GetOrder", "get_order"),
        ("GetOrderEvents", "order_events"),
        ("CancelOrder", "cancel_order"),
    ] {
        let link = &links[name];
        assert_eq!(link["operationId"], operation_id, "{name}: {links}");
        assert_eq!(link["parameters"], json!({"id": "$response.body#/id"}));
        assert!(
            operation_ids.contains(&&json!(operation_id)),
            "{operation_id}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let api = Api::new();

    let missing = api.get("/nope").await;
    let wrong_method = api
        .send(
            Request::delete("/orders")
                .header(header::AUTHORIZATION, api.bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json, json!({"message": "Not found"}));
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json, json!({"message": "Method not allowed"}));
}

#[tokio::test]
async fn canceling_a_working_order_is_202_pending_cancel_and_sends_the_cancel_through_the_queue() {
    let api = Api::new();
    let placed = api.placed(10).await;
    let partly = api.placed(10).await;
    api.store
        .apply_execution(&fill_report(&partly, 1, 0, 4, "10.00"));

    for (order, from, filled) in [
        (&placed, OrderStatus::Placed, 0),
        (&partly, OrderStatus::PartiallyFilled, 4),
    ] {
        let answer = api.cancel(order).await;

        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "{from}: {}",
            answer.text
        );
        assert_eq!(answer.json["status"], "pending_cancel");
        assert_eq!(answer.json["filled_quantity"], filled);
        assert_eq!(answer.json["remaining_quantity"], 10 - filled);
        let last = api.store.events_of(order.id).pop().unwrap();
        assert_eq!(
            (last.from, last.to, last.reason.as_str()),
            (
                Some(from),
                OrderStatus::PendingCancel,
                "cancel requested by the client"
            )
        );
    }
    let sent = api.queue.sent();
    let cancels: Vec<_> = sent
        .iter()
        .filter(|m| m.action == MessageAction::Cancel)
        .map(|m| m.order_id)
        .collect();
    assert_eq!(cancels, [placed.id.as_uuid(), partly.id.as_uuid()]);
}

#[tokio::test]
async fn asking_again_while_the_cancel_is_unanswered_is_202_and_sends_it_again() {
    let api = Api::new();
    let order = api.placed(10).await;

    let first = api.cancel(&order).await;
    let again = api.cancel(&order).await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json["status"], "pending_cancel");
    let requests = api
        .store
        .events_of(order.id)
        .iter()
        .filter(|e| e.to == OrderStatus::PendingCancel)
        .count();
    assert_eq!(requests, 1, "audited once");
    assert_eq!(api.queue.sent().len(), 2, "the cancel is sent each time");
}

#[tokio::test]
async fn a_cancel_that_cannot_be_sent_is_still_accepted_and_left_for_the_sweeper() {
    let api = Api::new();
    let order = api.placed(10).await;
    api.queue.set_behaviour(QueueBehaviour::Fail);

    let answer = api.cancel(&order).await;

    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(
        api.store.order(order.id).unwrap().status,
        OrderStatus::PendingCancel
    );
    // The sweeper sends it once it has been unanswered for a while.
    api.queue.set_behaviour(QueueBehaviour::Accept);
    api.store
        .advance_clock(crate::handlers::sweeper::UNANSWERED_CANCEL_AGE);
    let sent = crate::handlers::sweeper::resend_unanswered_cancels(
        api.store.as_ref(),
        api.queue.as_ref(),
        100,
    )
    .await
    .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(api.queue.sent()[0].action, MessageAction::Cancel);
}

#[tokio::test]
async fn the_exchanges_answer_ends_a_pending_cancel_and_a_later_delete_says_so() {
    let api = Api::new();
    let canceled = api.placed(10).await;
    let filled = api.placed(10).await;
    api.cancel(&canceled).await;
    api.cancel(&filled).await;

    api.store
        .apply_execution(&fill_report(&canceled, 1, 0, 3, "10.00"));
    api.store.apply_execution(&canceled_report(&canceled, 2, 3));
    // The fill won the race with the cancel.
    api.store
        .apply_execution(&fill_report(&filled, 3, 0, 10, "10.00"));

    let answer = api.cancel(&canceled).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["status"], "canceled");
    assert_eq!(answer.json["filled_quantity"], 3);
    assert_eq!(answer.json["remaining_quantity"], 0);
    let answer = api.cancel(&filled).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.json,
        json!({"message": "Order is already `filled` and can no longer be canceled"})
    );
}

#[tokio::test]
async fn an_order_shows_its_fills_and_lists_its_executions() {
    let api = Api::new();
    let order = api.placed(10).await;
    let fresh = api.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(fresh.json["filled_quantity"], 0);
    assert_eq!(fresh.json["remaining_quantity"], 10);
    assert_eq!(fresh.json["average_fill_price"], Value::Null);
    let none = api.get(&format!("/orders/{}/executions", order.id)).await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(
        none.json,
        json!({"order_id": order.id.to_string(), "executions": []})
    );

    api.store
        .apply_execution(&fill_report(&order, 1, 0, 4, "10.00"));
    api.store
        .apply_execution(&fill_report(&order, 2, 4, 2, "10.50"));

    let answer = api.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(answer.json["status"], "partially_filled");
    assert_eq!(answer.json["filled_quantity"], 6);
    assert_eq!(answer.json["remaining_quantity"], 4);
    assert_eq!(answer.json["average_fill_price"], "10.166667");
    let list = api.get(&format!("/orders/{}/executions", order.id)).await;
    assert_eq!(list.status, StatusCode::OK);
    let executions = list.json["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 2);
    assert_eq!(executions[0]["execution_id"], "E-1");
    assert_eq!(executions[0]["kind"], "partial_fill");
    assert_eq!(executions[0]["quantity"], 4);
    assert_eq!(executions[0]["price"], "10.00");
    assert_eq!(executions[0]["cumulative_quantity"], 4);
    assert_eq!(executions[0]["remaining_quantity"], 6);
    assert_eq!(executions[1]["price"], "10.50");
    assert_eq!(executions[1]["cumulative_quantity"], 6);
    assert!(
        executions[1]["executed_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn another_clients_or_an_unknown_orders_executions_are_404() {
    let api = Api::new();
    let others = api.store.seed(&client("globex"), &market_order(1));
    for uri in [
        format!("/orders/{}/executions", others.id),
        format!("/orders/{}/executions", crate::domain::OrderId::generate()),
        "/orders/not-a-uuid/executions".to_owned(),
    ] {
        let answer = api.get(&uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(answer.json, json!({"message": "Order not found"}));
    }
}
