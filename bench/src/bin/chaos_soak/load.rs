//! The load: one task per order, started at a steady rate; each retries with its idempotency
//! key until it gets a 201 (what a real client does when the API is unreachable), and notes
//! every 5xx it saw on the way. The mix: market buys (the default time in force) and limit sells
//! (30 days), a third of them with an explicit, short `expires_at`, and one in seven canceled
//! by its client shortly after its 201.

use std::time::{Duration, Instant};

use bench::api::{bearer, limit_order, market_order};
use order_shared::auth::ApiKey;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::plan::Plan;
use crate::timeline::Timeline;

/// Instruments the orders use; the last one is refused for good by the simulated exchange.
const INSTRUMENTS: [&str; 5] = [
    "US0378331005",
    "US5949181045",
    "DE000BAY0017",
    "NL0000729408",
    "GB0002634946",
];
pub const REJECTED_INSTRUMENT: &str = "GB0002634946";

/// How long one order keeps being retried before the soak gives up on it (a violation).
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

/// How long a client keeps asking to cancel: a placer holding the order answers 409 with
/// `Retry-After`, and an order whose placer crashed stays `placing` until it is taken over or
/// looked up (after an outage, if that is when); the runner may be down.
const CANCEL_GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// What the load generator saw for one order.
#[derive(Debug, Clone, Default)]
pub struct Posted {
    /// The order's id, once a 201 gave it.
    pub id: Option<String>,
    /// Times (since start) at which a valid request got a 5xx.
    pub server_errors: Vec<Duration>,
    /// Whether the order carried its own `expires_at`.
    pub explicit_expiry: bool,
    /// What its client's `DELETE /orders/{id}` got, for the orders whose client canceled.
    pub cancel: Option<Cancel>,
    /// How long the cancel took from its first request to its final answer.
    pub cancel_took: Duration,
}

/// The final answer to a client's cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// 200: the order as the API returned it has this status (`canceled`, or something is wrong).
    Canceled { status: String },
    /// 202: the order was working at the exchange and the cancel went there; the order as the
    /// API returned it has this status (`pending_cancel`). The exchange's report ends it.
    Requested { status: String },
    /// 409 without `Retry-After`: the order is final; the status the answer names.
    Refused { named_status: String },
    /// 404 for the client's own order.
    NotFound,
    /// 405: this build has no cancel.
    Unsupported,
    /// Still `placing`, or the API unreachable, for five minutes; or an unexpected answer.
    GaveUp { last: String },
}

/// The soak's API client. A response that has not come within 10 s counts as a failed attempt,
/// and the order is tried again.
pub fn client(api_key: &ApiKey) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .default_headers(bearer(&api_key.expose())?)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()?)
}

/// Posts `plan.orders` orders at `plan.rate` per second from time zero, and returns what each
/// one saw once all are accepted or given up.
pub async fn post_orders(
    client: &reqwest::Client,
    api_url: &str,
    plan: &Plan,
    timeline: &Timeline,
) -> anyhow::Result<Vec<Posted>> {
    // Idempotency keys unique to this run.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let start = timeline.at(Duration::ZERO);
    let mut posts = Vec::with_capacity(plan.orders);
    for i in 0..plan.orders {
        let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
        let (client, api_url, run_id) = (client.clone(), api_url.to_owned(), run_id.clone());
        let (explicit_expiry, cancel_after) = (plan.explicit_expiry, plan.cancel_after);
        posts.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let expires_in = has_explicit_expiry(i).then_some(explicit_expiry);
            let key = format!("soak-{run_id}-{i}");
            let mut posted =
                post_until_accepted(&client, &api_url, &key, i, expires_in, start).await;
            if let (Some(id), true) = (posted.id.clone(), is_canceled(i)) {
                tokio::time::sleep(cancel_after).await;
                let began = Instant::now();
                let cancel = cancel_order(&client, &api_url, &id, start, &mut posted).await;
                posted.cancel = Some(cancel);
                posted.cancel_took = began.elapsed();
            }
            posted
        }));
    }
    let mut posted = Vec::with_capacity(plan.orders);
    for post in posts {
        posted.push(post.await?);
    }
    Ok(posted)
}

/// A third of the orders, both market and limit ones, carry their own `expires_at`.
fn has_explicit_expiry(i: usize) -> bool {
    i % 3 == 1
}

/// One order in seven (market and limit ones) is canceled by its client after its 201.
fn is_canceled(i: usize) -> bool {
    i % 7 == 3
}

