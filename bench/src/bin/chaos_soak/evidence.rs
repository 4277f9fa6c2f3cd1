//! What the system ended with, from the places that record it: the orders table (with each
//! order's expiry, when it failed, its fill state and how it reached its status), the
//! executions the ingester stored, the incidents table, the simulated exchange's own count of
//! placements (and the calls the soak watched it receive) and of fills per order, the whole
//! execution feed read back, and the alerts on the soak's alert queue. The database and the
//! exchange's fill counts are read as one snapshot: at the same feed sequence.

use std::collections::HashMap;
use std::time::Duration;

use exchange_sim::FeedStats;

use crate::exchange_watch::Seen;
use crate::feed::{self, SentReports};
use crate::services::System;

pub struct Evidence {
    /// Every stored order, by id.
    pub stored: HashMap<String, Stored>,
    /// Every incident the system recorded.
    pub incidents: Vec<IncidentRow>,
    /// The exchange's `/stats`: placements per order and duplicate calls absorbed.
    pub exchange: serde_json::Value,
    /// The exchange as the soak watched it during the run.
    pub watched: Seen,
    pub alerts: Alerts,
    /// The execution feed and what the ingester made of it.
    pub feed: FeedEvidence,
}

/// The exchange's side of the executions and the ingester's, at one feed sequence.
pub struct FeedEvidence {
    /// `/feed/stats` with the per-order fills, taken with the database snapshot.
    pub stats: FeedStats,
    /// Whether the database snapshot and `stats` are at the same feed sequence (the stored
    /// cursor equal to the feed's last sequence, before and after the snapshot).
    pub consistent: bool,
    /// The ingester's stored cursor in the snapshot.
    pub cursor: u64,
    /// Every stored execution, by execution id.
    pub executions: HashMap<String, StoredExecution>,
    /// The whole feed as the exchange sent it, read back after the snapshot; `Err` says why it
    /// could not be.
    pub sent: Result<SentReports, String>,
    /// Orders with a fill move (to `partially_filled`, `filled`, or from a working status to
    /// `canceled`/`expired`) in their audit trail more than once.
    pub moves_audited_twice: i64,
}

/// One row of `executions`.
pub struct StoredExecution {
    pub order_id: String,
    pub kind: String,
    pub quantity: i64,
    pub applied: bool,
    /// Why it is not applied (yet), as the ingester recorded it.
    pub waiting_reason: Option<String>,
}

/// One order as the orders table has it; times are Unix seconds.
pub struct Stored {
    pub status: String,
    pub expires_at: Option<f64>,
    /// When it became `failed` (its audit trail), if it did.
    pub failed_at: Option<f64>,
    pub failed_reason: Option<String>,
    pub quantity: i64,
    pub filled_quantity: i64,
    /// The status it was in before it reached its current one (its last audit row), if any.
    pub ended_from: Option<String>,
}

pub struct IncidentRow {
    pub id: i64,
    pub kind: String,
    pub order_count: i64,
    pub opened_alerted: bool,
    pub closed: bool,
    pub closed_alerted: bool,
}

/// The alerts received, by kind.
#[derive(Default)]
pub struct Alerts {
    /// `incident_opened` alerts per incident id.
    pub opened: HashMap<i64, usize>,
    /// `incident_over` alerts per incident id.
    pub over: HashMap<i64, usize>,
    /// The raw bodies quoted by `poison_message` alerts.
    pub poison: Vec<String>,
    /// Anything else (the one-alert-per-order kind this release replaced, or unreadable).
    pub other: Vec<String>,
}

impl Alerts {
    pub fn total(&self) -> usize {
        self.opened.values().sum::<usize>()
            + self.over.values().sum::<usize>()
            + self.poison.len()
            + self.other.len()
    }
}

impl Evidence {
    pub async fn gather(
        db: &tokio_postgres::Client,
        client: &reqwest::Client,
        system: &System,
        watched: Seen,
    ) -> anyhow::Result<Self> {
        let (stored, feed) = snapshot(db, system).await?;
        Ok(Self {
            stored,
            incidents: incidents(db).await?,
            exchange: exchange_stats(client, &system.exchange_url).await?,
            watched,
            alerts: alerts(&system.sqs_url, &system.alerts_queue).await?,
            feed,
        })
    }
}

