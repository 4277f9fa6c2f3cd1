//! The alerter's handler: messages the placer gave up on (the DLQ). Before telling an admin it
//! asks the exchange whether the order was placed after all (a timeout may hide a success);
//! otherwise it marks the order `failed` and publishes one alert per order, at least once.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use serde_json::json;

use crate::domain::{Order, OrderId, OrderStatus};
use crate::placement_message::PlacementMessage;
use crate::placer::{RecordOutcome, batch_response, receive_count};
use crate::ports::{Alert, AlertPublisher, Exchange, LookupOutcome, OrderLifecycle, StoreError};
use crate::telemetry::error_chain;

/// The ports the alerter needs.
#[derive(Clone, Copy)]
pub struct AlerterPorts<'a> {
    pub store: &'a dyn OrderLifecycle,
    pub exchange: &'a dyn Exchange,
    pub alerts: &'a dyn AlertPublisher,
}

/// The longest raw message body copied into an alert (SNS messages are limited to 256 KiB).
const RAW_BODY_LIMIT: usize = 4 * 1024;

/// Handles one batch of dead letters; a record is reported failed (and retried) only when its
/// alert could not be published or the store could not be read.
pub async fn handle_dead_letters(event: SqsEvent, ports: AlerterPorts<'_>) -> SqsBatchResponse {
    // Two dead letters of one order in one batch would both see "not alerted yet" if handled at
    // once; the later copies run after the first, when `alerted_at` is set.
    let mut seen = std::collections::HashSet::new();
    let (firsts, repeats): (Vec<SqsMessage>, Vec<SqsMessage>) = event
        .records
        .into_iter()
        .partition(|record| seen.insert(order_key(record)));
    let mut outcomes: Vec<(String, RecordOutcome)> = futures::stream::iter(firsts)
        .map(|record| handle_traced(record, ports))
        .buffer_unordered(4)
        .collect()
        .await;
    for record in repeats {
        outcomes.push(handle_traced(record, ports).await);
    }
    batch_response(outcomes)
}

/// The order a record is about (its raw body when it names none), for de-duplication.
fn order_key(record: &SqsMessage) -> String {
    let body = record.body.as_deref().unwrap_or("");
    serde_json::from_str::<PlacementMessage>(body)
        .map(|m| m.order_id.to_string())
        .unwrap_or_else(|_| body.to_owned())
}

async fn handle_traced(record: SqsMessage, ports: AlerterPorts<'_>) -> (String, RecordOutcome) {
    let message_id = record.message_id.clone().unwrap_or_default();
    let span = tracing::info_span!("dead_letter", message_id = %message_id, order_id = tracing::field::Empty);
    // Called as a function: the trait method would shadow `NewOrder::instrument` here.
    let outcome = tracing::Instrument::instrument(handle_record(&record, ports), span).await;
    (message_id, outcome)
}

async fn handle_record(record: &SqsMessage, ports: AlerterPorts<'_>) -> RecordOutcome {
    let body = record.body.as_deref().unwrap_or("");
    let Ok(message) = serde_json::from_str::<PlacementMessage>(body) else {
        return publish_raw(
            record,
            "the message is not a readable placement message",
            ports,
        )
        .await;
    };
    let order_id = OrderId::from(message.order_id);
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    match resolve(order_id, ports).await {
        Ok(Resolution::Nothing) => RecordOutcome::Done,
        Ok(Resolution::UnknownOrder) => {
            publish_raw(record, "the message names no known order", ports).await
        }
        Ok(Resolution::Alert { order, lookup }) => publish_failure(&order, &lookup, ports).await,
        Ok(Resolution::Later) => {
            tracing::info!("a placer holds the order's lease; deciding later");
            RecordOutcome::Retry("order is being placed".into())
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not resolve the dead letter");
            RecordOutcome::Retry("store unavailable".into())
        }
    }
}

enum Resolution {
    /// Placed (perhaps found by lookup), rejected, or failed and already alerted.
    Nothing,
    UnknownOrder,
    /// Failed and not yet alerted; `lookup` says what the exchange answered.
    Alert {
        order: Box<Order>,
        lookup: String,
    },
    /// A placer holds a valid lease on it: look again when the dead letter comes back.
    Later,
}

