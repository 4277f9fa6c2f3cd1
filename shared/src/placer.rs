//! The placer's handler: one SQS batch from the orders queue, each record placed at most once
//! at the exchange, failures reported per record (partial batch response) so that SQS redelivers
//! only those — and, after `maxReceiveCount`, moves them to the DLQ for the alerter.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::domain::OrderId;
use crate::placement_message::{PLACEMENT_MESSAGE_VERSION, PlacementMessage};
use crate::ports::{ClaimOutcome, Exchange, OrderLifecycle, PlacementOutcome, RetryScheduler};
use crate::telemetry::error_chain;

/// How the placer works; from configuration.
#[derive(Debug, Clone)]
pub struct PlacerSettings {
    /// How long a claim keeps other placers off an order. Shorter than the queue's visibility
    /// timeout, so a redelivered message finds the lease of a crashed placer expired.
    pub lease: Duration,
    /// Records of one batch handled at once (bounded: each holds a DB connection and an
    /// exchange call).
    pub concurrency: usize,
    pub backoff: Backoff,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Handled for good (placed, rejected, or already final): SQS may delete it.
    Done,
    /// Must come back: reported in `batchItemFailures`.
    Retry(String),
}

/// The ports the placer needs.
#[derive(Clone, Copy)]
pub struct PlacerPorts<'a> {
    pub store: &'a dyn OrderLifecycle,
    pub exchange: &'a dyn Exchange,
    pub retries: &'a dyn RetryScheduler,
}

