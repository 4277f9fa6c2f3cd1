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
//!
//! One module per step of a run: [`plan`] (the profiles), [`cluster`] (the throwaway Postgres),
//! [`services`] (the other processes), [`timeline`] (the soak's clock and log), [`faults`],
//! [`load`], [`drain`], [`evidence`] (what the system ended with), [`invariants`] and [`report`].

mod cluster;
mod drain;
mod evidence;
mod faults;
mod invariants;
mod load;
mod plan;
mod report;
mod services;
mod timeline;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;

use cluster::Postgres;
use evidence::Evidence;
use plan::Plan;
use services::System;
use timeline::Timeline;

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
    let system = System::start(bin_dir, work_dir, postgres).await?;
    // Time zero of the fault schedule and the load: the moment the whole system is up.
    let timeline = Timeline::start();
    let faults = faults::schedule(plan, &system, postgres, &timeline);
    let client = load::client(&system.api_key)?;
    let posted = load::post_orders(&client, &system.api_url, plan, &timeline).await?;
    timeline.note(format!("all {} orders posted", plan.orders));
    faults::wait(faults).await;

    let db = bench::db::connect(&postgres.url("orders")).await?;
    drain::wait_until_final(&db, plan.drain_timeout, &timeline).await?;
    let evidence = Evidence::gather(&db, &client, &system).await?;
    let report = invariants::check(plan, &posted, &evidence, &timeline);
    report.print();
    report.write(work_dir);
    Ok(report.violations())
}
