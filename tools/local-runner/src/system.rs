//! The whole system on one machine, wired once: `LocalSystem::start` applies migrations (over a
//! direct connection of their own when one is configured), creates the queues and the alert
//! route, starts the simulated exchange (unless an external one is configured) and builds every
//! adapter and handler port exactly as the Lambdas' `main`s do.
//! The runner's `main` then starts the background triggers and serves the api on a socket; the
//! test harness drives the same handlers step by step. Either way it is this wiring that runs.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_lambda_events::sqs::SqsBatchResponse;
use exchange_sim::SimHandle;
use order_shared::adapters::feed_socket::{FeedSocket, FeedSocketConfig};
use order_shared::adapters::http_exchange::HttpExchange;
use order_shared::adapters::postgres::{
    PostgresAccessControl, PostgresExecutionStore, PostgresOrderStore, PostgresOrderUpdates,
    build_pool, run_migrations,
};
use order_shared::adapters::secrets::key_hasher;
use order_shared::adapters::sns::{SnsAlertPublisher, SnsClient, ensure_topic, subscribe_queue};
use order_shared::adapters::sqs::{
    QueueUrls, SqsClient, SqsOrderQueue, SqsRetryScheduler, ensure_queues,
};
use order_shared::domain::ClientId;
use order_shared::domain::ExpiryPolicy;
use order_shared::handlers::alerter::{AlerterPorts, AlerterSettings, handle_dead_letters};
use order_shared::handlers::api::{ApiContext, ApiDoc, router};
use order_shared::handlers::docs;
use order_shared::handlers::ingester::run_ingester;
use order_shared::handlers::live_page::{self, UpdatesEndpoint};
use order_shared::handlers::placer::{PlacerPorts, PlacerSettings, handle_placement_batch};
use order_shared::handlers::sweeper::{SweepSettings, SweeperPorts, run_scheduled};
use order_shared::handlers::updates::{self, HubSettings, UpdateHub, UpdatesContext};
use order_shared::ports::{AlertPublisher, ClientRegistry, OrderUpdateStore};
use order_shared::telemetry::error_chain;
use order_shared::usecases::enqueue::EnqueuedMarks;
use sqs_local::sdk::SqsConnection;
use tokio::task::JoinHandle;
use utoipa::OpenApi;

use crate::alerts::QueueAlertPublisher;
use crate::config::{Background, ExchangeChoice, LocalConfig, LocalKey};
use crate::event_source::{self, EventSource};

/// The running system's parts; background tasks stop when it is dropped.
pub struct LocalSystem {
    pub store: Arc<PostgresOrderStore>,
    pub access: PostgresAccessControl,
    /// SQS as every adapter here sees it (the embedded endpoint or the configured one).
    pub sqs_sdk: SdkConfig,
    pub sqs: SqsClient,
    pub queues: QueueUrls,
    pub orders_source: EventSource,
    pub dead_letter_source: EventSource,
    pub alerts_inbox: EventSource,
    pub alerts: Arc<dyn AlertPublisher>,
    /// Where alerts go, for the start-up summary.
    pub alert_route: String,
    pub exchange: Arc<HttpExchange>,
    pub exchange_url: String,
    /// The in-process simulator, when no external exchange is configured.
    pub simulator: Option<SimHandle>,
    pub retries: Arc<SqsRetryScheduler>,
    pub placer: PlacerSettings,
    pub alerter: AlerterSettings,
    pub sweep: SweepSettings,
    pub enqueue_timeout: std::time::Duration,
    pub expiry: ExpiryPolicy,
    /// The client of `LOCAL_API_KEY`, once registered.
    pub local_client: Option<ClientId>,
    /// Where the live order page (`/live`) opens its WebSocket: this runner's own updates port.
    live_updates: Option<UpdatesEndpoint>,
    sqs_connection: SqsConnection,
    background: Vec<JoinHandle<()>>,
}

