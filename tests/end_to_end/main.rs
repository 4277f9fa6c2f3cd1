//! End to end over real HTTP: the local runner started by the README's run command.

use std::time::Duration;

use system_tests::LIMIT_ORDER;
use system_tests::local_runner::LocalRunner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_serves_orders_over_http() {
    let runner = LocalRunner::start(&[]).await;
    let client = reqwest::Client::new();

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
