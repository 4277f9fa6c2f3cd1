//! `load-bench`: the throughput and latency numbers of `docs/BENCHMARKS.md`, against a system
//! that `scripts/bench.sh` started (release build, standalone SQS endpoint and exchange).
//! - `post`: `wrk` POSTs orders at several connection counts, several runs each; the median run
//!   is reported with requests/s, p50/p90/p99/max and the non-2xx count.
//! - `floor`: `pgbench` inserting the same order row, one transaction each, at the same client
//!   counts against the same Postgres — the ceiling the api cannot beat.
//! - `placements`: N orders against the simulated exchange (latency and failure rate as
//!   configured), successful placements/s against the bound C / latency × (1 − failure rate),
//!   and accept→placed latency percentiles, plus the placed-count time series for the plot.
//!
//! Each mode prints its table and writes JSON into `bench/results/`; `plot` draws the SVG.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::api::{bearer, bench_api_key, market_order};
use bench::process::stdout_of;
use bench::results::{median_by, write_json};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Load benchmarks of the order-placement system")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
}

#[derive(Subcommand)]
enum Mode {
    /// POST /orders with wrk.
    Post {
        #[arg(long)]
        url: String,
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        connections: Vec<u32>,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// pgbench inserting the same row per transaction.
    Floor {
        #[arg(long)]
        database_url: String,
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<u32>,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Placement throughput through the simulated exchange.
    Placements {
        #[arg(long)]
        url: String,
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        /// Exchange calls in flight (pollers × per-batch concurrency of the runner).
        #[arg(long)]
        in_flight: u32,
        #[arg(long, default_value_t = 0.5)]
        latency_seconds: f64,
        #[arg(long, default_value_t = 0.1)]
        failure_rate: f64,
    },
    /// Draws bench/results/*.json as SVG.
    Plot,
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    json!({"cpu": model, "cores": cores})
}

/// Converts wrk's "1.23ms" / "456.00us" / "1.20s" into milliseconds.
fn wrk_ms(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn run_wrk(url: &str, connections: u32, seconds: u32, script: &Path) -> anyhow::Result<Value> {
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
            script.to_str().unwrap(),
            url,
        ])
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = stdout_of("wrk", &output)?;
    let mut result = json!({"connections": connections});
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => result["requests_per_s"] = json!(rate.parse::<f64>()?),
            ["Latency", _avg, _stdev, max, ..] => result["max_ms"] = json!(wrk_ms(max)),
            ["50%", v] => result["p50_ms"] = json!(wrk_ms(v)),
            ["90%", v] => result["p90_ms"] = json!(wrk_ms(v)),
            ["99%", v] => result["p99_ms"] = json!(wrk_ms(v)),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                result["non_2xx"] = json!(n.parse::<u64>()?)
            }
            [requests, "requests", "in", ..] => {
                result["requests"] = json!(requests.parse::<u64>()?)
            }
            ["Socket", "errors:", rest @ ..] => result["socket_errors"] = json!(rest.join(" ")),
            _ => {}
        }
    }
    if result.get("non_2xx").is_none() {
        result["non_2xx"] = json!(0);
    }
    Ok(result)
}

fn post(
    url: &str,
    connections: &[u32],
    seconds: u32,
    runs: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let script = PathBuf::from("scripts/bench/post_order.lua");
    let mut rows = Vec::new();
    println!("POST /orders  (wrk, {seconds} s per run, median of {runs} runs by requests/s)");
    println!(
        "{:>6} {:>12} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "conns", "requests/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx"
    );
    for &c in connections {
        let mut all = Vec::new();
        for _ in 0..runs {
            all.push(run_wrk(&format!("{url}/orders"), c, seconds, &script)?);
        }
        let m = median_by(all.clone(), |r| r["requests_per_s"].as_f64().unwrap_or(0.0));
        println!(
            "{:>6} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8}",
            c,
            m["requests_per_s"].as_f64().unwrap_or(0.0),
            m["p50_ms"].as_f64().unwrap_or(f64::NAN),
            m["p90_ms"].as_f64().unwrap_or(f64::NAN),
            m["p99_ms"].as_f64().unwrap_or(f64::NAN),
            m["max_ms"].as_f64().unwrap_or(f64::NAN),
            m["non_2xx"]
        );
        rows.push(json!({"median": m, "runs": all}));
    }
    write_json(
        &out.join("post.json"),
        &json!({"machine": machine(), "seconds": seconds, "rows": rows}),
    )
}

