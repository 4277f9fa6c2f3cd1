//! `OrderQueue` on SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;

use crate::domain::Order;
use crate::placement_message::PlacementMessage;
use crate::ports::{OrderQueue, QueueError};

/// Sends placement messages to the orders queue.
#[derive(Clone, Debug)]
pub struct SqsOrderQueue {
    client: Client,
    queue_url: String,
}

impl SqsOrderQueue {
    /// A client for the request path: one attempt bounded by `timeout`, because the sweeper is
    /// the retry — an SDK retry storm would only make `POST /orders` slow when SQS is down.
    pub fn for_requests(sdk: &aws_config::SdkConfig, queue_url: String, timeout: Duration) -> Self {
        let config = aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
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
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(PlacementMessage::for_order(order).to_json())
            .send()
            .await
            .map(|_| ())
            .map_err(|error| QueueError {
                order_id: order.id,
                source: Box::new(error),
            })
    }
}
