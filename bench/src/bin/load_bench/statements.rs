//! `load-bench statements`: the statements and round trips of each kind of request, counted.
//!
//! A throwaway cluster (`bench::cluster`) with `pg_stat_statements` preloaded — the shared
//! server is never restarted for it — and in front of it the counting proxy of `bench::pg_wire`.
//! Each runner under test (e.g. the code before and after a change) gets a database of its own
//! there, reached through the proxy, and then a fixed number of requests of each kind, one kind
//! after the other: `POST /orders` one at a time, `POST /orders` 16 at a time, `GET /orders/{id}`
//! and `GET /orders`. Before each kind the counters are zeroed; after it (and a pause for what
//! the api writes in the background and for the statistics to arrive) the proxy's round trips
//! and statements, pg_stat_statements' calls per statement and pg_stat_wal's WAL syncs (disk
//! flushes) are divided by the number of requests. The cluster serves nothing else meanwhile.
//!
//! Every connection and statement the runner made before (start-up, migrations, a warm-up of
//! each kind of request that opens the pool's connections) is not counted, so the figures are a
//! warm instance's; a connection's first use of a named prepared statement (old code) still shows
//! as a `prepare` round trip of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use bench::api::{bearer, bench_api_key, limit_order};
use bench::cluster::Postgres;
use bench::http::wait_ok;
use bench::pg_wire::{WireCounter, WireStats};
use bench::process::{Output, Process};
use bench::results::write_json;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::machine;

/// A local-runner binary to count: `label=path`.
#[derive(Debug, Clone)]
pub struct RunnerBinary {
    pub label: String,
    pub path: PathBuf,
}

impl FromStr for RunnerBinary {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((label, path)) if !label.is_empty() && !path.is_empty() => Ok(Self {
                label: label.into(),
                path: path.into(),
            }),
            _ => Err(format!("{text:?}: expected label=path/to/local-runner")),
        }
    }
}

/// Where the runners send and call: the SQS endpoint and the exchange `scripts/bench.sh` started.
pub struct Services {
    pub sqs_url: String,
    pub exchange_url: String,
}

/// The kinds of request, in the order they are sent.
#[derive(Debug, Clone, Copy)]
enum Kind {
    PostOneAtATime,
    PostConcurrently,
    GetOne,
    List,
}

/// Concurrent requests of `Kind::PostConcurrently`: enough for the api's background marks to
/// batch as they do under load.
const CONCURRENT: usize = 16;

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::PostOneAtATime,
        Kind::PostConcurrently,
        Kind::GetOne,
        Kind::List,
    ];

    fn describe(self) -> String {
        match self {
            Kind::PostOneAtATime => "POST /orders, one at a time".into(),
            Kind::PostConcurrently => format!("POST /orders, {CONCURRENT} at a time"),
            Kind::GetOne => "GET /orders/{id}, one at a time".into(),
            Kind::List => "GET /orders?limit=20, one at a time".into(),
        }
    }

    fn concurrency(self) -> usize {
        match self {
            Kind::PostConcurrently => CONCURRENT,
            _ => 1,
        }
    }
}

/// The requests of one kind; the status of each, and the ids of the orders created.
async fn send(
    http: &reqwest::Client,
    api: &str,
    kind: Kind,
    count: usize,
    ids: &[String],
) -> (BTreeMap<u16, u64>, Vec<String>) {
    let requests = (0..count).map(|i| {
        let request = match kind {
            Kind::PostOneAtATime | Kind::PostConcurrently => http
                .post(format!("{api}/orders"))
                .header("content-type", "application/json")
                .body(limit_order("buy", "US0378331005", "120.50", 10)),
            Kind::GetOne => {
                // An order of the benchmark client (a made-up id, a 404, if none was created).
                let id = ids
                    .get(i % ids.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                http.get(format!("{api}/orders/{id}"))
            }
            Kind::List => http.get(format!("{api}/orders?limit=20")),
        };
        async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    (status, body["id"].as_str().map(str::to_owned))
                }
                Err(_) => (0, None),
            }
        }
    });
    let answers: Vec<(u16, Option<String>)> = futures::stream::iter(requests)
        .buffer_unordered(kind.concurrency())
        .collect()
        .await;
    let mut statuses = BTreeMap::new();
    let mut created = Vec::new();
    for (status, id) in answers {
        *statuses.entry(status).or_default() += 1;
        if status == 201 {
            created.extend(id);
        }
    }
    (statuses, created)
}

