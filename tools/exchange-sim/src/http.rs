//! The simulator's HTTP surface: the two exchange routes the order service calls (`POST /orders`,
//! `GET /orders/{client_order_id}`) with the configured misbehaviour applied, and the harness
//! routes tests use to steer and inspect it (`/control`, `/stats`, `/health`).
//!
//! `POST /orders` takes `client_order_id`, `instrument`, `side`, `type`, `limit_price`,
//! `quantity` and an optional `expires_at` (RFC 3339; absent or `null`: no expiry). It answers
//! `201` with `exchange_order_id` for a new order, `200` with the original one for an id accepted
//! before, `422` with a `reason` for a business refusal (expired, instrument not tradable), `400`
//! for a malformed body, `401` for a wrong key and `503` while down or on an injected failure —
//! or, when told to, nothing at all after accepting (held back, or the connection dropped).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::book::{Accepted, Book, PlacedOrder, Refusal, Stats, Withheld};
use crate::conn::Connection;
use crate::settings::{ControlPatch, ControlView, SimSettings};

/// The header the API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Everything the simulator knows, shared by the handlers and by [`crate::SimHandle`]. The locks
/// are std mutexes held for a few instructions and never across an `.await`.
pub(crate) struct Sim {
    settings: Mutex<SimSettings>,
    book: Mutex<Book>,
    rng: Mutex<XorShift>,
}

impl Sim {
    pub(crate) fn new(settings: SimSettings) -> Self {
        Self {
            settings: Mutex::new(settings),
            book: Mutex::new(Book::default()),
            rng: Mutex::new(XorShift::from_clock()),
        }
    }

    /// A copy of the current settings, so that a request sees one consistent set.
    pub(crate) fn settings(&self) -> SimSettings {
        lock(&self.settings).clone()
    }

    pub(crate) fn update(&self, patch: &ControlPatch) -> Result<ControlView, String> {
        let mut settings = lock(&self.settings);
        settings.apply(patch)?;
        Ok(settings.view())
    }

    pub(crate) fn stats(&self) -> Stats {
        lock(&self.book).stats()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// True with probability `rate`.
    fn fails(&self, rate: f64) -> bool {
        rate > 0.0 && lock(&self.rng).next_f64() < rate
    }
}

/// A handler never panics while holding a lock, but if one ever did the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/orders", post(place))
        .route("/orders/{client_order_id}", get(lookup))
        .route("/stats", get(stats))
        .route("/control", get(show_control).post(change_control))
        .route("/health", get(health))
        .with_state(sim)
}

/// What the service sends to place an order.
#[derive(Debug, Deserialize)]
struct PlaceRequest {
    client_order_id: String,
    instrument: String,
    side: String,
    #[serde(rename = "type")]
    order_type: String,
    #[serde(default)]
    limit_price: Option<String>,
    quantity: i64,
    /// RFC 3339; absent or `null` for an order without an expiry.
    #[serde(default)]
    expires_at: Option<String>,
}

/// A placement body that passed the checks.
#[derive(Debug)]
struct Placement {
    id: Uuid,
    request: PlaceRequest,
    expires_at: Option<OffsetDateTime>,
}