fn floor(
    database_url: &str,
    clients: &[u32],
    seconds: u32,
    runs: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let script = "scripts/bench/insert_order.sql";
    println!(
        "floor: pgbench, one INSERT of an order row per transaction ({seconds} s per run, median of {runs})"
    );
    println!("{:>7} {:>12}", "clients", "tps");
    let mut rows = Vec::new();
    for &c in clients {
        let mut tps = Vec::new();
        for _ in 0..runs {
            let output = Command::new("pgbench")
                .args([
                    "-n",
                    "-c",
                    &c.to_string(),
                    "-j",
                    "2",
                    "-T",
                    &seconds.to_string(),
                    "-f",
                    script,
                    database_url,
                ])
                .output()
                .context("running pgbench")?;
            let text = stdout_of("pgbench", &output)?;
            let value = text
                .lines()
                .find(|l| l.starts_with("tps = "))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse::<f64>().ok())
                .context("no tps line in pgbench output")?;
            tps.push(value);
        }
        let m = median_by(tps.clone(), |v| *v);
        println!("{c:>7} {m:>12.0}");
        rows.push(json!({"clients": c, "tps": m, "runs": tps}));
    }
    write_json(
        &out.join("floor.json"),
        &json!({"machine": machine(), "seconds": seconds, "rows": rows}),
    )
}

async fn placements(
    url: &str,
    database_url: &str,
    orders: usize,
    in_flight: u32,
    latency: f64,
    failure_rate: f64,
    out: &Path,
) -> anyhow::Result<()> {
    let db = bench::db::connect(database_url).await?;
    // The benchmark client's key (scripts/bench.sh registers it), on every request.
    let headers = match bench_api_key() {
        Some(key) => bearer(&key)?,
        None => reqwest::header::HeaderMap::new(),
    };
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(orders);
    // Post all orders first (fast), so the placer is the only limit.
    let bodies = (0..orders).map(|i| market_order("buy", "US0378331005", 1 + i % 100));
    let responses = futures::future::join_all(bodies.map(|body| {
        let client = client.clone();
        let url = format!("{url}/orders");
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?
                .json::<Value>()
                .await
        }
    }))
    .await;
    for r in responses {
        if let Some(id) = r?["id"].as_str() {
            ids.push(uuid::Uuid::parse_str(id)?);
        }
    }
    let posted = started.elapsed();
    println!(
        "posted {} orders in {:.1} s",
        ids.len(),
        posted.as_secs_f64()
    );
    let mut series = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'placed'), \
                        count(*) FILTER (WHERE status IN ('placed','rejected','failed')) \
                 FROM orders WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        let (placed, done): (i64, i64) = (row.get(0), row.get(1));
        series.push(json!({"t": started.elapsed().as_secs_f64(), "placed": placed}));
        if done as usize >= ids.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'placed'), \
                    extract(epoch FROM max(placed_at) - min(placed_at))::float8, \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM placed_at - created_at))::float8, \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM placed_at - created_at))::float8, \
                    avg(attempts)::float8 \
             FROM orders WHERE id = ANY($1) AND status = 'placed'",
            &[&ids],
        )
        .await?;
    let placed: i64 = row.get(0);
    let span: f64 = row.get::<_, Option<f64>>(1).unwrap_or(0.0);
    let p50: f64 = row.get::<_, Option<f64>>(2).unwrap_or(f64::NAN);
    let p99: f64 = row.get::<_, Option<f64>>(3).unwrap_or(f64::NAN);
    let attempts: f64 = row.get::<_, Option<f64>>(4).unwrap_or(f64::NAN);
    let rate = if span > 0.0 {
        placed as f64 / span
    } else {
        0.0
    };
    let bound = in_flight as f64 / latency * (1.0 - failure_rate);
    // The steady state: from 10 % to 90 % of the orders placed. The overall rate also holds the
    // tail of orders whose calls failed and wait out their back-off (2 s, 4 s, … by design),
    // which no throughput bound of the exchange calls describes.
    let steady = steady_rate(&series, ids.len(), 0.1, 0.9);
    println!(
        "placements: {placed} placed of {} in {span:.1} s → {rate:.1}/s overall, {steady:.1}/s steady (10 %→90 % placed)",
        ids.len()
    );
    println!(
        "bound C / latency × (1 − failure rate) = {in_flight} / {latency} × {:.2} = {bound:.1}/s → steady {:.0} %, overall {:.0} % of it",
        1.0 - failure_rate,
        100.0 * steady / bound,
        100.0 * rate / bound
    );
    println!("accept→placed latency p50 {p50:.2} s, p99 {p99:.2} s; mean attempts {attempts:.2}");
    write_json(
        &out.join("placements.json"),
        &json!({"machine": machine(), "orders": ids.len(), "placed": placed, "seconds": span,
               "placements_per_s": rate, "bound_per_s": bound, "ratio": rate / bound,
               "steady_placements_per_s": steady, "steady_ratio": steady / bound,
               "in_flight": in_flight, "latency_s": latency, "failure_rate": failure_rate,
               "accept_to_placed_p50_s": p50, "accept_to_placed_p99_s": p99,
               "mean_attempts": attempts, "series": series}),
    )
}

