//! After placement, against Postgres and the SQS endpoint: an order shows what the exchange did
//! with it (filled and remaining quantity, average price) and lists its executions; `DELETE` of a
//! working order answers `202 pending_cancel`, sends a cancel message, and the exchange's report
//! (applied by the ingester's own code) ends it `canceled` or `filled` — never both.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use order_shared::adapters::postgres::PostgresExecutionStore;
use order_shared::domain::{
    ExecutionEvent, ExecutionId, ExecutionReport, OrderId, Price, Quantity, Shares,
};
use order_shared::ports::{ExecutionStore, IngesterLease, OrderLifecycle};
use order_shared::usecases::ingest::ingest_batch;
use serde_json::{Value, json};
use system_tests::{LIMIT_ORDER, TestApi, TestResponse};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::Harness;

const LEASE: Duration = Duration::from_secs(30);

async fn cancel(api: &TestApi, id: Uuid) -> TestResponse {
    api.send(
        Request::delete(format!("/orders/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// The exchange's side, as the ingester sees it: reports applied through `ingest_batch`, the
/// ingester's own step, with a feed sequence of this test's.
struct Exchange {
    store: PostgresExecutionStore,
    lease: IngesterLease,
    sequence: u64,
}

impl Exchange {
    async fn new(h: &Harness) -> Self {
        let exchange = Self {
            store: PostgresExecutionStore::new(h.db.store.pool().clone()),
            lease: IngesterLease {
                holder: "api-test".into(),
                duration: Duration::from_secs(30),
            },
            sequence: 0,
        };
        assert!(exchange.store.acquire_lease(&exchange.lease).await.unwrap());
        exchange
    }

    async fn report(&mut self, id: Uuid, event: ExecutionEvent, cumulative: i64, remaining: i64) {
        self.sequence += 1;
        let report = ExecutionReport::new(
            self.sequence,
            ExecutionId::parse(&format!("E-{}", self.sequence)).unwrap(),
            OrderId::from(id),
            "EX-1".into(),
            event,
            Shares::new(cumulative).unwrap(),
            Shares::new(remaining).unwrap(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let outcome = ingest_batch(&self.store, &self.lease, &[report], self.sequence, 0)
            .await
            .expect("the report is written");
        assert_eq!(outcome.applied, 1, "{outcome:?}");
    }

    async fn fill(&mut self, id: Uuid, quantity: i64, price: &str, cumulative: i64, of: i64) {
        let quantity = Quantity::new(quantity).unwrap();
        let price = Price::parse(price).unwrap();
        let event = if cumulative == of {
            ExecutionEvent::Fill { quantity, price }
        } else {
            ExecutionEvent::PartialFill { quantity, price }
        };
        self.report(id, event, cumulative, of - cumulative).await;
    }

    async fn canceled(&mut self, id: Uuid, filled: i64, of: i64) {
        let event = ExecutionEvent::Canceled {
            quantity: Quantity::new(of - filled).unwrap(),
        };
        self.report(id, event, filled, 0).await;
    }
}

/// A `LIMIT_ORDER` (10 shares) placed at the exchange.
async fn placed(h: &Harness) -> Uuid {
    let id = h.create(LIMIT_ORDER).await;
    let order = OrderId::from(id);
    h.db.store.claim_for_placement(order, LEASE).await.unwrap();
    h.db.store
        .record_placed(order, "EX-1")
        .await
        .unwrap()
        .expect("placed");
    id
}

fn cancels_in(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["action"] == "cancel")
        .map(|m| m["order_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_shows_its_fills_and_lists_its_executions_in_one_round_trip() {
    let h = Harness::start().await;
    let mut exchange = Exchange::new(&h).await;
    let id = placed(&h).await;
    let fresh = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(
        (
            &fresh.json["filled_quantity"],
            &fresh.json["remaining_quantity"],
            &fresh.json["average_fill_price"]
        ),
        (&json!(0), &json!(10), &Value::Null)
    );

    exchange.fill(id, 4, "120.00", 4, 10).await;
    exchange.fill(id, 2, "120.50", 6, 10).await;

    let order = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(order.json["status"], "partially_filled");
    assert_eq!(order.json["filled_quantity"], 6);
    assert_eq!(order.json["remaining_quantity"], 4);
    assert_eq!(order.json["average_fill_price"], "120.166667");
    let listed = h.api.get(&format!("/orders/{id}/executions")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.json);
    let executions = listed.json["executions"].as_array().unwrap();
    let seen: Vec<_> = executions
        .iter()
        .map(|e| {
            (
                e["execution_id"].as_str().unwrap(),
                e["kind"].as_str().unwrap(),
                e["quantity"].as_i64().unwrap(),
                e["price"].as_str().unwrap(),
                e["cumulative_quantity"].as_i64().unwrap(),
                e["remaining_quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("E-1", "partial_fill", 4, "120.00", 4, 6),
            ("E-2", "partial_fill", 2, "120.50", 6, 4)
        ]
    );
    // Listed orders carry the same fill state.
    let list = h.api.get("/orders").await;
    assert_eq!(list.json["orders"][0]["filled_quantity"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_without_executions_lists_none_and_another_clients_is_404() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;
    let none = h.api.get(&format!("/orders/{id}/executions")).await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(
        none.json,
        json!({"order_id": id.to_string(), "executions": []})
    );
    for uri in [
        format!("/orders/{}/executions", Uuid::now_v7()),
        "/orders/not-a-uuid/executions".to_owned(),
    ] {
        let answer = h.api.get(&uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canceling_a_working_order_is_202_sends_a_cancel_and_the_exchanges_report_ends_it() {
    let h = Harness::start().await;
    let mut exchange = Exchange::new(&h).await;
    let id = placed(&h).await;
    exchange.fill(id, 3, "120.00", 3, 10).await;

    let first = cancel(&h.api, id).await;
    let again = cancel(&h.api, id).await;

    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    assert_eq!(first.json["status"], "pending_cancel");
    assert_eq!(first.json["filled_quantity"], 3);
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(h.stored_state(id).await.0, "pending_cancel");
    assert_eq!(
        cancels_in(&h.queue.drain().await),
        [id.to_string(), id.to_string()],
        "a cancel message per request"
    );

    exchange.canceled(id, 3, 10).await;

    let ended = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(ended.json["status"], "canceled");
    assert_eq!(ended.json["filled_quantity"], 3);
    assert_eq!(ended.json["remaining_quantity"], 0);
    let answer = cancel(&h.api, id).await;
    assert_eq!(answer.status, StatusCode::OK, "canceled: the same answer");
    let history = h.api.get(&format!("/orders/{id}/events")).await;
    let moves: Vec<_> = history.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        moves,
        [
            "pending",
            "placing",
            "placed",
            "partially_filled",
            "pending_cancel",
            "canceled"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fill_that_wins_the_race_with_a_cancel_ends_the_order_filled_never_both() {
    let h = Harness::start().await;
    let mut exchange = Exchange::new(&h).await;
    let id = placed(&h).await;

    assert_eq!(cancel(&h.api, id).await.status, StatusCode::ACCEPTED);
    // The exchange filled it before the cancel arrived: the fill, then the refused cancel.
    exchange.fill(id, 10, "99.00", 10, 10).await;
    exchange
        .report(id, ExecutionEvent::CancelRefused, 10, 0)
        .await;

    let order = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(order.json["status"], "filled");
    assert_eq!(order.json["filled_quantity"], 10);
    let answer = cancel(&h.api, id).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let history = h.api.get(&format!("/orders/{id}/events")).await;
    let ends: Vec<_> = history.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .filter(|to| to == "canceled" || to == "filled")
        .collect();
    assert_eq!(ends, ["filled"]);
}
