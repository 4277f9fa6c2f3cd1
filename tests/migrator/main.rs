//! The migrator custom resource against a real, initially empty Postgres database: it applies
//! `migrations/` on Create and Update, leaves the schema alone on Delete (and on request types it
//! does not know), reports a failure as FAILED, and in every case answers CloudFormation with a
//! PUT to the event's ResponseURL. The ResponseURL of the event fixtures in
//! `tests/fixtures/custom-resource/` is pointed at a local HTTP server that records the PUT.
//! `checksums` guards the migrations themselves (no database): a committed one is never edited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use deadpool_postgres::Pool;
use order_shared::adapters::postgres::{
    PostgresOrderStore, build_pool, ensure_application_role, run_migrations, run_migrations_up_to,
};
use order_shared::handlers::migrator::{
    CustomResourceRequest, handle_custom_resource, send_response,
};
use order_shared::ports::BoxError;
use serde_json::Value;
use system_tests::{LIMIT_ORDER, TestApi, TestQueue, admin_url, database_config};
use uuid::Uuid;

mod checksums;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/custom-resource");
const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");

// ---------------------------------------------------------------------------------------------
// A stand-in for CloudFormation's pre-signed S3 response URL.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RecordedRequest {
    method: Method,
    /// Path and query, as the migrator sent them.
    target: String,
    /// `None` when the header was absent.
    content_type: Option<String>,
    body: Vec<u8>,
}

impl RecordedRequest {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Clone, Default)]
struct Recorder {
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let target = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("<not UTF-8>").to_owned());
    recorder.requests.lock().unwrap().push(RecordedRequest {
        method,
        target: target.clone(),
        content_type,
        body: body.to_vec(),
    });
    // Like an expired pre-signed URL, for the test of a refused answer.
    if target.starts_with("/expired") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    }
}

struct ResponseServer {
    base: String,
    recorder: Recorder,
}

impl ResponseServer {
    async fn start() -> Self {
        let recorder = Recorder::default();
        let app = Router::new().fallback(record).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the response server");
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("response server");
        });
        Self { base, recorder }
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.requests.lock().unwrap().clone()
    }

    /// The single answer the migrator sent.
    fn only_answer(&self) -> RecordedRequest {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "exactly one answer: {requests:#?}");
        requests.into_iter().next().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures and the migrator's invocation, as the Lambda main does it.
// ---------------------------------------------------------------------------------------------

/// Loads an event fixture, points its ResponseURL at `server` (keeping the pre-signed URL's
/// path and query, which must reach the server unchanged), and returns the raw event with the
/// parsed request.
fn event(
    fixture: &str,
    server: &ResponseServer,
    path_prefix: &str,
) -> (Value, CustomResourceRequest) {
    let path = format!("{FIXTURES}/{fixture}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut raw: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let original = raw["ResponseURL"].as_str().expect("ResponseURL").to_owned();
    let after_host = original
        .split_once("amazonaws.com")
        .expect("a pre-signed S3 URL")
        .1;
    raw["ResponseURL"] = Value::String(format!("{}{path_prefix}{after_host}", server.base));
    let request: CustomResourceRequest =
        serde_json::from_value(raw.clone()).expect("the migrator parses the CloudFormation event");
    (raw, request)
}

/// Handles one event like the migrator Lambda: runs the handler with `migrate`, then PUTs the
/// response. Returns how often `migrate` ran and the outcome of sending.
async fn invoke(request: &CustomResourceRequest, pool: &Pool) -> (usize, Result<(), BoxError>) {
    let runs = AtomicUsize::new(0);
    let response = handle_custom_resource(request, || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok(run_migrations(pool).await?)
    })
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sent = send_response(&http, &request.response_url, &response).await;
    (runs.load(Ordering::SeqCst), sent)
}

