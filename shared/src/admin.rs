//! Admin operations on failed orders: the code behind the `orders-admin` tool, kept here so the
//! tests drive exactly what an admin runs.

use crate::domain::OrderId;
use crate::ports::{OrderLifecycle, OrderQueue, StoreError};
use crate::telemetry::error_chain;

/// What a retry request did for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryResult {
    /// Back to `pending` and sent to the queue.
    Requeued,
    /// Back to `pending`, but the send failed: the sweeper will send it.
    RequeuedSweeperWillSend,
    /// Not `failed` (never was, or someone retried it already): nothing done.
    NotFailed,
}

/// Moves one failed order back to `pending` and sends it again.
pub async fn retry_failed_order(
    store: &dyn OrderLifecycle,
    queue: &dyn OrderQueue,
    id: OrderId,
) -> Result<RetryResult, StoreError> {
    let Some(order) = store.requeue_failed(id).await? else {
        return Ok(RetryResult::NotFailed);
    };
    match queue.enqueue(&order).await {
        Ok(()) => {
            if let Err(error) = store.mark_enqueued(id).await {
                tracing::warn!(order_id = %id, error = %error_chain(&error), "requeued but not marked");
            }
            tracing::info!(order_id = %id, "failed order requeued by an admin");
            Ok(RetryResult::Requeued)
        }
        Err(error) => {
            tracing::warn!(order_id = %id, error = %error_chain(&error), "requeued; the sweeper will send it");
            Ok(RetryResult::RequeuedSweeperWillSend)
        }
    }
}
