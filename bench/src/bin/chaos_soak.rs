//! `chaos-soak`: posts orders at a steady rate into the real system — the local runner, a
//! standalone SQS endpoint, the simulated exchange and a throwaway Postgres cluster, each its own
//! process — while it injects faults: exchange failures and an outage, the SQS endpoint frozen
//! (SIGSTOP/SIGCONT: unavailable, not lossy, like real SQS), a Postgres restart, and the runner
//! killed with SIGKILL and restarted. At the end it checks what the design promises and exits
//! non-zero on any violation:
//! - every accepted (201) order exists and is final (`placed`, `rejected` or `failed`);
//! - no order was placed twice at the exchange, and every `placed` order is known to it;
//! - every `failed` order has at least one admin alert (duplicates are counted and reported);
//! - no 5xx for a valid request outside the Postgres restart window.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::process::{Child, Command};

/// Instruments the orders use; the last one is refused for good by the simulated exchange.
const INSTRUMENTS: [&str; 5] = [
    "US0378331005",
    "US5949181045",
    "DE000BAY0017",
    "NL0000729408",
    "GB0002634946",
];
const REJECTED_INSTRUMENT: &str = "GB0002634946";

#[derive(Parser, Debug)]
#[command(about = "Chaos soak of the order-placement system")]
struct Args {
    /// `short` (1 000 orders, one fault of each kind, a few minutes; runs in CI) or `long`
    /// (10 000 orders, longer outages, several runner kills).
    #[arg(long, default_value = "short")]
    profile: String,
    /// Override the number of orders.
    #[arg(long)]
    orders: Option<usize>,
    /// Override the posting rate (orders per second).
    #[arg(long)]
    rate: Option<f64>,
    /// Directory with the release binaries (local-runner, exchange-sim, sqs-local).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where logs of the processes go.
    #[arg(long, default_value = ".local/soak")]
    work_dir: PathBuf,
}

/// When each fault happens, relative to the start of posting.
#[derive(Debug, Clone)]
struct Plan {
    orders: usize,
    rate: f64,
    runner_kills: Vec<Duration>,
    exchange_down_at: Duration,
    exchange_down_for: Duration,
    sqs_freeze_at: Duration,
    sqs_freeze_for: Duration,
    postgres_restart_at: Duration,
    drain_timeout: Duration,
}

impl Plan {
    fn for_profile(args: &Args) -> anyhow::Result<Self> {
        let secs = Duration::from_secs;
        let mut plan = match args.profile.as_str() {
            "short" => Plan {
                orders: 1_000,
                rate: 25.0,
                runner_kills: vec![secs(8), secs(33)],
                exchange_down_at: secs(12),
                exchange_down_for: secs(10),
                sqs_freeze_at: secs(27),
                sqs_freeze_for: secs(6),
                postgres_restart_at: secs(20),
                drain_timeout: secs(240),
            },
            "long" => Plan {
                orders: 10_000,
                rate: 40.0,
                runner_kills: vec![secs(20), secs(75), secs(140), secs(200)],
                exchange_down_at: secs(40),
                exchange_down_for: secs(30),
                sqs_freeze_at: secs(100),
                sqs_freeze_for: secs(10),
                postgres_restart_at: secs(160),
                drain_timeout: secs(900),
            },
            other => bail!("unknown profile `{other}` (short or long)"),
        };
        if let Some(orders) = args.orders {
            plan.orders = orders;
        }
        if let Some(rate) = args.rate {
            plan.rate = rate;
        }
        Ok(plan)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .await?;
    if !status.success() {
        bail!("kill -s {signal} {pid} failed");
    }
    Ok(())
}

/// A throwaway Postgres cluster on its own port, so restarting it never disturbs the machine's
/// shared server.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Where the server log is copied at the end (the postgres user may not reach work_dir).
    work_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    async fn start(work_dir: &Path) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let port = free_port()?;
        // Data directory and log under the temp dir: when this runs as root the server runs as
        // the postgres user, who cannot enter a checkout in a private (0700) directory.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let data = std::env::temp_dir().join(format!("chaos-soak-pg-{id}"));
        std::fs::create_dir_all(&data)?;
        let as_postgres_user = is_root().await;
        if as_postgres_user {
            // initdb refuses to run as root.
            run(
                "chown",
                &["-R", "postgres:postgres", data.to_str().unwrap()],
            )
            .await?;
        }
        let cluster = Self {
            bin,
            data,
            log: std::env::temp_dir().join(format!("chaos-soak-pg-{id}.log")),
            work_dir: work_dir.to_path_buf(),
            port,
            as_postgres_user,
        };
        cluster
            .pg(
                "initdb",
                &[
                    "-D",
                    cluster.data.to_str().unwrap(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            )
            .await?;
        let log = cluster.log.clone();
        if as_postgres_user {
            std::fs::File::create(&log)?;
            run("chown", &["postgres:postgres", log.to_str().unwrap()]).await?;
        }
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200",
            std::env::temp_dir().display()
        );
        cluster
            .pg(
                "pg_ctl",
                &[
                    "-D",
                    cluster.data.to_str().unwrap(),
                    "-o",
                    &options,
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "start",
                ],
            )
            .await?;
        let (client, connection) =
            tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute("CREATE DATABASE orders").await?;
        Ok(cluster)
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `-l` again: pg_ctl does not remember it, and without it the new server would keep our
    /// output pipe open (and `output()` would wait for it forever).
    async fn restart(&self) -> anyhow::Result<()> {
        let log = self.log.to_str().unwrap().to_owned();
        let data = self.data.to_str().unwrap().to_owned();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-l", &log, "-w", "restart"],
        )
        .await
    }

