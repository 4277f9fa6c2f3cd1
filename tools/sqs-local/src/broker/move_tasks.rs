//! The bookkeeping of message move tasks: each task's status and progress, the latest tasks per
//! source queue (what ListMessageMoveTasks shows), at most one active task per source, and the
//! task handle. What a task does to messages is in `moves`; this module knows nothing of queues,
//! so the [`Broker`](super::Broker) can hold the tasks without a cycle between the two.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ErrorKind, SqsError};
use crate::id;
use crate::protocol::MessageMoveTaskEntry;

/// Tasks kept per source queue (ListMessageMoveTasks shows at most 10).
const KEPT: usize = 10;

/// Every source queue's tasks, newest first.
#[derive(Debug, Default)]
pub(super) struct MoveTasks {
    by_source: Mutex<HashMap<String, VecDeque<Arc<Mutex<Task>>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Running,
    Completed,
    Cancelling,
    Cancelled,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Cancelling => "CANCELLING",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug)]
pub(super) struct Task {
    id: String,
    pub(super) handle: String,
    source_arn: String,
    destination_arn: Option<String>,
    rate: Option<i64>,
    started_ms: u64,
    pub(super) to_move: i64,
    pub(super) moved: i64,
    pub(super) status: Status,
    failure_reason: Option<String>,
}

impl Task {
    /// A task that starts running now, with a fresh id and the handle that names it.
    pub(super) fn start(
        source_arn: String,
        destination_arn: Option<String>,
        rate: Option<i64>,
        started_ms: u64,
        to_move: i64,
    ) -> Self {
        let id = id::random_uuid();
        let handle = STANDARD.encode(
            serde_json::to_vec(&HandleDoc {
                task_id: id.clone(),
                source_arn: source_arn.clone(),
            })
            .expect("serializable"),
        );
        Self {
            id,
            handle,
            source_arn,
            destination_arn,
            rate,
            started_ms,
            to_move,
            moved: 0,
            status: Status::Running,
            failure_reason: None,
        }
    }

    fn entry(&self) -> MessageMoveTaskEntry {
        MessageMoveTaskEntry {
            task_handle: (self.status == Status::Running).then(|| self.handle.clone()),
            status: self.status.as_str().to_owned(),
            source_arn: self.source_arn.clone(),
            destination_arn: self.destination_arn.clone(),
            max_number_of_messages_per_second: self.rate,
            approximate_number_of_messages_moved: self.moved,
            approximate_number_of_messages_to_move: self.to_move,
            failure_reason: self.failure_reason.clone(),
            started_timestamp: self.started_ms as i64,
        }
    }

    pub(super) fn finish(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.status = Status::Completed,
            Err(reason) => {
                self.status = Status::Failed;
                self.failure_reason = Some(reason);
            }
        }
    }
}

/// Locks `mutex`, also after a panic elsewhere (what it guards stays usable for a test endpoint).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a task handle encodes (SQS's handles are base64 JSON of the same two fields).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HandleDoc {
    task_id: String,
    source_arn: String,
}

impl MoveTasks {
    /// Records `task` as its source's newest, unless a task is still active there (one at a
    /// time per source, as in SQS). Keeps the latest [`KEPT`] per source.
    pub(super) fn add(&self, task: Task) -> Result<Arc<Mutex<Task>>, SqsError> {
        let source_arn = task.source_arn.clone();
        let task = Arc::new(Mutex::new(task));
        let mut tasks = lock(&self.by_source);
        let list = tasks.entry(source_arn).or_default();
        if list
            .iter()
            .any(|t| matches!(lock(t).status, Status::Running | Status::Cancelling))
        {
            return Err(SqsError::invalid_parameter(
                "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
            ));
        }
        list.push_front(Arc::clone(&task));
        list.truncate(KEPT);
        Ok(task)
    }

    /// Marks the running task `handle` names as cancelling (its runner stops at its next tick)
    /// and returns how many messages it has moved so far.
    pub(super) fn cancel(&self, handle: &str) -> Result<i64, SqsError> {
        let not_found = || SqsError::new(ErrorKind::ResourceNotFound, "Task does not exist.");
        let doc: HandleDoc = STANDARD
            .decode(handle.as_bytes())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(not_found)?;
        let tasks = lock(&self.by_source);
        let task = tasks
            .get(&doc.source_arn)
            .and_then(|list| list.iter().find(|t| lock(t).id == doc.task_id))
            .ok_or_else(not_found)?;
        let mut task = lock(task);
        if task.status != Status::Running {
            return Err(SqsError::invalid_parameter(format!(
                "Only a RUNNING task can be cancelled; this one is {}.",
                task.status.as_str()
            )));
        }
        task.status = Status::Cancelling;
        Ok(task.moved)
    }

    /// The newest `limit` tasks of a source queue.
    pub(super) fn list(&self, source_arn: &str, limit: usize) -> Vec<MessageMoveTaskEntry> {
        let tasks = lock(&self.by_source);
        tasks
            .get(source_arn)
            .map(|list| list.iter().take(limit).map(|t| lock(t).entry()).collect())
            .unwrap_or_default()
    }
}
