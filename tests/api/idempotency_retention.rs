//! Idempotency keys are kept for a retention (24 hours by default): within it the key names its
//! order, after it the key names a new one. The sweeper releases expired keys in bounded
//! batches without touching the orders. The boundary is set by moving a key's `created_at`.

use futures::future::join_all;
use http::StatusCode;
use order_shared::ports::OrderStore;
use system_tests::{LIMIT_ORDER, MARKET_ORDER};
use uuid::Uuid;

use crate::helpers::{Harness, header, id_of};

/// Moves the key's time back to `age` before now (`age` as a Postgres interval).
async fn age_key(h: &Harness, key: &str, age: &str) {
    let moved =
        h.db.client()
            .await
            .execute(
                "UPDATE idempotency_keys SET created_at = now() - $2::text::interval \
                 WHERE idempotency_key = $1",
                &[&key, &age],
            )
            .await
            .unwrap();
    assert_eq!(moved, 1, "key {key}");
}

/// Every column of every order, as text: what "never touches an order" compares. Taken once the
/// api's background writer has marked every order enqueued (it lets marks gather for a moment
/// after the 201), so that the only change left to see is one the test caused.
async fn orders_snapshot(h: &Harness) -> Vec<String> {
    let marks_written = async {
        while h
            .db
            .count("SELECT count(*) FROM orders WHERE enqueued_at IS NULL")
            .await
            > 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), marks_written)
        .await
        .expect("every order marked enqueued within 10 s");
    h.db.client()
        .await
        .query("SELECT o::text FROM orders o ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The keys held now, by name.
async fn held_keys(h: &Harness) -> Vec<String> {
    h.db.client()
        .await
        .query(
            "SELECT idempotency_key FROM idempotency_keys ORDER BY idempotency_key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn within_the_retention_a_key_names_its_order_and_after_it_a_new_one() {
    let h = Harness::start().await;
    let first = h.api.post_order(LIMIT_ORDER, Some("k-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);

    // One second before the 24 hours are over: the same order, or a 422 for another one.
    age_key(&h, "k-1", "23 hours 59 minutes 59 seconds").await;
    let replay = h.api.post_order(LIMIT_ORDER, Some("k-1")).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(id_of(&replay), id_of(&first));
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    let other = h.api.post_order(MARKET_ORDER, Some("k-1")).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Just past them (not yet released by the sweeper): the key names a new order...
    age_key(&h, "k-1", "24 hours 1 millisecond").await;
    let before = orders_snapshot(&h).await;
    let renewed = h.api.post_order(MARKET_ORDER, Some("k-1")).await;
    assert_eq!(renewed.status, StatusCode::CREATED, "{}", renewed.json);
    assert_ne!(id_of(&renewed), id_of(&first));
    assert_eq!(header(&renewed, "idempotent-replayed"), None);
    assert_eq!(h.orders().await, 2);
    // ... which the key now names for the next 24 hours; the first order is untouched.
    let again = h.api.post_order(MARKET_ORDER, Some("k-1")).await;
    assert_eq!(id_of(&again), id_of(&renewed));
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    let after = orders_snapshot(&h).await;
    assert!(after.contains(&before[0]), "the first order is unchanged");
    // Both orders were sent for placement, once each.
    assert_eq!(h.queue.drain().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_an_expired_key_make_exactly_one_new_order() {
    let h = Harness::start().await;
    let first = id_of(&h.api.post_order(LIMIT_ORDER, Some("k-race")).await);
    age_key(&h, "k-race", "24 hours 1 second").await;

    let responses = join_all((0..12).map(|_| h.api.post_order(LIMIT_ORDER, Some("k-race")))).await;

    let ids: Vec<Uuid> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
            id_of(r)
        })
        .collect();
    let new = ids[0];
    assert_ne!(new, first);
    assert!(ids.iter().all(|id| *id == new), "one new order: {ids:?}");
    let fresh = responses
        .iter()
        .filter(|r| header(r, "idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request created it");
    assert_eq!(h.orders().await, 2);
    assert_eq!(
        h.db.count("SELECT count(*) FROM idempotency_keys").await,
        1,
        "the key names only the new order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_releases_expired_keys_oldest_first_in_bounded_batches_without_touching_orders()
{
    let h = Harness::start().await;
    for key in ["old-1", "old-2", "old-3", "young"] {
        let response = h.api.post_order(MARKET_ORDER, Some(key)).await;
        assert_eq!(response.status, StatusCode::CREATED);
    }
    age_key(&h, "old-1", "3 days").await;
    age_key(&h, "old-2", "2 days").await;
    age_key(&h, "old-3", "24 hours 1 second").await;
    age_key(&h, "young", "23 hours 59 minutes").await;
    let before = orders_snapshot(&h).await;

    let first_batch =
        h.db.store
            .release_expired_idempotency_keys(2)
            .await
            .unwrap();
    assert_eq!(first_batch, 2);
    assert_eq!(
        held_keys(&h).await,
        ["old-3", "young"],
        "the two oldest first"
    );
    let second_batch =
        h.db.store
            .release_expired_idempotency_keys(2)
            .await
            .unwrap();
    assert_eq!(second_batch, 1);
    assert_eq!(held_keys(&h).await, ["young"]);
    assert_eq!(
        h.db.store
            .release_expired_idempotency_keys(2)
            .await
            .unwrap(),
        0
    );

    assert_eq!(orders_snapshot(&h).await, before, "no order changed");
    // A released key names a new order; the young one still names its own.
    let renewed = h.api.post_order(MARKET_ORDER, Some("old-1")).await;
    assert_eq!(header(&renewed, "idempotent-replayed"), None);
    let kept = h.api.post_order(MARKET_ORDER, Some("young")).await;
    assert_eq!(header(&kept, "idempotent-replayed"), Some("true"));
    assert_eq!(h.orders().await, 5);
}
