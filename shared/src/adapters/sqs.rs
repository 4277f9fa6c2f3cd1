//! `OrderQueue` on SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
/// Re-exported so binaries can create queues without their own SDK dependency.
pub use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::config::retry::RetryConfig;

use crate::domain::Order;
use crate::ports::{BoxError, OrderQueue, PlacementMessage, QueueError, RetryScheduler};

/// Sends placement messages to the orders queue.
#[derive(Clone, Debug)]
pub struct SqsOrderQueue {
    client: Client,
    queue_url: String,
}

impl SqsOrderQueue {
    /// A client for the request path: one attempt, because the sweeper is the retry — an SDK
    /// retry storm would only make `POST /orders` slow when SQS is down. The attempt's bound is
    /// the caller's (`usecases::enqueue`), not the SDK's.
    pub fn single_attempt(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        let config = aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            client: Client::from_conf(config),
            queue_url,
        }
    }

    /// A client for background senders (the sweeper): the SDK's standard retries apply.
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: Client::new(sdk),
            queue_url,
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl OrderQueue for SqsOrderQueue {
    async fn enqueue(&self, order: &Order) -> Result<(), QueueError> {
        self.send(order, PlacementMessage::for_order(order)).await
    }

    async fn enqueue_cancel(&self, order: &Order) -> Result<(), QueueError> {
        self.send(order, PlacementMessage::cancel_for(order)).await
    }
}

impl SqsOrderQueue {
    async fn send(&self, order: &Order, message: PlacementMessage) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.to_json())
            .send()
            .await
            .map(|_| ())
            .map_err(|error| QueueError {
                order_id: order.id,
                source: Box::new(error),
            })
    }
}

/// Back-off for redeliveries: ChangeMessageVisibility on the record's receipt handle.
#[derive(Clone, Debug)]
pub struct SqsRetryScheduler {
    client: Client,
    queue_url: String,
}

impl SqsRetryScheduler {
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: Client::new(sdk),
            queue_url,
        }
    }
}

#[async_trait]
impl RetryScheduler for SqsRetryScheduler {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), BoxError> {
        // SQS caps a visibility timeout at 12 hours.
        // Rounded up: SQS counts whole seconds, and rounding down would turn short back-offs
        // into immediate retries.
        let seconds = (delay.as_secs_f64().ceil() as u64).min(43_200) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await?;
        Ok(())
    }
}

/// The URLs of the orders queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueueUrls {
    pub orders: String,
    pub dead_letters: String,
}

/// Settings for creating the queues where nothing else does (the local runner, tests); in AWS
/// the SAM template owns them.
#[derive(Debug, Clone)]
pub struct QueueTopology {
    pub orders_name: String,
    pub dead_letters_name: String,
    /// Receives before SQS moves a message to the DLQ.
    pub max_receive_count: u32,
    /// Must exceed the placer's worst-case handling time (the design asks for 6 × its timeout).
    pub visibility_timeout_seconds: u32,
    /// How soon a dead letter the alerter reported as failed comes back; `None` keeps SQS's
    /// default (30 s). The tests shorten it so that they need not wait.
    pub dead_letter_visibility_timeout_seconds: Option<u32>,
}

/// Creates both queues if missing (CreateQueue is idempotent for equal attributes) and wires the
/// redrive policy.
pub async fn ensure_queues(
    client: &Client,
    topology: &QueueTopology,
) -> Result<QueueUrls, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName;

    let mut create_dead_letters = client
        .create_queue()
        .queue_name(&topology.dead_letters_name)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600");
    if let Some(seconds) = topology.dead_letter_visibility_timeout_seconds {
        create_dead_letters = create_dead_letters
            .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    let dead_letters = create_dead_letters
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dead_letters)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": topology.max_receive_count.to_string(),
    })
    .to_string();
    let orders = client
        .create_queue()
        .queue_name(&topology.orders_name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            topology.visibility_timeout_seconds.to_string(),
        )
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    client
        .set_queue_attributes()
        .queue_url(&orders)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await?;
    Ok(QueueUrls {
        orders,
        dead_letters,
    })
}