/// The orders and executions in one read-only snapshot of the database, between two reads of the
/// exchange's feed stats: when both show the stored cursor as the feed's last sequence, nothing
/// was published in between and the exchange's per-order fills (the second read) belong to the
/// same sequence as the database. Tried a few times (an expiry at the exchange may publish in
/// between); the last try is kept, marked inconsistent. Then the whole feed is read back.
async fn snapshot(
    db: &tokio_postgres::Client,
    system: &System,
) -> anyhow::Result<(HashMap<String, Stored>, FeedEvidence)> {
    let client = reqwest::Client::new();
    let mut tries = 0;
    let (stored, mut evidence) = loop {
        tries += 1;
        let before = feed::stats(&client, &system.exchange_url, false).await?;
        db.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let read = async {
            anyhow::Ok((
                feed::cursor(db).await?,
                stored_orders(db).await?,
                executions(db).await?,
                moves_audited_twice(db).await?,
            ))
        }
        .await;
        db.batch_execute("COMMIT").await?;
        let (cursor, stored, executions, moves_audited_twice) = read?;
        let stats = feed::stats(&client, &system.exchange_url, true).await?;
        let consistent =
            before.last_sequence == stats.last_sequence && cursor == stats.last_sequence;
        if consistent || tries == 5 {
            break (
                stored,
                FeedEvidence {
                    stats,
                    consistent,
                    cursor,
                    executions,
                    sent: Err("not read".into()),
                    moves_audited_twice,
                },
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    evidence.sent = feed::read_back(&system.feed_url, evidence.stats.last_sequence)
        .await
        .map_err(|error| format!("{error:#}"));
    Ok((stored, evidence))
}

async fn executions(
    db: &tokio_postgres::Client,
) -> anyhow::Result<HashMap<String, StoredExecution>> {
    let rows = db
        .query(
            "SELECT execution_id, order_id::text, kind, quantity, applied_at IS NOT NULL, \
                    waiting_reason \
             FROM executions",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                StoredExecution {
                    order_id: r.get(1),
                    kind: r.get(2),
                    quantity: r.get(3),
                    applied: r.get(4),
                    waiting_reason: r.get(5),
                },
            )
        })
        .collect())
}

/// The ingester writes an order's audit row only when a report moves it to another status: each
/// such move at most once per order, however often its report came.
async fn moves_audited_twice(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "SELECT count(DISTINCT order_id) FROM ( \
               SELECT order_id, to_status FROM order_events \
               WHERE to_status IN ('partially_filled', 'filled') \
                  OR (to_status IN ('canceled', 'expired') \
                      AND from_status IN ('placed', 'partially_filled', 'pending_cancel')) \
               GROUP BY order_id, to_status HAVING count(*) > 1 \
             ) twice",
            &[],
        )
        .await?
        .get(0))
}

async fn stored_orders(db: &tokio_postgres::Client) -> anyhow::Result<HashMap<String, Stored>> {
    let rows = db
        .query(
            "SELECT o.id::text, o.status, extract(epoch FROM o.expires_at)::float8, \
                    extract(epoch FROM f.created_at)::float8, f.reason, \
                    o.quantity::bigint, o.filled_quantity, l.from_status \
             FROM orders o \
             LEFT JOIN LATERAL ( \
               SELECT created_at, reason FROM order_events e \
               WHERE e.order_id = o.id AND e.to_status = 'failed' \
               ORDER BY e.id DESC LIMIT 1 \
             ) f ON true \
             LEFT JOIN LATERAL ( \
               SELECT from_status FROM order_events e \
               WHERE e.order_id = o.id AND e.to_status = o.status \
               ORDER BY e.id DESC LIMIT 1 \
             ) l ON true",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                Stored {
                    status: r.get(1),
                    expires_at: r.get(2),
                    failed_at: r.get(3),
                    failed_reason: r.get(4),
                    quantity: r.get(5),
                    filled_quantity: r.get(6),
                    ended_from: r.get(7),
                },
            )
        })
        .collect())
}

async fn incidents(db: &tokio_postgres::Client) -> anyhow::Result<Vec<IncidentRow>> {
    let rows = db
        .query(
            "SELECT id, kind, order_count::bigint, opened_alert_at IS NOT NULL, \
                    closed_at IS NOT NULL, closed_alert_at IS NOT NULL \
             FROM alert_incidents ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| IncidentRow {
            id: r.get(0),
            kind: r.get(1),
            order_count: r.get(2),
            opened_alerted: r.get(3),
            closed: r.get(4),
            closed_alerted: r.get(5),
        })
        .collect())
}

async fn exchange_stats(
    client: &reqwest::Client,
    exchange_url: &str,
) -> anyhow::Result<serde_json::Value> {
    Ok(client
        .get(format!("{exchange_url}/stats"))
        .send()
        .await?
        .json()
        .await?)
}

