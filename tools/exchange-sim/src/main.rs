//! `exchange-sim`: runs the simulated exchange as a process, configured by `EXCHANGE_SIM_*`
//! variables (see [`exchange_sim::SimSettings::from_env`]), for the local runner and manual tests.
//! Prints its base URL and its execution feed's on stdout once it listens, logs JSON, and stops
//! on Ctrl-C or SIGTERM.

use anyhow::Context;
use exchange_sim::SimSettings;
use local_process::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    order_shared::telemetry::init_tracing();
    let settings = SimSettings::from_env()?;
    let listen = settings.listen;
    let handle = exchange_sim::spawn(listen, settings.clone())
        .await
        .with_context(|| format!("cannot listen on {listen} (EXCHANGE_SIM_LISTEN)"))?;
    println!("exchange-sim listening on {}", handle.base_url);
    println!(
        "execution feed on {}?after=0 (stats: {}/feed/stats)",
        handle.feed_url(),
        handle.base_url
    );
    tracing::info!(base_url = %handle.base_url, settings = ?settings, "exchange simulator started");

    shutdown_signal().await;
    tracing::info!("exchange simulator stopping");
    handle.shutdown().await;
    Ok(())
}
