//! What the system ended with, from the three places that record it: the orders table, the
//! simulated exchange's own count of placements, and the alerts on the soak's alert queue.

use std::collections::HashMap;

use crate::services::System;

pub struct Evidence {
    /// Every stored order's status, by id.
    pub stored: HashMap<String, String>,
    /// The exchange's `/stats`: placements per order and duplicate calls absorbed.
    pub exchange: serde_json::Value,
    /// Alerts received, per order id.
    pub alerts: HashMap<String, usize>,
}

impl Evidence {
    pub async fn gather(
        db: &tokio_postgres::Client,
        client: &reqwest::Client,
        system: &System,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            stored: stored_orders(db).await?,
            exchange: exchange_stats(client, &system.exchange_url).await?,
            alerts: alerts_per_order(&system.sqs_url, &system.alerts_queue).await?,
        })
    }
}

async fn stored_orders(db: &tokio_postgres::Client) -> anyhow::Result<HashMap<String, String>> {
    let rows = db.query("SELECT id::text, status FROM orders", &[]).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

async fn exchange_stats(
    client: &reqwest::Client,
    exchange_url: &str,
) -> anyhow::Result<serde_json::Value> {
    Ok(client
        .get(format!("{exchange_url}/stats"))
        .send()
        .await?
        .json()
        .await?)
}

/// Every alert in the soak's alert queue, counted per order id. Received with a long visibility
/// timeout and never deleted, so that each message is counted once; the queue is empty when a
/// receive comes back with nothing.
async fn alerts_per_order(
    endpoint: &str,
    queue_name: &str,
) -> anyhow::Result<HashMap<String, usize>> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "soak", "soak", None, None, "soak",
        ))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .get_queue_url()
        .queue_name(queue_name)
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let mut counts = HashMap::new();
    loop {
        let messages = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(counts);
        }
        for message in messages {
            let body: serde_json::Value =
                serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
            if let Some(id) = body["order_id"].as_str() {
                *counts.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
}
