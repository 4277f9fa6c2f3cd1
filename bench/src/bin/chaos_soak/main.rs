//! `chaos-soak`: posts orders at a steady rate into the real system — the local runner, the
//! ingester on the exchange's execution feed, a standalone SQS endpoint, the simulated exchange
//! (which fills what it places: market orders at once in up to four reports, limit orders over
//! several reports in some 20 to 30 s) and a throwaway Postgres cluster, each its own process —
//! while it injects faults: a short and a long exchange outage (the long one outlasts the market
//! orders' time in force, with orders still coming and the runner killed inside it), the SQS
//! endpoint frozen (SIGSTOP/SIGCONT: unavailable, not lossy, like real SQS), a Postgres restart
//! (under the runner and the ingester alike), the runner killed with SIGKILL and restarted,
//! poison messages in the orders queue, the ingester SIGKILLed while it writes a backlog of
//! reports (mid-batch) and restarted as a new process, every feed connection dropped by the
//! exchange (at set times, and now and then at random), and duplicate reports (re-sent under a
//! new sequence number, or a message sent twice), many of them for ten seconds. Some orders carry
//! a short `expires_at` of their own, and some are canceled by their client. At the end — once
//! every order is out of the placement pipeline, the exchange has stopped filling and the
//! ingester has caught up with the feed — it checks what the design promises and exits non-zero
//! on any violation:
//! - every accepted (201) order exists and is final for the pipeline (`placed`,
//!   `partially_filled`, `pending_cancel`, `filled`, `rejected`, `failed`, `expired` or
//!   `canceled`): none lost;
//! - no order was placed twice at the exchange; every order the exchange placed is known to it
//!   whatever status the ingester moved it to (`placed`, `partially_filled`, `pending_cancel`,
//!   `filled`, `canceled`/`expired` at the exchange), and no order that ended otherwise
//!   (`failed`, `rejected`, `expired`/`canceled` before placement) is;
//! - no order was sent to the exchange after its expiry, and none failed while still within it;
//! - a cancel's answer (200, 409) matches how the order ended (a 409 naming `placed` allows what
//!   the exchange's reports did to it since);
//! - every failed or expired order (except an expiry at the exchange) is counted in an incident,
//!   and each incident has exactly one opening and one closing alert; each poison message exactly
//!   one alert of its own; nothing else is alerted, and the DLQ ends empty;
//! - no 5xx for a valid request outside the Postgres restart window;
//! - while the exchange is down, the calls it gets are a trickle of breaker probes (printed per
//!   minute of the outage, against the rate before it);
//! - the ingester: its stored cursor is the feed's last sequence, read in one snapshot with the
//!   exchange's own per-order counts (`/feed/stats`); every order's `filled_quantity` equals the
//!   shares the exchange filled for it and the sum of its applied fills, with as many fills, and
//!   its status agrees with the exchange's state; 0 reports applied twice and 0 lost: the whole
//!   feed is read back, and every execution the exchange sent is stored once (by execution id),
//!   with its content, and applied — none left waiting, none stored that it did not send; each
//!   fill move is audited once. The report shows the reports published, stored, applied and
//!   ignored as duplicates, the ingester kills (and what each left unwritten) and the socket
//!   drops.
//!
//! One module per step of a run: [`plan`] (the profiles), [`bench::cluster`] (the throwaway
//! Postgres), [`services`] (the other processes), [`timeline`] (the soak's clock and log),
//! [`faults`], [`load`], [`exchange_watch`] (the exchange's calls, sampled), [`feed`] (the
//! execution feed and the ingester's progress), [`drain`], [`evidence`] (what the system ended
//! with), [`invariants`] and [`report`]; [`sqs`] is the soak's own SQS client.

mod bouncer;
mod drain;
mod evidence;
mod exchange_watch;
mod faults;
mod feed;
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

/// How long the ingester may take to catch up with the feed once everything else has drained
/// (it writes thousands of reports a second; a minute is for a restart still waiting out a
/// lease, with room to spare).
const INGESTER_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(about = "Chaos soak of the order-placement system")]
struct Args {
    /// `short` (1 650 orders over 2 minutes, one fault of each kind — three ingester kills and
    /// three feed drops — and a 60 s exchange outage; runs in CI) or `long` (12 000 orders over
    /// 15 minutes, a 10-minute exchange outage, several runner and ingester kills).
    #[arg(long, default_value = "short")]
    profile: String,
    /// Override the number of orders.
    #[arg(long)]
    orders: Option<usize>,
    /// Override the posting rate (orders per second).
    #[arg(long)]
    rate: Option<f64>,
    /// Directory with the release binaries (local-runner, ingester, exchange-sim, sqs-local).
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
    let mut unfinished =
        drain::wait_until_final(&db, &system.sqs_url, plan.drain_timeout, &timeline).await?;
    drain::wait_until_ingested(
        &db,
        &system.exchange_url,
        INGESTER_DRAIN_TIMEOUT,
        &timeline,
        &mut unfinished,
    )
    .await?;
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