async fn resolve(order_id: OrderId, ports: AlerterPorts<'_>) -> Result<Resolution, StoreError> {
    let Some(order) = ports.store.find_order(order_id).await? else {
        return Ok(Resolution::UnknownOrder);
    };
    match order.status {
        OrderStatus::Placed | OrderStatus::Rejected => {
            tracing::info!(status = %order.status, "order already resolved; no alert");
            return Ok(Resolution::Nothing);
        }
        OrderStatus::Failed if order.alerted_at.is_some() => {
            tracing::info!("failure already alerted");
            return Ok(Resolution::Nothing);
        }
        OrderStatus::Failed => {
            return Ok(Resolution::Alert {
                order: Box::new(order),
                lookup: "not repeated (the order was already failed)".into(),
            });
        }
        OrderStatus::Pending | OrderStatus::Placing => {}
    }
    let lookup_note = match ports.exchange.lookup(order_id).await {
        Ok(LookupOutcome::Placed { exchange_order_id }) => {
            ports
                .store
                .record_placed_by_lookup(order_id, &exchange_order_id)
                .await?;
            crate::metrics::order_placed();
            tracing::info!(%exchange_order_id, "retries ran out but the exchange has the order: placed");
            return Ok(Resolution::Nothing);
        }
        Ok(LookupOutcome::Unknown) => None,
        Err(error) => Some(error.to_string()),
    };
    let lookup = match &lookup_note {
        None => "the exchange does not know the order".to_string(),
        Some(note) => format!("{note} (the order may have been placed: check before retrying)"),
    };
    let reason = format!("retries exhausted; {lookup}");
    if let Some(order) = ports.store.mark_failed(order_id, &reason).await? {
        crate::metrics::order_failed();
        tracing::warn!(attempts = order.attempts, last_error = ?order.last_error, "order failed");
        return Ok(Resolution::Alert {
            order: Box::new(order),
            lookup,
        });
    }
    // Not failed: a placer holds the lease, or the order moved on meanwhile.
    match ports.store.find_order(order_id).await? {
        Some(order) if matches!(order.status, OrderStatus::Pending | OrderStatus::Placing) => {
            Ok(Resolution::Later)
        }
        Some(order) if order.status == OrderStatus::Failed && order.alerted_at.is_none() => {
            Ok(Resolution::Alert {
                order: Box::new(order),
                lookup,
            })
        }
        Some(_) => Ok(Resolution::Nothing),
        None => Ok(Resolution::UnknownOrder),
    }
}

async fn publish_failure(order: &Order, lookup: &str, ports: AlerterPorts<'_>) -> RecordOutcome {
    let (first_attempt, last_attempt) = match ports.store.attempt_times(order.id).await {
        Ok(times) => times,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not read attempt times");
            return RecordOutcome::Retry("store unavailable".into());
        }
    };
    let rfc3339 = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let alert = Alert {
        subject: format!(
            "Order {} failed: {} {} × {}",
            order.id,
            order.details.side(),
            order.details.quantity().get(),
            order.details.instrument()
        ),
        body: json!({
            "kind": "order_failed",
            "order_id": order.id.to_string(),
            "client_id": order.client_id.as_str(),
            "instrument": order.details.instrument().as_str(),
            "side": order.details.side().as_str(),
            "type": order.details.order_type().as_str(),
            "limit_price": order.details.limit_price().map(|p| p.to_string()),
            "quantity": order.details.quantity().get(),
            "attempts": order.attempts,
            "last_error": order.last_error,
            "exchange_lookup": lookup,
            "created_at": rfc3339(Some(order.created_at)),
            "first_attempt_at": rfc3339(first_attempt),
            "last_attempt_at": rfc3339(last_attempt),
            "how_to_retry": format!("orders-admin retry {}", order.id),
        })
        .to_string(),
    };
    if let Err(error) = ports.alerts.publish(&alert).await {
        tracing::error!(error = %error_chain(&error), "alert not published; will retry");
        return RecordOutcome::Retry("alert not published".into());
    }
    if let Err(error) = ports.store.mark_alerted(order.id).await {
        // Published but not marked: a redelivery publishes a duplicate, never nothing.
        tracing::warn!(error = %error_chain(&error), "alert published but not marked");
    }
    tracing::info!("admin alerted");
    RecordOutcome::Done
}

async fn publish_raw(record: &SqsMessage, problem: &str, ports: AlerterPorts<'_>) -> RecordOutcome {
    let body = record.body.as_deref().unwrap_or("");
    let shown: String = body.chars().take(RAW_BODY_LIMIT).collect();
    let alert = Alert {
        subject: "Unplaceable message in the orders dead-letter queue".into(),
        body: json!({
            "kind": "poison_message",
            "problem": problem,
            "message_id": record.message_id,
            "receive_count": receive_count(record),
            "body": shown,
            "body_truncated": shown.len() < body.len(),
        })
        .to_string(),
    };
    match ports.alerts.publish(&alert).await {
        Ok(()) => {
            tracing::error!(%problem, "poison message reported to the admins");
            RecordOutcome::Done
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "poison report not published; will retry");
            RecordOutcome::Retry("alert not published".into())
        }
    }
}
