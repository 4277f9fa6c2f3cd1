//! The [`Exchange`] port over HTTP: places orders with `POST {base}/orders`, looks them up
//! with `GET {base}/orders/{client_order_id}` and cancels their unfilled rest with
//! `POST {base}/orders/{client_order_id}/cancel`, sorting every placement answer into
//! "acknowledged", "rejected for good", "not taken, try again later" or "maybe placed", and every
//! cancel answer into "accepted", "refused for good" (filled, expired, unknown order) or "try again".
//!
//! The sorting is the point of this module:
//! - Only a business refusal (400 or 422) is permanent ([`PlacementOutcome::Rejected`]).
//! - An answer that says the order was not taken — an expired or rotated key (401/403),
//!   throttling (429), conflicts (409), server errors, anything odd — and a call that never left
//!   (no connection: refused, DNS, TLS handshake, connect timeout) are
//!   [`PlacementOutcome::Transient`].
//! - A call that went out and got no usable answer — a timeout after connecting, a connection
//!   reset or closed while waiting for or reading the answer, a success whose exchange order id
//!   cannot be read — is [`PlacementOutcome::Unknown`]: the exchange may hold the order. The
//!   order id is the client order id, on which the exchange de-duplicates, so the caller can
//!   retry it under the same id or look it up; it must never give it up as failed.
//!
//! reqwest's overall `request_timeout` also runs while connecting; when it (rather than the
//! connect timeout) ends a call that never connected, the call is still reported as unknown: a
//! false "maybe placed" costs a lookup, a false "not placed" could cost a second execution.
//!
//! The order's `expires_at` travels with it (RFC 3339, UTC; `null` for an order without one), so
//! that the exchange itself refuses an order that arrives too late.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::domain::{Order, OrderId};
use crate::ports::{
    CancelRefusal, Exchange, ExchangeCancelOutcome, LookupError, LookupOutcome, PlacementOutcome,
};

/// The header the exchange authenticates requests by.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Longest exchange-supplied text kept in an outcome: it ends up in the order's `last_error` and
/// in logs, where a misbehaving exchange must not be able to dump megabytes.
const MAX_DETAIL_CHARS: usize = 300;

/// An HTTP client for the exchange. Cheap to share: one per process, behind an `Arc`.
#[derive(Clone)]
pub struct HttpExchange {
    client: reqwest::Client,
    /// Without a trailing `/`, so paths can be appended as they are.
    base_url: String,
    /// Marked sensitive so that `http`'s own `Debug` hides it too.
    api_key: Option<HeaderValue>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// How far a failed call got: whether the exchange may have received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// It never left: no connection was made, or the request could not even be built.
    NotSent,
    /// It went out (or may have): the exchange may have acted on it.
    MaybeSent,
}

impl HttpExchange {
    /// Builds the client. `connect_timeout` bounds the TCP/TLS handshake (running out of it means
    /// the order never left: transient); `request_timeout` bounds a whole call (connect, send,
    /// and reading the answer), so a hung exchange costs at most that much before the placement
    /// counts as unknown ("maybe placed").
    ///
    /// Fails if the client cannot be built, if `base_url` is not a URL, or if the key cannot be
    /// sent as a header value (the error never contains the key). Redirects are not followed: the
    /// API key must not travel to another host, and an exchange that redirects is misconfigured.
    pub fn new(
        base_url: String,
        api_key: Option<String>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(super::outbound_tls::web_pki_tls())
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let base_url = base_url.trim_end_matches('/').to_owned();

        // Building (not sending) one request checks the URL and the key now, with reqwest's own
        // validation, instead of failing every placement later.
        let mut probe = client.post(format!("{base_url}/orders"));
        if let Some(key) = &api_key {
            probe = probe.header(API_KEY_HEADER, key.as_str());
        }
        let probe = probe.build()?;
        let api_key = probe.headers().get(API_KEY_HEADER).cloned().map(|mut key| {
            key.set_sensitive(true);
            key
        });

        Ok(Self {
            client,
            base_url,
            api_key,
            connect_timeout,
            request_timeout,
        })
    }

