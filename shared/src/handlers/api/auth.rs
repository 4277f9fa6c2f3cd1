//! Authentication and per-client limits for every route but `/health`: a middleware that turns
//! `Authorization: Bearer <key>` into the caller's `ClientId` (a request extension the handlers
//! take), or answers 401/429 before any handler runs.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiContext, ApiError};
use crate::auth::ApiKey;
use crate::domain::ClientId;
use crate::ports::{Admission, RequestKind};

/// The authenticated caller, for handlers: `Extension(caller): Extension<Caller>`.
#[derive(Debug, Clone)]
pub struct Caller(pub ClientId);

/// Admits the request or answers for it. The key is parsed before anything touches the
/// database, so a malformed header costs nothing but this check.
pub(super) async fn authenticate(
    State(context): State<ApiContext>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(key) = bearer_key(request.headers()) else {
        return ApiError::Unauthenticated.into_response();
    };
    // Only a POST adds an open order; reads and cancels (DELETE) count toward the rate only.
    let kind = if request.method() == Method::POST {
        RequestKind::PlaceOrder
    } else {
        RequestKind::Read
    };
    let admission = match context.access.admit(&key, kind).await {
        Ok(admission) => admission,
        Err(error) => return ApiError::Internal(error).into_response(),
    };
    let span = tracing::Span::current();
    match admission {
        Admission::Admitted(client) => {
            span.record("client_id", tracing::field::display(&client));
            request.extensions_mut().insert(Caller(client));
            next.run(request).await
        }
        Admission::Unauthenticated => {
            tracing::info!(key_id = %key.id(), "API key not accepted");
            ApiError::Unauthenticated.into_response()
        }
        Admission::RateLimited { limit, retry_after } => {
            tracing::info!(key_id = %key.id(), limit, "rate limited");
            ApiError::RateLimited { limit, retry_after }.into_response()
        }
        Admission::TooManyOpenOrders { limit, retry_after } => {
            tracing::info!(key_id = %key.id(), limit, "open-order limit reached");
            ApiError::TooManyOpenOrders { limit, retry_after }.into_response()
        }
    }
}

/// The key from `Authorization: Bearer <key>` (scheme case-insensitive, as RFC 9110 says).
fn bearer_key(headers: &HeaderMap) -> Option<ApiKey> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    ApiKey::parse(token.trim()).ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_bearer_keys_of_our_format_are_read() {
        let key = ApiKey::generate().unwrap();
        let text = key.expose();
        assert_eq!(
            bearer_key(&headers(&format!("Bearer {text}"))),
            Some(key.clone())
        );
        assert_eq!(bearer_key(&headers(&format!("bearer  {text} "))), Some(key));
        assert_eq!(bearer_key(&headers(&format!("Basic {text}"))), None);
        assert_eq!(bearer_key(&headers(&text)), None);
        assert_eq!(bearer_key(&headers("Bearer sok_123")), None);
        assert_eq!(bearer_key(&HeaderMap::new()), None);
    }
}