impl Drop for LocalSystem {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl LocalSystem {
    /// Builds everything from `config`; AWS clients other than SQS (SNS, Secrets Manager) use
    /// `sdk` as given.
    pub async fn start(config: &LocalConfig, sdk: &SdkConfig) -> anyhow::Result<Self> {
        let sqs_connection =
            sqs_local::sdk::connect(&config.sqs_endpoint, sdk, config.sqs_local_listen)
                .await
                .context("starting the embedded SQS endpoint")?;
        let sqs_sdk = sqs_connection.sdk.clone();

        let store = PostgresOrderStore::connect(&config.database, sdk)
            .await
            .context("connecting to Postgres")?
            .with_idempotency_retention(config.idempotency_retention);
        let applied = match &config.migration_database {
            Some(direct) => {
                // Dropped (and closed) once the migrations are applied.
                let pool = build_pool(direct, None)
                    .await
                    .context("connecting to Postgres for migrations (MIGRATION_DATABASE_URL)")?;
                run_migrations(&pool).await
            }
            None => run_migrations(store.pool()).await,
        }
        .context("applying migrations")?;
        tracing::info!(?applied, "migrations applied");
        let hasher = key_hasher(&config.pepper, sdk)
            .await
            .map_err(|e| anyhow::anyhow!("the API key pepper (API_KEY_PEPPER): {e}"))?;
        let access = PostgresAccessControl::new(store.pool().clone(), hasher)
            .with_idempotency_retention(config.idempotency_retention);
        let local_client = match &config.local_key {
            Some(local) => Some(
                register_local_key(&access, local)
                    .await
                    .context("registering LOCAL_API_KEY")?,
            ),
            None => None,
        };

        let sqs = SqsClient::new(&sqs_sdk);
        let queues = ensure_queues(&sqs, &config.topology)
            .await
            .context("creating the queues (is the SQS endpoint running?)")?;
        let source = |queue_url: &str, queue_arn: String| EventSource {
            queue_url: queue_url.to_owned(),
            queue_arn,
            batch_size: 10,
            wait: config.background.poll_wait,
        };
        let orders_source = source(
            &queues.orders,
            event_source::queue_arn(&sqs, &queues.orders).await?,
        );
        let dead_letter_source = source(
            &queues.dead_letters,
            event_source::queue_arn(&sqs, &queues.dead_letters).await?,
        );
        let inbox = sqs
            .create_queue()
            .queue_name(&config.alerts_inbox_name)
            .send()
            .await
            .context("creating the alerts inbox queue")?
            .queue_url
            .unwrap_or_default();
        let alerts_inbox = source(&inbox, event_source::queue_arn(&sqs, &inbox).await?);
        let via_sns = config
            .alerts_via_sns
            .unwrap_or(!sqs_connection.is_embedded());
        let (alerts, alert_route): (Arc<dyn AlertPublisher>, String) = if via_sns {
            let sns = SnsClient::new(sdk);
            let topic_arn = ensure_topic(&sns, &config.alert_topic_name)
                .await
                .context("creating the alert topic")?;
            subscribe_queue(&sns, &topic_arn, &alerts_inbox.queue_arn)
                .await
                .context("subscribing the alerts inbox to the topic")?;
            (
                Arc::new(SnsAlertPublisher::new(sdk, topic_arn.clone())),
                format!("SNS topic {topic_arn} -> {inbox}"),
            )
        } else {
            (
                Arc::new(QueueAlertPublisher::new(&sqs_sdk, inbox.clone())),
                format!("queue {inbox}"),
            )
        };

        let (exchange_url, simulator, sim_key) = match &config.exchange {
            ExchangeChoice::External { base_url } => (base_url.clone(), None, None),
            ExchangeChoice::Simulated(settings) => {
                let handle = exchange_sim::spawn(settings.listen, (**settings).clone())
                    .await
                    .context("starting the simulated exchange")?;
                (
                    handle.base_url.clone(),
                    Some(handle),
                    settings.api_key.clone(),
                )
            }
        };
        let exchange = Arc::new(HttpExchange::new(
            exchange_url.clone(),
            config.exchange_api_key.clone().or(sim_key),
            config.exchange_connect_timeout,
            config.exchange_timeout,
        )?);
        let retries = Arc::new(SqsRetryScheduler::new(&sqs_sdk, queues.orders.clone()));

        Ok(Self {
            store: Arc::new(store),
            access,
            sqs_sdk,
            sqs,
            queues,
            orders_source,
            dead_letter_source,
            alerts_inbox,
            alerts,
            alert_route,
            exchange,
            exchange_url,
            simulator,
            retries,
            placer: config.placer.clone(),
            alerter: AlerterSettings {
                alert_window: config.sweep.alert_window,
                dead_letter_resends: config.dead_letter_resends,
            },
            sweep: config.sweep.clone(),
            enqueue_timeout: config.enqueue_timeout,
            expiry: config.expiry,
            local_client,
            live_updates: local_updates_endpoint(config.updates_listen),
            sqs_connection,
            background: Vec::new(),
        })
    }

    /// What the api handlers reach, as the api Lambda wires it.
    pub fn api_context(&self) -> ApiContext {
        ApiContext {
            store: self.store.clone(),
            queue: Arc::new(SqsOrderQueue::single_attempt(
                &self.sqs_sdk,
                self.queues.orders.clone(),
            )),
            access: Arc::new(self.access.clone()),
            orders: Arc::new(self.access.clone()),
            enqueued_marks: EnqueuedMarks::start(self.store.clone()),
            enqueue_timeout: self.enqueue_timeout,
            expiry: self.expiry,
        }
    }

