//! The live-connect Lambda: API Gateway's WebSocket API calls it for `$connect` (check the API
//! key, store the connection for the fan-out) and `$disconnect` (forget it). `lambda_http` cannot
//! read WebSocket events, so it runs on `lambda_runtime` with `aws_lambda_events`' types.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{LambdaEvent, service_fn};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::{
    PostgresAccessControl, PostgresLiveConnections, PostgresOrderStore,
};
use order_shared::adapters::secrets::key_hasher;
use order_shared::config::{LiveConnectConfig, process_env};
use order_shared::handlers::updates::connections::{ConnectionPorts, handle_connection_event};
use order_shared::telemetry::init_tracing;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = LiveConnectConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk).await?;
    // The first connection opens while the rest of the init runs.
    let warming = store.warm_up();
    let hasher = key_hasher(&config.pepper, &sdk).await?;
    let access = PostgresAccessControl::new(store.pool().clone(), hasher);
    let connections = PostgresLiveConnections::new(store.pool().clone());
    let ports = ConnectionPorts {
        access: &access,
        connections: &connections,
    };
    // Ready before the first event, so that it borrows this connection instead of opening
    // another beside it; bounded by the pool's connect timeout, and an outage only logs.
    let _ = warming.await;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<ApiGatewayProxyResponse, lambda_runtime::Error>(
                handle_connection_event(event.payload, ports).await,
            )
        },
    ))
    .await
}
