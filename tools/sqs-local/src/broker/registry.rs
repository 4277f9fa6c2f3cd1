//! The registry of queues: the [`Broker`] (every queue of the one account, by name), each
//! [`Queue`] with its lock-protected state, and the lookups every operation starts with (by
//! `QueueUrl`, by ARN, the queues that dead-letter into a given one).
//!
//! The operations live in sibling modules, each an `impl Broker` block over what is defined here:
//! `management` (whole queues), `messaging` (messages), `moves` (move tasks). This module uses
//! none of them, only the leaf modules for a queue's messages, settings and move tasks.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use super::move_tasks::MoveTasks;
use super::queue::{Departing, Messages};
use super::settings::QueueSettings;
use crate::error::SqsError;

/// The account every queue belongs to (moto and LocalStack use the same well-known id).
pub const ACCOUNT_ID: &str = "123456789012";

/// Per-request facts that shape answers: queue URLs use the host the client addressed, and a
/// new queue's ARN uses the region the client signed for.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `http://host:port`, no trailing slash.
    pub base_url: String,
    pub region: String,
}

/// One queue: identity, settings and messages.
#[derive(Debug)]
pub struct Queue {
    pub name: String,
    pub arn: String,
    pub(super) created_secs: u64,
    pub(super) state: Mutex<QueueState>,
    /// Woken whenever a message becomes visible, and when the queue is deleted.
    pub(super) notify: Notify,
}

/// What a queue's lock protects.
#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) settings: QueueSettings,
    pub(super) last_modified_secs: u64,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) messages: Messages,
    pub(super) last_purge: Option<Instant>,
    pub(super) deleted: bool,
}

impl Queue {
    pub(super) fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock leaves consistent-enough state for a test endpoint.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds messages arriving from another queue and wakes its long pollers.
    pub(super) fn accept_departing(&self, messages: Vec<Departing>) {
        if messages.is_empty() {
            return;
        }
        let now = Instant::now();
        {
            let mut state = self.lock();
            for message in messages {
                state.messages.insert(message, Duration::ZERO, now);
            }
        }
        self.notify.notify_waiters();
    }
}

/// The in-memory SQS service: every queue of the one account.
#[derive(Debug)]
pub struct Broker {
    queues: RwLock<BTreeMap<String, Arc<Queue>>>,
    /// Numbers each created queue, so that a receipt handle resolves only in the queue that
    /// issued it (not in another queue, nor in a re-created one of the same name).
    pub(super) incarnations: AtomicU64,
    pub(super) moves: MoveTasks,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

/// Wall-clock milliseconds since the epoch, for the timestamps SQS reports.
pub(super) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

pub(super) fn epoch_secs() -> u64 {
    epoch_ms() / 1000
}

impl Broker {
    pub fn new() -> Self {
        Self {
            queues: RwLock::new(BTreeMap::new()),
            incarnations: AtomicU64::new(1),
            moves: MoveTasks::default(),
        }
    }

    pub(super) fn queue_url(ctx: &RequestContext, name: &str) -> String {
        format!("{}/{ACCOUNT_ID}/{name}", ctx.base_url)
    }

    pub(super) fn read_queues(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Queue>>> {
        self.queues.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write_queues(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Queue>>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue a `QueueUrl` names. Like SQS (and moto) the last path segment is the name, and a
    /// bare name is accepted too.
    pub(super) fn queue(&self, url: Option<&str>) -> Result<Arc<Queue>, SqsError> {
        let url = url.ok_or_else(|| SqsError::missing("QueueUrl"))?;
        let mut segments = url.trim_end_matches('/').rsplit('/');
        let name = segments.next().unwrap_or_default();
        if let Some(account) = segments.next() {
            let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
            if is_account && account != ACCOUNT_ID {
                return Err(SqsError::queue_does_not_exist());
            }
        }
        self.read_queues()
            .get(name)
            .cloned()
            .ok_or_else(SqsError::queue_does_not_exist)
    }

    /// The queue with this ARN, if it exists.
    pub fn queue_by_arn(&self, arn: &str) -> Option<Arc<Queue>> {
        let name = arn.rsplit(':').next()?;
        self.read_queues()
            .get(name)
            .filter(|queue| queue.arn == arn)
            .cloned()
    }

    /// Names of the queues whose redrive policy targets `arn`.
    pub(super) fn source_queue_names(&self, arn: &str) -> Vec<String> {
        let queues: Vec<Arc<Queue>> = self.read_queues().values().cloned().collect();
        queues
            .into_iter()
            .filter(|queue| {
                queue
                    .lock()
                    .settings
                    .redrive_policy
                    .as_ref()
                    .is_some_and(|p| p.dead_letter_target_arn == arn)
            })
            .map(|queue| queue.name.clone())
            .collect()
    }
}