    /// The base URL requests go to (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.header(API_KEY_HEADER, key.clone()),
            None => request,
        }
    }

    /// Describes a failed call in a few words, for `last_error` and the logs, and tells how far
    /// it got.
    fn describe_error(&self, error: &reqwest::Error) -> (Reach, String) {
        let (reach, text) = match reach(error) {
            Reach::NotSent if error.is_timeout() => (
                Reach::NotSent,
                format!(
                    "could not connect to the exchange within {} ms",
                    self.connect_timeout.as_millis()
                ),
            ),
            Reach::NotSent if error.is_connect() => (
                Reach::NotSent,
                format!("could not connect to the exchange: {}", root_cause(error)),
            ),
            Reach::NotSent => (
                Reach::NotSent,
                format!("exchange call could not be made: {}", root_cause(error)),
            ),
            Reach::MaybeSent if error.is_timeout() => (
                Reach::MaybeSent,
                format!(
                    "exchange did not answer within {} ms",
                    self.request_timeout.as_millis()
                ),
            ),
            Reach::MaybeSent => (
                Reach::MaybeSent,
                format!(
                    "connection to the exchange lost before its answer: {}",
                    root_cause(error)
                ),
            ),
        };
        (reach, self.scrub(text))
    }

    /// The outcome of a placement call that failed: transient if it never left, unknown if the
    /// exchange may have received it.
    fn failed_placement(&self, error: &reqwest::Error) -> PlacementOutcome {
        match self.describe_error(error) {
            (Reach::NotSent, error) => PlacementOutcome::Transient { error },
            (Reach::MaybeSent, error) => PlacementOutcome::Unknown {
                error: format!("{error} (the order may have been placed)"),
            },
        }
    }

    /// Removes the API key from text that may quote the exchange (which could echo headers back).
    fn scrub(&self, text: String) -> String {
        match self.api_key.as_ref().and_then(|key| key.to_str().ok()) {
            Some(key) if !key.is_empty() && text.contains(key) => text.replace(key, "[redacted]"),
            _ => text,
        }
    }
}

impl fmt::Debug for HttpExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpExchange")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Exchange for HttpExchange {
    async fn place(&self, order: &Order) -> PlacementOutcome {
        let details = &order.details;
        let expires_at = match order.expires_at.map(rfc3339_utc).transpose() {
            Ok(expires_at) => expires_at,
            // Not sent: an expiry the exchange could not be told would let it execute the order
            // whenever it liked. Unreachable for the dates the order API accepts.
            Err(error) => {
                return PlacementOutcome::Rejected {
                    reason: format!("expires_at cannot be written as RFC 3339: {error}"),
                };
            }
        };
        let body = json!({
            "client_order_id": order.id.to_string(),
            "instrument": details.instrument().as_str(),
            "side": details.side().as_str(),
            "type": details.order_type().as_str(),
            "limit_price": details.limit_price().map(|p| p.to_string()),
            "quantity": details.quantity().get(),
            "expires_at": expires_at,
        });
        self.send_placement(&body).await
    }

    async fn lookup(&self, client_order_id: OrderId) -> Result<LookupOutcome, LookupError> {
        let url = format!("{}/orders/{client_order_id}", self.base_url);
        let response = self
            .with_key(self.client.get(url))
            .send()
            .await
            .map_err(|error| LookupError(self.describe_error(&error).1))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| LookupError(self.describe_error(&error).1))?;
        classify_lookup(status, &text)
            .map_err(|LookupError(message)| LookupError(self.scrub(message)))
    }

    async fn cancel(&self, client_order_id: OrderId) -> ExchangeCancelOutcome {
        let url = format!("{}/orders/{client_order_id}/cancel", self.base_url);
        // Whether or not the request went out, the answer is the same: a cancel is idempotent
        // at the exchange, so one that may have arrived is sent again.
        let transient = |error: &reqwest::Error| ExchangeCancelOutcome::Transient {
            error: format!(
                "{} (the cancel is sent again)",
                self.describe_error(error).1
            ),
        };
        let response = match self.with_key(self.client.post(url)).send().await {
            Ok(response) => response,
            Err(error) => return transient(&error),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => return transient(&error),
        };
        match classify_cancel(status, &text) {
            ExchangeCancelOutcome::Transient { error } => ExchangeCancelOutcome::Transient {
                error: self.scrub(error),
            },
            ExchangeCancelOutcome::Refused { refusal, reason } => ExchangeCancelOutcome::Refused {
                refusal,
                reason: self.scrub(reason),
            },
            accepted => accepted,
        }
    }
}

