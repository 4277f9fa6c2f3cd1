//! The faults, each on its own task at the time the plan gives: the runner killed with SIGKILL
//! and restarted, a short and a long exchange outage, the SQS endpoint frozen, a Postgres
//! restart (which hits the runner and the ingester alike), poison messages in the orders queue,
//! the ingester SIGKILLed while it writes a backlog of reports and restarted, every feed
//! connection dropped by the exchange, and a stretch of duplicate reports. Each is injected from
//! outside the process it hits; the system learns of it only by its effects.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use bench::process::signal;
use exchange_sim::ControlPatch;

use crate::feed;
use crate::plan::Plan;
use crate::services::{
    FEED_DUPLICATE_RATE, FEED_REDELIVER_RATE, INGESTER_LEASE_SECONDS, Ingester, Runner, System,
};
use crate::timeline::IngesterKill;
use crate::timeline::Timeline;
use bench::cluster::Postgres;

/// Starts one task per fault of `plan`; they sleep until their time comes.
pub fn schedule(
    plan: &Plan,
    system: &System,
    postgres: &Postgres,
    poison: &[Poison],
    timeline: &Arc<Timeline>,
) -> Vec<JoinHandle<()>> {
    let mut faults = Vec::new();
    for &at in &plan.runner_kills {
        faults.push(tokio::spawn(kill_runner(
            system.runner.clone(),
            timeline.clone(),
            at,
        )));
    }
    faults.push(tokio::spawn(exchange_outage(
        system.exchange_url.clone(),
        timeline.clone(),
        plan.exchange_down_at,
        plan.exchange_down_for,
        "short",
    )));
    faults.push(tokio::spawn(exchange_outage(
        system.exchange_url.clone(),
        timeline.clone(),
        plan.long_outage_at,
        plan.long_outage_for,
        "long",
    )));
    faults.push(tokio::spawn(inject_poison(
        system.sqs_url.clone(),
        poison.iter().map(|p| p.body.clone()).collect(),
        timeline.clone(),
        plan.poison_at,
    )));
    faults.push(tokio::spawn(freeze_sqs(
        system.sqs.pid(),
        timeline.clone(),
        plan.sqs_freeze_at,
        plan.sqs_freeze_for,
    )));
    faults.push(tokio::spawn(restart_postgres(
        postgres.clone(),
        timeline.clone(),
        plan.postgres_restart_at,
    )));
    faults.push(tokio::spawn(ingester_after_postgres_restart(
        system.exchange_url.clone(),
        postgres.url("orders"),
        timeline.clone(),
        plan.postgres_restart_at,
    )));
    for &at in &plan.ingester_kills {
        faults.push(tokio::spawn(kill_ingester(
            system.ingester.clone(),
            system.exchange_url.clone(),
            postgres.url("orders"),
            timeline.clone(),
            at,
        )));
    }
    for &at in &plan.feed_drops {
        faults.push(tokio::spawn(drop_feed(
            system.exchange_url.clone(),
            timeline.clone(),
            at,
        )));
    }
    faults.push(tokio::spawn(duplicate_reports(
        system.exchange_url.clone(),
        timeline.clone(),
        plan.duplicates_at,
        plan.duplicates_for,
    )));
    faults
}

/// Waits until every fault is over (the system is whole again).
pub async fn wait(faults: Vec<JoinHandle<()>>) {
    for fault in faults {
        let _ = fault.await;
    }
}

/// SIGKILL, no warning: in-flight requests, claimed orders and received messages are abandoned
/// mid-way. The restart follows after a random pause of 0.5 to 2 s.
async fn kill_runner(runner: Arc<Runner>, timeline: Arc<Timeline>, at: Duration) {
    timeline.sleep_until(at).await;
    let mut process = runner.process.lock().await;
    let _ = signal(process.pid(), "KILL").await;
    let _ = process.wait().await;
    timeline.note("runner killed with SIGKILL");
    tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(0..1500))).await;
    match runner.spawn() {
        Ok(restarted) => *process = restarted,
        Err(error) => timeline.note(format!("runner restart failed: {error:#}")),
    }
    drop(process);
    let _ = runner.wait_healthy().await;
    timeline.note("runner restarted");
}

/// Through the simulated exchange's control endpoint: placements and lookups are refused (503)
/// while it is down. A switch that does not take is noted: the checks would then test less.
async fn exchange_outage(
    exchange_url: String,
    timeline: Arc<Timeline>,
    at: Duration,
    down_for: Duration,
    which: &'static str,
) {
    timeline.sleep_until(at).await;
    let client = reqwest::Client::new();
    let control = format!("{exchange_url}/control");
    let switch = |down: bool| {
        client
            .post(&control)
            .json(&serde_json::json!({ "down": down }))
            .send()
    };
    if let Err(error) = switch(true).await.and_then(|r| r.error_for_status()) {
        timeline.note(format!("could not take the exchange down: {error}"));
    }
    timeline.note(format!("exchange down for {down_for:?} ({which} outage)"));
    timeline.sleep_until(at + down_for).await;
    if let Err(error) = switch(false).await.and_then(|r| r.error_for_status()) {
        timeline.note(format!("could not bring the exchange back: {error}"));
    }
    timeline.note(format!("exchange back up ({which} outage over)"));
}

