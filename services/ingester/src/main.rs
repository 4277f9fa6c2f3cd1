//! The ingester service: wires tracing → config → the database pool and the feed client → the
//! ingester loop, until SIGTERM or Ctrl-C (a container's stop), when it gives its lease up so
//! that a successor need not wait it out. Not a Lambda: it holds a WebSocket for as long as it
//! runs (in AWS, a one-task ECS service).

use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::exchange_key::resolve_api_key;
use order_shared::adapters::feed_socket::FeedSocket;
use order_shared::adapters::postgres::{PostgresExecutionStore, PostgresOrderStore};
use order_shared::adapters::shutdown::shutdown_signal;
use order_shared::config::{IngesterConfig, process_env};
use order_shared::handlers::ingester::run_ingester;
use order_shared::telemetry::init_tracing;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = IngesterConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let orders = PostgresOrderStore::connect(&config.database, &sdk).await?;
    let store = PostgresExecutionStore::new(orders.pool().clone());
    let mut feed_config = config.feed.clone();
    feed_config.api_key = resolve_api_key(
        config.feed.api_key.as_deref(),
        config.exchange_api_key_secret_arn.as_deref(),
        &sdk,
    )
    .await
    .map_err(|e| anyhow::anyhow!("reading the exchange API key: {e}"))?;
    let feed = FeedSocket::new(feed_config);
    tracing::info!(holder = %config.ingester.holder, feed = %config.feed.url, "ingester starting");
    run_ingester(&feed, &store, &config.ingester, shutdown_signal()).await;
    Ok(())
}
