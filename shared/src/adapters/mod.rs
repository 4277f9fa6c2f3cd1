//! One adapter per port, each wrapping a real client: Postgres, SQS, Secrets Manager, the HTTP
//! exchange; and the exchange's execution feed format (`execution_feed`), shared with the simulator,
//! with its WebSocket client (`feed_socket`); API Gateway's WebSocket connections
//! (`connection_push`); and the stop request of the long-running services (`shutdown`).

pub mod connection_push;
pub mod exchange_key;
pub mod execution_feed;
pub mod feed_socket;
pub mod http_exchange;
pub mod outbound_tls;
pub mod postgres;
pub mod secrets;
pub mod shutdown;
pub mod sns;
pub mod sqs;

pub use aws_config::SdkConfig;

/// The AWS SDK configuration from the standard chain (region, credentials, and
/// `AWS_ENDPOINT_URL` for local emulators), loaded once per process, with the HTTPS client of
/// `outbound_tls` (compiled-in trust roots: no system store read during the cold start).
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(outbound_tls::aws_https_client())
        .load()
        .await
}
