//! Queue management, the operations on a queue as a whole (its identity, settings and tags):
//! CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, GetQueueAttributes, SetQueueAttributes,
//! PurgeQueue, TagQueue, UntagQueue, ListQueueTags and ListDeadLetterSourceQueues. What happens to
//! single messages is in `messaging`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::Notify;

use super::params::{ranged, valid_queue_name};
use super::queue::Messages;
use super::registry::{ACCOUNT_ID, Broker, Queue, QueueState, RequestContext, epoch_secs};
use super::settings::{QueueSettings, requested_names};
use crate::error::{ErrorKind, SqsError};
use crate::protocol::{
    CreateQueueRequest, Empty, GetQueueAttributesRequest, GetQueueAttributesResult,
    GetQueueUrlRequest, ListDeadLetterSourceQueuesRequest, ListDeadLetterSourceQueuesResult,
    ListQueueTagsResult, ListQueuesRequest, ListQueuesResult, QueueUrlRequest, QueueUrlResult,
    SetQueueAttributesRequest, TagQueueRequest, UntagQueueRequest,
};

impl Broker {
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
}