impl HttpExchange {
    /// Sends one placement body and sorts whatever comes of it.
    async fn send_placement(&self, body: &Value) -> PlacementOutcome {
        let request = self.with_key(self.client.post(format!("{}/orders", self.base_url)));
        let response = match request.json(body).send().await {
            Ok(response) => response,
            Err(error) => return self.failed_placement(&error),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            // The answer started and broke off (reset, closed, timed out): whatever the status
            // said, the rest is missing, so the order may or may not be at the exchange.
            Err(error) => {
                let (_, detail) = self.describe_error(&error);
                return PlacementOutcome::Unknown {
                    error: format!(
                        "exchange answer {status} could not be read: {detail} \
                         (the order may have been placed)"
                    ),
                };
            }
        };
        match classify_placement(status, &text) {
            PlacementOutcome::Transient { error } => PlacementOutcome::Transient {
                error: self.scrub(error),
            },
            PlacementOutcome::Rejected { reason } => PlacementOutcome::Rejected {
                reason: self.scrub(reason),
            },
            PlacementOutcome::Unknown { error } => PlacementOutcome::Unknown {
                error: self.scrub(error),
            },
            acknowledged => acknowledged,
        }
    }
}

/// How far a failed call got. Only an error from making the connection (refused, DNS, TLS
/// handshake, the connect timeout) or from building the request proves that nothing reached the
/// exchange; every other error came after the request was, or may have been, written.
fn reach(error: &reqwest::Error) -> Reach {
    if error.is_connect() || error.is_builder() {
        Reach::NotSent
    } else {
        Reach::MaybeSent
    }
}

/// `expires_at` as the exchange receives it: RFC 3339 in UTC.
fn rfc3339_utc(at: OffsetDateTime) -> Result<String, time::error::Format> {
    at.to_offset(UtcOffset::UTC).format(&Rfc3339)
}

/// Sorts a placement answer. Kept free of I/O so every status can be reasoned about in one place.
fn classify_placement(status: StatusCode, body: &str) -> PlacementOutcome {
    if status.is_success() {
        return match exchange_order_id(body) {
            Some(exchange_order_id) => PlacementOutcome::Acknowledged { exchange_order_id },
            // The exchange says it took the order but not under which id: it has it, and a retry
            // under the same client order id (or a lookup) will name it.
            None => PlacementOutcome::Unknown {
                error: format!("exchange answered {status} without a readable exchange_order_id"),
            },
        };
    }
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => PlacementOutcome::Rejected {
            reason: json_field(body, "reason")
                .or_else(|| non_empty(body))
                .unwrap_or_else(|| format!("exchange refused the order ({status})")),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PlacementOutcome::Transient {
            error: format!("exchange refused the API key ({status})"),
        },
        _ => PlacementOutcome::Transient {
            error: with_detail(format!("exchange answered {status}"), body),
        },
    }
}

/// Sorts a lookup answer: only 200 and 404 are answers, anything else means "could not tell".
fn classify_lookup(status: StatusCode, body: &str) -> Result<LookupOutcome, LookupError> {
    match status {
        StatusCode::OK => exchange_order_id(body)
            .map(|exchange_order_id| LookupOutcome::Placed { exchange_order_id })
            .ok_or_else(|| {
                LookupError(format!(
                    "exchange answered {status} without a readable exchange_order_id"
                ))
            }),
        StatusCode::NOT_FOUND => Ok(LookupOutcome::Unknown),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(LookupError(format!(
            "exchange refused the API key ({status})"
        ))),
        _ => Err(LookupError(with_detail(
            format!("exchange answered {status}"),
            body,
        ))),
    }
}