    async fn stop(&self) {
        let _ = self
            .pg(
                "pg_ctl",
                &[
                    "-D",
                    self.data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .await;
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::copy(&self.log, self.work_dir.join("postgres.log"));
        let _ = std::fs::remove_file(&self.log);
    }

    async fn pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let output = if self.as_postgres_user {
            let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap()];
            all.extend_from_slice(args);
            Command::new("runuser")
                .args(&all)
                .current_dir(std::env::temp_dir())
                .output()
                .await?
        } else {
            Command::new(&program).args(args).output().await?
        };
        if !output.status.success() {
            bail!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql; set PG_BINDIR")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().context("no initdb found; set PG_BINDIR")
}

async fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

async fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program).args(args).status().await?;
    if !status.success() {
        bail!("{program} {args:?} failed");
    }
    Ok(())
}

/// A child process with its log file; killed on drop.
struct Service {
    child: Child,
}

impl Service {
    fn spawn(
        name: &'static str,
        program: &Path,
        env: &[(&str, String)],
        work_dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work_dir.join(format!("{name}.log")))?;
        let mut command = Command::new(program);
        command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| {
            format!(
                "starting {} (build it with cargo build --release)",
                program.display()
            )
        })?;
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

async fn wait_http_ok(url: &str, within: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).timeout(Duration::from_secs(2)).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not answer 200 within {within:?}")
}

/// What the load generator saw for one order.
#[derive(Debug, Clone, Default)]
struct Posted {
    id: Option<String>,
    /// Times (since start) at which a valid request got a 5xx.
    server_errors: Vec<Duration>,
}

#[derive(Default)]
struct Timeline {
    postgres_restart: Option<(Duration, Duration)>,
    events: Vec<(Duration, String)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan::for_profile(&args)?;
    std::fs::create_dir_all(&args.work_dir)?;
    let work_dir = std::fs::canonicalize(&args.work_dir)?;
    let bin_dir = std::fs::canonicalize(&args.bin_dir).with_context(|| {
        format!(
            "{} (build the release binaries first)",
            args.bin_dir.display()
        )
    })?;
    println!("chaos soak: {plan:?}");
    println!("logs in {}", work_dir.display());

    let postgres = Postgres::start(&work_dir)
        .await
        .context("starting Postgres")?;
    let result = soak(&plan, &bin_dir, &work_dir, &postgres).await;
    postgres.stop().await;
    let violations = result?;
    if violations > 0 {
        bail!("{violations} violation(s)");
    }
    println!("chaos soak passed");
    Ok(())
}

