//! End to end over real HTTP: the local runner started by the README's run command.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use local_runner::event_source::queue_arn;
use serde_json::Value;
use system_tests::local_runner::LocalRunner;
use system_tests::order_shared::adapters::sns::{ensure_topic, subscribe_queue};
use system_tests::{LIMIT_ORDER, MARKET_ORDER, sdk_config};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_serves_orders_over_http() {
    let runner = LocalRunner::start(&[]).await;
    let client = runner.client();

    let created = client
        .post(format!("{}/orders", runner.base_url))
        .header("content-type", "application/json")
        .body(LIMIT_ORDER)
        .send()
        .await
        .expect("POST /orders");
    assert_eq!(created.status(), 201, "log:\n{}", runner.log());
    let location = created
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location header")
        .to_owned();
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["instrument"], "US0378331005");
    assert_eq!(body["limit_price"], "120.50");

    let fetched: serde_json::Value = client
        .get(format!("{}{location}", runner.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["id"], body["id"]);

    let invalid = client
        .post(format!("{}/orders", runner.base_url))
        .header("content-type", "application/json")
        .body(r#"{"type":"market","side":"buy","instrument":"US0378331005","limit_price":1,"quantity":1}"#)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
}

/// Posts `count` copies of `body`, a few at a time; returns the order ids.
async fn post_orders(
    client: &reqwest::Client,
    runner: &LocalRunner,
    count: usize,
    body: &str,
) -> Vec<String> {
    futures::stream::iter(0..count)
        .map(|_| async move {
            let response = client
                .post(format!("{}/orders", runner.base_url))
                .header("content-type", "application/json")
                .body(body.to_owned())
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("POST /orders");
            assert_eq!(response.status(), 201, "log:\n{}", runner.log());
            let created: Value = response.json().await.expect("JSON");
            created["id"].as_str().expect("id").to_owned()
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Whether an order in `current` has reached `wanted`. Once placed, the runner's ingester moves
/// an order on with the exchange's fills: `partially_filled` and `filled` were placed first.
fn reached(current: &str, wanted: &str) -> bool {
    current == wanted || (wanted == "placed" && matches!(current, "partially_filled" | "filled"))
}

/// Polls `GET /orders/{id}` until every order is in `status` or past it (anything else final
/// fails the test at once); returns the last view of each.
async fn wait_for_status(
    client: &reqwest::Client,
    runner: &LocalRunner,
    ids: &[String],
    status: &str,
    within: Duration,
) -> HashMap<String, Value> {
    let deadline = Instant::now() + within;
    let mut views: HashMap<String, Value> = HashMap::new();
    loop {
        let waiting: Vec<&String> = ids
            .iter()
            .filter(|id| {
                views
                    .get(*id)
                    .is_none_or(|v| !reached(v["status"].as_str().unwrap_or_default(), status))
            })
            .collect();
        if waiting.is_empty() {
            return views;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders not `{status}` within {within:?}, e.g. {:?}; log:\n{}",
            waiting.len(),
            ids.len(),
            views.get(waiting[0]),
            runner.log()
        );
        let fetched: Vec<Value> = futures::stream::iter(waiting)
            .map(|id| async move {
                client
                    .get(format!("{}/orders/{id}", runner.base_url))
                    .send()
                    .await
                    .expect("GET /orders/{id}")
                    .json::<Value>()
                    .await
                    .expect("JSON")
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for view in fetched {
            let current = view["status"].as_str().unwrap_or_default();
            assert!(
                reached(current, status) || matches!(current, "pending" | "placing"),
                "an order ended `{current}` instead of `{status}`: {view}"
            );
            views.insert(view["id"].as_str().expect("id").to_owned(), view);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn exchange_stats(client: &reqwest::Client, exchange: &str) -> Value {
    client
        .get(format!("{exchange}/stats"))
        .send()
        .await
        .expect("GET /stats")
        .json()
        .await
        .expect("stats JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_places_orders_end_to_end() {
    let suffix = Uuid::new_v4().simple().to_string();
    let exchange_port = local_process::free_port().expect("a free port");
    let runner = LocalRunner::start(&[
        // Through moto (SQS and SNS), so the system tests keep covering it; the first test
        // uses the runner's default embedded SQS endpoint.
        ("SQS_ENDPOINT", "external".into()),
        ("EXCHANGE_SIM_LISTEN", format!("127.0.0.1:{exchange_port}")),
        ("EXCHANGE_SIM_LATENCY_MS", "20".into()),
        ("EXCHANGE_SIM_FAILURE_RATE", "0.1".into()),
        // 10 receives: an order fails only after 10 failures in a row (1e-10 at 10 %).
        ("MAX_RECEIVE_COUNT", "10".into()),
        ("RETRY_BASE_SECONDS", "1".into()),
        ("RETRY_MAX_SECONDS", "1".into()),
        ("POLL_WAIT_SECONDS", "1".into()),
        ("ALERT_TOPIC_NAME", format!("e2e-alerts-{suffix}")),
        ("ALERTS_INBOX_QUEUE_NAME", format!("e2e-inbox-{suffix}")),
    ])
    .await;
    let exchange = format!("http://127.0.0.1:{exchange_port}");
    let client = runner.client();

    let mut ids = post_orders(&client, &runner, 100, LIMIT_ORDER).await;
    ids.extend(post_orders(&client, &runner, 100, MARKET_ORDER).await);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);

    let views = wait_for_status(&client, &runner, &ids, "placed", Duration::from_secs(120)).await;
    let stats = exchange_stats(&client, &exchange).await;
    for id in &ids {
        assert_eq!(stats["placements"][id], 1, "{id} placed exactly once");
        let view = &views[id];
        assert!(view["exchange_order_id"].is_string(), "{view}");
        assert!(view["placed_at"].is_string(), "{view}");
        let attempts = view["attempts"].as_u64().expect("attempts");
        assert!(attempts >= 1);
        assert_eq!(stats["place_calls"][id], attempts, "{view}");
    }
    assert_eq!(stats["total_placed"], 200);
    assert_eq!(stats["max_placements_per_order"], 1);
    assert_eq!(stats["placements"].as_object().map(|o| o.len()), Some(200));
    let log = runner.log();
    assert!(
        !log.lines().any(|l| l.starts_with("ADMIN ALERT")),
        "no order needed an admin:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_rides_out_an_exchange_outage_and_alerts_once_for_what_expired() {
    let suffix = Uuid::new_v4().simple().to_string();
    let topic_name = format!("e2e-alerts-{suffix}");
    let exchange_port = local_process::free_port().expect("a free port");
    let exchange = format!("http://127.0.0.1:{exchange_port}");
    let runner = LocalRunner::start(&[
        // Through moto (SQS and SNS), so the system tests keep covering it; the first test
        // uses the runner's default embedded SQS endpoint.
        ("SQS_ENDPOINT", "external".into()),
        ("EXCHANGE_SIM_LISTEN", format!("127.0.0.1:{exchange_port}")),
        ("EXCHANGE_SIM_LATENCY_MS", "5".into()),
        ("EXCHANGE_SIM_FAILURE_RATE", "1.0".into()),
        // Two receives: without parking, every order would be a dead letter within seconds.
        ("MAX_RECEIVE_COUNT", "2".into()),
        ("RETRY_BASE_SECONDS", "1".into()),
        ("RETRY_MAX_SECONDS", "2".into()),
        ("POLL_WAIT_SECONDS", "1".into()),
        ("SWEEP_INTERVAL_SECONDS", "1".into()),
        ("BREAKER_FAILURE_THRESHOLD", "3".into()),
        ("BREAKER_PROBE_SECONDS", "1".into()),
        ("ALERT_WINDOW_SECONDS", "2".into()),
        ("ALERT_TOPIC_NAME", topic_name.clone()),
        ("ALERTS_INBOX_QUEUE_NAME", format!("e2e-inbox-{suffix}")),
    ])
    .await;

    // The runner drains (and prints) its own inbox; a second subscriber sees every alert too.
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic_arn = ensure_topic(&sns, &topic_name)
        .await
        .expect("the runner's topic");
    let observer = sqs
        .create_queue()
        .queue_name(format!("e2e-observer-{suffix}"))
        .send()
        .await
        .expect("observer queue")
        .queue_url
        .expect("url");
    let observer_arn = queue_arn(&sqs, &observer).await.expect("observer ARN");
    subscribe_queue(&sns, &topic_arn, &observer_arn)
        .await
        .expect("subscribe the observer");

    let client = runner.client();
    let live = post_orders(&client, &runner, 3, LIMIT_ORDER).await;
    let soon = (time::OffsetDateTime::now_utc() + Duration::from_secs(4))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let short = format!(
        r#"{{"type":"market","side":"buy","instrument":"US0378331005","quantity":1,"expires_at":"{soon}"}}"#
    );
    let expiring = post_orders(&client, &runner, 2, &short).await;

    // The exchange stays down well past the old retry budget: the short-lived orders expire,
    // the others wait, none fails.
    wait_for_status(
        &client,
        &runner,
        &expiring,
        "expired",
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let views = wait_for_status(&client, &runner, &live, "pending", Duration::from_secs(5)).await;
    for view in views.values() {
        assert!(view["last_error"].is_string(), "{view}");
    }
    let during = exchange_stats(&client, &exchange).await;
    assert_eq!(during["total_placed"], 0);

    client
        .post(format!("{exchange}/control"))
        .json(&serde_json::json!({"failure_rate": 0.0}))
        .send()
        .await
        .expect("POST /control")
        .error_for_status()
        .expect("control accepted");
    wait_for_status(&client, &runner, &live, "placed", Duration::from_secs(60)).await;
    let after = exchange_stats(&client, &exchange).await;
    for id in &live {
        assert_eq!(after["placements"][id], 1, "{id}: {after}");
    }
    for id in &expiring {
        assert!(
            after["placements"][id].is_null(),
            "expired, never placed: {after}"
        );
    }

    // One incident for the two expired orders: opened, then over; nothing per order.
    let mut alerts: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alerts.iter().any(|a| a["kind"] == "incident_over") && Instant::now() < deadline {
        let messages = sqs
            .receive_message()
            .queue_url(&observer)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive alerts")
            .messages
            .unwrap_or_default();
        for message in messages {
            alerts.push(
                serde_json::from_str(message.body().unwrap_or_default()).expect("JSON alert"),
            );
            sqs.delete_message()
                .queue_url(&observer)
                .set_receipt_handle(message.receipt_handle)
                .send()
                .await
                .expect("delete");
        }
    }
    let kinds: Vec<&str> = alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds, ["incident_opened", "incident_over"], "{alerts:#?}");
    let over = &alerts[1];
    assert_eq!(over["cause"], "expired");
    assert_eq!(over["order_count"], 2);
    let named: HashSet<&str> = over["first_order_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(named, expiring.iter().map(String::as_str).collect());

    // And the runner's own inbox got them: it prints each as an ADMIN ALERT.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = runner.log();
        let printed = log.lines().filter(|l| l.starts_with("ADMIN ALERT")).count();
        if printed >= 2 {
            assert_eq!(printed, 2, "one per incident and phase:\n{log}");
            break;
        }
        assert!(Instant::now() < deadline, "alerts not printed:\n{log}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_with_the_admin_tool_work_until_revoked_and_no_secret_is_logged() {
    let runner = LocalRunner::start(&[]).await;
    let anonymous = reqwest::Client::new();
    let orders_url = format!("{}/orders", runner.base_url);

    let refused = anonymous.get(&orders_url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let health = anonymous
        .get(format!("{}/health", runner.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // An admin creates a key: printed once on stdout; the list shows its id, never the secret.
    let created = runner.orders_admin(&["keys", "create", "--client", "acme", "--label", "e2e"]);
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let key_id = key
        .strip_prefix("sok_")
        .and_then(|rest| rest.split('_').next())
        .expect("sok_<id>_<secret>")
        .to_owned();
    let listed = runner.orders_admin(&["keys", "list", "--client", "acme"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(&key_id), "{listed}");
    assert!(
        !listed.contains(&key),
        "the list never shows a key: {listed}"
    );

    let posted = anonymous
        .post(&orders_url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(LIMIT_ORDER)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201, "log:\n{}", runner.log());
    let order: Value = posted.json().await.unwrap();
    let order_url = format!("{orders_url}/{}", order["id"].as_str().unwrap());
    let mine = anonymous
        .get(&order_url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    // The runner's own client (`local`) does not see acme's order.
    let theirs = runner.client().get(&order_url).send().await.unwrap();
    assert_eq!(theirs.status(), 404);

    // Revoked: the same 401 as no key at all, from the next request on.
    runner.orders_admin(&["keys", "revoke", &key_id]);
    let after = anonymous
        .get(&order_url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let body: Value = after.json().await.unwrap();
    let anonymous_body: Value = anonymous
        .get(&order_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, anonymous_body);

    // Limits set with the tool apply to the next request.
    runner.orders_admin(&[
        "clients",
        "set",
        "acme",
        "--requests-per-second",
        "1",
        "--max-open-orders",
        "5",
    ]);
    let clients = String::from_utf8(runner.orders_admin(&["clients", "list"]).stdout).unwrap();
    assert!(
        clients
            .lines()
            .any(|l| l.starts_with("acme") && l.contains(" 1 ") && l.contains(" 5 ")),
        "{clients}"
    );

    // Nothing secret in this runner's log (the test command searches every runner's log too).
    let log = runner.log();
    assert!(log.lines().count() > 10, "the runner logged: {log}");
    for secret in [
        key.as_str(),
        &key[key.len() - 64..],
        runner.api_key.expose().as_str(),
        system_tests::local_runner::CANARY_PEPPER,
        system_tests::local_runner::CANARY_EXCHANGE_KEY,
        system_tests::local_runner::CANARY_DB_PASSWORD,
    ] {
        assert!(!log.contains(secret), "a secret is in the runner's log");
    }
}

/// Polls until every order is final (anything but `pending`, `placing`, `placed`,
/// `partially_filled`, `pending_cancel`); returns the last view of each.
async fn wait_until_final(
    client: &reqwest::Client,
    runner: &LocalRunner,
    ids: &[String],
    within: Duration,
) -> HashMap<String, Value> {
    let deadline = Instant::now() + within;
    let mut views: HashMap<String, Value> = HashMap::new();
    loop {
        let open: Vec<&String> = ids
            .iter()
            .filter(|id| {
                views.get(*id).is_none_or(|v| {
                    matches!(
                        v["status"].as_str().unwrap_or_default(),
                        "pending" | "placing" | "placed" | "partially_filled" | "pending_cancel"
                    )
                })
            })
            .collect();
        if open.is_empty() {
            return views;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders still open after {within:?}, e.g. {:?}; log:\n{}",
            open.len(),
            ids.len(),
            views.get(open[0]),
            runner.log()
        );
        for id in open {
            let view: Value = client
                .get(format!("{}/orders/{id}", runner.base_url))
                .send()
                .await
                .expect("GET /orders/{id}")
                .json()
                .await
                .expect("JSON");
            views.insert(id.clone(), view);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The whole cancel path over HTTP: the api's `202 pending_cancel`, the cancel message, the
/// placer's call to the simulated exchange, its report on the feed and the runner's ingester —
/// while the exchange keeps filling the same orders. Each order ends one way only: `canceled`
/// with what traded before (its executions end with the `canceled` report of the rest), or
/// `filled` (the fill won; never also canceled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_of_a_working_order_races_its_fills_and_ends_one_way_only() {
    let runner = LocalRunner::start(&[
        // Limit orders fill in parts while the cancels go out: slowly enough that most are still
        // working when their cancel arrives (at 0.3 per 40 ms every order had filled by then on
        // a busy CI machine), often enough that fills and cancels cross.
        ("EXCHANGE_SIM_LATENCY_MS", "5".into()),
        ("EXCHANGE_SIM_FAILURE_RATE", "0".into()),
        ("EXCHANGE_SIM_FILL_INTERVAL_MS", "100".into()),
        ("EXCHANGE_SIM_LIMIT_FILL_RATE", "0.1".into()),
        ("POLL_WAIT_SECONDS", "1".into()),
    ])
    .await;
    let client = runner.client();
    let ids = post_orders(&client, &runner, 40, LIMIT_ORDER).await;
    wait_for_status(&client, &runner, &ids, "placed", Duration::from_secs(120)).await;

    let mut answers: HashMap<u16, usize> = HashMap::new();
    for id in &ids {
        let response = client
            .delete(format!("{}/orders/{id}", runner.base_url))
            .send()
            .await
            .expect("DELETE /orders/{id}");
        let status = response.status().as_u16();
        let view: Value = response.json().await.expect("JSON");
        match status {
            202 => assert_eq!(view["status"], "pending_cancel", "{view}"),
            // The fill won before the cancel was asked for.
            409 => assert!(
                view["message"].as_str().unwrap().contains("`filled`"),
                "{view}"
            ),
            other => panic!("DELETE answered {other}: {view}"),
        }
        *answers.entry(status).or_default() += 1;
    }
    assert!(answers.get(&202).copied().unwrap_or(0) > 0, "{answers:?}");

    let views = wait_until_final(&client, &runner, &ids, Duration::from_secs(120)).await;
    let (mut canceled, mut filled) = (0, 0);
    for id in &ids {
        let view = &views[id];
        let executions: Value = client
            .get(format!("{}/orders/{id}/executions", runner.base_url))
            .send()
            .await
            .expect("GET executions")
            .json()
            .await
            .expect("JSON");
        let executions = executions["executions"].as_array().expect("executions");
        let traded: i64 = executions
            .iter()
            .filter(|e| matches!(e["kind"].as_str(), Some("partial_fill" | "fill")))
            .map(|e| e["quantity"].as_i64().unwrap())
            .sum();
        let filled_quantity = view["filled_quantity"].as_i64().unwrap();
        assert_eq!(traded, filled_quantity, "fills add up: {view}");
        assert_eq!(view["remaining_quantity"], 0, "{view}");
        let ends: Vec<&str> = executions
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .filter(|kind| matches!(*kind, "fill" | "canceled"))
            .collect();
        match view["status"].as_str().unwrap() {
            "canceled" => {
                canceled += 1;
                assert!(filled_quantity < 10, "{view}");
                assert_eq!(ends, ["canceled"], "never both: {view}");
                let rest = executions.last().unwrap();
                assert_eq!(rest["kind"], "canceled", "{view}");
                assert_eq!(rest["quantity"].as_i64().unwrap(), 10 - filled_quantity);
            }
            "filled" => {
                filled += 1;
                assert_eq!(filled_quantity, 10, "{view}");
                assert_eq!(ends, ["fill"], "never both: {view}");
            }
            other => panic!("an order ended `{other}`: {view}"),
        }
        let history: Value = client
            .get(format!("{}/orders/{id}/events", runner.base_url))
            .send()
            .await
            .expect("GET events")
            .json()
            .await
            .expect("JSON");
        let finals = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| matches!(e["to"].as_str(), Some("canceled" | "filled")))
            .count();
        assert_eq!(finals, 1, "one end in the audit trail: {history}");
    }
    assert!(
        canceled > 0,
        "some cancels won: {canceled} canceled, {filled} filled"
    );
    eprintln!("race: {canceled} canceled, {filled} filled");
}
