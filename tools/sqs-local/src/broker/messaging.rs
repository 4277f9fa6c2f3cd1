//! Operations on messages: SendMessage and SendMessageBatch, ReceiveMessage (long polling, and
//! the dead-letter move of messages received too often), DeleteMessage(Batch) and
//! ChangeMessageVisibility(Batch). A message's life inside its queue is in `queue`; what a
//! receiver gets back is rendered by `delivery`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::delivery;
use super::params::{check_batch, ranged};
use super::queue::{HandleOutcome, InvalidHandle, VisibilityError};
use super::registry::{Broker, Queue, epoch_ms};
use crate::attribute::AttributeValue;
use crate::error::{ErrorKind, SqsError};
use crate::message::{self, Accepted, NewMessage};
use crate::protocol::{
    BatchId, BatchResultErrorEntry, ChangeMessageVisibilityBatchRequest,
    ChangeMessageVisibilityRequest, DeleteMessageBatchRequest, DeleteMessageRequest, Empty,
    IdBatchResult, ReceiveMessageRequest, ReceiveMessageResult, SendMessageBatchRequest,
    SendMessageBatchResult, SendMessageBatchResultEntry, SendMessageRequest, SendMessageResult,
    WireAttributes,
};

/// What `SenderId` reports for every message (there is no IAM here).
pub const SENDER_ID: &str = "AIDAIT2UOQQY3AUEKVGXU";
/// The longest SQS lets a message stay invisible.
const MAX_VISIBILITY: i64 = 43_200;

fn decode_attributes(wire: WireAttributes) -> Result<HashMap<String, AttributeValue>, SqsError> {
    wire.into_iter()
        .map(|(name, value)| {
            let value = value.decode(&name)?;
            Ok((name, value))
        })
        .collect()
}

/// A SendMessage request or batch entry as [`message::accept`] takes it: message attributes
/// decoded first, then system attributes.
fn new_message(
    body: Option<String>,
    attributes: WireAttributes,
    system_attributes: WireAttributes,
    delay_seconds: Option<i64>,
) -> Result<NewMessage, SqsError> {
    Ok(NewMessage {
        body,
        attributes: decode_attributes(attributes)?,
        system_attributes: decode_attributes(system_attributes)?,
        delay_seconds,
    })
}

/// The queue's limits for a new message: its maximum size and default delay.
fn send_limits(queue: &Queue) -> (u32, u32) {
    let state = queue.lock();
    (
        state.settings.maximum_message_size,
        state.settings.delay_seconds,
    )
}

/// What the sender learns about an accepted message: its id and digests.
fn send_result(accepted: &Accepted) -> SendMessageResult {
    SendMessageResult {
        message_id: accepted.data.id.clone(),
        md5_of_message_body: accepted.data.body_md5.clone(),
        md5_of_message_attributes: accepted.data.attributes_md5.clone(),
        md5_of_message_system_attributes: accepted.system_attributes_md5.clone(),
    }
}

