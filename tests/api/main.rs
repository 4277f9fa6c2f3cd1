//! The HTTP API against a real Postgres and a real (moto) SQS queue: what a client sees, and
//! what every request leaves behind in the `orders` and `order_events` tables and on the queue.
//! Each test gets its own database and queue.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::future::join_all;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use system_tests::order_shared::adapters::sqs::SqsOrderQueue;
use system_tests::order_shared::api::INTERNAL_ERROR_MESSAGE;
use system_tests::{
    LIMIT_ORDER, MARKET_ORDER, TestApi, TestDatabase, TestQueue, TestResponse, unreachable_queue,
    unreachable_store,
};
use uuid::Uuid;

const LIMIT_REQUIRED: &str = "Attribute `limit_price` is required for type `limit`";
const MARKET_PROHIBITED: &str = "Providing a `limit_price` is prohibited for type `market`";
const KEY_REUSED: &str = "Idempotency-Key was already used with a different order";
const INVALID_ORDER: &str = "The order is invalid";
const MAX_BODY: usize = 16 * 1024;

/// A database, a queue and the api wired to both.
struct Harness {
    db: TestDatabase,
    queue: TestQueue,
    api: TestApi,
}

impl Harness {
    async fn start() -> Self {
        let db = TestDatabase::create().await;
        let queue = TestQueue::create().await;
        let api = TestApi::new(Arc::new(db.store.clone()), Arc::new(queue.adapter())).await;
        Self { db, queue, api }
    }

    async fn orders(&self) -> i64 {
        self.db.count("SELECT count(*) FROM orders").await
    }

    async fn events(&self) -> i64 {
        self.db.count("SELECT count(*) FROM order_events").await
    }

    /// Posts a valid order and returns its id.
    async fn create(&self, body: &str) -> Uuid {
        let response = self.api.post_order(body, None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
        id_of(&response)
    }

    /// `(status, enqueued_at IS NOT NULL)` of a stored order.
    async fn stored_state(&self, id: Uuid) -> (String, bool) {
        let row = self
            .db
            .client()
            .await
            .query_one(
                "SELECT status, enqueued_at IS NOT NULL FROM orders WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the order row");
        (row.get(0), row.get(1))
    }
}

fn id_of(response: &TestResponse) -> Uuid {
    let text = response.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("response has a string id: {}", response.json));
    Uuid::parse_str(text).expect("id is a UUID")
}