    /// What the local API port serves: the reference page, the OpenAPI document and the live
    /// order page as the docs Lambda does (open to all), and every other path by the api as the
    /// api Lambda does; in AWS API Gateway's routes make the same split.
    pub fn router(&self) -> axum::Router {
        docs::router(ApiDoc::openapi())
            .merge(live_page::router(self.live_updates.clone()))
            .fallback_service(router(self.api_context()))
    }

    /// The live order updates (`GET /updates`, a WebSocket): the same session code an API
    /// Gateway WebSocket API would front, with a hub polling this system's audit trail.
    pub async fn updates_router(&self) -> anyhow::Result<axum::Router> {
        let store: Arc<dyn OrderUpdateStore> =
            Arc::new(PostgresOrderUpdates::new(self.store.pool().clone()));
        let hub = UpdateHub::start(store.clone(), HubSettings::default()).await?;
        Ok(updates::router(UpdatesContext {
            access: Arc::new(self.access.clone()),
            store,
            hub: Arc::new(hub),
            recheck: std::time::Duration::from_secs(2),
        }))
    }

    pub fn placer_ports(&self) -> PlacerPorts<'_> {
        PlacerPorts {
            store: self.store.as_ref(),
            exchange: self.exchange.as_ref(),
            retries: self.retries.as_ref(),
            breaker: self.store.as_ref(),
        }
    }

    /// The alerter's ports, publishing through `alerts` (normally `self.alerts`).
    pub fn alerter_ports<'a>(&'a self, alerts: &'a dyn AlertPublisher) -> AlerterPorts<'a> {
        AlerterPorts {
            store: self.store.as_ref(),
            incidents: self.store.as_ref(),
            exchange: self.exchange.as_ref(),
            alerts,
        }
    }

    /// The queue adapter of background senders (the sweeper, the admin tool): SDK retries on.
    pub fn background_queue(&self) -> SqsOrderQueue {
        SqsOrderQueue::new(&self.sqs_sdk, self.queues.orders.clone())
    }

    /// The execution feed the ingester reads: the configured one, or the in-process
    /// simulator's. `None`: no ingester (an external exchange without `EXECUTION_FEED_URL`).
    fn feed_url(&self, background: &Background) -> Option<String> {
        let ingester = background.ingester.as_ref()?;
        ingester
            .feed_url
            .clone()
            .or_else(|| self.simulator.as_ref().map(|sim| sim.feed_url()))
    }