async fn soak(
    plan: &Plan,
    bin_dir: &Path,
    work_dir: &Path,
    postgres: &Postgres,
) -> anyhow::Result<usize> {
    let sqs_port = free_port()?;
    let sqs_url = format!("http://127.0.0.1:{sqs_port}");
    let sqs = Service::spawn(
        "sqs-local",
        &bin_dir.join("sqs-local"),
        &[("SQS_LOCAL_LISTEN", format!("127.0.0.1:{sqs_port}"))],
        work_dir,
    )?;
    let exchange_port = free_port()?;
    let exchange_url = format!("http://127.0.0.1:{exchange_port}");
    let _exchange = Service::spawn(
        "exchange-sim",
        &bin_dir.join("exchange-sim"),
        &[
            ("EXCHANGE_SIM_LISTEN", format!("127.0.0.1:{exchange_port}")),
            ("EXCHANGE_SIM_LATENCY_MS", "500".into()),
            ("EXCHANGE_SIM_FAILURE_RATE", "0.1".into()),
            ("EXCHANGE_SIM_LOOKUP_LATENCY_MS", "0".into()),
            (
                "EXCHANGE_SIM_REJECT_INSTRUMENTS",
                REJECTED_INSTRUMENT.into(),
            ),
            ("RUST_LOG", "warn".into()),
        ],
        work_dir,
    )?;
    wait_http_ok(&format!("{exchange_url}/health"), Duration::from_secs(20)).await?;

    let api_port = free_port()?;
    let api_url = format!("http://127.0.0.1:{api_port}");
    let alerts_queue = format!("soak-alerts-{}", uuid::Uuid::new_v4().simple());
    // The soak's own client and key, registered by the runner at start (and again, harmlessly,
    // at every restart); limits high enough never to shape the load.
    let api_key = order_shared::auth::ApiKey::generate()?;
    let runner_env: Vec<(&str, String)> = vec![
        ("LISTEN_ADDR", format!("127.0.0.1:{api_port}")),
        (
            "API_KEY_PEPPER",
            "chaos-soak-pepper-not-a-secret-0123456789".into(),
        ),
        ("LOCAL_API_KEY", api_key.expose()),
        ("LOCAL_CLIENT_ID", "soak".into()),
        ("LOCAL_REQUESTS_PER_SECOND", "100000".into()),
        ("LOCAL_MAX_OPEN_ORDERS", "1000000".into()),
        ("DATABASE_URL", postgres.url("orders")),
        ("DATABASE_CONNECT_TIMEOUT_MS", "1000".into()),
        ("SQS_ENDPOINT", "external".into()),
        ("AWS_ENDPOINT_URL", sqs_url.clone()),
        ("AWS_ACCESS_KEY_ID", "soak".into()),
        ("AWS_SECRET_ACCESS_KEY", "soak".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("ALERT_SINK", "queue".into()),
        ("ALERTS_INBOX_QUEUE_NAME", alerts_queue.clone()),
        ("PRINT_ALERTS", "false".into()),
        ("EXCHANGE_BASE_URL", exchange_url.clone()),
        ("EXCHANGE_TIMEOUT_MS", "3000".into()),
        ("MAX_RECEIVE_COUNT", "5".into()),
        ("VISIBILITY_TIMEOUT_SECONDS", "30".into()),
        ("RETRY_BASE_SECONDS", "1".into()),
        ("RETRY_MAX_SECONDS", "8".into()),
        ("SWEEP_GRACE_SECONDS", "5".into()),
        ("SWEEP_INTERVAL_SECONDS", "2".into()),
        ("POLL_WAIT_SECONDS", "1".into()),
        ("PLACER_POLLERS", "4".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let runner_bin = bin_dir.join("local-runner");
    let runner = Arc::new(tokio::sync::Mutex::new(Service::spawn(
        "local-runner",
        &runner_bin,
        &runner_env,
        work_dir,
    )?));
    wait_http_ok(&format!("{api_url}/health"), Duration::from_secs(60)).await?;

    let start = Instant::now();
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let note = {
        let timeline = timeline.clone();
        move |what: String| {
            let at = start.elapsed();
            println!("[{:>6.1}s] {what}", at.as_secs_f64());
            timeline.lock().unwrap().events.push((at, what));
        }
    };

    // --- faults, on their own schedule
    let mut faults = Vec::new();
    for at in plan.runner_kills.clone() {
        let (runner, runner_env, runner_bin, work_dir, note, api_url) = (
            runner.clone(),
            runner_env.clone(),
            runner_bin.clone(),
            work_dir.to_path_buf(),
            note.clone(),
            api_url.clone(),
        );
        faults.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            let mut guard = runner.lock().await;
            let _ = signal(guard.pid(), "KILL").await;
            let _ = guard.child.wait().await;
            note("runner killed with SIGKILL".into());
            tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(0..1500))).await;
            match Service::spawn("local-runner", &runner_bin, &runner_env, &work_dir) {
                Ok(service) => *guard = service,
                Err(error) => note(format!("runner restart failed: {error:#}")),
            }
            drop(guard);
            let _ = wait_http_ok(&format!("{api_url}/health"), Duration::from_secs(60)).await;
            note("runner restarted".into());
        }));
    }
    {
        let (exchange_url, note, at, down_for) = (
            exchange_url.clone(),
            note.clone(),
            plan.exchange_down_at,
            plan.exchange_down_for,
        );
        faults.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            let client = reqwest::Client::new();
            let control = format!("{exchange_url}/control");
            let _ = client
                .post(&control)
                .json(&serde_json::json!({"down": true}))
                .send()
                .await;
            note(format!("exchange down for {down_for:?}"));
            tokio::time::sleep(down_for).await;
            let _ = client
                .post(&control)
                .json(&serde_json::json!({"down": false}))
                .send()
                .await;
            note("exchange back up".into());
        }));
    }
    {
        let (pid, note, at, freeze_for) = (
            sqs.pid(),
            note.clone(),
            plan.sqs_freeze_at,
            plan.sqs_freeze_for,
        );
        faults.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            let _ = signal(pid, "STOP").await;
            note(format!("SQS endpoint frozen (SIGSTOP) for {freeze_for:?}"));
            tokio::time::sleep(freeze_for).await;
            let _ = signal(pid, "CONT").await;
            note("SQS endpoint resumed (SIGCONT)".into());
        }));
    }
    {
        let (timeline, note, at) = (timeline.clone(), note.clone(), plan.postgres_restart_at);
        let postgres_restart = postgres.restart_handle();
        faults.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            let began = start.elapsed();
            note("Postgres restart begins".into());
            if let Err(error) = postgres_restart.await {
                note(format!("Postgres restart failed: {error:#}"));
            }
            let ended = start.elapsed();
            timeline.lock().unwrap().postgres_restart = Some((began, ended));
            note("Postgres restarted".into());
        }));
    }

    // --- load: one task per order, started at a steady rate; each retries with its idempotency
    // key until it gets a 201 (what a real client does when the API is unreachable).
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", api_key.expose()).parse()?,
    );
    let client = reqwest::Client::builder()
        .default_headers(auth)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut posts = Vec::with_capacity(plan.orders);
    for i in 0..plan.orders {
        let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
        let (client, api_url, run_id) = (client.clone(), api_url.clone(), run_id.clone());
        posts.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            post_until_accepted(&client, &api_url, &format!("soak-{run_id}-{i}"), i, start).await
        }));
    }
    let mut posted = Vec::with_capacity(plan.orders);
    for post in posts {
        posted.push(post.await?);
    }
    note(format!("all {} orders posted", plan.orders));
    for fault in faults {
        let _ = fault.await;
    }

    // --- drain: wait until every accepted order is final
    let accepted: Vec<String> = posted.iter().filter_map(|p| p.id.clone()).collect();
    let (db, connection) =
        tokio_postgres::connect(&postgres.url("orders"), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let deadline = Instant::now() + plan.drain_timeout;
    loop {
        let open: i64 = db
            .query_one(
                "SELECT count(*) FROM orders WHERE status NOT IN ('placed','rejected','failed')",
                &[],
            )
            .await?
            .get(0);
        if open == 0 || Instant::now() > deadline {
            note(format!("drain finished with {open} order(s) not final"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Give the alerter a moment for the last dead letters.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // --- checks
    let mut violations = 0usize;
    let mut report = BTreeMap::new();
    let rows = db
        .query(
            "SELECT id::text, status, exchange_order_id FROM orders",
            &[],
        )
        .await?;
    let stored: HashMap<String, (String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, String>(1), r.get::<_, Option<String>>(2)),
            )
        })
        .collect();
    let not_accepted = posted.iter().filter(|p| p.id.is_none()).count();
    report.insert("orders posted", plan.orders.to_string());
    report.insert("orders accepted (201)", accepted.len().to_string());
    if not_accepted > 0 {
        violations += not_accepted;
        println!("VIOLATION: {not_accepted} valid order(s) never got a 201");
    }
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    report.insert("accepted but missing (lost)", lost.len().to_string());
    violations += lost.len();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for id in &accepted {
        if let Some((status, _)) = stored.get(id) {
            *by_status.entry(status.clone()).or_default() += 1;
        }
    }
    for (status, count) in &by_status {
        report.insert(
            match status.as_str() {
                "placed" => "placed",
                "rejected" => "rejected",
                "failed" => "failed",
                "pending" => "pending (NOT FINAL)",
                _ => "placing (NOT FINAL)",
            },
            count.to_string(),
        );
    }
    let not_final = by_status
        .iter()
        .filter(|(s, _)| !["placed", "rejected", "failed"].contains(&s.as_str()))
        .map(|(_, c)| c)
        .sum::<usize>();
    violations += not_final;

    let stats: serde_json::Value = client
        .get(format!("{exchange_url}/stats"))
        .send()
        .await?
        .json()
        .await?;
    let max_per_order = stats["max_placements_per_order"].as_u64().unwrap_or(0);
    report.insert(
        "exchange: max placements of one order",
        max_per_order.to_string(),
    );
    report.insert(
        "exchange: duplicate calls absorbed",
        stats["duplicates_absorbed"].to_string(),
    );
    if max_per_order > 1 {
        violations += 1;
        println!("VIOLATION: an order was placed more than once");
    }
    let placed_at_exchange: HashSet<String> = stats["placements"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut placed_unknown_to_exchange = 0;
    let mut final_but_at_exchange = 0;
    for (id, (status, _)) in &stored {
        match status.as_str() {
            "placed" if !placed_at_exchange.contains(id) => placed_unknown_to_exchange += 1,
            "failed" | "rejected" if placed_at_exchange.contains(id) => final_but_at_exchange += 1,
            _ => {}
        }
    }
    report.insert(
        "placed but unknown to the exchange",
        placed_unknown_to_exchange.to_string(),
    );
    report.insert(
        "failed/rejected but placed at the exchange",
        final_but_at_exchange.to_string(),
    );
    violations += placed_unknown_to_exchange + final_but_at_exchange;

    let alerts = drain_alerts(&sqs_url, &alerts_queue).await?;
    let failed: Vec<&String> = stored
        .iter()
        .filter(|(_, (status, _))| status == "failed")
        .map(|(id, _)| id)
        .collect();
    let unalerted = failed
        .iter()
        .filter(|id| !alerts.contains_key(**id))
        .count();
    let duplicate_alerts: usize = alerts.values().map(|n| n.saturating_sub(1)).sum();
    report.insert(
        "alerts observed",
        alerts.values().sum::<usize>().to_string(),
    );
    report.insert("failed orders without an alert", unalerted.to_string());
    report.insert("duplicate alerts", duplicate_alerts.to_string());
    violations += unalerted;

    let window = timeline.lock().unwrap().postgres_restart;
    let (mut in_window, mut outside) = (0, 0);
    for p in &posted {
        for at in &p.server_errors {
            let inside = window
                .map(|(a, b)| {
                    *at + Duration::from_secs(1) >= a && *at <= b + Duration::from_secs(5)
                })
                .unwrap_or(false);
            if inside { in_window += 1 } else { outside += 1 }
        }
    }
    report.insert(
        "5xx during the Postgres restart window",
        in_window.to_string(),
    );
    report.insert("5xx outside it", outside.to_string());
    violations += outside;

    println!("\n{:<45} value", "check");
    for (name, value) in &report {
        println!("{name:<45} {value}");
    }
    println!("{:<45} {}", "violations", violations);
    let _ = std::fs::write(
        work_dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    );
    drop(sqs);
    Ok(violations)
}

impl Postgres {
    /// A restart future that does not borrow the cluster (the fault task runs on its own).
    fn restart_handle(
        &self,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
        let clone = Postgres {
            bin: self.bin.clone(),
            data: self.data.clone(),
            log: self.log.clone(),
            work_dir: self.work_dir.clone(),
            port: self.port,
            as_postgres_user: self.as_postgres_user,
        };
        async move { clone.restart().await }
    }
}

async fn post_until_accepted(
    client: &reqwest::Client,
    api_url: &str,
    key: &str,
    i: usize,
    start: Instant,
) -> Posted {
    let instrument = INSTRUMENTS[i % INSTRUMENTS.len()];
    let body = if i % 2 == 0 {
        format!(
            r#"{{"type":"market","side":"buy","instrument":"{instrument}","quantity":{}}}"#,
            1 + i % 100
        )
    } else {
        format!(
            r#"{{"type":"limit","side":"sell","instrument":"{instrument}","limit_price":"{}.25","quantity":{}}}"#,
            10 + i % 90,
            1 + i % 50
        )
    };
    let mut posted = Posted::default();
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let response = client
            .post(format!("{api_url}/orders"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.clone())
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 201 => {
                if let Ok(json) = r.json::<serde_json::Value>().await {
                    posted.id = json["id"].as_str().map(str::to_owned);
                }
                return posted;
            }
            Ok(r) if r.status().is_server_error() => posted.server_errors.push(start.elapsed()),
            Ok(r) => {
                eprintln!("order {i}: unexpected {}", r.status());
                return posted;
            }
            // Connection refused or reset: the runner is down; a client retries.
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    posted
}

/// Every alert in the soak's alert queue, counted per order id.
async fn drain_alerts(endpoint: &str, queue_name: &str) -> anyhow::Result<HashMap<String, usize>> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "soak", "soak", None, None, "soak",
        ))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .get_queue_url()
        .queue_name(queue_name)
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let mut counts = HashMap::new();
    loop {
        let messages = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(counts);
        }
        for message in messages {
            let body: serde_json::Value =
                serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
            if let Some(id) = body["order_id"].as_str() {
                *counts.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
}
