//! The EMF recorder is process-wide, so its test lives in its own test binary.

use order_shared::telemetry::metrics;

#[test]
fn business_metrics_are_written_as_embedded_metric_format() {
    let collector = metrics::init_metrics("placer").expect("recorder installs once");
    metrics::order_accepted();
    metrics::order_placed();
    metrics::order_placed();
    metrics::placement_attempt(std::time::Duration::from_millis(480));

    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], metrics::NAMESPACE);
    assert_eq!(directive["Dimensions"][0][0], "function");
    assert_eq!(line["function"], "placer");
    assert_eq!(line[metrics::ORDERS_PLACED].to_string(), "2");
    assert_eq!(line[metrics::ORDERS_ACCEPTED].to_string(), "1");
    assert_eq!(line[metrics::PLACEMENT_ATTEMPTS].to_string(), "1");
    assert_eq!(
        line[metrics::EXCHANGE_LATENCY_MS][0].to_string(),
        "480.0",
        "{line}"
    );
}
