//! What the api tests share: the harness (a database, a queue and the api wired to both) and
//! helpers to build requests and read responses.

use std::sync::Arc;

use http::{Request, StatusCode};
use serde_json::Value;
use system_tests::{LIMIT_ORDER, TestApi, TestDatabase, TestQueue, TestResponse};
use uuid::Uuid;

/// The largest body the api accepts.
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// A database, a queue and the api wired to both.
pub(crate) struct Harness {
    pub(crate) db: TestDatabase,
    pub(crate) queue: TestQueue,
    pub(crate) api: TestApi,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        let db = TestDatabase::create().await;
        let queue = TestQueue::create().await;
        let api = TestApi::new(Arc::new(db.store.clone()), Arc::new(queue.adapter())).await;
        Self { db, queue, api }
    }

    pub(crate) async fn orders(&self) -> i64 {
        self.db.count("SELECT count(*) FROM orders").await
    }

    pub(crate) async fn events(&self) -> i64 {
        self.db.count("SELECT count(*) FROM order_events").await
    }

    /// Posts a valid order and returns its id.
    pub(crate) async fn create(&self, body: &str) -> Uuid {
        let response = self.api.post_order(body, None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
        id_of(&response)
    }

    /// `(status, enqueued_at IS NOT NULL)` of a stored order.
    pub(crate) async fn stored_state(&self, id: Uuid) -> (String, bool) {
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

    /// Whether the api's background writer marks the order enqueued within 10 s: the mark is
    /// written after the response (it only saves the sweeper work), so a test that reads it
    /// straight after a 201 would race it.
    pub(crate) async fn marked_enqueued(&self, id: Uuid) -> bool {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if self.stored_state(id).await.1 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn id_of(response: &TestResponse) -> Uuid {
    let text = response.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("response has a string id: {}", response.json));
    Uuid::parse_str(text).expect("id is a UUID")
}

pub(crate) fn header<'a>(response: &'a TestResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`: RFC 3339 in UTC.
pub(crate) fn assert_rfc3339_utc(text: &str) {
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
pub(crate) fn page_ids(response: &TestResponse) -> Vec<Uuid> {
    response.json["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of orders: {}", response.json))
        .iter()
        .map(|order| Uuid::parse_str(order["id"].as_str().expect("id")).expect("UUID"))
        .collect()
}

/// The `field` of every entry of a 422's `errors`, sorted.
pub(crate) fn error_fields(json: &Value) -> Vec<String> {
    let mut fields: Vec<String> = json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a 422 lists its errors: {json}"))
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect();
    fields.sort();
    fields
}

pub(crate) fn error_message<'a>(json: &'a Value, field: &str) -> &'a str {
    json["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error for `{field}` in {json}"))
}

pub(crate) fn request(content_type: Option<&str>) -> http::request::Builder {
    let mut builder = Request::post("/orders");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder
}

/// A limit order with one attribute's raw JSON replaced.
pub(crate) fn limit_with(field: &str, raw: &str) -> String {
    let mut order: serde_json::Map<String, Value> =
        serde_json::from_str(LIMIT_ORDER).expect("LIMIT_ORDER is JSON");
    order.remove(field);
    let mut text = serde_json::to_string(&order).unwrap();
    text.pop();
    format!("{text},\"{field}\":{raw}}}")
}
