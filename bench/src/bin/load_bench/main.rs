//! `load-bench`: the throughput, latency and statement-count numbers of `docs/BENCHMARKS.md`,
//! against a system that `scripts/bench.sh` started (release build, standalone SQS endpoint and
//! exchange). One module per mode:
//! - [`post`]: `wrk` POSTs orders at several connection counts against one or more targets
//!   (e.g. the old and the new code, directly or through PgBouncer), several runs each and the
//!   targets alternating; the median run is reported with requests/s, p50/p90/p99/max, the
//!   non-2xx count and socket errors.
//! - [`floor`]: `pgbench` inserting the same order row, one transaction each, at the same client
//!   counts against the same Postgres — the ceiling the api cannot beat.
//! - [`statements`]: the round trips and statements of each kind of request, counted on the wire
//!   and by `pg_stat_statements` in a throwaway cluster.
//! - [`placements`]: N orders against the simulated exchange (latency and failure rate as
//!   configured), successful placements/s against the bound C / latency × (1 − failure rate),
//!   and accept→placed latency percentiles, plus the placed-count time series for the plot.
//! - [`plot`]: the SVG charts.
//!
//! Each mode prints its table and writes JSON into `bench/results/`.

mod floor;
mod placements;
mod plot;
mod post;
mod statements;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use post::Target;
use statements::{RunnerBinary, Services};

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
        /// The api's base URL (one target, labelled `api`).
        #[arg(long)]
        url: Option<String>,
        /// `label=url` of an api to load; repeat for several, which then take turns.
        #[arg(long = "target")]
        targets: Vec<Target>,
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        connections: Vec<u32>,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The results file: `<name>.json`.
        #[arg(long, default_value = "post")]
        name: String,
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
        /// The results file: `<name>.json`.
        #[arg(long, default_value = "floor")]
        name: String,
    },
    /// Round trips and statements per request, counted (throwaway cluster, pg_stat_statements).
    Statements {
        /// `label=path/to/local-runner`; repeat for several, counted one after the other.
        #[arg(long = "runner", required = true)]
        runners: Vec<RunnerBinary>,
        /// Requests of each kind.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// The SQS endpoint the runners send to.
        #[arg(long)]
        sqs_url: String,
        /// The exchange the runners would place with (placement is off).
        #[arg(long)]
        exchange_url: String,
        /// The runners' and the cluster's logs.
        #[arg(long, default_value = ".local/bench/statements")]
        work_dir: PathBuf,
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

/// The machine a result was measured on, and how busy it was when the measurement began (the
/// 1/5/15-minute load averages).
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
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    json!({"cpu": model, "cores": cores, "load_average": load})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!("machine: {}", machine());
    match cli.mode {
        Mode::Post {
            url,
            mut targets,
            connections,
            seconds,
            runs,
            name,
        } => {
            if let Some(url) = url {
                targets.insert(0, url.parse().map_err(anyhow::Error::msg)?);
            }
            post::post(&targets, &connections, seconds, runs, &name, &cli.out_dir)
        }
        Mode::Floor {
            database_url,
            clients,
            seconds,
            runs,
            name,
        } => floor::floor(&database_url, &clients, seconds, runs, &name, &cli.out_dir),
        Mode::Statements {
            runners,
            requests,
            sqs_url,
            exchange_url,
            work_dir,
        } => {
            let services = Services {
                sqs_url,
                exchange_url,
            };
            statements::statements(&runners, &services, requests, &work_dir, &cli.out_dir).await
        }
        Mode::Placements {
            url,
            database_url,
            orders,
            in_flight,
            latency_seconds,
            failure_rate,
        } => {
            placements::placements(
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
        Mode::Plot => plot::plot(&cli.out_dir),
    }
}
