//! Message move tasks (StartMessageMoveTask, CancelMessageMoveTask, ListMessageMoveTasks): the
//! "DLQ redrive" that sends dead-lettered messages back to the queue they came from, or to a
//! chosen destination.
//!
//! The source must be some queue's dead-letter queue. A task moves the messages visible when it
//! starts (in-flight ones stay); each moved message starts over in its destination (receive count
//! 0) but keeps its id, body and attributes. Without `MaxNumberOfMessagesPerSecond` the move
//! happens before StartMessageMoveTask returns, so the task is already COMPLETED when listed;
//! with a rate a background task moves that many per second and can be cancelled. A message that
//! was sent to the DLQ directly has no source to return to: without a `DestinationArn` it stays,
//! and the task ends FAILED saying so.
//!
//! The task records (status, progress, handles, one active task per source) are kept by
//! `move_tasks`; this module validates the requests and moves the messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::move_tasks::{Status, Task, lock};
use super::queue::Departing;
use super::registry::{Broker, Queue, epoch_ms};
use crate::error::{ErrorKind, SqsError};
use crate::protocol::{
    CancelMessageMoveTaskRequest, CancelMessageMoveTaskResult, ListMessageMoveTasksRequest,
    ListMessageMoveTasksResult, StartMessageMoveTaskRequest, StartMessageMoveTaskResult,
};

const NO_SOURCE: &str = "Some messages were not dead-lettered from another queue and have no source queue to return to; specify a DestinationArn.";

impl Broker {
    /// Moves up to `max` visible messages out of `source`. Returns how many arrived; messages
    /// with nowhere to go are put back at the end of the source and reported as the error.
    fn move_chunk(
        &self,
        source: &Queue,
        destination: Option<&Arc<Queue>>,
        max: usize,
    ) -> (i64, Result<(), String>) {
        let taken = source.lock().messages.take_visible(max);
        let now = Instant::now();
        let mut groups: Vec<(Arc<Queue>, Vec<Departing>)> = Vec::new();
        let mut stranded = Vec::new();
        for message in taken {
            let target = destination.cloned().or_else(|| {
                message
                    .dead_letter_source_arn
                    .as_deref()
                    .and_then(|arn| self.queue_by_arn(arn))
            });
            let Some(target) = target else {
                stranded.push(message);
                continue;
            };
            let fresh = Departing {
                data: message.data,
                receive_count: 0,
                first_receive_ms: None,
                enqueued: now,
                dead_letter_source_arn: None,
            };
            match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &target)) {
                Some((_, list)) => list.push(fresh),
                None => groups.push((target, vec![fresh])),
            }
        }
        let moved = groups.iter().map(|(_, list)| list.len() as i64).sum();
        for (queue, list) in groups {
            queue.accept_departing(list);
        }
        if stranded.is_empty() {
            return (moved, Ok(()));
        }
        {
            let mut state = source.lock();
            for message in stranded {
                state.messages.insert(message, Duration::ZERO, now);
            }
        }
        (moved, Err(NO_SOURCE.to_owned()))
    }

    pub fn start_message_move_task(
        self: &Arc<Self>,
        request: StartMessageMoveTaskRequest,
    ) -> Result<StartMessageMoveTaskResult, SqsError> {
        let source_arn = request
            .source_arn
            .ok_or_else(|| SqsError::missing("SourceArn"))?;
        let source = self.queue_by_arn(&source_arn).ok_or_else(|| {
            SqsError::new(
                ErrorKind::ResourceNotFound,
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            )
        })?;
        if self.source_queue_names(&source_arn).is_empty() {
            return Err(SqsError::invalid_parameter(
                "Source queue must be configured as a Dead Letter Queue.",
            ));
        }
        let destination = match &request.destination_arn {
            Some(arn) => Some(self.queue_by_arn(arn).ok_or_else(|| {
                SqsError::new(
                    ErrorKind::ResourceNotFound,
                    "The resource that you specified for the DestinationArn parameter doesn't exist.",
                )
            })?),
            None => None,
        };
        let rate = match request.max_number_of_messages_per_second {
            None => None,
            Some(rate @ 1..=500) => Some(rate),
            Some(rate) => {
                return Err(SqsError::invalid_parameter(format!(
                    "Value {rate} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: Must be between 1 and 500."
                )));
            }
        };
        let to_move = {
            let mut state = source.lock();
            state.messages.promote(Instant::now());
            state.messages.counts().visible as i64
        };
        let task = Task::start(
            source_arn.clone(),
            request.destination_arn,
            rate,
            epoch_ms(),
            to_move,
        );
        let handle = task.handle.clone();
        let task = self.moves.add(task)?;
        match rate {
            None => {
                let (moved, outcome) =
                    self.move_chunk(&source, destination.as_ref(), to_move as usize);
                let mut task = lock(&task);
                task.moved = moved;
                task.finish(outcome);
            }
            Some(rate) => {
                let broker = Arc::clone(self);
                tokio::spawn(async move {
                    broker
                        .run_rate_limited(task, source_arn, destination, rate)
                        .await
                });
            }
        }
        Ok(StartMessageMoveTaskResult {
            task_handle: handle,
        })
    }

    /// Moves `rate` messages a second until the snapshot count has moved, the source is empty,
    /// or the task is cancelled.
    async fn run_rate_limited(
        &self,
        task: Arc<Mutex<Task>>,
        source_arn: String,
        destination: Option<Arc<Queue>>,
        rate: i64,
    ) {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            let remaining = {
                let mut task = lock(&task);
                if task.status == Status::Cancelling {
                    task.status = Status::Cancelled;
                    return;
                }
                task.to_move - task.moved
            };
            if remaining <= 0 {
                lock(&task).finish(Ok(()));
                return;
            }
            let Some(source) = self.queue_by_arn(&source_arn) else {
                lock(&task).finish(Err("The source queue was deleted.".into()));
                return;
            };
            let (moved, outcome) =
                self.move_chunk(&source, destination.as_ref(), remaining.min(rate) as usize);
            let mut task = lock(&task);
            task.moved += moved;
            if outcome.is_err() || moved == 0 {
                task.finish(outcome);
                return;
            }
        }
    }

    pub fn cancel_message_move_task(
        &self,
        request: CancelMessageMoveTaskRequest,
    ) -> Result<CancelMessageMoveTaskResult, SqsError> {
        let handle = request
            .task_handle
            .ok_or_else(|| SqsError::missing("TaskHandle"))?;
        let moved = self.moves.cancel(&handle)?;
        Ok(CancelMessageMoveTaskResult {
            approximate_number_of_messages_moved: moved,
        })
    }

    pub fn list_message_move_tasks(
        &self,
        request: ListMessageMoveTasksRequest,
    ) -> Result<ListMessageMoveTasksResult, SqsError> {
        let source_arn = request
            .source_arn
            .ok_or_else(|| SqsError::missing("SourceArn"))?;
        if self.queue_by_arn(&source_arn).is_none() {
            return Err(SqsError::new(
                ErrorKind::ResourceNotFound,
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ));
        }
        let limit = match request.max_results {
            None => 1,
            Some(n @ 1..=10) => n as usize,
            Some(n) => {
                return Err(SqsError::invalid_parameter(format!(
                    "Value {n} for parameter MaxResults is invalid. Reason: Must be between 1 and 10."
                )));
            }
        };
        Ok(ListMessageMoveTasksResult {
            results: self.moves.list(&source_arn, limit),
        })
    }
}