/// Latency, key, shape, then the failure modes in the order a real exchange would hit them:
/// down, transient failure; then, atomically, the idempotent accept, which repeats the original
/// answer for an id it already has and otherwise refuses an expired order or an instrument that
/// is not tradable. Last, if told to, the answer to an accepted placement is withheld.
async fn place(
    State(sim): State<Arc<Sim>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The order reached the exchange now; the latency is the exchange's own time.
    let arrived = OffsetDateTime::now_utc();
    tokio::time::sleep(sim.settings().latency).await;
    // Read after the latency, so that a switch flipped meanwhile applies to this answer.
    let settings = sim.settings();
    if let Some(response) = unauthenticated(&settings, &headers) {
        return response;
    }
    let Placement {
        id,
        request,
        expires_at,
    } = match parse_place(&body) {
        Ok(parsed) => parsed,
        Err(reason) => return reply(StatusCode::BAD_REQUEST, json!({ "reason": reason })),
    };
    sim.book().record_call(id, arrived);

    if settings.down {
        tracing::info!(client_order_id = %id, outcome = "down", "placement refused");
        return down();
    }
    if sim.fails(settings.failure_rate) {
        tracing::info!(client_order_id = %id, outcome = "injected_failure", "placement failed");
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "simulated transient failure, try again" }),
        );
    }

    let expired = expires_at.is_some_and(|expiry| expiry <= arrived);
    let instrument = request.instrument.clone();
    let accepted = sim.book().accept(
        id,
        || {
            if expired {
                Some(Refusal::Expired)
            } else if settings.rejects(&instrument) {
                Some(Refusal::InstrumentNotTradable)
            } else {
                None
            }
        },
        |exchange_order_id| PlacedOrder {
            exchange_order_id,
            client_order_id: id.to_string(),
            instrument: request.instrument,
            side: request.side,
            order_type: request.order_type,
            limit_price: request.limit_price,
            quantity: request.quantity,
            expires_at: expires_at.and_then(|expiry| expiry.format(&Rfc3339).ok()),
        },
    );
    let (status, placed) = match accepted {
        Accepted::New(placed) => (StatusCode::CREATED, placed),
        Accepted::Duplicate(placed) => (StatusCode::OK, placed),
        Accepted::Refused(Refusal::Expired) => {
            let expiry = expires_at
                .and_then(|expiry| expiry.format(&Rfc3339).ok())
                .unwrap_or_default();
            tracing::info!(client_order_id = %id, expires_at = %expiry, outcome = "expired", "placement refused");
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "reason": format!(
                        "order expired before it reached the exchange (expires_at {expiry})"
                    ),
                }),
            );
        }
        Accepted::Refused(Refusal::InstrumentNotTradable) => {
            tracing::info!(client_order_id = %id, outcome = "rejected", "placement rejected");
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "reason": format!("instrument {instrument} is not tradable") }),
            );
        }
    };
    tracing::info!(
        client_order_id = %id,
        exchange_order_id = %placed.exchange_order_id,
        outcome = if status == StatusCode::CREATED { "placed" } else { "duplicate" },
        "placement accepted"
    );

    let mut hold_back =
        settings.timeout_after_accept || sim.fails(settings.timeout_after_accept_rate);
    if settings.drop_after_accept || sim.fails(settings.drop_after_accept_rate) {
        match extensions.get::<ConnectInfo<Connection>>() {
            Some(ConnectInfo(connection)) => {
                connection.cut();
                sim.book().record_withheld(Withheld::Dropped);
                tracing::info!(client_order_id = %id, "accepted, connection dropped unanswered");
                // Never written: the connection fails on the first byte and is closed.
                return reply(StatusCode::SERVICE_UNAVAILABLE, json!({}));
            }
            // Served by someone else's server: nothing to cut, so the client gets no answer the
            // other way.
            None => hold_back = true,
        }
    }
    if hold_back {
        sim.book().record_withheld(Withheld::HeldBack);
        tracing::info!(
            client_order_id = %id,
            held_for_ms = settings.timeout_after_accept_delay.as_millis() as u64,
            "accepted, answer held back"
        );
        tokio::time::sleep(settings.timeout_after_accept_delay).await;
    }
    reply(
        status,
        json!({
            "exchange_order_id": placed.exchange_order_id,
            "client_order_id": placed.client_order_id,
        }),
    )
}

/// Lookups never fail at random (reconciliation must be able to rely on them), only when down.
async fn lookup(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(client_order_id): Path<String>,
) -> Response {
    let arrived = OffsetDateTime::now_utc();
    tokio::time::sleep(sim.settings().lookup_latency).await;
    let settings = sim.settings();
    if let Some(response) = unauthenticated(&settings, &headers) {
        return response;
    }
    sim.book().record_lookup(arrived);
    if settings.down {
        return down();
    }
    let Ok(id) = Uuid::parse_str(&client_order_id) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({ "error": "client_order_id must be a UUID" }),
        );
    };
    match sim.book().find(id) {
        Some(placed) => reply(StatusCode::OK, json!(placed)),
        None => reply(StatusCode::NOT_FOUND, json!({ "error": "unknown" })),
    }
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    reply(StatusCode::OK, json!(sim.stats()))
}

async fn show_control(State(sim): State<Arc<Sim>>) -> Response {
    reply(StatusCode::OK, json!(sim.settings().view()))
}

async fn change_control(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let patch: ControlPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(error) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("invalid control document: {error}") }),
            );
        }
    };
    match sim.update(&patch) {
        Ok(view) => {
            tracing::info!(control = ?patch, "settings changed");
            reply(StatusCode::OK, json!(view))
        }
        Err(error) => reply(StatusCode::BAD_REQUEST, json!({ "error": error })),
    }
}

