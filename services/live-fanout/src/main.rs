//! The live-update fan-out service: wires tracing → config → the database pool and the API
//! Gateway Management API client → the fan-out loop, until SIGTERM or Ctrl-C. Not a Lambda: it
//! polls the audit trail for as long as it runs (in AWS, an ECS service of exactly one task, from
//! the ingester's image: two would send every message twice). It keeps no session state on its
//! database connections (no `LISTEN`), so it goes through RDS Proxy like every other function.

use std::sync::Arc;

use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::connection_push::ApiGatewayPush;
use order_shared::adapters::postgres::{
    PostgresLiveConnections, PostgresOrderStore, PostgresOrderUpdates,
};
use order_shared::adapters::shutdown::shutdown_signal;
use order_shared::config::{LiveFanoutConfig, process_env};
use order_shared::handlers::updates::fanout::{Fanout, FanoutPorts};
use order_shared::telemetry::init_tracing;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = LiveFanoutConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk).await?;
    let pool = store.pool().clone();
    let fanout = Fanout::start(
        FanoutPorts {
            updates: Arc::new(PostgresOrderUpdates::new(pool.clone())),
            connections: Arc::new(PostgresLiveConnections::new(pool)),
            push: Arc::new(ApiGatewayPush::new(&sdk, &config.endpoint)),
        },
        config.fanout,
    )
    .await?;
    tracing::info!(endpoint = %config.endpoint, "live-update fan-out starting");
    fanout.run(shutdown_signal()).await;
    Ok(())
}
