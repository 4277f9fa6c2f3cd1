//! The queues and the SQS operations on them, independent of HTTP: each public method takes an
//! operation's request document and returns its result document or an [`SqsError`].
//!
//! Concurrency: a read-mostly map of queues, and one mutex per queue held only for the few
//! microseconds an operation touches that queue (never across an `.await`). Long polls wait on
//! the queue's [`Notify`], woken by any send or visibility change that makes a message visible,
//! and otherwise sleep until the queue's next timer (a delayed or in-flight message becoming
//! visible) or their deadline. A message moving to another queue (dead-letter move, move task)
//! is taken out under the source's lock and put in under the destination's, never both at once.
//!
//! - [`queue`]: one queue's messages and their state machine.
//! - [`settings`]: queue attributes.
//! - [`moves`]: StartMessageMoveTask and friends.

pub mod moves;
pub mod queue;
pub mod settings;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::Notify;

use crate::checksum;
use crate::error::{ErrorKind, SqsError};
use crate::message::{self, AttributeValue, NewMessage};
use crate::protocol::*;
use queue::{Delivery, Departing, HandleOutcome, InvalidHandle, Messages, VisibilityError};
use settings::{QueueSettings, requested_names};

/// The account every queue belongs to (moto and LocalStack use the same well-known id).
pub const ACCOUNT_ID: &str = "123456789012";
/// What `SenderId` reports for every message (there is no IAM here).
pub const SENDER_ID: &str = "AIDAIT2UOQQY3AUEKVGXU";
/// The longest SQS lets a message stay invisible.
const MAX_VISIBILITY: i64 = 43_200;

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
    created_secs: u64,
    state: Mutex<QueueState>,
    /// Woken whenever a message becomes visible, and when the queue is deleted.
    notify: Notify,
}

#[derive(Debug)]
struct QueueState {
    settings: QueueSettings,
    last_modified_secs: u64,
    tags: BTreeMap<String, String>,
    messages: Messages,
    last_purge: Option<Instant>,
    deleted: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock leaves consistent-enough state for a test endpoint.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds messages arriving from another queue and wakes its long pollers.
    fn accept_departing(&self, messages: Vec<Departing>) {
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
    incarnations: AtomicU64,
    moves: moves::MoveTasks,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn epoch_secs() -> u64 {
    epoch_ms() / 1000
}

/// Queue names: 1–80 of `[A-Za-z0-9_-]`.
fn valid_queue_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Batch entry ids: 1–80 of `[A-Za-z0-9_-]`.
fn valid_batch_id(id: &str) -> bool {
    valid_queue_name(id)
}

fn ranged(
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
    name: &str,
) -> Result<i64, SqsError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {name} is invalid. Reason: Must be between {min} and {max}, if provided."
        )))
    }
}

