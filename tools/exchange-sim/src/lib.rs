//! A simulated stock exchange for local runs and tests: an in-memory HTTP server that is as
//! unreliable as the design says the real one is (500 ms per call, 10 % transient failures by
//! default), idempotent on the client order id, able to answer lookups, and counting placements
//! per id so that a test can prove an order was placed exactly once.
//!
//! - [`settings`]: the knobs, their defaults, `EXCHANGE_SIM_*` parsing and the `/control` documents.
//! - [`book`]: the accepted orders and the call/placement counts behind `/stats`.
//! - `http`: the routes and the order in which failures are applied.
//! - [`market`]: placed orders worked into fills, cancels and expiries.
//! - [`feed`]: the execution feed (WebSocket `GET /feed?after=N`), its bounded memory, its faults
//!   and the counts behind `/feed/stats`.
//! - [`counts`]: the `/feed/stats` document.
//! - [`load`]: the load mode (`/load`), synthetic fills at a given rate.
//! - `conn`: connections a handler can cut, for "connection lost after sending".
//!
//! It honours a placement's `expires_at` (an order arriving after it is refused with 422 and
//! counted, never placed) and can make unknown outcomes on demand: an accepted and recorded
//! placement whose answer is held back past the client's timeout, or whose connection is closed
//! unanswered (see [`settings`]).
//!
//! Embed it with [`spawn`] (tests bind port 0) or run the `exchange-sim` binary.

pub mod book;
mod conn;
pub mod counts;
pub mod feed;
mod http;
pub mod load;
pub mod market;
mod rng;
pub mod settings;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use book::{PlacedOrder, Refusal, Stats};
pub use counts::{FeedStats, ReportsByKind};
pub use http::API_KEY_HEADER;
pub use load::{LoadRequest, LoadView};
pub use market::{OrderExecutions, WorkState};
pub use settings::{ControlPatch, ControlView, DEFAULT_LISTEN, SettingsError, SimSettings};

/// The simulator's routes over fresh, empty state, for serving on a server of one's own. Only
/// [`spawn`] can drop a connection (`drop_after_accept`); behind this router such a placement's
/// answer is held back instead.
pub fn router(settings: SimSettings) -> axum::Router {
    http::router(Arc::new(http::Sim::new(settings)))
}

/// Binds `listen` (port 0 picks a free port) and serves the simulator on a tokio task until the
/// handle is shut down or dropped.
pub async fn spawn(listen: SocketAddr, settings: SimSettings) -> io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(http::Sim::new(settings));
    let app = http::router(Arc::clone(&sim));
    let listener = conn::CuttableListener(listener);
    let app = app.into_make_service_with_connect_info::<conn::Connection>();
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "exchange simulator stopped");
        }
    });
    // An unspecified address (0.0.0.0 / ::) accepts connections but is no place to send them.
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            addr.port(),
        )
    } else {
        addr
    };
    Ok(SimHandle {
        addr,
        base_url: format!("http://{host}"),
        sim,
        task: Some(task),
    })
}

/// A running simulator. Dropping it stops the server (no new connections are accepted).
pub struct SimHandle {
    /// The address actually bound.
    pub addr: SocketAddr,
    /// `http://host:port`, without a trailing `/`: the exchange base URL to give the client.
    pub base_url: String,
    sim: Arc<http::Sim>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The same document as `GET /stats`, without a round trip.
    pub fn stats(&self) -> Stats {
        self.sim.stats()
    }

    /// The current settings (as `GET /control` shows them).
    pub fn settings(&self) -> SimSettings {
        self.sim.settings()
    }

    /// The execution feed's WebSocket URL (`ws://host:port/feed`); add `?after=N` to resume.
    pub fn feed_url(&self) -> String {
        format!("ws{}/feed", self.base_url.trim_start_matches("http"))
    }

    /// The same document as `GET /feed/stats`, without a round trip.
    pub fn feed_stats(&self) -> FeedStats {
        self.sim.feed_stats(true)
    }

    /// The same as `POST /feed/drop`: every feed connection open now is dropped, no close frame.
    pub fn drop_feed_connections(&self) {
        self.sim.feed.drop_connections();
    }

    /// The same as `POST /load`.
    pub fn start_load(&self, request: LoadRequest) -> Result<LoadView, String> {
        self.sim
            .start_load(request)
            .map_err(|refusal| match refusal {
                http::LoadRefusal::Running => "a load run is in progress".to_owned(),
                http::LoadRefusal::Invalid(error) => error,
            })
    }

    /// The same as `GET /load`.
    pub fn load(&self) -> LoadView {
        self.sim.load_view()
    }

    /// The same change as `POST /control`, without a round trip.
    pub fn control(&self, patch: &ControlPatch) -> Result<ControlView, String> {
        self.sim.update(patch)
    }

    /// Stops the server and waits for its task to end.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
