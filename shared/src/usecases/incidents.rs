//! One alert per incident: when many orders fail or expire for one cause, admins get one message
//! when the incident opens (with the count so far, the cause, the first order ids and what to
//! run) and one when it is over (quiet for the alert window), not one per order. The incidents
//! are recorded by the store in the same statement that fails or expires an order, so this only
//! publishes what has not been told yet: at least once, marked after each publish.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ports::{Alert, AlertPublisher, Incident, IncidentLog, StoreError};
use crate::telemetry::error_chain;

/// What one announcement round published.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Announced {
    pub opened: usize,
    pub over: usize,
    /// Alerts that could not be published; they are tried again next round.
    pub unpublished: usize,
}

/// Publishes the opening alert of every new incident and the closing alert of every incident
/// that has been quiet for `quiet`.
pub async fn announce_incidents(
    log: &dyn IncidentLog,
    alerts: &dyn AlertPublisher,
    quiet: Duration,
) -> Result<Announced, StoreError> {
    let mut announced = Announced::default();
    for incident in log.unannounced().await? {
        if publish(alerts, &opened_alert(&incident), &incident).await {
            log.mark_announced(incident.id).await?;
            announced.opened += 1;
        } else {
            log.release_claim(incident.id).await?;
            announced.unpublished += 1;
        }
    }
    for incident in log.close_quiet(quiet).await? {
        if publish(alerts, &over_alert(&incident), &incident).await {
            log.mark_closed_announced(incident.id).await?;
            announced.over += 1;
        } else {
            log.release_claim(incident.id).await?;
            announced.unpublished += 1;
        }
    }
    Ok(announced)
}