/// Sorts a cancel answer. A refusal is permanent only when the exchange says why there is nothing
/// to cancel: a 400/422 (with `refusal` `filled`, `expired`, or none: the request was refused),
/// or a 404 whose `refusal` is `unknown_order` — a bare 404 may be a wrong URL, not a missing
/// order, and stays transient like every other status.
fn classify_cancel(status: StatusCode, body: &str) -> ExchangeCancelOutcome {
    if status.is_success() {
        return match exchange_order_id(body) {
            Some(exchange_order_id) => ExchangeCancelOutcome::Accepted { exchange_order_id },
            None => ExchangeCancelOutcome::Transient {
                error: format!(
                    "exchange answered {status} to a cancel without a readable exchange_order_id"
                ),
            },
        };
    }
    let refusal = json_field(body, "refusal");
    let reason = || {
        json_field(body, "reason")
            .or_else(|| json_field(body, "error"))
            .or_else(|| non_empty(body))
            .unwrap_or_else(|| format!("exchange refused the cancel ({status})"))
    };
    match (status, refusal.as_deref()) {
        (StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY, refusal) => {
            ExchangeCancelOutcome::Refused {
                refusal: match refusal {
                    Some("filled") => CancelRefusal::AlreadyFilled,
                    Some("expired") => CancelRefusal::AlreadyExpired,
                    Some("unknown_order") => CancelRefusal::UnknownOrder,
                    _ => CancelRefusal::Invalid,
                },
                reason: reason(),
            }
        }
        (StatusCode::NOT_FOUND, Some("unknown_order")) => ExchangeCancelOutcome::Refused {
            refusal: CancelRefusal::UnknownOrder,
            reason: reason(),
        },
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => ExchangeCancelOutcome::Transient {
            error: format!("exchange refused the API key ({status})"),
        },
        _ => ExchangeCancelOutcome::Transient {
            error: with_detail(format!("exchange answered {status} to a cancel"), body),
        },
    }
}

fn exchange_order_id(body: &str) -> Option<String> {
    json_field(body, "exchange_order_id")
}

/// A non-empty string field of a JSON object body, shortened.
fn json_field(body: &str, field: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get(field)? {
        Value::String(text) if !text.trim().is_empty() => Some(truncate(text.trim())),
        _ => None,
    }
}

fn non_empty(body: &str) -> Option<String> {
    let body = body.trim();
    (!body.is_empty()).then(|| truncate(body))
}