async fn health() -> Response {
    reply(StatusCode::OK, json!({ "status": "ok" }))
}

/// The 401 to answer when a key is configured and the request does not carry it.
fn unauthenticated(settings: &SimSettings, headers: &HeaderMap) -> Option<Response> {
    let expected = settings.api_key.as_deref()?;
    let given = headers
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok());
    (given != Some(expected)).then(|| {
        reply(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "missing or invalid API key" }),
        )
    })
}

/// Checks the placement body enough to catch a broken client, not to re-validate orders.
fn parse_place(body: &[u8]) -> Result<Placement, String> {
    let request: PlaceRequest =
        serde_json::from_slice(body).map_err(|error| format!("invalid order: {error}"))?;
    let id = Uuid::parse_str(&request.client_order_id)
        .map_err(|_| "client_order_id must be a UUID".to_string())?;
    if request.instrument.trim().is_empty() {
        return Err("instrument must not be empty".into());
    }
    if !matches!(request.side.as_str(), "buy" | "sell") {
        return Err(format!("side must be buy or sell, got {}", request.side));
    }
    match (request.order_type.as_str(), &request.limit_price) {
        ("market", None) | ("limit", Some(_)) => {}
        ("market", Some(_)) => return Err("a market order has no limit_price".into()),
        ("limit", None) => return Err("a limit order needs a limit_price".into()),
        (other, _) => return Err(format!("type must be market or limit, got {other}")),
    }
    if request.quantity <= 0 {
        return Err("quantity must be positive".into());
    }
    let expires_at = match request.expires_at.as_deref() {
        None => None,
        Some(text) => Some(
            OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| format!("expires_at must be an RFC 3339 date-time, got {text}"))?
                .to_offset(time::UtcOffset::UTC),
        ),
    };
    Ok(Placement {
        id,
        request,
        expires_at,
    })
}

fn down() -> Response {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": "exchange is down" }),
    )
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// xorshift64: enough randomness to fail about `failure_rate` of the calls, without a crate.
struct XorShift(u64);

impl XorShift {
    fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        // Mixed with a random UUID so that simulators started in the same instant differ.
        let seed = nanos ^ (Uuid::new_v4().as_u128() as u64);
        Self(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_failures_follow_the_rate() {
        let sim = Sim::new(SimSettings::default());
        assert!((0..1000).all(|_| !sim.fails(0.0)));
        assert!((0..1000).all(|_| sim.fails(1.0)));
        let failures = (0..10_000).filter(|_| sim.fails(0.1)).count();
        assert!((700..1300).contains(&failures), "{failures}");
    }

    #[test]
    fn placement_bodies_are_checked() {
        let id = Uuid::new_v4();
        let body = |side: &str, kind: &str, price: Value, quantity: i64| {
            json!({
                "client_order_id": id.to_string(), "instrument": "US0378331005",
                "side": side, "type": kind, "limit_price": price, "quantity": quantity,
            })
            .to_string()
        };
        assert!(parse_place(body("buy", "market", Value::Null, 1).as_bytes()).is_ok());
        let with_expiry = |expiry: Value| {
            let mut value: Value =
                serde_json::from_str(&body("buy", "market", Value::Null, 1)).unwrap();
            value["expires_at"] = expiry;
            parse_place(value.to_string().as_bytes())
        };
        assert_eq!(with_expiry(Value::Null).unwrap().expires_at, None);
        assert_eq!(
            with_expiry(json!("2030-01-02T03:04:05+02:00"))
                .unwrap()
                .expires_at,
            Some(time::macros::datetime!(2030-01-02 01:04:05 UTC))
        );
        for bad in [json!("tomorrow"), json!("2030-01-02"), json!(5)] {
            assert!(with_expiry(bad.clone()).is_err(), "{bad}");
        }
        assert!(parse_place(body("sell", "limit", json!("10.50"), 1).as_bytes()).is_ok());
        for bad in [
            body("hold", "market", Value::Null, 1),
            body("buy", "stop", Value::Null, 1),
            body("buy", "limit", Value::Null, 1),
            body("buy", "market", json!("1"), 1),
            body("buy", "market", Value::Null, 0),
            r#"{"client_order_id":"nope"}"#.to_string(),
            "not json".to_string(),
        ] {
            assert!(parse_place(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
