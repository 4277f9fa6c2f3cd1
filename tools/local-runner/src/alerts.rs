//! Admin alerts without SNS: SNS cannot deliver into the embedded SQS endpoint, so with it the
//! runner writes each alert straight into the alerts-inbox queue, with the body that SNS raw
//! message delivery would have produced (with moto, alerts go through a real SNS topic).

use async_trait::async_trait;
use aws_config::SdkConfig;
use order_shared::ports::{Alert, AlertPublisher, PublishError};

/// An `AlertPublisher` that sends each alert's body as a message to one queue (where SNS with
/// raw delivery would have put it).
#[derive(Debug, Clone)]
pub struct QueueAlertPublisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl QueueAlertPublisher {
    pub fn new(sdk: &SdkConfig, queue_url: String) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            queue_url,
        }
    }
}

#[async_trait]
impl AlertPublisher for QueueAlertPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), PublishError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&alert.body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError(Box::new(e)))
    }
}
