//! `GET /openapi.json`, generated from the handlers' annotations so it cannot drift from them.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

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
        super::orders::list_orders,
        super::health::health,
    ),
    components(schemas(
        super::order_views::OrderRequestSchema,
        super::order_views::OrderView,
        super::order_views::OrderList,
        super::error::ErrorBody,
        super::error::FieldErrorBody,
        super::health::Health,
    ))
)]
pub struct ApiDoc;

pub(super) fn router() -> Router<ApiContext> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
