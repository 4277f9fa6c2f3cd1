//! Health, documentation, routing.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;
use system_tests::{TestApi, TestQueue, unreachable_store};

use crate::helpers::Harness;

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
    let cancel = &paths["/orders/{id}"]["delete"];
    for status in ["200", "404", "409"] {
        assert!(
            cancel["responses"].get(status).is_some(),
            "DELETE answers {status}: {cancel}"
        );
    }
    // The request body is one schema per order type (the limit price depends on it).
    assert_eq!(
        response.json["components"]["schemas"]["OrderRequest"]["oneOf"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // Time in force: requested, shown, and the two new final states.
    let schemas = &response.json["components"]["schemas"];
    for schema in ["MarketOrderRequest", "LimitOrderRequest", "OrderView"] {
        assert!(
            schemas[schema]["properties"].get("expires_at").is_some(),
            "{schema}: {}",
            schemas[schema]
        );
    }
    let statuses = schemas["OrderStatus"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("OrderStatus: {}", schemas["OrderStatus"]));
    for status in ["expired", "canceled"] {
        assert!(statuses.contains(&json!(status)), "{status}");
    }
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
