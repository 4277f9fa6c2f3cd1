//! The ingester: a long-running process (not a Lambda) that holds the exchange's execution feed,
//! writes its reports to the store in batches and applies each exactly once, in sequence per
//! order (`usecases::ingest` is one step).
//!
//! - **One at a time.** It first takes the lease (a row in the store); another ingester waits and
//!   takes over once the lease has expired. Every batch renews the lease in its own atomic write,
//!   and writes nothing if the lease is gone — then this one stops writing and waits again.
//! - **No gap, nothing twice.** Each session reads the stored cursor (the last sequence written,
//!   in the same step as the reports) and connects with `after=cursor`. A report with a sequence
//!   already seen (a message delivered twice) is skipped; an execution stored before (a report
//!   sent again under a new sequence) is skipped by its execution id; a sequence that jumps
//!   ends the session after what came before it is written, and the next session asks again.
//! - **Dropped socket, crash.** Whatever ends a session — a dropped or silent connection, a
//!   malformed message, a store error — the next one resumes from the stored cursor after a
//!   back-off (doubling, capped, jittered). A crash loses at most the batch in flight, which was
//!   not written and is asked for again.
//! - **Reports that cannot apply yet** are stored waiting and tried again with a later batch of
//!   their order, and every `stranded_every` for any order that works at the exchange now.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

use crate::domain::ExecutionReport;
use crate::ports::{ExecutionFeed, ExecutionStore, FeedError, IngestError, IngesterLease};
use crate::usecases::ingest::ingest_batch;

/// How the ingester works (environment: see `config::IngesterConfig`).
#[derive(Debug, Clone)]
pub struct IngesterSettings {
    /// This ingester's name in the lease (unique per process).
    pub holder: String,
    /// How long a lease (and each renewal) lasts; renewed at least every third of it.
    pub lease: Duration,
    /// Reports per batch at most.
    pub batch_size: usize,
    /// How long a batch waits for more reports once it has one.
    pub linger: Duration,
    /// Back-off between sessions: the first wait and the cap.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How often waiting reports of working orders are tried again, and how many per try.
    pub stranded_every: Duration,
    pub stranded_limit: u32,
}

impl IngesterSettings {
    /// Defaults for everything but the holder's name.
    pub fn new(holder: impl Into<String>) -> Self {
        Self {
            holder: holder.into(),
            lease: Duration::from_secs(15),
            batch_size: 2000,
            linger: Duration::from_millis(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            stranded_every: Duration::from_secs(1),
            stranded_limit: 1000,
        }
    }

    pub fn lease(&self) -> IngesterLease {
        IngesterLease {
            holder: self.holder.clone(),
            duration: self.lease,
        }
    }

    fn back_off(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        let wait = self
            .reconnect_min
            .saturating_mul(1 << exponent)
            .min(self.reconnect_max);
        // Up to a quarter less, so that restarted ingesters do not reconnect in step.
        wait.mul_f64(1.0 - fastrand::f64() * 0.25)
    }
}

/// Runs until `shutdown` resolves, then gives the lease up.
pub async fn run_ingester(
    feed: &dyn ExecutionFeed,
    store: &dyn ExecutionStore,
    settings: &IngesterSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let lease = settings.lease();
    let mut failures = 0u32;
    'lease: loop {
        // Take (or renew) the lease; wait while another ingester holds it.
        let mut waiting_logged = false;
        loop {
            match store.acquire_lease(&lease).await {
                Ok(true) => break,
                Ok(false) if !waiting_logged => {
                    tracing::info!(holder = %lease.holder, "another ingester holds the lease; waiting");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "cannot take the ingester lease");
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = sleep(settings.lease / 3) => {}
            }
        }
        if waiting_logged || failures == 0 {
            tracing::info!(holder = %lease.holder, "holding the ingester lease");
        }
        loop {
            match session(feed, store, settings, &lease, &mut failures, &mut shutdown).await {
                Ok(()) => {
                    if let Err(error) = store.release_lease(&lease).await {
                        tracing::warn!(error = %error, "cannot release the ingester lease");
                    }
                    tracing::info!(holder = %lease.holder, "ingester stopped");
                    return;
                }
                Err(IngestError::LeaseLost) => {
                    tracing::warn!(holder = %lease.holder, "lost the ingester lease; stopped writing");
                    failures = 0;
                    continue 'lease;
                }
                Err(error) => {
                    failures += 1;
                    let wait = settings.back_off(failures);
                    let level_error = matches!(
                        error,
                        IngestError::Feed(FeedError::NotKept(_) | FeedError::AheadOfFeed(_))
                            | IngestError::Store(_)
                    );
                    if level_error || failures > 3 {
                        tracing::error!(error = %error, failures, wait_ms = wait.as_millis() as u64,
                            "ingester session ended; resuming from the stored cursor");
                    } else {
                        tracing::warn!(error = %error, failures, wait_ms = wait.as_millis() as u64,
                            "ingester session ended; resuming from the stored cursor");
                    }
                    tokio::select! {
                        _ = &mut shutdown => {
                            let _ = store.release_lease(&lease).await;
                            return;
                        }
                        _ = sleep(wait) => {}
                    }
                    // Renew (or find lost) the lease before the next session.
                    match store.acquire_lease(&lease).await {
                        Ok(true) => {}
                        Ok(false) => continue 'lease,
                        Err(error) => {
                            tracing::warn!(error = %error, "cannot renew the ingester lease");
                        }
                    }
                }
            }
        }
    }
}

