//! The docs Lambda: serves the API reference page (`GET /docs`, Swagger UI with embedded assets)
//! and the api's OpenAPI document (`GET /openapi.json`) through API Gateway's HTTP API, to anyone.
//! It has no configuration, no database, no secret and no VPC: the document is generated from the
//! api's annotations at cold start and the assets are in the binary.

use order_shared::handlers::api::ApiDoc;
use order_shared::handlers::docs::router;
use order_shared::telemetry::init_tracing;
use utoipa::OpenApi;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    lambda_http::run(router(ApiDoc::openapi())).await
}
