//! The sweeper's handler: enqueue orders that were committed but whose message never reached
//! the queue (the api's one send attempt failed, or its Lambda died between commit and send).

use tracing::Instrument;

use crate::config::SweepSettings;
use crate::ports::{OrderQueue, OrderStore, StoreError};
use crate::telemetry::error_chain;

/// What one sweep did, logged and returned to tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub claimed: usize,
    pub enqueued: usize,
    pub failed: usize,
}

/// One sweep: claim a batch of stranded orders, send each, mark the sent ones. A failed send is
/// retried by a later sweep once the claim expires. Safe to run concurrently with itself.
pub async fn sweep_once(
    store: &dyn OrderStore,
    queue: &dyn OrderQueue,
    settings: &SweepSettings,
) -> Result<SweepReport, StoreError> {
    let orders = store
        .claim_unenqueued(settings.grace, settings.claim_for, settings.batch_size)
        .await?;
    let mut report = SweepReport {
        claimed: orders.len(),
        ..SweepReport::default()
    };
    for order in &orders {
        let span = tracing::info_span!("sweep_order", order_id = %order.id);
        let sent = async {
            queue.enqueue(order).await?;
            if let Err(error) = store.mark_enqueued(order.id).await {
                // Sent but not marked: the next sweep after the claim expires sends a harmless
                // duplicate (the placer claims orders conditionally).
                tracing::warn!(error = %error_chain(&error), "order enqueued but not marked");
            }
            Ok::<_, crate::ports::QueueError>(())
        }
        .instrument(span.clone())
        .await;
        match sent {
            Ok(()) => {
                report.enqueued += 1;
                span.in_scope(|| tracing::info!("stranded order enqueued"));
            }
            Err(error) => {
                report.failed += 1;
                span.in_scope(|| {
                    tracing::error!(error = %error_chain(&error), "could not enqueue stranded order")
                });
            }
        }
    }
    if report.claimed > 0 {
        tracing::info!(
            claimed = report.claimed,
            enqueued = report.enqueued,
            failed = report.failed,
            "sweep finished"
        );
    }
    Ok(report)
}
