//! The queues and the SQS operations on them, independent of HTTP: each public method of
//! [`Broker`] takes an operation's request document and returns its result document or an
//! [`SqsError`](crate::SqsError).
//!
//! Concurrency: a read-mostly map of queues, and one mutex per queue held only for the few
//! microseconds an operation touches that queue (never across an `.await`). Long polls wait on
//! the queue's [`Notify`](tokio::sync::Notify), woken by any send or visibility change that makes
//! a message visible, and otherwise sleep until the queue's next timer (a delayed or in-flight
//! message becoming visible) or their deadline. A message moving to another queue (dead-letter
//! move, move task) is taken out under the source's lock and put in under the destination's,
//! never both at once.
//!
//! - `registry`: the [`Broker`] and its [`Queue`]s, and the lookups every operation starts with.
//! - `management`: operations on whole queues (create, get URL, list, delete, attributes, purge,
//!   tags, dead-letter sources).
//! - `messaging`: operations on messages (send, receive, delete, change visibility, and their
//!   batches); `delivery` renders what a receive returns.
//! - `moves`: StartMessageMoveTask and friends; `move_tasks`: the tasks' records.
//! - [`queue`]: one queue's messages and their state machine.
//! - [`settings`]: queue attributes.
//! - `params`: the parameter checks the operations share.
//!
//! Imports point one way: the operation modules (`management`, `messaging`, `moves`) use
//! `registry` and the building blocks (`queue`, `settings`, `params`, `move_tasks`, and
//! `delivery`, which renders `queue`'s deliveries); `registry` uses building blocks only; no
//! operation module uses another, and none uses this file, which only declares modules and
//! re-exports.

mod delivery;
mod management;
mod messaging;
mod move_tasks;
mod moves;
mod params;
pub mod queue;
mod registry;
pub mod settings;

pub use messaging::SENDER_ID;
pub use registry::{ACCOUNT_ID, Broker, Queue, RequestContext};

/// The operations together, through the broker's public methods.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::protocol::{
        ChangeMessageVisibilityRequest, CreateQueueRequest, DeleteMessageRequest,
        GetQueueAttributesRequest, QueueUrlRequest, ReceiveMessageRequest, SendMessageRequest,
    };

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
}
