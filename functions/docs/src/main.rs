//! The docs Lambda: serves the API reference page (`GET /docs`, Swagger UI with embedded assets),
//! the api's OpenAPI document (`GET /openapi.json`) and the live order page (`GET /live`, which
//! lists a client's orders through the api and follows them over the live-update WebSocket)
//! through API Gateway's HTTP API, to anyone. It has no database, no secret and no VPC: the
//! document is generated from the api's annotations at cold start and the assets are in the
//! binary. Its one setting:
//!
//! - `LIVE_UPDATES_URL` (optional): the live-update WebSocket the page connects to (`wss://…`,
//!   the API Gateway WebSocket API's stage URL), also allowed in the page's CSP. Unset: the page
//!   lists orders but says that live updates are not configured. A bad value stops the cold
//!   start, naming the variable.

use order_shared::config::{ConfigError, process_env};
use order_shared::handlers::api::ApiDoc;
use order_shared::handlers::docs::router;
use order_shared::handlers::live_page::{self, UpdatesEndpoint};
use order_shared::telemetry::init_tracing;
use utoipa::OpenApi;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let updates = process_env()
        .optional("LIVE_UPDATES_URL")
        .map(|text| {
            text.parse::<UpdatesEndpoint>()
                .map_err(|e| ConfigError::Invalid {
                    name: "LIVE_UPDATES_URL",
                    reason: e.to_string(),
                })
        })
        .transpose()?;
    lambda_http::run(router(ApiDoc::openapi()).merge(live_page::router(updates))).await
}
