//! The ingester against a real Postgres and the simulated exchange's WebSocket feed: every
//! report stored once and applied once, in sequence, whatever the feed does (duplicates under a
//! new sequence, messages delivered twice, dropped connections) and whatever happens to the
//! ingester (its task killed between batches or in the middle of one, a second ingester beside
//! it), and reports that come before their order is placed (or for an order not stored) kept and
//! applied once they can be. At the end of each test every order's filled quantity equals the
//! exchange's count (`/feed/stats`).
//!
//! Needs Postgres on 127.0.0.1:5432 (or `TEST_ADMIN_DATABASE_URL`); the functions' pools go
//! through PgBouncer with `TEST_DATABASE_VIA=pgbouncer`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use exchange_sim::{FeedStats, LoadRequest, SimHandle, SimSettings};
use order_shared::adapters::feed_socket::{FeedSocket, FeedSocketConfig};
use order_shared::adapters::postgres::PostgresExecutionStore;
use order_shared::domain::{
    ExecutionEvent, ExecutionId, ExecutionReport, OrderId, Price, Quantity, Shares,
};
use order_shared::handlers::ingester::{IngesterSettings, run_ingester};
use order_shared::ports::{ExecutionStore, IngestError, IngesterLease, OrderLifecycle, OrderStore};
use order_shared::usecases::ingest::ingest_batch;
use system_tests::TestDatabase;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);

struct Harness {
    db: TestDatabase,
    sim: SimHandle,
    store: PostgresExecutionStore,
}

impl Harness {
    async fn start(settings: SimSettings) -> Self {
        let db = TestDatabase::create().await;
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sim = exchange_sim::spawn(listen, settings)
            .await
            .expect("simulator");
        let store = PostgresExecutionStore::new(db.store.pool().clone());
        Self { db, sim, store }
    }

    /// Orders of `quantity` shares stored in `status` (as if the placer had got that far).
    async fn orders(&self, count: usize, quantity: i64, status: &str) -> Vec<Uuid> {
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
        self.insert_orders(&ids, quantity, status).await;
        ids
    }

    async fn insert_orders(&self, ids: &[Uuid], quantity: i64, status: &str) {
        self.db
            .client()
            .await
            .execute(
                "INSERT INTO orders (id, order_type, side, instrument, quantity, status, \
                        exchange_order_id, placed_at, request_fingerprint, expires_at) \
                 SELECT id, 'market', 'buy', 'US0378331005', $2, $3, \
                        CASE WHEN $3 = 'placed' THEN 'EX-' || id END, \
                        CASE WHEN $3 = 'placed' THEN now() END, 'test', \
                        now() + interval '1 hour' \
                 FROM unnest($1::uuid[]) AS id",
                &[&ids, &quantity, &status],
            )
            .await
            .expect("insert orders");
    }

    /// The load mode over `ids`: `fills` one-share reports each, interleaved, at `rate` per
    /// second (0: as fast as it goes).
    fn load(&self, ids: &[Uuid], fills: u32, rate: u64) {
        self.sim
            .start_load(LoadRequest {
                rate,
                reports: Some(ids.len() as u64 * u64::from(fills)),
                fills_per_order: fills,
                concurrent_orders: ids.len() as u32,
                client_order_ids: ids.to_vec(),
                ..LoadRequest::default()
            })
            .expect("load mode");
    }

