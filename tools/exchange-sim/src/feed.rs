//! The execution feed: every report the exchange publishes, numbered by one global sequence
//! without gaps, kept in memory for clients that resume, and served over WebSocket at
//! `GET /feed?after=N` — one JSON text message per report, in the format of
//! `order_shared::adapters::execution_feed`.
//!
//! - A client that connects with `after=N` gets every report with a sequence above N, then the
//!   live ones as they are published; without `after` it gets only reports published from then on.
//!   `after=0` asks for everything.
//! - Memory is bounded: the newest `feed_capacity` reports are kept (500 000 by default, about
//!   400 bytes each), the oldest dropped first. A client whose `after` is older than the oldest
//!   kept — or that falls that far behind while connected — gets a close frame with code 4410
//!   and the oldest sequence kept in the reason, never a stream with a hole. One whose `after` is
//!   beyond the last sequence (the simulator restarted, its numbering with it) gets 4409.
//! - Faults for tests: `feed_duplicate_rate` publishes a report again under the next sequence
//!   number (same execution id and content); `feed_redeliver_rate` makes a connection send a
//!   message twice in a row (same sequence number); `feed_drop_rate` and `POST /feed/drop` drop
//!   connections abruptly (no close frame), as a network failure would.
//! - Idle connections get a WebSocket ping every 10 s, so a dead peer is noticed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use order_shared::adapters::execution_feed::{
    CLOSE_AHEAD_OF_FEED, CLOSE_NOT_KEPT, ExecutionReportWire, to_message,
};
use order_shared::domain::{
    ExecutionEvent, ExecutionId, ExecutionKind, ExecutionReport, OrderId, Shares,
};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::rng::XorShift;

/// Reports a connection takes from the buffer at a time (one flush each).
const BATCH: usize = 1024;

/// How long an idle connection waits before it pings its client.
const PING_EVERY: Duration = Duration::from_secs(10);

/// A report before the feed numbers it.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) execution_id: ExecutionId,
    pub(crate) client_order_id: OrderId,
    pub(crate) exchange_order_id: String,
    pub(crate) event: ExecutionEvent,
    pub(crate) cumulative: Shares,
    pub(crate) remaining: Shares,
    pub(crate) time: OffsetDateTime,
}

/// What the feed has published and sent, for `GET /feed/stats` (`crate::counts`).
#[derive(Debug, Default)]
pub(crate) struct FeedCounts {
    pub(crate) last_sequence: u64,
    pub(crate) oldest_kept_sequence: u64,
    pub(crate) kept: u64,
    pub(crate) capacity: u64,
    pub(crate) by_kind: [u64; 5],
    pub(crate) duplicates_published: u64,
    pub(crate) connections_opened: u64,
    pub(crate) connections_dropped: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_redelivered: u64,
}

/// The faults a connection applies, read once per batch.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnectionFaults {
    pub(crate) redeliver_rate: f64,
    pub(crate) drop_rate: f64,
}

/// Why a connection cannot be served from the sequence it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unservable {
    /// Reports after it were dropped from memory; the oldest kept is this one.
    NotKept { oldest: u64 },
    /// It is beyond the last sequence published.
    Ahead { last: u64 },
}

struct Buffer {
    capacity: usize,
    /// The last sequence published (0: none yet).
    last: u64,
    /// The newest reports, sequences `last - kept.len() + 1 ..= last`.
    kept: VecDeque<Utf8Bytes>,
    by_kind: [u64; 5],
    duplicates: u64,
    rng: XorShift,
}

impl Buffer {
    fn oldest(&self) -> u64 {
        self.last + 1 - self.kept.len() as u64
    }

    fn push(&mut self, text: String) {
        self.last += 1;
        if self.kept.len() == self.capacity {
            self.kept.pop_front();
        }
        self.kept.push_back(Utf8Bytes::from(text));
    }
}

pub(crate) struct Feed {
    buffer: Mutex<Buffer>,
    /// The last sequence published: connections wait on it when they have sent everything.
    latest: watch::Sender<u64>,
    /// Bumped by `POST /feed/drop`: every connection open at that moment drops.
    drops: watch::Sender<u64>,
    connections_opened: AtomicU64,
    connections_dropped: AtomicU64,
    messages_sent: AtomicU64,
    messages_redelivered: AtomicU64,
}