fn header<'a>(response: &'a TestResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`: RFC 3339 in UTC.
fn assert_rfc3339_utc(text: &str) {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| {
        b.get(from..to)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let fraction_ok = || {
        let fraction = &text[19..text.len() - 1];
        fraction.is_empty()
            || (fraction.len() > 1
                && fraction.starts_with('.')
                && fraction[1..].bytes().all(|c| c.is_ascii_digit()))
    };
    let ok = text.len() >= 20
        && text.is_ascii()
        && digits(0, 4)
        && b[4] == b'-'
        && digits(5, 7)
        && b[7] == b'-'
        && digits(8, 10)
        && b[10] == b'T'
        && digits(11, 13)
        && b[13] == b':'
        && digits(14, 16)
        && b[16] == b':'
        && digits(17, 19)
        && text.ends_with('Z')
        && fraction_ok();
    assert!(ok, "`{text}` is not an RFC 3339 UTC timestamp");
}

/// The ids of a list page, in the order returned.
fn page_ids(response: &TestResponse) -> Vec<Uuid> {
    response.json["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of orders: {}", response.json))
        .iter()
        .map(|order| Uuid::parse_str(order["id"].as_str().expect("id")).expect("UUID"))
        .collect()
}

/// The `field` of every entry of a 422's `errors`, sorted.
fn error_fields(json: &Value) -> Vec<String> {
    let mut fields: Vec<String> = json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a 422 lists its errors: {json}"))
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect();
    fields.sort();
    fields
}

fn error_message<'a>(json: &'a Value, field: &str) -> &'a str {
    json["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error for `{field}` in {json}"))
}

fn request(content_type: Option<&str>) -> http::request::Builder {
    let mut builder = Request::post("/orders");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder
}

// ---------------------------------------------------------------------------------------------
// Accepting orders

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
    assert_eq!(
        header(&response, "location"),
        Some(format!("/orders/{id}").as_str())
    );
    assert_eq!(header(&response, "idempotent-replayed"), None);

    // Exactly one row, as sent, enqueued, with the timestamp the response shows.
    assert_eq!(h.orders().await, 1);
    let client = h.db.client().await;
    let row = client
        .query_one(
            "SELECT order_type, side, instrument, limit_price::text, quantity, status, \
                    enqueued_at IS NOT NULL, created_at = $2::text::timestamptz, \
                    abs(extract(epoch FROM now() - created_at)) < 60 \
             FROM orders WHERE id = $1",
            &[&id, &created_at],
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
    assert!(row.get::<_, bool>(6), "enqueued_at is set after the send");
    assert!(
        row.get::<_, bool>(7),
        "created_at in the response is the stored one"
    );
    assert!(row.get::<_, bool>(8), "created_at is now");

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

// ---------------------------------------------------------------------------------------------
// Bad input: the right status and message, and nothing stored, nothing sent

enum Expected {
    /// `message` equals this.
    Message(&'static str),
    /// `message` starts with this.
    MessagePrefix(&'static str),
    /// 422 with this `message` and exactly these error fields, each with the given message
    /// where one is given.
    Invalid(&'static str, Vec<(&'static str, Option<&'static str>)>),
}

struct BadInput {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// Also send a `Content-Length` header.
    declare_length: bool,
    key: Option<String>,
    status: StatusCode,
    expected: Expected,
}

fn json_case(name: &'static str, body: &str, status: StatusCode, expected: Expected) -> BadInput {
    BadInput {
        name,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        declare_length: false,
        key: None,
        status,
        expected,
    }
}

fn invalid(
    name: &'static str,
    body: &str,
    errors: Vec<(&'static str, Option<&'static str>)>,
) -> BadInput {
    json_case(
        name,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        Expected::Invalid(INVALID_ORDER, errors),
    )
}

/// A limit order with one attribute's raw JSON replaced.
fn limit_with(field: &str, raw: &str) -> String {
    let mut order: serde_json::Map<String, Value> =
        serde_json::from_str(LIMIT_ORDER).expect("LIMIT_ORDER is JSON");
    order.remove(field);
    let mut text = serde_json::to_string(&order).unwrap();
    text.pop();
    format!("{text},\"{field}\":{raw}}}")
}

fn bad_inputs() -> Vec<BadInput> {
    use StatusCode as S;
    const NOT_JSON: &str = "Request body is not valid JSON";
    const NOT_OBJECT: &str = "Request body must be a JSON object";
    const WRONG_TYPE: &str = "Content-Type must be application/json";
    const TOO_LARGE: &str = "Request body is larger than 16384 bytes";
    let oversized = {
        let mut body = LIMIT_ORDER.to_owned();
        body.push_str(&" ".repeat(MAX_BODY + 1 - body.len()));
        body
    };
    let long_key = "k".repeat(101);
    vec![
        json_case(
            "not JSON",
            r#"{"type": "limit","#,
            S::BAD_REQUEST,
            Expected::MessagePrefix(NOT_JSON),
        ),
        json_case(
            "empty body",
            "",
            S::BAD_REQUEST,
            Expected::MessagePrefix(NOT_JSON),
        ),
        json_case(
            "JSON with trailing garbage",
            &format!("{LIMIT_ORDER} x"),
            S::BAD_REQUEST,
            Expected::MessagePrefix(NOT_JSON),
        ),
        BadInput {
            body: vec![b'"', 0xff, 0xfe, b'"'],
            ..json_case(
                "invalid UTF-8",
                "",
                S::BAD_REQUEST,
                Expected::MessagePrefix(NOT_JSON),
            )
        },
        json_case(
            "JSON array",
            &format!("[{LIMIT_ORDER}]"),
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        json_case(
            "JSON string",
            r#""limit""#,
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        json_case(
            "JSON number",
            "42",
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        json_case(
            "JSON null",
            "null",
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        BadInput {
            content_type: None,
            ..json_case(
                "missing content type",
                LIMIT_ORDER,
                S::UNSUPPORTED_MEDIA_TYPE,
                Expected::Message(WRONG_TYPE),
            )
        },
        BadInput {
            content_type: Some("text/plain"),
            ..json_case(
                "text/plain",
                LIMIT_ORDER,
                S::UNSUPPORTED_MEDIA_TYPE,
                Expected::Message(WRONG_TYPE),
            )
        },
        BadInput {
            content_type: Some("application/x-www-form-urlencoded"),
            ..json_case(
                "form content type",
                "type=limit",
                S::UNSUPPORTED_MEDIA_TYPE,
                Expected::Message(WRONG_TYPE),
            )
        },
        json_case(
            "body over 16 KiB",
            &oversized,
            S::PAYLOAD_TOO_LARGE,
            Expected::Message(TOO_LARGE),
        ),
        BadInput {
            declare_length: true,
            ..json_case(
                "body over 16 KiB with Content-Length",
                &oversized,
                S::PAYLOAD_TOO_LARGE,
                Expected::Message(TOO_LARGE),
            )
        },
        invalid(
            "unknown field",
            &limit_with("account", r#""x""#),
            vec![("account", Some("Unknown attribute `account`"))],
        ),
        invalid(
            "all fields missing",
            "{}",
            vec![
                ("instrument", Some("Attribute `instrument` is required")),
                ("quantity", Some("Attribute `quantity` is required")),
                ("side", Some("Attribute `side` is required")),
                ("type", Some("Attribute `type` is required")),
            ],
        ),
        invalid(
            "quantity missing",
            r#"{"type":"market","side":"buy","instrument":"US0378331005"}"#,
            vec![("quantity", Some("Attribute `quantity` is required"))],
        ),
        invalid(
            "bad ISIN check digit",
            &limit_with("instrument", r#""US0378331006""#),
            vec![(
                "instrument",
                Some("Attribute `instrument` has an invalid check digit"),
            )],
        ),
        invalid(
            "ISIN too short",
            &limit_with("instrument", r#""US037833100""#),
            vec![("instrument", None)],
        ),
        invalid(
            "ISIN with non-ASCII",
            &limit_with("instrument", r#""ÜS037833100""#),
            vec![("instrument", None)],
        ),
        invalid(
            "instrument is a number",
            &limit_with("instrument", "378331005"),
            vec![("instrument", None)],
        ),
        invalid(
            "price with 3 decimals (string)",
            &limit_with("limit_price", r#""120.505""#),
            vec![(
                "limit_price",
                Some("Attribute `limit_price` must have at most 2 decimal places"),
            )],
        ),
        invalid(
            "price with 3 decimals (number)",
            &limit_with("limit_price", "120.505"),
            vec![(
                "limit_price",
                Some("Attribute `limit_price` must have at most 2 decimal places"),
            )],
        ),
        invalid(
            "price 0",
            &limit_with("limit_price", "0"),
            vec![("limit_price", None)],
        ),
        invalid(
            "negative price",
            &limit_with("limit_price", r#""-1.00""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price above 1 000 000 000.00",
            &limit_with("limit_price", "1000000000.01"),
            vec![("limit_price", None)],
        ),
        invalid(
            "price far beyond f64",
            &limit_with("limit_price", "1e400"),
            vec![("limit_price", None)],
        ),
        invalid(
            "price is not a number",
            &limit_with("limit_price", r#""twelve""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price is a boolean",
            &limit_with("limit_price", "true"),
            vec![("limit_price", None)],
        ),
        invalid(
            "quantity 0",
            &limit_with("quantity", "0"),
            vec![("quantity", Some("Attribute `quantity` must be at least 1"))],
        ),
        invalid(
            "quantity above 1 000 000 000",
            &limit_with("quantity", "1000000001"),
            vec![("quantity", None)],
        ),
        invalid(
            "quantity beyond i64",
            &limit_with("quantity", "99999999999999999999999"),
            vec![("quantity", None)],
        ),
        invalid(
            "quantity as a string",
            &limit_with("quantity", r#""10""#),
            vec![("quantity", None)],
        ),
        invalid(
            "fractional quantity",
            &limit_with("quantity", "10.5"),
            vec![("quantity", None)],
        ),
        invalid(
            "quantity with an exponent",
            &limit_with("quantity", "1e3"),
            vec![("quantity", None)],
        ),
        invalid(
            "unknown type",
            &limit_with("type", r#""stop""#),
            vec![("type", None)],
        ),
        invalid(
            "unknown side",
            &limit_with("side", r#""hold""#),
            vec![("side", None)],
        ),
        invalid(
            "limit with null price",
            &limit_with("limit_price", "null"),
            vec![("limit_price", Some(LIMIT_REQUIRED))],
        ),
        invalid(
            "limit without price",
            r#"{"type":"limit","side":"buy","instrument":"US0378331005","quantity":10}"#,
            vec![("limit_price", Some(LIMIT_REQUIRED))],
        ),
        invalid(
            "market with price",
            r#"{"type":"market","side":"sell","instrument":"DE000BAY0017","limit_price":"1.00","quantity":5}"#,
            vec![("limit_price", Some(MARKET_PROHIBITED))],
        ),
        invalid(
            "every problem is reported",
            r#"{"type":"market","side":"short","instrument":"XX","limit_price":1,"quantity":0,"x":1}"#,
            vec![
                ("instrument", None),
                ("limit_price", Some(MARKET_PROHIBITED)),
                ("quantity", None),
                ("side", None),
                ("x", None),
            ],
        ),
        BadInput {
            key: Some(long_key.clone()),
            ..invalid(
                "Idempotency-Key of 101 characters",
                LIMIT_ORDER,
                vec![("Idempotency-Key", Some("must be at most 100 characters"))],
            )
        },
        BadInput {
            key: Some(long_key),
            ..invalid(
                "Idempotency-Key of 101 characters and a bad order",
                &limit_with("quantity", "0"),
                vec![("Idempotency-Key", None), ("quantity", None)],
            )
        },
        BadInput {
            key: Some("tab\there".into()),
            ..invalid(
                "Idempotency-Key with a control character",
                LIMIT_ORDER,
                vec![("Idempotency-Key", None)],
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_its_status_and_nothing_is_stored_or_sent() {
    let h = Harness::start().await;
    for case in bad_inputs() {
        let name = case.name;
        let mut builder = request(case.content_type);
        if case.declare_length {
            builder = builder.header("content-length", case.body.len());
        }
        if let Some(key) = &case.key {
            builder = builder.header("idempotency-key", key.as_str());
        }
        let response = h
            .api
            .send(builder.body(Body::from(case.body)).unwrap())
            .await;
        let json = &response.json;

        assert_eq!(response.status, case.status, "{name}: {json}");
        let message = json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: a message in {json}"));
        match &case.expected {
            Expected::Message(expected) => {
                assert_eq!(message, *expected, "{name}");
                assert!(json.get("errors").is_none(), "{name}: {json}");
            }
            Expected::MessagePrefix(prefix) => {
                assert!(message.starts_with(prefix), "{name}: {message}");
            }
            Expected::Invalid(expected, errors) => {
                assert_eq!(message, *expected, "{name}");
                let mut fields: Vec<String> = errors.iter().map(|(f, _)| (*f).into()).collect();
                fields.sort();
                assert_eq!(error_fields(json), fields, "{name}: {json}");
                for (field, expected) in errors {
                    if let Some(expected) = expected {
                        assert_eq!(error_message(json, field), *expected, "{name}: {json}");
                    }
                }
            }
        }
        assert_eq!(h.orders().await, 0, "{name}: nothing stored");
        assert_eq!(h.events().await, 0, "{name}: no event");
        assert_eq!(
            h.queue.drain().await,
            Vec::<Value>::new(),
            "{name}: nothing sent"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Idempotency

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
                "SELECT idempotency_key FROM orders WHERE id = $1",
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

// ---------------------------------------------------------------------------------------------
// Reading orders

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_order_returns_the_order_with_its_placement_progress() {
    let h = Harness::start().await;
    let created = h.api.post_order(LIMIT_ORDER, None).await;
    let id = id_of(&created);

    let response = h.api.get(&format!("/orders/{id}")).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    let json = &response.json;
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["status"], "pending");
    assert_eq!(json["attempts"], 0);
    assert_eq!(json["last_error"], Value::Null);
    assert_eq!(json["exchange_order_id"], Value::Null);
    assert_eq!(json["placed_at"], Value::Null);
    for field in [
        "created_at",
        "type",
        "side",
        "instrument",
        "limit_price",
        "quantity",
    ] {
        assert_eq!(json[field], created.json[field], "`{field}`");
    }
    for field in [
        "status",
        "attempts",
        "last_error",
        "exchange_order_id",
        "placed_at",
    ] {
        assert!(json.get(field).is_some(), "`{field}` is present in {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_order_shows_progress_written_by_the_placer() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;
    h.db.client()
        .await
        .execute(
            "UPDATE orders SET status = 'placed', attempts = 2, last_error = 'exchange timed out', \
                    exchange_order_id = 'EX-42', placed_at = '2026-01-02T03:04:05.5Z' \
             WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();

    let response = h.api.get(&format!("/orders/{id}")).await;

    assert_eq!(response.status, StatusCode::OK);
    let json = &response.json;
    assert_eq!(json["status"], "placed");
    assert_eq!(json["attempts"], 2);
    assert_eq!(json["last_error"], "exchange timed out");
    assert_eq!(json["exchange_order_id"], "EX-42");
    let placed_at = json["placed_at"].as_str().expect("placed_at");
    assert_rfc3339_utc(placed_at);
    assert!(
        placed_at.starts_with("2026-01-02T03:04:05.5"),
        "{placed_at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_unknown_order_is_a_json_404() {
    let h = Harness::start().await;
    h.create(LIMIT_ORDER).await;

    for uri in [
        format!("/orders/{}", Uuid::now_v7()),
        format!("/orders/{}", Uuid::nil()),
        "/orders/not-a-uuid".to_owned(),
    ] {
        let response = h.api.get(&uri).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            response.json,
            json!({"message": "Order not found"}),
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_walks_every_order_newest_first_in_keyset_pages() {
    let h = Harness::start().await;
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(h.create(LIMIT_ORDER).await);
    }

    let mut pages: Vec<Vec<Uuid>> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(cursor) => format!("/orders?limit=10&cursor={cursor}"),
            None => "/orders?limit=10".to_owned(),
        };
        let response = h.api.get(&uri).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.json);
        for order in response.json["orders"].as_array().unwrap() {
            assert_eq!(order["status"], "pending");
            assert_eq!(order["instrument"], "US0378331005");
        }
        pages.push(page_ids(&response));
        match &response.json["next_cursor"] {
            Value::Null => break,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor is a string or null, got {other}"),
        }
        assert!(pages.len() < 5, "pagination does not end: {pages:?}");
    }

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let walked: Vec<Uuid> = pages.into_iter().flatten().collect();
    let unique: HashSet<Uuid> = walked.iter().copied().collect();
    assert_eq!(unique.len(), walked.len(), "no order twice");
    assert_eq!(unique, created.iter().copied().collect::<HashSet<_>>());
    assert!(
        walked.windows(2).all(|w| w[0] > w[1]),
        "ids strictly descending: {walked:?}"
    );
    let newest_first: Vec<Uuid> = created.iter().rev().copied().collect();
    assert_eq!(walked, newest_first, "newest first");

    // Without a limit: the default page holds 20.
    let default_page = h.api.get("/orders").await;
    assert_eq!(page_ids(&default_page), newest_first[..20]);
    assert_eq!(
        default_page.json["next_cursor"],
        newest_first[19].to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_filters_by_status() {
    let h = Harness::start().await;
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(h.create(MARKET_ORDER).await);
    }

    let pending = h.api.get("/orders?status=pending&limit=100").await;
    assert_eq!(pending.status, StatusCode::OK);
    assert_eq!(page_ids(&pending).len(), 25);
    assert_eq!(pending.json["next_cursor"], Value::Null);
    let placed = h.api.get("/orders?status=placed").await;
    assert_eq!(placed.status, StatusCode::OK);
    assert_eq!(placed.json, json!({"orders": [], "next_cursor": null}));

    // Three orders move on (as the placer would move them); the filter follows.
    let moved: Vec<Uuid> = vec![created[3], created[10], created[20]];
    h.db.client()
        .await
        .execute(
            "UPDATE orders SET status = 'placed' WHERE id = ANY($1)",
            &[&moved],
        )
        .await
        .unwrap();

    let placed = h.api.get("/orders?status=placed").await;
    let mut expected = moved.clone();
    expected.reverse();
    assert_eq!(page_ids(&placed), expected);
    for order in placed.json["orders"].as_array().unwrap() {
        assert_eq!(order["status"], "placed");
    }

    // Paging within a status: 22 pending orders in pages of 10.
    let mut walked = Vec::new();
    let mut uri = "/orders?status=pending&limit=10".to_owned();
    loop {
        let page = h.api.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        walked.push(page_ids(&page));
        match page.json["next_cursor"].as_str() {
            Some(next) => uri = format!("/orders?status=pending&limit=10&cursor={next}"),
            None => break,
        }
        assert!(walked.len() < 5);
    }
    assert_eq!(walked.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 2]);
    let expected: Vec<Uuid> = created
        .iter()
        .rev()
        .filter(|id| !moved.contains(id))
        .copied()
        .collect();
    assert_eq!(walked.concat(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_rejects_bad_parameters_with_422_naming_them() {
    let h = Harness::start().await;
    h.create(LIMIT_ORDER).await;

    for (query, fields) in [
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("limit=-1", vec!["limit"]),
        ("limit=ten", vec!["limit"]),
        ("status=bogus", vec!["status"]),
        ("status=PENDING", vec!["status"]),
        ("cursor=garbage", vec!["cursor"]),
        ("colour=red", vec!["colour"]),
        (
            "limit=0&status=bogus&cursor=garbage&colour=red",
            vec!["colour", "cursor", "limit", "status"],
        ),
    ] {
        let response = h.api.get(&format!("/orders?{query}")).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            response.json
        );
        assert!(
            response.json["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{query}: {}",
            response.json
        );
        assert_eq!(error_fields(&response.json), fields, "{query}");
    }

    // The bounds themselves are fine.
    for query in ["limit=1", "limit=100", "status=pending"] {
        let response = h.api.get(&format!("/orders?{query}")).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{query}: {}",
            response.json
        );
        assert_eq!(page_ids(&response).len(), 1, "{query}");
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

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
    let queue = SqsOrderQueue::for_requests(
        &sdk,
        format!("{endpoint}/123456789012/orders"),
        Duration::from_secs(1),
    );
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

// ---------------------------------------------------------------------------------------------
// Health, documentation, routing

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_is_ok_when_the_database_answers() {
    let h = Harness::start().await;
    let response = h.api.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json, json!({"status": "ok", "database": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_is_503_when_the_database_is_down() {
    let queue = TestQueue::create().await;
    let api = TestApi::new(
        Arc::new(unreachable_store().await),
        Arc::new(queue.adapter()),
    )
    .await;
    let response = api.get("/health").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.json["message"].is_string(), "{}", response.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_document_describes_every_route() {
    let h = Harness::start().await;
    let response = h.api.get("/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK);
    let paths = response.json["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("paths: {}", response.json));
    for path in ["/orders", "/orders/{id}", "/health"] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys());
    }
    assert!(paths["/orders"].get("post").is_some());
    assert!(paths["/orders"].get("get").is_some());
    assert!(paths["/orders/{id}"].get("get").is_some());
    assert!(
        response.json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_route_is_a_json_404() {
    let h = Harness::start().await;
    for uri in ["/nope", "/orders/1/cancel", "/"] {
        let response = h.api.get(uri).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            response.json["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{uri}: {}",
            response.json
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_method_is_a_json_405() {
    let h = Harness::start().await;
    for (method, uri) in [
        ("DELETE", "/orders"),
        ("PUT", "/orders"),
        ("POST", "/orders/0196b3f0-0000-7000-8000-000000000000"),
        ("POST", "/health"),
    ] {
        let response = h
            .api
            .send(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(
            response.json,
            json!({"message": "Method not allowed"}),
            "{method} {uri}"
        );
    }
    assert_eq!(h.orders().await, 0);
}
