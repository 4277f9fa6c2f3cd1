//! `AlertPublisher` on SNS: the topic admins subscribe to (e-mail in AWS, an SQS queue locally).

use async_trait::async_trait;
use aws_sdk_sns::Client;

use crate::ports::{Alert, AlertPublisher, PublishError};

/// Re-exported so binaries can create topics without their own SDK dependency.
pub use aws_sdk_sns::Client as SnsClient;

#[derive(Clone, Debug)]
pub struct SnsAlertPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsAlertPublisher {
    pub fn new(sdk: &aws_config::SdkConfig, topic_arn: String) -> Self {
        Self {
            client: Client::new(sdk),
            topic_arn,
        }
    }
}

/// E-mail subjects must be ASCII-ish and under 100 characters.
fn subject_line(subject: &str) -> String {
    let cleaned: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned.chars().take(99).collect()
}

#[async_trait]
impl AlertPublisher for SnsAlertPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), PublishError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject_line(&alert.subject))
            .message(&alert.body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError(Box::new(e)))
    }
}

/// Creates the alert topic if missing (CreateTopic is idempotent); returns its ARN. In AWS the
/// SAM template owns the topic; this is for the local runner and the tests.
pub async fn ensure_topic(client: &Client, name: &str) -> Result<String, aws_sdk_sns::Error> {
    Ok(client
        .create_topic()
        .name(name)
        .send()
        .await?
        .topic_arn
        .unwrap_or_default())
}

/// Subscribes an SQS queue to the topic with raw delivery, so each queue message is exactly the
/// published alert body (how the local runner and the tests observe alerts).
pub async fn subscribe_queue(
    client: &Client,
    topic_arn: &str,
    queue_arn: &str,
) -> Result<(), aws_sdk_sns::Error> {
    client
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_fit_email() {
        let subject = super::subject_line(&format!("Order × failed {}", "x".repeat(200)));
        assert!(subject.len() < 100);
        assert!(subject.is_ascii());
    }
}
