//! The processes of the system under test besides Postgres: the standalone SQS endpoint, the
//! simulated exchange and the local runner, each started from `--bin-dir` with its log in the
//! work directory, and configured for the soak (a slow, failing exchange; short back-offs).

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
    _exchange: Process,
    /// Between the runner and Postgres, as RDS Proxy is in AWS.
    _bouncer: Bouncer,
    pub sqs_url: String,
    pub exchange_url: String,
    pub api_url: String,
    /// The soak's own client key, registered by the runner at start (and again, harmlessly, at
    /// every restart).
    pub api_key: ApiKey,
    /// Where the runner publishes the admin alerts, so that the soak can count them.
    pub alerts_queue: String,
}

impl System {
    /// Starts the SQS endpoint, the exchange and the runner (in that order: the runner needs
    /// the other two), and waits until the runner answers.
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
        Ok(Self {
            sqs,
            runner: Arc::new(runner),
            _exchange: exchange,
            _bouncer: bouncer,
            sqs_url,
            exchange_url,
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
        let process = spawn_runner(&program, &env, &log)?;
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
        spawn_runner(&self.program, &self.env, &self.log)
    }

    /// Waits until the runner's api answers (it migrates and registers the key first).
    pub async fn wait_healthy(&self) -> anyhow::Result<()> {
        wait_ok(&self.health_url, Duration::from_secs(60)).await
    }
}

fn spawn_runner(
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

/// The exchange answers after 500 ms, fails 10 % of the placements and refuses one instrument
/// for good, so that the soak sees placed, retried, failed and rejected orders.
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
        ("RUST_LOG", "warn".into()),
    ]
}
