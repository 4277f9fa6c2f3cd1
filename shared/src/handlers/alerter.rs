//! The alerter's handler: messages the placer gave up on (the DLQ). Before telling an admin it
//! asks the exchange whether the order was placed after all (a timeout may hide a success);
//! otherwise it marks the order `failed` and publishes one alert per order, at least once.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use serde_json::json;

use super::sqs_batch::{RecordOutcome, batch_response, receive_count};
use crate::domain::{Order, OrderId, OrderStatus};
use crate::ports::{
    Alert, AlertPublisher, Exchange, LookupOutcome, OrderLifecycle, PlacementMessage, StoreError,
};
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
            crate::telemetry::metrics::order_placed();
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
        crate::telemetry::metrics::order_failed();
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
        // Published but not marked: this record is done, but another dead letter of the order
        // would alert again — a duplicate, never nothing.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::fakes::{
        FakeAlerts, FakeExchange, FakeOrderStore, StoreOp, client, market_order, placement_record,
        raw_record, sqs_event,
    };
    use crate::ports::{LookupError, PlacementOutcome};

    const LEASE: Duration = Duration::from_secs(30);

    /// The alerter with its ports on fakes.
    struct Alerter {
        store: FakeOrderStore,
        exchange: FakeExchange,
        alerts: FakeAlerts,
    }

    impl Alerter {
        fn new() -> Self {
            Self {
                store: FakeOrderStore::new(),
                exchange: FakeExchange::new(),
                alerts: FakeAlerts::new(),
            }
        }

        /// An order whose last attempt hit a transient error and whose message then ran out of
        /// receives: `pending`, one attempt, the error kept.
        async fn order_out_of_retries(&self) -> Order {
            let order = self.store.seed(&client("acme"), &market_order(10));
            self.store
                .claim_for_placement(order.id, LEASE)
                .await
                .unwrap();
            self.store
                .release_for_retry(order.id, "503 from the exchange")
                .await
                .unwrap()
                .unwrap()
        }

        /// An order that is `failed`, alerted or not.
        async fn failed_order(&self, alerted: bool) -> Order {
            let order = self.order_out_of_retries().await;
            self.store.mark_failed(order.id, "gave up").await.unwrap();
            if alerted {
                self.store.mark_alerted(order.id).await.unwrap();
            }
            self.store.order(order.id).unwrap()
        }

        fn current(&self, order: &Order) -> Order {
            self.store.order(order.id).unwrap()
        }

        /// Hands one batch of dead letters over; returns the message ids to be redelivered.
        async fn deliver(&self, records: Vec<SqsMessage>) -> Vec<String> {
            self.deliver_with(&self.exchange, records).await
        }

        async fn deliver_with(
            &self,
            exchange: &dyn Exchange,
            records: Vec<SqsMessage>,
        ) -> Vec<String> {
            let ports = AlerterPorts {
                store: &self.store,
                exchange,
                alerts: &self.alerts,
            };
            handle_dead_letters(sqs_event(records), ports)
                .await
                .batch_item_failures
                .into_iter()
                .map(|failure| failure.item_identifier)
                .collect()
        }
    }

    #[tokio::test]
    async fn an_order_the_exchange_has_is_recorded_placed_without_an_alert() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.exchange.set_lookup(
            order.id,
            LookupOutcome::Placed {
                exchange_order_id: "EX-9".into(),
            },
        );

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let placed = alerter.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.exchange_order_id.as_deref(), Some("EX-9"));
        assert!(alerter.alerts.published().is_empty());
    }

    #[tokio::test]
    async fn a_lookup_result_that_cannot_be_recorded_is_retried() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.exchange.set_lookup(
            order.id,
            LookupOutcome::Placed {
                exchange_order_id: "EX-9".into(),
            },
        );
        alerter.store.fail(StoreOp::RecordPlacedByLookup);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 1)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert_eq!(alerter.current(&order).status, OrderStatus::Pending);
        assert!(alerter.alerts.published().is_empty());
    }

    #[tokio::test]
    async fn an_order_the_exchange_does_not_know_is_failed_and_alerted_once() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        let failed = alerter.current(&order);
        assert_eq!(failed.status, OrderStatus::Failed);
        assert!(failed.alerted_at.is_some());
        // The placer's error is kept; the reason for failing is in the audit trail.
        assert_eq!(failed.last_error.as_deref(), Some("503 from the exchange"));
        let alerts = alerter.alerts.published();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].subject,
            format!("Order {} failed: buy 10 × US0378331005", order.id)
        );
        let body = &alerter.alerts.bodies()[0];
        assert_eq!(body["kind"], "order_failed");
        assert_eq!(body["order_id"], order.id.to_string());
        assert_eq!(body["client_id"], "acme");
        assert_eq!(body["attempts"], 1);
        assert_eq!(body["last_error"], "503 from the exchange");
        assert_eq!(
            body["exchange_lookup"],
            "the exchange does not know the order"
        );
        assert_eq!(
            body["how_to_retry"],
            format!("orders-admin retry {}", order.id)
        );
        assert!(body["first_attempt_at"].is_string());
        assert!(body["last_attempt_at"].is_string());
    }

    #[tokio::test]
    async fn a_failed_lookup_alerts_that_the_order_may_have_been_placed() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.exchange.set_lookups_failing(true);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
        let lookup = alerter.alerts.bodies()[0]["exchange_lookup"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(lookup.contains("exchange lookup failed"), "{lookup}");
        assert!(lookup.contains("may have been placed"), "{lookup}");
    }

    #[tokio::test]
    async fn an_alerted_failure_is_not_alerted_again() {
        let alerter = Alerter::new();
        let order = alerter.failed_order(true).await;

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert!(alerter.alerts.published().is_empty());
        assert_eq!(alerter.exchange.total_lookups(), 0);
    }

    #[tokio::test]
    async fn a_failure_whose_alert_was_lost_is_alerted_without_a_new_lookup() {
        let alerter = Alerter::new();
        let order = alerter.failed_order(false).await;

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.exchange.total_lookups(), 0);
        assert_eq!(
            alerter.alerts.bodies()[0]["exchange_lookup"],
            "not repeated (the order was already failed)"
        );
        assert!(alerter.current(&order).alerted_at.is_some());
    }

    #[tokio::test]
    async fn placed_and_rejected_orders_need_no_alert() {
        let alerter = Alerter::new();
        let placed = alerter.store.seed(&client("acme"), &market_order(1));
        let rejected = alerter.store.seed(&client("acme"), &market_order(2));
        for order in [&placed, &rejected] {
            alerter
                .store
                .claim_for_placement(order.id, LEASE)
                .await
                .unwrap();
        }
        alerter
            .store
            .record_placed(placed.id, "EX-1")
            .await
            .unwrap();
        alerter
            .store
            .record_rejected(rejected.id, "market closed")
            .await
            .unwrap();

        let retried = alerter
            .deliver(vec![
                placement_record("d1", &placed, 5),
                placement_record("d2", &rejected, 5),
            ])
            .await;

        assert!(retried.is_empty());
        assert!(alerter.alerts.published().is_empty());
        assert_eq!(alerter.current(&placed).status, OrderStatus::Placed);
        assert_eq!(alerter.current(&rejected).status, OrderStatus::Rejected);
    }

    #[tokio::test]
    async fn an_order_under_a_valid_lease_is_decided_later() {
        let alerter = Alerter::new();
        let order = alerter.store.seed(&client("acme"), &market_order(1));
        alerter
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert_eq!(alerter.current(&order).status, OrderStatus::Placing);
        assert!(alerter.alerts.published().is_empty());
    }

    #[tokio::test]
    async fn an_order_whose_lease_expired_is_failed_and_alerted() {
        let alerter = Alerter::new();
        let order = alerter.store.seed(&client("acme"), &market_order(1));
        alerter
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        alerter.store.expire_lease(order.id);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
        assert_eq!(alerter.alerts.published().len(), 1);
    }

    #[tokio::test]
    async fn an_alert_that_cannot_be_published_is_retried_and_not_marked() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.alerts.set_failing(true);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        let failed = alerter.current(&order);
        assert_eq!(failed.status, OrderStatus::Failed);
        assert_eq!(failed.alerted_at, None);

        alerter.alerts.set_failing(false);
        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 6)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.alerts.published().len(), 1);
        assert!(alerter.current(&order).alerted_at.is_some());
    }

    #[tokio::test]
    async fn an_alert_published_but_not_marked_still_deletes_the_message() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.store.fail(StoreOp::MarkAlerted);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.alerts.published().len(), 1);
        assert_eq!(alerter.current(&order).alerted_at, None);
    }

    #[tokio::test]
    async fn unreadable_attempt_times_retry_without_alerting() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.store.fail(StoreOp::AttemptTimes);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert!(alerter.alerts.published().is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
    }

    #[tokio::test]
    async fn a_store_outage_retries_without_looking_up_or_alerting() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        alerter.store.set_down(true);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert!(alerter.alerts.published().is_empty());
        assert_eq!(alerter.exchange.total_lookups(), 0);
    }

    #[tokio::test]
    async fn a_poison_message_is_reported_raw() {
        let alerter = Alerter::new();

        let retried = alerter
            .deliver(vec![raw_record("d1", Some("{oops"), 4)])
            .await;

        assert!(retried.is_empty());
        let body = &alerter.alerts.bodies()[0];
        assert_eq!(body["kind"], "poison_message");
        assert_eq!(
            body["problem"],
            "the message is not a readable placement message"
        );
        assert_eq!(body["message_id"], "d1");
        assert_eq!(body["receive_count"], 4);
        assert_eq!(body["body"], "{oops");
        assert_eq!(body["body_truncated"], false);
        assert_eq!(alerter.store.calls(StoreOp::FindOrder), 0);
    }

    #[tokio::test]
    async fn a_long_poison_body_is_truncated_in_the_alert() {
        let alerter = Alerter::new();
        let huge = "x".repeat(RAW_BODY_LIMIT + 100);

        alerter
            .deliver(vec![raw_record("d1", Some(&huge), 4)])
            .await;

        let body = &alerter.alerts.bodies()[0];
        assert_eq!(body["body"].as_str().unwrap().len(), RAW_BODY_LIMIT);
        assert_eq!(body["body_truncated"], true);
    }

    #[tokio::test]
    async fn a_poison_report_that_cannot_be_published_is_retried() {
        let alerter = Alerter::new();
        alerter.alerts.set_failing(true);

        let retried = alerter.deliver(vec![raw_record("d1", None, 4)]).await;

        assert_eq!(retried, ["d1"]);
    }

    #[tokio::test]
    async fn a_message_naming_no_known_order_is_reported_raw() {
        let alerter = Alerter::new();
        let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(1));

        let retried = alerter
            .deliver(vec![placement_record("d1", &ghost, 4)])
            .await;

        assert!(retried.is_empty());
        let body = &alerter.alerts.bodies()[0];
        assert_eq!(body["kind"], "poison_message");
        assert_eq!(body["problem"], "the message names no known order");
        assert!(
            body["body"]
                .as_str()
                .unwrap()
                .contains(&ghost.id.to_string())
        );
    }

    #[tokio::test]
    async fn duplicate_dead_letters_of_one_order_in_one_batch_alert_once() {
        let alerter = Alerter::new();
        let twice = alerter.order_out_of_retries().await;
        let once = alerter.order_out_of_retries().await;

        let retried = alerter
            .deliver(vec![
                placement_record("d1", &twice, 5),
                placement_record("d2", &once, 5),
                placement_record("d3", &twice, 5),
                placement_record("d4", &twice, 5),
            ])
            .await;

        assert!(retried.is_empty());
        let mut alerted: Vec<Value> = alerter
            .alerts
            .bodies()
            .into_iter()
            .map(|body| body["order_id"].clone())
            .collect();
        alerted.sort_by_key(|id| id.to_string());
        let mut expected = vec![
            Value::from(twice.id.to_string()),
            Value::from(once.id.to_string()),
        ];
        expected.sort_by_key(|id| id.to_string());
        assert_eq!(alerted, expected);
        assert_eq!(alerter.exchange.lookups(twice.id), 1);
    }

    /// An exchange whose lookup answers "unknown" while, meanwhile, a late placer records the
    /// order placed.
    struct PlacedDuringLookup<'a> {
        store: &'a FakeOrderStore,
    }

    #[async_trait::async_trait]
    impl Exchange for PlacedDuringLookup<'_> {
        async fn place(&self, _: &Order) -> PlacementOutcome {
            unreachable!("the alerter never places")
        }

        async fn lookup(&self, id: OrderId) -> Result<LookupOutcome, LookupError> {
            self.store.claim_for_placement(id, LEASE).await.unwrap();
            self.store.record_placed(id, "EX-late").await.unwrap();
            Ok(LookupOutcome::Unknown)
        }
    }

    #[tokio::test]
    async fn an_order_placed_while_it_was_looked_up_is_not_failed_or_alerted() {
        let alerter = Alerter::new();
        let order = alerter.order_out_of_retries().await;
        let exchange = PlacedDuringLookup {
            store: &alerter.store,
        };

        let retried = alerter
            .deliver_with(&exchange, vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Placed);
        assert!(alerter.alerts.published().is_empty());
    }
}