/// Checks the answer's envelope: a PUT to the exact ResponseURL, signed for an empty content
/// type, with the request's identifiers echoed and a body small enough for CloudFormation.
fn assert_answer(answer: &RecordedRequest, raw: &Value, expected_status: &str) -> Value {
    assert_eq!(answer.method, Method::PUT);
    // The pre-signed URL's path and query (with its signature) reach the server unchanged.
    let url = raw["ResponseURL"].as_str().unwrap();
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    let expected_target = &after_scheme[after_scheme.find('/').unwrap()..];
    assert_eq!(
        answer.target, expected_target,
        "answer went elsewhere than {url}"
    );
    assert!(
        answer.target.contains("X-Amz-Signature="),
        "{}",
        answer.target
    );
    // The pre-signed URL is signed without a content type: any other value breaks the signature.
    assert!(
        answer.content_type.as_deref().unwrap_or("").is_empty(),
        "content-type must be empty, got {:?}",
        answer.content_type
    );
    assert!(
        answer.body.len() <= 4096,
        "CloudFormation accepts at most 4 KiB"
    );
    let body = answer.json();
    assert_eq!(body["Status"], expected_status, "{body}");
    for field in ["RequestId", "StackId", "LogicalResourceId"] {
        assert_eq!(body[field], raw[field], "{field} echoed");
    }
    let physical = body["PhysicalResourceId"].as_str().unwrap_or_default();
    assert!(
        !physical.is_empty(),
        "PhysicalResourceId is required: {body}"
    );
    body
}

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

/// A fresh database with no schema at all (unlike `TestDatabase`, which is migrated).
struct EmptyDatabase {
    url: String,
    pool: Pool,
}

