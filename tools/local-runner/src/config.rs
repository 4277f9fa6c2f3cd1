//! The local runner's settings: every environment variable it reads, read here and only here, so
//! that `LocalSystem::start` can be called with a config built in code (the test harness) exactly
//! as with one built from the environment (`make run`, the soak). Every default works with the
//! README's run command.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use exchange_sim::SimSettings;
use order_shared::adapters::postgres::{DatabaseConfig, DatabaseCredentials};
use order_shared::adapters::secrets::PepperSource;
use order_shared::adapters::sqs::QueueTopology;
use order_shared::auth::ApiKey;
use order_shared::config::{
    Env, expiry_policy, idempotency_retention, ingester_settings, placer_settings, sweep_settings,
};
use order_shared::domain::{ClientId, ExpiryPolicy};
use order_shared::handlers::ingester::IngesterSettings;
use order_shared::handlers::placer::PlacerSettings;
use order_shared::handlers::sweeper::SweepSettings;
use order_shared::ports::ClientLimits;
use sqs_local::sdk::SqsEndpoint;

/// Everything `LocalSystem::start` needs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// What the functions' adapters use (`DATABASE_URL`): the api, placer, alerter, sweeper.
    pub database: DatabaseConfig,
    /// Where migrations run (`MIGRATION_DATABASE_URL`); `None`: over `database`. A transaction
    /// pooler (PgBouncer, RDS Proxy) serves the functions, while migrations connect directly,
    /// as the migrator does in AWS.
    pub migration_database: Option<DatabaseConfig>,
    pub pepper: PepperSource,
    /// A key registered at start (`LOCAL_API_KEY`), so that the system is usable at once.
    pub local_key: Option<LocalKey>,
    /// SQS: the embedded endpoint, the SDK's configured one (`external`), or a URL.
    pub sqs_endpoint: SqsEndpoint,
    /// Where the embedded SQS endpoint listens; default 127.0.0.1:9324 when free, else any port.
    pub sqs_local_listen: Option<SocketAddr>,
    pub topology: QueueTopology,
    pub alert_topic_name: String,
    pub alerts_inbox_name: String,
    /// `Some(true)`: alerts through SNS; `Some(false)`: straight into the inbox queue; `None`:
    /// SNS unless SQS is the embedded endpoint (which SNS cannot deliver to).
    pub alerts_via_sns: Option<bool>,
    pub exchange: ExchangeChoice,
    /// The key the exchange client sends; without it, the simulator's own key (if it has one).
    pub exchange_api_key: Option<String>,
    pub exchange_connect_timeout: Duration,
    pub exchange_timeout: Duration,
    pub placer: PlacerSettings,
    pub sweep: SweepSettings,
    /// How many times the alerter sends a dead-lettered pending order again before failing it
    /// (`ALERTER_DEAD_LETTER_RESENDS`).
    pub dead_letter_resends: u32,
    /// The bound of the one SQS send a `POST /orders` makes.
    pub enqueue_timeout: Duration,
    /// Each accepted order's time in force (`MARKET_ORDER_TTL_SECONDS`).
    pub expiry: ExpiryPolicy,
    /// How long an idempotency key names its order (`IDEMPOTENCY_KEY_RETENTION_SECONDS`); the
    /// runner's sweeper releases older keys.
    pub idempotency_retention: Duration,
    /// The pollers and the sweeper that play Lambda's triggers; the test harness drives the
    /// handlers step by step instead and leaves this unused.
    pub background: Background,
    /// The api's address.
    pub listen: SocketAddr,
    /// Where the live order updates (`ws://…/updates`) are served: their own port, as API
    /// Gateway's WebSocket API is its own endpoint (port 0: any free port).
    pub updates_listen: SocketAddr,
}

/// An external exchange, or the simulator in this process.
#[derive(Debug, Clone)]
pub enum ExchangeChoice {
    External {
        base_url: String,
    },
    /// `settings.listen` is where it binds (port 0: any free port).
    Simulated(Box<SimSettings>),
}

/// `LOCAL_API_KEY` and the client it belongs to (`ApiKey`'s `Debug` shows only the key id).
#[derive(Debug, Clone)]
pub struct LocalKey {
    pub key: ApiKey,
    pub client: ClientId,
    pub limits: ClientLimits,
}

/// What runs in the background, as Lambda's event source mappings and schedule would.
#[derive(Debug, Clone)]
pub struct Background {
    /// Concurrent placer polls (like a few concurrent invocations). Zero: the api alone (the
    /// POST benchmark measures it without placement load).
    pub placer_pollers: usize,
    pub poll_wait: Duration,
    pub sweep_every: Duration,
    /// Print every admin alert (what an admin would receive by e-mail) as `ADMIN ALERT …`;
    /// `false` leaves them in the inbox for another tool to read.
    pub print_alerts: bool,
    /// The ingester on the exchange's execution feed (`LOCAL_INGESTER`, default on); `None`:
    /// placed orders stay `placed`.
    pub ingester: Option<LocalIngester>,
}

