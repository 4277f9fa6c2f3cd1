//! Live order updates over a WebSocket, end to end through the local runner (issue #16): each
//! client gets its own orders' changes and never another client's, a reconnect with the last
//! event id loses nothing and repeats nothing, and no key, a bad key or a revoked key gets
//! nothing.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use system_tests::LIMIT_ORDER;
use system_tests::local_runner::LocalRunner;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the runner's live-update socket with `key` (none: no header), resuming after `after`.
async fn open(
    runner: &LocalRunner,
    key: Option<&str>,
    after: Option<i64>,
) -> Result<Socket, WsError> {
    let url = match after {
        Some(after) => format!("{}?after={after}", runner.updates_url),
        None => runner.updates_url.clone(),
    };
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = key {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

fn refused_with(result: Result<Socket, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the connection was accepted"),
    }
}

async fn post(runner: &LocalRunner, key: &str, count: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..count {
        let response = client
            .post(format!("{}/orders", runner.base_url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(LIMIT_ORDER)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "log:\n{}", runner.log());
        let order: Value = response.json().await.unwrap();
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Reads messages until `done` says so (or fails after `within`); returns them in order.
async fn read_until(
    socket: &mut Socket,
    within: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut messages = Vec::new();
    while !done(&messages) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "not done within {within:?}: {messages:#?}");
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                messages.push(serde_json::from_str(&text).expect("JSON"));
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the socket ended: {other:?}"),
            Err(_) => panic!("not done within {within:?}: {messages:#?}"),
        }
    }
    messages
}

/// Whether every order in `ids` has a message saying it was placed (or went on from there).
fn all_placed(messages: &[Value], ids: &[String]) -> bool {
    let placed: HashSet<&str> = messages
        .iter()
        .filter(|m| m["from"] == "placing" && m["status"] == "placed")
        .map(|m| m["order_id"].as_str().unwrap())
        .collect();
    ids.iter().all(|id| placed.contains(id.as_str()))
}

/// The client's audit events in the database: event id → order id.
async fn stored_events(runner: &LocalRunner, client: &str) -> BTreeMap<i64, String> {
    let (db, connection) = tokio_postgres::connect(&runner.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.query(
        "SELECT e.id, e.order_id::text FROM order_events e JOIN orders o ON o.id = e.order_id \
         WHERE o.client_id = $1",
        &[&client],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

fn event_ids(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["event_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_its_own_orders_updates_live_and_never_another_clients() {
    let runner = LocalRunner::start(&[]).await;
    let mine = runner.api_key.expose().to_owned();
    let theirs = String::from_utf8(
        runner
            .orders_admin(&["keys", "create", "--client", "globex", "--label", "live"])
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let mut my_socket = open(&runner, Some(&mine), None).await.expect("connected");
    let mut their_socket = open(&runner, Some(&theirs), None).await.expect("connected");

    let my_orders = post(&runner, &mine, 5).await;
    let their_orders = post(&runner, &theirs, 5).await;

    let mine_seen = read_until(&mut my_socket, Duration::from_secs(60), |m| {
        all_placed(m, &my_orders)
    })
    .await;
    let theirs_seen = read_until(&mut their_socket, Duration::from_secs(60), |m| {
        all_placed(m, &their_orders)
    })
    .await;
    for (seen, own, other) in [
        (&mine_seen, &my_orders, &their_orders),
        (&theirs_seen, &their_orders, &my_orders),
    ] {
        for message in seen.iter() {
            let order = message["order_id"].as_str().unwrap().to_owned();
            assert!(own.contains(&order), "only its own orders: {message}");
            assert!(!other.contains(&order));
            assert_eq!(message["type"], "order_update");
        }
        let ids = event_ids(seen);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "in order, once: {ids:?}"
        );
        // Each order's life from its acceptance: pending, then (after any retries of the
        // simulated exchange's failures) placing → placed.
        for order in own {
            let steps: Vec<&str> = seen
                .iter()
                .filter(|m| m["order_id"] == order.as_str())
                .map(|m| m["status"].as_str().unwrap())
                .collect();
            assert_eq!(steps.first(), Some(&"pending"), "{order}: {steps:?}");
            assert!(
                steps.windows(2).any(|w| w == ["placing", "placed"]),
                "{order}: {steps:?}"
            );
        }
    }
    let _ = my_socket.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_the_last_event_id_gets_every_missed_update_once() {
    let runner = LocalRunner::start(&[]).await;
    let key = runner.api_key.expose().to_owned();
    let mut socket = open(&runner, Some(&key), Some(0)).await.expect("connected");
    let first = post(&runner, &key, 5).await;
    let before = read_until(&mut socket, Duration::from_secs(60), |m| {
        all_placed(m, &first)
    })
    .await;
    let last = *event_ids(&before).last().unwrap();
    // A forced disconnect; meanwhile more orders are placed and filled.
    drop(socket);
    let second = post(&runner, &key, 10).await;
    // The runner's own key belongs to client `local` (LOCAL_CLIENT_ID's default).
    let client = "local".to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_events(&runner, &client).await.len() < 45 {
        assert!(Instant::now() < deadline, "orders not placed in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut resumed = open(&runner, Some(&key), Some(last))
        .await
        .expect("connected");
    let after = read_until(&mut resumed, Duration::from_secs(60), |m| {
        all_placed(m, &second)
    })
    .await;

    let received: Vec<i64> = event_ids(&before)
        .into_iter()
        .chain(event_ids(&after))
        .collect();
    let unique: HashSet<i64> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "nothing twice: {received:?}");
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "in order: {received:?}"
    );
    // Everything the database holds up to the last event received arrived, across the gap.
    let stored = stored_events(&runner, &client).await;
    let upto = *received.last().unwrap();
    let expected: Vec<i64> = stored.keys().copied().filter(|id| *id <= upto).collect();
    assert_eq!(received, expected, "0 updates lost across the disconnect");
    let orders: HashSet<&String> = stored.values().collect();
    assert!(first.iter().chain(&second).all(|id| orders.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_a_bad_key_and_a_revoked_key_get_nothing() {
    let runner = LocalRunner::start(&[]).await;
    assert_eq!(refused_with(open(&runner, None, None).await), 401);
    assert_eq!(
        refused_with(open(&runner, Some("not-a-key"), None).await),
        401
    );
    let unknown = "sok_0123456789abcdef0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_eq!(refused_with(open(&runner, Some(unknown), None).await), 401);
    assert_eq!(
        refused_with(open(&runner, Some(&runner.api_key.expose()), Some(-1)).await),
        422
    );

    let key = String::from_utf8(
        runner
            .orders_admin(&[
                "keys",
                "create",
                "--client",
                "revoked-soon",
                "--label",
                "live",
            ])
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let key_id = key
        .strip_prefix("sok_")
        .and_then(|rest| rest.split('_').next())
        .unwrap()
        .to_owned();
    let mut socket = open(&runner, Some(&key), None).await.expect("connected");
    runner.orders_admin(&["keys", "revoke", &key_id]);

    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 15 s of the revocation");
    let frame = closed.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::from(4401));
    assert_eq!(refused_with(open(&runner, Some(&key), None).await), 401);
}

mod fanout_on_postgres {
    //! The AWS fan-out's part against the real audit trail and connections table (the API
    //! Gateway side is a fake of our `ConnectionPush` port: no real AWS here).

    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use order_shared::adapters::postgres::{
        PostgresAccessControl, PostgresLiveConnections, PostgresOrderUpdates,
    };
    use order_shared::auth::ApiKey;
    use order_shared::domain::{ClientId, Isin, NewOrder, OrderType, Quantity, Side};
    use order_shared::handlers::updates::fanout::{Fanout, FanoutPorts, FanoutSettings};
    use order_shared::ports::{
        ClientLimits, ClientRegistry, ConnectionPush, LiveConnection, LiveConnections,
        OrderLifecycle, OrderStore, PushError,
    };
    use serde_json::Value;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// API Gateway's side of the connections: what each received, and which were closed.
    #[derive(Default)]
    struct RecordingPush {
        received: Mutex<HashMap<String, Vec<Value>>>,
        closed: Mutex<Vec<String>>,
    }

    impl RecordingPush {
        fn received(&self, id: &str) -> Vec<Value> {
            self.received
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .unwrap_or_default()
        }

        fn closed(&self) -> Vec<String> {
            self.closed.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl ConnectionPush for RecordingPush {
        async fn push(&self, id: &str, message: &str) -> Result<(), PushError> {
            let value = serde_json::from_str(message).expect("JSON");
            self.received
                .lock()
                .unwrap()
                .entry(id.to_owned())
                .or_default()
                .push(value);
            Ok(())
        }

        async fn close(&self, id: &str) -> Result<(), PushError> {
            self.closed.lock().unwrap().push(id.to_owned());
            Ok(())
        }
    }

    fn market_order(quantity: i64) -> NewOrder {
        NewOrder::new(
            OrderType::Market,
            Side::Buy,
            Isin::parse("US0378331005").unwrap(),
            None,
            Quantity::new(quantity).unwrap(),
        )
        .unwrap()
    }
    use system_tests::{TestDatabase, test_hasher};
    use time::OffsetDateTime;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_connections_get_their_clients_events_and_a_revoked_keys_are_closed() {
        let db = TestDatabase::create().await;
        let pool = db.store.pool().clone();
        let registry = PostgresAccessControl::new(pool.clone(), test_hasher());
        let (acme, globex) = (
            ClientId::parse("acme").unwrap(),
            ClientId::parse("globex").unwrap(),
        );
        let mut keys = Vec::new();
        for client in [&acme, &globex] {
            registry
                .upsert_client(client, ClientLimits::default())
                .await
                .unwrap();
            let key = ApiKey::generate().unwrap();
            registry.create_key(client, &key, "live").await.unwrap();
            keys.push(key);
        }
        let connections = Arc::new(PostgresLiveConnections::new(pool.clone()));
        let push = Arc::new(RecordingPush::default());
        let mut fanout = Fanout::start(
            FanoutPorts {
                updates: Arc::new(PostgresOrderUpdates::new(pool.clone())),
                connections: connections.clone(),
                push: push.clone(),
            },
            FanoutSettings {
                refresh: Duration::ZERO,
                recheck: Duration::ZERO,
                ..FanoutSettings::default()
            },
        )
        .await
        .unwrap();
        for (id, client, key) in [("c-acme", &acme, &keys[0]), ("c-globex", &globex, &keys[1])] {
            connections
                .connect(&LiveConnection {
                    connection_id: id.into(),
                    client_id: client.clone(),
                    key_id: key.id().clone(),
                    resume_after: None,
                })
                .await
                .unwrap();
        }
        fanout.step().await.unwrap();

        let expires = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        let mut mine = Vec::new();
        for _ in 0..3 {
            let created = db
                .store
                .create_order(&acme, &market_order(5), expires, None)
                .await
                .unwrap();
            let order = match created {
                order_shared::ports::CreateOutcome::Created(order) => order,
                other => panic!("{other:?}"),
            };
            db.store
                .claim_for_placement(order.id, Duration::from_secs(30))
                .await
                .unwrap();
            db.store.record_placed(order.id, "X-1").await.unwrap();
            mine.push(order.id);
        }
        while fanout.step().await.unwrap().events > 0 {}

        let received = push.received("c-acme");
        let statuses: Vec<(&str, &str)> = received
            .iter()
            .map(|m| {
                (
                    m["order_id"].as_str().unwrap(),
                    m["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(statuses.len(), 9, "{statuses:?}");
        for id in &mine {
            let steps: Vec<&str> = statuses
                .iter()
                .filter(|(order, _)| *order == id.to_string())
                .map(|(_, status)| *status)
                .collect();
            assert_eq!(steps, ["pending", "placing", "placed"]);
        }
        assert!(
            push.received("c-globex").is_empty(),
            "never another client's"
        );

        registry.revoke_key(keys[0].id()).await.unwrap();
        let report = fanout.step().await.unwrap();
        assert_eq!(report.revoked, 1);
        assert_eq!(push.closed(), ["c-acme"]);
        let left: Vec<String> = connections
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.connection_id)
            .collect();
        assert_eq!(left, ["c-globex"]);
    }
}

mod api_gateway_push {
    //! The `ConnectionPush` adapter on the API Gateway Management API: against moto's
    //! `apigatewaymanagementapi` (it accepts posts and deletes for any connection id), and its
    //! `410 Gone` mapping against a one-route HTTP server answering as API Gateway does for a
    //! closed connection.

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use order_shared::adapters::connection_push::ApiGatewayPush;
    use order_shared::ports::{ConnectionPush, PushError};
    use system_tests::sdk_config;

    fn moto_url() -> String {
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
    }

    #[tokio::test]
    async fn a_message_and_a_close_reach_the_management_api() {
        let sdk = sdk_config().await;
        let push = ApiGatewayPush::new(&sdk, &moto_url());
        push.push("conn-1", r#"{"type":"order_update"}"#)
            .await
            .expect("posted to the connection");
        push.close("conn-1").await.expect("connection deleted");
    }

    #[tokio::test]
    async fn a_closed_connection_is_reported_gone() {
        let gone = Router::new().route(
            "/@connections/{id}",
            post(|| async {
                (
                    StatusCode::GONE,
                    [
                        ("content-type", "application/json"),
                        ("x-amzn-errortype", "GoneException"),
                    ],
                    r#"{"message":null}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, gone).await });
        let sdk = sdk_config().await;
        let push = ApiGatewayPush::new(&sdk, &format!("http://{address}"));

        let error = push.push("conn-2", "{}").await.unwrap_err();

        assert!(matches!(error, PushError::Gone), "{error:?}");
    }
}

mod horizon_on_postgres {
    //! The stream's horizon against real transactions: an event id drawn by a transaction still
    //! running holds the stream even when that transaction's id is at or above the read
    //! snapshot's `xmax` (Postgres sets `xmax` to the last completed id + 1), and a rolled-back
    //! one is skipped once every transaction of its time has ended.

    use std::time::Duration;

    use order_shared::adapters::postgres::PostgresOrderUpdates;
    use order_shared::domain::{ClientId, Isin, NewOrder, OrderType, Quantity, Side};
    use order_shared::ports::{CreateOutcome, OrderStore, OrderUpdateStore};
    use order_shared::usecases::update_horizon::UpdateHorizon;
    use system_tests::TestDatabase;
    use time::OffsetDateTime;
    use uuid::Uuid;

    async fn order(db: &TestDatabase) -> Uuid {
        let details = NewOrder::new(
            OrderType::Market,
            Side::Buy,
            Isin::parse("US0378331005").unwrap(),
            None,
            Quantity::new(1).unwrap(),
        )
        .unwrap();
        let expires = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        match db
            .store
            .create_order(&ClientId::parse("acme").unwrap(), &details, expires, None)
            .await
            .unwrap()
        {
            CreateOutcome::Created(order) => order.id.as_uuid(),
            other => panic!("{other:?}"),
        }
    }

    /// As every writer does: the order's row first (a transaction id), then its event.
    async fn write_row(db: &tokio_postgres::Client, id: Uuid) {
        db.execute("UPDATE orders SET updated_at = now() WHERE id = $1", &[&id])
            .await
            .unwrap();
    }

    async fn write_event(db: &tokio_postgres::Client, id: Uuid) -> i64 {
        db.query_one(
            "INSERT INTO order_events (order_id, from_status, to_status, reason) \
             VALUES ($1, 'pending', 'pending', 'horizon test') RETURNING id",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
    }

    async fn ready(store: &PostgresOrderUpdates, horizon: &mut UpdateHorizon) -> Vec<i64> {
        let poll = store.updates_after(horizon.delivered(), 100).await.unwrap();
        let ids: Vec<i64> = poll.updates.iter().map(|u| u.event_id).collect();
        let n = horizon.advance(&ids, poll.xmin, poll.gap_bound);
        ids[..n].to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_uncommitted_event_holds_the_stream_and_a_rolled_back_one_is_skipped() {
        let db = TestDatabase::create().await;
        db.client()
            .await
            .execute("INSERT INTO clients (id) VALUES ('acme')", &[])
            .await
            .unwrap();
        let (first, second) = (order(&db).await, order(&db).await);
        let store = PostgresOrderUpdates::new(db.store.pool().clone());
        let start = store.latest_event_id().await.unwrap();
        let mut horizon = UpdateHorizon::starting_after(start);
        let (early, late) = (db.client().await, db.client().await);

        // `early` takes its transaction id first; `late` takes a larger one but draws the
        // smaller event id, and is still running when `early` commits the larger.
        early.batch_execute("BEGIN").await.unwrap();
        write_row(&early, second).await;
        late.batch_execute("BEGIN").await.unwrap();
        write_row(&late, first).await;
        let held = write_event(&late, first).await;
        let shown = write_event(&early, second).await;
        early.batch_execute("COMMIT").await.unwrap();
        assert!(held < shown);

        assert_eq!(ready(&store, &mut horizon).await, Vec::<i64>::new());
        assert_eq!(
            ready(&store, &mut horizon).await,
            Vec::<i64>::new(),
            "still held"
        );
        late.batch_execute("COMMIT").await.unwrap();
        assert_eq!(ready(&store, &mut horizon).await, [held, shown]);

        // A rolled-back event id: held while its transaction runs, skipped once it has ended.
        late.batch_execute("BEGIN").await.unwrap();
        write_row(&late, first).await;
        let rolled_back = write_event(&late, first).await;
        let after = write_event(&early, second).await;
        assert!(rolled_back < after);
        assert_eq!(ready(&store, &mut horizon).await, Vec::<i64>::new());
        late.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(ready(&store, &mut horizon).await, [after]);
    }
}
