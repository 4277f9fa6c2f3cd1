//! The processes of the system under test besides Postgres: the standalone SQS endpoint, the
//! simulated exchange, the local runner and the ingester on the exchange's execution feed, each
//! started from `--bin-dir` with its log in the work directory, and configured for the soak (a
//! slow, failing exchange that fills what it places, with a faulty feed; short back-offs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bench::http::wait_ok;
use bench::process::{Output, Process};
use order_shared::auth::ApiKey;
use tokio::sync::Mutex;

use crate::load::REJECTED_INSTRUMENT;
use crate::plan::RunnerTiming;
use bench::cluster::Postgres;

use crate::bouncer::Bouncer;

/// The running system. Dropping it kills its processes.
pub struct System {
    /// Frozen and resumed by a fault.
    pub sqs: Process,
    pub runner: Arc<Runner>,
    /// Killed and restarted by a fault.
    pub ingester: Arc<Ingester>,
    _exchange: Process,
    /// Between the runner and Postgres, as RDS Proxy is in AWS.
    _bouncer: Bouncer,
    pub sqs_url: String,
    pub exchange_url: String,
    /// The exchange's execution feed (`ws://…/feed`), which the ingester reads.
    pub feed_url: String,
    pub api_url: String,
    /// The soak's own client key, registered by the runner at start (and again, harmlessly, at
    /// every restart).
    pub api_key: ApiKey,
    /// Where the runner publishes the admin alerts, so that the soak can count them.
    pub alerts_queue: String,
}

impl System {
    /// Starts the SQS endpoint, the exchange and the runner (in that order: the runner needs
    /// the other two), waits until the runner answers (it has migrated the database by then),
    /// and starts the ingester on the exchange's feed.
    pub async fn start(
        bin_dir: &Path,
        work_dir: &Path,
        postgres: &Postgres,
        timing: &RunnerTiming,
    ) -> anyhow::Result<Self> {
        let (sqs, sqs_url) = start_sqs(bin_dir, work_dir)?;
        let (exchange, exchange_url) = start_exchange(bin_dir, work_dir).await?;
        let bouncer = Bouncer::start(work_dir, postgres.port()).await?;
        let api_port = local_process::free_port()?;
        let api_url = format!("http://127.0.0.1:{api_port}");
        let alerts_queue = format!("soak-alerts-{}", uuid::Uuid::new_v4().simple());
        let api_key = ApiKey::generate()?;
        let env = runner_env(
            api_port,
            &api_key,
            [&bouncer.url("orders"), &postgres.url("orders")],
            &sqs_url,
            &alerts_queue,
            &exchange_url,
            timing,
        );
        let runner = Runner::start(
            bin_dir.join("local-runner"),
            env,
            work_dir.join("local-runner.log"),
            format!("{api_url}/health"),
        )?;
        runner.wait_healthy().await?;
        let feed_url = format!("{}/feed", exchange_url.replacen("http://", "ws://", 1));
        let ingester = Ingester::start(
            bin_dir.join("ingester"),
            ingester_env(&bouncer.url("orders"), &feed_url),
            work_dir.join("ingester.log"),
        )?;
        Ok(Self {
            sqs,
            runner: Arc::new(runner),
            ingester: Arc::new(ingester),
            _exchange: exchange,
            _bouncer: bouncer,
            sqs_url,
            exchange_url,
            feed_url,
            api_url,
            api_key,
            alerts_queue,
        })
    }
}

/// The local runner, which a fault kills and restarts with the same configuration.
pub struct Runner {
    /// Locked by a kill for the whole kill and restart, so that a second kill waits for it.
    pub process: Mutex<Process>,
    program: PathBuf,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    health_url: String,
}

