//! The store's status changes against a real Postgres, checked against the domain's state machine
//! both ways: every move of `Transition` succeeds from exactly the statuses (and leases) the domain
//! names and nowhere else, and the status changes the store makes are exactly those
//! `OrderStatus::can_become` allows. `apply` matches on every `Transition`, so a move added to the
//! domain does not compile here until it has a store method.
//!
//! Needs Postgres on 127.0.0.1:5432 (or `TEST_ADMIN_DATABASE_URL`), as `make test` provides; it
//! creates a throwaway database and drops it at the end.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use order_shared::adapters::postgres::{
    DatabaseConfig, DatabaseCredentials, PostgresExecutionStore, PostgresOrderStore, TlsMode,
    build_pool, run_migrations,
};
use order_shared::domain::{
    ClientId, ExecutionEvent, ExecutionId, ExecutionReport, ExpiryRule, Isin, NewOrder, Order,
    OrderId, OrderStatus, OrderType, Price, Quantity, Shares, Side, Transition,
};
use order_shared::ports::{
    ClaimOutcome, CreateOutcome, ExecutionStore, IngesterLease, OrderLifecycle, OrderStore,
    RetryPlan,
};
use order_shared::usecases::ingest::ingest_batch;
use tokio_postgres::NoTls;

fn admin_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, migrated database of its own, dropped by `drop_database`.
async fn create_database() -> (tokio_postgres::Client, String, PostgresOrderStore) {
    let (admin, connection) = tokio_postgres::connect(&admin_url(), NoTls)
        .await
        .expect("Postgres must run on 127.0.0.1:5432 (scripts/test.sh checks it)");
    tokio::spawn(connection);
    let name = format!("test_lifecycle_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = admin_url();
    let base = base
        .rsplit_once('/')
        .map_or(base.as_str(), |(base, _)| base);
    let config = DatabaseConfig {
        credentials: DatabaseCredentials::Url(format!("{base}/{name}")),
        tls: TlsMode::Disable,
        ca_file: None,
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
    };
    let pool = build_pool(&config, None).await.expect("pool");
    run_migrations(&pool).await.expect("migrations");
    (admin, name, PostgresOrderStore::new(pool))
}

/// Where an order starts before a move: a status, and for a leased status whether its lease runs.
#[derive(Debug, Clone, Copy)]
struct Start {
    status: OrderStatus,
    lease_valid: bool,
}

fn starts() -> Vec<Start> {
    let mut starts = Vec::new();
    for status in OrderStatus::ALL {
        starts.push(Start {
            status,
            lease_valid: false,
        });
        if status.is_leased() {
            starts.push(Start {
                status,
                lease_valid: true,
            });
        }
    }
    starts
}

/// Whether the domain lets `transition` start from `start`.
fn domain_allows(transition: Transition, start: Start) -> bool {
    transition.from().contains(&start.status)
        && !(start.status.is_leased() && transition.waits_for_expired_lease() && start.lease_valid)
}

/// Makes `transition` through its store method: the order after it, or `None` if refused.
async fn apply(store: &PostgresOrderStore, transition: Transition, id: OrderId) -> Option<Order> {
    let lease = Duration::from_secs(60);
    let result = match transition {
        Transition::Claim => match store.claim_for_placement(id, lease).await {
            Ok(ClaimOutcome::Claimed(order)) => Ok(Some(order)),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        },
        Transition::Place => store.record_placed(id, "X-1").await,
        Transition::Reject => store.record_rejected(id, "refused").await,
        Transition::Release => {
            store
                .release_for_retry(
                    id,
                    "timeout",
                    RetryPlan {
                        park_until: None,
                        outcome_unknown: false,
                    },
                )
                .await
        }
        Transition::PlaceByLookup => store.record_placed_by_lookup(id, "X-1").await,
        Transition::Fail => store.mark_failed(id, "retries exhausted").await,
        Transition::Requeue => store.requeue_failed(id).await,
        Transition::Cancel => store.cancel_pending(id).await,
        Transition::Expire => store.expire(id).await,
        Transition::ExpireAfterLookup => store.expire_after_lookup(id).await,
        Transition::RequestCancel => store.request_cancel(id).await,
        Transition::PartiallyFill
        | Transition::Fill
        | Transition::CancelAtExchange
        | Transition::ExpireAtExchange => return apply_report(store, transition, id).await,
    };
    result.unwrap_or_else(|e| panic!("{transition:?}: {e}"))
}

/// Makes an execution report's move the ingester's way: one report of the move's kind for the
/// order (quantity 10, nothing filled before) in a batch of its own. The order after it if its
/// status changed, `None` if the report did not apply or changed no status (it is then kept,
/// waiting).
async fn apply_report(
    store: &PostgresOrderStore,
    transition: Transition,
    id: OrderId,
) -> Option<Order> {
    let executions = PostgresExecutionStore::new(store.pool().clone());
    let lease = IngesterLease {
        holder: "lifecycle-test".into(),
        duration: Duration::from_secs(60),
    };
    assert!(executions.acquire_lease(&lease).await.unwrap());
    let price = Price::parse("12.34").unwrap();
    let (event, cumulative, remaining) = match transition {
        Transition::PartiallyFill => (
            ExecutionEvent::PartialFill {
                quantity: Quantity::new(3).unwrap(),
                price,
            },
            3,
            7,
        ),
        Transition::Fill => (
            ExecutionEvent::Fill {
                quantity: Quantity::new(10).unwrap(),
                price,
            },
            10,
            0,
        ),
        Transition::CancelAtExchange => (
            ExecutionEvent::Canceled {
                quantity: Quantity::new(10).unwrap(),
            },
            0,
            0,
        ),
        _ => (
            ExecutionEvent::Expired {
                quantity: Quantity::new(10).unwrap(),
            },
            0,
            0,
        ),
    };
    let sequence = executions.last_sequence().await.unwrap() + 1;
    let report = ExecutionReport::new(
        sequence,
        ExecutionId::parse(&format!("EXE-{}", uuid::Uuid::new_v4())).unwrap(),
        id,
        "X-1".into(),
        event,
        Shares::new(cumulative).unwrap(),
        Shares::new(remaining).unwrap(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let before = store.find_order(id).await.unwrap().unwrap();
    ingest_batch(&executions, &lease, &[report], sequence, 0)
        .await
        .unwrap_or_else(|e| panic!("{transition:?}: {e}"));
    let after = store.find_order(id).await.unwrap().unwrap();
    (after.status != before.status).then_some(after)
}

async fn new_order(store: &PostgresOrderStore) -> Order {
    let order = NewOrder::new(
        OrderType::Market,
        Side::Buy,
        Isin::parse("US0378331005").unwrap(),
        None,
        Quantity::new(10).unwrap(),
    )
    .unwrap();
    let owner = ClientId::parse("default").unwrap();
    let expires_at = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    match store
        .create_order(&owner, &order, expires_at, None)
        .await
        .unwrap()
    {
        CreateOutcome::Created(order) => order,
        other => panic!("not created: {other:?}"),
    }
}

/// The order's events as (from, to), oldest first.
async fn events(store: &PostgresOrderStore, id: OrderId) -> Vec<(Option<String>, String)> {
    let client = store.pool().get().await.unwrap();
    client
        .query(
            "SELECT from_status, to_status FROM order_events WHERE order_id = $1 ORDER BY id",
            &[&id.as_uuid()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn the_store_makes_exactly_the_moves_of_the_domain() {
    let (admin, name, store) = create_database().await;
    // Drop the database whether the checks pass or not, then report their outcome.
    let outcome = AssertUnwindSafe(check_every_move(&store))
        .catch_unwind()
        .await;
    store.pool().close();
    drop(store);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn check_every_move(store: &PostgresOrderStore) {
    let mut store_changes = BTreeSet::new();

    for transition in Transition::ALL {
        for start in starts() {
            let order = new_order(store).await;
            assert_eq!(order.status, OrderStatus::INITIAL);
            let lease = if start.lease_valid {
                "1 hour"
            } else {
                "-1 second"
            };
            // A move that needs the order's time to have run out gets an expired order; every
            // other one a live order.
            let expiry = match transition.expiry_rule() {
                ExpiryRule::Expired | ExpiryRule::ExpiredAndConfirmed => "-1 second",
                ExpiryRule::Any | ExpiryRule::LiveOrUnconfirmed => "1 hour",
            };
            let client = store.pool().get().await.unwrap();
            client
                .execute(
                    &format!(
                        "UPDATE orders SET status = $2, \
                         lease_expires_at = now() + interval '{lease}', \
                         expires_at = now() + interval '{expiry}' WHERE id = $1"
                    ),
                    &[&order.id.as_uuid(), &start.status.as_str()],
                )
                .await
                .unwrap();
            drop(client);
            let before = events(store, order.id).await;

            let moved = apply(store, transition, order.id).await;
            let after = events(store, order.id).await;
            let now = store.find_order(order.id).await.unwrap().unwrap();
            let case = format!("{transition:?} from {start:?}");
            if domain_allows(transition, start) {
                let moved = moved.unwrap_or_else(|| panic!("{case}: refused by the store"));
                assert_eq!(moved.status, transition.to(), "{case}");
                assert_eq!(now.status, transition.to(), "{case}");
                assert_eq!(
                    after.last(),
                    Some(&(
                        Some(start.status.as_str().to_owned()),
                        transition.to().as_str().to_owned()
                    )),
                    "{case}: audit event"
                );
                assert_eq!(after.len(), before.len() + 1, "{case}");
                if start.status != transition.to() {
                    store_changes.insert((start.status.as_str(), transition.to().as_str()));
                }
            } else {
                assert!(moved.is_none(), "{case}: the store allowed it");
                assert_eq!(now.status, start.status, "{case}");
                assert_eq!(after, before, "{case}: an event without a move");
            }
        }
    }

    let mut domain_changes = BTreeSet::new();
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            if from.can_become(to) {
                domain_changes.insert((from.as_str(), to.as_str()));
            }
        }
    }
    assert_eq!(store_changes, domain_changes);

    // The design's "(new) → pending": the accepted order's first event.
    let order = new_order(store).await;
    assert_eq!(
        events(store, order.id).await,
        vec![(None, OrderStatus::INITIAL.as_str().to_owned())]
    );
}
