//! The faults, each on its own task at the time the plan gives: the runner killed with SIGKILL
//! and restarted, a short and a long exchange outage, the SQS endpoint frozen, a Postgres
//! restart, and poison messages in the orders queue. Each is injected from outside the process
//! it hits; the system learns of it only by its effects.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use bench::process::signal;

use crate::plan::Plan;
use crate::services::{Runner, System};
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