impl Feed {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buffer: Mutex::new(Buffer {
                capacity: capacity.max(1),
                last: 0,
                kept: VecDeque::new(),
                by_kind: [0; 5],
                duplicates: 0,
                rng: XorShift::from_clock(),
            }),
            latest: watch::Sender::new(0),
            drops: watch::Sender::new(0),
            connections_opened: AtomicU64::new(0),
            connections_dropped: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_redelivered: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes under one lock, so that the reports of one call get consecutive sequence
    /// numbers; connections are woken once, when the writer is dropped. A report is published
    /// again (next sequence, same execution id) with probability `duplicate_rate`.
    pub(crate) fn writer(&self, duplicate_rate: f64) -> FeedWriter<'_> {
        FeedWriter {
            buffer: self.lock(),
            latest: &self.latest,
            duplicate_rate,
            published: 0,
        }
    }

    /// The last sequence published (0: none yet).
    pub(crate) fn last(&self) -> u64 {
        self.lock().last
    }

    /// Up to `max` reports after sequence `after`, oldest first.
    pub(crate) fn read_after(&self, after: u64, max: usize) -> Result<Vec<Utf8Bytes>, Unservable> {
        let buffer = self.lock();
        if after > buffer.last {
            return Err(Unservable::Ahead { last: buffer.last });
        }
        let oldest = buffer.oldest();
        if after + 1 < oldest {
            return Err(Unservable::NotKept { oldest });
        }
        let start = (after + 1 - oldest) as usize;
        Ok(buffer.kept.range(start..).take(max).cloned().collect())
    }

    /// Drops every connection open now, without a close frame.
    pub(crate) fn drop_connections(&self) {
        self.drops.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn counts(&self) -> FeedCounts {
        let buffer = self.lock();
        FeedCounts {
            last_sequence: buffer.last,
            oldest_kept_sequence: buffer.oldest(),
            kept: buffer.kept.len() as u64,
            capacity: buffer.capacity as u64,
            by_kind: buffer.by_kind,
            duplicates_published: buffer.duplicates,
            connections_opened: self.connections_opened.load(Ordering::Relaxed),
            connections_dropped: self.connections_dropped.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            messages_redelivered: self.messages_redelivered.load(Ordering::Relaxed),
        }
    }

    /// Serves one WebSocket connection until the client leaves, the connection is dropped (by
    /// a fault) or it cannot be served gaplessly. `after`: the last sequence the client has
    /// (`None`: it wants only what comes next).
    pub(crate) async fn serve(
        &self,
        socket: WebSocket,
        after: Option<u64>,
        faults: impl Fn() -> ConnectionFaults,
    ) {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
        let mut drops = self.drops.subscribe();
        let mut latest = self.latest.subscribe();
        let mut next_after = after.unwrap_or_else(|| self.last());
        let mut rng = XorShift::from_clock();
        let (mut sink, mut stream) = socket.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            // Marked seen before reading, so a report published after the read wakes us.
            latest.borrow_and_update();
            let batch = match self.read_after(next_after, BATCH) {
                Ok(batch) => batch,
                Err(unservable) => {
                    let (code, reason) = match unservable {
                        Unservable::NotKept { oldest } => (
                            CLOSE_NOT_KEPT,
                            format!(
                                "reports after {next_after} are no longer kept; the oldest kept is {oldest}"
                            ),
                        ),
                        Unservable::Ahead { last } => (
                            CLOSE_AHEAD_OF_FEED,
                            format!("after={next_after} is beyond the feed's last sequence {last}"),
                        ),
                    };
                    tracing::info!(code, %reason, "feed connection closed");
                    let close = CloseFrame {
                        code,
                        reason: Utf8Bytes::from(reason),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() { return },
                    _ = drops.changed() => {
                        self.connections_dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    message = stream.next() => match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                        Some(Ok(_)) => {}
                    },
                    _ = ping.tick() => {
                        if sink.send(Message::Ping(Default::default())).await.is_err() {
                            return;
                        }
                    }
                }
                continue;
            }
            let faults = faults();
            let mut sent = 0;
            for text in batch {
                next_after += 1;
                let twice = rng.chance(faults.redeliver_rate);
                if twice {
                    if sink.feed(Message::Text(text.clone())).await.is_err() {
                        return;
                    }
                    self.messages_redelivered.fetch_add(1, Ordering::Relaxed);
                }
                if sink.feed(Message::Text(text)).await.is_err() {
                    return;
                }
                sent += 1 + u64::from(twice);
                if rng.chance(faults.drop_rate) {
                    let _ = sink.flush().await;
                    self.messages_sent.fetch_add(sent, Ordering::Relaxed);
                    self.connections_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(last_sent = next_after, "feed connection dropped (fault)");
                    // Dropping both halves closes the TCP connection without a close frame.
                    return;
                }
            }
            self.messages_sent.fetch_add(sent, Ordering::Relaxed);
            if sink.flush().await.is_err() {
                return;
            }
            if drops.has_changed().unwrap_or(true) {
                self.connections_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            ping.reset();
        }
    }
}

/// Holds the feed's lock while reports are published; wakes the connections when dropped.
pub(crate) struct FeedWriter<'a> {
    buffer: MutexGuard<'a, Buffer>,
    latest: &'a watch::Sender<u64>,
    duplicate_rate: f64,
    published: u64,
}

