//! `make run`: the whole system on one machine — the api on a socket, the placer and alerter
//! polling their queues as Lambda's event source mapping would, the sweeper on an interval, the
//! simulated exchange, and every admin alert printed.
//!
//! SQS is an in-process sqs-local endpoint unless `SQS_ENDPOINT` says otherwise: `external` uses
//! the SDK's own configuration (`AWS_ENDPOINT_URL`: moto, LocalStack; or AWS); a URL names the
//! endpoint for SQS alone. Alerts go through SNS to the inbox queue with an external SQS, and
//! straight into the inbox with the embedded one (SNS cannot deliver there); `ALERT_SINK=sns|queue`
//! overrides that, and `PRINT_ALERTS=false` leaves them in the inbox for another tool to read.

use anyhow::Context;
use local_process::shutdown_signal;
use local_runner::{LocalConfig, LocalSystem};
use order_shared::adapters::aws_sdk_config;
use order_shared::config::process_env;
use order_shared::telemetry::init_tracing;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = LocalConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let mut system = LocalSystem::start(&config, &sdk).await?;
    system.start_background(&config.background);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    let updates_listener = tokio::net::TcpListener::bind(config.updates_listen)
        .await
        .with_context(|| format!("binding {}", config.updates_listen))?;
    let updates_address = updates_listener.local_addr()?;
    let updates = system.updates_router().await?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(updates_listener, updates).await {
            tracing::error!(%error, "the live-update server stopped");
        }
    });
    println!(
        "{}",
        system.describe(address, updates_address, &config.background)
    );
    tracing::info!(%address, %updates_address, orders_queue = %system.queues.orders, "local runner listening");
    axum::serve(listener, system.router())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
