//! Waiting for a service that was just started to be ready.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls `url` until it answers 2xx. A refused connection only means the service is not
/// listening yet, so every error is retried until `within` has passed.
pub async fn wait_ok(url: &str, within: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).timeout(Duration::from_secs(2)).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not answer 200 within {within:?}")
}
