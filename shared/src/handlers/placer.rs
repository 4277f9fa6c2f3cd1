//! The placer's handler: one SQS batch from the orders queue, each record placed at most once
//! at the exchange, failures reported per record (partial batch response) so that SQS redelivers
//! only those — and, after `maxReceiveCount`, moves them to the DLQ for the alerter.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use super::sqs_batch::{RecordOutcome, batch_response, receive_count};
use futures::StreamExt;
use tracing::Instrument;

use crate::domain::OrderId;
use crate::ports::{ClaimOutcome, Exchange, OrderLifecycle, PlacementOutcome, RetryScheduler};
use crate::ports::{PLACEMENT_MESSAGE_VERSION, PlacementMessage};
use crate::telemetry::error_chain;
use crate::usecases::backoff::Backoff;

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
    crate::telemetry::metrics::placement_attempt(started.elapsed());
    let latency_ms = started.elapsed().as_millis() as u64;
    match outcome {
        PlacementOutcome::Acknowledged { exchange_order_id } => {
            match ports
                .store
                .record_placed(order_id, &exchange_order_id)
                .await
            {
                Ok(Some(_)) => {
                    crate::telemetry::metrics::order_placed();
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
                    crate::telemetry::metrics::order_rejected();
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
    use aws_lambda_events::sqs::SqsMessage;

    use super::*;
    use crate::domain::{Order, OrderStatus};
    use crate::fakes::{
        FakeExchange, FakeOrderStore, FakeRetries, StoreOp, client, market_order, placement_record,
        raw_record, sqs_event,
    };

    const LEASE: Duration = Duration::from_secs(30);
    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    /// The placer with its ports on fakes.
    struct Placer {
        store: FakeOrderStore,
        exchange: FakeExchange,
        retries: FakeRetries,
        settings: PlacerSettings,
    }

    impl Placer {
        fn new() -> Self {
            Self {
                store: FakeOrderStore::new(),
                exchange: FakeExchange::new(),
                retries: FakeRetries::new(),
                settings: PlacerSettings {
                    lease: LEASE,
                    concurrency: 4,
                    backoff: BACKOFF,
                },
            }
        }

        fn pending_order(&self) -> Order {
            self.store.seed(&client("acme"), &market_order(10))
        }

        fn status(&self, order: &Order) -> OrderStatus {
            self.store.order(order.id).unwrap().status
        }

        /// Hands one batch to the placer; returns the message ids it asked SQS to redeliver.
        async fn deliver(&self, records: Vec<SqsMessage>) -> Vec<String> {
            let ports = PlacerPorts {
                store: &self.store,
                exchange: &self.exchange,
                retries: &self.retries,
            };
            handle_placement_batch(sqs_event(records), ports, &self.settings)
                .await
                .batch_item_failures
                .into_iter()
                .map(|failure| failure.item_identifier)
                .collect()
        }
    }

    fn transient(error: &str) -> PlacementOutcome {
        PlacementOutcome::Transient {
            error: error.into(),
        }
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

    #[tokio::test]
    async fn a_claimed_order_is_placed_and_its_message_deleted() {
        let placer = Placer::new();
        let order = placer.pending_order();

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let placed = placer.store.order(order.id).unwrap();
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.attempts, 1);
        assert_eq!(
            placed.exchange_order_id,
            Some(FakeExchange::exchange_order_id(order.id))
        );
        assert!(placed.placed_at.is_some());
        assert_eq!(placer.exchange.placements(order.id), 1);
        assert!(placer.retries.scheduled().is_empty());
        let steps: Vec<_> = placer
            .store
            .events_of(order.id)
            .iter()
            .map(|e| e.to)
            .collect();
        assert_eq!(
            steps,
            [
                OrderStatus::Pending,
                OrderStatus::Placing,
                OrderStatus::Placed
            ]
        );
    }

    #[tokio::test]
    async fn duplicate_delivery_places_once() {
        let placer = Placer::new();
        let order = placer.pending_order();

        let first = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        let duplicate = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;

        assert!(first.is_empty());
        assert!(
            duplicate.is_empty(),
            "the duplicate is deleted, not retried"
        );
        assert_eq!(placer.exchange.placements(order.id), 1);
        assert_eq!(placer.status(&order), OrderStatus::Placed);
    }

    #[tokio::test]
    async fn a_rejection_is_final_and_keeps_the_reason() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(
            order.id,
            [PlacementOutcome::Rejected {
                reason: "unknown instrument".into(),
            }],
        );

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty(), "a rejection is never retried");
        let rejected = placer.store.order(order.id).unwrap();
        assert_eq!(rejected.status, OrderStatus::Rejected);
        assert_eq!(rejected.last_error.as_deref(), Some("unknown instrument"));
        assert!(placer.retries.scheduled().is_empty());
    }

    #[tokio::test]
    async fn a_rejection_that_cannot_be_recorded_is_retried() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(
            order.id,
            [PlacementOutcome::Rejected {
                reason: "unknown instrument".into(),
            }],
        );
        placer.store.fail(StoreOp::RecordRejected);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.status(&order), OrderStatus::Placing);
    }

    #[tokio::test]
    async fn a_transient_error_releases_the_order_and_backs_off() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .exchange
            .script_for(order.id, [transient("503 from the exchange")]);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 3)])
            .await;

        assert_eq!(retried, ["m1"]);
        let released = placer.store.order(order.id).unwrap();
        assert_eq!(released.status, OrderStatus::Pending);
        assert_eq!(released.attempts, 1);
        assert_eq!(
            released.last_error.as_deref(),
            Some("503 from the exchange")
        );
        assert_eq!(placer.store.lease_expires_at(order.id), None);
        // Third receive: between half and all of 2 s × 2².
        let delay = placer.retries.delay_for("receipt-m1").unwrap();
        assert!(
            (Duration::from_secs(4)..=Duration::from_secs(8)).contains(&delay),
            "{delay:?}"
        );
    }

    #[tokio::test]
    async fn a_released_order_is_placed_by_the_next_delivery() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("timeout")]);

        placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        assert!(retried.is_empty());
        let placed = placer.store.order(order.id).unwrap();
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.attempts, 2);
        assert_eq!(placer.exchange.placements(order.id), 2);
    }

    #[tokio::test]
    async fn a_transient_error_that_cannot_release_the_order_waits_for_the_lease() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("timeout")]);
        placer.store.fail(StoreOp::ReleaseForRetry);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.status(&order), OrderStatus::Placing);

        // The redelivery finds the lease still held, and after it expired takes the order over.
        placer.store.recover(StoreOp::ReleaseForRetry);
        let early = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;
        assert_eq!(early, ["m1"]);
        placer.store.expire_lease(order.id);
        let late = placer
            .deliver(vec![placement_record("m1", &order, 3)])
            .await;
        assert!(late.is_empty());
        assert_eq!(placer.status(&order), OrderStatus::Placed);
        assert_eq!(placer.exchange.placements(order.id), 2);
    }

    #[tokio::test]
    async fn an_order_leased_by_another_placer_comes_back_after_the_lease() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.exchange.total_placements(), 0);
        let delay = placer.retries.delay_for("receipt-m1").unwrap();
        assert!(delay >= LEASE, "{delay:?}");
        assert_eq!(placer.store.order(order.id).unwrap().attempts, 1);
    }

    #[tokio::test]
    async fn an_order_whose_placer_died_is_taken_over_after_the_lease() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        placer.store.expire_lease(order.id);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        assert!(retried.is_empty());
        let placed = placer.store.order(order.id).unwrap();
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.attempts, 2);
    }

    #[tokio::test]
    async fn a_message_for_an_unknown_order_is_retried_towards_the_dlq() {
        let placer = Placer::new();
        let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(10));

        let retried = placer
            .deliver(vec![placement_record("m1", &ghost, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.exchange.total_placements(), 0);
        assert!(placer.retries.delay_for("receipt-m1").is_some());
    }

    #[tokio::test]
    async fn a_store_outage_retries_without_placing() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.store.set_down(true);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.status(&order), OrderStatus::Pending);
    }

    #[tokio::test]
    async fn placed_but_not_recorded_is_placed_again_under_the_same_id_and_recorded() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.store.fail(StoreOp::RecordPlaced);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        assert_eq!(retried, ["m1"]);
        assert!(placer.retries.delay_for("receipt-m1").unwrap() >= LEASE);
        assert_eq!(placer.status(&order), OrderStatus::Placing);

        placer.store.recover(StoreOp::RecordPlaced);
        placer.store.expire_lease(order.id);
        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        assert!(retried.is_empty());
        // Sent twice with the same client order id: the exchange de-duplicates it.
        assert_eq!(placer.exchange.placements(order.id), 2);
        let placed = placer.store.order(order.id).unwrap();
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(
            placed.exchange_order_id,
            Some(FakeExchange::exchange_order_id(order.id))
        );
    }

    /// An exchange that answers only after the order's lease ran out and the alerter failed it.
    struct SlowerThanTheLease<'a> {
        store: &'a FakeOrderStore,
    }

    #[async_trait::async_trait]
    impl Exchange for SlowerThanTheLease<'_> {
        async fn place(&self, order: &crate::domain::Order) -> PlacementOutcome {
            self.store.expire_lease(order.id);
            self.store
                .mark_failed(order.id, "retries exhausted")
                .await
                .unwrap()
                .expect("an expired lease lets the alerter fail the order");
            PlacementOutcome::Acknowledged {
                exchange_order_id: "EX-late".into(),
            }
        }

        async fn lookup(
            &self,
            _: OrderId,
        ) -> Result<crate::ports::LookupOutcome, crate::ports::LookupError> {
            unreachable!("the placer never looks up")
        }
    }

    #[tokio::test]
    async fn an_acknowledgement_for_an_order_that_moved_on_is_not_recorded() {
        let placer = Placer::new();
        let order = placer.pending_order();
        let exchange = SlowerThanTheLease {
            store: &placer.store,
        };
        let ports = PlacerPorts {
            store: &placer.store,
            exchange: &exchange,
            retries: &placer.retries,
        };

        let response = handle_placement_batch(
            sqs_event(vec![placement_record("m1", &order, 1)]),
            ports,
            &placer.settings,
        )
        .await;

        assert!(response.batch_item_failures.is_empty());
        let order = placer.store.order(order.id).unwrap();
        assert_eq!(order.status, OrderStatus::Failed);
        assert_eq!(order.exchange_order_id, None);
    }

    #[tokio::test]
    async fn poison_bodies_are_retried_towards_the_dlq_without_touching_anything() {
        let placer = Placer::new();
        let future_version = r#"{"version":2,"order_id":"01a21378-2541-7496-b065-b7593dbf64e9","type":"market","side":"buy","instrument":"US0378331005","limit_price":null,"quantity":1}"#;

        let mut retried = placer
            .deliver(vec![
                raw_record("no-body", None, 1),
                raw_record("not-json", Some("{oops"), 1),
                raw_record("not-a-placement", Some(r#"{"order_id":"x"}"#), 1),
                raw_record("future-version", Some(future_version), 1),
            ])
            .await;

        retried.sort();
        assert_eq!(
            retried,
            ["future-version", "no-body", "not-a-placement", "not-json"]
        );
        assert_eq!(placer.store.calls(StoreOp::ClaimForPlacement), 0);
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.retries.scheduled().len(), 4);
    }

    #[tokio::test]
    async fn only_the_failed_records_of_a_batch_come_back() {
        let placer = Placer::new();
        let good = placer.pending_order();
        let flaky = placer.pending_order();
        let rejected = placer.pending_order();
        placer.exchange.script_for(flaky.id, [transient("502")]);
        placer.exchange.script_for(
            rejected.id,
            [PlacementOutcome::Rejected {
                reason: "market closed".into(),
            }],
        );

        let retried = placer
            .deliver(vec![
                placement_record("good", &good, 1),
                placement_record("flaky", &flaky, 1),
                placement_record("rejected", &rejected, 1),
            ])
            .await;

        assert_eq!(retried, ["flaky"]);
        assert_eq!(placer.status(&good), OrderStatus::Placed);
        assert_eq!(placer.status(&flaky), OrderStatus::Pending);
        assert_eq!(placer.status(&rejected), OrderStatus::Rejected);
    }

    #[tokio::test]
    async fn a_retry_is_reported_even_when_its_delay_cannot_be_set() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("503")]);
        placer.retries.set_failing(true);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.status(&order), OrderStatus::Pending);
    }

    #[tokio::test]
    async fn a_record_without_a_receipt_handle_is_retried_without_a_delay() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("503")]);
        let mut record = placement_record("m1", &order, 1);
        record.receipt_handle = None;

        let retried = placer.deliver(vec![record]).await;

        assert_eq!(retried, ["m1"]);
        assert!(placer.retries.scheduled().is_empty());
    }
}
