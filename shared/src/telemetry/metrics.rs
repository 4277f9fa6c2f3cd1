//! Business metrics as CloudWatch Embedded Metric Format: JSON lines on stdout that CloudWatch
//! Logs turns into metrics, so no API call (and no latency) is added to a request. Without an
//! installed collector (local runs, tests) the counters are no-ops.

use std::time::Duration;

use metrics_cloudwatch_embedded::Collector;

/// CloudWatch namespace of every metric; the dashboard and alarms in `infra/` use it.
pub const NAMESPACE: &str = "OrderPlacement";

pub const ORDERS_ACCEPTED: &str = "orders_accepted";
pub const ORDERS_PLACED: &str = "orders_placed";
pub const ORDERS_REJECTED: &str = "orders_rejected";
pub const ORDERS_FAILED: &str = "orders_failed";
pub const ORDERS_EXPIRED: &str = "orders_expired";
pub const ORDERS_CANCELED: &str = "orders_canceled";
pub const ORDERS_PARKED: &str = "orders_parked";
/// A gauge (the sweeper sets it each run); alarmed in the template.
pub const PARKED_ORDERS: &str = "parked_orders";
/// A gauge (the sweeper sets it each run); alarmed in the template.
pub const STUCK_EXECUTIONS: &str = "stuck_executions";
pub const PLACEMENT_ATTEMPTS: &str = "placement_attempts";
pub const EXCHANGE_LATENCY_MS: &str = "exchange_latency_ms";

/// Installs the process-wide EMF recorder with a `function` dimension. Call once in a Lambda
/// `main`; flush after every invocation.
pub fn init_metrics(function: &'static str) -> Option<&'static Collector> {
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function)
        .init()
    {
        Ok(collector) => Some(collector),
        Err(error) => {
            tracing::warn!(%error, "metrics disabled");
            None
        }
    }
}

/// Writes the metrics gathered since the last flush as one EMF line on stdout.
pub fn flush_metrics(collector: Option<&'static Collector>) {
    if let Some(collector) = collector {
        if let Err(error) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(%error, "could not write metrics");
        }
    }
}

pub fn order_accepted() {
    metrics::counter!(ORDERS_ACCEPTED).increment(1);
}

pub fn order_placed() {
    metrics::counter!(ORDERS_PLACED).increment(1);
}

pub fn order_rejected() {
    metrics::counter!(ORDERS_REJECTED).increment(1);
}

pub fn order_failed() {
    metrics::counter!(ORDERS_FAILED).increment(1);
}

/// One call to the exchange, whatever its outcome, and how long it took.
pub fn placement_attempt(latency: Duration) {
    metrics::counter!(PLACEMENT_ATTEMPTS).increment(1);
    metrics::histogram!(EXCHANGE_LATENCY_MS).record(latency.as_secs_f64() * 1000.0);
}

pub fn order_expired() {
    metrics::counter!(ORDERS_EXPIRED).increment(1);
}

pub fn orders_expired(count: usize) {
    metrics::counter!(ORDERS_EXPIRED).increment(count as u64);
}

pub fn order_canceled() {
    metrics::counter!(ORDERS_CANCELED).increment(1);
}

/// An order parked in the database after a transient failure (or an open breaker).
pub fn order_parked() {
    metrics::counter!(ORDERS_PARKED).increment(1);
}

/// Orders parked right now: an outage in progress (alarmed in the template).
pub fn parked_orders(count: u64) {
    metrics::gauge!(PARKED_ORDERS).set(count as f64);
}

/// Execution reports kept unapplied far longer than a placement takes: each needs an admin
/// (alarmed in the template).
pub fn stuck_executions(count: u64) {
    metrics::gauge!(STUCK_EXECUTIONS).set(count as f64);
}