/// pg_stat_statements' rows of database `db`: (calls, rows, query), most called first.
/// One statement as pg_stat_statements counted it.
struct Calls {
    calls: i64,
    rows: i64,
    /// Times it was planned: a named prepared statement reuses its plan, an unnamed one is
    /// parsed and planned at every execution.
    plans: i64,
    plan_ms: f64,
    exec_ms: f64,
    query: String,
}

/// pg_stat_statements' rows of database `db`, most called first.
async fn statement_calls(admin: &tokio_postgres::Client, db: &str) -> anyhow::Result<Vec<Calls>> {
    let rows = admin
        .query(
            "SELECT s.calls, s.rows, s.plans, s.total_plan_time, s.total_exec_time, s.query \
             FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 \
             ORDER BY s.calls DESC, s.query",
            &[&db],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Calls {
            calls: r.get(0),
            rows: r.get(1),
            plans: r.get(2),
            plan_ms: r.get(3),
            exec_ms: r.get(4),
            query: r.get(5),
        })
        .collect())
}

fn one_line(text: &str, width: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > width {
        format!("{}…", line.chars().take(width).collect::<String>())
    } else {
        line
    }
}

/// The cluster's WAL counters (`pg_stat_wal`): records, full-page images, bytes, writes and
/// syncs (flushes to disk, each one an `fdatasync` a committing backend or the WAL writer waited
/// for).
async fn wal_counters(admin: &tokio_postgres::Client) -> anyhow::Result<[f64; 5]> {
    let row = admin
        .query_one(
            "SELECT wal_records::float8, wal_fpi::float8, wal_bytes::float8, \
                    wal_write::float8, wal_sync::float8 FROM pg_stat_wal",
            &[],
        )
        .await?;
    Ok([row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)])
}

/// What the runner's backends were doing while the requests ran: `pg_stat_activity` of its
/// database sampled every few milliseconds, active backends by wait event (`CPU` when they wait
/// for nothing: running, or runnable and waiting for a core). Where a request's time inside
/// Postgres goes, when it is not the statement's own work: a row lock, the WAL flush of a commit.
struct WaitSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<BTreeMap<String, u64>>>,
}

impl WaitSampler {
    async fn start(admin_url: &str, db: &str) -> anyhow::Result<Self> {
        let client = bench::db::connect(admin_url).await?;
        let db = db.to_owned();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut counts = BTreeMap::new();
            let mut every = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => {}
                }
                let rows = client
                    .query(
                        "SELECT coalesce(wait_event_type || ': ' || wait_event, 'CPU') \
                         FROM pg_stat_activity \
                         WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()",
                        &[&db],
                    )
                    .await?;
                *counts.entry("(samples)".to_owned()).or_default() += 1;
                for row in rows {
                    *counts.entry(row.get::<_, String>(0)).or_default() += 1;
                }
            }
            Ok(counts)
        });
        Ok(Self { stop, task })
    }

    async fn stop(self) -> anyhow::Result<BTreeMap<String, u64>> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Prints the wait events as shares of the active backends seen, and returns them.
fn print_waits(waits: &BTreeMap<String, u64>) -> Value {
    let samples = waits.get("(samples)").copied().unwrap_or(0).max(1) as f64;
    let active: u64 = waits
        .iter()
        .filter(|(k, _)| k.as_str() != "(samples)")
        .map(|(_, v)| v)
        .sum();
    let mut ranked: Vec<(&String, &u64)> = waits
        .iter()
        .filter(|(k, _)| k.as_str() != "(samples)")
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1));
    println!(
        "    active backends (pg_stat_activity, {samples:.0} samples): {:.2} on average; by wait event:",
        active as f64 / samples
    );
    for (event, count) in &ranked {
        println!(
            "      {:>5.1} %  {event}",
            100.0 * **count as f64 / active.max(1) as f64
        );
    }
    json!({"samples": samples, "mean_active": active as f64 / samples,
           "by_event": ranked.iter().map(|(k, v)| (k.to_string(), json!(v)))
               .collect::<serde_json::Map<_, _>>()})
}

/// Backends hand their WAL counters to the shared statistics at most once a second while busy
/// and within 10 s once idle (PGSTAT_IDLE_INTERVAL): wait that long before reading them.
const STATS_FLUSH: Duration = Duration::from_secs(11);

