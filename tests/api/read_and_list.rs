//! Reading orders: one by id, and the list in keyset pages, filtered by status.

use std::collections::HashSet;

use http::StatusCode;
use serde_json::{Value, json};
use system_tests::{LIMIT_ORDER, MARKET_ORDER};
use uuid::Uuid;

use crate::helpers::{Harness, assert_rfc3339_utc, error_fields, id_of, page_ids};

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
    assert_eq!(json["outcome_unknown"], false);
    for field in [
        "created_at",
        "expires_at",
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
        "expires_at",
        "outcome_unknown",
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
async fn get_order_says_when_its_outcome_is_being_confirmed() {
    let h = Harness::start().await;
    let id = h.create(MARKET_ORDER).await;
    // As the placer leaves an order whose attempt timed out after sending.
    let note = "outcome unknown, being confirmed with the exchange: timed out after 5s";
    h.db.client()
        .await
        .execute(
            "UPDATE orders SET attempts = 1, outcome_unknown = true, last_error = $2 WHERE id = $1",
            &[&id, &note],
        )
        .await
        .unwrap();

    let open = h.api.get(&format!("/orders/{id}")).await;

    assert_eq!(open.json["status"], "pending");
    assert_eq!(open.json["outcome_unknown"], true);
    assert_eq!(open.json["last_error"], note);

    // Once final, the flag no longer says anything about the order.
    h.db.client()
        .await
        .execute(
            "UPDATE orders SET status = 'placed', exchange_order_id = 'EX-1', placed_at = now() \
             WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let placed = h.api.get(&format!("/orders/{id}")).await;
    assert_eq!(placed.json["status"], "placed");
    assert_eq!(placed.json["outcome_unknown"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_from_before_time_in_force_shows_a_null_expiry() {
    let h = Harness::start().await;
    let id = h.create(LIMIT_ORDER).await;
    // The previous release wrote no expiry.
    h.db.client()
        .await
        .execute("UPDATE orders SET expires_at = NULL WHERE id = $1", &[&id])
        .await
        .unwrap();

    let response = h.api.get(&format!("/orders/{id}")).await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json["expires_at"], Value::Null);
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
            assert!(order["expires_at"].is_string(), "{order}");
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
