//! Shared helpers for the integration and end-to-end suites: a fresh, migrated database and a
//! fresh SQS queue per test (against the real Postgres and the real moto server that
//! `scripts/test.sh` starts), and the api Router wired to them.
//!
//! `TEST_DATABASE_VIA=pgbouncer` (what `scripts/test.sh` sets) connects the functions' pools —
//! the api's store and access control, the sweeper's store, the pipeline's local system, the
//! runner of `make run` — through PgBouncer in transaction pooling mode (`PGBOUNCER_PORT`, the
//! local RDS Proxy), with more clients than its 4 server connections per database, so that any
//! session state fails a test. Unset or `direct`: straight to Postgres. Either way each database
//! is created and migrated over a direct connection, and the assertions read rows directly.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client as SqsClient;
use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use order_shared::adapters::postgres::{
    DatabaseConfig, DatabaseCredentials, PostgresAccessControl, PostgresOrderStore, TlsMode,
    build_pool, run_migrations,
};
use order_shared::adapters::sqs::SqsOrderQueue;
use order_shared::auth::{ApiKey, KeyHasher};
use order_shared::domain::{ClientId, ExpiryPolicy};
use order_shared::handlers::api::{ApiContext, router};
use order_shared::handlers::sweeper::SweepSettings;
use order_shared::ports::{ClientLimits, ClientRegistry};
use order_shared::ports::{OrderQueue, OrderStore};
use order_shared::usecases::enqueue::EnqueuedMarks;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

pub use order_shared;

pub mod local_runner;
pub mod pipeline;

/// The admin connection used to create per-test databases.
pub fn admin_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map(|(base, _)| base).unwrap_or(url);
    format!("{base}/{name}")
}

/// How the functions' pools reach the database (`TEST_DATABASE_VIA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseVia {
    Direct,
    PgBouncer,
}

impl DatabaseVia {
    /// `TEST_DATABASE_VIA`: `pgbouncer`, or `direct` (the default, so that a plain `cargo test`
    /// needs no PgBouncer).
    pub fn from_env() -> Self {
        match std::env::var("TEST_DATABASE_VIA").as_deref() {
            Err(_) | Ok("") | Ok("direct") => Self::Direct,
            Ok("pgbouncer") => Self::PgBouncer,
            Ok(other) => panic!("TEST_DATABASE_VIA={other:?}: expected `pgbouncer` or `direct`"),
        }
    }

    /// The value `make run` reads (`LOCAL_DB_VIA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::PgBouncer => "pgbouncer",
        }
    }
}

/// The URL of database `name` for the functions' pools: through PgBouncer on
/// `127.0.0.1:$PGBOUNCER_PORT` (default 6432, which fronts the admin URL's server) as the admin
/// URL's user, or the admin URL's server directly.
pub fn functions_url(name: &str) -> String {
    match DatabaseVia::from_env() {
        DatabaseVia::Direct => with_database(&admin_url(), name),
        DatabaseVia::PgBouncer => {
            let port = std::env::var("PGBOUNCER_PORT").unwrap_or_else(|_| "6432".into());
            let admin: tokio_postgres::Config = admin_url()
                .parse()
                .expect("TEST_ADMIN_DATABASE_URL is a URL");
            let user = admin.get_user().unwrap_or("postgres");
            format!("postgres://{user}@127.0.0.1:{port}/{name}")
        }
    }
}

pub fn database_config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        credentials: DatabaseCredentials::Url(url),
        tls: TlsMode::Disable,
        ca_file: None,
        // Twice PgBouncer's 4 server connections per database: clients must share them.
        pool_size: 8,
        connect_timeout: Duration::from_secs(2),
    }
}

/// A uniquely named, migrated database that only this test uses.
pub struct TestDatabase {
    pub name: String,
    /// Direct: for migrations and assertions.
    pub url: String,
    /// What the functions connect to (`functions_url`): through PgBouncer or direct.
    pub functions_url: String,
    /// The functions' store, on `functions_url`.
    pub store: PostgresOrderStore,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let (admin, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .expect("Postgres must run on 127.0.0.1:5432 (scripts/test.sh checks it)");
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_database(&admin_url(), &name);
        // Migrations connect directly, as the migrator does in AWS; the pool closes on drop.
        let direct = build_pool(&database_config(url.clone()), None)
            .await
            .expect("pool");
        run_migrations(&direct).await.expect("migrations");
        drop(direct);
        let functions_url = functions_url(&name);
        let pool = build_pool(&database_config(functions_url.clone()), None)
            .await
            .expect("pool");
        Self {
            name,
            url,
            functions_url,
            store: PostgresOrderStore::new(pool),
        }
    }

    /// A direct client for assertions on rows.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(connection);
        client
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .expect(sql)
            .get(0)
    }
}

/// SDK configuration for the moto server that the test script started.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into());
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A uniquely named queue on moto, with helpers to read back what was sent.
pub struct TestQueue {
    pub client: SqsClient,
    pub url: String,
    pub sdk: aws_config::SdkConfig,
}

impl TestQueue {
    pub async fn create() -> Self {
        let sdk = sdk_config().await;
        let client = SqsClient::new(&sdk);
        let url = client
            .create_queue()
            .queue_name(format!("orders-{}", Uuid::new_v4().simple()))
            .send()
            .await
            .expect("moto must run (scripts/test.sh starts it)")
            .queue_url
            .expect("queue url");
        Self { client, url, sdk }
    }

    /// The adapter the api uses, pointed at this queue.
    pub fn adapter(&self) -> SqsOrderQueue {
        SqsOrderQueue::single_attempt(&self.sdk, self.url.clone())
    }