/// The ingester the runner starts: the service's settings (`INGESTER_*`), and the feed.
#[derive(Debug, Clone)]
pub struct LocalIngester {
    pub settings: IngesterSettings,
    /// `EXECUTION_FEED_URL`; without it, the in-process simulator's feed (whose cursor starts
    /// over with each run, as the simulator does). With an external exchange and no URL the
    /// runner starts no ingester.
    pub feed_url: Option<String>,
}

impl LocalConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> anyhow::Result<Self> {
        let exchange = match env.optional("EXCHANGE_BASE_URL") {
            Some(base_url) => ExchangeChoice::External { base_url },
            None => ExchangeChoice::Simulated(Box::new(
                SimSettings::from_lookup(|var| Ok(env.optional(var)))
                    .map_err(|e| anyhow::anyhow!("exchange simulator settings: {e}"))?,
            )),
        };
        let exchange_timeout = env.millis("EXCHANGE_TIMEOUT_MS", 5_000)?;
        let max_receive_count: u32 = env.parsed("MAX_RECEIVE_COUNT", 5)?;
        let mut placer = placer_settings(env, exchange_timeout)?;
        // A retried message must park before SQS dead-letters it: with fewer receives than
        // the placer's default, park sooner (the template checks the same for AWS).
        placer.park_from_receive = placer
            .park_from_receive
            .min(max_receive_count.saturating_sub(1).max(1));
        // Locally many requests share one process, unlike a Lambda instance.
        let database = env.database(16)?;
        Ok(Self {
            migration_database: env
                .optional("MIGRATION_DATABASE_URL")
                .map(|url| DatabaseConfig {
                    credentials: DatabaseCredentials::Url(url),
                    // Migrations run on one connection, once, at start.
                    pool_size: 1,
                    ..database.clone()
                }),
            database,
            pepper: env.pepper()?,
            local_key: local_key(env)?,
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
            topology: QueueTopology {
                orders_name: env
                    .optional("ORDERS_QUEUE_NAME")
                    .unwrap_or_else(|| "orders".into()),
                dead_letters_name: env
                    .optional("ORDERS_DLQ_NAME")
                    .unwrap_or_else(|| "orders-dlq".into()),
                max_receive_count,
                visibility_timeout_seconds: env.parsed("VISIBILITY_TIMEOUT_SECONDS", 30)?,
                dead_letter_visibility_timeout_seconds: None,
            },
            alert_topic_name: env
                .optional("ALERT_TOPIC_NAME")
                .unwrap_or_else(|| "order-alerts".into()),
            alerts_inbox_name: env
                .optional("ALERTS_INBOX_QUEUE_NAME")
                .unwrap_or_else(|| "order-alerts-inbox".into()),
            alerts_via_sns: match env.optional("ALERT_SINK").as_deref() {
                None => None,
                Some("sns") => Some(true),
                Some("queue") => Some(false),
                Some(other) => anyhow::bail!("ALERT_SINK={other:?}: expected `sns` or `queue`"),
            },
            exchange,
            // An external simulator started with EXCHANGE_SIM_API_KEY expects that key too.
            exchange_api_key: env
                .optional("EXCHANGE_API_KEY")
                .or_else(|| env.optional("EXCHANGE_SIM_API_KEY")),
            exchange_connect_timeout: env.millis("EXCHANGE_CONNECT_TIMEOUT_MS", 1_000)?,
            exchange_timeout,
            placer,
            sweep: sweep_settings(env)?,
            dead_letter_resends: order_shared::config::dead_letter_resends(env)?,
            enqueue_timeout: env.millis("ENQUEUE_TIMEOUT_MS", 1_000)?,
            expiry: expiry_policy(env)?,
            idempotency_retention: idempotency_retention(env)?,
            background: Background {
                placer_pollers: env.parsed("PLACER_POLLERS", 4)?,
                poll_wait: env.seconds("POLL_WAIT_SECONDS", 2)?,
                sweep_every: env.seconds("SWEEP_INTERVAL_SECONDS", 5)?,
                print_alerts: env.parsed("PRINT_ALERTS", true)?,
                ingester: if env.parsed("LOCAL_INGESTER", true)? {
                    let mut settings = ingester_settings(env)?;
                    // One name across restarts: a restarted runner takes its own lease over at
                    // once instead of waiting for the killed one's to expire.
                    if env.optional("INGESTER_ID").is_none() {
                        settings.holder = "local-runner".into();
                    }
                    Some(LocalIngester {
                        settings,
                        feed_url: env.optional("EXECUTION_FEED_URL"),
                    })
                } else {
                    None
                },
            },
            listen: env.parsed("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?,
            updates_listen: env.parsed(
                "UPDATES_LISTEN_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 3001)),
            )?,
        })
    }
}

/// `LOCAL_API_KEY` as a key of client `LOCAL_CLIENT_ID` (default `local`), with the limits
/// `LOCAL_REQUESTS_PER_SECOND` and `LOCAL_MAX_OPEN_ORDERS` when given.
fn local_key<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> anyhow::Result<Option<LocalKey>> {
    let Some(text) = env.optional("LOCAL_API_KEY") else {
        return Ok(None);
    };
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
    Ok(Some(LocalKey {
        key,
        client,
        limits,
    }))
}
