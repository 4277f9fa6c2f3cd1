//! After the load and the faults: waiting until the system has finished with every order, every
//! dead letter and every incident, and until the ingester has caught up with the exchange's feed
//! (the exchange's fills stopped first), so that the checks look at final states, not at work
//! still in progress.

use std::time::{Duration, Instant};

use exchange_sim::ControlPatch;

use crate::feed;
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
    /// Reports the ingester had not written when the drain ended (the feed's last sequence less
    /// the stored cursor), and those stored but not applied; `None`: unknown.
    pub feed_behind: Option<u64>,
    pub reports_waiting: Option<i64>,
}

impl Unfinished {
    fn nothing(&self) -> bool {
        self.orders == 0 && self.dead_letters == Some(0) && self.incidents == 0
    }
}

/// Waits (up to `timeout`) until no order is outside the final statuses (nor `pending_cancel`:
/// a cancel at the exchange the ingester has not seen answered yet), the DLQ is empty
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
    // A cancel sent to the exchange is not settled until the exchange's report has ended it.
    let final_list = FINAL
        .iter()
        .filter(|s| **s != "pending_cancel")
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
            ..Unfinished::default()
        };
        if orders == 0 && !reported_orders_final {
            timeline.note("every order final");
            reported_orders_final = true;
        }
        if unfinished.nothing() || Instant::now() > deadline {
            timeline.note(format!(
                "drain finished; still unfinished: {} order(s), {:?} dead letter(s), {} \
                 incident(s)",
                unfinished.orders, unfinished.dead_letters, unfinished.incidents
            ));
            tokio::time::sleep(Duration::from_secs(3)).await;
            return Ok(unfinished);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Then the exchange stops working its orders (no more limit fills; expiries still happen) and
/// the feed's faults stop, and this waits (up to `timeout`) for the ingester to catch up: the
/// stored cursor at the feed's last sequence and no report waiting to be applied. The feed may
/// still grow by an expiry; the evidence takes its own consistent snapshot.
pub async fn wait_until_ingested(
    db: &tokio_postgres::Client,
    exchange_url: &str,
    timeout: Duration,
    timeline: &Timeline,
    unfinished: &mut Unfinished,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let quiet = ControlPatch {
        limit_fill_rate: Some(0.0),
        feed_duplicate_rate: Some(0.0),
        feed_redeliver_rate: Some(0.0),
        feed_drop_rate: Some(0.0),
        ..ControlPatch::default()
    };
    feed::control(&client, exchange_url, &quiet).await?;
    timeline.note("exchange stops filling limit orders; feed faults off");
    let began = Instant::now();
    let deadline = began + timeout;
    loop {
        let last = feed::last_sequence(&client, exchange_url).await?;
        let cursor = feed::cursor(db).await?;
        let waiting = feed::waiting(db).await?;
        unfinished.feed_behind = Some(last.saturating_sub(cursor));
        unfinished.reports_waiting = Some(waiting);
        if (cursor >= last && waiting == 0) || Instant::now() > deadline {
            timeline.note(format!(
                "ingester drain finished after {:.1} s: cursor {cursor} of {last}, {waiting} \
                 report(s) waiting",
                began.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
