//! The one place where failures become HTTP statuses and JSON bodies.

use axum::Json;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use futures::FutureExt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::FieldError;
use crate::ports::StoreError;
use crate::telemetry::error_chain;

/// The exact body of every 500: it reveals nothing; the log has the detail.
pub const INTERNAL_ERROR_MESSAGE: &str = "Internal server error while placing the order";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    #[error("Request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400: the body is JSON but not an object.
    #[error("Request body must be a JSON object")]
    NotAnObject,
    /// 413: the body is larger than `MAX_BODY_BYTES`.
    #[error("Request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not declared as `application/json`.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// 422: the input is well-formed but breaks the rules; every problem is listed.
    #[error("{message}")]
    Unprocessable {
        message: String,
        errors: Vec<FieldError>,
    },
    /// 401: no valid API key. One message for a missing, malformed, unknown or revoked key, so
    /// that the answer tells an attacker nothing about which keys exist.
    #[error("A valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthenticated,
    /// 429: over the client's requests-per-second limit.
    #[error("Rate limit exceeded: at most {limit} requests per second for this client")]
    RateLimited { limit: u32, retry_after: Duration },
    /// 429: the client has too many orders that are not final yet.
    #[error(
        "Too many open orders: at most {limit} orders of this client may be pending or placing; \
         retry when some have been placed"
    )]
    TooManyOpenOrders { limit: u32, retry_after: Duration },
    /// 404: no such order (or route).
    #[error("{0}")]
    NotFound(&'static str),
    /// 409: the request conflicts with the order's status (e.g. canceling an order that is
    /// being placed, or one that is already final). With `retry_after` when the conflict ends
    /// on its own shortly, so that asking again may succeed.
    #[error("{message}")]
    Conflict {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 405: the route exists, the method does not.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 503: `/health` found the database unreachable.
    #[error("Database unavailable")]
    Unhealthy(#[source] StoreError),
    /// 500: anything unexpected; logged with its cause chain, never shown.
    #[error("internal error")]
    Internal(#[from] StoreError),
}

impl ApiError {
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::Unprocessable {
            message: "The order is invalid".into(),
            errors,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::NotAnObject => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } | Self::TooManyOpenOrders { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON shape of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub message: String,
    /// Present on 422 only: one entry per problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorBody>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let extra_header = match &self {
            Self::Unauthenticated => {
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            Self::RateLimited { retry_after, .. }
            | Self::TooManyOpenOrders { retry_after, .. }
            | Self::Conflict {
                retry_after: Some(retry_after),
                ..
            } => Some((
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            )),
            _ => None,
        };
        let body = match self {
            Self::Internal(error) => {
                tracing::error!(error = %error_chain(&error), "request failed");
                ErrorBody {
                    message: INTERNAL_ERROR_MESSAGE.into(),
                    errors: None,
                }
            }
            Self::Unhealthy(ref error) => {
                tracing::warn!(error = %error_chain(error), "health check failed");
                ErrorBody {
                    message: self.to_string(),
                    errors: None,
                }
            }
            Self::Unprocessable { message, errors } => ErrorBody {
                message,
                errors: Some(
                    errors
                        .into_iter()
                        .map(|e| FieldErrorBody {
                            field: e.field,
                            message: e.message,
                        })
                        .collect(),
                ),
            },
            other => ErrorBody {
                message: other.to_string(),
                errors: None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some((name, value)) = extra_header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Runs the rest of the request so that a handler's panic becomes the contract's 500, exactly as
/// for any other unexpected fault (what tower-http's `CatchPanicLayer` does, plus the request id
/// on the log line). Whatever the handler had begun is dropped unfinished: a dropped
/// transaction is rolled back, so nothing is left half-written.
pub(super) async fn catch_panic(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!(%request_id, panic = %message, "handler panicked; answered 500");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(ErrorBody {
                    message: INTERNAL_ERROR_MESSAGE.into(),
                    errors: None,
                }),
            )
                .into_response()
        }
    }
}

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("Not found")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
