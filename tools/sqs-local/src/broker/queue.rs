//! One queue's messages and the state machine SQS gives them (delayed → visible → in flight →
//! visible again or deleted), built so that every operation costs O(1) or O(log n) in the queue
//! depth:
//!
//! - `messages`: every stored message by sequence number (hash map);
//! - `ready`: visible messages in arrival order (a deque), popped by ReceiveMessage;
//! - `timers`: delayed and in-flight messages keyed by the instant they become visible (a
//!   min-heap), drained into `ready` at the start of every operation;
//! - counters for the `ApproximateNumberOf*` attributes.
//!
//! Entries in `ready` and `timers` are not removed when a message leaves that state (deleted,
//! made visible early, purged); each message carries an `epoch` bumped on every transition and
//! an entry whose epoch differs is skipped when it comes up. The heap is compacted when stale
//! entries outnumber live ones, so that memory stays proportional to the queue.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::message::MessageData;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Delayed,
    Visible,
    InFlight,
}

/// A stored message: shared content plus per-queue delivery state.
#[derive(Debug)]
struct Stored {
    data: Arc<MessageData>,
    receive_count: u32,
    first_receive_ms: Option<u64>,
    /// Set when the message was moved here by a redrive policy.
    dead_letter_source_arn: Option<Arc<str>>,
    /// Retention counts from here (the original enqueue time, kept across DLQ moves).
    enqueued: Instant,
    state: State,
    epoch: u64,
    /// Identifies the latest receive; part of its receipt handle.
    nonce: u64,
    /// When the latest receive happened (the 12-hour visibility limit counts from it).
    received_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    seq: u64,
    epoch: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    epoch: u64,
}

/// A message handed to a receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub data: Arc<MessageData>,
    pub receipt_handle: String,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub dead_letter_source_arn: Option<Arc<str>>,
}

/// A message leaving this queue for another one (dead-letter move or move task), with the state
/// that travels with it.
#[derive(Debug)]
pub struct Departing {
    pub data: Arc<MessageData>,
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
    pub enqueued: Instant,
    /// The queue the message was dead-lettered from, if it was.
    pub dead_letter_source_arn: Option<Arc<str>>,
}

/// What a receipt handle resolved to.
#[derive(Debug, PartialEq, Eq)]
pub enum HandleOutcome {
    Done,
    /// Well formed and from this queue, but the message is gone (deleted, purged, expired).
    Gone,
}

/// A receipt handle this queue did not issue (garbage, another queue's, an older incarnation's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHandle;

/// Why ChangeMessageVisibility failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityError {
    InvalidHandle,
    /// The message would stay invisible longer than this after its receive.
    BeyondLimit(Duration),
}

/// The counters behind the `ApproximateNumberOf*` attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub visible: usize,
    pub in_flight: usize,
    pub delayed: usize,
}

/// Receipt handles: a version tag, the queue incarnation (so a handle from a deleted and
/// re-created queue, or another queue, is rejected), the message sequence number and the nonce
/// of the receive.
const HANDLE_TAG: &[u8; 4] = b"sql1";

