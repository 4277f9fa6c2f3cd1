//! `chaos-soak`: posts orders at a steady rate into the real system — the local runner, a
//! standalone SQS endpoint, the simulated exchange and a throwaway Postgres cluster, each its own
//! process — while it injects faults: a short and a long exchange outage (the long one outlasts
//! the market orders' time in force, with orders still coming and the runner killed inside it),
//! the SQS endpoint frozen (SIGSTOP/SIGCONT: unavailable, not lossy, like real SQS), a Postgres
//! restart, the runner killed with SIGKILL and restarted, and poison messages in the orders
//! queue. Some orders carry a short `expires_at` of their own, and some are canceled by their
//! client. At the end it checks what the design promises and exits non-zero on any violation:
//! - every accepted (201) order exists and is final (`placed`, `rejected`, `failed`, `expired`
//!   or `canceled`): none lost;
//! - no order was placed twice at the exchange, every `placed` order is known to it, and no
//!   order that ended otherwise (`failed`, `rejected`, `expired`, `canceled`) is;
//! - no order was sent to the exchange after its expiry, and none failed while still within it;
//! - a cancel's answer (200, 409) matches how the order ended;
//! - every failed or expired order is counted in an incident, and each incident has exactly one
//!   opening and one closing alert; each poison message exactly one alert of its own; nothing
//!   else is alerted, and the DLQ ends empty;
//! - no 5xx for a valid request outside the Postgres restart window;
//! - while the exchange is down, the calls it gets are a trickle of breaker probes (printed per
//!   minute of the outage, against the rate before it).
//!
//! One module per step of a run: [`plan`] (the profiles), [`bench::cluster`] (the throwaway Postgres),
//! [`services`] (the other processes), [`timeline`] (the soak's clock and log), [`faults`],
//! [`load`], [`exchange_watch`] (the exchange's calls, sampled), [`drain`], [`evidence`] (what
//! the system ended with), [`invariants`] and [`report`]; [`sqs`] is the soak's own SQS client.

mod bouncer;
mod drain;
mod evidence;
mod exchange_watch;
mod faults;
mod invariants;
mod load;
mod plan;
mod report;
mod services;
mod sqs;
mod timeline;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;

use bench::cluster::Postgres;
use evidence::Evidence;
use exchange_watch::ExchangeWatch;
use plan::Plan;
use services::System;
use timeline::Timeline;

#[derive(Parser, Debug)]
#[command(about = "Chaos soak of the order-placement system")]
struct Args {
    /// `short` (1 650 orders over 2 minutes, one fault of each kind and a 60 s exchange outage;
    /// runs in CI) or `long` (12 000 orders over 15 minutes, a 10-minute exchange outage,
    /// several runner kills).
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan::for_profile(&args.profile, args.orders, args.rate)?;
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
    // The cluster is stopped (and its temp directory removed) whether or not the soak succeeded.
    let result = soak(&plan, &bin_dir, &work_dir, &postgres).await;
    postgres.stop().await;
    let violations = result?;
    if violations > 0 {
        bail!("{violations} violation(s)");
    }
    println!("chaos soak passed");
    Ok(())
}

/// One run: start the services, post the load while the faults happen, let the system settle,
/// then check and report. Returns the number of violations.
async fn soak(
    plan: &Plan,
    bin_dir: &Path,
    work_dir: &Path,
    postgres: &Postgres,
) -> anyhow::Result<usize> {
    let system = System::start(bin_dir, work_dir, postgres, &plan.runner).await?;
    // Time zero of the fault schedule and the load: the moment the whole system is up.
    let timeline = Timeline::start();
    let watch = ExchangeWatch::start(&system.exchange_url, timeline.clone());
    let poison = faults::poison_messages();
    let faults = faults::schedule(plan, &system, postgres, &poison, &timeline);
    let client = load::client(&system.api_key)?;
    let posted = load::post_orders(&client, &system.api_url, plan, &timeline).await?;
    timeline.note(format!("all {} orders posted", plan.orders));
    faults::wait(faults).await;

    let db = bench::db::connect(&postgres.url("orders")).await?;
    let unfinished =
        drain::wait_until_final(&db, &system.sqs_url, plan.drain_timeout, &timeline).await?;
    let watched = watch.stop(&system.exchange_url, &timeline).await;
    let evidence = Evidence::gather(&db, &client, &system, watched).await?;
    let report = invariants::check(&invariants::Inputs {
        plan,
        posted: &posted,
        evidence: &evidence,
        timeline: &timeline,
        poison: &poison,
        unfinished: &unfinished,
    });
    report.print();
    evidence::print_audit(&db, report.suspects(), &timeline).await;
    report.write(work_dir);
    Ok(report.violations())
}
