//! The alerter's handler: messages the placer could not finish (the DLQ: poison messages,
//! crashing handlers, and a database outage longer than a message's receives — exchange outages
//! never send an order here, they park it). Before anything else it asks the exchange whether
//! the order was placed after all (a timeout may hide a success). An order the exchange does not
//! have ends `expired` if its time has run out; a `pending` one is sent again through the sweeper
//! a few times (`dead_letter_resends`: its message may have died of a database outage, with no
//! attempt made), and only then ends `failed`; one the exchange cannot be asked about stays open
//! and is asked about again. Failed and expired orders are grouped into incidents: admins get one
//! alert per incident, not one per order, while a message that names no order is reported on its
//! own.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use serde_json::json;
use time::OffsetDateTime;

use super::sqs_batch::{RecordOutcome, batch_response, receive_count};
use crate::domain::{OrderId, OrderStatus};
use crate::ports::{
    Alert, AlertPublisher, Exchange, IncidentLog, LookupOutcome, MessageAction, OrderLifecycle,
    PlacementMessage, StoreError,
};
use crate::telemetry::error_chain;
use crate::usecases::incidents::announce_incidents;

/// The ports the alerter needs.
#[derive(Clone, Copy)]
pub struct AlerterPorts<'a> {
    pub store: &'a dyn OrderLifecycle,
    pub incidents: &'a dyn IncidentLog,
    pub exchange: &'a dyn Exchange,
    pub alerts: &'a dyn AlertPublisher,
}

/// How the alerter groups alerts; from configuration.
#[derive(Debug, Clone, Copy)]
pub struct AlerterSettings {
    /// An incident is over once no order failed or expired for this long.
    pub alert_window: Duration,
    /// How many times a dead-lettered `pending` order the exchange does not have is sent again
    /// (by the sweeper) before it is failed (`ALERTER_DEAD_LETTER_RESENDS`).
    pub dead_letter_resends: u32,
}

/// The default of [`AlerterSettings::dead_letter_resends`]: each resend gives the order another
/// round of receives and back-off, so that a database outage of minutes costs no order, while
/// one whose message crashes the placer every time still ends `failed` after four rounds.
pub const DEFAULT_DEAD_LETTER_RESENDS: u32 = 3;

/// Why the alerter failed an order, in its audit trail (and as its `last_error` when no exchange
/// error came before).
pub const FAIL_REASON: &str = "its placement message could not be handled each time it was sent \
                               (a poison message, a crashing placer or a long database outage), \
                               and the exchange does not have the order";

/// The longest raw message body copied into an alert (SNS messages are limited to 256 KiB).
const RAW_BODY_LIMIT: usize = 4 * 1024;