/// Every alert in the soak's alert queue, sorted by kind. Received with a long visibility
/// timeout and never deleted, so that each message is counted once; the queue is empty when a
/// receive comes back with nothing.
async fn alerts(endpoint: &str, queue_name: &str) -> anyhow::Result<Alerts> {
    let sqs = crate::sqs::client(endpoint).await;
    let url = crate::sqs::queue_url(&sqs, queue_name).await?;
    let mut alerts = Alerts::default();
    loop {
        let messages = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(alerts);
        }
        for message in messages {
            let text = message.body().unwrap_or("{}");
            let body: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            match (body["kind"].as_str(), body["incident_id"].as_i64()) {
                (Some("incident_opened"), Some(id)) => *alerts.opened.entry(id).or_default() += 1,
                (Some("incident_over"), Some(id)) => *alerts.over.entry(id).or_default() += 1,
                (Some("poison_message"), _) => alerts
                    .poison
                    .push(body["body"].as_str().unwrap_or_default().to_owned()),
                _ => alerts.other.push(text.chars().take(300).collect()),
            }
        }
    }
}

/// Prints each suspect order's row, audit trail and executions, times on the soak's clock: what
/// a violation is about, for whoever has to find its cause.
pub async fn print_audit(
    db: &tokio_postgres::Client,
    suspects: &[(String, &'static str)],
    timeline: &crate::timeline::Timeline,
) {
    let at = |wall: Option<f64>| {
        wall.map(|w| format!("{:+.1}s", timeline.since_start(w)))
            .unwrap_or_else(|| "-".into())
    };
    for (id, what) in suspects {
        println!("\n{what}: order {id}");
        let row = db
            .query_opt(
                "SELECT status, order_type, attempts, outcome_unknown, last_error, \
                        extract(epoch FROM created_at)::float8, \
                        extract(epoch FROM expires_at)::float8, \
                        extract(epoch FROM enqueued_at)::float8, \
                        extract(epoch FROM next_attempt_at)::float8, \
                        extract(epoch FROM lease_expires_at)::float8, \
                        extract(epoch FROM sweep_claimed_until)::float8 \
                 FROM orders WHERE id = $1::text::uuid",
                &[id],
            )
            .await;
        match row {
            Ok(Some(r)) => println!(
                "  {} {} attempts={} outcome_unknown={} created={} expires={} enqueued={} \
                 next_attempt={} lease_until={} sweep_claimed_until={} last_error={:?}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i32>(2),
                r.get::<_, bool>(3),
                at(r.get(5)),
                at(r.get(6)),
                at(r.get(7)),
                at(r.get(8)),
                at(r.get(9)),
                at(r.get(10)),
                r.get::<_, Option<String>>(4),
            ),
            Ok(None) => println!("  not stored"),
            Err(error) => println!("  unreadable: {error}"),
        }
        let events = db
            .query(
                "SELECT extract(epoch FROM created_at)::float8, from_status, to_status, reason, \
                        attempt \
                 FROM order_events WHERE order_id = $1::text::uuid ORDER BY id",
                &[id],
            )
            .await
            .unwrap_or_default();
        for e in events {
            println!(
                "  {:>8} {} -> {} (attempt {}): {}",
                at(e.get(0)),
                e.get::<_, Option<String>>(1).unwrap_or_default(),
                e.get::<_, String>(2),
                e.get::<_, i32>(4),
                e.get::<_, String>(3),
            );
        }
        let executions = db
            .query(
                "SELECT sequence, execution_id, kind, quantity, cumulative_quantity, \
                        remaining_quantity, extract(epoch FROM created_at)::float8, \
                        extract(epoch FROM applied_at)::float8, waiting_reason \
                 FROM executions WHERE order_id = $1::text::uuid ORDER BY sequence",
                &[id],
            )
            .await
            .unwrap_or_default();
        for x in executions {
            println!(
                "  execution #{} {} {} {} (cumulative {}, remaining {}) stored {} applied {}{}",
                x.get::<_, i64>(0),
                x.get::<_, String>(1),
                x.get::<_, String>(2),
                x.get::<_, i64>(3),
                x.get::<_, i64>(4),
                x.get::<_, i64>(5),
                at(x.get(6)),
                at(x.get(7)),
                x.get::<_, Option<String>>(8)
                    .map(|reason| format!(", waiting: {reason}"))
                    .unwrap_or_default(),
            );
        }
    }
}
