//! `GET /live`: a small page on which a client enters its API key and watches its orders change
//! (issue #16). It lists the client's orders with `GET /orders` (same origin as the page, the
//! key as `Authorization: Bearer`), then follows them over the live-update WebSocket, which it
//! opens with the subprotocol pair `bearer, <key>` (a browser cannot set headers on a WebSocket):
//! each update changes its order's row in place and is appended to the page's log; a dropped
//! connection resumes with `?after=<last event id>`, a revoked key (close code 4401) stops it.
//!
//! Served like `/docs`: by the `docs` Lambda in AWS and by the local runner, open to anyone (the
//! page holds no data until a key is entered). Its HTML, script and stylesheet are ours and
//! embedded in the binary — no framework, no CDN — under a Content-Security-Policy that allows
//! scripts and styles from this origin only and connections to this origin and to the
//! live-update endpoint. The page learns that endpoint from a `<meta name="updates-url">` filled
//! in here from configuration ([`UpdatesEndpoint`]; `LIVE_UPDATES_URL` for the docs Lambda, the
//! runner's own address locally); without one it still lists the orders and says that live
//! updates are not configured.
//!
//! For automation the key may be given in the URL's fragment, `/live#key=<key>`: a fragment is
//! never sent to a server, and the page removes it from the address bar before connecting. The
//! key is otherwise kept in the page's memory only (not in storage, never in a URL it requests).

use std::fmt;
use std::str::FromStr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page, its script and its stylesheet change with each release: always revalidated.
const REVALIDATE: &str = "no-cache";

const INDEX_HTML: &str = include_str!("index.html");
const LIVE_JS: &str = include_str!("live.js");
const LIVE_CSS: &str = include_str!("live.css");

/// Where the page opens its live-update WebSocket: a `ws://` or `wss://` URL without query or
/// fragment (the page appends `?after=`). Only characters that need no escaping in an HTML
/// attribute or a CSP header are accepted, so it is inserted into both as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct UpdatesEndpoint {
    url: String,
    /// `scheme://host[:port]`: what the page's CSP allows it to connect to.
    origin: String,
}

/// Why a live-update URL was refused (a configuration error: the binary does not start).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdatesEndpointError {
    #[error("must start with ws:// or wss://")]
    Scheme,
    #[error("names no host")]
    NoHost,
    #[error("must not carry user info, a query or a fragment")]
    Extra,
    #[error("contains the character {0:?}, which is not allowed here")]
    Character(char),
}

impl UpdatesEndpoint {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl FromStr for UpdatesEndpoint {
    type Err = UpdatesEndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let rest = text
            .strip_prefix("wss://")
            .or_else(|| text.strip_prefix("ws://"))
            .ok_or(UpdatesEndpointError::Scheme)?;
        if rest.contains(['@', '?', '#']) {
            return Err(UpdatesEndpointError::Extra);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/[]%".contains(*c)))
        {
            return Err(UpdatesEndpointError::Character(bad));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.starts_with(':') {
            return Err(UpdatesEndpointError::NoHost);
        }
        let scheme_len = text.len() - rest.len();
        Ok(Self {
            url: text.to_owned(),
            origin: text[..scheme_len + authority.len()].to_owned(),
        })
    }
}

impl fmt::Debug for UpdatesEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Display for UpdatesEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The page's Content-Security-Policy: as strict as the docs page's (stricter: no inline
/// styles, no `data:` image but the empty favicon), with the live-update origin added to
/// `connect-src` when there is one.
fn content_security_policy(updates: Option<&UpdatesEndpoint>) -> String {
    let connect = match updates {
        Some(endpoint) => format!("'self' {}", endpoint.origin()),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; \
         connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `GET /live` (and `/live/`, redirected), `GET /live/live.js`, `GET /live/live.css` (HEAD
/// too). `updates` is where the page's WebSocket goes; `None`: the page lists orders only.
pub fn router(updates: Option<UpdatesEndpoint>) -> Router {
    let page = Bytes::from(INDEX_HTML.replace(
        "{{UPDATES_URL}}",
        updates.as_ref().map(UpdatesEndpoint::url).unwrap_or(""),
    ));
    let policy = content_security_policy(updates.as_ref());
    Router::new()
        .route(
            "/live",
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, REVALIDATE),
                        (header::CONTENT_SECURITY_POLICY, policy.as_str()),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                        // The key never leaves in a Referer (it is never in a URL anyway).
                        (header::REFERRER_POLICY, "no-referrer"),
                    ],
                    page,
                )
                    .into_response()
            }),
        )
        // The page's relative URLs need `/live` itself; a relative redirect keeps a stage prefix
        // (and the browser keeps the fragment).
        .route(
            "/live/",
            get(|| async {
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, "../live")],
                )
            }),
        )
        .route(
            "/live/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
        .route(
            "/live/live.css",
            get(|| async { asset("text/css; charset=utf-8", LIVE_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, REVALIDATE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
