//! The exchange's execution feed as the soak sees it: the simulator's `/feed/stats` (what it
//! published, and per order what it filled — the exchange's truth), its `/control` for the feed's
//! faults and fills, the ingester's progress in the database (the stored cursor, the reports
//! still waiting), and the whole feed read back once at the end, as the ingester read it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use exchange_sim::{ControlPatch, FeedStats};
use order_shared::adapters::feed_socket::{FeedSocket, FeedSocketConfig};
use order_shared::ports::ExecutionFeed;

/// `GET /feed/stats`, with the per-order map or without.
pub async fn stats(
    client: &reqwest::Client,
    exchange_url: &str,
    with_orders: bool,
) -> anyhow::Result<FeedStats> {
    Ok(client
        .get(format!("{exchange_url}/feed/stats?orders={with_orders}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The feed's last sequence number (every report published so far, duplicates included).
pub async fn last_sequence(client: &reqwest::Client, exchange_url: &str) -> anyhow::Result<u64> {
    Ok(stats(client, exchange_url, false).await?.last_sequence)
}

/// `POST /control` with `patch`.
pub async fn control(
    client: &reqwest::Client,
    exchange_url: &str,
    patch: &ControlPatch,
) -> anyhow::Result<()> {
    client
        .post(format!("{exchange_url}/control"))
        .json(patch)
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The last feed sequence the ingester has written (the stored cursor).
pub async fn cursor(db: &tokio_postgres::Client) -> anyhow::Result<u64> {
    let last: i64 = db
        .query_one("SELECT last_sequence FROM execution_feed_cursor", &[])
        .await?
        .get(0);
    Ok(u64::try_from(last).unwrap_or(0))
}

/// Reports stored but not applied to their order (yet).
pub async fn waiting(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "SELECT count(*) FROM executions WHERE applied_at IS NULL",
            &[],
        )
        .await?
        .get(0))
}

/// One execution as the exchange sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub order_id: String,
    pub kind: String,
    /// Shares traded, canceled or expired; 0 for a refused cancel.
    pub quantity: i64,
}

/// The whole feed, read back from sequence 1 to `last`.
#[derive(Debug, Default)]
pub struct SentReports {
    /// Per execution id (a duplicate under a new sequence is the same execution).
    pub executions: HashMap<String, Sent>,
    /// Sequences read (each once; `last` when the feed kept them all).
    pub sequences: u64,
    /// Sequences whose execution had been sent before: the exchange's duplicates.
    pub duplicates: u64,
    /// Duplicates whose content differed from the first (the exchange contradicting itself).
    pub contradicting: u64,
}

/// Reads every report from sequence 1 to `last` over a WebSocket of the soak's own, with the
/// same client and wire format as the ingester. Fails when the feed no longer keeps them all or
/// does not deliver them within a minute; a redelivered or dropped message is handled as the
/// ingester does (skip what was seen, resume after the last one read).
pub async fn read_back(feed_url: &str, last: u64) -> anyhow::Result<SentReports> {
    let feed = FeedSocket::new(FeedSocketConfig {
        url: feed_url.to_owned(),
        api_key: None,
        connect_timeout: Duration::from_secs(2),
        silence_timeout: Duration::from_secs(15),
    });
    let mut sent = SentReports::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = 0u64;
    let mut sessions = 0;
    while seen < last {
        sessions += 1;
        if sessions > 20 || tokio::time::Instant::now() > deadline {
            bail!("read the feed back to sequence {seen} of {last} only");
        }
        let mut connection = feed
            .connect(seen)
            .await
            .with_context(|| format!("connecting to {feed_url} after {seen}"))?;
        while seen < last {
            let next = tokio::time::timeout_at(deadline, connection.next_report()).await;
            let report = match next {
                Ok(Some(Ok(report))) => report,
                // A dropped connection: resume after the last sequence read.
                Ok(Some(Err(_)) | None) => break,
                Err(_) => bail!("the feed stopped at sequence {seen} of {last}"),
            };
            if report.sequence() <= seen {
                continue;
            }
            if report.sequence() != seen + 1 {
                bail!(
                    "the feed jumped from sequence {seen} to {}",
                    report.sequence()
                );
            }
            seen = report.sequence();
            sent.sequences += 1;
            let event = report.event();
            let execution = Sent {
                order_id: report.client_order_id().to_string(),
                kind: report.kind().as_str().to_owned(),
                quantity: event.quantity().map_or(0, |q| q.get()),
            };
            if let Some(first) = sent
                .executions
                .insert(report.execution_id().as_str().to_owned(), execution.clone())
            {
                sent.duplicates += 1;
                if first != execution {
                    sent.contradicting += 1;
                }
            }
        }
    }
    Ok(sent)
}
