//! The placer's handler: one SQS batch from the orders queue, each record placed at most once
//! at the exchange, failures reported per record (partial batch response).
//!
//! An order is retried until its time in force runs out, never for a fixed count: short waits
//! keep the message in SQS (its visibility timeout), long ones park the order in the database
//! (`next_attempt_at`; the message is dropped and the sweeper sends a new one when due), so an
//! order can wait out an outage of hours while the DLQ stays for poison messages and crashing
//! handlers. A breaker shared through the database keeps a failing exchange to a trickle of
//! probes. A timeout after sending leaves the outcome unknown: the order is retried under the
//! same client order id (the exchange de-duplicates) or looked up, and never given up as failed.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use time::OffsetDateTime;
use tracing::Instrument;

use super::sqs_batch::{RecordOutcome, batch_response, receive_count};
use crate::domain::{Order, OrderId, OrderStatus};
use crate::ports::{
    BreakerSettings, CancelRefusal, ClaimOutcome, Exchange, ExchangeBreaker, ExchangeCancelOutcome,
    LookupOutcome, MessageAction, OrderLifecycle, PLACEMENT_MESSAGE_VERSION, Permit,
    PlacementMessage, PlacementOutcome, RetryPlan, RetryScheduler,
};
use crate::telemetry::error_chain;
use crate::usecases::backoff::Backoff;

/// The longest an order parked behind an open breaker waits past the next probe.
const BREAKER_RECHECK_SPREAD: Duration = Duration::from_secs(60);

/// How the placer works; from configuration.
#[derive(Debug, Clone)]
pub struct PlacerSettings {
    /// How long a claim keeps other placers off an order. Shorter than the queue's visibility
    /// timeout, so a redelivered message finds the lease of a crashed placer expired.
    pub lease: Duration,
    /// Records of one batch handled at once (bounded: each holds a DB connection and an
    /// exchange call).
    pub concurrency: usize,
    /// Delay before the n-th attempt of an order (jittered, capped).
    pub backoff: Backoff,
    /// Waits up to this long stay in SQS; longer ones park the order in the database.
    pub short_wait_max: Duration,
    /// From this receive of one message on, every retry parks the order: a message must never
    /// reach the queue's `maxReceiveCount` (and the DLQ) through retries alone.
    pub park_from_receive: u32,
    pub breaker: BreakerSettings,
}

