//! The sweeper against a real Postgres and a real (moto) SQS queue: orders that were committed
//! but never reached the queue are sent exactly once, even with sweepers racing, and nothing else
//! is ever sent. Each test gets its own database and queue.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use system_tests::order_shared::handlers::sweeper::SweepSettings;
use system_tests::order_shared::handlers::sweeper::{SweepReport, sweep_once};
use system_tests::{
    LIMIT_ORDER, MARKET_ORDER, TestApi, TestDatabase, TestQueue, sweep_now, unreachable_queue,
    unreachable_store,
};
use uuid::Uuid;

/// Accepts `count` orders while the queue is unreachable: committed, `pending`, never marked
/// enqueued — what the sweeper exists for. Returns their ids in creation order.
async fn stranded_orders(db: &TestDatabase, count: usize) -> Vec<Uuid> {
    let api = TestApi::new(
        Arc::new(db.store.clone()),
        Arc::new(unreachable_queue().await),
    )
    .await;
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let body = if i % 2 == 0 {
            LIMIT_ORDER
        } else {
            MARKET_ORDER
        };
        let response = api.post_order(body, None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
        ids.push(Uuid::parse_str(response.json["id"].as_str().expect("id")).expect("UUID"));
    }
    assert_eq!(unenqueued(db).await, count as i64);
    ids
}

async fn unenqueued(db: &TestDatabase) -> i64 {
    db.count("SELECT count(*) FROM orders WHERE enqueued_at IS NULL")
        .await
}

/// Whether every order is marked enqueued within 10 s: the api writes the mark in the
/// background after its response (it only saves the sweeper work), so reading it straight after
/// a 201 would race it.
async fn all_marked_enqueued(db: &TestDatabase) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if unenqueued(db).await == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sum(reports: &[&SweepReport]) -> SweepReport {
    reports
        .iter()
        .fold(SweepReport::default(), |total, r| SweepReport {
            claimed: total.claimed + r.claimed,
            enqueued: total.enqueued + r.enqueued,
            failed: total.failed + r.failed,
            expired: total.expired + r.expired,
        })
}

/// How many messages each order id got.
fn messages_per_order(messages: &[Value]) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for message in messages {
        let id = Uuid::parse_str(message["order_id"].as_str().expect("order_id")).expect("UUID");
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stranded_order_is_enqueued_exactly_once_by_racing_sweepers() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 1).await;
    let sqs = queue.adapter();
    let settings = sweep_now();

    let (a, b) = tokio::join!(
        sweep_once(&db.store, &sqs, &settings),
        sweep_once(&db.store, &sqs, &settings)
    );
    let (a, b) = (a.expect("sweep a"), b.expect("sweep b"));

    assert_eq!(
        sum(&[&a, &b]),
        SweepReport {
            claimed: 1,
            enqueued: 1,
            failed: 0,
            expired: 0,
        },
        "{a:?} {b:?}"
    );
    assert_eq!(unenqueued(&db).await, 0, "enqueued_at is set");
    let status = db
        .client()
        .await
        .query_one("SELECT status FROM orders WHERE id = $1", &[&ids[0]])
        .await
        .unwrap()
        .get::<_, String>(0);
    assert_eq!(
        status, "pending",
        "the sweeper only sends, the placer places"
    );

    let third = sweep_once(&db.store, &sqs, &settings).await.expect("sweep");
    assert_eq!(third, SweepReport::default(), "nothing left to claim");

    let messages = queue.drain().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message["order_id"], ids[0].to_string());
    assert_eq!(message["version"], 1);
    assert_eq!(message["type"], "limit");
    assert_eq!(message["side"], "buy");
    assert_eq!(message["instrument"], "US0378331005");
    assert_eq!(message["limit_price"], "120.50");
    assert_eq!(message["quantity"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_stranded_orders_are_each_enqueued_once_by_racing_sweepers() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 30).await;
    let sqs = queue.adapter();
    let settings = sweep_now();

    let (a, b) = tokio::join!(
        sweep_once(&db.store, &sqs, &settings),
        sweep_once(&db.store, &sqs, &settings)
    );
    let (a, b) = (a.expect("sweep a"), b.expect("sweep b"));

    assert_eq!(
        sum(&[&a, &b]),
        SweepReport {
            claimed: 30,
            enqueued: 30,
            failed: 0,
            expired: 0,
        },
        "{a:?} {b:?}"
    );
    assert_eq!(unenqueued(&db).await, 0);
    let messages = queue.drain().await;
    assert_eq!(messages.len(), 30, "one message per order");
    let counts = messages_per_order(&messages);
    assert_eq!(
        counts.keys().copied().collect::<HashSet<_>>(),
        ids.iter().copied().collect::<HashSet<_>>()
    );
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");

    let again = sweep_once(&db.store, &sqs, &settings).await.expect("sweep");
    assert_eq!(again, SweepReport::default());
    assert_eq!(queue.drain().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_younger_than_the_grace_period_are_left_alone() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 1).await;
    let sqs = queue.adapter();
    let patient = SweepSettings {
        grace: Duration::from_secs(60),
        ..sweep_now()
    };

    let report = sweep_once(&db.store, &sqs, &patient).await.expect("sweep");

    assert_eq!(
        report,
        SweepReport::default(),
        "its request may still send it"
    );
    assert_eq!(unenqueued(&db).await, 1);
    assert_eq!(queue.drain().await, Vec::<Value>::new());

    // Once the order is older than the grace period, the same sweeper sends it.
    db.client()
        .await
        .execute(
            "UPDATE orders SET created_at = now() - interval '61 seconds' WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    let report = sweep_once(&db.store, &sqs, &patient).await.expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            claimed: 1,
            enqueued: 1,
            failed: 0,
            expired: 0,
        }
    );
    let messages = queue.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["order_id"], ids[0].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_enqueued_by_the_api_are_never_swept() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let api = TestApi::new(Arc::new(db.store.clone()), Arc::new(queue.adapter())).await;
    for body in [LIMIT_ORDER, MARKET_ORDER, LIMIT_ORDER] {
        let response = api.post_order(body, None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
    }
    assert!(all_marked_enqueued(&db).await, "the api marked them");
    assert_eq!(queue.drain().await.len(), 3);
    // Old enough that only the enqueued mark keeps them from being swept.
    db.client()
        .await
        .batch_execute("UPDATE orders SET created_at = now() - interval '1 hour'")
        .await
        .unwrap();

    let report = sweep_once(&db.store, &queue.adapter(), &sweep_now())
        .await
        .expect("sweep");

    assert_eq!(report, SweepReport::default());
    assert_eq!(queue.drain().await, Vec::<Value>::new(), "no duplicate");
}

