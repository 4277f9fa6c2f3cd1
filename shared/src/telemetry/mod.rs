//! Structured JSON logs for CloudWatch (and for the local runner, so both look alike), and the
//! business metrics in `metrics`. Every layer may log and count; this module imports none of them.

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once per process; the level comes from `RUST_LOG` (default
/// `info`). Spans are flattened into each line so that request and order ids are searchable.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .try_init();
}

/// The whole `source()` chain of an error on one line, for the one place an error is logged.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