impl EmptyDatabase {
    async fn create() -> Self {
        let name = format!("test_migrator_{}", Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE {name}")).await;
        let admin_url = admin_url();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
        let url = format!("{base}/{name}");
        let pool = build_pool(&database_config(url.clone()), None)
            .await
            .expect("pool");
        Self { url, pool }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(connection);
        client
    }

    /// The public tables, sorted.
    async fn tables(&self) -> Vec<String> {
        self.client()
            .await
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .await
            .expect("list tables")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    async fn applied_migrations(&self) -> i64 {
        self.client()
            .await
            .query_one("SELECT count(*) FROM refinery_schema_history", &[])
            .await
            .expect("refinery's history table")
            .get(0)
    }

    /// Closes the pool. The database is left behind like `TestDatabase`'s: `DROP DATABASE`
    /// forces a checkpoint, which takes seconds to minutes on a busy machine.
    fn close(self) {
        self.pool.close();
    }
}

async fn admin(sql: &str) {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("Postgres must run on 127.0.0.1:5432 (scripts/test.sh checks it)");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
}

fn migration_files() -> i64 {
    std::fs::read_dir(MIGRATIONS)
        .expect("migrations/")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count() as i64
}

/// A pool whose server refuses connections: the database is unreachable.
async fn unreachable_pool() -> Pool {
    let mut config = database_config("postgres://postgres@127.0.0.1:1/none".into());
    config.connect_timeout = Duration::from_millis(500);
    build_pool(&config, None).await.expect("pool")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_applies_every_migration_and_answers_success() {
    let server = ResponseServer::start().await;
    let database = EmptyDatabase::create().await;
    assert!(
        database.tables().await.is_empty(),
        "starts without a schema"
    );

    let (raw, request) = event("create.json", &server, "");
    let (runs, sent) = invoke(&request, &database.pool).await;
    sent.expect("the answer was accepted");
    assert_eq!(runs, 1);

    let body = assert_answer(&server.only_answer(), &raw, "SUCCESS");
    assert_eq!(
        body["PhysicalResourceId"],
        order_shared::handlers::migrator::PHYSICAL_RESOURCE_ID
    );
    let tables = database.tables().await;
    for table in ["orders", "order_events", "refinery_schema_history"] {
        assert!(
            tables.contains(&table.to_owned()),
            "{table} missing: {tables:?}"
        );
    }
    assert_eq!(database.applied_migrations().await, migration_files());
    database.close();
}

#[tokio::test]
async fn update_applies_only_new_migrations_and_keeps_the_physical_id() {
    let server = ResponseServer::start().await;
    let database = EmptyDatabase::create().await;

    let (_, create) = event("create.json", &server, "/create");
    let (_, sent) = invoke(&create, &database.pool).await;
    sent.unwrap();
    let created = server.only_answer().json();

    // A redeploy with new code: nothing new to apply, still a success, same resource.
    let (raw, update) = event("update.json", &server, "/update");
    let (runs, sent) = invoke(&update, &database.pool).await;
    sent.unwrap();
    assert_eq!(runs, 1, "Update runs the migrations");
    let answers = server.requests();
    assert_eq!(answers.len(), 2);
    let body = assert_answer(&answers[1], &raw, "SUCCESS");
    // A different id would make CloudFormation treat the update as a replacement.
    assert_eq!(body["PhysicalResourceId"], created["PhysicalResourceId"]);
    assert_eq!(body["PhysicalResourceId"], raw["PhysicalResourceId"]);
    assert_eq!(database.applied_migrations().await, migration_files());
    database.close();
}

#[tokio::test]
async fn update_of_an_older_schema_applies_the_missing_migrations() {
    let server = ResponseServer::start().await;
    let database = EmptyDatabase::create().await;
    // The schema of the release before the newest migration (versions are V1, V2, … in order).
    let newest = migration_files();
    run_migrations_up_to(&database.pool, (newest - 1) as i32)
        .await
        .expect("migrate");
    assert_eq!(database.applied_migrations().await, newest - 1);

    let (raw, update) = event("update.json", &server, "");
    let (_, sent) = invoke(&update, &database.pool).await;
    sent.unwrap();
    let body = assert_answer(&server.only_answer(), &raw, "SUCCESS");
    assert_eq!(database.applied_migrations().await, migration_files());
    let applied = body["Data"]["Applied"].as_str().unwrap_or_default();
    assert!(
        applied.contains(&format!("V{newest}")),
        "reports what it applied: {body}"
    );
    database.close();
}

/// The migrations of a newer release: this release's `migrations/` plus one more, applied the way
/// that release's migrator would (refinery, same history table).
async fn migrate_as_a_newer_release(pool: &Pool) -> String {
    let mut migrations = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(MIGRATIONS)
        .expect("migrations/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let sql = std::fs::read_to_string(&path).unwrap();
        migrations.push(refinery::Migration::unapplied(&name, &sql).expect("migration"));
    }
    // An expand-only migration, as DEPLOY.md's rule requires: the older code never sees it.
    let newer = format!("V{}__a_newer_release", migration_files() + 1);
    migrations.push(
        refinery::Migration::unapplied(
            &newer,
            "ALTER TABLE orders ADD COLUMN newer_release_note text NULL;",
        )
        .unwrap(),
    );
    let mut client = pool.get().await.expect("connection");
    refinery::Runner::new(&migrations)
        .run_async(&mut **client)
        .await
        .expect("the newer release's migrations");
    newer
}

/// Rollback: CloudFormation (or a redeploy of the previous release) runs this release's migrator
/// against a database a newer release has migrated further. It must answer SUCCESS and leave the
/// newer schema alone; refinery's default aborts on the unknown migration and fails the rollback.
#[tokio::test]
async fn an_older_migrator_accepts_a_schema_migrated_by_a_newer_release() {
    let server = ResponseServer::start().await;
    let database = EmptyDatabase::create().await;
    let newer = migrate_as_a_newer_release(&database.pool).await;
    assert_eq!(database.applied_migrations().await, migration_files() + 1);

    let (raw, update) = event("update.json", &server, "");
    let (_, sent) = invoke(&update, &database.pool).await;
    sent.unwrap();
    let body = assert_answer(&server.only_answer(), &raw, "SUCCESS");
    assert_eq!(
        database.applied_migrations().await,
        migration_files() + 1,
        "applies nothing, undoes nothing: {body}"
    );
    let column: i64 = database
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'orders' AND column_name = 'newer_release_note'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(column, 1, "{newer}'s column is still there");
    // And the direct call agrees (what the local runner does at start).
    assert_eq!(
        run_migrations(&database.pool).await.unwrap(),
        Vec::<String>::new()
    );
    database.close();
}

/// A newer schema is accepted only on top of this release's own migrations: one of them missing
/// (or changed) is still an error, not a silent skip.
#[tokio::test]
async fn a_newer_schema_without_this_releases_migrations_is_refused() {
    let database = EmptyDatabase::create().await;
    migrate_as_a_newer_release(&database.pool).await;
    database
        .client()
        .await
        .batch_execute("DELETE FROM refinery_schema_history WHERE version = 2")
        .await
        .unwrap();
    let error = run_migrations(&database.pool)
        .await
        .expect_err("a history with a hole is refused");
    assert!(
        error.to_string().contains("missing") || error.to_string().contains("[2]"),
        "{error}"
    );

    let changed = EmptyDatabase::create().await;
    migrate_as_a_newer_release(&changed.pool).await;
    changed
        .client()
        .await
        .batch_execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1")
        .await
        .unwrap();
    run_migrations(&changed.pool)
        .await
        .expect_err("an applied migration that differs from this release's copy is refused");
    database.close();
    changed.close();
}

/// The functions connect as the application role the migrator creates (not as the master user):
/// it may read and write rows - the api's whole request path works with it - but may change no
/// schema and not refinery's history.
#[tokio::test]
async fn the_application_role_may_change_rows_but_not_the_schema() {
    // The migrator runs as RDS's master user, which is no superuser: an owner role with
    // CREATEROLE and CREATEDB only, owning the database. (Roles are the server's, not the
    // database's: names of their own per test.)
    let id = &Uuid::new_v4().simple().to_string()[..12];
    let owner = format!("orders_owner_{id}");
    let role = format!("orders_app_{id}");
    let name = format!("test_migrator_{id}");
    admin(&format!("CREATE ROLE {owner} LOGIN CREATEROLE CREATEDB")).await;
    admin(&format!("CREATE DATABASE {name} OWNER {owner}")).await;
    let admin_url = admin_url();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let host = base.rsplit_once('@').map_or(base, |(_, host)| host);
    let owner_url = format!("postgres://{owner}@{host}/{name}");
    let database = EmptyDatabase {
        url: owner_url.clone(),
        pool: build_pool(&database_config(owner_url), None)
            .await
            .expect("pool"),
    };
    run_migrations(&database.pool).await.expect("migrate");
    ensure_application_role(&database.pool, &role, "first")
        .await
        .expect("role created");
    ensure_application_role(&database.pool, &role, "second")
        .await
        .expect("idempotent: a second run (the next deploy) only sets the password again");

    // The api on a pool as that role (the local server trusts 127.0.0.1, so no password).
    let role_url = format!("postgres://{role}@{host}/{name}");
    let pool = build_pool(&database_config(role_url.clone()), None)
        .await
        .expect("pool");
    let store = std::sync::Arc::new(PostgresOrderStore::new(pool));
    let queue = TestQueue::create().await;
    let api = TestApi::new(store, std::sync::Arc::new(queue.adapter())).await;
    let created = api.post_order(LIMIT_ORDER, None).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(&format!("/orders/{id}")).await.status,
        StatusCode::OK
    );

    // No DDL, no ownership, no migration history.
    let (as_role, connection) = tokio_postgres::connect(&role_url, tokio_postgres::NoTls)
        .await
        .expect("connect as the role");
    tokio::spawn(connection);
    for sql in [
        "CREATE TABLE not_allowed (id int)",
        "ALTER TABLE orders ADD COLUMN not_allowed int",
        "DROP TABLE order_events",
        "DROP FUNCTION api_admission",
        "TRUNCATE orders",
        "SELECT count(*) FROM refinery_schema_history",
        "DELETE FROM refinery_schema_history",
    ] {
        let error = as_role
            .batch_execute(sql)
            .await
            .expect_err(&format!("{role} must not run: {sql}"));
        assert!(
            error.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {error:?}"
        );
    }
    let rolsuper: bool = as_role
        .query_one("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!rolsuper, "{role} has no administrative attribute");

    // Leave no role behind on the shared server (the database stays, like every test's).
    drop(as_role);
    database.pool.close();
    let (superuser, connection) = tokio_postgres::connect(
        &format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    superuser
        .batch_execute(&format!(
            "ALTER DATABASE {name} OWNER TO CURRENT_USER; REASSIGN OWNED BY {owner} TO CURRENT_USER; \
             DROP OWNED BY {owner}; DROP OWNED BY {role}"
        ))
        .await
        .unwrap();
    admin(&format!("DROP ROLE {role}")).await;
    admin(&format!("DROP ROLE {owner}")).await;
}

#[tokio::test]
async fn delete_answers_success_and_touches_nothing() {
    let server = ResponseServer::start().await;

    // On an empty database: nothing is created.
    let empty = EmptyDatabase::create().await;
    let (raw, delete) = event("delete.json", &server, "/empty");
    let (runs, sent) = invoke(&delete, &empty.pool).await;
    sent.unwrap();
    assert_eq!(runs, 0, "Delete never runs migrations");
    assert_answer(&server.only_answer(), &raw, "SUCCESS");
    assert!(empty.tables().await.is_empty());
    empty.close();

    // On a migrated database with data: nothing is dropped (stack deletion keeps the orders).
    let migrated = EmptyDatabase::create().await;
    run_migrations(&migrated.pool).await.expect("migrate");
    let client = migrated.client().await;
    client
        .execute(
            "INSERT INTO orders (id, order_type, side, instrument, quantity, request_fingerprint) \
             VALUES ($1, 'market', 'buy', 'US0378331005', 1, 'fp')",
            &[&Uuid::now_v7()],
        )
        .await
        .expect("an order");
    let tables_before = migrated.tables().await;
    let (raw, delete) = event("delete.json", &server, "/migrated");
    let (runs, sent) = invoke(&delete, &migrated.pool).await;
    sent.unwrap();
    assert_eq!(runs, 0);
    let answers = server.requests();
    assert_answer(&answers[1], &raw, "SUCCESS");
    assert_eq!(migrated.tables().await, tables_before);
    let orders: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, 1, "the order survives");
    assert_eq!(migrated.applied_migrations().await, migration_files());
    migrated.close();
}

#[tokio::test]
async fn failing_migrations_answer_failed_with_a_reason() {
    let server = ResponseServer::start().await;
    let pool = unreachable_pool().await;
    for fixture in ["create.json", "update.json"] {
        let (raw, request) = event(fixture, &server, &format!("/{fixture}"));
        let (runs, sent) = invoke(&request, &pool).await;
        sent.expect("the failure is still answered");
        assert_eq!(runs, 1);
        let answer = server
            .requests()
            .into_iter()
            .find(|r| r.target.starts_with(&format!("/{fixture}")))
            .expect("answered");
        let body = assert_answer(&answer, &raw, "FAILED");
        let reason = body["Reason"].as_str().unwrap_or_default();
        assert!(
            !reason.is_empty(),
            "FAILED needs a Reason for the CloudFormation console"
        );
        assert!(reason.len() <= 1000, "a short reason: {reason}");
    }
}

#[tokio::test]
async fn an_unknown_request_type_is_answered_without_migrating() {
    let server = ResponseServer::start().await;
    let database = EmptyDatabase::create().await;
    let (raw, request) = event("unknown-request-type.json", &server, "");
    assert_eq!(request.request_type, "Rollback");
    let (runs, sent) = invoke(&request, &database.pool).await;
    sent.unwrap();
    assert_eq!(runs, 0);
    let answer = server.only_answer();
    let status = answer.json()["Status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(["SUCCESS", "FAILED"].contains(&status.as_str()), "{status}");
    assert_answer(&answer, &raw, &status);
    assert!(database.tables().await.is_empty());
    database.close();
}

#[tokio::test]
async fn a_refused_answer_is_reported_as_an_error() {
    // An expired pre-signed URL answers 403: the migrator must notice (and log/fail the
    // invocation) rather than believe CloudFormation got its answer.
    let server = ResponseServer::start().await;
    let (_, request) = event("delete.json", &server, "/expired");
    let (_, sent) = invoke(&request, &unreachable_pool().await).await;
    let error = sent.expect_err("a 403 from S3 is an error");
    assert!(error.to_string().contains("403"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn orders_from_before_clients_move_to_the_default_client() {
    let database = EmptyDatabase::create().await;
    // The schema before V3 (clients and API keys), with an order and a keyed order in it.
    run_migrations_up_to(&database.pool, 2)
        .await
        .expect("migrate to V2");
    let client = database.client().await;
    client
        .batch_execute(
            "INSERT INTO orders (id, order_type, side, instrument, quantity, idempotency_key, \
                                 request_fingerprint) \
             VALUES ('01a21428-06e2-733b-831c-f04b396f4b48', 'market', 'buy', 'US0378331005', 1, \
                     'old-key', 'fp'), \
                    ('01a21428-06e2-733b-831c-f04b396f4b49', 'market', 'sell', 'US0378331005', 2, \
                     NULL, 'fp')",
        )
        .await
        .expect("an order of the old schema");

    run_migrations(&database.pool)
        .await
        .expect("migrate to the newest");
    let owners: Vec<String> = client
        .query("SELECT client_id FROM orders ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, vec!["default", "default"]);
    let default_client: i64 = client
        .query_one("SELECT count(*) FROM clients WHERE id = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(default_client, 1);
    // The old key is now the default client's; another client may use the same key.
    client
        .batch_execute(
            "INSERT INTO clients (id) VALUES ('acme'); \
             INSERT INTO orders (id, client_id, order_type, side, instrument, quantity, \
                                 idempotency_key, request_fingerprint) \
             VALUES ('01a21428-06e2-733b-831c-f04b396f4b50', 'acme', 'market', 'buy', \
                     'US0378331005', 1, 'old-key', 'fp')",
        )
        .await
        .expect("the same key for another client");
    let duplicate = client
        .batch_execute(
            "INSERT INTO orders (id, order_type, side, instrument, quantity, idempotency_key, \
                                 request_fingerprint) \
             VALUES ('01a21428-06e2-733b-831c-f04b396f4b51', 'market', 'buy', 'US0378331005', 1, \
                     'old-key', 'fp')",
        )
        .await;
    assert!(
        duplicate.is_err(),
        "the key stays unique within the default client"
    );
    database.close();
}

#[tokio::test]
async fn keys_stored_before_v6_keep_naming_their_orders_from_the_time_they_were_taken() {
    let database = EmptyDatabase::create().await;
    // The schema before V6: keys live in orders.idempotency_key.
    run_migrations_up_to(&database.pool, 5)
        .await
        .expect("migrate to V5");
    let client = database.client().await;
    client
        .batch_execute(
            "INSERT INTO orders (id, order_type, side, instrument, quantity, idempotency_key, \
                                 request_fingerprint, created_at) \
             VALUES ('01a21428-06e2-733b-831c-f04b396f4b48', 'market', 'buy', 'US0378331005', 1, \
                     'old-key', 'fp-1', '2026-11-01T10:00:00Z'), \
                    ('01a21428-06e2-733b-831c-f04b396f4b49', 'market', 'sell', 'US0378331005', 2, \
                     NULL, 'fp-2', '2026-11-01T11:00:00Z')",
        )
        .await
        .expect("orders of the V5 schema");

    run_migrations(&database.pool)
        .await
        .expect("migrate to the newest");
    let keys: Vec<(String, String, String, String)> = client
        .query(
            "SELECT client_id, idempotency_key, order_id::text, request_fingerprint \
             FROM idempotency_keys \
             WHERE created_at = '2026-11-01T10:00:00Z'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        keys,
        [(
            "default".to_owned(),
            "old-key".to_owned(),
            "01a21428-06e2-733b-831c-f04b396f4b48".to_owned(),
            "fp-1".to_owned()
        )]
    );
    let all: i64 = client
        .query_one("SELECT count(*) FROM idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, 1, "an order without a key has none");
    database.close();
}
