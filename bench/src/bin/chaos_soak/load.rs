//! The load: one task per order, started at a steady rate; each retries with its idempotency
//! key until it gets a 201 (what a real client does when the API is unreachable), and notes
//! every 5xx it saw on the way.

use std::time::{Duration, Instant};

use bench::api::{bearer, limit_order, market_order};
use order_shared::auth::ApiKey;

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

/// What the load generator saw for one order.
#[derive(Debug, Clone, Default)]
pub struct Posted {
    /// The order's id, once a 201 gave it.
    pub id: Option<String>,
    /// Times (since start) at which a valid request got a 5xx.
    pub server_errors: Vec<Duration>,
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
        posts.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            post_until_accepted(&client, &api_url, &format!("soak-{run_id}-{i}"), i, start).await
        }));
    }
    let mut posted = Vec::with_capacity(plan.orders);
    for post in posts {
        posted.push(post.await?);
    }
    Ok(posted)
}

/// Order `i`: market buys and limit sells in turn, across the instruments.
fn order_body(i: usize) -> String {
    let instrument = INSTRUMENTS[i % INSTRUMENTS.len()];
    if i % 2 == 0 {
        market_order("buy", instrument, 1 + i % 100)
    } else {
        limit_order(
            "sell",
            instrument,
            &format!("{}.25", 10 + i % 90),
            1 + i % 50,
        )
    }
}

async fn post_until_accepted(
    client: &reqwest::Client,
    api_url: &str,
    key: &str,
    i: usize,
    start: Instant,
) -> Posted {
    let body = order_body(i);
    let mut posted = Posted::default();
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
                eprintln!("order {i}: unexpected {}", r.status());
                return posted;
            }
            // Connection refused or reset: the runner is down; a client retries.
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    posted
}