impl FeedWriter<'_> {
    /// Numbers the report and keeps it (twice, on an injected duplicate).
    pub(crate) fn publish(&mut self, draft: Draft) {
        let sequence = self.buffer.last + 1;
        let kind = draft.event.kind();
        let report = ExecutionReport::new(
            sequence,
            draft.execution_id,
            draft.client_order_id,
            draft.exchange_order_id,
            draft.event,
            draft.cumulative,
            draft.remaining,
            draft.time,
        )
        // The market's arithmetic is the simulator's own: a report that does not add up is a bug
        // in it, and must fail the test that meets it.
        .expect("the simulator publishes only reports whose numbers add up");
        let duplicate = self
            .buffer
            .rng
            .chance(self.duplicate_rate)
            .then(|| ExecutionReportWire::from(&report));
        self.buffer.push(to_message(&report));
        self.buffer.by_kind[kind_index(kind)] += 1;
        self.published += 1;
        if let Some(mut again) = duplicate {
            again.sequence = sequence + 1;
            let text = serde_json::to_string(&again).expect("an execution report serializes");
            self.buffer.push(text);
            self.buffer.duplicates += 1;
            self.published += 1;
        }
    }
}

impl Drop for FeedWriter<'_> {
    fn drop(&mut self) {
        if self.published > 0 {
            self.latest.send_replace(self.buffer.last);
        }
    }
}

pub(crate) fn kind_index(kind: ExecutionKind) -> usize {
    match kind {
        ExecutionKind::PartialFill => 0,
        ExecutionKind::Fill => 1,
        ExecutionKind::Canceled => 2,
        ExecutionKind::Expired => 3,
        ExecutionKind::CancelRefused => 4,
    }
}

#[cfg(test)]
mod tests {
    use order_shared::adapters::execution_feed::parse_report;
    use order_shared::domain::{Price, Quantity};
    use uuid::Uuid;

    use super::*;

    fn draft(n: i64) -> Draft {
        Draft {
            execution_id: ExecutionId::parse(&format!("EXE-{n}")).unwrap(),
            client_order_id: OrderId::from(Uuid::now_v7()),
            exchange_order_id: "EX-1".into(),
            event: ExecutionEvent::Fill {
                quantity: Quantity::new(n).unwrap(),
                price: Price::parse("1.50").unwrap(),
            },
            cumulative: Shares::new(n).unwrap(),
            remaining: Shares::ZERO,
            time: OffsetDateTime::now_utc(),
        }
    }

    fn sequences(texts: &[Utf8Bytes]) -> Vec<u64> {
        texts
            .iter()
            .map(|text| parse_report(text.as_str()).unwrap().sequence())
            .collect()
    }

    #[test]
    fn reports_are_numbered_gaplessly_and_the_oldest_are_dropped_past_the_capacity() {
        let feed = Feed::new(3);
        assert_eq!(feed.read_after(0, 10).unwrap(), Vec::<Utf8Bytes>::new());
        {
            let mut writer = feed.writer(0.0);
            for n in 1..=5 {
                writer.publish(draft(n));
            }
        }
        assert_eq!(*feed.latest.borrow(), 5);
        assert_eq!(sequences(&feed.read_after(2, 10).unwrap()), [3, 4, 5]);
        assert_eq!(sequences(&feed.read_after(3, 1).unwrap()), [4]);
        assert!(feed.read_after(5, 10).unwrap().is_empty());
        assert_eq!(
            feed.read_after(1, 10),
            Err(Unservable::NotKept { oldest: 3 })
        );
        assert_eq!(feed.read_after(6, 10), Err(Unservable::Ahead { last: 5 }));
        let counts = feed.counts();
        assert_eq!(
            (
                counts.last_sequence,
                counts.oldest_kept_sequence,
                counts.kept
            ),
            (5, 3, 3)
        );
        assert_eq!(counts.by_kind[kind_index(ExecutionKind::Fill)], 5);
    }

    #[test]
    fn an_injected_duplicate_takes_the_next_sequence_with_the_same_execution() {
        let feed = Feed::new(10);
        feed.writer(1.0).publish(draft(4));
        let texts = feed.read_after(0, 10).unwrap();
        let reports: Vec<_> = texts
            .iter()
            .map(|text| parse_report(text.as_str()).unwrap())
            .collect();
        assert_eq!(sequences(&texts), [1, 2]);
        assert_eq!(reports[0].execution_id(), reports[1].execution_id());
        assert_eq!(reports[0].event(), reports[1].event());
        let counts = feed.counts();
        assert_eq!(counts.duplicates_published, 1);
        assert_eq!(counts.by_kind[kind_index(ExecutionKind::Fill)], 1);
    }
}
