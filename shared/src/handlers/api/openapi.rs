//! `GET /openapi.json`, generated from the handlers' annotations so it cannot drift from them.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::ApiContext;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Order placement API",
        description = "Accepts stock orders, stores them and guarantees their placement at the exchange."
    ),
    paths(
        super::orders::create_order,
        super::orders::get_order,
        super::orders::cancel_order,
        super::orders::order_executions,
        super::orders::list_orders,
        super::orders::order_events,
        super::health::health,
    ),
    components(schemas(
        super::order_views::OrderRequestSchema,
        super::order_views::OrderView,
        super::order_views::OrderList,
        super::order_views::OrderHistory,
        super::order_views::OrderEventView,
        super::order_views::ExecutionList,
        super::order_views::ExecutionView,
        super::order_views::ExecutionKindView,
        super::error::ErrorBody,
        super::error::FieldErrorBody,
        super::health::Health,
    )),
    modifiers(&BearerApiKey),
    security(("api_key" = []))
)]
pub struct ApiDoc;

/// Every route but `/health` needs `Authorization: Bearer <key>`; keys come from `orders-admin`.
struct BearerApiKey;

impl Modify for BearerApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sok_<16 hex digits>_<64 hex digits>")
                    .description(Some(
                        "An API key made with `orders-admin keys create`; shown once, stored \
                         only as a hash. Every route but `/health` needs one.",
                    ))
                    .build(),
            ),
        );
    }
}

pub(super) fn router() -> Router<ApiContext> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