/// Prints and returns one kind's figures.
fn report(
    kind: Kind,
    requests: usize,
    statuses: &BTreeMap<u16, u64>,
    wire: &WireStats,
    calls: &[Calls],
    wal: [f64; 5],
) -> Value {
    let n = requests as f64;
    let per = |v: u64| v as f64 / n;
    let syncs = wire.messages.get(&'S').copied().unwrap_or(0);
    println!(
        "  {} — {requests} requests, statuses {statuses:?}",
        kind.describe()
    );
    println!(
        "    per request: {:.2} round trips, {:.2} statements executed, {:.2} syncs \
         (counted on the wire)",
        per(wire.total_round_trips()),
        per(wire.total_executions()),
        per(syncs)
    );
    let [wal_records, wal_fpi, wal_bytes, wal_writes, wal_syncs] = wal.map(|v| v / n);
    println!(
        "    WAL per request (pg_stat_wal): {wal_syncs:.2} syncs, {wal_writes:.2} writes, \
         {wal_records:.2} records, {wal_bytes:.0} bytes, {wal_fpi:.2} full-page images"
    );
    let mut trips: Vec<(&String, &u64)> = wire.round_trips.iter().collect();
    trips.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (what, count) in &trips {
        println!("      {:>6.3} × round trip: {what}", per(**count));
    }
    let plan_ms: f64 = calls.iter().map(|c| c.plan_ms).sum();
    let exec_ms: f64 = calls.iter().map(|c| c.exec_ms).sum();
    println!(
        "    pg_stat_statements, per request: {:.3} ms planning, {:.3} ms executing; \
         calls (rows, plans) per request and statement:",
        plan_ms / n,
        exec_ms / n
    );
    for c in calls {
        println!(
            "      {:>6.3} ({:>6.3}, {:>6.3})  plan {:>6.3} ms, exec {:>6.3} ms per call  {}",
            c.calls as f64 / n,
            c.rows as f64 / n,
            c.plans as f64 / n,
            c.plan_ms / c.plans.max(1) as f64,
            c.exec_ms / c.calls.max(1) as f64,
            one_line(&c.query, 90)
        );
    }
    json!({
        "kind": kind.describe(),
        "requests": requests,
        "statuses": statuses,
        "round_trips_per_request": per(wire.total_round_trips()),
        "statements_per_request": per(wire.total_executions()),
        "syncs_per_request": per(syncs),
        "wal_per_request": {"syncs": wal_syncs, "writes": wal_writes, "records": wal_records,
                            "bytes": wal_bytes, "full_page_images": wal_fpi},
        "round_trips": trips.iter().map(|(what, count)| json!({
            "what": what, "count": count, "per_request": per(**count)})).collect::<Vec<_>>(),
        "messages": wire.messages.iter().map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>(),
        "statement_texts": wire.statements,
        "plan_ms_per_request": plan_ms / n,
        "exec_ms_per_request": exec_ms / n,
        "pg_stat_statements": calls.iter().map(|c| json!({
            "calls": c.calls, "rows": c.rows, "plans": c.plans, "calls_per_request": c.calls as f64 / n,
            "total_plan_ms": c.plan_ms, "total_exec_ms": c.exec_ms, "query": c.query}))
            .collect::<Vec<_>>(),
    })
}