/// The ports the placer needs.
#[derive(Clone, Copy)]
pub struct PlacerPorts<'a> {
    pub store: &'a dyn OrderLifecycle,
    pub exchange: &'a dyn Exchange,
    pub retries: &'a dyn RetryScheduler,
    pub breaker: &'a dyn ExchangeBreaker,
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
            let next = match message.action {
                MessageAction::Place => {
                    place(order_id, receives, ports, settings)
                        .instrument(span.clone())
                        .await
                }
                MessageAction::Cancel => {
                    cancel(order_id, receives, ports, settings)
                        .instrument(span.clone())
                        .await
                }
            };
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
        Next::Retry { reason, delay } => {
            if let Some(handle) = &record.receipt_handle {
                let delay = match delay {
                    Delay::Backoff => settings.backoff.jittered(receives),
                    Delay::AtLeast(at_least) => settings.backoff.jittered(receives).max(at_least),
                    Delay::Exactly(delay) => delay,
                };
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

/// What to do with a record, with the redelivery it needs.
enum Next {
    /// Handled, or parked in the database: SQS may delete the message.
    Done,
    Retry {
        reason: String,
        delay: Delay,
    },
}

/// When a retried message should come back.
enum Delay {
    /// By the receive count's back-off (the store or the message was the problem).
    Backoff,
    /// Not before this (e.g. another placer's lease must expire first).
    AtLeast(Duration),
    /// The order's own back-off, already computed from its attempts.
    Exactly(Duration),
}

impl Next {
    fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            delay: Delay::Backoff,
        }
    }

    fn after_lease(reason: impl Into<String>, lease: Duration) -> Self {
        Self::Retry {
            reason: reason.into(),
            delay: Delay::AtLeast(lease),
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

async fn place(
    order_id: OrderId,
    receives: u32,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> Next {
    // An unreadable breaker must not stop placement: the claim below tells whether the
    // database is there at all.
    let permit = ports
        .breaker
        .permit(&settings.breaker)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(error = %error_chain(&error), "breaker unreadable; calling anyway");
            Permit::Call
        });
    if let Permit::Wait { until } = permit {
        // Spread the parked orders over up to a minute after the next probe, so that they do not
        // all come back at once (each comes back, finds the breaker still open and is parked
        // again without an exchange call), and so that they are sent within about a minute
        // (plus one sweep) of the breaker closing.
        let spread = settings.backoff.max.min(BREAKER_RECHECK_SPREAD);
        let until = until + spread.mul_f64(fastrand::f64());
        match ports.store.defer(order_id, until).await {
            Ok(true) => {
                tracing::info!(%until, "exchange breaker open; order parked");
                return Next::Done;
            }
            // Not pending: the claim below says what it is.
            Ok(false) => {}
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "could not park the order");
                return Next::retry("store unavailable");
            }
        }
    }
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
        Ok(ClaimOutcome::Expired(_)) => {
            crate::telemetry::metrics::order_expired();
            tracing::warn!("order expired before it could be placed; never sent");
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
    if let Permit::Wait { until } = permit {
        // Claimed although the breaker said wait (it was not pending a moment ago): park it.
        return retry_later(
            &order,
            "exchange breaker open",
            Some(until),
            receives,
            ports,
            settings,
        )
        .await;
    }
    if order.is_expired_at(OffsetDateTime::now_utc()) {
        // Only an order whose last attempt's outcome is unknown is claimed past its expiry: it
        // is looked up, never placed anew.
        return confirm_before_expiry(&order, receives, ports, settings).await;
    }
    let started = std::time::Instant::now();
    let outcome = ports.exchange.place(&order).await;
    crate::telemetry::metrics::placement_attempt(started.elapsed());
    let latency_ms = started.elapsed().as_millis() as u64;
    let exchange_up = matches!(
        outcome,
        PlacementOutcome::Acknowledged { .. } | PlacementOutcome::Rejected { .. }
    );
    record_breaker(exchange_up, ports, settings).await;
    match outcome {
        PlacementOutcome::Acknowledged { exchange_order_id } => {
            record_placed(order_id, &exchange_order_id, latency_ms, ports, settings).await
        }
        PlacementOutcome::Rejected { reason } => {
            match ports.store.record_rejected(order_id, &reason).await {
                Ok(Some(_)) => {
                    crate::telemetry::metrics::order_rejected();
                    tracing::info!(%reason, latency_ms, "order rejected by the exchange");
                    Next::Done
                }
                Ok(None) => {
                    tracing::warn!(%reason, "rejected, but the order had moved on");
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
            // An earlier attempt's unknown outcome stays unknown (the order keeps its flag) until
            // a placement or a lookup settles it.
            retry_later(&order, &error, None, receives, ports, settings).await
        }
        PlacementOutcome::Unknown { error } => {
            tracing::warn!(%error, latency_ms, "outcome unknown; retrying under the same id");
            let mut order = order;
            order.outcome_unknown = true;
            let note = format!("outcome unknown, being confirmed with the exchange: {error}");
            retry_later(&order, &note, None, receives, ports, settings).await
        }
    }
}

/// Delivers a client's cancel of a working order to the exchange. Only the request is handled
/// here: the exchange's execution report (`canceled`, or the fill that won) ends the order,
/// through the ingester. The exchange's cancel is idempotent, so a cancel whose answer was lost
/// is simply sent again. While the exchange cannot take it the message comes back with the
/// receive count's back-off; from `park_from_receive` on it is dropped instead (a long outage
/// must not push it into the DLQ), and the sweeper sends the cancel again while the order stays
/// `pending_cancel`.
async fn cancel(
    order_id: OrderId,
    receives: u32,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> Next {
    let order = match ports.store.find_order(order_id).await {
        Ok(Some(order)) => order,
        Ok(None) => {
            tracing::error!("cancel names no known order; it will reach the DLQ");
            return Next::retry("unknown order");
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not read the order to cancel");
            return Next::retry("store unavailable");
        }
    };
    if order.status != OrderStatus::PendingCancel {
        // Answered already (canceled, filled or expired at the exchange): nothing to send.
        tracing::info!(status = %order.status, "cancel no longer needed");
        return Next::Done;
    }
    let outcome = ports.exchange.cancel(order_id).await;
    record_breaker(
        !matches!(outcome, ExchangeCancelOutcome::Transient { .. }),
        ports,
        settings,
    )
    .await;
    match outcome {
        ExchangeCancelOutcome::Accepted { exchange_order_id } => {
            tracing::info!(%exchange_order_id, "cancel accepted by the exchange; its report ends the order");
            Next::Done
        }
        ExchangeCancelOutcome::Refused {
            refusal: CancelRefusal::AlreadyFilled | CancelRefusal::AlreadyExpired,
            reason,
        } => {
            tracing::info!(%reason, "cancel too late; the exchange's fill or expiry ends the order");
            Next::Done
        }
        ExchangeCancelOutcome::Refused { refusal, reason } => {
            // The exchange does not know a placed order, or refuses the request itself: no
            // retry can help. Towards the DLQ, where the alerter tells an admin.
            tracing::error!(?refusal, %reason, "cancel refused by the exchange; it will reach the DLQ");
            Next::retry(format!("cancel refused: {reason}"))
        }
        ExchangeCancelOutcome::Transient { error } if receives >= settings.park_from_receive => {
            tracing::warn!(%error, "cancel not delivered; dropped for the sweeper to send again");
            Next::Done
        }
        ExchangeCancelOutcome::Transient { error } => {
            tracing::warn!(%error, "cancel not delivered; will retry");
            Next::retry(error)
        }
    }
}

async fn record_placed(
    order_id: OrderId,
    exchange_order_id: &str,
    latency_ms: u64,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> Next {
    match ports.store.record_placed(order_id, exchange_order_id).await {
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
            // The exchange has it; the redelivery re-places with the same client order id,
            // which the exchange de-duplicates, and then records it.
            tracing::error!(error = %error_chain(&error), %exchange_order_id, "placed but not recorded");
            Next::after_lease("placed but not recorded", settings.lease)
        }
    }
}

/// An order past its expiry whose last attempt may have reached the exchange: placed if the
/// exchange has it, expired if it does not, kept open (and looked up again) if it cannot say.
async fn confirm_before_expiry(
    order: &Order,
    receives: u32,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> Next {
    let lookup = ports.exchange.lookup(order.id).await;
    record_breaker(lookup.is_ok(), ports, settings).await;
    match lookup {
        Ok(LookupOutcome::Placed { exchange_order_id }) => {
            record_placed(order.id, &exchange_order_id, 0, ports, settings).await
        }
        Ok(LookupOutcome::Unknown) => {
            // Back to `pending` with its outcome settled, then expired; the last exchange error
            // stays in the cause its incident will show.
            let cause = match &order.last_error {
                Some(last) => format!("the exchange does not have the order (last error: {last})"),
                None => "the exchange does not have the order".into(),
            };
            let settled = RetryPlan {
                park_until: None,
                outcome_unknown: false,
            };
            if let Err(error) = ports
                .store
                .release_for_retry(order.id, &cause, settled)
                .await
            {
                // Still ours under the lease: the redelivery after it expires decides again.
                tracing::error!(error = %error_chain(&error), "could not release the order");
                return Next::after_lease("store unavailable", settings.lease);
            }
            match ports.store.expire(order.id).await {
                Ok(Some(_)) => {
                    crate::telemetry::metrics::order_expired();
                    tracing::warn!("expired: the exchange confirmed it never got the order");
                }
                Ok(None) => tracing::info!("not expired here: the order moved on"),
                // Pending, expired and settled: the sweeper's next run expires it.
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "could not expire the order")
                }
            }
            Next::Done
        }
        Err(error) => {
            let note = format!("outcome unknown, being confirmed with the exchange: {error}");
            retry_later(order, &note, None, receives, ports, settings).await
        }
    }
}

/// Releases the order to be tried again after its back-off: through the queue for a short wait,
/// parked in the database for a long one (or not before `not_before`).
async fn retry_later(
    order: &Order,
    error: &str,
    not_before: Option<OffsetDateTime>,
    receives: u32,
    ports: PlacerPorts<'_>,
    settings: &PlacerSettings,
) -> Next {
    let now = OffsetDateTime::now_utc();
    let mut delay = settings.backoff.jittered(order.attempts.max(1) as u32);
    if let Some(not_before) = not_before {
        delay = delay.max((not_before - now).try_into().unwrap_or_default());
    }
    let park = not_before.is_some()
        || delay > settings.short_wait_max
        || receives >= settings.park_from_receive;
    let plan = RetryPlan {
        park_until: park.then(|| now + delay),
        outcome_unknown: order.outcome_unknown,
    };
    if let Err(store_error) = ports.store.release_for_retry(order.id, error, plan).await {
        // The lease expires on its own; the redelivery takes the order over.
        tracing::error!(error = %error_chain(&store_error), "could not release the order");
        return Next::after_lease(error, settings.lease);
    }
    if park {
        crate::telemetry::metrics::order_parked();
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "order parked until its next attempt"
        );
        Next::Done
    } else {
        Next::Retry {
            reason: error.to_owned(),
            delay: Delay::Exactly(delay),
        }
    }
}

async fn record_breaker(exchange_up: bool, ports: PlacerPorts<'_>, settings: &PlacerSettings) {
    if let Err(error) = ports.breaker.record(exchange_up, &settings.breaker).await {
        tracing::warn!(error = %error_chain(&error), "could not update the exchange breaker");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_lambda_events::sqs::SqsMessage;

    use super::*;
    use crate::domain::{Order, OrderStatus};
    use crate::fakes::{
        FakeBreaker, FakeExchange, FakeOrderStore, FakeQueue, FakeRetries, StoreOp, cancel_record,
        client, market_order, placement_record, raw_record, sqs_event,
    };
    use crate::handlers::sweeper::{SweepSettings, sweep_once};
    use crate::ports::{LookupError, OrderStore};

    const LEASE: Duration = Duration::from_secs(30);
    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };
    const SHORT_WAIT_MAX: Duration = Duration::from_secs(30);
    const PARK_FROM_RECEIVE: u32 = 3;
    const BREAKER: BreakerSettings = BreakerSettings {
        failure_threshold: 3,
        probe_interval: Duration::from_secs(5),
    };
    /// A back-off whose every delay (30–60 s) outlasts the sweeper's grace period.
    const SLOW: Backoff = Backoff {
        base: Duration::from_secs(60),
        max: Duration::from_secs(60),
    };
    /// A sweeper that sends parked orders as soon as they are due.
    const SWEEP: SweepSettings = SweepSettings {
        grace: Duration::from_secs(1),
        claim_for: Duration::from_secs(60),
        batch_size: 100,
        alert_window: Duration::from_secs(300),
    };

    /// The placer with its ports on fakes.
    struct Placer {
        store: FakeOrderStore,
        exchange: FakeExchange,
        retries: FakeRetries,
        breaker: FakeBreaker,
        settings: PlacerSettings,
    }

    impl Placer {
        fn new() -> Self {
            Self {
                store: FakeOrderStore::new(),
                exchange: FakeExchange::new(),
                retries: FakeRetries::new(),
                breaker: FakeBreaker::new(),
                settings: PlacerSettings {
                    lease: LEASE,
                    concurrency: 4,
                    backoff: BACKOFF,
                    short_wait_max: SHORT_WAIT_MAX,
                    park_from_receive: PARK_FROM_RECEIVE,
                    breaker: BREAKER,
                },
            }
        }

        /// A `pending` market order that expires in a day.
        fn pending_order(&self) -> Order {
            self.store.seed_expiring(
                &client("acme"),
                &market_order(10),
                OffsetDateTime::now_utc() + Duration::from_secs(86_400),
            )
        }

        /// A `pending` order whose time in force ran out a moment ago.
        fn expired_order(&self) -> Order {
            self.store.seed_expiring(
                &client("acme"),
                &market_order(10),
                OffsetDateTime::now_utc() - Duration::from_secs(1),
            )
        }

        /// A `pending` order whose one attempt timed out after sending (the exchange did not
        /// take it) and whose time in force has run out since: it must be looked up, never
        /// sent again.
        async fn expired_unconfirmed_order(&self) -> Order {
            let order = self.pending_order();
            self.exchange
                .script_for(order.id, [unknown("timeout after sending")]);
            self.deliver(vec![placement_record("m1", &order, 1)]).await;
            let order = self.current(&order);
            assert!(order.outcome_unknown && order.status == OrderStatus::Pending);
            self.store
                .set_expires_at(order.id, OffsetDateTime::now_utc() - Duration::from_secs(1));
            self.current(&order)
        }

        fn current(&self, order: &Order) -> Order {
            self.store.order(order.id).unwrap()
        }

        fn status(&self, order: &Order) -> OrderStatus {
            self.current(order).status
        }

        /// The statuses the audit trail records for the order, in order.
        fn steps(&self, order: &Order) -> Vec<OrderStatus> {
            self.store
                .events_of(order.id)
                .iter()
                .map(|e| e.to)
                .collect()
        }

        fn last_reason(&self, order: &Order) -> String {
            self.store.events_of(order.id).pop().unwrap().reason
        }

        fn ports<'a>(&'a self, exchange: &'a dyn Exchange) -> PlacerPorts<'a> {
            PlacerPorts {
                store: &self.store,
                exchange,
                retries: &self.retries,
                breaker: &self.breaker,
            }
        }

        /// Hands one batch to the placer; returns the message ids it asked SQS to redeliver.
        async fn deliver(&self, records: Vec<SqsMessage>) -> Vec<String> {
            self.deliver_with(&self.exchange, records).await
        }

        async fn deliver_with(
            &self,
            exchange: &dyn Exchange,
            records: Vec<SqsMessage>,
        ) -> Vec<String> {
            handle_placement_batch(sqs_event(records), self.ports(exchange), &self.settings)
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

    fn unknown(error: &str) -> PlacementOutcome {
        PlacementOutcome::Unknown {
            error: error.into(),
        }
    }

    fn secs(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// Asserts `at` lies in `[from + low, to + high]`: a time computed between `from` and `to`
    /// with a delay between `low` and `high`.
    fn assert_between(
        at: OffsetDateTime,
        (from, to): (OffsetDateTime, OffsetDateTime),
        low: Duration,
        high: Duration,
    ) {
        assert!(
            from + low <= at && at <= to + high,
            "{at} not within [{}, {}]",
            from + low,
            to + high
        );
    }

    // --- messages -------------------------------------------------------------------------

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
        assert_eq!(placer.store.calls(StoreOp::Defer), 0);
        assert_eq!(placer.exchange.total_placements(), 0);
        assert!(placer.breaker.records().is_empty());
        // Retried by the receive count's back-off (first receive: 1–2 s), even at the park
        // receive: nothing to park, the DLQ must get them.
        let scheduled = placer.retries.scheduled();
        assert_eq!(scheduled.len(), 4);
        assert!(
            scheduled
                .iter()
                .all(|(_, delay)| (secs(1.0)..secs(2.0)).contains(delay)),
            "{scheduled:?}"
        );
    }

    #[tokio::test]
    async fn a_message_for_an_unknown_order_is_retried_towards_the_dlq() {
        let placer = Placer::new();
        let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(10));

        let retried = placer
            .deliver(vec![placement_record("m1", &ghost, 4)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert_eq!(placer.exchange.total_placements(), 0);
        // Fourth receive: between half and all of 2 s × 2³, not parked.
        let delay = placer.retries.delay_for("receipt-m1").unwrap();
        assert!((secs(8.0)..secs(16.0)).contains(&delay), "{delay:?}");
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
        assert_eq!(placer.exchange.total_placements(), 3);
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
        assert_eq!(placer.retries.scheduled().len(), 1, "it was asked for");
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
        assert_eq!(placer.status(&order), OrderStatus::Pending);
    }

    // --- placement ------------------------------------------------------------------------

    #[tokio::test]
    async fn a_claimed_order_is_placed_and_its_message_deleted() {
        let placer = Placer::new();
        let order = placer.pending_order();

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let placed = placer.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.attempts, 1);
        assert_eq!(
            placed.exchange_order_id,
            Some(FakeExchange::exchange_order_id(order.id))
        );
        assert!(placed.placed_at.is_some());
        assert!(!placed.outcome_unknown);
        assert_eq!(placer.exchange.placements(order.id), 1);
        assert!(placer.retries.scheduled().is_empty());
        assert_eq!(
            placer.steps(&order),
            [
                OrderStatus::Pending,
                OrderStatus::Placing,
                OrderStatus::Placed
            ]
        );
        assert_eq!(placer.breaker.records(), [true], "the exchange answered");
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
    async fn a_canceled_order_is_dropped_without_calling_the_exchange() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .cancel_order(&client("acme"), order.id)
            .await
            .unwrap();

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.status(&order), OrderStatus::Canceled);
        assert_eq!(
            placer.steps(&order),
            [OrderStatus::Pending, OrderStatus::Canceled]
        );
        assert!(placer.retries.scheduled().is_empty());
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
        let rejected = placer.current(&order);
        assert_eq!(rejected.status, OrderStatus::Rejected);
        assert_eq!(rejected.last_error.as_deref(), Some("unknown instrument"));
        assert_eq!(
            placer.last_reason(&order),
            "rejected by the exchange: unknown instrument"
        );
        assert!(placer.retries.scheduled().is_empty());
        assert_eq!(
            placer.breaker.records(),
            [true],
            "a business refusal is an exchange that works"
        );
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
        assert!(placer.retries.delay_for("receipt-m1").is_some());
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
        let placed = placer.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.attempts, 2);
        assert_eq!(placer.exchange.placements(order.id), 2);
        assert_eq!(placer.breaker.records(), [false, true]);
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
        assert!(placer.breaker.records().is_empty());
        placer.store.set_down(false);
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
        let placed = placer.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(
            placed.exchange_order_id,
            Some(FakeExchange::exchange_order_id(order.id))
        );
    }

    /// An exchange that answers only after the order's lease ran out and the alerter failed it.
    struct MovesOnDuringTheCall<'a> {
        store: &'a FakeOrderStore,
        answer: PlacementOutcome,
    }

    #[async_trait::async_trait]
    impl Exchange for MovesOnDuringTheCall<'_> {
        async fn place(&self, order: &Order) -> PlacementOutcome {
            self.store.expire_lease(order.id);
            self.store
                .mark_failed(order.id, "its message reached the DLQ")
                .await
                .unwrap()
                .expect("an expired lease lets the alerter fail the order");
            self.answer.clone()
        }

        async fn lookup(&self, _: OrderId) -> Result<LookupOutcome, LookupError> {
            unreachable!("a live order is never looked up by the placer")
        }

        async fn cancel(&self, _: OrderId) -> crate::ports::ExchangeCancelOutcome {
            unreachable!("the placer never cancels")
        }
    }

    #[tokio::test]
    async fn an_acknowledgement_for_an_order_that_moved_on_is_not_recorded() {
        let placer = Placer::new();
        let order = placer.pending_order();
        let exchange = MovesOnDuringTheCall {
            store: &placer.store,
            answer: PlacementOutcome::Acknowledged {
                exchange_order_id: "EX-late".into(),
            },
        };

        let retried = placer
            .deliver_with(&exchange, vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let order = placer.current(&order);
        assert_eq!(order.status, OrderStatus::Failed);
        assert_eq!(order.exchange_order_id, None);
    }

    #[tokio::test]
    async fn a_rejection_for_an_order_that_moved_on_is_not_recorded() {
        let placer = Placer::new();
        let order = placer.pending_order();
        let exchange = MovesOnDuringTheCall {
            store: &placer.store,
            answer: PlacementOutcome::Rejected {
                reason: "market closed".into(),
            },
        };

        let retried = placer
            .deliver_with(&exchange, vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let order = placer.current(&order);
        assert_eq!(order.status, OrderStatus::Failed);
        assert_eq!(
            order.last_error.as_deref(),
            Some("its message reached the DLQ")
        );
    }

    // --- leases ---------------------------------------------------------------------------

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
        assert_eq!(placer.current(&order).attempts, 1);
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
        let placed = placer.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.attempts, 2);
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
        assert!(placer.retries.delay_for("receipt-m1").unwrap() >= LEASE);
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

    // --- retries until expiry: short waits in SQS, long ones parked -----------------------

    #[tokio::test]
    async fn a_transient_error_with_a_short_back_off_keeps_the_message_for_the_orders_delay() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.store.mark_enqueued(&order).await.unwrap();
        placer
            .exchange
            .script_for(order.id, [transient("503 from the exchange")]);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        assert_eq!(retried, ["m1"]);
        let released = placer.current(&order);
        assert_eq!(released.status, OrderStatus::Pending);
        assert_eq!(released.attempts, 1);
        assert_eq!(
            released.last_error.as_deref(),
            Some("503 from the exchange")
        );
        assert_eq!(released.next_attempt_at, None, "not parked");
        assert!(!released.outcome_unknown);
        assert!(placer.store.is_enqueued(order.id), "its message lives on");
        assert_eq!(placer.store.lease_expires_at(order.id), None);
        assert_eq!(
            placer.last_reason(&order),
            "transient exchange error: 503 from the exchange"
        );
        // The order's first retry (1–2 s), not the second receive's (2–4 s).
        let delay = placer.retries.delay_for("receipt-m1").unwrap();
        assert!((secs(1.0)..secs(2.0)).contains(&delay), "{delay:?}");
        assert_eq!(placer.breaker.records(), [false]);
    }

    #[tokio::test]
    async fn retry_delays_grow_with_the_orders_attempts() {
        let mut placer = Placer::new();
        // Four failures in a row would open the breaker; this is about the back-off alone.
        placer.settings.breaker.failure_threshold = 100;
        let order = placer.pending_order();
        placer
            .exchange
            .script_for(order.id, (0..4).map(|_| transient("503")));

        let mut delays = Vec::new();
        for (attempt, message) in ["m1", "m2", "m3", "m4"].into_iter().enumerate() {
            // Each a fresh message (first receive), as after a sweep.
            let retried = placer
                .deliver(vec![placement_record(message, &order, 1)])
                .await;
            assert_eq!(retried, [message], "attempt {}", attempt + 1);
            delays.push(
                placer
                    .retries
                    .delay_for(&format!("receipt-{message}"))
                    .unwrap(),
            );
        }

        for (n, delay) in delays.iter().enumerate() {
            let ceiling = 2.0 * f64::from(1u32 << n);
            assert!(
                (secs(ceiling / 2.0)..secs(ceiling)).contains(delay),
                "attempt {}: {delay:?}",
                n + 1
            );
        }
        assert_eq!(placer.current(&order).attempts, 4);
        assert_eq!(placer.status(&order), OrderStatus::Pending);
    }

    #[tokio::test]
    async fn a_transient_error_with_a_long_back_off_parks_the_order_and_deletes_the_message() {
        let mut placer = Placer::new();
        placer.settings.short_wait_max = Duration::from_millis(500);
        let order = placer.pending_order();
        placer.store.mark_enqueued(&order).await.unwrap();
        placer.exchange.script_for(order.id, [transient("503")]);

        let before = OffsetDateTime::now_utc();
        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        let after = OffsetDateTime::now_utc();

        assert!(retried.is_empty(), "parked: the message goes");
        assert!(placer.retries.scheduled().is_empty());
        let parked = placer.current(&order);
        assert_eq!(parked.status, OrderStatus::Pending);
        assert_eq!(parked.last_error.as_deref(), Some("503"));
        let until = parked
            .next_attempt_at
            .expect("parked until its next attempt");
        assert_between(until, (before, after), secs(1.0), secs(2.0));
        assert!(!placer.store.is_enqueued(order.id), "the sweeper sends it");
        assert_eq!(placer.store.parked_count().await.unwrap(), 1);
        assert_eq!(
            placer.last_reason(&order),
            format!("transient exchange error, parked until {until}: 503")
        );
        assert!(placer.store.incidents().is_empty(), "nothing failed");
    }

    #[tokio::test]
    async fn from_the_park_receive_on_even_a_short_wait_parks_the_order() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("503")]);

        let before = OffsetDateTime::now_utc();
        let retried = placer
            .deliver(vec![placement_record("m1", &order, PARK_FROM_RECEIVE)])
            .await;
        let after = OffsetDateTime::now_utc();

        assert!(retried.is_empty(), "never retried into the DLQ");
        assert!(placer.retries.scheduled().is_empty());
        let parked = placer.current(&order);
        assert_eq!(parked.status, OrderStatus::Pending);
        let until = parked.next_attempt_at.expect("parked");
        assert_between(until, (before, after), secs(1.0), secs(2.0));
    }

    #[tokio::test]
    async fn a_parked_order_is_sent_again_by_the_sweeper_when_due_and_placed() {
        let mut placer = Placer::new();
        placer.settings.backoff = SLOW;
        let queue = FakeQueue::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("503")]);
        placer
            .deliver(vec![placement_record("m1", &order, PARK_FROM_RECEIVE)])
            .await;

        placer.store.advance_clock(SWEEP.grace * 2);
        let early = sweep_once(&placer.store, &queue, &SWEEP).await.unwrap();
        assert_eq!(early.claimed, 0, "not due yet");
        placer.store.advance_clock(SLOW.max);
        let due = sweep_once(&placer.store, &queue, &SWEEP).await.unwrap();
        assert_eq!(due.enqueued, 1);
        assert_eq!(queue.sent_ids(), [order.id]);

        let retried = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;
        assert!(retried.is_empty());
        assert_eq!(placer.status(&order), OrderStatus::Placed);
        assert_eq!(placer.exchange.placements(order.id), 2);
    }

    // --- time in force --------------------------------------------------------------------

    #[tokio::test]
    async fn an_expired_order_is_never_sent() {
        let placer = Placer::new();
        let order = placer.expired_order();

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.exchange.total_lookups(), 0);
        let expired = placer.current(&order);
        assert_eq!(expired.status, OrderStatus::Expired);
        assert_eq!(expired.attempts, 0);
        assert_eq!(
            placer.steps(&order),
            [OrderStatus::Pending, OrderStatus::Expired]
        );
        assert_eq!(
            placer.last_reason(&order),
            "its time in force ran out before it could be placed"
        );
        let incidents = placer.store.incidents();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].0.kind, "expired");
        assert_eq!(incidents[0].0.first_order_ids, [order.id.as_uuid()]);
        assert!(placer.breaker.records().is_empty());
    }

    #[tokio::test]
    async fn an_order_whose_time_runs_out_between_retries_is_not_sent_again() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(order.id, [transient("503")]);
        placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        placer
            .store
            .set_expires_at(order.id, OffsetDateTime::now_utc() - Duration::from_secs(1));

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(
            placer.exchange.placements(order.id),
            1,
            "only before expiry"
        );
        assert_eq!(placer.status(&order), OrderStatus::Expired);
        assert_eq!(
            placer.current(&order).last_error.as_deref(),
            Some("503"),
            "the cause stays visible"
        );
    }

    #[tokio::test]
    async fn an_order_left_placing_by_a_crashed_placer_past_its_time_is_looked_up_not_resent() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        placer.store.expire_lease(order.id);
        placer
            .store
            .set_expires_at(order.id, OffsetDateTime::now_utc() - Duration::from_secs(1));

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        // The crashed attempt may have reached the exchange: the takeover asks, never sends.
        assert!(retried.is_empty());
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.exchange.lookups(order.id), 1);
        assert_eq!(placer.status(&order), OrderStatus::Expired);
    }

    // --- unknown outcomes -----------------------------------------------------------------

    #[tokio::test]
    async fn an_unknown_outcome_releases_the_order_as_maybe_placed_and_never_fails_it() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .exchange
            .script_for(order.id, [unknown("timeout after sending")]);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"], "retried under the same id");
        let open = placer.current(&order);
        assert_eq!(open.status, OrderStatus::Pending);
        assert!(open.outcome_unknown);
        assert_eq!(
            open.last_error.as_deref(),
            Some("outcome unknown, being confirmed with the exchange: timeout after sending")
        );
        assert_eq!(open.next_attempt_at, None);
        assert!(
            placer.last_reason(&order).starts_with("outcome unknown: "),
            "{}",
            placer.last_reason(&order)
        );
        let delay = placer.retries.delay_for("receipt-m1").unwrap();
        assert!((secs(1.0)..secs(2.0)).contains(&delay), "{delay:?}");
        assert_eq!(
            placer.breaker.records(),
            [false],
            "no answer: exchange down"
        );
        assert!(placer.store.incidents().is_empty());
    }

    /// The exchange takes every placement, but the answers to the first `lost` never arrive
    /// (a timeout after sending).
    struct AnswerLost<'a> {
        exchange: &'a FakeExchange,
        lost: AtomicUsize,
        client_order_ids: std::sync::Mutex<Vec<OrderId>>,
    }

    impl<'a> AnswerLost<'a> {
        fn new(exchange: &'a FakeExchange, lost: usize) -> Self {
            Self {
                exchange,
                lost: AtomicUsize::new(lost),
                client_order_ids: Default::default(),
            }
        }
    }

    #[async_trait::async_trait]
    impl Exchange for AnswerLost<'_> {
        async fn place(&self, order: &Order) -> PlacementOutcome {
            self.client_order_ids.lock().unwrap().push(order.id);
            let answer = self.exchange.place(order).await;
            let lost = self
                .lost
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if lost {
                unknown("timed out after sending")
            } else {
                answer
            }
        }

        async fn lookup(&self, id: OrderId) -> Result<LookupOutcome, LookupError> {
            self.exchange.lookup(id).await
        }

        async fn cancel(&self, id: OrderId) -> crate::ports::ExchangeCancelOutcome {
            self.exchange.cancel(id).await
        }
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_resent_under_the_same_id_and_the_exchange_deduplicates() {
        let placer = Placer::new();
        let order = placer.pending_order();
        let exchange = AnswerLost::new(&placer.exchange, 1);

        let first = placer
            .deliver_with(&exchange, vec![placement_record("m1", &order, 1)])
            .await;
        let second = placer
            .deliver_with(&exchange, vec![placement_record("m1", &order, 2)])
            .await;

        assert_eq!(first, ["m1"]);
        assert!(second.is_empty());
        assert_eq!(
            *exchange.client_order_ids.lock().unwrap(),
            [order.id, order.id],
            "never a new client order id"
        );
        let placed = placer.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert!(!placed.outcome_unknown, "settled");
        let held = FakeExchange::exchange_order_id(order.id);
        assert_eq!(placed.exchange_order_id.as_deref(), Some(held.as_str()));
        // The exchange holds the one order it took first; the second send found it.
        assert_eq!(
            placer.exchange.lookup(order.id).await.unwrap(),
            LookupOutcome::Placed {
                exchange_order_id: held
            }
        );
        let placements = placer
            .steps(&order)
            .into_iter()
            .filter(|s| *s == OrderStatus::Placed)
            .count();
        assert_eq!(placements, 1);
    }

    #[tokio::test]
    async fn an_unknown_outcome_stays_flagged_through_later_transient_errors() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.exchange.script_for(
            order.id,
            [unknown("timeout after sending"), transient("503")],
        );

        placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        let retried = placer
            .deliver(vec![placement_record("m1", &order, 2)])
            .await;

        assert_eq!(retried, ["m1"]);
        let open = placer.current(&order);
        assert_eq!(open.status, OrderStatus::Pending);
        assert!(
            open.outcome_unknown,
            "only a placement or a lookup settles it"
        );
        assert_eq!(placer.last_reason(&order), "outcome unknown: 503");
    }

    #[tokio::test]
    async fn an_unknown_outcome_at_the_park_receive_parks_the_order_still_flagged() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .exchange
            .script_for(order.id, [unknown("connection reset")]);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, PARK_FROM_RECEIVE)])
            .await;

        assert!(retried.is_empty());
        let parked = placer.current(&order);
        assert_eq!(parked.status, OrderStatus::Pending);
        assert!(parked.outcome_unknown);
        assert!(parked.next_attempt_at.is_some());
        assert!(
            placer
                .last_reason(&order)
                .starts_with("outcome unknown, parked until ")
        );
    }

    #[tokio::test]
    async fn an_expired_order_with_an_unknown_outcome_found_at_the_exchange_is_placed() {
        let placer = Placer::new();
        let order = placer.expired_unconfirmed_order().await;
        placer.exchange.set_lookup(
            order.id,
            LookupOutcome::Placed {
                exchange_order_id: "EX-9".into(),
            },
        );

        let retried = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let placed = placer.current(&order);
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.exchange_order_id.as_deref(), Some("EX-9"));
        assert!(!placed.outcome_unknown);
        assert_eq!(
            placer.exchange.placements(order.id),
            1,
            "looked up, not sent"
        );
        assert_eq!(placer.exchange.lookups(order.id), 1);
        assert_eq!(placer.breaker.records(), [false, true]);
        assert!(placer.store.incidents().is_empty());
    }

    #[tokio::test]
    async fn an_expired_order_the_exchange_does_not_have_ends_expired_without_being_sent() {
        let placer = Placer::new();
        let order = placer.expired_unconfirmed_order().await;

        let retried = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let expired = placer.current(&order);
        assert_eq!(expired.status, OrderStatus::Expired);
        assert!(!expired.outcome_unknown);
        assert_eq!(
            placer.exchange.placements(order.id),
            1,
            "never after expiry"
        );
        assert_eq!(placer.exchange.lookups(order.id), 1);
        let events = placer.store.events_of(order.id);
        let tail: Vec<(OrderStatus, &str)> = events[events.len() - 3..]
            .iter()
            .map(|e| (e.to, e.reason.as_str()))
            .collect();
        assert_eq!(
            tail,
            [
                (OrderStatus::Placing, "claimed for placement"),
                (
                    OrderStatus::Pending,
                    "transient exchange error: the exchange does not have the order (last error: \
                     outcome unknown, being confirmed with the exchange: timeout after sending)"
                ),
                (
                    OrderStatus::Expired,
                    "its time in force ran out before it could be placed"
                ),
            ]
        );
        let incidents = placer.store.incidents();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].0.kind, "expired");
        assert_eq!(placer.breaker.records(), [false, true]);
    }

    #[tokio::test]
    async fn a_failed_lookup_of_an_expired_order_keeps_it_open_and_unconfirmed() {
        let placer = Placer::new();
        let order = placer.expired_unconfirmed_order().await;
        placer.exchange.set_lookups_failing(true);

        let retried = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;

        assert_eq!(retried, ["m2"], "looked up again soon");
        let open = placer.current(&order);
        assert_eq!(open.status, OrderStatus::Pending);
        assert!(open.outcome_unknown);
        let error = open.last_error.unwrap();
        assert!(
            error.starts_with("outcome unknown, being confirmed with the exchange: ")
                && error.contains("exchange unreachable"),
            "{error}"
        );
        assert_eq!(placer.exchange.placements(order.id), 1);
        // Its second attempt's back-off: 2–4 s.
        let delay = placer.retries.delay_for("receipt-m2").unwrap();
        assert!((secs(2.0)..secs(4.0)).contains(&delay), "{delay:?}");
        assert_eq!(placer.breaker.records(), [false, false]);
        assert!(
            placer.store.incidents().is_empty(),
            "neither failed nor expired"
        );
    }

    #[tokio::test]
    async fn an_expired_order_whose_lookup_fails_is_parked_and_looked_up_again_until_placed() {
        let mut placer = Placer::new();
        let queue = FakeQueue::new();
        let order = placer.expired_unconfirmed_order().await;
        placer.exchange.set_lookups_failing(true);
        placer.settings.backoff = SLOW;

        let retried = placer
            .deliver(vec![placement_record("m2", &order, PARK_FROM_RECEIVE)])
            .await;

        assert!(retried.is_empty());
        let parked = placer.current(&order);
        assert_eq!(parked.status, OrderStatus::Pending);
        assert!(parked.outcome_unknown);
        assert!(parked.next_attempt_at.is_some());
        // The sweeper neither expires it (its outcome is in doubt) nor sends it before it is due.
        placer.store.advance_clock(SWEEP.grace * 2);
        let early = sweep_once(&placer.store, &queue, &SWEEP).await.unwrap();
        assert_eq!((early.expired, early.claimed), (0, 0));
        placer.store.advance_clock(SLOW.max);
        let due = sweep_once(&placer.store, &queue, &SWEEP).await.unwrap();
        assert_eq!((due.expired, due.enqueued), (0, 1));
        assert_eq!(queue.sent_ids(), [order.id]);

        placer.exchange.set_lookups_failing(false);
        placer.exchange.set_lookup(
            order.id,
            LookupOutcome::Placed {
                exchange_order_id: "EX-1".into(),
            },
        );
        let retried = placer
            .deliver(vec![placement_record("m3", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.status(&order), OrderStatus::Placed);
        assert_eq!(placer.exchange.placements(order.id), 1);
        assert_eq!(placer.exchange.lookups(order.id), 2);
    }

    #[tokio::test]
    async fn an_expiry_not_recorded_after_the_lookup_is_left_to_the_sweeper() {
        let placer = Placer::new();
        let queue = FakeQueue::new();
        let order = placer.expired_unconfirmed_order().await;
        placer.store.fail(StoreOp::Expire);

        let retried = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;

        assert!(retried.is_empty());
        let confirmed = placer.current(&order);
        assert_eq!(confirmed.status, OrderStatus::Pending);
        assert!(!confirmed.outcome_unknown, "the lookup settled it");
        let swept = sweep_once(&placer.store, &queue, &SWEEP).await.unwrap();
        assert_eq!((swept.expired, swept.claimed), (1, 0));
        assert_eq!(placer.status(&order), OrderStatus::Expired);
        assert_eq!(placer.exchange.placements(order.id), 1);
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn an_expired_order_whose_release_fails_after_the_lookup_keeps_its_message() {
        let placer = Placer::new();
        let order = placer.expired_unconfirmed_order().await;
        placer.store.fail(StoreOp::ReleaseForRetry);

        let retried = placer
            .deliver(vec![placement_record("m2", &order, 1)])
            .await;

        // The order is still `placing` under this placer's lease: only a redelivery (after the
        // lease) can finish it, as `retry_later` does when its release fails.
        assert_eq!(placer.status(&order), OrderStatus::Placing);
        assert_eq!(retried, ["m2"], "the message must come back");
        assert!(placer.retries.delay_for("receipt-m2").unwrap() >= LEASE);
        placer.store.recover(StoreOp::ReleaseForRetry);
        placer.store.expire_lease(order.id);
        placer
            .deliver(vec![placement_record("m2", &order, 2)])
            .await;
        assert_eq!(placer.status(&order), OrderStatus::Expired);
    }

    // --- the shared breaker ---------------------------------------------------------------

    #[tokio::test]
    async fn an_open_breaker_parks_a_pending_order_without_claiming_it_or_calling_the_exchange() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.store.mark_enqueued(&order).await.unwrap();
        let probe_at = OffsetDateTime::now_utc() + Duration::from_secs(60);
        placer.breaker.force_open(probe_at);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty(), "parked: the message goes");
        assert!(placer.retries.scheduled().is_empty());
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.store.calls(StoreOp::ClaimForPlacement), 0);
        let parked = placer.current(&order);
        assert_eq!(parked.status, OrderStatus::Pending);
        assert_eq!(parked.attempts, 0, "no attempt");
        // Spread after the probe time over the back-off cap (at most a minute).
        assert_between(
            parked.next_attempt_at.unwrap(),
            (probe_at, probe_at),
            Duration::ZERO,
            BACKOFF.max,
        );
        assert!(!placer.store.is_enqueued(order.id), "the sweeper sends it");
        assert_eq!(placer.store.parked_count().await.unwrap(), 1);
        assert_eq!(placer.steps(&order), [OrderStatus::Pending]);
        assert!(placer.breaker.records().is_empty());
        assert_eq!(placer.breaker.probes(), 0);
    }

    #[tokio::test]
    async fn an_open_breaker_claims_a_stale_placing_order_and_parks_it_without_a_call() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        placer.store.expire_lease(order.id);
        let probe_at = OffsetDateTime::now_utc() + Duration::from_secs(60);
        placer.breaker.force_open(probe_at);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.total_placements(), 0);
        let parked = placer.current(&order);
        assert_eq!(parked.status, OrderStatus::Pending);
        assert_eq!(parked.last_error.as_deref(), Some("exchange breaker open"));
        assert!(
            parked.next_attempt_at.unwrap() >= probe_at,
            "not before the probe"
        );
        assert!(
            placer
                .last_reason(&order)
                .ends_with(": exchange breaker open")
        );
        assert!(placer.breaker.records().is_empty());
    }

    #[tokio::test]
    async fn an_open_breaker_drops_the_message_of_a_final_order() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        placer.store.record_placed(order.id, "EX-1").await.unwrap();
        placer
            .breaker
            .force_open(OffsetDateTime::now_utc() + Duration::from_secs(60));

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.status(&order), OrderStatus::Placed);
        assert_eq!(placer.current(&order).next_attempt_at, None);
    }

    #[tokio::test]
    async fn an_open_breaker_leaves_an_order_leased_elsewhere_to_its_placer() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        placer
            .breaker
            .force_open(OffsetDateTime::now_utc() + Duration::from_secs(60));

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        assert!(placer.retries.delay_for("receipt-m1").unwrap() >= LEASE);
        assert_eq!(placer.status(&order), OrderStatus::Placing);
        assert_eq!(placer.exchange.total_placements(), 0);
    }

    #[tokio::test]
    async fn an_order_that_cannot_be_parked_behind_an_open_breaker_is_retried() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .breaker
            .force_open(OffsetDateTime::now_utc() + Duration::from_secs(60));
        placer.store.fail(StoreOp::Defer);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert_eq!(retried, ["m1"]);
        let delay = placer.retries.delay_for("receipt-m1").unwrap();
        assert!((secs(1.0)..secs(2.0)).contains(&delay), "{delay:?}");
        assert_eq!(placer.store.calls(StoreOp::ClaimForPlacement), 0);
        assert_eq!(placer.exchange.total_placements(), 0);
        assert_eq!(placer.current(&order).next_attempt_at, None);
    }

    #[tokio::test]
    async fn a_due_probe_is_sent_and_its_success_closes_the_breaker() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer
            .breaker
            .force_open(OffsetDateTime::now_utc() - Duration::from_secs(1));

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.status(&order), OrderStatus::Placed);
        assert_eq!(placer.breaker.probes(), 1);
        assert!(!placer.breaker.is_open());
        assert_eq!(placer.breaker.records(), [true]);
    }

    #[tokio::test]
    async fn a_failed_probe_keeps_the_breaker_open_and_the_next_order_waits() {
        let placer = Placer::new();
        let probed = placer.pending_order();
        let next = placer.pending_order();
        placer.exchange.script_for(probed.id, [transient("503")]);
        placer
            .breaker
            .force_open(OffsetDateTime::now_utc() - Duration::from_secs(1));

        let probe = placer
            .deliver(vec![placement_record("m1", &probed, 1)])
            .await;
        let waiting = placer.deliver(vec![placement_record("m2", &next, 1)]).await;

        assert_eq!(probe, ["m1"]);
        assert!(waiting.is_empty(), "parked behind the breaker");
        assert!(placer.breaker.is_open());
        assert_eq!(placer.breaker.probes(), 1);
        assert_eq!(placer.exchange.placements(probed.id), 1);
        assert_eq!(placer.exchange.placements(next.id), 0);
        assert!(placer.current(&next).next_attempt_at.is_some());
    }

    #[tokio::test]
    async fn failed_calls_open_the_breaker_after_the_threshold_and_then_orders_are_not_sent() {
        let placer = Placer::new();
        let failing: Vec<Order> = (0..3).map(|_| placer.pending_order()).collect();
        placer.exchange.script([
            transient("503"),
            unknown("timeout after sending"),
            transient("429"),
        ]);
        for (i, order) in failing.iter().enumerate() {
            assert!(!placer.breaker.is_open(), "open after {i} failures");
            placer
                .deliver(vec![placement_record(&format!("m{i}"), order, 1)])
                .await;
        }
        assert!(placer.breaker.is_open());
        assert_eq!(placer.breaker.records(), [false, false, false]);

        let later: Vec<Order> = (0..5).map(|_| placer.pending_order()).collect();
        let records = later
            .iter()
            .enumerate()
            .map(|(i, order)| placement_record(&format!("later{i}"), order, 1))
            .collect();
        let retried = placer.deliver(records).await;

        assert!(retried.is_empty());
        assert_eq!(
            placer.exchange.total_placements(),
            3,
            "only the first three"
        );
        for order in &later {
            let parked = placer.current(order);
            assert_eq!(parked.status, OrderStatus::Pending);
            assert!(parked.next_attempt_at.is_some());
        }
    }

    #[tokio::test]
    async fn an_unreadable_breaker_does_not_stop_placement() {
        let placer = Placer::new();
        let order = placer.pending_order();
        placer.breaker.set_down(true);

        let retried = placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(placer.status(&order), OrderStatus::Placed);
        assert_eq!(placer.exchange.placements(order.id), 1);
        assert_eq!(
            placer.breaker.records(),
            [true],
            "tried, and failed quietly"
        );
    }

    #[tokio::test]
    async fn an_order_parked_behind_the_breaker_is_sent_again_within_a_minute_of_the_probe() {
        let mut placer = Placer::new();
        // A wide spread makes the outcome certain instead of likely.
        placer.settings.backoff.max = Duration::from_secs(86_400);
        let queue = FakeQueue::new();
        let order = placer.pending_order();
        let probe_at = OffsetDateTime::now_utc() + BREAKER.probe_interval;
        placer.breaker.force_open(probe_at);
        placer
            .deliver(vec![placement_record("m1", &order, 1)])
            .await;
        assert!(placer.current(&order).next_attempt_at.is_some());

        // The probe succeeds and closes the breaker; a minute later the sweeper runs (whatever
        // the back-off cap, a breaker-parked order waits at most a minute past the probe).
        placer.breaker.record(true, &BREAKER).await.unwrap();
        placer
            .store
            .advance_clock(BREAKER.probe_interval + Duration::from_secs(61));
        sweep_once(&placer.store, &queue, &SWEEP).await.unwrap();

        assert_eq!(queue.sent_ids(), [order.id]);
    }

    // --- cancels of working orders ----------------------------------------------------------

    impl Placer {
        /// An order placed through the placer and then asked to be canceled by its client.
        async fn pending_cancel_order(&self) -> Order {
            let order = self.pending_order();
            self.deliver(vec![placement_record("p", &order, 1)]).await;
            let outcome = self
                .store
                .cancel_order(&client("acme"), order.id)
                .await
                .unwrap();
            assert!(matches!(
                outcome,
                crate::ports::CancelOutcome::CancelRequested(_)
            ));
            self.current(&order)
        }
    }

    fn cancel_transient(error: &str) -> ExchangeCancelOutcome {
        ExchangeCancelOutcome::Transient {
            error: error.into(),
        }
    }

    #[tokio::test]
    async fn a_cancel_message_sends_the_cancel_once_and_leaves_the_order_to_the_exchanges_report() {
        let placer = Placer::new();
        let order = placer.pending_cancel_order().await;

        let retried = placer.deliver(vec![cancel_record("c1", &order, 1)]).await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.cancels(order.id), 1);
        assert!(placer.exchange.is_canceled(order.id));
        assert_eq!(
            placer.exchange.placements(order.id),
            1,
            "never placed again"
        );
        // The `canceled` report, through the ingester, ends it; the placer only delivers.
        assert_eq!(placer.status(&order), OrderStatus::PendingCancel);
    }

    #[tokio::test]
    async fn a_duplicate_cancel_after_the_exchange_answered_is_dropped_without_a_call() {
        let placer = Placer::new();
        let order = placer.pending_cancel_order().await;
        placer
            .store
            .apply_execution(&crate::fakes::canceled_report(&order, 1, 0));

        let retried = placer.deliver(vec![cancel_record("c1", &order, 2)]).await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.cancels(order.id), 0);
        assert_eq!(placer.status(&order), OrderStatus::Canceled);
    }

    #[tokio::test]
    async fn a_cancel_that_loses_to_the_fill_is_done_and_the_fill_ends_the_order() {
        let placer = Placer::new();
        let order = placer.pending_cancel_order().await;
        placer.exchange.fill(order.id);

        let retried = placer.deliver(vec![cancel_record("c1", &order, 1)]).await;

        assert!(retried.is_empty());
        assert_eq!(placer.exchange.cancels(order.id), 1);
        assert!(!placer.exchange.is_canceled(order.id));
    }

    #[tokio::test]
    async fn a_cancel_the_exchange_cannot_take_now_is_retried_then_left_to_the_sweeper() {
        let placer = Placer::new();
        let order = placer.pending_cancel_order().await;
        placer
            .exchange
            .script_cancel(order.id, [cancel_transient("503"), cancel_transient("503")]);

        let early = placer.deliver(vec![cancel_record("c1", &order, 1)]).await;
        let late = placer
            .deliver(vec![cancel_record("c1", &order, PARK_FROM_RECEIVE)])
            .await;

        assert_eq!(early, ["c1"], "retried with the queue's back-off");
        assert!(
            late.is_empty(),
            "dropped: a long outage must not dead-letter it"
        );
        assert_eq!(placer.exchange.cancels(order.id), 2);
        assert_eq!(placer.status(&order), OrderStatus::PendingCancel);
        // Unanswered for a while: the sweeper sends it again, and then it goes through.
        let queue = FakeQueue::new();
        placer
            .store
            .advance_clock(crate::handlers::sweeper::UNANSWERED_CANCEL_AGE);
        let sent = crate::handlers::sweeper::resend_unanswered_cancels(&placer.store, &queue, 10)
            .await
            .unwrap();
        assert_eq!(sent, 1);
        let resent = queue.sent().pop().unwrap();
        assert_eq!(resent.action, MessageAction::Cancel);
        let retried = placer
            .deliver(vec![raw_record("c2", Some(&resent.to_json()), 1)])
            .await;
        assert!(retried.is_empty());
        assert!(placer.exchange.is_canceled(order.id));
    }

    #[tokio::test]
    async fn a_cancel_the_exchange_refuses_for_an_unknown_order_goes_towards_the_dlq() {
        let placer = Placer::new();
        let order = placer.pending_cancel_order().await;
        placer.exchange.script_cancel(
            order.id,
            [ExchangeCancelOutcome::Refused {
                refusal: CancelRefusal::UnknownOrder,
                reason: "unknown order".into(),
            }],
        );

        let retried = placer.deliver(vec![cancel_record("c1", &order, 1)]).await;

        assert_eq!(retried, ["c1"]);
        assert_eq!(placer.status(&order), OrderStatus::PendingCancel);
    }
}
