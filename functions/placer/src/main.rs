//! The placer Lambda: triggered by the orders queue (batch, `ReportBatchItemFailures`); wires
//! the store, the exchange client and the back-off scheduler once, at cold start.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::exchange_key::connect_exchange;
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::sqs::SqsRetryScheduler;
use order_shared::config::{PlacerConfig, process_env};
use order_shared::handlers::placer::{PlacerPorts, handle_placement_batch};
use order_shared::telemetry::init_tracing;
use order_shared::telemetry::metrics::{flush_metrics, init_metrics};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let metrics = init_metrics("placer");
    let config = PlacerConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk).await?;
    // The first connection opens while the rest of the init runs.
    let warming = store.warm_up();
    let exchange = connect_exchange(&config.exchange, &sdk).await?;
    let retries = SqsRetryScheduler::new(&sdk, config.queue_url.clone());
    let ports = PlacerPorts {
        store: &store,
        exchange: &exchange,
        retries: &retries,
        // The breaker's state is a row beside the orders: every instance sees the same one.
        breaker: &store,
    };
    let settings = &config.placer;
    // Ready before the first event, so that it borrows this connection instead of opening
    // another beside it; bounded by the pool's connect timeout, and an outage only logs.
    let _ = warming.await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let response = handle_placement_batch(event.payload, ports, settings).await;
        flush_metrics(metrics);
        Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}
