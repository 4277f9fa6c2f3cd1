//! Structured JSON logs for CloudWatch (and for the local runner, so both look alike), and the
//! business metrics in `metrics`. Every layer may log and count; this module imports none of them.

pub mod metrics;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber once per process; the level comes from `RUST_LOG` (default
/// `info`). Spans are flattened into each line so that request and order ids are searchable.
///
/// The filter is `Targets` (`info`, `order_shared=debug,warn`, …), not `EnvFilter`: the
/// latter's span and field filters pull a regex engine into every bootstrap (issue #12's size
/// budget), and nothing here filters on fields.
pub fn init_tracing() {
    let _ = tracing_subscriber::registry()
        .with(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_span_list(true)
                .flatten_event(true)
                .with_target(false),
        )
        .try_init();
}

/// `RUST_LOG` as target directives; unset, empty or unreadable means `info` (an unreadable
/// filter must not leave a function silent).
fn log_filter(spec: Option<&str>) -> Targets {
    spec.map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn unset_empty_or_unreadable_filters_log_at_info() {
        for spec in [None, Some(""), Some("  "), Some("order_shared=loud")] {
            let filter = log_filter(spec);
            assert!(
                enabled(&filter, "order_shared::api", Level::INFO),
                "{spec:?}"
            );
            assert!(
                !enabled(&filter, "order_shared::api", Level::DEBUG),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn the_documented_filters_select_what_they_say() {
        let warn = log_filter(Some("warn"));
        assert!(enabled(&warn, "hyper", Level::WARN));
        assert!(!enabled(&warn, "order_shared", Level::INFO));

        let crate_debug = log_filter(Some("info,order_shared=debug"));
        assert!(enabled(
            &crate_debug,
            "order_shared::adapters::sqs",
            Level::DEBUG
        ));
        assert!(!enabled(&crate_debug, "aws_smithy_runtime", Level::DEBUG));
        assert!(enabled(&crate_debug, "aws_smithy_runtime", Level::INFO));
    }
}
