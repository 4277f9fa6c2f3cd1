//! The pieces every local process shares (the local runner, the simulated exchange, the embedded
//! SQS endpoint, the test harnesses and the soak), written once. Never linked into a Lambda.

use std::net::TcpListener;

/// Resolves at the first Ctrl-C or SIGTERM (a terminal, a supervisor, a script or a test
/// harness). Without a SIGTERM handler (it could not be installed) Ctrl-C alone ends it.
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

/// A port that was free a moment ago, for a child process that must be told its port up front.
/// Another process may take it in between; where the server is in-process, bind port 0 instead.
pub fn free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|address| address.port())
}