/// How far the ingester is behind the exchange: from when the exchange executed the newest
/// report written to now. Only meaningful while reports flow (an idle feed sends none to be
/// late with); an exchange clock ahead of ours reads as no lag rather than a negative one.
fn lag_ms(executed_at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    u64::try_from((now - executed_at).whole_milliseconds()).unwrap_or(0)
}

/// Stops the feed reader when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection's worth of batches. `Ok` only when `shutdown` resolved.
async fn session(
    feed: &dyn ExecutionFeed,
    store: &dyn ExecutionStore,
    settings: &IngesterSettings,
    lease: &IngesterLease,
    failures: &mut u32,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(), IngestError> {
    let after = store.last_sequence().await?;
    let mut connection = feed.connect(after).await?;
    tracing::info!(after, "connected to the execution feed");
    let (sender, mut receiver) =
        mpsc::channel::<Result<ExecutionReport, FeedError>>(settings.batch_size.max(1) * 4);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        while let Some(item) = connection.next_report().await {
            let end = item.is_err();
            if sender.send(item).await.is_err() || end {
                break;
            }
        }
    }));

    let renew_every = settings.lease / 3;
    let mut next_renew = Instant::now() + renew_every;
    // Waiting reports are tried at the start of each session, then every `stranded_every`.
    let mut next_stranded = Instant::now();
    let mut last_seen = after;
    let mut batch: Vec<ExecutionReport> = Vec::with_capacity(settings.batch_size);
    let mut totals = (0u64, 0u64, Instant::now());
    loop {
        let next_chore = next_renew.min(next_stranded);
        let first = tokio::select! {
            biased;
            _ = &mut *shutdown => return Ok(()),
            item = receiver.recv() => item,
            _ = sleep_until(next_chore) => {
                if Instant::now() >= next_stranded {
                    let outcome = ingest_batch(store, lease, &[], last_seen, settings.stranded_limit).await?;
                    next_stranded = Instant::now() + settings.stranded_every;
                    next_renew = Instant::now() + renew_every;
                    if outcome.applied > 0 {
                        tracing::info!(applied = outcome.applied, "applied reports that waited");
                    }
                } else {
                    if !store.acquire_lease(lease).await? {
                        return Err(IngestError::LeaseLost);
                    }
                    next_renew = Instant::now() + renew_every;
                }
                continue;
            }
        };
        let mut end: Option<FeedError> = None;
        let mut take = |item: Option<Result<ExecutionReport, FeedError>>,
                        batch: &mut Vec<ExecutionReport>|
         -> bool {
            match item {
                None => {
                    end = Some(FeedError::Disconnected("the feed reader ended".into()));
                    false
                }
                Some(Err(error)) => {
                    end = Some(error);
                    false
                }
                Some(Ok(report)) if report.sequence() <= last_seen => true,
                Some(Ok(report)) if report.sequence() != last_seen + 1 => {
                    end = Some(FeedError::Disconnected(format!(
                        "the feed jumped from sequence {last_seen} to {}",
                        report.sequence()
                    )));
                    false
                }
                Some(Ok(report)) => {
                    last_seen = report.sequence();
                    batch.push(report);
                    true
                }
            }
        };
        let mut more = take(first, &mut batch);
        let deadline = Instant::now() + settings.linger;
        while more && batch.len() < settings.batch_size {
            match receiver.try_recv() {
                Ok(item) => more = take(Some(item), &mut batch),
                Err(mpsc::error::TryRecvError::Disconnected) => more = take(None, &mut batch),
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::select! {
                        item = receiver.recv() => more = take(item, &mut batch),
                        _ = sleep_until(deadline) => break,
                    }
                }
            }
        }
        if !batch.is_empty() {
            let stranded = if Instant::now() >= next_stranded {
                next_stranded = Instant::now() + settings.stranded_every;
                settings.stranded_limit
            } else {
                0
            };
            let last = batch.last().map_or(last_seen, |r| r.sequence());
            let newest_time = batch.last().map(ExecutionReport::time);
            let outcome = ingest_batch(store, lease, &batch, last, stranded).await?;
            *failures = 0;
            next_renew = Instant::now() + renew_every;
            if outcome.raced() {
                // Some orders changed while the batch was written: their reports wait; try
                // them again at once.
                next_stranded = Instant::now();
            }
            totals.0 += batch.len() as u64;
            totals.1 += outcome.applied;
            tracing::debug!(
                reports = outcome.reports,
                duplicates = outcome.duplicates,
                applied = outcome.applied,
                waiting = outcome.waiting,
                last_sequence = outcome.last_sequence,
                "batch written"
            );
            if totals.2.elapsed() >= Duration::from_secs(10) {
                // `lag_ms` becomes the `ingester_lag_ms` metric (a log metric filter in the
                // template, which matches this message): keep the two in step.
                tracing::info!(
                    reports = totals.0,
                    applied = totals.1,
                    last_sequence = outcome.last_sequence,
                    lag_ms = newest_time.map_or(0, |time| lag_ms(time, OffsetDateTime::now_utc())),
                    "execution reports ingested in the last 10 s"
                );
                totals = (0, 0, Instant::now());
            }
            batch.clear();
        }
        if let Some(error) = end {
            return Err(error.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_the_time_since_the_exchange_executed_the_newest_report() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(lag_ms(now - Duration::from_millis(1_500), now), 1_500);
        assert_eq!(lag_ms(now, now), 0);
        assert_eq!(
            lag_ms(now + Duration::from_secs(2), now),
            0,
            "an exchange clock ahead of ours is no lag"
        );
    }
}
