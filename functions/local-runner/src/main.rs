//! The whole system on one machine: applies migrations, creates the queues and the alert topic,
//! starts the simulated exchange, serves the api Router on a socket, polls the orders queue and
//! the DLQ exactly as Lambda's SQS event source mapping would (calling the same placer and
//! alerter handlers), runs the sweeper on an interval, and prints every admin alert.
//!
//! SQS is an in-process sqs-local endpoint unless `SQS_ENDPOINT` says otherwise: `external` uses
//! the SDK's own configuration (`AWS_ENDPOINT_URL`: moto, LocalStack; or AWS); a URL names the
//! endpoint for SQS alone.
//! Alerts go through SNS to the inbox queue with an external SQS, and straight into the inbox
//! with the embedded one (SNS cannot deliver there); `ALERT_SINK=sns|queue` overrides that, and
//! `PRINT_ALERTS=false` leaves them in the inbox for another tool to read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::http_exchange::HttpExchange;
use order_shared::adapters::postgres::{PostgresAccessControl, PostgresOrderStore, run_migrations};
use order_shared::adapters::secrets::key_hasher;
use order_shared::adapters::sns::{SnsAlertPublisher, SnsClient, ensure_topic, subscribe_queue};
use order_shared::adapters::sqs::{
    QueueTopology, SqsClient, SqsOrderQueue, SqsRetryScheduler, ensure_queues,
};
use order_shared::alerter::{AlerterPorts, handle_dead_letters};
use order_shared::api::{ApiContext, router};
use order_shared::auth::ApiKey;
use order_shared::config::{Env, ExchangeConfig, SweepSettings, placer_settings, process_env};
use order_shared::domain::ClientId;
use order_shared::placer::{PlacerPorts, handle_placement_batch};
use order_shared::ports::{AlertPublisher, ClientLimits, ClientRegistry};
use order_shared::shutdown::shutdown_signal;
use order_shared::sqs_event_source::{self, EventSource};
use order_shared::sweeper::sweep_once;
use order_shared::telemetry::{error_chain, init_tracing};
use sqs_local::sdk::{QueueAlertPublisher, SqsEndpoint};

/// Local settings; every default works with the README's run command.
struct RunnerConfig {
    listen: SocketAddr,
    topology: QueueTopology,
    alert_topic_name: String,
    alerts_inbox_name: String,
    enqueue_timeout: Duration,
    sweep_every: Duration,
    sweep: SweepSettings,
    placer_pollers: usize,
    poll_wait: Duration,
    /// An external exchange; without it the simulated exchange is started.
    exchange_base_url: Option<String>,
    sqs_endpoint: SqsEndpoint,
    /// Where the embedded SQS endpoint listens; default 127.0.0.1:9324 when free, else any port.
    sqs_local_listen: Option<SocketAddr>,
    /// `Some(true)`: alerts through SNS; `Some(false)`: straight into the inbox queue.
    alerts_via_sns: Option<bool>,
    print_alerts: bool,
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
            alert_topic_name: env
                .optional("ALERT_TOPIC_NAME")
                .unwrap_or_else(|| "order-alerts".into()),
            alerts_inbox_name: env
                .optional("ALERTS_INBOX_QUEUE_NAME")
                .unwrap_or_else(|| "order-alerts-inbox".into()),
            enqueue_timeout: env.millis("ENQUEUE_TIMEOUT_MS", 1_000)?,
            sweep_every: env.seconds("SWEEP_INTERVAL_SECONDS", 5)?,
            sweep: SweepSettings::from_env(env)?,
            placer_pollers: env.parsed("PLACER_POLLERS", 4)?,
            poll_wait: env.seconds("POLL_WAIT_SECONDS", 2)?,
            exchange_base_url: env.optional("EXCHANGE_BASE_URL"),
            sqs_endpoint: env
                .optional("SQS_ENDPOINT")
                .unwrap_or_default()
                .parse()
                .map_err(|e| anyhow::anyhow!("SQS_ENDPOINT: {e}"))?,
            sqs_local_listen: env
                .optional("SQS_LOCAL_LISTEN")
                .map(|text| text.parse())
                .transpose()
                .map_err(|e| anyhow::anyhow!("SQS_LOCAL_LISTEN: {e}"))?,
            alerts_via_sns: match env.optional("ALERT_SINK").as_deref() {
                None => None,
                Some("sns") => Some(true),
                Some("queue") => Some(false),
                Some(other) => anyhow::bail!("ALERT_SINK={other:?}: expected `sns` or `queue`"),
            },
            print_alerts: env.parsed("PRINT_ALERTS", true)?,
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
    // SQS clients use this connection; SNS and Secrets Manager keep the SDK's configuration.
    let sqs_connection =
        sqs_local::sdk::connect(&config.sqs_endpoint, &sdk, config.sqs_local_listen)
            .await
            .context("starting the embedded SQS endpoint")?;
    let sqs_sdk = &sqs_connection.sdk;