pub fn encode_handle(incarnation: u64, seq: u64, nonce: u64) -> String {
    let mut bytes = Vec::with_capacity(28);
    bytes.extend_from_slice(HANDLE_TAG);
    bytes.extend_from_slice(&incarnation.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&nonce.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `(incarnation, seq, nonce)`, or `None` for anything this endpoint did not issue.
pub fn decode_handle(handle: &str) -> Option<(u64, u64, u64)> {
    let bytes = URL_SAFE_NO_PAD.decode(handle.trim()).ok()?;
    if bytes.len() != 28 || &bytes[..4] != HANDLE_TAG {
        return None;
    }
    let word = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    Some((word(4), word(12), word(20)))
}

/// The messages of one queue. All methods take `now` so that tests can drive time.
#[derive(Debug)]
pub struct Messages {
    incarnation: u64,
    messages: HashMap<u64, Stored>,
    ready: VecDeque<Slot>,
    timers: BinaryHeap<Reverse<Timer>>,
    stale_timers: usize,
    counts: Counts,
    next_seq: u64,
}

/// Below this many entries the heap is never compacted (not worth it).
const COMPACT_FLOOR: usize = 1024;

impl Messages {
    pub fn new(incarnation: u64) -> Self {
        Self {
            incarnation,
            messages: HashMap::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            stale_timers: 0,
            counts: Counts::default(),
            next_seq: 1,
        }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Enqueues a new message, visible now or after `delay`.
    pub fn push(&mut self, data: Arc<MessageData>, delay: Duration, now: Instant) {
        self.insert(
            Departing {
                data,
                receive_count: 0,
                first_receive_ms: None,
                enqueued: now,
                dead_letter_source_arn: None,
            },
            delay,
            now,
        );
    }

    /// Enqueues a message arriving from another queue, with its history.
    pub fn insert(&mut self, message: Departing, delay: Duration, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let delayed = !delay.is_zero();
        let stored = Stored {
            data: message.data,
            receive_count: message.receive_count,
            first_receive_ms: message.first_receive_ms,
            dead_letter_source_arn: message.dead_letter_source_arn,
            enqueued: message.enqueued,
            state: if delayed {
                State::Delayed
            } else {
                State::Visible
            },
            epoch: 0,
            nonce: 0,
            received_at: now,
        };
        self.messages.insert(seq, stored);
        if delayed {
            self.counts.delayed += 1;
            self.timers.push(Reverse(Timer {
                at: now + delay,
                seq,
                epoch: 0,
            }));
        } else {
            self.counts.visible += 1;
            self.ready.push_back(Slot { seq, epoch: 0 });
        }
    }

    /// Moves every delayed or in-flight message whose time has come to the back of `ready`.
    /// Returns whether any did (long pollers need a wake-up then).
    pub fn promote(&mut self, now: Instant) -> bool {
        let mut promoted = false;
        while let Some(Reverse(timer)) = self.timers.peek().copied() {
            if timer.at > now {
                break;
            }
            self.timers.pop();
            let Some(stored) = self
                .messages
                .get_mut(&timer.seq)
                .filter(|s| s.epoch == timer.epoch)
            else {
                self.stale_timers = self.stale_timers.saturating_sub(1);
                continue;
            };
            match stored.state {
                State::Delayed => self.counts.delayed -= 1,
                State::InFlight => self.counts.in_flight -= 1,
                State::Visible => continue,
            }
            stored.state = State::Visible;
            stored.epoch += 1;
            self.counts.visible += 1;
            self.ready.push_back(Slot {
                seq: timer.seq,
                epoch: stored.epoch,
            });
            promoted = true;
        }
        promoted
    }

    /// When the earliest delayed or in-flight message becomes visible (a long poll sleeps until
    /// then at most).
    pub fn next_wake(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(timer)| timer.at)
    }

    /// ReceiveMessage: up to `max` visible messages, each made invisible for `visibility`.
    /// Messages already received `max_receive_count` times (when a dead-letter queue is set) are
    /// removed and returned in the second list instead, for the caller to move; messages older
    /// than `retention` are dropped.
    pub fn receive(
        &mut self,
        max: usize,
        visibility: Duration,
        max_receive_count: Option<u32>,
        retention: Duration,
        now: Instant,
        now_ms: u64,
    ) -> (Vec<Delivery>, Vec<Departing>) {
        let mut delivered = Vec::with_capacity(max.min(self.counts.visible));
        let mut dead = Vec::new();
        // Messages received with a zero timeout go back to the ready queue after the loop, so
        // that one response never carries the same message twice.
        let mut requeue = Vec::new();
        while delivered.len() < max {
            let Some(slot) = self.ready.pop_front() else {
                break;
            };
            let Some(stored) = self
                .messages
                .get_mut(&slot.seq)
                .filter(|s| s.epoch == slot.epoch && s.state == State::Visible)
            else {
                continue;
            };
            if now.saturating_duration_since(stored.enqueued) >= retention {
                self.counts.visible -= 1;
                self.messages.remove(&slot.seq);
                continue;
            }
            if max_receive_count.is_some_and(|limit| stored.receive_count >= limit) {
                self.counts.visible -= 1;
                let stored = self.messages.remove(&slot.seq).expect("present");
                dead.push(Departing {
                    data: stored.data,
                    receive_count: stored.receive_count,
                    first_receive_ms: stored.first_receive_ms,
                    enqueued: stored.enqueued,
                    dead_letter_source_arn: None,
                });
                continue;
            }
            stored.receive_count += 1;
            let first_receive_ms = *stored.first_receive_ms.get_or_insert(now_ms);
            stored.nonce = fastrand::u64(1..);
            stored.epoch += 1;
            stored.received_at = now;
            self.counts.visible -= 1;
            if visibility.is_zero() {
                self.counts.visible += 1;
                requeue.push(Slot {
                    seq: slot.seq,
                    epoch: stored.epoch,
                });
            } else {
                stored.state = State::InFlight;
                self.counts.in_flight += 1;
                self.timers.push(Reverse(Timer {
                    at: now + visibility,
                    seq: slot.seq,
                    epoch: stored.epoch,
                }));
            }
            delivered.push(Delivery {
                data: Arc::clone(&stored.data),
                receipt_handle: encode_handle(self.incarnation, slot.seq, stored.nonce),
                receive_count: stored.receive_count,
                first_receive_ms,
                dead_letter_source_arn: stored.dead_letter_source_arn.clone(),
            });
        }
        self.ready.extend(requeue);
        (delivered, dead)
    }

    /// Resolves a receipt handle to a stored message's sequence number and the nonce of the
    /// receive it came from; `Ok(None)` means the message is gone.
    fn resolve(&self, handle: &str) -> Result<Option<(u64, u64)>, InvalidHandle> {
        let (incarnation, seq, nonce) = decode_handle(handle).ok_or(InvalidHandle)?;
        if incarnation != self.incarnation || nonce == 0 {
            return Err(InvalidHandle);
        }
        Ok(self.messages.contains_key(&seq).then_some((seq, nonce)))
    }

    /// DeleteMessage. Any handle the message was ever received with deletes it (as in SQS, a
    /// consumer whose visibility timeout ran out can still delete); deleting twice succeeds.
    pub fn delete(&mut self, handle: &str) -> Result<HandleOutcome, InvalidHandle> {
        let Some((seq, _)) = self.resolve(handle)? else {
            return Ok(HandleOutcome::Gone);
        };
        let stored = self.messages.remove(&seq).expect("resolved");
        match stored.state {
            State::Visible => self.counts.visible -= 1,
            State::InFlight => {
                self.counts.in_flight -= 1;
                self.stale_timers += 1;
            }
            State::Delayed => {
                self.counts.delayed -= 1;
                self.stale_timers += 1;
            }
        }
        self.maybe_compact();
        Ok(HandleOutcome::Done)
    }

    /// ChangeMessageVisibility. Only the latest receive of an in-flight message can change its
    /// visibility; with an older handle, or once the message is visible again, the call succeeds
    /// and changes nothing (what SQS does). A timeout may not keep the message invisible more
    /// than 12 hours after its receive.
    pub fn change_visibility(
        &mut self,
        handle: &str,
        timeout: Duration,
        now: Instant,
    ) -> Result<HandleOutcome, VisibilityError> {
        let Some((seq, nonce)) = self
            .resolve(handle)
            .map_err(|InvalidHandle| VisibilityError::InvalidHandle)?
        else {
            return Ok(HandleOutcome::Gone);
        };
        let stored = self.messages.get_mut(&seq).expect("resolved");
        if stored.state != State::InFlight || stored.nonce != nonce {
            return Ok(HandleOutcome::Done);
        }
        let limit = Duration::from_secs(43_200);
        if now.saturating_duration_since(stored.received_at) + timeout > limit {
            return Err(VisibilityError::BeyondLimit(limit));
        }
        stored.epoch += 1;
        self.stale_timers += 1;
        if timeout.is_zero() {
            stored.state = State::Visible;
            self.counts.in_flight -= 1;
            self.counts.visible += 1;
            self.ready.push_back(Slot {
                seq,
                epoch: stored.epoch,
            });
        } else {
            self.timers.push(Reverse(Timer {
                at: now + timeout,
                seq,
                epoch: stored.epoch,
            }));
        }
        self.maybe_compact();
        Ok(HandleOutcome::Done)
    }

    /// PurgeQueue: every message, in any state.
    pub fn purge(&mut self) {
        self.messages.clear();
        self.ready.clear();
        self.timers.clear();
        self.stale_timers = 0;
        self.counts = Counts::default();
    }

    /// Removes up to `max` visible messages for a move task, oldest first.
    pub fn take_visible(&mut self, max: usize) -> Vec<Departing> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(slot) = self.ready.pop_front() else {
                break;
            };
            let valid = self
                .messages
                .get(&slot.seq)
                .is_some_and(|s| s.epoch == slot.epoch && s.state == State::Visible);
            if !valid {
                continue;
            }
            let stored = self.messages.remove(&slot.seq).expect("present");
            self.counts.visible -= 1;
            out.push(Departing {
                data: stored.data,
                receive_count: stored.receive_count,
                first_receive_ms: stored.first_receive_ms,
                enqueued: stored.enqueued,
                dead_letter_source_arn: stored.dead_letter_source_arn,
            });
        }
        out
    }

    /// Rebuilds the heap without stale entries once they dominate it: O(n), but only after at
    /// least n/2 cheap operations created them, so O(1) amortised.
    fn maybe_compact(&mut self) {
        if self.stale_timers < COMPACT_FLOOR || self.stale_timers * 2 < self.timers.len() {
            return;
        }
        let messages = &self.messages;
        self.timers.retain(|Reverse(timer)| {
            messages.get(&timer.seq).is_some_and(|s| {
                s.epoch == timer.epoch && matches!(s.state, State::Delayed | State::InFlight)
            })
        });
        self.stale_timers = 0;
    }

    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: &str) -> Arc<MessageData> {
        Arc::new(MessageData {
            id: crate::id::random_uuid(),
            body: body.into(),
            attributes: Vec::new(),
            body_md5: crate::checksum::body_md5(body),
            attributes_md5: None,
            sent_ms: 0,
            sender_id: "s".into(),
            trace_header: None,
        })
    }

    const RETAIN: Duration = Duration::from_secs(3600);
    const VT: Duration = Duration::from_secs(30);

    fn receive(q: &mut Messages, max: usize, now: Instant) -> Vec<Delivery> {
        q.promote(now);
        q.receive(max, VT, None, RETAIN, now, 0).0
    }

    #[test]
    fn visibility_cycle_and_counts() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        q.push(data("a"), Duration::ZERO, t0);
        q.push(data("b"), Duration::from_secs(5), t0);
        assert_eq!(
            q.counts(),
            Counts {
                visible: 1,
                in_flight: 0,
                delayed: 1
            }
        );
        let got = receive(&mut q, 10, t0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data.body, "a");
        assert_eq!(q.counts().in_flight, 1);
        assert!(receive(&mut q, 10, t0 + Duration::from_secs(4)).is_empty());
        let got = receive(&mut q, 10, t0 + Duration::from_secs(5));
        assert_eq!(got[0].data.body, "b");
        // "a" comes back after its visibility timeout with a higher receive count.
        let again = receive(&mut q, 10, t0 + Duration::from_secs(31));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].data.body, "a");
        assert_eq!(again[0].receive_count, 2);
    }

    #[test]
    fn handles_delete_and_reject() {
        let t0 = Instant::now();
        let mut q = Messages::new(7);
        q.push(data("a"), Duration::ZERO, t0);
        let got = receive(&mut q, 1, t0);
        let handle = &got[0].receipt_handle;
        assert_eq!(q.delete("garbage"), Err(InvalidHandle));
        assert_eq!(q.delete(&encode_handle(8, 1, 1)), Err(InvalidHandle));
        assert_eq!(q.delete(handle), Ok(HandleOutcome::Done));
        assert_eq!(q.delete(handle), Ok(HandleOutcome::Gone));
        assert_eq!(q.counts(), Counts::default());
    }

    #[test]
    fn change_visibility_only_for_the_latest_receive() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        q.push(data("a"), Duration::ZERO, t0);
        let first = receive(&mut q, 1, t0).remove(0);
        // Visible now.
        assert_eq!(
            q.change_visibility(&first.receipt_handle, Duration::ZERO, t0),
            Ok(HandleOutcome::Done)
        );
        let second = receive(&mut q, 1, t0).remove(0);
        // The stale handle changes nothing: the message stays hidden.
        q.change_visibility(&first.receipt_handle, Duration::ZERO, t0)
            .unwrap();
        assert!(receive(&mut q, 1, t0).is_empty());
        // Extending with the latest handle hides it past the original timeout.
        q.change_visibility(&second.receipt_handle, Duration::from_secs(60), t0)
            .unwrap();
        assert!(receive(&mut q, 1, t0 + Duration::from_secs(31)).is_empty());
        assert_eq!(receive(&mut q, 1, t0 + Duration::from_secs(60)).len(), 1);
    }

    #[test]
    fn visibility_is_capped_at_twelve_hours_from_the_receive() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        q.push(data("a"), Duration::ZERO, t0);
        let got = receive(&mut q, 1, t0).remove(0);
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            q.change_visibility(&got.receipt_handle, Duration::from_secs(43_101), later),
            Err(VisibilityError::BeyondLimit(Duration::from_secs(43_200)))
        );
        assert!(
            q.change_visibility(&got.receipt_handle, Duration::from_secs(43_100), later)
                .is_ok()
        );
    }

    #[test]
    fn zero_visibility_never_repeats_a_message_in_one_response() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        q.push(data("a"), Duration::ZERO, t0);
        let (got, _) = q.receive(10, Duration::ZERO, None, RETAIN, t0, 0);
        assert_eq!(got.len(), 1);
        assert_eq!(q.counts().visible, 1);
    }

    #[test]
    fn dead_letters_after_max_receives() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        q.push(data("a"), Duration::ZERO, t0);
        let zero = Duration::ZERO;
        for expected in 1..=2 {
            let (got, dead) = q.receive(1, zero, Some(2), RETAIN, t0, 0);
            assert_eq!(got[0].receive_count, expected);
            assert!(dead.is_empty());
        }
        let (got, dead) = q.receive(1, zero, Some(2), RETAIN, t0, 0);
        assert!(got.is_empty());
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].receive_count, 2);
        assert_eq!(q.counts(), Counts::default());
    }

    #[test]
    fn retention_drops_old_messages() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        q.push(data("a"), Duration::ZERO, t0);
        let later = t0 + Duration::from_secs(61);
        let (got, _) = q.receive(1, VT, None, Duration::from_secs(60), later, 0);
        assert!(got.is_empty());
        assert_eq!(q.counts(), Counts::default());
    }

    #[test]
    fn stale_timers_are_compacted() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        for _ in 0..5000 {
            q.push(data("a"), Duration::ZERO, t0);
        }
        let got = receive(&mut q, 5000, t0);
        for delivery in &got {
            q.delete(&delivery.receipt_handle).unwrap();
        }
        assert!(q.heap_len() < 2 * COMPACT_FLOOR, "{}", q.heap_len());
        assert_eq!(q.counts(), Counts::default());
    }

    #[test]
    fn purge_and_move_out() {
        let t0 = Instant::now();
        let mut q = Messages::new(1);
        for body in ["a", "b", "c"] {
            q.push(data(body), Duration::ZERO, t0);
        }
        let moved = q.take_visible(2);
        assert_eq!(
            moved
                .iter()
                .map(|m| m.data.body.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        q.purge();
        assert_eq!(q.counts(), Counts::default());
        assert!(receive(&mut q, 10, t0).is_empty());
    }
}