/// Placements per second between the moments `from` and `to` (fractions of `total`) were
/// reached, interpolated linearly between the samples of the placed-count series.
fn steady_rate(series: &[Value], total: usize, from: f64, to: f64) -> f64 {
    let points: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|p| Some((p["t"].as_f64()?, p["placed"].as_f64()?)))
        .collect();
    let crossing = |target: f64| {
        points.windows(2).find_map(|w| {
            let ((t0, n0), (t1, n1)) = (w[0], w[1]);
            (n0 < target && n1 >= target).then(|| t0 + (t1 - t0) * (target - n0) / (n1 - n0))
        })
    };
    let (low, high) = (from * total as f64, to * total as f64);
    match (crossing(low), crossing(high)) {
        (Some(a), Some(b)) if b > a => (high - low) / (b - a),
        _ => f64::NAN,
    }
}

/// Two SVG charts: latency percentiles against connections, placed orders over time.
fn plot(out: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let read = |name: &str| -> anyhow::Result<Value> {
        Ok(serde_json::from_str(
            &std::fs::read_to_string(out.join(name))
                .with_context(|| format!("{name}: run the benchmark first"))?,
        )?)
    };
    let post = read("post.json")?;
    let rows = post["rows"].as_array().cloned().unwrap_or_default();
    let path = out.join("latency-vs-connections.svg");
    {
        let root = SVGBackend::new(&path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_latency = rows
            .iter()
            .filter_map(|r| r["median"]["p99_ms"].as_f64())
            .fold(1.0, f64::max);
        let conns: Vec<f64> = rows
            .iter()
            .filter_map(|r| r["median"]["connections"].as_f64())
            .collect();
        let max_conn = conns.iter().cloned().fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "POST /orders latency vs concurrent connections",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_conn * 1.05, 0.0..max_latency * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("connections")
            .y_desc("latency (ms)")
            .draw()?;
        for (key, color) in [("p50_ms", BLUE), ("p90_ms", GREEN), ("p99_ms", RED)] {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r["median"]["connections"].as_f64()?,
                        r["median"][key].as_f64()?,
                    ))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color))?
                .label(key.trim_end_matches("_ms"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        root.present()?;
    }
    println!("wrote {}", path.display());
    if let Ok(placements) = read("placements.json") {
        let series: Vec<(f64, f64)> = placements["series"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| Some((p["t"].as_f64()?, p["placed"].as_f64()?)))
            .collect();
        let path = out.join("placements-over-time.svg");
        let root = SVGBackend::new(&path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_t = series.iter().map(|p| p.0).fold(1.0, f64::max);
        let max_n = series.iter().map(|p| p.1).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption("Orders placed over time", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_t * 1.05, 0.0..max_n * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first POST")
            .y_desc("orders placed")
            .draw()?;
        chart.draw_series(LineSeries::new(series, BLUE))?;
        root.present()?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!("machine: {}", machine());
    match cli.mode {
        Mode::Post {
            url,
            connections,
            seconds,
            runs,
        } => post(&url, &connections, seconds, runs, &cli.out_dir),
        Mode::Floor {
            database_url,
            clients,
            seconds,
            runs,
        } => floor(&database_url, &clients, seconds, runs, &cli.out_dir),
        Mode::Placements {
            url,
            database_url,
            orders,
            in_flight,
            latency_seconds,
            failure_rate,
        } => {
            placements(
                &url,
                &database_url,
                orders,
                in_flight,
                latency_seconds,
                failure_rate,
                &cli.out_dir,
            )
            .await
        }
        Mode::Plot => plot(&cli.out_dir),
    }
}