    /// Receives every message currently in the queue (and hides them for a minute).
    pub async fn drain(&self) -> Vec<Value> {
        let mut bodies = Vec::new();
        loop {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for message in messages {
                bodies.push(
                    serde_json::from_str(message.body().unwrap_or_default())
                        .expect("message body is JSON"),
                );
            }
        }
    }
}

/// A queue adapter whose endpoint refuses connections: SQS is "down".
pub async fn unreachable_queue() -> SqsOrderQueue {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    SqsOrderQueue::single_attempt(&sdk, "http://127.0.0.1:9/123456789012/orders".into())
}

/// A store whose database does not exist at all: every call fails like an outage.
pub async fn unreachable_store() -> PostgresOrderStore {
    let mut config = database_config("postgres://postgres@127.0.0.1:1/none".into());
    config.connect_timeout = Duration::from_millis(500);
    PostgresOrderStore::new(build_pool(&config, None).await.expect("pool"))
}

pub fn sweep_now() -> SweepSettings {
    SweepSettings {
        grace: Duration::ZERO,
        claim_for: Duration::from_secs(60),
        batch_size: 100,
        alert_window: Duration::from_secs(300),
    }
}

/// The pepper every in-process test uses (at least 32 bytes, as production requires).
pub const TEST_PEPPER: &str = "test-pepper-for-in-process-api-tests-0123456789";

pub fn test_hasher() -> KeyHasher {
    KeyHasher::new(TEST_PEPPER.as_bytes()).expect("long enough")
}

/// The api Router wired to the given store and queue, called in-process, with a client and an
/// API key of its own: `send` adds the key unless the request carries an `Authorization` header.
#[derive(Clone)]
pub struct TestApi {
    pub router: Router,
    pub access: PostgresAccessControl,
    pub client: ClientId,
    pub key: ApiKey,
}

/// A response, decoded.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl TestApi {
    /// Registers the client `test-client` with generous limits and a fresh key (when the
    /// database is reachable; with an unreachable store the key is simply unknown).
    pub async fn new(store: Arc<PostgresOrderStore>, queue: Arc<dyn OrderQueue>) -> Self {
        Self::for_client(
            store,
            queue,
            "test-client",
            ClientLimits {
                requests_per_second: Some(100_000),
                max_open_orders: Some(100_000),
            },
        )
        .await
    }

    /// Like `new`, for a named client with the given limits.
    pub async fn for_client(
        store: Arc<PostgresOrderStore>,
        queue: Arc<dyn OrderQueue>,
        client: &str,
        limits: ClientLimits,
    ) -> Self {
        let access = PostgresAccessControl::new(store.pool().clone(), test_hasher());
        let store: Arc<dyn OrderStore> = store;
        let context = ApiContext {
            enqueued_marks: EnqueuedMarks::start(store.clone()),
            store,
            queue,
            access: Arc::new(access.clone()),
            orders: Arc::new(access.clone()),
            enqueue_timeout: Duration::from_secs(2),
            expiry: ExpiryPolicy::default(),
        };
        Self::with_client(context, access, client, limits).await
    }

    /// The api of an already wired system (the pipeline's `LocalSystem`), with `test-client`.
    pub async fn for_context(context: ApiContext, access: PostgresAccessControl) -> Self {
        Self::with_client(
            context,
            access,
            "test-client",
            ClientLimits {
                requests_per_second: Some(100_000),
                max_open_orders: Some(100_000),
            },
        )
        .await
    }

    async fn with_client(
        context: ApiContext,
        access: PostgresAccessControl,
        client: &str,
        limits: ClientLimits,
    ) -> Self {
        let client = ClientId::parse(client).expect("valid client id");
        let key = ApiKey::generate().expect("OS randomness");
        if access.upsert_client(&client, limits).await.is_ok() {
            access
                .create_key(&client, &key, "tests")
                .await
                .expect("create key")
                .expect("client exists");
        }
        Self {
            router: router(context),
            access,
            client,
            key,
        }
    }

    /// Another client of the same system, with its own key: shares the Router and the database.
    pub async fn other_client(&self, client: &str, limits: ClientLimits) -> Self {
        let client = ClientId::parse(client).expect("valid client id");
        let key = ApiKey::generate().expect("OS randomness");
        self.access
            .upsert_client(&client, limits)
            .await
            .expect("create client");
        self.access
            .create_key(&client, &key, "tests")
            .await
            .expect("create key")
            .expect("client exists");
        Self {
            router: self.router.clone(),
            access: self.access.clone(),
            client,
            key,
        }
    }

    /// `Authorization` header value for this client's key.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.key.expose())
    }

    /// Sends the request as this client (unless it already carries an `Authorization` header).
    pub async fn send(&self, mut request: Request<Body>) -> TestResponse {
        if !request.headers().contains_key(http::header::AUTHORIZATION) {
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                self.bearer().parse().expect("header value"),
            );
        }
        self.send_as_is(request).await
    }

    /// Sends the request exactly as given (for authentication tests).
    pub async fn send_as_is(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "every response body is JSON, got {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        TestResponse {
            status,
            headers,
            json,
        }
    }

    pub async fn post_order(&self, body: &str, idempotency_key: Option<&str>) -> TestResponse {
        let mut request = Request::post("/orders").header("content-type", "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }
}

/// A valid limit order body.
pub const LIMIT_ORDER: &str = r#"{"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"120.50","quantity":10}"#;

/// A valid market order body.
pub const MARKET_ORDER: &str = r#"{"type":"market","side":"sell","instrument":"DE000BAY0017","limit_price":null,"quantity":5}"#;
