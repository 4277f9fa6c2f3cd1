//! The whole system on one machine: applies migrations, creates the queues, serves the api
//! Router on a socket and runs the sweeper on an interval — the same handlers Lambda runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::{PostgresOrderStore, run_migrations};
use order_shared::adapters::sqs::{QueueTopology, SqsClient, SqsOrderQueue, ensure_queues};
use order_shared::api::{ApiContext, router};
use order_shared::config::{Env, SweepSettings, process_env};
use order_shared::sweeper::sweep_once;
use order_shared::telemetry::{error_chain, init_tracing};

/// Local settings; every default works with the README's run command.
struct RunnerConfig {
    listen: SocketAddr,
    topology: QueueTopology,
    enqueue_timeout: Duration,
    sweep_every: Duration,
    sweep: SweepSettings,
}

impl RunnerConfig {
    fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> anyhow::Result<Self> {
        Ok(Self {
            listen: env.parsed("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?,
            topology: QueueTopology {
                orders_name: env
                    .optional("ORDERS_QUEUE_NAME")
                    .unwrap_or_else(|| "orders".into()),
                dead_letters_name: env
                    .optional("ORDERS_DLQ_NAME")
                    .unwrap_or_else(|| "orders-dlq".into()),
                max_receive_count: env.parsed("MAX_RECEIVE_COUNT", 5)?,
                visibility_timeout_seconds: env.parsed("VISIBILITY_TIMEOUT_SECONDS", 30)?,
            },
            enqueue_timeout: env.millis("ENQUEUE_TIMEOUT_MS", 1_000)?,
            sweep_every: env.seconds("SWEEP_INTERVAL_SECONDS", 5)?,
            sweep: SweepSettings::from_env(env)?,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let env = process_env();
    let config = RunnerConfig::from_env(&env)?;
    // Locally many requests share one process, unlike a Lambda instance.
    let database = env.database(16)?;
    let sdk = aws_sdk_config().await;

    let store = PostgresOrderStore::connect(&database, &sdk)
        .await
        .context("connecting to Postgres")?;
    let applied = run_migrations(store.pool())
        .await
        .context("applying migrations")?;
    tracing::info!(?applied, "migrations applied");

    let sqs = SqsClient::new(&sdk);
    let queues = ensure_queues(&sqs, &config.topology)
        .await
        .context("creating the queues (is the SQS endpoint in AWS_ENDPOINT_URL running?)")?;

    let store: Arc<PostgresOrderStore> = Arc::new(store);
    let request_queue = Arc::new(SqsOrderQueue::for_requests(
        &sdk,
        queues.orders.clone(),
        config.enqueue_timeout,
    ));
    let sweep_queue = SqsOrderQueue::new(&sdk, queues.orders.clone());

    let sweeper_store = store.clone();
    let sweep = config.sweep.clone();
    let sweep_every = config.sweep_every;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(sweep_every);
        loop {
            ticks.tick().await;
            if let Err(error) = sweep_once(sweeper_store.as_ref(), &sweep_queue, &sweep).await {
                tracing::error!(error = %error_chain(&error), "sweep failed");
            }
        }
    });

    let app = router(ApiContext {
        store,
        queue: request_queue,
        enqueue_timeout: config.enqueue_timeout,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    println!("order API        http://{address}  (try http://{address}/health)");
    println!("OpenAPI          http://{address}/openapi.json");
    println!("orders queue     {}", queues.orders);
    println!("dead letters     {}", queues.dead_letters);
    println!("sweeper          every {}s", sweep_every.as_secs());
    tracing::info!(%address, orders_queue = %queues.orders, "local runner listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Ctrl-C in a terminal, SIGTERM from a supervisor or a test harness.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