    /// Plays Lambda's triggers: placer pollers on the orders queue, the alerter on the DLQ, the
    /// sweeper on its schedule, the ingester on the execution feed (a service in AWS), and (if
    /// asked) prints every admin alert.
    pub fn start_background(&mut self, background: &Background) {
        if let (Some(ingester), Some(url)) = (&background.ingester, self.feed_url(background)) {
            let feed = FeedSocket::new(FeedSocketConfig {
                url,
                api_key: self
                    .simulator
                    .as_ref()
                    .and_then(|sim| sim.settings().api_key),
                connect_timeout: std::time::Duration::from_secs(2),
                silence_timeout: std::time::Duration::from_secs(30),
            });
            let store = PostgresExecutionStore::new(self.store.pool().clone());
            let settings = ingester.settings.clone();
            // The in-process simulator's feed starts over with each run (sequence 1 again); the
            // cursor of the last run would be ahead of it.
            let new_feed = ingester.feed_url.is_none();
            self.background.push(tokio::spawn(async move {
                if new_feed {
                    if let Err(error) = store.restart_feed().await {
                        tracing::error!(error = %error_chain(&error), "cannot reset the feed cursor");
                        return;
                    }
                }
                run_ingester(&feed, &store, &settings, std::future::pending::<()>()).await;
            }));
        }

        for _ in 0..background.placer_pollers {
            let (store, exchange, retries, placer) = (
                self.store.clone(),
                self.exchange.clone(),
                self.retries.clone(),
                self.placer.clone(),
            );
            self.spawn_poller(self.orders_source.clone(), move |event| {
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
                        breaker: store.as_ref(),
                    };
                    handle_placement_batch(event, ports, &placer).await
                }
            });
        }

        let (store, exchange, alerts, alerter) = (
            self.store.clone(),
            self.exchange.clone(),
            self.alerts.clone(),
            self.alerter,
        );
        self.spawn_poller(self.dead_letter_source.clone(), move |event| {
            let (store, exchange, alerts) = (store.clone(), exchange.clone(), alerts.clone());
            async move {
                let ports = AlerterPorts {
                    store: store.as_ref(),
                    incidents: store.as_ref(),
                    exchange: exchange.as_ref(),
                    alerts: alerts.as_ref(),
                };
                handle_dead_letters(event, ports, &alerter).await
            }
        });

        if background.print_alerts {
            self.spawn_poller(self.alerts_inbox.clone(), |event| async move {
                for record in &event.records {
                    let body = record.body.as_deref().unwrap_or_default();
                    println!("ADMIN ALERT {body}");
                    tracing::warn!(alert = %body, "admin alert");
                }
                SqsBatchResponse::default()
            });
        }

        let (store, queue, alerts, sweep) = (
            self.store.clone(),
            self.background_queue(),
            self.alerts.clone(),
            self.sweep.clone(),
        );
        let every = background.sweep_every;
        self.background.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let ports = SweeperPorts {
                    store: store.as_ref(),
                    incidents: store.as_ref(),
                    queue: &queue,
                    alerts: alerts.as_ref(),
                };
                if let Err(error) = run_scheduled(ports, &sweep).await {
                    tracing::error!(error = %error_chain(&error), "sweep failed");
                }
            }
        }));
    }

    fn spawn_poller<H, Fut>(&mut self, source: EventSource, handler: H)
    where
        H: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = SqsBatchResponse> + Send + 'static,
    {
        self.background.push(tokio::spawn(event_source::run(
            self.sqs.clone(),
            source,
            handler,
        )));
    }

    /// The start-up summary: where everything is.
    pub fn describe(
        &self,
        api: SocketAddr,
        updates: SocketAddr,
        background: &Background,
    ) -> String {
        let exchange_url = &self.exchange_url;
        let mut lines = vec![
            format!("order API        http://{api}  (try http://{api}/health)"),
            format!("API reference    http://{api}/docs  (Swagger UI; no key needed to read)"),
            format!("OpenAPI          http://{api}/openapi.json"),
            format!(
                "live order page  http://{api}/live  (enter a key: your orders, updated as they \
                 change)"
            ),
            format!(
                "live updates     ws://{updates}/updates  (Authorization: Bearer <key>; \
                 ?after=<event_id> resumes)"
            ),
            format!("exchange         {exchange_url}  (stats: {exchange_url}/stats)"),
            format!("orders queue     {}", self.queues.orders),
            format!("dead letters     {}", self.queues.dead_letters),
            format!("SQS endpoint     {}", self.sqs_connection.describe()),
            format!(
                "admin alerts     {}{}",
                self.alert_route,
                if background.print_alerts {
                    "  (printed here as ADMIN ALERT)"
                } else {
                    ""
                }
            ),
            format!(
                "sweeper          every {}s",
                background.sweep_every.as_secs()
            ),
            match self.feed_url(background) {
                Some(url) => format!(
                    "ingester         {url}  (fills: order status partially_filled/filled; \
                     rows in `executions`)"
                ),
                None => "ingester         off (LOCAL_INGESTER=false, or an external exchange \
                         without EXECUTION_FEED_URL)"
                    .into(),
            },
        ];
        lines.push(match &self.local_client {
            Some(client) => format!("API key          LOCAL_API_KEY, client `{client}`"),
            None => {
                "API key          none registered: orders-admin keys create --client <id>".into()
            }
        });
        lines.join("\n")
    }
}

/// The live-update URL the page gets: `ws://<updates address>/updates`, on loopback when the
/// runner listens on every interface; `None` for port 0 (the bound port is not known here).
fn local_updates_endpoint(listen: SocketAddr) -> Option<UpdatesEndpoint> {
    if listen.port() == 0 {
        return None;
    }
    let host = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("ws://{}/updates", SocketAddr::new(host, listen.port()))
        .parse()
        .ok()
}

/// Makes `LOCAL_API_KEY` a valid key of its client with the given limits. For local runs, the
/// soak and the benchmarks, which need a key before anyone could run the admin tool; idempotent,
/// so a restarted runner keeps working with the same key. Never done by the Lambda functions.
async fn register_local_key(
    access: &PostgresAccessControl,
    local: &LocalKey,
) -> anyhow::Result<ClientId> {
    let (key, client) = (&local.key, &local.client);
    access.upsert_client(client, local.limits).await?;
    let known = access.list_keys(Some(client)).await?;
    if known
        .iter()
        .any(|k| k.key_id == *key.id() && k.revoked_at.is_none())
    {
        return Ok(client.clone());
    }
    if known.iter().any(|k| k.key_id == *key.id()) {
        anyhow::bail!("LOCAL_API_KEY {} was revoked", key.id());
    }
    access.create_key(client, key, "LOCAL_API_KEY").await?;
    Ok(client.clone())
}