    fn ingester(&self, holder: &str) -> Ingester {
        let feed = FeedSocket::new(FeedSocketConfig {
            url: self.sim.feed_url(),
            api_key: None,
            connect_timeout: Duration::from_secs(2),
            silence_timeout: Duration::from_secs(30),
        });
        let store = self.store.clone();
        let settings = settings(holder);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run_ingester(&feed, &store, &settings, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ingester { task, stop }
    }

    async fn cursor(&self) -> u64 {
        self.db
            .count("SELECT last_sequence FROM execution_feed_cursor")
            .await as u64
    }

    async fn lease_holder(&self) -> Option<String> {
        self.db
            .client()
            .await
            .query_one(
                "SELECT holder FROM ingester_leases WHERE expires_at > now()",
                &[],
            )
            .await
            .ok()
            .and_then(|row| row.get(0))
    }

    /// Waits until the load run is over and the stored cursor has reached the feed's last
    /// sequence, and `waiting` reports wait.
    async fn caught_up(&self, waiting: i64) -> FeedStats {
        let start = Instant::now();
        loop {
            let stats = self.sim.feed_stats();
            let cursor = self.cursor().await;
            let now_waiting = self
                .db
                .count("SELECT count(*) FROM executions WHERE applied_at IS NULL")
                .await;
            if !self.sim.load().running && cursor == stats.last_sequence && now_waiting == waiting {
                return stats;
            }
            assert!(
                start.elapsed() < WAIT,
                "not caught up: cursor {cursor} of {}, {now_waiting} waiting, load {:?}",
                stats.last_sequence,
                self.sim.load()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The invariants at the end: every order's fill state equals the exchange's, every
    /// execution is stored once and applied once, and each order's audit trail has its fill
    /// moves once.
    async fn assert_matches_the_exchange(&self, ids: &[Uuid], stats: &FeedStats) {
        let client = self.db.client().await;
        let rows = client
            .query(
                "SELECT id, status, quantity, filled_quantity, filled_notional, \
                        average_fill_price::text \
                 FROM orders WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), ids.len());
        let mut total = 0;
        for row in &rows {
            let id: Uuid = row.get(0);
            let status: String = row.get(1);
            let quantity: i64 = row.get(2);
            let filled: i64 = row.get(3);
            let exchange = &stats.orders[&id.to_string()];
            assert_eq!(filled, exchange.filled_quantity, "{id}: filled quantity");
            total += filled;
            let expected = if filled == quantity {
                "filled"
            } else if filled > 0 {
                "partially_filled"
            } else {
                "placed"
            };
            assert_eq!(status, expected, "{id}");
            let average: Option<String> = row.get(5);
            assert_eq!(average.is_some(), filled > 0, "{id}");
        }
        let ours: i64 = stats
            .orders
            .iter()
            .filter(|(id, _)| ids.iter().any(|ours| ours.to_string() == **id))
            .map(|(_, o)| o.filled_quantity)
            .sum();
        assert_eq!(total, ours);
        // Stored once, applied once: one row per execution the exchange published (its
        // injected duplicates are the same executions), each applied, and the fills' shares per
        // order add up to the order's filled quantity.
        let published = stats.reports_by_kind.partial_fill
            + stats.reports_by_kind.fill
            + stats.reports_by_kind.canceled
            + stats.reports_by_kind.expired
            + stats.reports_by_kind.cancel_refused;
        let stored = client
            .query_one(
                "SELECT count(*), count(applied_at) FROM executions WHERE order_id = ANY($1)",
                &[&ids],
            )
            .await
            .unwrap();
        assert_eq!(
            stored.get::<_, i64>(0) as u64,
            published,
            "stored once each"
        );
        assert_eq!(
            stored.get::<_, i64>(1) as u64,
            published,
            "applied once each"
        );
        let mismatched = client
            .query_one(
                "SELECT count(*) FROM orders o WHERE o.id = ANY($1) AND o.filled_quantity <> \
                   (SELECT COALESCE(sum(x.quantity), 0) FROM executions x \
                    WHERE x.order_id = o.id AND x.kind IN ('partial_fill', 'fill'))",
                &[&ids],
            )
            .await
            .unwrap();
        assert_eq!(mismatched.get::<_, i64>(0), 0);
        // The audit trail: each fill move once per order.
        let events = client
            .query(
                "SELECT order_id, to_status, count(*) FROM order_events \
                 WHERE order_id = ANY($1) GROUP BY order_id, to_status",
                &[&ids],
            )
            .await
            .unwrap();
        let mut per_order: BTreeMap<(Uuid, String), i64> = BTreeMap::new();
        for row in events {
            per_order.insert((row.get(0), row.get(1)), row.get(2));
        }
        for ((id, to), count) in per_order {
            assert_eq!(count, 1, "{id}: {count} events to {to}");
        }
    }

    async fn drop_database(self) {
        self.sim.shutdown().await;
        self.store.pool().close();
        let name = self.db.name.clone();
        self.db.store.pool().close();
        drop(self.db);
        let (admin, connection) =
            tokio_postgres::connect(&system_tests::admin_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await;
    }
}

struct Ingester {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Ingester {
    /// A clean stop: it gives the lease up.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }

    /// As a SIGKILL would: the task is dropped wherever it is (a statement in flight may or may
    /// not commit), and the lease is left to expire.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn settings(holder: &str) -> IngesterSettings {
    IngesterSettings {
        lease: Duration::from_secs(1),
        batch_size: 200,
        linger: Duration::from_millis(5),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(300),
        stranded_every: Duration::from_millis(200),
        ..IngesterSettings::new(holder)
    }
}

fn quiet_exchange() -> SimSettings {
    SimSettings {
        latency: Duration::ZERO,
        failure_rate: 0.0,
        ..SimSettings::default()
    }
}

#[tokio::test]
async fn duplicates_and_redeliveries_are_applied_once() {
    let h = Harness::start(SimSettings {
        feed_duplicate_rate: 0.1,
        feed_redeliver_rate: 0.1,
        ..quiet_exchange()
    })
    .await;
    let ids = h.orders(100, 20, "placed").await;
    let ingester = h.ingester("only");
    h.load(&ids, 20, 4000);
    let stats = h.caught_up(0).await;
    assert!(stats.duplicates_published > 0 && stats.messages_redelivered > 0);
    h.assert_matches_the_exchange(&ids, &stats).await;
    ingester.stop().await;
    assert_eq!(
        h.lease_holder().await,
        None,
        "a clean stop gives the lease up"
    );
    h.drop_database().await;
}

#[tokio::test]
async fn a_dropped_socket_resumes_without_a_gap() {
    let h = Harness::start(SimSettings {
        feed_drop_rate: 0.002,
        ..quiet_exchange()
    })
    .await;
    let ids = h.orders(100, 30, "placed").await;
    let ingester = h.ingester("only");
    h.load(&ids, 30, 3000);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        h.sim.drop_feed_connections();
    }
    let stats = h.caught_up(0).await;
    assert!(
        stats.connections_dropped >= 5,
        "{}",
        stats.connections_dropped
    );
    assert!(stats.connections_opened > 5);
    h.assert_matches_the_exchange(&ids, &stats).await;
    ingester.stop().await;
    h.drop_database().await;
}

#[tokio::test]
async fn an_ingester_killed_mid_batch_resumes_with_no_loss_and_no_double_application() {
    let h = Harness::start(SimSettings {
        feed_duplicate_rate: 0.02,
        ..quiet_exchange()
    })
    .await;
    let ids = h.orders(200, 40, "placed").await;
    h.load(&ids, 40, 4000);
    // Killed at random moments — between batches, or while a batch's statement is in flight —
    // and started again under another name, which waits for the dead one's lease to expire.
    for round in 0..6 {
        let ingester = h.ingester(&format!("round-{round}"));
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1100..1600))).await;
        ingester.kill().await;
    }
    let last = h.ingester("last");
    let stats = h.caught_up(0).await;
    h.assert_matches_the_exchange(&ids, &stats).await;
    last.stop().await;
    h.drop_database().await;
}

#[tokio::test]
async fn reports_before_the_order_is_placed_or_stored_wait_and_are_applied_once_it_is() {
    let h = Harness::start(quiet_exchange()).await;
    // A market order filled at the exchange before the placer recorded it placed, and one the
    // database does not have yet.
    let placing = h.orders(1, 5, "placing").await;
    let unknown = vec![Uuid::now_v7()];
    let ingester = h.ingester("only");
    h.load(&[placing[0], unknown[0]], 5, 0);
    h.caught_up(10).await;
    let client = h.db.client().await;
    let waiting: Vec<String> = client
        .query(
            "SELECT waiting_reason FROM executions WHERE applied_at IS NULL ORDER BY sequence",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(waiting.len(), 10);
    assert!(
        waiting.iter().any(|r| r.contains("not yet placed")),
        "{waiting:?}"
    );
    assert!(waiting.iter().any(|r| r.contains("unknown")), "{waiting:?}");
    assert_eq!(
        h.db.count("SELECT filled_quantity FROM orders").await,
        0,
        "nothing applied to an order that is not placed"
    );
    // The sweeper's count for an admin: only reports kept longer than the age are stuck.
    let age = Duration::from_secs(60);
    assert_eq!(h.db.store.stuck_execution_count(age).await.unwrap(), 0);
    client
        .execute(
            "UPDATE executions SET created_at = now() - interval '2 minutes' \
             WHERE order_id = $1",
            &[&unknown[0]],
        )
        .await
        .unwrap();
    assert_eq!(h.db.store.stuck_execution_count(age).await.unwrap(), 5);

    // The placer records it placed; the unknown one turns up placed.
    let order = OrderId::from(placing[0]);
    h.db.store
        .record_placed(order, "EX-1")
        .await
        .unwrap()
        .expect("placing → placed");
    h.insert_orders(&unknown, 5, "placed").await;
    let stats = h.caught_up(0).await;
    let both = [placing[0], unknown[0]];
    h.assert_matches_the_exchange(&both, &stats).await;
    assert_eq!(
        h.db.store.stuck_execution_count(age).await.unwrap(),
        0,
        "applied, so no longer stuck"
    );
    ingester.stop().await;
    h.drop_database().await;
}

#[tokio::test]
async fn of_two_ingesters_one_writes_and_the_other_takes_over_when_its_lease_expires() {
    let h = Harness::start(quiet_exchange()).await;
    let ids = h.orders(100, 20, "placed").await;
    let first = h.ingester("first");
    let start = Instant::now();
    while h.lease_holder().await.as_deref() != Some("first") {
        assert!(start.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = h.ingester("second");
    // 4 s of reports; the first is killed after one.
    h.load(&ids, 20, 500);
    // While the first lives, it alone holds the lease.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.lease_holder().await.as_deref(), Some("first"));
    }
    first.kill().await;
    let killed_at = h.cursor().await;
    while h.lease_holder().await.as_deref() != Some("second") {
        assert!(start.elapsed() < WAIT, "the second never took over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = h.caught_up(0).await;
    assert!(
        stats.last_sequence > killed_at,
        "the second wrote what came after the kill"
    );
    h.assert_matches_the_exchange(&ids, &stats).await;
    second.stop().await;
    h.drop_database().await;
}

#[tokio::test]
async fn a_batch_without_the_lease_writes_nothing() {
    let h = Harness::start(quiet_exchange()).await;
    let ids = h.orders(1, 4, "placed").await;
    let holder = IngesterLease {
        holder: "holder".into(),
        duration: Duration::from_secs(30),
    };
    let other = IngesterLease {
        holder: "other".into(),
        duration: Duration::from_secs(30),
    };
    assert!(h.store.acquire_lease(&holder).await.unwrap());
    assert!(!h.store.acquire_lease(&other).await.unwrap(), "held");
    let report = ExecutionReport::new(
        1,
        ExecutionId::parse("EXE-lease").unwrap(),
        OrderId::from(ids[0]),
        "EX-1".into(),
        ExecutionEvent::PartialFill {
            quantity: Quantity::new(1).unwrap(),
            price: Price::parse("1.50").unwrap(),
        },
        Shares::new(1).unwrap(),
        Shares::new(3).unwrap(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let refused = ingest_batch(&h.store, &other, std::slice::from_ref(&report), 1, 0).await;
    assert!(
        matches!(refused, Err(IngestError::LeaseLost)),
        "{refused:?}"
    );
    assert_eq!(h.db.count("SELECT count(*) FROM executions").await, 0);
    assert_eq!(h.cursor().await, 0);
    // The holder writes it, once: the same report again is a duplicate.
    for _ in 0..2 {
        ingest_batch(&h.store, &holder, std::slice::from_ref(&report), 1, 0)
            .await
            .unwrap();
    }
    assert_eq!(h.db.count("SELECT count(*) FROM executions").await, 1);
    assert_eq!(h.db.count("SELECT filled_quantity FROM orders").await, 1);
    assert_eq!(h.cursor().await, 1);
    h.drop_database().await;
}