/// The checks every batch operation applies to its entry ids, in the service's order.
fn check_batch(ids: &[Option<&str>], entry_type: &str) -> Result<(), SqsError> {
    if ids.is_empty() {
        return Err(SqsError::new(
            ErrorKind::EmptyBatchRequest,
            format!("There should be at least one {entry_type} in the request."),
        ));
    }
    if ids.len() > 10 {
        return Err(SqsError::new(
            ErrorKind::TooManyEntriesInBatchRequest,
            format!(
                "Maximum number of entries per request are 10. You have sent {}.",
                ids.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        let id = id.ok_or_else(|| SqsError::missing(&format!("{entry_type}.Id")))?;
        if !valid_batch_id(id) {
            return Err(SqsError::new(
                ErrorKind::InvalidBatchEntryId,
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                ErrorKind::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

fn decode_attributes(
    wire: WireAttributes,
) -> Result<std::collections::HashMap<String, AttributeValue>, SqsError> {
    wire.into_iter()
        .map(|(name, value)| {
            let value = value.decode(&name)?;
            Ok((name, value))
        })
        .collect()
}

/// Which message attributes a receiver asked for: `All`, `.*`, `prefix.*` or exact names.
fn attribute_wanted(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| {
        pattern == "All"
            || pattern == name
            || pattern
                .strip_suffix(".*")
                .is_some_and(|prefix| name.starts_with(prefix))
    })
}

impl Broker {
    pub fn new() -> Self {
        Self {
            queues: RwLock::new(BTreeMap::new()),
            incarnations: AtomicU64::new(1),
            moves: moves::MoveTasks::default(),
        }
    }

    fn queue_url(ctx: &RequestContext, name: &str) -> String {
        format!("{}/{ACCOUNT_ID}/{name}", ctx.base_url)
    }

    fn read_queues(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Queue>>> {
        self.queues.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_queues(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Queue>>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue a `QueueUrl` names. Like SQS (and moto) the last path segment is the name, and a
    /// bare name is accepted too.
    fn queue(&self, url: Option<&str>) -> Result<Arc<Queue>, SqsError> {
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

    fn check_redrive_target(&self, settings: &QueueSettings) -> Result<(), SqsError> {
        if let Some(policy) = &settings.redrive_policy {
            if self.queue_by_arn(&policy.dead_letter_target_arn).is_none() {
                return Err(SqsError::invalid_parameter(format!(
                    "Value {} for parameter RedrivePolicy is invalid. Reason: Dead-letter target does not exist.",
                    policy.to_json()
                )));
            }
        }
        Ok(())
    }

    pub fn create_queue(
        &self,
        ctx: &RequestContext,
        request: CreateQueueRequest,
    ) -> Result<QueueUrlResult, SqsError> {
        let name = request
            .queue_name
            .ok_or_else(|| SqsError::missing("QueueName"))?;
        if !valid_queue_name(&name) {
            return Err(SqsError::invalid_parameter(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
            ));
        }
        let mut settings = QueueSettings::default();
        let mut attributes: Vec<(&String, &String)> = request.attributes.iter().collect();
        attributes.sort();
        for (attribute, value) in &attributes {
            settings.apply(attribute, value)?;
        }
        self.check_redrive_target(&settings)?;
        let mut queues = self.write_queues();
        if let Some(existing) = queues.get(&name) {
            let state = existing.lock();
            for (attribute, _) in &attributes {
                if state.settings.render(attribute) != settings.render(attribute) {
                    return Err(SqsError::new(
                        ErrorKind::QueueNameExists,
                        format!(
                            "A queue already exists with the same name and a different value for attribute {attribute}"
                        ),
                    ));
                }
            }
            return Ok(QueueUrlResult {
                queue_url: Self::queue_url(ctx, &name),
            });
        }
        let now = epoch_secs();
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed);
        let queue = Queue {
            arn: format!("arn:aws:sqs:{}:{ACCOUNT_ID}:{name}", ctx.region),
            name: name.clone(),
            created_secs: now,
            state: Mutex::new(QueueState {
                settings,
                last_modified_secs: now,
                tags: request.tags.into_iter().collect(),
                messages: Messages::new(incarnation),
                last_purge: None,
                deleted: false,
            }),
            notify: Notify::new(),
        };
        queues.insert(name.clone(), Arc::new(queue));
        tracing::debug!(queue = %name, "queue created");
        Ok(QueueUrlResult {
            queue_url: Self::queue_url(ctx, &name),
        })
    }

    pub fn get_queue_url(
        &self,
        ctx: &RequestContext,
        request: GetQueueUrlRequest,
    ) -> Result<QueueUrlResult, SqsError> {
        let name = request
            .queue_name
            .ok_or_else(|| SqsError::missing("QueueName"))?;
        if request
            .queue_owner_aws_account_id
            .is_some_and(|account| account != ACCOUNT_ID)
        {
            return Err(SqsError::queue_does_not_exist());
        }
        if !self.read_queues().contains_key(&name) {
            return Err(SqsError::queue_does_not_exist());
        }
        Ok(QueueUrlResult {
            queue_url: Self::queue_url(ctx, &name),
        })
    }

    /// Sorted by name; `NextToken` (only with `MaxResults`, as in SQS) resumes after a name.
    pub fn list_queues(
        &self,
        ctx: &RequestContext,
        request: ListQueuesRequest,
    ) -> Result<ListQueuesResult, SqsError> {
        let limit = match request.max_results {
            None => 1000,
            Some(n) => ranged(Some(n), 0, 1, 1000, "MaxResults")? as usize,
        };
        let prefix = request.queue_name_prefix.unwrap_or_default();
        let after = match request.next_token {
            Some(token) => Some(
                URL_SAFE_NO_PAD
                    .decode(token.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| SqsError::invalid_parameter("Invalid NextToken value."))?,
            ),
            None => None,
        };
        let queues = self.read_queues();
        let mut names = queues
            .range(prefix.clone()..)
            .map(|(name, _)| name)
            .take_while(|name| name.starts_with(&prefix))
            .filter(|name| after.as_ref().is_none_or(|after| *name > after));
        let page: Vec<&String> = names.by_ref().take(limit).collect();
        let more = names.next().is_some();
        Ok(ListQueuesResult {
            next_token: (more && request.max_results.is_some())
                .then(|| URL_SAFE_NO_PAD.encode(page.last().expect("non-empty page").as_bytes())),
            queue_urls: page.iter().map(|name| Self::queue_url(ctx, name)).collect(),
        })
    }

    pub fn delete_queue(&self, request: QueueUrlRequest) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        self.write_queues().remove(&queue.name);
        queue.lock().deleted = true;
        queue.notify.notify_waiters();
        tracing::debug!(queue = %queue.name, "queue deleted");
        Ok(Empty {})
    }

    pub fn get_queue_attributes(
        &self,
        request: GetQueueAttributesRequest,
    ) -> Result<GetQueueAttributesResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let names = requested_names(&request.attribute_names)?;
        let mut state = queue.lock();
        state.messages.promote(Instant::now());
        let counts = state.messages.counts();
        let mut attributes = BTreeMap::new();
        for name in names {
            let value = match name {
                "QueueArn" => Some(queue.arn.clone()),
                "ApproximateNumberOfMessages" => Some(counts.visible.to_string()),
                "ApproximateNumberOfMessagesNotVisible" => Some(counts.in_flight.to_string()),
                "ApproximateNumberOfMessagesDelayed" => Some(counts.delayed.to_string()),
                "CreatedTimestamp" => Some(queue.created_secs.to_string()),
                "LastModifiedTimestamp" => Some(state.last_modified_secs.to_string()),
                other => state.settings.render(other),
            };
            if let Some(value) = value {
                attributes.insert(name.to_owned(), value);
            }
        }
        Ok(GetQueueAttributesResult { attributes })
    }

    pub fn set_queue_attributes(
        &self,
        request: SetQueueAttributesRequest,
    ) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let mut settings = queue.lock().settings.clone();
        let mut attributes: Vec<(&String, &String)> = request.attributes.iter().collect();
        attributes.sort();
        for (attribute, value) in attributes {
            if attribute == "FifoQueue" {
                return Err(SqsError::new(
                    ErrorKind::InvalidAttributeName,
                    "Unknown Attribute FifoQueue.",
                ));
            }
            settings.apply(attribute, value)?;
        }
        self.check_redrive_target(&settings)?;
        let mut state = queue.lock();
        state.settings = settings;
        state.last_modified_secs = epoch_secs();
        Ok(Empty {})
    }

    /// At most once a minute per queue, like SQS.
    pub fn purge_queue(&self, request: QueueUrlRequest) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let now = Instant::now();
        let mut state = queue.lock();
        if state
            .last_purge
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(60))
        {
            return Err(SqsError::new(
                ErrorKind::PurgeQueueInProgress,
                format!(
                    "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                    queue.name
                ),
            ));
        }
        state.last_purge = Some(now);
        state.messages.purge();
        Ok(Empty {})
    }

    pub fn tag_queue(&self, request: TagQueueRequest) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        queue.lock().tags.extend(request.tags);
        Ok(Empty {})
    }

    pub fn untag_queue(&self, request: UntagQueueRequest) -> Result<Empty, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let mut state = queue.lock();
        for key in &request.tag_keys {
            state.tags.remove(key);
        }
        Ok(Empty {})
    }

    pub fn list_queue_tags(
        &self,
        request: QueueUrlRequest,
    ) -> Result<ListQueueTagsResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let tags = queue.lock().tags.clone();
        Ok(ListQueueTagsResult { tags })
    }

    /// The queues whose redrive policy targets this one (a scan over queues, not messages).
    pub fn list_dead_letter_source_queues(
        &self,
        ctx: &RequestContext,
        request: ListDeadLetterSourceQueuesRequest,
    ) -> Result<ListDeadLetterSourceQueuesResult, SqsError> {
        let dead_letters = self.queue(request.queue_url.as_deref())?;
        let names = self.source_queue_names(&dead_letters.arn);
        Ok(ListDeadLetterSourceQueuesResult {
            queue_urls: names
                .iter()
                .map(|name| Self::queue_url(ctx, name))
                .collect(),
            next_token: None,
        })
    }

    /// Names of the queues whose redrive policy targets `arn`.
    fn source_queue_names(&self, arn: &str) -> Vec<String> {
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

    pub fn send_message(&self, request: SendMessageRequest) -> Result<SendMessageResult, SqsError> {
        let queue = self.queue(request.queue_url.as_deref())?;
        let new = NewMessage {
            body: request.message_body,
            attributes: decode_attributes(request.message_attributes)?,
            system_attributes: decode_attributes(request.message_system_attributes)?,
            delay_seconds: request.delay_seconds,
        };
        let (max_size, default_delay) = {
            let state = queue.lock();
            (
                state.settings.maximum_message_size,
                state.settings.delay_seconds,
            )
        };
        let accepted = message::accept(new, max_size, default_delay, SENDER_ID, epoch_ms())?;
        let result = SendMessageResult {
            message_id: accepted.data.id.clone(),
            md5_of_message_body: accepted.data.body_md5.clone(),
            md5_of_message_attributes: accepted.data.attributes_md5.clone(),
            md5_of_message_system_attributes: accepted.system_attributes_md5,
        };
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
        let (max_size, default_delay) = {
            let state = queue.lock();
            (
                state.settings.maximum_message_size,
                state.settings.delay_seconds,
            )
        };
        let now_ms = epoch_ms();
        let mut result = SendMessageBatchResult::default();
        let mut accepted = Vec::with_capacity(request.entries.len());
        for entry in request.entries {
            let id = entry.id.unwrap_or_default();
            let outcome = decode_attributes(entry.message_attributes)
                .and_then(|attributes| {
                    Ok(NewMessage {
                        body: entry.message_body,
                        attributes,
                        system_attributes: decode_attributes(entry.message_system_attributes)?,
                        delay_seconds: entry.delay_seconds,
                    })
                })
                .and_then(|new| message::accept(new, max_size, default_delay, SENDER_ID, now_ms));
            match outcome {
                Ok(message) => {
                    result.successful.push(SendMessageBatchResultEntry {
                        id,
                        result: SendMessageResult {
                            message_id: message.data.id.clone(),
                            md5_of_message_body: message.data.body_md5.clone(),
                            md5_of_message_attributes: message.data.attributes_md5.clone(),
                            md5_of_message_system_attributes: message.system_attributes_md5.clone(),
                        },
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
                            render_delivery(d, &system_names, &request.message_attribute_names)
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

/// A delivery as ReceiveMessage returns it: the requested system attributes, the requested
/// message attributes and the digest of exactly those.
fn render_delivery(
    delivery: &Delivery,
    system_names: &[String],
    attribute_patterns: &[String],
) -> WireMessage {
    let data = &delivery.data;
    let wants = |name: &str| system_names.iter().any(|n| n == "All" || n == name);
    let mut attributes = BTreeMap::new();
    if wants("SenderId") {
        attributes.insert("SenderId", data.sender_id.clone());
    }
    if wants("SentTimestamp") {
        attributes.insert("SentTimestamp", data.sent_ms.to_string());
    }
    if wants("ApproximateReceiveCount") {
        attributes.insert(
            "ApproximateReceiveCount",
            delivery.receive_count.to_string(),
        );
    }
    if wants("ApproximateFirstReceiveTimestamp") {
        attributes.insert(
            "ApproximateFirstReceiveTimestamp",
            delivery.first_receive_ms.to_string(),
        );
    }
    if let Some(trace) = data
        .trace_header
        .as_ref()
        .filter(|_| wants("AWSTraceHeader"))
    {
        attributes.insert("AWSTraceHeader", trace.clone());
    }
    if let Some(source) = delivery
        .dead_letter_source_arn
        .as_ref()
        .filter(|_| wants("DeadLetterQueueSourceArn"))
    {
        attributes.insert("DeadLetterQueueSourceArn", source.to_string());
    }
    let selected: Vec<&(String, AttributeValue)> = data
        .attributes
        .iter()
        .filter(|(name, _)| attribute_wanted(attribute_patterns, name))
        .collect();
    let md5_of_message_attributes = if selected.len() == data.attributes.len() {
        data.attributes_md5.clone()
    } else {
        checksum::attributes_md5(selected.iter().map(|(name, value)| (name.as_str(), value)))
    };
    WireMessage {
        message_id: data.id.clone(),
        receipt_handle: delivery.receipt_handle.clone(),
        md5_of_body: data.body_md5.clone(),
        body: data.body.clone(),
        attributes,
        md5_of_message_attributes,
        message_attributes: selected
            .into_iter()
            .map(|(name, value)| (name.clone(), WireAttributeValue::encode(value)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_checks_in_order() {
        let kind = |ids: &[Option<&str>]| check_batch(ids, "E").unwrap_err().kind;
        assert_eq!(kind(&[]), ErrorKind::EmptyBatchRequest);
        assert_eq!(
            kind(&[Some("a"); 11]),
            ErrorKind::TooManyEntriesInBatchRequest
        );
        assert_eq!(kind(&[Some("a b")]), ErrorKind::InvalidBatchEntryId);
        assert_eq!(
            kind(&[Some("a"), Some("a")]),
            ErrorKind::BatchEntryIdsNotDistinct
        );
        assert!(check_batch(&[Some("a"), Some("b-1_")], "E").is_ok());
    }

    fn ctx() -> RequestContext {
        RequestContext {
            base_url: "http://localhost:1".into(),
            region: "eu-west-1".into(),
        }
    }

    /// A fresh queue with one message received (in flight); returns the URL and the handle.
    async fn received(broker: &Broker) -> (String, String) {
        let url = broker
            .create_queue(
                &ctx(),
                CreateQueueRequest {
                    queue_name: Some("q".into()),
                    ..CreateQueueRequest::default()
                },
            )
            .unwrap()
            .queue_url;
        broker
            .send_message(SendMessageRequest {
                queue_url: Some(url.clone()),
                message_body: Some("b".into()),
                ..SendMessageRequest::default()
            })
            .unwrap();
        let handle = broker
            .receive_message(ReceiveMessageRequest {
                queue_url: Some(url.clone()),
                ..ReceiveMessageRequest::default()
            })
            .await
            .unwrap()
            .messages
            .remove(0)
            .receipt_handle;
        (url, handle)
    }

    #[tokio::test]
    async fn visibility_change_of_a_deleted_message_is_an_invalid_parameter() {
        let broker = Broker::new();
        let (url, handle) = received(&broker).await;
        broker
            .delete_message(DeleteMessageRequest {
                queue_url: Some(url.clone()),
                receipt_handle: Some(handle.clone()),
            })
            .unwrap();
        let error = broker
            .change_message_visibility(ChangeMessageVisibilityRequest {
                queue_url: Some(url),
                receipt_handle: Some(handle),
                visibility_timeout: Some(10),
            })
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidParameterValue);
        assert!(error.message.contains("Message does not exist"), "{error}");
    }

    #[tokio::test]
    async fn handles_of_a_recreated_queue_are_invalid() {
        let broker = Broker::new();
        let (url, handle) = received(&broker).await;
        broker
            .delete_queue(QueueUrlRequest {
                queue_url: Some(url.clone()),
            })
            .unwrap();
        let (url, _) = received(&broker).await;
        let error = broker
            .delete_message(DeleteMessageRequest {
                queue_url: Some(url),
                receipt_handle: Some(handle),
            })
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::ReceiptHandleIsInvalid);
    }

    #[tokio::test]
    async fn arns_use_the_signing_region() {
        let broker = Broker::new();
        let (url, _) = received(&broker).await;
        let attributes = broker
            .get_queue_attributes(GetQueueAttributesRequest {
                queue_url: Some(url),
                attribute_names: vec!["QueueArn".into()],
            })
            .unwrap()
            .attributes;
        assert_eq!(
            attributes["QueueArn"],
            "arn:aws:sqs:eu-west-1:123456789012:q"
        );
    }

    #[test]
    fn attribute_patterns() {
        let patterns = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(attribute_wanted(&patterns(&["All"]), "x"));
        assert!(attribute_wanted(&patterns(&[".*"]), "x"));
        assert!(attribute_wanted(&patterns(&["trace.*"]), "trace.id"));
        assert!(!attribute_wanted(&patterns(&["trace.*"]), "other"));
        assert!(attribute_wanted(&patterns(&["x"]), "x"));
        assert!(!attribute_wanted(&[], "x"));
    }
}
