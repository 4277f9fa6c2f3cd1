//! Authentication and per-client limits for every route but `/health`.
//!
//! Two ways in. The order routes take the caller's `Credentials` (the parsed key; a request
//! without a well-formed one is answered 401 here, before anything touches the database) and
//! have their admission checked in the same round trip as their work, through `ClientOrders`,
//! or, where that is not possible, by calling `admit` first; their handlers never see a client
//! id that was not admitted. Other routes sit behind `authenticate`, which admits first and hands
//! the handler its `Caller`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiContext, ApiError};
use crate::auth::ApiKey;
use crate::domain::ClientId;
use crate::ports::{Admission, Gated, RequestKind};

/// The authenticated caller, for handlers behind `authenticate`.
#[derive(Debug, Clone)]
pub struct Caller(pub ClientId);

/// The presented API key, well-formed but not yet checked: for the order routes, which check it
/// together with their work.
#[derive(Debug, Clone)]
pub struct Credentials(pub ApiKey);

/// Answers 401 unless the request carries a well-formed key, and passes the key on.
pub(super) async fn require_key(mut request: Request, next: Next) -> Response {
    let Some(key) = bearer_key(request.headers()) else {
        return ApiError::Unauthenticated.into_response();
    };
    request.extensions_mut().insert(Credentials(key));
    next.run(request).await
}

/// Admits the request or answers for it (routes with no admission of their own).
pub(super) async fn authenticate(
    State(context): State<ApiContext>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(key) = bearer_key(request.headers()) else {
        return ApiError::Unauthenticated.into_response();
    };
    // Only a POST adds an open order; reads count toward the rate only.
    let kind = if request.method() == Method::POST {
        RequestKind::PlaceOrder
    } else {
        RequestKind::Read
    };
    match admit(&context, &key, kind).await {
        Ok(client) => {
            request.extensions_mut().insert(Caller(client));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// The admission alone (one round trip): for requests that have nothing to do in the same
/// statement, such as a cancel or a request refused for its input, which must still answer 401
/// or 429 before 4xx about its content.
pub(super) async fn admit(
    context: &ApiContext,
    key: &ApiKey,
    kind: RequestKind,
) -> Result<ClientId, ApiError> {
    match context.access.admit(key, kind).await? {
        Admission::Admitted(client) => gate(Gated::Admitted(client, ()), key).map(|(c, ())| c),
        refused => Err(refusal(refused, key)),
    }
}

/// The client and what it asked for, or the answer to a refused admission.
pub(super) fn gate<T>(gated: Gated<T>, key: &ApiKey) -> Result<(ClientId, T), ApiError> {
    match gated {
        Gated::Admitted(client, value) => {
            tracing::Span::current().record("client_id", tracing::field::display(&client));
            Ok((client, value))
        }
        Gated::Refused(admission) => Err(refusal(admission, key)),
    }
}

/// The answer to a refused admission, logged with the key's id (never its secret).
fn refusal(admission: Admission, key: &ApiKey) -> ApiError {
    match admission {
        Admission::Admitted(_) | Admission::Unauthenticated => {
            tracing::info!(key_id = %key.id(), "API key not accepted");
            ApiError::Unauthenticated
        }
        Admission::RateLimited { limit, retry_after } => {
            tracing::info!(key_id = %key.id(), limit, "rate limited");
            ApiError::RateLimited { limit, retry_after }
        }
        Admission::TooManyOpenOrders { limit, retry_after } => {
            tracing::info!(key_id = %key.id(), limit, "open-order limit reached");
            ApiError::TooManyOpenOrders { limit, retry_after }
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