/// The api's enqueued mark lands up to 50 ms after its send. A placer that takes the message in
/// between while the exchange's breaker is open parks the order (due at once: the breaker's next
/// probe) and drops the message. The late mark must not land then: before, it did (a park due
/// now looked like none), and the order stayed `pending`, marked, with no message and no sweeper
/// to send one — the chaos soak's "accepted but not final" order, seen twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_mark_does_not_hide_an_order_a_placer_parked_meanwhile() {
    use system_tests::order_shared::domain::OrderId;
    use system_tests::order_shared::ports::{OrderLifecycle, OrderStore, SentMessage};

    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 2).await;
    let (parked, untouched) = (OrderId::from(ids[0]), OrderId::from(ids[1]));
    let mut sent = Vec::new();
    for id in [parked, untouched] {
        let order = db.store.find_order(id).await.unwrap().expect("stored");
        sent.push(SentMessage::of(&order));
    }
    // The placer got the message first, found the breaker open and parked the order until now.
    let now: time::OffsetDateTime = db
        .client()
        .await
        .query_one("SELECT now()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(db.store.defer(parked, now).await.unwrap(), "parked");
    db.store.mark_all_enqueued(&sent).await.unwrap();

    let marked = |id: OrderId| {
        let db = &db;
        async move {
            db.count(&format!(
                "SELECT count(*) FROM orders WHERE id = '{id}' AND enqueued_at IS NOT NULL"
            ))
            .await
                == 1
        }
    };
    assert!(!marked(parked).await, "the parked order keeps no mark");
    assert!(marked(untouched).await, "the other one is marked");
    let report = sweep_once(&db.store, &queue.adapter(), &sweep_now())
        .await
        .expect("sweep");
    assert_eq!(report.enqueued, 1);
    let messages = queue.drain().await;
    assert_eq!(
        messages_per_order(&messages),
        HashMap::from([(ids[0], 1)]),
        "the sweeper sends the parked order again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_pending_orders_are_swept() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 4).await;
    // Three of them moved on without the mark (e.g. an admin or an older version did it).
    db.client()
        .await
        .execute(
            "UPDATE orders SET status = CASE id WHEN $1 THEN 'placed' WHEN $2 THEN 'failed' \
                                                ELSE 'rejected' END \
             WHERE id = ANY($3)",
            &[&ids[0], &ids[1], &ids[..3].to_vec()],
        )
        .await
        .unwrap();

    let report = sweep_once(&db.store, &queue.adapter(), &sweep_now())
        .await
        .expect("sweep");

    assert_eq!(
        report,
        SweepReport {
            claimed: 1,
            enqueued: 1,
            failed: 0,
            expired: 0,
        }
    );
    let messages = queue.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["order_id"], ids[3].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_sends_are_retried_once_the_claim_expires() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 3).await;
    let short_claim = SweepSettings {
        claim_for: Duration::from_secs(1),
        ..sweep_now()
    };

    let down = unreachable_queue().await;
    let report = sweep_once(&db.store, &down, &short_claim)
        .await
        .expect("a queue outage is reported per order, not as an error");

    assert_eq!(
        report,
        SweepReport {
            claimed: 3,
            enqueued: 0,
            failed: 3,
            expired: 0,
        }
    );
    assert_eq!(unenqueued(&db).await, 3, "enqueued_at stays NULL");

    // While the claim holds, no other sweeper takes the orders.
    let sqs = queue.adapter();
    let during_claim = sweep_once(&db.store, &sqs, &short_claim)
        .await
        .expect("sweep");
    assert_eq!(during_claim, SweepReport::default());
    assert_eq!(queue.drain().await, Vec::<Value>::new());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let retried = sweep_once(&db.store, &sqs, &short_claim)
        .await
        .expect("sweep");

    assert_eq!(
        retried,
        SweepReport {
            claimed: 3,
            enqueued: 3,
            failed: 0,
            expired: 0,
        }
    );
    assert_eq!(unenqueued(&db).await, 0);
    let counts = messages_per_order(&queue.drain().await);
    assert_eq!(
        counts,
        ids.iter().map(|&id| (id, 1)).collect::<HashMap<_, _>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sweep_claims_at_most_a_batch_oldest_first() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 5).await;
    let sqs = queue.adapter();
    let small = SweepSettings {
        batch_size: 2,
        ..sweep_now()
    };

    let mut sent = Vec::new();
    for expected in [2, 2, 1, 0] {
        let report = sweep_once(&db.store, &sqs, &small).await.expect("sweep");
        assert_eq!(
            report,
            SweepReport {
                claimed: expected,
                enqueued: expected,
                failed: 0,
                expired: 0,
            }
        );
        let mut batch: Vec<Uuid> = messages_per_order(&queue.drain().await)
            .into_keys()
            .collect();
        batch.sort();
        sent.push(batch);
    }

    assert_eq!(
        sent,
        [
            ids[0..2].to_vec(),
            ids[2..4].to_vec(),
            ids[4..5].to_vec(),
            vec![]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_is_a_sweep_error_and_sends_nothing() {
    let queue = TestQueue::create().await;
    let store = unreachable_store().await;

    let result = sweep_once(&store, &queue.adapter(), &sweep_now()).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(queue.drain().await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parked_orders_are_sent_when_due_and_expired_ones_end_without_a_message() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let ids = stranded_orders(&db, 4).await;
    let client = db.client().await;
    // 0: parked and due; 1: parked for an hour; 2: expired while waiting; 3: expired, but its
    // last attempt's outcome is unknown (it must be looked up, so it is sent, not expired).
    client
        .batch_execute(&format!(
            "UPDATE orders SET next_attempt_at = now() - interval '1 second' WHERE id = '{}';
             UPDATE orders SET next_attempt_at = now() + interval '1 hour' WHERE id = '{}';
             UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = '{}';
             UPDATE orders SET expires_at = now() - interval '1 second', outcome_unknown = true
               WHERE id = '{}';",
            ids[0], ids[1], ids[2], ids[3]
        ))
        .await
        .expect("park and expire");

    let report = sweep_once(&db.store, &queue.adapter(), &sweep_now())
        .await
        .expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            claimed: 2,
            enqueued: 2,
            failed: 0,
            expired: 1,
        }
    );
    let sent: HashSet<Uuid> = messages_per_order(&queue.drain().await)
        .into_keys()
        .collect();
    assert_eq!(sent, HashSet::from([ids[0], ids[3]]));
    let status = |id: Uuid| {
        let client = &client;
        async move {
            client
                .query_one("SELECT status FROM orders WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(status(ids[1]).await, "pending", "not due yet");
    assert_eq!(status(ids[2]).await, "expired");
    assert_eq!(status(ids[3]).await, "pending", "never expired unconfirmed");
    let events = db
        .count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' AND to_status = 'expired'",
            ids[2]
        ))
        .await;
    assert_eq!(events, 1, "the expiry is in the audit trail");
    let incident = client
        .query_one(
            "SELECT kind, order_count, first_order_ids FROM alert_incidents",
            &[],
        )
        .await
        .expect("one incident");
    assert_eq!(incident.get::<_, String>(0), "expired");
    assert_eq!(incident.get::<_, i32>(1), 1);
    assert_eq!(incident.get::<_, Vec<Uuid>>(2), vec![ids[2]]);
}

/// A `POST` whose connection was lost between its admission and its insert leaves a token row
/// behind; the sweeper forgets those after a minute and leaves live ones alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_admissions_are_forgotten_and_live_ones_kept() {
    let db = TestDatabase::create().await;
    let queue = TestQueue::create().await;
    let (abandoned, live) = (Uuid::now_v7(), Uuid::now_v7());
    db.client()
        .await
        .execute(
            "INSERT INTO admission_tokens (order_id, client_id, created_at) \
             VALUES ($1, 'test-client', now() - interval '2 minutes'), ($2, 'test-client', now())",
            &[&abandoned, &live],
        )
        .await
        .expect("tokens");

    sweep_once(&db.store, &queue.adapter(), &sweep_now())
        .await
        .expect("sweep");

    let left = db
        .client()
        .await
        .query("SELECT order_id FROM admission_tokens", &[])
        .await
        .expect("tokens left");
    let left: Vec<Uuid> = left.iter().map(|row| row.get(0)).collect();
    assert_eq!(left, [live]);
}
