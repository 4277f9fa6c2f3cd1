//! The end of a long-running local process (the local runner, the simulated exchange): Ctrl-C
//! in a terminal, or SIGTERM from a supervisor, a script or a test harness.

/// Resolves at the first Ctrl-C or SIGTERM. Without a SIGTERM handler (it could not be
/// installed) Ctrl-C alone ends it.
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