/// Handles one batch; never fails as a whole — a bad record is reported, not thrown.
pub async fn handle_placement_batch(
    event: SqsEvent,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> SqsBatchResponse {
    let outcomes: Vec<(String, RecordOutcome)> = futures::stream::iter(event.records)
        .map(|record| async move {
            let message_id = record.message_id.clone().unwrap_or_default();
            let outcome = handle_record(&record, ports, settings).await;
            (message_id, outcome)
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    batch_response(outcomes)
}

/// The partial batch response: only the records to retry.
pub fn batch_response(outcomes: Vec<(String, RecordOutcome)>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (message_id, outcome) in outcomes {
        if let RecordOutcome::Retry(_) = outcome {
            response.add_failure(message_id);
        }
    }
    response
}

/// `ApproximateReceiveCount` of a record (1 on the first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

async fn handle_record(
    record: &SqsMessage,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> RecordOutcome {
    let receives = receive_count(record);
    let (span, next) = match parse_message(record.body.as_deref()) {
        Ok(message) => {
            let order_id = OrderId::from(message.order_id);
            let span = tracing::info_span!(
                "placement",
                message_id = ?record.message_id,
                order_id = %order_id,
                receives,
                attempt = tracing::field::Empty,
            );
            let next = place(order_id, ports, settings)
                .instrument(span.clone())
                .await;
            (span, next)
        }
        Err(problem) => {
            let span = tracing::error_span!("placement", message_id = ?record.message_id, receives);
            span.in_scope(|| {
                tracing::error!(%problem, "poison message; it will reach the DLQ and be reported")
            });
            (span, Next::retry(problem))
        }
    };
    match next {
        Next::Done => RecordOutcome::Done,
        Next::Retry { reason, at_least } => {
            if let Some(handle) = &record.receipt_handle {
                let delay = settings.backoff.jittered(receives).max(at_least);
                match ports.retries.retry_after(handle, delay).await {
                    Ok(()) => span.in_scope(|| {
                        tracing::info!(%reason, delay_ms = delay.as_millis() as u64, "will retry")
                    }),
                    // The queue's own visibility timeout still brings the message back.
                    Err(error) => span.in_scope(|| {
                        tracing::warn!(error = %error, "could not set the retry delay")
                    }),
                }
            }
            RecordOutcome::Retry(reason)
        }
    }
}

/// What to do with a record, with the earliest sensible redelivery.
enum Next {
    Done,
    Retry {
        reason: String,
        /// No point in coming back before this: e.g. the order's lease must expire first.
        at_least: Duration,
    },
}

impl Next {
    fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            at_least: Duration::ZERO,
        }
    }

    fn after_lease(reason: impl Into<String>, lease: Duration) -> Self {
        Self::Retry {
            reason: reason.into(),
            at_least: lease,
        }
    }
}

fn parse_message(body: Option<&str>) -> Result<PlacementMessage, String> {
    let body = body.ok_or("message has no body")?;
    let message: PlacementMessage = serde_json::from_str(body)
        .map_err(|e| format!("message is not a placement message: {e}"))?;
    if message.version != PLACEMENT_MESSAGE_VERSION {
        return Err(format!("unknown message version {}", message.version));
    }
    Ok(message)
}

async fn place(order_id: OrderId, ports: PlacerPorts<'_>, settings: &PlacerSettings) -> Next {
    let order = match ports
        .store
        .claim_for_placement(order_id, settings.lease)
        .await
    {
        Ok(ClaimOutcome::Claimed(order)) => order,
        Ok(ClaimOutcome::AlreadyFinal(status)) => {
            tracing::info!(%status, "order already final; dropping the duplicate message");
            return Next::Done;
        }
        Ok(ClaimOutcome::LeasedElsewhere) => {
            tracing::info!("order is being placed by another worker; retry later");
            return Next::after_lease("leased by another placer", settings.lease);
        }
        Ok(ClaimOutcome::Unknown) => {
            tracing::error!("message names no known order; it will reach the DLQ");
            return Next::retry("unknown order");
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not claim the order");
            return Next::retry("store unavailable");
        }
    };
    tracing::Span::current().record("attempt", order.attempts);
    let started = std::time::Instant::now();
    let outcome = ports.exchange.place(&order).await;
    crate::metrics::placement_attempt(started.elapsed());
    let latency_ms = started.elapsed().as_millis() as u64;
    match outcome {
        PlacementOutcome::Acknowledged { exchange_order_id } => {
            match ports
                .store
                .record_placed(order_id, &exchange_order_id)
                .await
            {
                Ok(Some(_)) => {
                    crate::metrics::order_placed();
                    tracing::info!(%exchange_order_id, latency_ms, "order placed");
                    Next::Done
                }
                Ok(None) => {
                    tracing::warn!(%exchange_order_id, "placed, but the order had moved on");
                    Next::Done
                }
                Err(error) => {
                    // The exchange has it; the redelivery re-places with the same client order
                    // id, which the exchange de-duplicates, and then records it.
                    tracing::error!(error = %error_chain(&error), %exchange_order_id, "placed but not recorded");
                    Next::after_lease("placed but not recorded", settings.lease)
                }
            }
        }
        PlacementOutcome::Rejected { reason } => {
            match ports.store.record_rejected(order_id, &reason).await {
                Ok(_) => {
                    crate::metrics::order_rejected();
                    tracing::info!(%reason, latency_ms, "order rejected by the exchange");
                    Next::Done
                }
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "rejection not recorded");
                    Next::retry("rejection not recorded")
                }
            }
        }
        PlacementOutcome::Transient { error } => {
            tracing::warn!(%error, latency_ms, "transient exchange error");
            if let Err(store_error) = ports.store.release_for_retry(order_id, &error).await {
                // The lease expires on its own; the redelivery takes the order over.
                tracing::error!(error = %error_chain(&store_error), "could not release the order");
            }
            Next::retry(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_response_lists_only_records_to_retry() {
        let response = batch_response(vec![
            ("a".into(), RecordOutcome::Done),
            ("b".into(), RecordOutcome::Retry("exchange down".into())),
            ("c".into(), RecordOutcome::Done),
            ("d".into(), RecordOutcome::Retry("unknown order".into())),
        ]);
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec!["b".to_string(), "d".to_string()]);
    }

    #[test]
    fn all_done_is_an_empty_failure_list() {
        let response = batch_response(vec![("a".into(), RecordOutcome::Done)]);
        assert!(response.batch_item_failures.is_empty());
    }

    #[test]
    fn receive_count_defaults_to_first_delivery() {
        let mut record = SqsMessage::default();
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&record), 4);
    }

    #[test]
    fn poison_bodies_are_refused_with_a_reason() {
        assert!(parse_message(None).is_err());
        assert!(parse_message(Some("not json")).is_err());
        assert!(parse_message(Some(r#"{"order_id":"x"}"#)).is_err());
        let future = r#"{"version":2,"order_id":"01a21378-2541-7496-b065-b7593dbf64e9","type":"market","side":"buy","instrument":"US0378331005","limit_price":null,"quantity":1}"#;
        assert!(
            parse_message(Some(future))
                .unwrap_err()
                .contains("version 2")
        );
    }
}
