//! The sweeper Lambda: on each EventBridge schedule tick, enqueue the orders that were committed
//! but never reached SQS.

use lambda_runtime::{LambdaEvent, service_fn};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::sqs::SqsOrderQueue;
use order_shared::config::{SweeperConfig, process_env};
use order_shared::handlers::sweeper::{SweepReport, sweep_once};
use order_shared::telemetry::init_tracing;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = SweeperConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk).await?;
    let queue = SqsOrderQueue::new(&sdk, config.queue_url.clone());
    let settings = config.sweep.clone();
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let report: SweepReport = sweep_once(&store, &queue, &settings).await?;
        Ok::<_, lambda_runtime::Error>(report)
    }))
    .await
}
