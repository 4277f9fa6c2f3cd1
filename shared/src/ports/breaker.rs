//! The circuit breaker in front of the exchange, shared by every placer instance: while the
//! exchange keeps failing, only a trickle of probes reaches it; one success reopens the flow.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// When the breaker opens and how often it lets a probe through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed calls (across all instances) that open the breaker.
    pub failure_threshold: u32,
    /// While open, one call per this interval may go to the exchange (the probe).
    pub probe_interval: Duration,
}

/// May a placement call the exchange now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The breaker is closed: call.
    Call,
    /// The breaker is open and this caller won the next probe: call, and report the result.
    Probe,
    /// The breaker is open and another caller probes: don't call before `until`.
    Wait { until: OffsetDateTime },
}

/// The breaker's state lives outside the process (in Postgres), so that every Lambda instance
/// sees the same count and only one of them probes at a time.
#[async_trait]
pub trait ExchangeBreaker: Send + Sync {
    async fn permit(&self, settings: &BreakerSettings) -> Result<Permit, StoreError>;

    /// Reports what a permitted call found: `true` when the exchange answered (a placement or a
    /// business refusal), `false` for a transient failure or an unknown outcome.
    async fn record(&self, exchange_up: bool, settings: &BreakerSettings)
    -> Result<(), StoreError>;
}
