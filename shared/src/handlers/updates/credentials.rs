//! How a live-update client presents its key: `Authorization: Bearer <key>`, or — from a
//! browser, which cannot set headers on a WebSocket — the subprotocol pair `bearer, <key>`
//! (then the answer must name the subprotocol `bearer`). The same for the local socket and for
//! API Gateway's `$connect`, which passes the upgrade request's headers.

use axum::http::{HeaderMap, header};

use crate::auth::ApiKey;

/// The presented key, and whether it came as a subprotocol.
pub fn presented_key(headers: &HeaderMap) -> Option<(ApiKey, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        return ApiKey::parse(token.trim()).ok().map(|key| (key, false));
    }
    let protocols = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut parts = protocols.split(',').map(str::trim);
    if parts.next()? != "bearer" {
        return None;
    }
    ApiKey::parse(parts.next()?).ok().map(|key| (key, true))
}

/// `?after=` that is not an event id.
#[derive(Debug, PartialEq, Eq)]
pub struct BadAfter;

/// `?after=<event_id>`: `Ok(None)` when absent, `Err` when not a non-negative integer.
pub fn resume_after(value: Option<&str>) -> Result<Option<i64>, BadAfter> {
    match value.map(str::parse::<i64>) {
        None => Ok(None),
        Some(Ok(after)) if after >= 0 => Ok(Some(after)),
        Some(_) => Err(BadAfter),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_key_comes_as_a_bearer_header_or_as_the_bearer_subprotocol() {
        let key = ApiKey::generate().unwrap();
        let secret = key.expose();
        let (found, as_protocol) =
            presented_key(&with(header::AUTHORIZATION, &format!("bearer {secret}"))).unwrap();
        assert_eq!((found.id(), as_protocol), (key.id(), false));
        let (found, as_protocol) = presented_key(&with(
            header::SEC_WEBSOCKET_PROTOCOL,
            &format!("bearer, {secret}"),
        ))
        .unwrap();
        assert_eq!((found.id(), as_protocol), (key.id(), true));
        for refused in [
            with(header::AUTHORIZATION, &format!("Basic {secret}")),
            with(header::AUTHORIZATION, "Bearer not-a-key"),
            with(header::SEC_WEBSOCKET_PROTOCOL, &format!("chat, {secret}")),
            HeaderMap::new(),
        ] {
            assert!(presented_key(&refused).is_none(), "{refused:?}");
        }
    }

    #[test]
    fn after_is_a_non_negative_event_id() {
        assert_eq!(resume_after(None), Ok(None));
        assert_eq!(resume_after(Some("42")), Ok(Some(42)));
        assert_eq!(resume_after(Some("-1")), Err(BadAfter));
        assert_eq!(resume_after(Some("x")), Err(BadAfter));
    }
}
