//! After the load and the faults: waiting until the system has finished with every order, every
//! dead letter and every incident, so that the checks look at final states, not at work still in
//! progress.

use std::time::{Duration, Instant};

use crate::invariants::FINAL;
use crate::timeline::Timeline;

/// What was still unfinished when the drain ended.
#[derive(Debug, Default)]
pub struct Unfinished {
    pub orders: i64,
    /// Dead letters still visible or in flight; `None` when the DLQ could not be read.
    pub dead_letters: Option<u64>,
    /// Incidents whose opening or closing alert has not been published.
    pub incidents: i64,
}

impl Unfinished {
    fn nothing(&self) -> bool {
        self.orders == 0 && self.dead_letters == Some(0) && self.incidents == 0
    }
}

/// Waits (up to `timeout`) until no order is outside the final statuses, the DLQ is empty
/// (visible and in flight: every poison message reported) and every incident has had both its
/// alerts (it closes once quiet for the alert window). Then a moment more for the last alerts to
/// land in the queue.
pub async fn wait_until_final(
    db: &tokio_postgres::Client,
    sqs_url: &str,
    timeout: Duration,
    timeline: &Timeline,
) -> anyhow::Result<Unfinished> {
    let sqs = crate::sqs::client(sqs_url).await;
    let dlq = crate::sqs::queue_url(&sqs, crate::sqs::DEAD_LETTER_QUEUE).await?;
    let final_list = FINAL
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let deadline = Instant::now() + timeout;
    let mut reported_orders_final = false;
    loop {
        let orders: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM orders WHERE status NOT IN ({final_list})"),
                &[],
            )
            .await?
            .get(0);
        let incidents: i64 = db
            .query_one(
                "SELECT count(*) FROM alert_incidents \
                 WHERE opened_alert_at IS NULL OR closed_alert_at IS NULL",
                &[],
            )
            .await?
            .get(0);
        // The endpoint answers unless frozen, and no fault is left by now.
        let dead_letters = crate::sqs::depth(&sqs, &dlq).await.ok();
        let unfinished = Unfinished {
            orders,
            dead_letters,
            incidents,
        };
        if orders == 0 && !reported_orders_final {
            timeline.note("every order final");
            reported_orders_final = true;
        }
        if unfinished.nothing() || Instant::now() > deadline {
            timeline.note(format!("drain finished; still unfinished: {unfinished:?}"));
            tokio::time::sleep(Duration::from_secs(3)).await;
            return Ok(unfinished);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