/// Order `i`: market buys and limit sells in turn, across the instruments, with `expires_at`
/// `expires_in` from now when given.
fn order_body(i: usize, expires_in: Option<Duration>) -> String {
    let instrument = INSTRUMENTS[i % INSTRUMENTS.len()];
    let body = if i % 2 == 0 {
        market_order("buy", instrument, 1 + i % 100)
    } else {
        limit_order(
            "sell",
            instrument,
            &format!("{}.25", 10 + i % 90),
            1 + i % 50,
        )
    };
    match expires_in {
        Some(expires_in) => {
            let at = (OffsetDateTime::now_utc() + expires_in)
                .format(&Rfc3339)
                .expect("a UTC time formats as RFC 3339");
            // The bodies are written out by hand (see `bench::api`): add the field before the
            // closing brace.
            format!(
                r#"{},"expires_at":"{at}"}}"#,
                body.strip_suffix('}').expect("a JSON object")
            )
        }
        None => body,
    }
}

async fn post_until_accepted(
    client: &reqwest::Client,
    api_url: &str,
    key: &str,
    i: usize,
    expires_in: Option<Duration>,
    start: Instant,
) -> Posted {
    // Built once: a retry sends the same body (and so the same `expires_at`) with the same key.
    let body = order_body(i, expires_in);
    let mut posted = Posted {
        explicit_expiry: expires_in.is_some(),
        ..Posted::default()
    };
    let deadline = Instant::now() + GIVE_UP_AFTER;
    while Instant::now() < deadline {
        let response = client
            .post(format!("{api_url}/orders"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.clone())
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 201 => {
                if let Ok(json) = r.json::<serde_json::Value>().await {
                    posted.id = json["id"].as_str().map(str::to_owned);
                }
                return posted;
            }
            Ok(r) if r.status().is_server_error() => posted.server_errors.push(start.elapsed()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                eprintln!("order {i}: unexpected {status}: {text}");
                return posted;
            }
            // Connection refused or reset: the runner is down; a client retries.
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    posted
}

/// `DELETE /orders/{id}` as a client would send it: again after `Retry-After` while a placer
/// holds the order, again after a moment when the API is unreachable or answers 5xx (a cancel
/// is idempotent: an order already canceled answers 200).
async fn cancel_order(
    client: &reqwest::Client,
    api_url: &str,
    id: &str,
    start: Instant,
    posted: &mut Posted,
) -> Cancel {
    let deadline = Instant::now() + CANCEL_GIVE_UP_AFTER;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        let response = client.delete(format!("{api_url}/orders/{id}")).send().await;
        let mut pause = Duration::from_millis(250);
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let json: serde_json::Value = r.json().await.unwrap_or_default();
                match (status, retry_after) {
                    (200, _) => {
                        return Cancel::Canceled {
                            status: json["status"].as_str().unwrap_or("?").to_owned(),
                        };
                    }
                    (202, _) => {
                        return Cancel::Requested {
                            status: json["status"].as_str().unwrap_or("?").to_owned(),
                        };
                    }
                    (409, Some(seconds)) => {
                        last = "409 being placed".into();
                        pause = Duration::from_secs(seconds.max(1));
                    }
                    (409, None) => {
                        let message = json["message"].as_str().unwrap_or_default();
                        // "Order is already `placed` and can no longer be canceled".
                        let named_status = message.split('`').nth(1).unwrap_or("?").to_owned();
                        return Cancel::Refused { named_status };
                    }
                    (404, _) => return Cancel::NotFound,
                    (405, _) => return Cancel::Unsupported,
                    (status, _) if status >= 500 => {
                        posted.server_errors.push(start.elapsed());
                        last = format!("{status}");
                    }
                    (status, _) => {
                        return Cancel::GaveUp {
                            last: format!("{status}: {json}"),
                        };
                    }
                }
            }
            Err(_) => last = "unreachable".into(),
        }
        tokio::time::sleep(pause).await;
    }
    Cancel::GaveUp { last }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_expiry_is_one_more_field_of_the_body() {
        let body: serde_json::Value =
            serde_json::from_str(&order_body(1, Some(Duration::from_secs(20)))).unwrap();
        let at = OffsetDateTime::parse(body["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
        let ahead = at - OffsetDateTime::now_utc();
        assert!(ahead > time::Duration::seconds(15) && ahead <= time::Duration::seconds(20));
        assert_eq!(body["type"], "limit");
        assert!(!order_body(2, None).contains("expires_at"));
    }

    #[test]
    fn the_mix_has_every_kind() {
        let kinds: std::collections::BTreeSet<(bool, bool, bool)> = (0..42)
            .map(|i| (i % 2 == 0, has_explicit_expiry(i), is_canceled(i)))
            .collect();
        // market/limit × explicit expiry or not × canceled or not.
        assert_eq!(kinds.len(), 8);
    }
}
