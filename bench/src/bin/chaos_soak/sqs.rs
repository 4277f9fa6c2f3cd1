//! The soak's own SQS client on the standalone endpoint: to read the alerts the runner published,
//! to put poison messages into the orders queue, and to see whether the DLQ has drained.

use aws_sdk_sqs::types::QueueAttributeName;

/// The runner's queue names (its defaults: the soak does not set `ORDERS_QUEUE_NAME` or
/// `ORDERS_DLQ_NAME`).
pub const ORDERS_QUEUE: &str = "orders";
pub const DEAD_LETTER_QUEUE: &str = "orders-dlq";

/// A client of the endpoint at `endpoint`, with the dummy credentials it accepts.
pub async fn client(endpoint: &str) -> aws_sdk_sqs::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "soak", "soak", None, None, "soak",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}

pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    Ok(sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await?
        .queue_url
        .unwrap_or_default())
}

/// Messages in the queue, visible or in flight.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let count = |name: &QueueAttributeName| -> u64 {
        attributes
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(count(&QueueAttributeName::ApproximateNumberOfMessages)
        + count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}