/// Handles one batch of dead letters; a record is reported failed (and retried) when the store
/// could not be read, the exchange could not be asked, or a poison report was not published.
pub async fn handle_dead_letters(
    event: SqsEvent,
    ports: AlerterPorts<'_>,
    settings: &AlerterSettings,
) -> SqsBatchResponse {
    // Two dead letters of one order in one batch are handled one after the other, so the second
    // finds the first one's result.
    let mut seen = std::collections::HashSet::new();
    let (firsts, repeats): (Vec<SqsMessage>, Vec<SqsMessage>) = event
        .records
        .into_iter()
        .partition(|record| seen.insert(order_key(record)));
    let resends = settings.dead_letter_resends;
    let mut outcomes: Vec<(String, RecordOutcome)> = futures::stream::iter(firsts)
        .map(|record| handle_traced(record, ports, resends))
        .buffer_unordered(4)
        .collect()
        .await;
    for record in repeats {
        outcomes.push(handle_traced(record, ports, resends).await);
    }
    // Whatever this batch failed or expired is in an incident by now; tell the admins. What is
    // not published here is published by the next batch or the sweeper's next run.
    if let Err(error) =
        announce_incidents(ports.incidents, ports.alerts, settings.alert_window).await
    {
        tracing::error!(error = %error_chain(&error), "could not announce incidents; the sweeper will");
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

async fn handle_traced(
    record: SqsMessage,
    ports: AlerterPorts<'_>,
    resends: u32,
) -> (String, RecordOutcome) {
    let message_id = record.message_id.clone().unwrap_or_default();
    let span = tracing::info_span!("dead_letter", message_id = %message_id, order_id = tracing::field::Empty);
    // Called as a function: the trait method would shadow `NewOrder::instrument` here.
    let outcome =
        tracing::Instrument::instrument(handle_record(&record, ports, resends), span).await;
    (message_id, outcome)
}

async fn handle_record(
    record: &SqsMessage,
    ports: AlerterPorts<'_>,
    resends: u32,
) -> RecordOutcome {
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
    if message.action == MessageAction::Cancel {
        return report_undelivered_cancel(record, order_id, ports).await;
    }
    match resolve(order_id, ports, resends).await {
        Ok(Resolution::Done) => RecordOutcome::Done,
        Ok(Resolution::UnknownOrder) => {
            publish_raw(record, "the message names no known order", ports).await
        }
        Ok(Resolution::Later(reason)) => {
            tracing::info!(%reason, "deciding later");
            RecordOutcome::Retry(reason.into())
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not resolve the dead letter");
            RecordOutcome::Retry("store unavailable".into())
        }
    }
}

enum Resolution {
    /// Final now (placed by lookup, failed, expired) or before: its incident, if any, tells.
    Done,
    UnknownOrder,
    /// Look again when the dead letter comes back.
    Later(&'static str),
}

async fn resolve(
    order_id: OrderId,
    ports: AlerterPorts<'_>,
    resends: u32,
) -> Result<Resolution, StoreError> {
    let Some(order) = ports.store.find_order(order_id).await? else {
        return Ok(Resolution::UnknownOrder);
    };
    if order.status.is_final() {
        tracing::info!(status = %order.status, "order already final");
        return Ok(Resolution::Done);
    }
    match ports.exchange.lookup(order_id).await {
        Ok(LookupOutcome::Placed { exchange_order_id }) => {
            if ports
                .store
                .record_placed_by_lookup(order_id, &exchange_order_id)
                .await?
                .is_some()
            {
                crate::telemetry::metrics::order_placed();
                tracing::info!(%exchange_order_id, "the exchange has the order: placed");
            }
            return Ok(Resolution::Done);
        }
        Ok(LookupOutcome::Unknown) => {}
        Err(error) => {
            // Maybe placed, and nobody can tell now: never failed on a guess.
            tracing::warn!(%error, "exchange lookup failed; the order stays open");
            return Ok(Resolution::Later("exchange lookup failed"));
        }
    }
    let ended = if order.is_expired_at(OffsetDateTime::now_utc()) {
        let expired = ports.store.expire_after_lookup(order_id).await?;
        if expired.is_some() {
            crate::telemetry::metrics::order_expired();
            tracing::warn!("expired: its time ran out and the exchange does not have it");
        }
        expired
    } else {
        // Its message may have died of a database outage with no attempt made: another round
        // through the sweeper, while the resends last (a placer's order is not `pending`).
        if let Some(resent) = ports
            .store
            .resend_after_dead_letter(order_id, resends)
            .await?
        {
            tracing::warn!(
                resent,
                of = resends,
                "the exchange does not have the order: the sweeper sends it again"
            );
            return Ok(Resolution::Done);
        }
        let failed = ports.store.mark_failed(order_id, FAIL_REASON).await?;
        if let Some(order) = &failed {
            crate::telemetry::metrics::order_failed();
            tracing::warn!(attempts = order.attempts, last_error = ?order.last_error, "order failed");
        }
        failed
    };
    if ended.is_some() {
        return Ok(Resolution::Done);
    }
    // Not ended: a placer holds the lease, or the order moved on meanwhile.
    Ok(match ports.store.find_order(order_id).await? {
        Some(order) if matches!(order.status, OrderStatus::Pending | OrderStatus::Placing) => {
            Resolution::Later("a placer holds the order")
        }
        Some(_) => Resolution::Done,
        None => Resolution::UnknownOrder,
    })
}

/// A client's cancel of a working order that the placer could not deliver (the exchange refused
/// the request itself, or does not know the order): the order is still working at the exchange,
/// `pending_cancel`, and only an admin can sort it out. Nothing to report if the exchange has
/// answered meanwhile (the order moved on).
async fn report_undelivered_cancel(
    record: &SqsMessage,
    order_id: OrderId,
    ports: AlerterPorts<'_>,
) -> RecordOutcome {
    let order = match ports.store.find_order(order_id).await {
        Ok(Some(order)) => order,
        Ok(None) => return publish_raw(record, "the cancel names no known order", ports).await,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not read the order of the dead cancel");
            return RecordOutcome::Retry("store unavailable".into());
        }
    };
    if order.status != OrderStatus::PendingCancel {
        tracing::info!(status = %order.status, "the exchange answered the cancel meanwhile");
        return RecordOutcome::Done;
    }
    let alert = Alert {
        subject: "A client's cancel could not be delivered to the exchange".into(),
        body: json!({
            "kind": "cancel_undelivered",
            "problem": "the exchange refused the cancel request or does not know the order; \
                        the order is still pending_cancel and may still be working there",
            "order_id": order_id.to_string(),
            "client_id": order.client_id.as_str(),
            "exchange_order_id": order.exchange_order_id,
            "message_id": record.message_id,
            "receive_count": receive_count(record),
        })
        .to_string(),
    };
    match ports.alerts.publish(&alert).await {
        Ok(()) => {
            tracing::error!("undelivered cancel reported to the admins");
            RecordOutcome::Done
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "undelivered cancel not published; will retry");
            RecordOutcome::Retry("alert not published".into())
        }
    }
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
    use std::collections::BTreeSet;

    use serde_json::Value;
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::domain::Order;
    use crate::fakes::{
        FakeAlerts, FakeExchange, FakeOrderStore, StoreOp, client, market_order, placement_record,
        raw_record, sqs_event,
    };
    use crate::ports::{LookupError, OrderStore, PlacementOutcome, RetryPlan};

    const LEASE: Duration = Duration::from_secs(30);
    /// With the resends spent at once: most tests here are about what happens after them; the
    /// resends have their own tests, with [`RESENDING`].
    const SETTINGS: AlerterSettings = AlerterSettings {
        alert_window: Duration::from_secs(300),
        dead_letter_resends: 0,
    };
    const RESENDING: AlerterSettings = AlerterSettings {
        dead_letter_resends: DEFAULT_DEAD_LETTER_RESENDS,
        ..SETTINGS
    };
    const SOON: RetryPlan = RetryPlan {
        park_until: None,
        outcome_unknown: false,
    };

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

        fn in_a_day() -> OffsetDateTime {
            OffsetDateTime::now_utc() + Duration::from_secs(86_400)
        }

        /// A `pending` order (expiring in a day) that is not placing yet.
        fn new_order(&self) -> Order {
            self.store
                .seed_expiring(&client("acme"), &market_order(10), Self::in_a_day())
        }

        /// An order whose message reached the DLQ after one attempt hit a transient error:
        /// `pending`, one attempt, the error kept, `plan` as the placer released it.
        async fn dead_lettered(&self, plan: RetryPlan) -> Order {
            let order = self.new_order();
            self.store
                .claim_for_placement(order.id, LEASE)
                .await
                .unwrap();
            self.store
                .release_for_retry(order.id, "503 from the exchange", plan)
                .await
                .unwrap()
                .unwrap()
        }

        /// Like `dead_lettered`, with its time in force run out.
        async fn dead_lettered_expired(&self, plan: RetryPlan) -> Order {
            let order = self.dead_lettered(plan).await;
            self.store
                .set_expires_at(order.id, OffsetDateTime::now_utc() - Duration::from_secs(1));
            self.current(&order)
        }

        /// An order a placer claimed and then died on: `placing` under an expired lease.
        async fn left_placing_by_a_crashed_placer(&self) -> Order {
            let order = self.new_order();
            self.store
                .claim_for_placement(order.id, LEASE)
                .await
                .unwrap();
            self.store.expire_lease(order.id);
            order
        }

        fn current(&self, order: &Order) -> Order {
            self.store.order(order.id).unwrap()
        }

        fn last_reason(&self, order: &Order) -> String {
            self.store.events_of(order.id).pop().unwrap().reason
        }

        /// The published alert bodies of one kind.
        fn alerts_of_kind(&self, kind: &str) -> Vec<Value> {
            self.alerts
                .bodies()
                .into_iter()
                .filter(|body| body["kind"] == kind)
                .collect()
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
            self.deliver_under(&SETTINGS, exchange, records).await
        }

        /// Like `deliver`, with the default resends after a dead letter.
        async fn deliver_resending(&self, records: Vec<SqsMessage>) -> Vec<String> {
            self.deliver_under(&RESENDING, &self.exchange, records)
                .await
        }

        async fn deliver_under(
            &self,
            settings: &AlerterSettings,
            exchange: &dyn Exchange,
            records: Vec<SqsMessage>,
        ) -> Vec<String> {
            let ports = AlerterPorts {
                store: &self.store,
                incidents: &self.store,
                exchange,
                alerts: &self.alerts,
            };
            handle_dead_letters(sqs_event(records), ports, settings)
                .await
                .batch_item_failures
                .into_iter()
                .map(|failure| failure.item_identifier)
                .collect()
        }
    }

    fn ids(values: &Value) -> BTreeSet<String> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn ids_of<'a>(orders: impl IntoIterator<Item = &'a Order>) -> BTreeSet<String> {
        orders.into_iter().map(|o| o.id.to_string()).collect()
    }

    // --- the exchange has it ----------------------------------------------------------------

    #[tokio::test]
    async fn an_order_the_exchange_has_is_recorded_placed_without_an_alert() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
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
        assert_eq!(
            alerter.last_reason(&order),
            "found placed by an exchange lookup after retries ran out"
        );
        assert!(alerter.alerts.published().is_empty());
        assert!(alerter.store.incidents().is_empty());
    }

    #[tokio::test]
    async fn an_expired_order_the_exchange_has_is_placed_not_expired() {
        let alerter = Alerter::new();
        let order = alerter
            .dead_lettered_expired(RetryPlan {
                park_until: None,
                outcome_unknown: true,
            })
            .await;
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
        assert!(!placed.outcome_unknown);
        assert!(alerter.alerts.published().is_empty());
    }

    #[tokio::test]
    async fn a_lookup_result_that_cannot_be_recorded_is_retried() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
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

        async fn cancel(&self, _: OrderId) -> crate::ports::ExchangeCancelOutcome {
            unreachable!("the alerter never cancels")
        }
    }

    #[tokio::test]
    async fn an_order_placed_while_it_was_looked_up_is_not_failed_or_alerted() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
        let exchange = PlacedDuringLookup {
            store: &alerter.store,
        };

        let retried = alerter
            .deliver_with(&exchange, vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Placed);
        assert!(alerter.alerts.published().is_empty());
        assert!(alerter.store.incidents().is_empty());
    }

    // --- the exchange cannot say ------------------------------------------------------------

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_order_open_unalerted_and_asks_again_later() {
        let alerter = Alerter::new();
        let live = alerter.dead_lettered(SOON).await;
        let expired = alerter
            .dead_lettered_expired(RetryPlan {
                park_until: None,
                outcome_unknown: true,
            })
            .await;
        alerter.exchange.set_lookups_failing(true);

        let mut retried = alerter
            .deliver(vec![
                placement_record("d1", &live, 5),
                placement_record("d2", &expired, 5),
            ])
            .await;

        retried.sort();
        assert_eq!(retried, ["d1", "d2"]);
        for order in [&live, &expired] {
            let open = alerter.current(order);
            assert_eq!(open.status, OrderStatus::Pending, "never failed on a guess");
            assert_eq!(alerter.exchange.lookups(order.id), 1);
        }
        assert!(alerter.current(&expired).outcome_unknown);
        assert_eq!(alerter.store.calls(StoreOp::MarkFailed), 0);
        assert_eq!(alerter.store.calls(StoreOp::ExpireAfterLookup), 0);
        assert!(alerter.alerts.published().is_empty());
        assert!(alerter.store.incidents().is_empty());

        // The exchange answers again: the redelivered dead letters settle both, once.
        alerter.exchange.set_lookups_failing(false);
        alerter.exchange.set_lookup(
            live.id,
            LookupOutcome::Placed {
                exchange_order_id: "EX-1".into(),
            },
        );
        let retried = alerter
            .deliver(vec![
                placement_record("d1", &live, 6),
                placement_record("d2", &expired, 6),
            ])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&live).status, OrderStatus::Placed);
        assert_eq!(alerter.current(&expired).status, OrderStatus::Expired);
    }

    // --- the exchange does not have it ------------------------------------------------------

    #[tokio::test]
    async fn a_live_order_the_exchange_does_not_have_is_failed_and_its_incident_announced() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        let failed = alerter.current(&order);
        assert_eq!(failed.status, OrderStatus::Failed);
        // The placer's error is kept; the reason for failing is in the audit trail.
        assert_eq!(failed.last_error.as_deref(), Some("503 from the exchange"));
        assert_eq!(alerter.last_reason(&order), FAIL_REASON);
        assert_eq!(alerter.store.calls(StoreOp::ExpireAfterLookup), 0);

        let alerts = alerter.alerts.published();
        assert_eq!(alerts.len(), 1);
        let incident = &alerter.store.incidents()[0];
        let opened_at = incident.0.opened_at.format(&Rfc3339).unwrap();
        assert!(incident.1, "marked announced");
        assert_eq!(
            alerts[0].subject,
            format!("Incident: orders failed since {opened_at} (1 so far)")
        );
        let body = &alerter.alerts.bodies()[0];
        assert_eq!(body["kind"], "incident_opened");
        assert_eq!(body["cause"], "failed");
        assert_eq!(body["order_count"], 1);
        assert_eq!(
            body["first_order_ids"],
            serde_json::json!([order.id.to_string()])
        );
        assert_eq!(body["sample_error"], "503 from the exchange");
        assert_eq!(
            body["what_to_do"]["retry"],
            format!("orders-admin retry --all-failed-since {opened_at}")
        );
    }

    #[tokio::test]
    async fn an_expired_order_the_exchange_does_not_have_ends_expired_with_its_incident() {
        let alerter = Alerter::new();
        let order = alerter
            .dead_lettered_expired(RetryPlan {
                park_until: None,
                outcome_unknown: true,
            })
            .await;

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        let expired = alerter.current(&order);
        assert_eq!(expired.status, OrderStatus::Expired);
        assert!(!expired.outcome_unknown, "the lookup settled it");
        assert_eq!(
            alerter.last_reason(&order),
            "its time in force ran out and the exchange does not have it"
        );
        assert_eq!(alerter.store.calls(StoreOp::ExpireAfterLookup), 1);
        assert_eq!(alerter.store.calls(StoreOp::MarkFailed), 0);
        let opened = alerter.alerts_of_kind("incident_opened");
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0]["cause"], "expired");
        assert_eq!(opened[0]["first_order_ids"][0], order.id.to_string());
        assert_eq!(alerter.alerts.published().len(), 1);
    }

    #[tokio::test]
    async fn an_order_under_a_valid_lease_is_decided_later() {
        let alerter = Alerter::new();
        let live = alerter.new_order();
        let expired = alerter.new_order();
        for order in [&live, &expired] {
            alerter
                .store
                .claim_for_placement(order.id, LEASE)
                .await
                .unwrap();
        }
        alerter.store.set_expires_at(
            expired.id,
            OffsetDateTime::now_utc() - Duration::from_secs(1),
        );

        let mut retried = alerter
            .deliver(vec![
                placement_record("d1", &live, 5),
                placement_record("d2", &expired, 5),
            ])
            .await;

        retried.sort();
        assert_eq!(retried, ["d1", "d2"]);
        assert_eq!(alerter.current(&live).status, OrderStatus::Placing);
        assert_eq!(alerter.current(&expired).status, OrderStatus::Placing);
        assert!(alerter.alerts.published().is_empty());
    }

    #[tokio::test]
    async fn an_order_whose_lease_expired_is_failed() {
        let alerter = Alerter::new();
        let order = alerter.left_placing_by_a_crashed_placer().await;

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        let failed = alerter.current(&order);
        assert_eq!(failed.status, OrderStatus::Failed);
        assert_eq!(failed.last_error.as_deref(), Some(FAIL_REASON));
        assert_eq!(alerter.store.lease_expires_at(order.id), None);
        assert_eq!(alerter.alerts_of_kind("incident_opened").len(), 1);
    }

    #[tokio::test]
    async fn an_expired_order_left_placing_by_a_crashed_placer_is_looked_up_and_expired() {
        let alerter = Alerter::new();
        let order = alerter.left_placing_by_a_crashed_placer().await;
        alerter
            .store
            .set_expires_at(order.id, OffsetDateTime::now_utc() - Duration::from_secs(1));

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.exchange.lookups(order.id), 1);
        assert_eq!(alerter.current(&order).status, OrderStatus::Expired);
        assert_eq!(alerter.store.lease_expires_at(order.id), None);
        assert_eq!(alerter.alerts_of_kind("incident_opened").len(), 1);
    }

    // --- resends after a dead letter -----------------------------------------------------------

    #[tokio::test]
    async fn a_live_pending_order_the_exchange_does_not_have_is_sent_again_before_it_is_failed() {
        let alerter = Alerter::new();
        // Its message died of a database outage: no attempt reached the exchange.
        let order = alerter.new_order();
        alerter.store.mark_enqueued(&order).await.unwrap();

        for round in 1..=DEFAULT_DEAD_LETTER_RESENDS {
            let retried = alerter
                .deliver_resending(vec![placement_record(&format!("d{round}"), &order, 5)])
                .await;
            assert!(retried.is_empty(), "round {round}");
            let resent = alerter.current(&order);
            assert_eq!(resent.status, OrderStatus::Pending, "round {round}");
            assert!(!alerter.store.is_enqueued(order.id), "the sweeper sends it");
            assert!(alerter.alerts.published().is_empty(), "round {round}");
            // The sweeper's message dies again.
            alerter.store.mark_enqueued(&order).await.unwrap();
        }
        let retried = alerter
            .deliver_resending(vec![placement_record("last", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
        assert_eq!(alerter.last_reason(&order), FAIL_REASON);
        assert_eq!(alerter.alerts_of_kind("incident_opened").len(), 1);
        assert_eq!(alerter.exchange.total_placements(), 0);
    }

    #[tokio::test]
    async fn an_order_left_placing_by_a_crashed_placer_is_failed_without_a_resend() {
        let alerter = Alerter::new();
        let order = alerter.left_placing_by_a_crashed_placer().await;

        let retried = alerter
            .deliver_resending(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
        assert_eq!(alerter.alerts_of_kind("incident_opened").len(), 1);
    }

    #[tokio::test]
    async fn a_resend_that_cannot_be_recorded_is_retried_without_failing_the_order() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
        alerter.store.fail(StoreOp::ResendAfterDeadLetter);

        let retried = alerter
            .deliver_resending(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert_eq!(alerter.current(&order).status, OrderStatus::Pending);
        assert_eq!(alerter.store.calls(StoreOp::MarkFailed), 0);
        assert!(alerter.alerts.published().is_empty());
    }

    #[tokio::test]
    async fn a_failure_that_cannot_be_recorded_is_retried_without_an_alert() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
        alerter.store.fail(StoreOp::MarkFailed);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert_eq!(alerter.current(&order).status, OrderStatus::Pending);
        assert!(alerter.alerts.published().is_empty());
    }

    // --- final orders -----------------------------------------------------------------------

    #[tokio::test]
    async fn final_orders_are_dropped_without_a_lookup_or_an_alert() {
        let alerter = Alerter::new();
        let placed = alerter.new_order();
        let rejected = alerter.new_order();
        let failed = alerter.new_order();
        let expired = alerter.store.seed_expiring(
            &client("acme"),
            &market_order(1),
            OffsetDateTime::now_utc() - Duration::from_secs(1),
        );
        let canceled = alerter.new_order();
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
        alerter
            .store
            .mark_failed(failed.id, "gave up")
            .await
            .unwrap();
        alerter.store.expire_due(10).await.unwrap();
        alerter
            .store
            .cancel_order(&client("acme"), canceled.id)
            .await
            .unwrap();
        // Their incidents were told before.
        announce_incidents(&alerter.store, &alerter.alerts, SETTINGS.alert_window)
            .await
            .unwrap();
        let told = alerter.alerts.published().len();

        let retried = alerter
            .deliver(vec![
                placement_record("d1", &placed, 5),
                placement_record("d2", &rejected, 5),
                placement_record("d3", &failed, 5),
                placement_record("d4", &expired, 5),
                placement_record("d5", &canceled, 5),
            ])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.alerts.published().len(), told, "no new alert");
        assert_eq!(alerter.exchange.total_lookups(), 0);
        let statuses: Vec<OrderStatus> = [&placed, &rejected, &failed, &expired, &canceled]
            .iter()
            .map(|o| alerter.current(o).status)
            .collect();
        assert_eq!(
            statuses,
            [
                OrderStatus::Placed,
                OrderStatus::Rejected,
                OrderStatus::Failed,
                OrderStatus::Expired,
                OrderStatus::Canceled
            ]
        );
    }

    // --- one alert per incident -------------------------------------------------------------

    #[tokio::test]
    async fn many_failures_in_one_batch_send_one_incident_alert() {
        let alerter = Alerter::new();
        let mut orders = Vec::new();
        for _ in 0..6 {
            orders.push(alerter.dead_lettered(SOON).await);
        }
        let records = orders
            .iter()
            .enumerate()
            .map(|(i, order)| placement_record(&format!("d{i}"), order, 5))
            .collect();

        let retried = alerter.deliver(records).await;

        assert!(retried.is_empty());
        assert!(
            orders
                .iter()
                .all(|o| alerter.current(o).status == OrderStatus::Failed)
        );
        let alerts = alerter.alerts.bodies();
        assert_eq!(alerts.len(), 1, "one alert, not one per order");
        assert_eq!(alerts[0]["kind"], "incident_opened");
        assert_eq!(alerts[0]["order_count"], 6);
        assert_eq!(ids(&alerts[0]["first_order_ids"]), ids_of(&orders));
    }

    #[tokio::test]
    async fn later_failures_join_the_announced_incident_and_the_end_is_told_once() {
        let alerter = Alerter::new();
        let first = alerter.dead_lettered(SOON).await;
        alerter
            .deliver(vec![placement_record("d1", &first, 5)])
            .await;
        let mut more = Vec::new();
        for _ in 0..3 {
            more.push(alerter.dead_lettered(SOON).await);
        }
        let records = more
            .iter()
            .enumerate()
            .map(|(i, order)| placement_record(&format!("e{i}"), order, 5))
            .collect();

        alerter.deliver(records).await;

        assert_eq!(alerter.alerts.published().len(), 1, "the incident is open");
        let incidents = alerter.store.incidents();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].0.order_count, 4);

        // Quiet for the alert window: the next batch (here an empty one) tells it is over.
        alerter
            .store
            .advance_clock(SETTINGS.alert_window + Duration::from_secs(1));
        alerter.deliver(vec![]).await;
        alerter.deliver(vec![]).await;

        let over = alerter.alerts_of_kind("incident_over");
        assert_eq!(over.len(), 1);
        assert_eq!(over[0]["order_count"], 4);
        assert_eq!(over[0]["cause"], "failed");
        assert!(over[0]["closed_at"].is_string());
        assert_eq!(alerter.alerts.published().len(), 2);
        assert!(alerter.store.incidents()[0].2, "closing alert marked");
    }

    #[tokio::test]
    async fn duplicate_dead_letters_of_one_order_in_one_batch_are_resolved_once() {
        let alerter = Alerter::new();
        let twice = alerter.dead_lettered(SOON).await;
        let once = alerter.dead_lettered(SOON).await;

        let retried = alerter
            .deliver(vec![
                placement_record("d1", &twice, 5),
                placement_record("d2", &once, 5),
                placement_record("d3", &twice, 5),
                placement_record("d4", &twice, 5),
            ])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.exchange.lookups(twice.id), 1);
        assert_eq!(alerter.exchange.lookups(once.id), 1);
        let failed_events = alerter
            .store
            .events_of(twice.id)
            .iter()
            .filter(|e| e.to == OrderStatus::Failed)
            .count();
        assert_eq!(failed_events, 1);
        let alerts = alerter.alerts.bodies();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["order_count"], 2);
        assert_eq!(ids(&alerts[0]["first_order_ids"]), ids_of([&twice, &once]));
    }

    #[tokio::test]
    async fn an_incident_alert_that_cannot_be_published_is_announced_by_a_later_batch() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
        alerter.alerts.set_failing(true);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(
            retried.is_empty(),
            "the order is settled; its incident waits"
        );
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
        assert_eq!(alerter.alerts.attempts(), 1);
        assert!(alerter.alerts.published().is_empty());
        assert!(!alerter.store.incidents()[0].1, "not marked announced");

        alerter.alerts.set_failing(false);
        alerter.deliver(vec![]).await;
        alerter.deliver(vec![]).await;

        let opened = alerter.alerts_of_kind("incident_opened");
        assert_eq!(opened.len(), 1, "published once it could be, then marked");
        assert_eq!(opened[0]["first_order_ids"][0], order.id.to_string());
        assert!(alerter.store.incidents()[0].1);
    }

    #[tokio::test]
    async fn unreadable_incidents_do_not_fail_the_batch_and_are_announced_later() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
        alerter.store.fail(StoreOp::Incidents);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        assert_eq!(alerter.current(&order).status, OrderStatus::Failed);
        assert!(alerter.alerts.published().is_empty());

        alerter.store.recover(StoreOp::Incidents);
        alerter.deliver(vec![]).await;
        assert_eq!(alerter.alerts_of_kind("incident_opened").len(), 1);
    }

    #[tokio::test]
    async fn a_store_outage_retries_without_looking_up_or_alerting() {
        let alerter = Alerter::new();
        let order = alerter.dead_lettered(SOON).await;
        alerter.store.set_down(true);

        let retried = alerter
            .deliver(vec![placement_record("d1", &order, 5)])
            .await;

        assert_eq!(retried, ["d1"]);
        assert!(alerter.alerts.published().is_empty());
        assert_eq!(alerter.exchange.total_lookups(), 0);
        assert_eq!(alerter.current(&order).status, OrderStatus::Pending);
    }

    // --- poison messages: one alert each ----------------------------------------------------

    #[tokio::test]
    async fn a_poison_message_is_reported_raw() {
        let alerter = Alerter::new();

        let retried = alerter
            .deliver(vec![raw_record("d1", Some("{oops"), 4)])
            .await;

        assert!(retried.is_empty());
        let alerts = alerter.alerts.published();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].subject,
            "Unplaceable message in the orders dead-letter queue"
        );
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
    async fn poison_messages_alert_one_by_one_and_open_no_incident() {
        let alerter = Alerter::new();
        let ghost = FakeOrderStore::new().seed(&client("acme"), &market_order(1));

        let retried = alerter
            .deliver(vec![
                raw_record("d1", Some("{oops"), 4),
                raw_record("d2", None, 4),
                placement_record("d3", &ghost, 4),
            ])
            .await;

        assert!(retried.is_empty());
        let mut ids: Vec<String> = alerter
            .alerts_of_kind("poison_message")
            .iter()
            .map(|b| b["message_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids, ["d1", "d2", "d3"]);
        assert_eq!(alerter.alerts.published().len(), 3);
        assert!(alerter.store.incidents().is_empty());
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
        assert_eq!(alerter.alerts.attempts(), 1);
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
        assert_eq!(alerter.exchange.total_lookups(), 0);
    }

    #[tokio::test]
    async fn a_dead_lettered_cancel_of_a_working_order_tells_an_admin_and_changes_nothing() {
        let alerter = Alerter::new();
        let order = alerter.new_order();
        alerter
            .store
            .claim_for_placement(order.id, LEASE)
            .await
            .unwrap();
        alerter.store.record_placed(order.id, "EX-7").await.unwrap();
        alerter
            .store
            .cancel_order(&client("acme"), order.id)
            .await
            .unwrap();
        let answered = alerter.new_order();

        let retried = alerter
            .deliver(vec![crate::fakes::cancel_record("d1", &order, 5)])
            .await;

        assert!(retried.is_empty());
        let alerts = alerter.alerts.published();
        assert_eq!(alerts.len(), 1);
        let body: Value = serde_json::from_str(&alerts[0].body).unwrap();
        assert_eq!(body["kind"], "cancel_undelivered");
        assert_eq!(body["order_id"], order.id.to_string());
        assert_eq!(body["exchange_order_id"], "EX-7");
        assert_eq!(
            alerter.current(&order).status,
            OrderStatus::PendingCancel,
            "never failed or expired: it may still be working at the exchange"
        );
        assert_eq!(alerter.exchange.lookups(order.id), 0);
        // A cancel whose order moved on meanwhile is not reported.
        let retried = alerter
            .deliver(vec![crate::fakes::cancel_record("d2", &answered, 5)])
            .await;
        assert!(retried.is_empty());
        assert_eq!(alerter.alerts.published().len(), 1);
    }
}