    let store = PostgresOrderStore::connect(&database, &sdk)
        .await
        .context("connecting to Postgres")?;
    let applied = run_migrations(store.pool())
        .await
        .context("applying migrations")?;
    tracing::info!(?applied, "migrations applied");

    let hasher = key_hasher(&env.pepper()?, &sdk)
        .await
        .map_err(|e| anyhow::anyhow!("the API key pepper (API_KEY_PEPPER): {e}"))?;
    let access = PostgresAccessControl::new(store.pool().clone(), hasher);
    let local_client = match env.optional("LOCAL_API_KEY") {
        Some(text) => Some(
            register_local_key(&access, &text, &env)
                .await
                .context("registering LOCAL_API_KEY")?,
        ),
        None => None,
    };

    let sqs = SqsClient::new(sqs_sdk);
    let queues = ensure_queues(&sqs, &config.topology)
        .await
        .context("creating the queues (is the SQS endpoint running?)")?;
    let inbox = sqs
        .create_queue()
        .queue_name(&config.alerts_inbox_name)
        .send()
        .await
        .context("creating the alerts inbox queue")?
        .queue_url
        .unwrap_or_default();
    let inbox_arn = sqs_event_source::queue_arn(&sqs, &inbox).await?;
    let alerts_via_sns = config
        .alerts_via_sns
        .unwrap_or(!sqs_connection.is_embedded());
    let (alerts, alert_route): (Arc<dyn AlertPublisher>, String) = if alerts_via_sns {
        let sns = SnsClient::new(&sdk);
        let topic_arn = ensure_topic(&sns, &config.alert_topic_name)
            .await
            .context("creating the alert topic")?;
        subscribe_queue(&sns, &topic_arn, &inbox_arn)
            .await
            .context("subscribing the alerts inbox to the topic")?;
        let publisher = SnsAlertPublisher::new(&sdk, topic_arn.clone());
        (
            Arc::new(publisher),
            format!("SNS topic {topic_arn} -> {inbox}"),
        )
    } else {
        let publisher = QueueAlertPublisher::new(sqs_sdk, inbox.clone());
        (Arc::new(publisher), format!("queue {inbox}"))
    };

    // The exchange: an external one, or the simulator in this process.
    let (exchange_url, _simulator) = match &config.exchange_base_url {
        Some(url) => (url.clone(), None),
        None => {
            let settings = exchange_sim::SimSettings::from_env()
                .map_err(|e| anyhow::anyhow!("exchange simulator settings: {e}"))?;
            let handle = exchange_sim::spawn(settings.listen, settings)
                .await
                .context("starting the simulated exchange")?;
            (handle.base_url.clone(), Some(handle))
        }
    };
    let mut exchange_config = ExchangeConfig {
        base_url: exchange_url.clone(),
        api_key: env.optional("EXCHANGE_API_KEY"),
        api_key_secret_arn: None,
        connect_timeout: env.millis("EXCHANGE_CONNECT_TIMEOUT_MS", 1_000)?,
        request_timeout: env.millis("EXCHANGE_TIMEOUT_MS", 5_000)?,
    };
    if exchange_config.api_key.is_none() {
        exchange_config.api_key = env.optional("EXCHANGE_SIM_API_KEY");
    }
    let placer = placer_settings(&env, &exchange_config)?;
    let exchange = Arc::new(HttpExchange::new(
        exchange_config.base_url.clone(),
        exchange_config.api_key.clone(),
        exchange_config.connect_timeout,
        exchange_config.request_timeout,
    )?);

    let store = Arc::new(store);
    let retries = Arc::new(SqsRetryScheduler::new(sqs_sdk, queues.orders.clone()));
    let orders_arn = sqs_event_source::queue_arn(&sqs, &queues.orders).await?;
    let dlq_arn = sqs_event_source::queue_arn(&sqs, &queues.dead_letters).await?;

    // Placer pollers: like Lambda's event source mapping with a few concurrent invocations.
    // Zero pollers: the api alone (the POST benchmark measures it without placement load).
    for _ in 0..config.placer_pollers {
        let (store, exchange, retries, placer) = (
            store.clone(),
            exchange.clone(),
            retries.clone(),
            placer.clone(),
        );
        let source = EventSource {
            queue_url: queues.orders.clone(),
            queue_arn: orders_arn.clone(),
            batch_size: 10,
            wait: config.poll_wait,
        };
        tokio::spawn(sqs_event_source::run(sqs.clone(), source, move |event| {
            let (store, exchange, retries, placer) = (
                store.clone(),
                exchange.clone(),
                retries.clone(),
                placer.clone(),
            );
            async move {
                let ports = PlacerPorts {
                    store: store.as_ref(),
                    exchange: exchange.as_ref(),
                    retries: retries.as_ref(),
                };
                handle_placement_batch(event, ports, &placer).await
            }
        }));
    }

