//! `GET /health`: is the database reachable from here?

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{ApiContext, ApiError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
}

pub(super) fn router() -> Router<ApiContext> {
    Router::new().route("/health", get(health))
}

/// Checks the database with one round trip.
#[utoipa::path(
    get,
    tag = "operations",
    path = "/health",
    security(()),
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = super::error::ErrorBody),
    )
)]
pub(super) async fn health(State(context): State<ApiContext>) -> Result<Json<Health>, ApiError> {
    context.store.ping().await.map_err(ApiError::Unhealthy)?;
    Ok(Json(Health {
        status: "ok",
        database: "ok",
    }))
}
