//! Serving the endpoint: its routes over fresh state for a listener of your own ([`router`]), or
//! a listener bound and served on a tokio task ([`spawn`]) with the [`SqsLocalHandle`] that stops
//! it. The crate root re-exports all of it; the `sdk` module and the `sqs-local` binary build on it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::http;

/// Where the binary listens unless `SQS_LOCAL_LISTEN` says otherwise (ElasticMQ's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9324";

/// The endpoint's routes over fresh, empty state (for serving it on a listener of your own).
pub fn router() -> axum::Router {
    http::router(Arc::new(Broker::new()))
}

/// Binds `listen` (port 0 picks a free port) and serves the endpoint on a tokio task until the
/// handle is dropped or shut down.
pub async fn spawn(listen: SocketAddr) -> io::Result<SqsLocalHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let broker = Arc::new(Broker::new());
    let app = http::router(Arc::clone(&broker));
    // Small request/response pairs: waiting for Nagle would add latency to every call.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "sqs-local stopped");
        }
    });
    // An unspecified address (0.0.0.0 / ::) accepts connections but is no place to send them.
    let host = if addr.ip().is_unspecified() {
        let ip: IpAddr = if addr.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    };
    Ok(SqsLocalHandle {
        addr,
        endpoint_url: format!("http://{host}"),
        broker,
        task: Some(task),
    })
}

/// A running endpoint. Dropping it stops the server.
pub struct SqsLocalHandle {
    /// The address actually bound.
    pub addr: SocketAddr,
    /// `http://host:port` without a trailing `/`: the SDK's `endpoint_url`.
    pub endpoint_url: String,
    broker: Arc<Broker>,
    task: Option<JoinHandle<()>>,
}

impl SqsLocalHandle {
    /// The state behind the endpoint, for in-process inspection.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops the server and waits for its task to end.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl std::fmt::Debug for SqsLocalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsLocalHandle")
            .field("addr", &self.addr)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl Drop for SqsLocalHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