    // Alerter poller on the DLQ.
    {
        let (store, exchange, alerts) = (store.clone(), exchange.clone(), alerts.clone());
        let source = EventSource {
            queue_url: queues.dead_letters.clone(),
            queue_arn: dlq_arn,
            batch_size: 10,
            wait: config.poll_wait,
        };
        tokio::spawn(sqs_event_source::run(sqs.clone(), source, move |event| {
            let (store, exchange, alerts) = (store.clone(), exchange.clone(), alerts.clone());
            async move {
                let ports = AlerterPorts {
                    store: store.as_ref(),
                    exchange: exchange.as_ref(),
                    alerts: alerts.as_ref(),
                };
                handle_dead_letters(event, ports).await
            }
        }));
    }

    // What an admin would receive by e-mail, printed.
    if config.print_alerts {
        let source = EventSource {
            queue_url: inbox.clone(),
            queue_arn: inbox_arn,
            batch_size: 10,
            wait: config.poll_wait,
        };
        tokio::spawn(sqs_event_source::run(
            sqs.clone(),
            source,
            |event| async move {
                for record in &event.records {
                    let body = record.body.as_deref().unwrap_or_default();
                    println!("ADMIN ALERT {body}");
                    tracing::warn!(alert = %body, "admin alert");
                }
                aws_lambda_events::sqs::SqsBatchResponse::default()
            },
        ));
    }

    let sweeper_store = store.clone();
    let sweep_queue = SqsOrderQueue::new(sqs_sdk, queues.orders.clone());
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

    let request_queue = Arc::new(SqsOrderQueue::for_requests(
        sqs_sdk,
        queues.orders.clone(),
        config.enqueue_timeout,
    ));
    let app = router(ApiContext {
        store,
        queue: request_queue,
        access: Arc::new(access),
        enqueue_timeout: config.enqueue_timeout,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    println!("order API        http://{address}  (try http://{address}/health)");
    println!("OpenAPI          http://{address}/openapi.json");
    println!("exchange         {exchange_url}  (stats: {exchange_url}/stats)");
    println!("orders queue     {}", queues.orders);
    println!("dead letters     {}", queues.dead_letters);
    println!("SQS endpoint     {}", sqs_connection.describe());
    println!(
        "admin alerts     {alert_route}{}",
        if config.print_alerts {
            "  (printed here as ADMIN ALERT)"
        } else {
            ""
        }
    );
    println!("sweeper          every {}s", sweep_every.as_secs());
    match &local_client {
        Some(client) => println!("API key          LOCAL_API_KEY, client `{client}`"),
        None => {
            println!("API key          none registered: orders-admin keys create --client <id>")
        }
    }
    tracing::info!(%address, orders_queue = %queues.orders, "local runner listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Makes `LOCAL_API_KEY` a valid key of client `LOCAL_CLIENT_ID` (default `local`), with the
/// limits `LOCAL_REQUESTS_PER_SECOND` and `LOCAL_MAX_OPEN_ORDERS` when given. For local runs, the
/// soak and the benchmarks, which need a key before anyone could run the admin tool; idempotent,
/// so a restarted runner keeps working with the same key. Never done by the Lambda functions.
async fn register_local_key<F: Fn(&str) -> Option<String>>(
    access: &PostgresAccessControl,
    text: &str,
    env: &Env<F>,
) -> anyhow::Result<ClientId> {
    let key = ApiKey::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!("LOCAL_API_KEY: {e} (make one with `orders-admin keys new`)")
    })?;
    let client = ClientId::parse(
        &env.optional("LOCAL_CLIENT_ID")
            .unwrap_or_else(|| "local".into()),
    )
    .map_err(|e| anyhow::anyhow!("LOCAL_CLIENT_ID: {e}"))?;
    let limits = ClientLimits {
        requests_per_second: env
            .optional("LOCAL_REQUESTS_PER_SECOND")
            .map(|v| v.parse())
            .transpose()
            .context("LOCAL_REQUESTS_PER_SECOND")?,
        max_open_orders: env
            .optional("LOCAL_MAX_OPEN_ORDERS")
            .map(|v| v.parse())
            .transpose()
            .context("LOCAL_MAX_OPEN_ORDERS")?,
    };
    access.upsert_client(&client, limits).await?;
    let known = access.list_keys(Some(&client)).await?;
    if known
        .iter()
        .any(|k| k.key_id == *key.id() && k.revoked_at.is_none())
    {
        return Ok(client);
    }
    if known.iter().any(|k| k.key_id == *key.id()) {
        anyhow::bail!("LOCAL_API_KEY {} was revoked", key.id());
    }
    access.create_key(&client, &key, "LOCAL_API_KEY").await?;
    Ok(client)
}
