//! The api Lambda: wires the store and the queue from configuration (once, at cold start) and
//! serves the shared Router through API Gateway's HTTP API.

use std::sync::Arc;

use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::{PostgresAccessControl, PostgresOrderStore};
use order_shared::adapters::secrets::key_hasher;
use order_shared::adapters::sqs::SqsOrderQueue;
use order_shared::config::{ApiConfig, process_env};
use order_shared::handlers::api::{ApiContext, router};
use order_shared::telemetry::init_tracing;
use order_shared::telemetry::metrics::{flush_metrics, init_metrics};
use order_shared::usecases::enqueue::EnqueuedMarks;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let metrics = init_metrics("api");
    let config = ApiConfig::from_env(&process_env())?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&config.database, &sdk)
        .await?
        .with_idempotency_retention(config.idempotency_retention);
    // The first connection opens while the rest of the init runs.
    let warming = store.warm_up();
    let hasher = key_hasher(&config.pepper, &sdk).await?;
    let access = PostgresAccessControl::new(store.pool().clone(), hasher)
        .with_idempotency_retention(config.idempotency_retention);
    let queue = SqsOrderQueue::single_attempt(&sdk, config.queue_url.clone());
    let store = Arc::new(store);
    let access = Arc::new(access);
    let app = router(ApiContext {
        enqueued_marks: EnqueuedMarks::start(store.clone()),
        store,
        queue: Arc::new(queue),
        orders: access.clone(),
        access,
        enqueue_timeout: config.enqueue_timeout,
        expiry: config.expiry,
    });
    // One EMF line per request, written after the response is produced.
    let app = app.layer(axum::middleware::map_response(
        move |response: axum::response::Response| async move {
            flush_metrics(metrics);
            response
        },
    ));
    // Ready before the first event, so that it borrows this connection instead of opening
    // another beside it; bounded by the pool's connect timeout, and an outage only logs.
    let _ = warming.await;
    lambda_http::run(app).await
}
