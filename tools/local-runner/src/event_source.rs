//! What Lambda's SQS event source mapping does, for the local runner and the tests: long-poll
//! a queue, hand batches of up to 10 records to a handler, delete the records it did not report
//! as failed, and leave the failed ones for SQS to redeliver (or move to the DLQ).

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use order_shared::telemetry::error_chain;

/// One queue to poll.
#[derive(Debug, Clone)]
pub struct EventSource {
    pub queue_url: String,
    pub queue_arn: String,
    /// Up to 10, as with Lambda.
    pub batch_size: i32,
    /// Long-poll wait; shorter makes tests finish faster, longer costs fewer requests.
    pub wait: Duration,
}

/// Receives one batch and hands it to `handler`; returns how many records were received.
pub async fn poll_once<H, Fut>(
    client: &Client,
    source: &EventSource,
    handler: &H,
) -> Result<usize, aws_sdk_sqs::Error>
where
    H: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let output = client
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(source.batch_size.clamp(1, 10))
        .wait_time_seconds(source.wait.as_secs().min(20) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let messages = output.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let records: Vec<SqsMessage> = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.md5_of_body = m.md5_of_body.clone();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(source.queue_arn.clone());
            if let Some(attributes) = &m.attributes {
                for (name, value) in attributes {
                    record
                        .attributes
                        .insert(name.as_str().to_owned(), value.clone());
                }
            }
            record
        })
        .collect();
    let received = records.len();
    let mut event = SqsEvent::default();
    event.records = records;
    let response = handler(event).await;
    let failed: std::collections::HashSet<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.contains(m.message_id.as_deref().unwrap_or_default()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle.clone())
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        client
            .delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(received)
}

/// Polls forever (until the task is dropped); errors are logged and retried after a pause.
pub async fn run<H, Fut>(client: Client, source: EventSource, handler: H)
where
    H: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    loop {
        if let Err(error) = poll_once(&client, &source, &handler).await {
            tracing::warn!(error = %error_chain(&error), queue = %source.queue_url, "polling failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The ARN of a queue, which SQS events carry.
pub async fn queue_arn(client: &Client, queue_url: &str) -> Result<String, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName;
    Ok(client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default())
}
