//! The HTTP API as one axum `Router`: served by `lambda_http` in Lambda and by the local runner
//! on a socket, and driven directly by the tests.

mod auth;
mod error;
mod health;
mod openapi;
mod order_views;
mod orders;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{Caller, Credentials};
pub use error::{ApiError, INTERNAL_ERROR_MESSAGE};
pub use openapi::ApiDoc;
pub use order_views::{OrderList, OrderView};

use crate::domain::ExpiryPolicy;
use crate::ports::{AccessControl, ClientOrders, OrderQueue, OrderStore};
use crate::usecases::enqueue::EnqueuedMarks;

/// Largest accepted request body; an order is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every route handler can reach.
#[derive(Clone)]
pub struct ApiContext {
    pub store: Arc<dyn OrderStore>,
    pub queue: Arc<dyn OrderQueue>,
    /// API keys and per-client limits, checked before every route but `/health`: alone, for
    /// requests with nothing else to do in the same round trip, ...
    pub access: Arc<dyn AccessControl>,
    /// ... and together with the work of the order routes that can (`POST /orders`, the GETs).
    pub orders: Arc<dyn ClientOrders>,
    /// The enqueued marks of sent orders, written in the background.
    pub enqueued_marks: EnqueuedMarks,
    /// The bound of the one SQS send a request makes (enforced by `send_for_placement`).
    pub enqueue_timeout: Duration,
    /// Each accepted order's time in force.
    pub expiry: ExpiryPolicy,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The complete API with its middleware: a request id on every request and response, a span
/// per request so every log line names it (and the client, once authenticated), a handler's
/// panic turned into the contract's 500 (inside that span, so its log line names the request),
/// and the API key check on every route but `/health` (see `auth` for its two forms).
pub fn router(context: ApiContext) -> Router {
    let order_routes = orders::router().route_layer(axum::middleware::from_fn(auth::require_key));
    let authenticated = openapi::router().route_layer(axum::middleware::from_fn_with_state(
        context.clone(),
        auth::authenticate,
    ));
    Router::new()
        .merge(order_routes)
        .merge(authenticated)
        .merge(health::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(context)
        // Without it a panic drops the connection (local runner) or fails the invocation, which
        // API Gateway answers with its own 502; the release profile keeps `panic = "unwind"`.
        .layer(axum::middleware::from_fn(error::catch_panic))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    request_id = %request_id,
                    method = %request.method(),
                    path = %request.uri().path(),
                    client_id = tracing::field::Empty,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