/// Messages no placer can handle, sent straight into the orders queue: each must reach the DLQ
/// and be reported to the admins on its own.
async fn inject_poison(
    sqs_url: String,
    bodies: Vec<String>,
    timeline: Arc<Timeline>,
    at: Duration,
) {
    timeline.sleep_until(at).await;
    let sqs = crate::sqs::client(&sqs_url).await;
    let url = match crate::sqs::queue_url(&sqs, crate::sqs::ORDERS_QUEUE).await {
        Ok(url) => url,
        Err(error) => {
            timeline.note(format!("poison not sent: no orders queue: {error:#}"));
            return;
        }
    };
    for body in &bodies {
        if let Err(error) = sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
        {
            timeline.note(format!("poison message not sent: {error}"));
        }
    }
    timeline.note(format!(
        "{} poison message(s) sent to the orders queue",
        bodies.len()
    ));
}

/// A poison message of a run: its body, and the marker its alert must quote.
#[derive(Debug, Clone)]
pub struct Poison {
    pub body: String,
    pub marker: String,
}

/// The poison messages of a run, each with a marker of its own: one that is no placement
/// message at all, and one well formed but naming no order.
pub fn poison_messages() -> Vec<Poison> {
    let marker = uuid::Uuid::new_v4().to_string();
    let ghost = uuid::Uuid::new_v4().to_string();
    vec![
        Poison {
            body: format!("chaos-soak poison {marker}: not a placement message"),
            marker,
        },
        Poison {
            body: serde_json::json!({
                "version": 1,
                "order_id": ghost,
                "type": "market",
                "side": "buy",
                "instrument": "US0378331005",
                "limit_price": null,
                "quantity": 1,
            })
            .to_string(),
            marker: ghost,
        },
    ]
}

/// SIGSTOP, then SIGCONT: the endpoint is unavailable but keeps every message, as real SQS.
async fn freeze_sqs(pid: u32, timeline: Arc<Timeline>, at: Duration, freeze_for: Duration) {
    timeline.sleep_until(at).await;
    let _ = signal(pid, "STOP").await;
    timeline.note(format!("SQS endpoint frozen (SIGSTOP) for {freeze_for:?}"));
    tokio::time::sleep(freeze_for).await;
    let _ = signal(pid, "CONT").await;
    timeline.note("SQS endpoint resumed (SIGCONT)");
}

/// A fast restart; its window is recorded, since a 5xx inside it is expected.
async fn restart_postgres(postgres: Postgres, timeline: Arc<Timeline>, at: Duration) {
    timeline.sleep_until(at).await;
    let began = timeline.elapsed();
    timeline.note("Postgres restart begins");
    if let Err(error) = postgres.restart().await {
        timeline.note(format!("Postgres restart failed: {error:#}"));
    }
    let ended = timeline.elapsed();
    timeline.postgres_restarted(began, ended);
    timeline.note("Postgres restarted");
}

/// How long the ingester is stopped before it is killed: the backlog it then writes.
const INGESTER_STOPPED_FOR: Duration = Duration::from_secs(3);