/// Starts one runner on database `db` of the cluster, through the proxy; its process and the
/// api's base URL.
async fn start_runner(
    runner: &RunnerBinary,
    db: &str,
    proxy_port: u16,
    services: &Services,
    work_dir: &Path,
) -> anyhow::Result<(Process, String)> {
    let key = bench_api_key().context("BENCH_API_KEY is not set (scripts/bench.sh sets it)")?;
    let port = local_process::free_port()?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let env = [
        ("LOCAL_API_KEY", key),
        ("LOCAL_CLIENT_ID", "bench".into()),
        ("LOCAL_REQUESTS_PER_SECOND", "1000000".into()),
        ("LOCAL_MAX_OPEN_ORDERS", "1000000000".into()),
        ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{proxy_port}/{db}"),
        ),
        ("SQS_ENDPOINT", "external".into()),
        ("AWS_ENDPOINT_URL", services.sqs_url.clone()),
        ("ALERT_SINK", "queue".into()),
        ("ORDERS_QUEUE_NAME", format!("orders-statements-{suffix}")),
        ("ORDERS_DLQ_NAME", format!("orders-dlq-statements-{suffix}")),
        (
            "ALERTS_INBOX_QUEUE_NAME",
            format!("alerts-statements-{suffix}"),
        ),
        ("EXCHANGE_BASE_URL", services.exchange_url.clone()),
        // The api alone: no placement, and no sweep while requests are counted.
        ("PLACER_POLLERS", "0".into()),
        ("SWEEP_INTERVAL_SECONDS", "3600".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let log = work_dir.join(format!("runner-{}.log", runner.label));
    let process = Process::spawn(&runner.path, env, Output::AppendTo(&log))?;
    let api = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{api}/health"), Duration::from_secs(30))
        .await
        .with_context(|| format!("{} did not start; see {}", runner.label, log.display()))?;
    Ok((process, api))
}

async fn count_runner(
    runner: &RunnerBinary,
    cluster: &Postgres,
    proxy: &WireCounter,
    services: &Services,
    requests: usize,
    work_dir: &Path,
) -> anyhow::Result<Value> {
    let admin = bench::db::connect(&cluster.url("postgres")).await?;
    let db = format!("statements_{}", runner.label.replace('-', "_"));
    // One statement each: a multi-statement query is one transaction, which DROP DATABASE refuses.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let (mut process, api) = start_runner(runner, &db, proxy.port(), services, work_dir).await?;
    let key = bench_api_key().unwrap_or_default();
    let http = reqwest::Client::builder()
        .default_headers(bearer(&key)?)
        .build()?;
    println!("[{}] {}", runner.label, runner.path.display());
    // Warm-up, not counted: the pool's connections opened, the old code's statements prepared.
    let (_, mut ids) = send(&http, &api, Kind::PostConcurrently, 64, &[]).await;
    for kind in Kind::ALL {
        send(&http, &api, kind, 32, &ids).await;
    }
    let mut kinds = Vec::new();
    for kind in Kind::ALL {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.take();
        admin
            .batch_execute("SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal')")
            .await?;
        let sampling = WaitSampler::start(&cluster.url("postgres"), &db).await?;
        let (statuses, created) = send(&http, &api, kind, requests, &ids).await;
        let waits = sampling.stop().await?;
        // The enqueued marks the api writes after answering (new code) belong to the POSTs; the
        // WAL counters arrive late.
        tokio::time::sleep(STATS_FLUSH).await;
        let wire = proxy.take();
        let calls = statement_calls(&admin, &db).await?;
        let wal = wal_counters(&admin).await?;
        let mut figures = report(kind, requests, &statuses, &wire, &calls, wal);
        figures["waits"] = print_waits(&waits);
        kinds.push(figures);
        if matches!(kind, Kind::PostOneAtATime) {
            ids = created;
        }
    }
    process.kill().await?;
    Ok(json!({"label": runner.label, "binary": runner.path, "kinds": kinds}))
}

/// Counts every runner in turn and writes `statements.json` into `out`.
pub async fn statements(
    runners: &[RunnerBinary],
    services: &Services,
    requests: usize,
    work_dir: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    if runners.is_empty() {
        bail!("no runner: give --runner label=path/to/local-runner");
    }
    std::fs::create_dir_all(work_dir)?;
    let cluster = Postgres::start_with(
        work_dir,
        &[
            ("shared_preload_libraries", "pg_stat_statements"),
            // Top-level statements as the client sent them, BEGIN/COMMIT/SET included.
            ("pg_stat_statements.track", "top"),
            ("pg_stat_statements.track_utility", "on"),
            // Planning time too: an unnamed statement is planned at every execution.
            ("pg_stat_statements.track_planning", "on"),
        ],
    )
    .await
    .context("starting the throwaway cluster")?;
    let result = async {
        let admin = bench::db::connect(&cluster.url("postgres")).await?;
        admin
            .batch_execute("CREATE EXTENSION pg_stat_statements")
            .await?;
        let proxy = WireCounter::start(format!("127.0.0.1:{}", cluster.port())).await?;
        println!(
            "statements and round trips per request ({requests} requests of each kind; \
             throwaway cluster with pg_stat_statements, a counting proxy in front)"
        );
        let mut counted = Vec::new();
        for runner in runners {
            counted
                .push(count_runner(runner, &cluster, &proxy, services, requests, work_dir).await?);
        }
        write_json(
            &out.join("statements.json"),
            &json!({"machine": machine(), "requests": requests, "runners": counted}),
        )
    }
    .await;
    cluster.stop().await;
    result
}
