//! The alerter Lambda: triggered by the orders dead-letter queue; resolves each order the placer
//! gave up on (lookup, else `failed`) and alerts the admins through SNS.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::exchange_key::connect_exchange;
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::sns::SnsAlertPublisher;
use order_shared::config::{AlerterConfig, process_env};
use order_shared::handlers::alerter::{AlerterPorts, handle_dead_letters};
use order_shared::telemetry::init_tracing;
use order_shared::telemetry::metrics::{flush_metrics, init_metrics};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let metrics = init_metrics("alerter");
    let config = AlerterConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk).await?;
    // The first connection opens while the rest of the init runs.
    let warming = store.warm_up();
    let exchange = connect_exchange(&config.exchange, &sdk).await?;
    let alerts = SnsAlertPublisher::new(&sdk, config.alert_topic_arn.clone());
    let ports = AlerterPorts {
        store: &store,
        incidents: &store,
        exchange: &exchange,
        alerts: &alerts,
    };
    let settings = &config.alerter;
    // Ready before the first event, so that it borrows this connection instead of opening
    // another beside it; bounded by the pool's connect timeout, and an outage only logs.
    let _ = warming.await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let response = handle_dead_letters(event.payload, ports, settings).await;
        flush_metrics(metrics);
        Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}
