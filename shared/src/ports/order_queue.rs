//! The queue that carries orders to the placer, and the back-off it allows on a message.

use std::time::Duration;

use async_trait::async_trait;

use super::BoxError;
use crate::domain::{Order, OrderId};

/// The queue could not take the message; the order stays stranded for the sweeper.
#[derive(Debug, thiserror::Error)]
#[error("could not enqueue order {order_id}")]
pub struct QueueError {
    pub order_id: OrderId,
    #[source]
    pub source: BoxError,
}

/// The queue that feeds the placer.
#[async_trait]
pub trait OrderQueue: Send + Sync {
    /// Sends one placement message for the order.
    async fn enqueue(&self, order: &Order) -> Result<(), QueueError>;
    /// Sends one cancel message for a working order (`pending_cancel`): the placer asks the
    /// exchange to cancel its unfilled rest.
    async fn enqueue_cancel(&self, order: &Order) -> Result<(), QueueError>;
}

/// Delays the next delivery of a queue message (SQS ChangeMessageVisibility), for back-off.
#[async_trait]
pub trait RetryScheduler: Send + Sync {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), BoxError>;
}
