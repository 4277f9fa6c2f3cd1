//! `ingest-bench`: execution reports ingested per second at the simulator's load mode.
//!
//! In one process: the simulated exchange (in-process, no latency) and the ingester (the same
//! `run_ingester` the service runs, over the WebSocket feed), against the Postgres of
//! `TEST_ADMIN_DATABASE_URL` (default 127.0.0.1:5432) in a fresh, migrated database. The orders
//! are stored `placed` beforehand; the load mode fills them one share per report. The clock runs
//! from the load's start until the stored cursor reaches its last report. Prints the rate, the
//! batch size, Postgres CPU per report (all `postgres` processes' user + system time from
//! /proc, so run it on an otherwise quiet machine), this process's CPU (simulator + ingester),
//! and checks that every report was stored and applied exactly once. Prints numbers; asserts no
//! timing.
//!
//! `cargo run --release -p bench --bin ingest-bench -- --reports 400000 --rate 0`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use exchange_sim::{LoadRequest, SimSettings};
use order_shared::adapters::feed_socket::{FeedSocket, FeedSocketConfig};
use order_shared::adapters::postgres::{
    DatabaseConfig, DatabaseCredentials, PostgresExecutionStore, TlsMode, build_pool,
    run_migrations,
};
use order_shared::handlers::ingester::{IngesterSettings, run_ingester};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Reports the load mode publishes.
    #[arg(long, default_value_t = 400_000)]
    reports: u64,
    /// Reports per second (0: as fast as the simulator goes).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Shares (one report each) per order.
    #[arg(long, default_value_t = 100)]
    fills_per_order: u32,
    /// Orders filled in turn, so that their reports interleave.
    #[arg(long, default_value_t = 100)]
    concurrent_orders: u32,
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