impl Broker {
    pub fn send_message(&self, request: SendMessageRequest) -> Result<SendMessageResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let new = new_message(
            request.message_body,
            request.message_attributes,
            request.message_system_attributes,
            request.delay_seconds,
        )?;
        let (max_size, default_delay) = send_limits(&queue);
        let accepted = message::accept(new, max_size, default_delay, SENDER_ID, epoch_ms())?;
        let result = send_result(&accepted);
        let delay = Duration::from_secs(accepted.delay_seconds.into());
        queue
            .lock()
            .messages
            .push(accepted.data, delay, Instant::now());
        if delay.is_zero() {
            queue.notify.notify_waiters();
        }
        Ok(result)
    }

    /// Whole-request checks first (ids, count, total size); then each entry succeeds or fails
    /// on its own.
    pub fn send_message_batch(
        &self,
        request: SendMessageBatchRequest,
    ) -> Result<SendMessageBatchResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let ids: Vec<Option<&str>> = request.entries.iter().map(|e| e.id.as_deref()).collect();
        check_batch(&ids, "SendMessageBatchRequestEntry")?;
        let total: usize = request
            .entries
            .iter()
            .map(|e| e.message_body.as_ref().map_or(0, String::len))
            .sum();
        if total > 1_048_576 {
            return Err(SqsError::new(
                ErrorKind::BatchRequestTooLong,
                format!(
                    "Batch requests cannot be longer than 1048576 bytes. You have sent {total} bytes."
                ),
            ));
        }
        let (max_size, default_delay) = send_limits(&queue);
        let now_ms = epoch_ms();
        let mut result = SendMessageBatchResult::default();
        let mut accepted = Vec::with_capacity(request.entries.len());
        for entry in request.entries {
            let id = entry.id.unwrap_or_default();
            let outcome = new_message(
                entry.message_body,
                entry.message_attributes,
                entry.message_system_attributes,
                entry.delay_seconds,
            )
            .and_then(|new| message::accept(new, max_size, default_delay, SENDER_ID, now_ms));
            match outcome {
                Ok(message) => {
                    result.successful.push(SendMessageBatchResultEntry {
                        id,
                        result: send_result(&message),
                    });
                    accepted.push(message);
                }
                Err(error) => result
                    .failed
                    .push(BatchResultErrorEntry::from_error(id, &error)),
            }
        }
        let mut wake = false;
        {
            let now = Instant::now();
            let mut state = queue.lock();
            for message in accepted {
                let delay = Duration::from_secs(message.delay_seconds.into());
                wake |= delay.is_zero();
                state.messages.push(message.data, delay, now);
            }
        }
        if wake {
            queue.notify.notify_waiters();
        }
        Ok(result)
    }

    /// ReceiveMessage, long-polling up to `WaitTimeSeconds`: returns as soon as at least one
    /// message is available (SQS's long poll does the same), or empty at the deadline.
    pub async fn receive_message(
        &self,
        request: ReceiveMessageRequest,
    ) -> Result<ReceiveMessageResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let max = ranged(
            request.max_number_of_messages,
            1,
            1,
            10,
            "MaxNumberOfMessages",
        )? as usize;
        let (default_visibility, default_wait) = {
            let state = queue.lock();
            (
                i64::from(state.settings.visibility_timeout),
                i64::from(state.settings.receive_message_wait_time_seconds),
            )
        };
        let visibility = ranged(
            request.visibility_timeout,
            default_visibility,
            0,
            MAX_VISIBILITY,
            "VisibilityTimeout",
        )?;
        let wait = ranged(
            request.wait_time_seconds,
            default_wait,
            0,
            20,
            "WaitTimeSeconds",
        )?;
        let visibility = Duration::from_secs(visibility as u64);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
        let mut system_names = request.attribute_names;
        system_names.extend(request.message_system_attribute_names);
        loop {
            let notified = queue.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a send between the look and the wait still wakes us.
            notified.as_mut().enable();

            let redrive = queue.lock().settings.redrive_policy.clone();
            let dead_letters = redrive
                .as_ref()
                .and_then(|p| self.queue_by_arn(&p.dead_letter_target_arn));
            let max_receive_count = dead_letters
                .as_ref()
                .and(redrive.as_ref())
                .map(|p| p.max_receive_count);
            let (delivered, dead, next_wake) = {
                let mut state = queue.lock();
                if state.deleted {
                    return Ok(ReceiveMessageResult::default());
                }
                let now = Instant::now();
                state.messages.promote(now);
                let retention = Duration::from_secs(state.settings.message_retention_period.into());
                let (delivered, dead) = state.messages.receive(
                    max,
                    visibility,
                    max_receive_count,
                    retention,
                    now,
                    epoch_ms(),
                );
                (delivered, dead, state.messages.next_wake())
            };
            if let Some(dead_letters) = dead_letters.filter(|_| !dead.is_empty()) {
                let source: Arc<str> = Arc::from(queue.arn.as_str());
                tracing::debug!(queue = %queue.name, moved = dead.len(), "moved to the dead-letter queue");
                dead_letters.accept_departing(
                    dead.into_iter()
                        .map(|mut m| {
                            m.dead_letter_source_arn = Some(Arc::clone(&source));
                            m
                        })
                        .collect(),
                );
            }
            if !delivered.is_empty() {
                return Ok(ReceiveMessageResult {
                    messages: delivered
                        .iter()
                        .map(|d| {
                            delivery::render(d, &system_names, &request.message_attribute_names)
                        })
                        .collect(),
                });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(ReceiveMessageResult::default());
            }
            let wake = next_wake
                .map(tokio::time::Instant::from_std)
                .map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    pub fn delete_message(&self, request: DeleteMessageRequest) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let handle = request
            .receipt_handle
            .ok_or_else(|| SqsError::missing("ReceiptHandle"))?;
        delete_one(&queue, &handle)?;
        Ok(Empty {})
    }

    pub fn delete_message_batch(
        &self,
        request: DeleteMessageBatchRequest,
    ) -> Result<IdBatchResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let ids: Vec<Option<&str>> = request.entries.iter().map(|e| e.id.as_deref()).collect();
        check_batch(&ids, "DeleteMessageBatchRequestEntry")?;
        let mut result = IdBatchResult::default();
        for entry in request.entries {
            let id = entry.id.unwrap_or_default();
            let outcome = entry
                .receipt_handle
                .ok_or_else(|| SqsError::missing("ReceiptHandle"))
                .and_then(|handle| delete_one(&queue, &handle));
            match outcome {
                Ok(()) => result.successful.push(BatchId { id }),
                Err(error) => result
                    .failed
                    .push(BatchResultErrorEntry::from_error(id, &error)),
            }
        }
        Ok(result)
    }

    pub fn change_message_visibility(
        &self,
        request: ChangeMessageVisibilityRequest,
    ) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let handle = request
            .receipt_handle
            .ok_or_else(|| SqsError::missing("ReceiptHandle"))?;
        let timeout = request
            .visibility_timeout
            .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
        change_one(&queue, &handle, timeout)?;
        Ok(Empty {})
    }

    pub fn change_message_visibility_batch(
        &self,
        request: ChangeMessageVisibilityBatchRequest,
    ) -> Result<IdBatchResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let ids: Vec<Option<&str>> = request.entries.iter().map(|e| e.id.as_deref()).collect();
        check_batch(&ids, "ChangeMessageVisibilityBatchRequestEntry")?;
        let mut result = IdBatchResult::default();
        for entry in request.entries {
            let id = entry.id.unwrap_or_default();
            let outcome = entry
                .receipt_handle
                .ok_or_else(|| SqsError::missing("ReceiptHandle"))
                .and_then(|handle| {
                    let timeout = entry
                        .visibility_timeout
                        .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
                    change_one(&queue, &handle, timeout)
                });
            match outcome {
                Ok(()) => result.successful.push(BatchId { id }),
                Err(error) => result
                    .failed
                    .push(BatchResultErrorEntry::from_error(id, &error)),
            }
        }
        Ok(result)
    }
}

fn delete_one(queue: &Queue, handle: &str) -> Result<(), SqsError> {
    match queue.lock().messages.delete(handle) {
        Ok(HandleOutcome::Done | HandleOutcome::Gone) => Ok(()),
        Err(InvalidHandle) => Err(SqsError::receipt_handle_invalid(handle)),
    }
}

fn change_one(queue: &Queue, handle: &str, timeout: i64) -> Result<(), SqsError> {
    let timeout = ranged(Some(timeout), 0, 0, MAX_VISIBILITY, "VisibilityTimeout")?;
    let outcome = queue.lock().messages.change_visibility(
        handle,
        Duration::from_secs(timeout as u64),
        Instant::now(),
    );
    match outcome {
        Ok(HandleOutcome::Done) => {
            if timeout == 0 {
                queue.notify.notify_waiters();
            }
            Ok(())
        }
        Ok(HandleOutcome::Gone) => Err(SqsError::invalid_parameter(format!(
            "Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
        ))),
        Err(VisibilityError::BeyondLimit(limit)) => Err(SqsError::invalid_parameter(format!(
            "Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [{} seconds]",
            limit.as_secs()
        ))),
        Err(VisibilityError::InvalidHandle) => Err(SqsError::receipt_handle_invalid(handle)),
    }
}
