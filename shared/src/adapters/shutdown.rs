//! The operating system's stop request, for the long-running services (the ingester, the
//! live-update fan-out): ECS stops a task with SIGTERM and kills it `StopTimeout` later, so each
//! service finishes what it is writing and gives up what it holds (the ingester its lease) when
//! this resolves. Lambdas never need it: their runtime ends them.

/// Resolves at the first SIGTERM or Ctrl-C. If the SIGTERM handler cannot be installed, Ctrl-C
/// alone ends it.
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "no SIGTERM handler; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stop requested");
}