fn admin_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// CPU seconds (user + system) of every process named `postgres`, or of `pid`.
fn cpu_seconds(only: Option<u32>) -> anyhow::Result<f64> {
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if only.is_some_and(|p| p != pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if only.is_none() && &stat[open + 1..close] != "postgres" {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    Ok(total as f64 / ticks)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.reports % u64::from(args.fills_per_order) != 0 {
        bail!("--reports must be a multiple of --fills-per-order");
    }
    let orders = (args.reports / u64::from(args.fills_per_order)) as usize;

    let admin = bench::db::connect(&admin_url()).await?;
    let name = format!("ingest_bench_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let base = admin_url();
    let base = base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let pool = build_pool(
        &DatabaseConfig {
            credentials: DatabaseCredentials::Url(url.clone()),
            tls: TlsMode::Disable,
            ca_file: None,
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
        },
        None,
    )
    .await?;
    run_migrations(&pool).await?;
    let db = bench::db::connect(&url).await?;
    let ids: Vec<Uuid> = (0..orders).map(|_| Uuid::now_v7()).collect();
    db.execute(
        "INSERT INTO orders (id, order_type, side, instrument, quantity, status, \
                exchange_order_id, placed_at, request_fingerprint, expires_at) \
         SELECT id, 'market', 'buy', 'US0378331005', $2, 'placed', 'EX-' || id, now(), \
                'bench', now() + interval '1 day' \
         FROM unnest($1::uuid[]) AS id",
        &[&ids, &i64::from(args.fills_per_order)],
    )
    .await
    .context("inserting the orders")?;
    db.batch_execute("VACUUM ANALYZE orders").await?;

    let sim = exchange_sim::spawn(
        "127.0.0.1:0".parse()?,
        SimSettings {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            feed_capacity: (args.reports as usize).max(500_000) + 1000,
            ..SimSettings::default()
        },
    )
    .await?;
    let store = PostgresExecutionStore::new(pool.clone());
    let feed = FeedSocket::new(FeedSocketConfig {
        url: sim.feed_url(),
        api_key: None,
        connect_timeout: Duration::from_secs(2),
        silence_timeout: Duration::from_secs(30),
    });
    let settings = IngesterSettings {
        batch_size: args.batch_size,
        linger: Duration::from_millis(args.linger_ms),
        ..IngesterSettings::new("ingest-bench")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ingester = tokio::spawn(async move {
        run_ingester(&feed, &store, &settings, async {
            let _ = stopped.await;
        })
        .await;
    });
    // Connected and idle before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cursor = || async {
        db.query_one("SELECT last_sequence FROM execution_feed_cursor", &[])
            .await
            .map(|row| row.get::<_, i64>(0) as u64)
    };
    let pg_before = cpu_seconds(None)?;
    let me_before = cpu_seconds(Some(std::process::id()))?;
    let started = Instant::now();
    sim.start_load(LoadRequest {
        rate: args.rate,
        reports: Some(args.reports),
        fills_per_order: args.fills_per_order,
        concurrent_orders: args.concurrent_orders.min(orders as u32),
        client_order_ids: ids.clone(),
        ..LoadRequest::default()
    })
    .map_err(anyhow::Error::msg)?;
    let mut max_lag = 0u64;
    let (mut at_10, mut at_90) = (None, None);
    loop {
        let done = cursor().await?;
        let published = sim.load().published;
        max_lag = max_lag.max(published.saturating_sub(done));
        if at_10.is_none() && done >= args.reports / 10 {
            at_10 = Some((started.elapsed(), done));
        }
        if at_90.is_none() && done >= args.reports * 9 / 10 {
            at_90 = Some((started.elapsed(), done));
        }
        if done >= args.reports {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not caught up after 600 s: {done} of {}", args.reports);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let pg_cpu = cpu_seconds(None)? - pg_before;
    let me_cpu = cpu_seconds(Some(std::process::id()))? - me_before;
    let load = sim.load();
    let _ = stop.send(());
    let _ = ingester.await;

    // Exactly once: one row per report, each applied, every share counted once.
    let check = db
        .query_one(
            "SELECT (SELECT count(*) FROM executions), \
                    (SELECT count(*) FROM executions WHERE applied_at IS NOT NULL), \
                    (SELECT sum(filled_quantity)::bigint FROM orders), \
                    (SELECT count(*) FROM orders WHERE status = 'filled')",
            &[],
        )
        .await?;
    let (stored, applied, filled, filled_orders): (i64, i64, i64, i64) =
        (check.get(0), check.get(1), check.get(2), check.get(3));
    let stats = sim.feed_stats();

    let rate = args.reports as f64 / elapsed.as_secs_f64();
    println!(
        "ingest-bench: {} reports, {orders} orders of {} shares ({} filled in turn)",
        args.reports,
        args.fills_per_order,
        args.concurrent_orders.min(orders as u32)
    );
    println!(
        "  load mode        rate {} (0: unthrottled), published in {:.2} s = {:.0}/s",
        args.rate,
        load.elapsed_ms as f64 / 1000.0,
        load.achieved_rate
    );
    println!(
        "  batch            up to {} reports, linger {} ms",
        args.batch_size, args.linger_ms
    );
    println!(
        "  ingested         {} in {:.2} s = {rate:.0} reports/s (load start to last stored)",
        args.reports,
        elapsed.as_secs_f64()
    );
    if let (Some((t10, d10)), Some((t90, d90))) = (at_10, at_90) {
        let middle = (d90 - d10) as f64 / (t90 - t10).as_secs_f64();
        println!("  sustained        {middle:.0} reports/s between 10 % and 90 %");
    }
    println!("  max lag          {max_lag} reports behind the load");
    println!(
        "  Postgres CPU     {pg_cpu:.2} s = {:.1} µs per report",
        pg_cpu * 1e6 / args.reports as f64
    );
    println!(
        "  this process CPU {me_cpu:.2} s = {:.1} µs per report (simulator + ingester)",
        me_cpu * 1e6 / args.reports as f64
    );
    println!(
        "  exactly once     {stored} stored, {applied} applied, {filled} shares filled \
              (exchange: {}), {filled_orders} orders filled",
        stats.total_filled_quantity
    );
    let ok = stored as u64 == args.reports
        && applied as u64 == args.reports
        && filled == stats.total_filled_quantity
        && filled_orders as usize == orders;

    pool.close();
    drop(db);
    sim.shutdown().await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    if !ok {
        bail!("reports lost or applied twice");
    }
    Ok(())
}