impl Runner {
    fn start(
        program: PathBuf,
        env: Vec<(&'static str, String)>,
        log: PathBuf,
        health_url: String,
    ) -> anyhow::Result<Self> {
        let process = spawn_service(&program, &env, &log)?;
        Ok(Self {
            process: Mutex::new(process),
            program,
            env,
            log,
            health_url,
        })
    }

    /// A new runner process like the first one; its log continues the same file.
    pub fn spawn(&self) -> anyhow::Result<Process> {
        spawn_service(&self.program, &self.env, &self.log)
    }

    /// Waits until the runner's api answers (it migrates and registers the key first).
    pub async fn wait_healthy(&self) -> anyhow::Result<()> {
        wait_ok(&self.health_url, Duration::from_secs(60)).await
    }
}

/// The ingester service, which a fault kills and restarts with the same configuration (each
/// process under a holder name of its own, as a new container would be: a restarted one waits
/// until the killed one's lease has expired).
pub struct Ingester {
    /// Locked by a kill for the whole kill and restart.
    pub process: Mutex<Process>,
    program: PathBuf,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
}

impl Ingester {
    fn start(
        program: PathBuf,
        env: Vec<(&'static str, String)>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let process = spawn_service(&program, &env, &log)?;
        Ok(Self {
            process: Mutex::new(process),
            program,
            env,
            log,
        })
    }

    /// A new ingester process like the first one; its log continues the same file.
    pub fn spawn(&self) -> anyhow::Result<Process> {
        spawn_service(&self.program, &self.env, &self.log)
    }
}

fn spawn_service(
    program: &Path,
    env: &[(&'static str, String)],
    log: &Path,
) -> anyhow::Result<Process> {
    Process::spawn(
        program,
        env.iter().map(|(k, v)| (*k, v)),
        Output::AppendTo(log),
    )
}

fn start_sqs(bin_dir: &Path, work_dir: &Path) -> anyhow::Result<(Process, String)> {
    let port = local_process::free_port()?;
    let sqs = Process::spawn(
        &bin_dir.join("sqs-local"),
        [("SQS_LOCAL_LISTEN", format!("127.0.0.1:{port}"))],
        Output::AppendTo(&work_dir.join("sqs-local.log")),
    )?;
    Ok((sqs, format!("http://127.0.0.1:{port}")))
}

/// How the exchange works what it placed: market orders fill at once in 1 to 4 reports; a
/// working limit order gets a fill (at most 60 % of its rest) with a chance of 1 in 10 every
/// 500 ms, so that one of 50 shares fills over several reports in some 20 to 30 s — orders with
/// the plan's short explicit expiry often expire at the exchange part filled, and the last ones
/// posted are still working (part filled) at the end.
pub const FILL_INTERVAL_MS: &str = "500";
pub const LIMIT_FILL_RATE: f64 = 0.1;
pub const MARKET_FILLS_MAX: &str = "4";

/// The feed's faults all along (the plan adds a stretch of many duplicates and drops of every
/// connection at once): a report re-sent under a new sequence number, a message sent twice, a
/// connection dropped without a close frame.
pub const FEED_DUPLICATE_RATE: f64 = 0.02;
pub const FEED_REDELIVER_RATE: f64 = 0.01;
pub const FEED_DROP_RATE: f64 = 0.001;

/// The exchange answers after 500 ms, fails 10 % of the placements and refuses one instrument
/// for good, so that the soak sees placed, retried, failed and rejected orders; it fills what it
/// placed, and its feed has the faults above.
async fn start_exchange(bin_dir: &Path, work_dir: &Path) -> anyhow::Result<(Process, String)> {
    let port = local_process::free_port()?;
    let exchange = Process::spawn(
        &bin_dir.join("exchange-sim"),
        [
            ("EXCHANGE_SIM_LISTEN", format!("127.0.0.1:{port}")),
            ("EXCHANGE_SIM_LATENCY_MS", "500".into()),
            ("EXCHANGE_SIM_FAILURE_RATE", "0.1".into()),
            ("EXCHANGE_SIM_LOOKUP_LATENCY_MS", "0".into()),
            (
                "EXCHANGE_SIM_REJECT_INSTRUMENTS",
                REJECTED_INSTRUMENT.into(),
            ),
            ("EXCHANGE_SIM_FILL_INTERVAL_MS", FILL_INTERVAL_MS.into()),
            ("EXCHANGE_SIM_LIMIT_FILL_RATE", LIMIT_FILL_RATE.to_string()),
            ("EXCHANGE_SIM_MARKET_FILLS_MAX", MARKET_FILLS_MAX.into()),
            (
                "EXCHANGE_SIM_FEED_DUPLICATE_RATE",
                FEED_DUPLICATE_RATE.to_string(),
            ),
            (
                "EXCHANGE_SIM_FEED_REDELIVER_RATE",
                FEED_REDELIVER_RATE.to_string(),
            ),
            ("EXCHANGE_SIM_FEED_DROP_RATE", FEED_DROP_RATE.to_string()),
            ("RUST_LOG", "warn".into()),
        ],
        Output::AppendTo(&work_dir.join("exchange-sim.log")),
    )?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{url}/health"), Duration::from_secs(20)).await?;
    Ok((exchange, url))
}

/// The runner against the soak's services, with limits high enough never to shape the load and
/// retries, sweeps and polls fast enough that a few minutes hold several rounds of each. The
/// timing the profile scales (time in force, back-off cap, breaker probe, alert window) comes
/// from the plan.
fn runner_env(
    api_port: u16,
    api_key: &ApiKey,
    [database_url, migration_database_url]: [&str; 2],
    sqs_url: &str,
    alerts_queue: &str,
    exchange_url: &str,
    timing: &RunnerTiming,
) -> Vec<(&'static str, String)> {
    let secs = |duration: Duration| duration.as_secs().to_string();
    vec![
        ("LISTEN_ADDR", format!("127.0.0.1:{api_port}")),
        (
            "API_KEY_PEPPER",
            "chaos-soak-pepper-not-a-secret-0123456789".into(),
        ),
        ("LOCAL_API_KEY", api_key.expose()),
        ("LOCAL_CLIENT_ID", "soak".into()),
        ("LOCAL_REQUESTS_PER_SECOND", "100000".into()),
        ("LOCAL_MAX_OPEN_ORDERS", "1000000".into()),
        ("DATABASE_URL", database_url.into()),
        ("MIGRATION_DATABASE_URL", migration_database_url.into()),
        ("DATABASE_CONNECT_TIMEOUT_MS", "1000".into()),
        ("SQS_ENDPOINT", "external".into()),
        ("AWS_ENDPOINT_URL", sqs_url.into()),
        ("AWS_ACCESS_KEY_ID", "soak".into()),
        ("AWS_SECRET_ACCESS_KEY", "soak".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("ALERT_SINK", "queue".into()),
        ("ALERTS_INBOX_QUEUE_NAME", alerts_queue.into()),
        ("PRINT_ALERTS", "false".into()),
        ("EXCHANGE_BASE_URL", exchange_url.into()),
        ("EXCHANGE_TIMEOUT_MS", "3000".into()),
        ("MAX_RECEIVE_COUNT", "5".into()),
        ("VISIBILITY_TIMEOUT_SECONDS", "30".into()),
        ("RETRY_BASE_SECONDS", "1".into()),
        ("RETRY_MAX_SECONDS", secs(timing.retry_max)),
        ("MARKET_ORDER_TTL_SECONDS", secs(timing.market_order_ttl)),
        ("BREAKER_PROBE_SECONDS", secs(timing.breaker_probe)),
        ("ALERT_WINDOW_SECONDS", secs(timing.alert_window)),
        ("SWEEP_GRACE_SECONDS", "5".into()),
        ("SWEEP_INTERVAL_SECONDS", secs(timing.sweep_interval)),
        ("POLL_WAIT_SECONDS", "1".into()),
        ("PLACER_POLLERS", "4".into()),
        // The ingester runs as its own process (below), as in AWS.
        ("LOCAL_INGESTER", "false".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

/// The ingester through the soak's PgBouncer (as through RDS Proxy in AWS) on the exchange's
/// feed. A short lease, so that a restarted ingester takes over from a killed one within
/// seconds; a short back-off cap, so that it is back soon after the Postgres restart; batches of
/// at most 20 reports (the service's default is 2 000), so that the backlog a kill fault builds
/// up (some fifty to two hundred reports) takes several batches and the kill lands between two of them, one
/// in flight — at the soak's rate a batch is a handful of reports otherwise, either way.
fn ingester_env(database_url: &str, feed_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.into()),
        ("DATABASE_CONNECT_TIMEOUT_MS", "1000".into()),
        ("EXECUTION_FEED_URL", feed_url.into()),
        ("EXCHANGE_CONNECT_TIMEOUT_MS", "1000".into()),
        ("INGESTER_LEASE_SECONDS", INGESTER_LEASE_SECONDS.to_string()),
        ("INGESTER_BATCH_SIZE", "20".into()),
        ("INGESTER_RECONNECT_MAX_MS", "2000".into()),
        ("AWS_ACCESS_KEY_ID", "soak".into()),
        ("AWS_SECRET_ACCESS_KEY", "soak".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// The ingester's lease: a killed ingester's successor waits at most this long.
pub const INGESTER_LEASE_SECONDS: u64 = 5;