/// The ingester killed mid-batch: SIGSTOP for a few seconds while the exchange keeps publishing,
/// so that a backlog waits for it (several batches: see `INGESTER_BATCH_SIZE`); SIGCONT, and
/// SIGKILL as soon as the stored cursor shows its first batch of the backlog committed — with the
/// next batch received and being written, and the rest of the backlog on its way. Whatever it had
/// received and not written is lost with the process and must come again from the feed; a batch
/// whose statement was in flight either committed (with its cursor) or did not. A new process is
/// started after a pause of 0.5 to 2 s; it takes over once the killed one's lease has expired.
/// How much of the backlog was unwritten at the kill is recorded (0 would mean it had caught up:
/// not mid-batch after all).
async fn kill_ingester(
    ingester: Arc<Ingester>,
    exchange_url: String,
    db_url: String,
    timeline: Arc<Timeline>,
    at: Duration,
) {
    timeline.sleep_until(at).await;
    let client = reqwest::Client::new();
    let db = bench::db::connect(&db_url).await.ok();
    let mut process = ingester.process.lock().await;
    let pid = process.pid();
    let _ = signal(pid, "STOP").await;
    tokio::time::sleep(INGESTER_STOPPED_FOR).await;
    let last = feed::last_sequence(&client, &exchange_url).await.ok();
    let before = match &db {
        Some(db) => feed::cursor(db).await.ok(),
        None => None,
    };
    let _ = signal(pid, "CONT").await;
    // Watch the cursor (a query takes well under a millisecond) for the first committed batch;
    // kill at once then, or after a second whatever happened (e.g. it had lost its lease).
    let resumed = tokio::time::Instant::now();
    if let (Some(db), Some(before)) = (&db, before) {
        while resumed.elapsed() < Duration::from_secs(1) {
            match feed::cursor(db).await {
                Ok(cursor) if cursor > before => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let _ = signal(pid, "KILL").await;
    let _ = process.wait().await;
    let after = match &db {
        Some(db) => feed::cursor(db).await.ok(),
        None => None,
    };
    match (last, before, after) {
        (Some(last), Some(before), Some(after)) => {
            let kill = IngesterKill {
                behind_at_resume: last.saturating_sub(before),
                unwritten_at_kill: last.saturating_sub(after),
            };
            timeline.ingester_killed(kill);
            timeline.note(format!(
                "ingester SIGKILLed {:.0} ms after SIGCONT, mid-way through a backlog: cursor \
                 {before} -> {after} of {last} ({} report(s) unwritten)",
                resumed.elapsed().as_secs_f64() * 1000.0,
                kill.unwritten_at_kill,
            ));
        }
        _ => {
            timeline.ingester_killed(IngesterKill {
                behind_at_resume: 0,
                unwritten_at_kill: 0,
            });
            timeline.note("ingester SIGKILLed (its progress could not be read)");
        }
    }
    tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(0..1500))).await;
    match ingester.spawn() {
        Ok(restarted) => *process = restarted,
        Err(error) => timeline.note(format!("ingester restart failed: {error:#}")),
    }
    drop(process);
    timeline.note(format!(
        "ingester restarted (a new holder: it takes over within the {INGESTER_LEASE_SECONDS} s \
         lease)"
    ));
}

/// Every feed connection dropped at once without a close frame (`POST /feed/drop`): the ingester
/// must notice (a read error or silence) and resume after its stored cursor.
async fn drop_feed(exchange_url: String, timeline: Arc<Timeline>, at: Duration) {
    timeline.sleep_until(at).await;
    let answer = reqwest::Client::new()
        .post(format!("{exchange_url}/feed/drop"))
        .send()
        .await
        .and_then(|r| r.error_for_status());
    match answer {
        Ok(_) => {
            timeline.feed_dropped();
            timeline.note("exchange dropped every feed connection");
        }
        Err(error) => timeline.note(format!("could not drop the feed connections: {error}")),
    }
}

/// A stretch of duplicates: three reports in ten published again under a new sequence number
/// (same execution id), one message in ten sent twice by its connection; then back to the
/// run's usual rates.
async fn duplicate_reports(
    exchange_url: String,
    timeline: Arc<Timeline>,
    at: Duration,
    lasting: Duration,
) {
    timeline.sleep_until(at).await;
    let client = reqwest::Client::new();
    let storm = ControlPatch {
        feed_duplicate_rate: Some(0.3),
        feed_redeliver_rate: Some(0.1),
        ..ControlPatch::default()
    };
    match feed::control(&client, &exchange_url, &storm).await {
        Ok(()) => timeline.note(format!("duplicate reports for {lasting:?} (30 % re-sent)")),
        Err(error) => timeline.note(format!("could not turn the duplicates on: {error:#}")),
    }
    timeline.sleep_until(at + lasting).await;
    let usual = ControlPatch {
        feed_duplicate_rate: Some(FEED_DUPLICATE_RATE),
        feed_redeliver_rate: Some(FEED_REDELIVER_RATE),
        ..ControlPatch::default()
    };
    match feed::control(&client, &exchange_url, &usual).await {
        Ok(()) => timeline.note("duplicate reports back to the usual rate"),
        Err(error) => timeline.note(format!("could not turn the duplicates off: {error:#}")),
    }
}

/// The Postgres restart hits the ingester too: its batches and lease renewals fail until the
/// database is back. Nothing restarts it; this only watches for it to get past what the feed
/// had published when the restart ended, and notes how long that took.
async fn ingester_after_postgres_restart(
    exchange_url: String,
    db_url: String,
    timeline: Arc<Timeline>,
    at: Duration,
) {
    timeline.sleep_until(at).await;
    while timeline.postgres_restart().is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = reqwest::Client::new();
    let Ok(target) = feed::last_sequence(&client, &exchange_url).await else {
        return;
    };
    let began = timeline.elapsed();
    let deadline = began + Duration::from_secs(60);
    let mut db = None;
    while timeline.elapsed() < deadline {
        if db.is_none() {
            db = bench::db::connect(&db_url).await.ok();
        }
        if let Some(client) = &db {
            match feed::cursor(client).await {
                Ok(cursor) if cursor >= target => {
                    let took = timeline.elapsed() - began;
                    timeline.ingester_recovered(took);
                    timeline.note(format!(
                        "ingester past sequence {target} after the Postgres restart ({:.1} s \
                         after it ended)",
                        took.as_secs_f64()
                    ));
                    return;
                }
                Ok(_) => {}
                Err(_) => db = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    timeline.note(format!(
        "ingester not past sequence {target} within 60 s of the Postgres restart"
    ));
}
