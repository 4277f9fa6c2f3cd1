//! What the simulator's test files share: a simulator on a free port, quiet unless a test asks
//! otherwise, and the instrument most orders are for. Used by `sim.rs` and `http_client.rs`
//! through `mod common;`.

use std::net::SocketAddr;
use std::time::Duration;

use exchange_sim::{SimHandle, SimSettings};

pub const APPLE: &str = "US0378331005";

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A fast, reliable simulator unless a test asks otherwise.
pub fn quiet() -> SimSettings {
    SimSettings {
        latency: Duration::ZERO,
        lookup_latency: Duration::ZERO,
        failure_rate: 0.0,
        ..SimSettings::default()
    }
}

pub async fn start(settings: SimSettings) -> SimHandle {
    exchange_sim::spawn(any_port(), settings).await.unwrap()
}
