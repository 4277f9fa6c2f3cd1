//! The sweeper Lambda: on each EventBridge schedule tick, expire the waiting orders whose time
//! ran out, enqueue the orders that are due but not in the queue (never sent, or parked after a
//! failure), report the parked count, and tell admins about incidents.

use lambda_runtime::{LambdaEvent, service_fn};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::sns::SnsAlertPublisher;
use order_shared::adapters::sqs::SqsOrderQueue;
use order_shared::config::{SweeperConfig, process_env};
use order_shared::handlers::sweeper::{SweeperPorts, TickReport, run_scheduled};
use order_shared::telemetry::init_tracing;
use order_shared::telemetry::metrics::{flush_metrics, init_metrics};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let metrics = init_metrics("sweeper");
    let config = SweeperConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk)
        .await?
        .with_idempotency_retention(config.idempotency_retention);
    // The first connection opens while the rest of the init runs.
    let warming = store.warm_up();
    let queue = SqsOrderQueue::new(&sdk, config.queue_url.clone());
    let alerts = SnsAlertPublisher::new(&sdk, config.alert_topic_arn.clone());
    let ports = SweeperPorts {
        store: &store,
        incidents: &store,
        queue: &queue,
        alerts: &alerts,
    };
    let settings = &config.sweep;
    // Ready before the first event, so that it borrows this connection instead of opening
    // another beside it; bounded by the pool's connect timeout, and an outage only logs.
    let _ = warming.await;
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async move {
        let report: TickReport = run_scheduled(ports, settings).await?;
        flush_metrics(metrics);
        Ok::<_, lambda_runtime::Error>(report)
    }))
    .await
}