/// Appends the exchange's own explanation (`error`, `reason` or `message`) when it gives one.
fn with_detail(summary: String, body: &str) -> String {
    match ["error", "reason", "message"]
        .iter()
        .find_map(|field| json_field(body, field))
    {
        Some(detail) => format!("{summary}: {detail}"),
        None => summary,
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The innermost error of a chain: for a refused connection that is the OS error, which says
/// more than reqwest's and hyper's wrappers around it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(status: u16, body: &str) -> PlacementOutcome {
        classify_placement(StatusCode::from_u16(status).unwrap(), body)
    }

    fn is_transient(outcome: &PlacementOutcome) -> bool {
        matches!(outcome, PlacementOutcome::Transient { .. })
    }

    #[test]
    fn success_with_an_id_is_acknowledged() {
        for status in [200, 201, 202] {
            assert_eq!(
                place(
                    status,
                    r#"{"exchange_order_id":"EX-1","client_order_id":"c"}"#
                ),
                PlacementOutcome::Acknowledged {
                    exchange_order_id: "EX-1".into()
                }
            );
        }
    }

    #[test]
    fn success_without_a_readable_id_is_unknown() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"exchange_order_id":""}"#,
            r#"{"exchange_order_id":7}"#,
        ] {
            assert!(
                matches!(place(201, body), PlacementOutcome::Unknown { .. }),
                "{body}"
            );
        }
    }

    #[test]
    fn expiry_is_sent_in_utc() {
        let at = time::macros::datetime!(2030-01-02 03:04:05.5 +02:00);
        assert_eq!(rfc3339_utc(at).unwrap(), "2030-01-02T01:04:05.5Z");
        let at = time::macros::datetime!(2030-01-02 03:04:05 UTC);
        assert_eq!(rfc3339_utc(at).unwrap(), "2030-01-02T03:04:05Z");
    }

    #[test]
    fn business_refusals_are_permanent_with_the_reason() {
        assert_eq!(
            place(422, r#"{"reason":"instrument X is not tradable"}"#),
            PlacementOutcome::Rejected {
                reason: "instrument X is not tradable".into()
            }
        );
        assert_eq!(
            place(400, "  bad quantity \n"),
            PlacementOutcome::Rejected {
                reason: "bad quantity".into()
            }
        );
        assert_eq!(
            place(400, ""),
            PlacementOutcome::Rejected {
                reason: "exchange refused the order (400 Bad Request)".into()
            }
        );
    }

    #[test]
    fn everything_else_is_transient() {
        for status in [
            301, 302, 304, 401, 403, 404, 405, 408, 409, 418, 429, 500, 501, 502, 503, 504, 599,
        ] {
            assert!(is_transient(&place(status, "{}")), "{status}");
        }
    }

    #[test]
    fn transient_descriptions_quote_the_exchange_briefly() {
        let PlacementOutcome::Transient { error } = place(503, r#"{"error":"down for lunch"}"#)
        else {
            panic!("expected transient");
        };
        assert_eq!(
            error,
            "exchange answered 503 Service Unavailable: down for lunch"
        );

        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(10_000));
        let PlacementOutcome::Rejected { reason } = place(422, &long) else {
            panic!("expected rejected");
        };
        assert!(reason.chars().count() <= MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn lookup_statuses() {
        let ok = StatusCode::OK;
        assert_eq!(
            classify_lookup(ok, r#"{"exchange_order_id":"EX-9"}"#).unwrap(),
            LookupOutcome::Placed {
                exchange_order_id: "EX-9".into()
            }
        );
        assert_eq!(
            classify_lookup(StatusCode::NOT_FOUND, "").unwrap(),
            LookupOutcome::Unknown
        );
        assert!(classify_lookup(ok, "garbage").is_err());
        for status in [400, 401, 422, 429, 500, 503] {
            assert!(classify_lookup(StatusCode::from_u16(status).unwrap(), "").is_err());
        }
    }

    #[test]
    fn cancel_statuses() {
        let cancel =
            |status: u16, body: &str| classify_cancel(StatusCode::from_u16(status).unwrap(), body);
        assert_eq!(
            cancel(200, r#"{"exchange_order_id":"EX-3","status":"canceled"}"#),
            ExchangeCancelOutcome::Accepted {
                exchange_order_id: "EX-3".into()
            }
        );
        assert!(matches!(
            cancel(200, "{}"),
            ExchangeCancelOutcome::Transient { .. }
        ));
        for (status, body, refusal) in [
            (
                422,
                r#"{"reason":"order is filled","refusal":"filled"}"#,
                CancelRefusal::AlreadyFilled,
            ),
            (
                422,
                r#"{"reason":"order expired","refusal":"expired"}"#,
                CancelRefusal::AlreadyExpired,
            ),
            (
                404,
                r#"{"error":"unknown order","refusal":"unknown_order"}"#,
                CancelRefusal::UnknownOrder,
            ),
            (
                400,
                r#"{"reason":"client_order_id must be a UUID"}"#,
                CancelRefusal::Invalid,
            ),
        ] {
            match cancel(status, body) {
                ExchangeCancelOutcome::Refused {
                    refusal: got,
                    reason,
                } => {
                    assert_eq!(got, refusal, "{body}");
                    assert!(!reason.is_empty() && !reason.contains('{'), "{reason}");
                }
                other => panic!("{status} {body}: expected refused, got {other:?}"),
            }
        }
        // A bare 404 may be a wrong base URL: not proof that the order is unknown.
        for (status, body) in [
            (404, ""),
            (404, r#"{"error":"no route"}"#),
            (401, ""),
            (409, ""),
            (429, ""),
            (503, r#"{"error":"exchange is down"}"#),
        ] {
            assert!(
                matches!(
                    cancel(status, body),
                    ExchangeCancelOutcome::Transient { .. }
                ),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn debug_hides_the_key_and_errors_never_show_it() {
        let exchange = HttpExchange::new(
            "http://127.0.0.1:9/".into(),
            Some("s3cr3t-key".into()),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
        .unwrap();
        let debug = format!("{exchange:?}");
        assert!(!debug.contains("s3cr3t-key"), "{debug}");
        assert!(debug.contains("http://127.0.0.1:9"), "{debug}");
        assert_eq!(exchange.base_url(), "http://127.0.0.1:9");
        assert_eq!(
            exchange.scrub("echo: s3cr3t-key".into()),
            "echo: [redacted]"
        );
    }

    /// How far a call got, against sockets that misbehave at each step.
    mod reach {
        use std::net::SocketAddr;

        use serde_json::json;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpSocket, TcpStream};

        use super::*;

        const KEY: &str = "k3y-never-shown";

        fn exchange(addr: SocketAddr, connect: Duration, request: Duration) -> HttpExchange {
            HttpExchange::new(format!("http://{addr}"), Some(KEY.into()), connect, request).unwrap()
        }

        async fn place(exchange: &HttpExchange) -> PlacementOutcome {
            exchange
                .send_placement(&json!({"client_order_id": "c"}))
                .await
        }

        fn transient(outcome: PlacementOutcome) -> String {
            match outcome {
                PlacementOutcome::Transient { error } if !error.contains(KEY) => error,
                other => panic!("expected transient without the key, got {other:?}"),
            }
        }

        fn unknown(outcome: PlacementOutcome) -> String {
            match outcome {
                PlacementOutcome::Unknown { error } if !error.contains(KEY) => {
                    assert!(error.contains("may have been placed"), "{error}");
                    error
                }
                other => panic!("expected unknown without the key, got {other:?}"),
            }
        }

        /// A server that accepts connections and does `serve` with each.
        async fn server<F, Fut>(serve: F) -> SocketAddr
        where
            F: Fn(TcpStream) -> Fut + Send + 'static,
            Fut: std::future::Future<Output = ()> + Send + 'static,
        {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream));
                }
            });
            addr
        }

        /// Reads until the end of the request head (the bodies here are small enough to come
        /// with it), so that the client has written its request before the server misbehaves.
        async fn read_request(stream: &mut TcpStream) {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        }

        #[tokio::test]
        async fn nothing_listening_is_transient() {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let exchange = exchange(addr, Duration::from_secs(1), Duration::from_secs(2));
            let error = transient(place(&exchange).await);
            assert!(error.contains("could not connect"), "{error}");
            let error = exchange.lookup(OrderId::generate()).await.unwrap_err();
            assert!(error.0.contains("could not connect"), "{error}");
            let ExchangeCancelOutcome::Transient { error } =
                exchange.cancel(OrderId::generate()).await
            else {
                panic!("a cancel that never left is transient");
            };
            assert!(
                error.contains("could not connect") && !error.contains(KEY),
                "{error}"
            );
        }

        #[tokio::test]
        async fn a_connection_closed_after_the_request_is_unknown() {
            let addr = server(|mut stream| async move {
                read_request(&mut stream).await;
                drop(stream);
            })
            .await;
            let exchange = exchange(addr, Duration::from_secs(1), Duration::from_secs(5));
            let error = unknown(place(&exchange).await);
            assert!(error.contains("connection to the exchange lost"), "{error}");
            assert!(exchange.lookup(OrderId::generate()).await.is_err());
            // A cancel that may have arrived is simply sent again: it is idempotent.
            let ExchangeCancelOutcome::Transient { error } =
                exchange.cancel(OrderId::generate()).await
            else {
                panic!("a cancel whose answer was lost is transient");
            };
            assert!(error.contains("sent again"), "{error}");
        }

        #[tokio::test]
        async fn a_connection_closed_at_once_is_unknown() {
            // The client cannot tell whether the exchange read its request first.
            let addr = server(|stream| async move { drop(stream) }).await;
            let exchange = exchange(addr, Duration::from_secs(1), Duration::from_secs(5));
            unknown(place(&exchange).await);
        }

        #[tokio::test]
        async fn silence_after_the_request_is_unknown_once_the_timeout_passes() {
            let addr = server(|mut stream| async move {
                read_request(&mut stream).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(stream);
            })
            .await;
            let exchange = exchange(addr, Duration::from_secs(1), Duration::from_millis(200));
            let error = unknown(place(&exchange).await);
            assert!(error.contains("did not answer within 200 ms"), "{error}");
            let error = exchange.lookup(OrderId::generate()).await.unwrap_err();
            assert!(error.0.contains("did not answer within 200 ms"), "{error}");
        }

        #[tokio::test]
        async fn an_answer_cut_short_is_unknown() {
            let addr = server(|mut stream| async move {
                read_request(&mut stream).await;
                let head = "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                            content-length: 200\r\n\r\n{\"exchange_order_id\":\"EX";
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.flush().await;
                drop(stream);
            })
            .await;
            let exchange = exchange(addr, Duration::from_secs(1), Duration::from_secs(5));
            let error = unknown(place(&exchange).await);
            assert!(error.contains("201 Created could not be read"), "{error}");
        }

        #[tokio::test]
        async fn a_connect_timeout_is_transient_and_a_request_timeout_while_connecting_unknown() {
            // A listener that never accepts, with its accept queue filled: Linux drops further
            // SYNs, so a new connection hangs in the handshake.
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let listener = socket.listen(0).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut fillers = Vec::new();
            let mut full = false;
            for _ in 0..16 {
                match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr))
                    .await
                {
                    Ok(Ok(stream)) => fillers.push(stream),
                    Ok(Err(_)) => break,
                    Err(_) => {
                        full = true;
                        break;
                    }
                }
            }
            if !full {
                eprintln!("this system does not hang connections to a full listener; skipped");
                return;
            }

            let exchange = exchange(addr, Duration::from_millis(300), Duration::from_secs(5));
            let error = transient(place(&exchange).await);
            assert!(
                error.contains("could not connect to the exchange within 300 ms"),
                "{error}"
            );

            // When the overall timeout ends a call still connecting, the client cannot tell it
            // apart from one that went out: the safe answer is "maybe".
            let hasty = self::exchange(addr, Duration::from_secs(5), Duration::from_millis(300));
            unknown(place(&hasty).await);
            drop((fillers, listener));
        }
    }

    #[test]
    fn bad_urls_and_keys_fail_at_construction() {
        let timeouts = (Duration::from_secs(1), Duration::from_secs(1));
        assert!(HttpExchange::new("not a url".into(), None, timeouts.0, timeouts.1).is_err());
        let error = HttpExchange::new(
            "http://localhost".into(),
            Some("bad\nkey-zz9".into()),
            timeouts.0,
            timeouts.1,
        )
        .unwrap_err();
        assert!(!format!("{error} {error:?}").contains("key-zz9"));
    }
}

/// How to reach the exchange.
#[derive(Clone)]
pub struct ExchangeConfig {
    pub base_url: String,
    /// The API key itself (local runs); never printed.
    pub api_key: Option<String>,
    /// A Secrets Manager secret holding the API key (AWS); read at start-up.
    pub api_key_secret_arn: Option<String>,
    pub connect_timeout: Duration,
    /// Bounds one placement call; the exchange takes ≈0.5 s, so this leaves room for its slow
    /// moments while keeping the lease (and the visibility timeout) short.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ExchangeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("api_key_secret_arn", &self.api_key_secret_arn)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}