async fn publish(alerts: &dyn AlertPublisher, alert: &Alert, incident: &Incident) -> bool {
    match alerts.publish(alert).await {
        Ok(()) => {
            tracing::warn!(incident = incident.id, kind = %incident.kind, orders = incident.order_count, subject = %alert.subject, "admin alerted");
            true
        }
        Err(error) => {
            tracing::error!(incident = incident.id, error = %error_chain(&error), "incident alert not published; will retry");
            false
        }
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

/// What an admin can run about the incident's orders.
fn what_to_do(incident: &Incident) -> serde_json::Value {
    let since = rfc3339(incident.opened_at);
    match incident.kind.as_str() {
        "failed" => json!({
            "list": format!("orders-admin list-failed --since {since}"),
            "retry": format!("orders-admin retry --all-failed-since {since}"),
        }),
        _ => json!({
            "note": "expired orders are final: their clients see `expired` and may place them again",
            "check": "the exchange's availability and the placer's logs for the sample error",
        }),
    }
}

fn opened_alert(incident: &Incident) -> Alert {
    Alert {
        subject: format!(
            "Incident: orders {} since {} ({} so far)",
            incident.kind,
            rfc3339(incident.opened_at),
            incident.order_count
        ),
        body: json!({
            "kind": "incident_opened",
            "incident_id": incident.id,
            "cause": incident.kind,
            "sample_error": incident.sample_error,
            "order_count": incident.order_count,
            "opened_at": rfc3339(incident.opened_at),
            "last_seen_at": rfc3339(incident.last_seen_at),
            "first_order_ids": incident.first_order_ids,
            "what_to_do": what_to_do(incident),
        })
        .to_string(),
    }
}

fn over_alert(incident: &Incident) -> Alert {
    Alert {
        subject: format!(
            "Incident over: {} orders {} between {} and {}",
            incident.order_count,
            incident.kind,
            rfc3339(incident.opened_at),
            rfc3339(incident.last_seen_at)
        ),
        body: json!({
            "kind": "incident_over",
            "incident_id": incident.id,
            "cause": incident.kind,
            "sample_error": incident.sample_error,
            "order_count": incident.order_count,
            "opened_at": rfc3339(incident.opened_at),
            "last_seen_at": rfc3339(incident.last_seen_at),
            "closed_at": incident.closed_at.map(rfc3339),
            "first_order_ids": incident.first_order_ids,
            "what_to_do": what_to_do(incident),
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::Order;
    use crate::fakes::{FakeAlerts, FakeOrderStore, StoreOp, client, market_order};
    use crate::ports::{OrderLifecycle, RetryPlan};

    const QUIET: Duration = Duration::from_secs(300);
    const LEASE: Duration = Duration::from_secs(30);

    /// An order that failed after a transient error `error`.
    async fn failed(store: &FakeOrderStore, error: &str) -> Order {
        let order = store.seed(&client("acme"), &market_order(1));
        store.claim_for_placement(order.id, LEASE).await.unwrap();
        let soon = RetryPlan {
            park_until: None,
            outcome_unknown: false,
        };
        store
            .release_for_retry(order.id, error, soon)
            .await
            .unwrap();
        store
            .mark_failed(order.id, "gave up")
            .await
            .unwrap()
            .unwrap()
    }

    /// An order whose time ran out while it waited.
    async fn expired(store: &FakeOrderStore) -> Order {
        let order = store.seed_expiring(
            &client("acme"),
            &market_order(1),
            OffsetDateTime::now_utc() - Duration::from_secs(1),
        );
        store.expire(order.id).await.unwrap().unwrap()
    }

    fn body(alert: &Alert) -> Value {
        serde_json::from_str(&alert.body).unwrap()
    }

    fn opened(count: usize) -> Announced {
        Announced {
            opened: count,
            ..Announced::default()
        }
    }

    #[tokio::test]
    async fn an_opened_incident_tells_cause_count_first_orders_sample_error_and_what_to_run() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        let mut orders = Vec::new();
        for error in ["401 from the exchange: key rotated", "503", "503"] {
            orders.push(failed(&store, error).await);
        }

        let announced = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        assert_eq!(announced, opened(1));
        let (incident, marked, _) = store.incidents().remove(0);
        assert!(marked);
        let since = incident.opened_at.format(&Rfc3339).unwrap();
        let published = alerts.published();
        assert_eq!(published.len(), 1);
        assert_eq!(
            published[0].subject,
            format!("Incident: orders failed since {since} (3 so far)")
        );
        let ids: Vec<String> = orders.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(
            body(&published[0]),
            json!({
                "kind": "incident_opened",
                "incident_id": incident.id,
                "cause": "failed",
                "sample_error": "401 from the exchange: key rotated",
                "order_count": 3,
                "opened_at": since,
                "last_seen_at": incident.last_seen_at.format(&Rfc3339).unwrap(),
                "first_order_ids": ids,
                "what_to_do": {
                    "list": format!("orders-admin list-failed --since {since}"),
                    "retry": format!("orders-admin retry --all-failed-since {since}"),
                },
            })
        );
    }

    #[tokio::test]
    async fn the_retry_command_covers_every_order_of_the_incident() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        let orders = [failed(&store, "503").await, failed(&store, "503").await];
        announce_incidents(&store, &alerts, QUIET).await.unwrap();
        let (incident, ..) = store.incidents().remove(0);

        // What `orders-admin retry --all-failed-since <opened_at>` lists.
        let listed = store
            .list_failed(Some(incident.opened_at), 100)
            .await
            .unwrap();

        let listed: Vec<_> = listed.iter().map(|f| f.order.id).collect();
        assert_eq!(listed, orders.map(|o| o.id));
    }

    #[tokio::test]
    async fn an_expired_incident_says_expired_orders_are_final() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        let order = expired(&store).await;

        announce_incidents(&store, &alerts, QUIET).await.unwrap();

        let body = body(&alerts.published()[0]);
        assert_eq!(body["cause"], "expired");
        assert_eq!(body["first_order_ids"], json!([order.id.to_string()]));
        assert_eq!(body["sample_error"], Value::Null);
        assert!(
            body["what_to_do"]["retry"].is_null(),
            "no retry for expired"
        );
        assert!(
            body["what_to_do"]["note"]
                .as_str()
                .unwrap()
                .contains("expired orders are final")
        );
    }

    #[tokio::test]
    async fn failures_and_expiries_are_separate_incidents() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        expired(&store).await;
        failed(&store, "503").await;

        let announced = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        assert_eq!(announced, opened(2));
        let causes: Vec<(Value, Value)> = alerts
            .published()
            .iter()
            .map(|a| {
                let b = body(a);
                (b["cause"].clone(), b["order_count"].clone())
            })
            .collect();
        assert_eq!(
            causes,
            [(json!("failed"), json!(2)), (json!("expired"), json!(1))]
        );
    }

    #[tokio::test]
    async fn an_incident_is_over_after_a_quiet_window_and_told_once() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        announce_incidents(&store, &alerts, QUIET).await.unwrap();
        store.advance_clock(QUIET / 2);
        failed(&store, "503").await;
        store.advance_clock(QUIET / 2 + Duration::from_secs(1));
        let open = announce_incidents(&store, &alerts, QUIET).await.unwrap();
        store.advance_clock(QUIET / 2);

        let over = announce_incidents(&store, &alerts, QUIET).await.unwrap();
        let after = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        assert_eq!(open, Announced::default(), "a failure inside the window");
        assert_eq!(
            over,
            Announced {
                over: 1,
                ..Announced::default()
            }
        );
        assert_eq!(after, Announced::default());
        let (incident, _, closed_marked) = store.incidents().remove(0);
        assert!(closed_marked);
        let published = alerts.published();
        assert_eq!(published.len(), 2);
        let (from, to) = (
            incident.opened_at.format(&Rfc3339).unwrap(),
            incident.last_seen_at.format(&Rfc3339).unwrap(),
        );
        assert_eq!(
            published[1].subject,
            format!("Incident over: 2 orders failed between {from} and {to}")
        );
        let body = body(&published[1]);
        assert_eq!(body["kind"], "incident_over");
        assert_eq!(body["order_count"], 2);
        assert_eq!(
            body["closed_at"],
            incident.closed_at.unwrap().format(&Rfc3339).unwrap()
        );
        assert!(body["what_to_do"]["retry"].is_string());
    }

    #[tokio::test]
    async fn an_incident_already_quiet_when_first_told_is_opened_then_over_in_one_round() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        store.advance_clock(QUIET + Duration::from_secs(1));

        let announced = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        assert_eq!(
            announced,
            Announced {
                opened: 1,
                over: 1,
                unpublished: 0
            }
        );
        let kinds: Vec<Value> = alerts
            .published()
            .iter()
            .map(|a| body(a)["kind"].clone())
            .collect();
        assert_eq!(kinds, [json!("incident_opened"), json!("incident_over")]);
    }

    #[tokio::test]
    async fn an_unpublished_opening_is_not_marked_and_is_tried_again_before_any_end() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        alerts.set_failing(true);

        let failing = announce_incidents(&store, &alerts, QUIET).await.unwrap();
        store.advance_clock(QUIET + Duration::from_secs(1));
        let still_failing = announce_incidents(&store, &alerts, QUIET).await.unwrap();
        alerts.set_failing(false);
        let next = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        let unpublished = Announced {
            unpublished: 1,
            ..Announced::default()
        };
        assert_eq!(failing, unpublished);
        assert_eq!(
            still_failing, unpublished,
            "never over before it was opened"
        );
        assert_eq!(
            next,
            Announced {
                opened: 1,
                over: 1,
                unpublished: 0
            }
        );
        assert_eq!(alerts.attempts(), 4);
        assert_eq!(alerts.published().len(), 2);
    }

    #[tokio::test]
    async fn an_unpublished_end_is_tried_again_next_round() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        announce_incidents(&store, &alerts, QUIET).await.unwrap();
        store.advance_clock(QUIET + Duration::from_secs(1));
        alerts.set_failing(true);

        let failing = announce_incidents(&store, &alerts, QUIET).await.unwrap();
        assert_eq!(failing.unpublished, 1);
        assert!(!store.incidents()[0].2, "not marked");
        alerts.set_failing(false);
        let next = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        assert_eq!(next.over, 1);
        assert!(store.incidents()[0].2);
    }

    #[tokio::test]
    async fn two_announcers_at_once_publish_an_incident_once() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;

        // The alerter's batch and the sweeper's run, at the same moment.
        let (a, b) = tokio::join!(
            announce_incidents(&store, &alerts, QUIET),
            announce_incidents(&store, &alerts, QUIET)
        );

        assert_eq!(a.unwrap().opened + b.unwrap().opened, 1);
        assert_eq!(alerts.published().len(), 1);
    }

    #[tokio::test]
    async fn an_alert_published_but_not_marked_is_published_again() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        store.fail(StoreOp::MarkIncident);

        let result = announce_incidents(&store, &alerts, QUIET).await;

        assert!(result.is_err());
        assert_eq!(alerts.published().len(), 1);
        assert!(!store.incidents()[0].1);
        store.recover(StoreOp::MarkIncident);
        // Held by the announcer that published it until its claim runs out (it may still be
        // about to mark it); then anyone publishes it again.
        assert_eq!(
            announce_incidents(&store, &alerts, QUIET).await.unwrap(),
            Announced::default()
        );
        store.advance_clock(Duration::from_secs(31));
        let again = announce_incidents(&store, &alerts, QUIET).await.unwrap();
        assert_eq!(
            again,
            opened(1),
            "at least once: told twice, never zero times"
        );
        assert_eq!(alerts.published().len(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_incident_log_is_an_error_and_publishes_nothing() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        failed(&store, "503").await;
        store.fail(StoreOp::Incidents);

        let result = announce_incidents(&store, &alerts, QUIET).await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(alerts.attempts(), 0);
    }

    #[tokio::test]
    async fn nothing_to_tell_publishes_nothing() {
        let (store, alerts) = (FakeOrderStore::new(), FakeAlerts::new());
        store.seed(&client("acme"), &market_order(1));

        let announced = announce_incidents(&store, &alerts, QUIET).await.unwrap();

        assert_eq!(announced, Announced::default());
        assert_eq!(alerts.attempts(), 0);
    }
}
