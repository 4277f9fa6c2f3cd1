//! The simulator's HTTP surface: the exchange routes the order service calls (`POST /orders`,
//! `GET /orders/{client_order_id}`, `POST /orders/{client_order_id}/cancel`, and the execution
//! feed's WebSocket at `GET /feed`) with the configured misbehaviour applied, and the harness
//! routes tests use to steer and inspect it (`/control`, `/stats`, `/feed/stats`, `/feed/drop`,
//! `/load`, `/health`).
//!
//! `POST /orders` takes `client_order_id`, `instrument`, `side`, `type`, `limit_price`,
//! `quantity` and an optional `expires_at` (RFC 3339; absent or `null`: no expiry). It answers
//! `201` with `exchange_order_id` for a new order, `200` with the original one for an id accepted
//! before, `422` with a `reason` for a business refusal (expired, instrument not tradable), `400`
//! for a malformed body, `401` for a wrong key and `503` while down or on an injected failure —
//! or, when told to, nothing at all after accepting (held back, or the connection dropped).
//! An accepted order is then worked by the market (`crate::market`): its fills, cancel or expiry
//! are published on the feed.
//!
//! `POST /orders/{client_order_id}/cancel` (no body) takes the lookup latency and fails like a
//! placement while down or on an injected failure (`503`); otherwise it answers `200` with
//! `exchange_order_id`, `status` `canceled`, `canceled_quantity` and `filled_quantity` (decimal
//! strings) when the unfilled rest is canceled — now, or by an earlier cancel: it is idempotent —
//! `422` with `reason` and `refusal` `filled` or `expired` when nothing is left to cancel (and a
//! `cancel_refused` report goes on the feed), `404` with `refusal` `unknown_order` for an id it
//! never accepted, `400` for an id that is not a UUID, `401` for a wrong key.
//!
//! `GET /orders/{client_order_id}` also shows the order's `state` (`working`, `filled`,
//! `canceled`, `expired`) and `filled_quantity`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use order_shared::adapters::execution_feed::RESUME_AFTER_PARAM;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use order_shared::domain::{Price, Quantity};

use crate::book::{Accepted, Book, PlacedOrder, Refusal, Stats, Withheld};
use crate::conn::Connection;
use crate::counts::FeedStats;
use crate::feed::{ConnectionFaults, Feed};
use crate::load::{LoadRequest, LoadRun, LoadView};
use crate::market::{CancelAnswer, LoadPlan, Market, WorkState};
use crate::rng::XorShift;
use crate::settings::{ControlPatch, ControlView, SimSettings};

/// The header the API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Everything the simulator knows, shared by the handlers and by [`crate::SimHandle`]. The locks
/// are std mutexes held for a few instructions and never across an `.await`.
///
/// Lock order, where more than one is held: `market`, then `rng`, then the feed's own.
pub(crate) struct Sim {
    settings: Mutex<SimSettings>,
    book: Mutex<Book>,
    rng: Mutex<XorShift>,
    market: Mutex<Market>,
    pub(crate) feed: Feed,
    /// Whether the task that fills limit orders and expires orders runs (started with the first
    /// accepted order, so that building a router needs no runtime).
    engine_started: AtomicBool,
    load: Mutex<Option<Arc<LoadRun>>>,
}

impl Sim {
    pub(crate) fn new(settings: SimSettings) -> Self {
        Self {
            feed: Feed::new(settings.feed_capacity),
            settings: Mutex::new(settings),
            book: Mutex::new(Book::default()),
            rng: Mutex::new(XorShift::from_clock()),
            market: Mutex::new(Market::default()),
            engine_started: AtomicBool::new(false),
            load: Mutex::new(None),
        }
    }

    /// Starts working an accepted order (a market order fills here and now).
    fn open_order(self: &Arc<Self>, placed: &PlacedOrder, id: Uuid, settings: &SimSettings) {
        self.ensure_engine();
        let mut market = lock(&self.market);
        let mut rng = lock(&self.rng);
        let mut feed = self.feed.writer(settings.feed_duplicate_rate);
        market.open(
            placed,
            id,
            OffsetDateTime::now_utc(),
            settings.market_fills_max,
            &mut rng,
            &mut feed,
        );
    }

    /// One interval of the market: expiries and limit fills.
    fn tick(&self) {
        let settings = self.settings();
        let mut market = lock(&self.market);
        let mut rng = lock(&self.rng);
        let mut feed = self.feed.writer(settings.feed_duplicate_rate);
        market.tick(
            OffsetDateTime::now_utc(),
            settings.limit_fill_rate,
            &mut rng,
            &mut feed,
        );
    }

    fn ensure_engine(self: &Arc<Self>) {
        if self.engine_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let sim: Weak<Sim> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(interval) = sim.upgrade().map(|sim| sim.settings().fill_interval) else {
                    return;
                };
                tokio::time::sleep(interval.max(std::time::Duration::from_millis(1))).await;
                match sim.upgrade() {
                    Some(sim) => sim.tick(),
                    None => return,
                }
            }
        });
    }

    pub(crate) fn cancel(&self, id: Uuid) -> CancelAnswer {
        let duplicate_rate = self.settings().feed_duplicate_rate;
        let mut market = lock(&self.market);
        let mut feed = self.feed.writer(duplicate_rate);
        market.cancel(id, OffsetDateTime::now_utc(), &mut feed)
    }

    fn load_step(&self, plan: &mut LoadPlan, count: u64) -> u64 {
        let duplicate_rate = self.settings().feed_duplicate_rate;
        let mut market = lock(&self.market);
        let mut rng = lock(&self.rng);
        let mut feed = self.feed.writer(duplicate_rate);
        market.load_step(plan, count, OffsetDateTime::now_utc(), &mut rng, &mut feed)
    }

    /// Starts a load run, unless one is running.
    pub(crate) fn start_load(
        self: &Arc<Self>,
        request: LoadRequest,
    ) -> Result<LoadView, LoadRefusal> {
        request.check().map_err(LoadRefusal::Invalid)?;
        if let Some(known) = lock(&self.market).knows_any(&request.client_order_ids) {
            return Err(LoadRefusal::Invalid(format!(
                "client_order_ids: {known} is already an order at the exchange"
            )));
        }
        let mut current = lock(&self.load);
        if current.as_ref().is_some_and(|run| run.is_running()) {
            return Err(LoadRefusal::Running);
        }
        let plan = request.plan();
        let run = LoadRun::new(request);
        *current = Some(Arc::clone(&run));
        let sim = Arc::downgrade(self);
        tokio::spawn(Arc::clone(&run).generate(plan, move |plan, count| {
            sim.upgrade().map(|sim| sim.load_step(plan, count))
        }));
        Ok(run.view())
    }

    pub(crate) fn load_view(&self) -> LoadView {
        lock(&self.load)
            .as_ref()
            .map(|run| run.view())
            .unwrap_or_default()
    }

    pub(crate) fn stop_load(&self) -> LoadView {
        match lock(&self.load).as_ref() {
            Some(run) => {
                run.stop();
                run.view()
            }
            None => LoadView::default(),
        }
    }

    pub(crate) fn feed_stats(&self, with_orders: bool) -> FeedStats {
        let market = lock(&self.market).counts(with_orders);
        FeedStats::new(self.feed.counts(), market)
    }

    fn faults(&self) -> ConnectionFaults {
        let settings = lock(&self.settings);
        ConnectionFaults {
            redeliver_rate: settings.feed_redeliver_rate,
            drop_rate: settings.feed_drop_rate,
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
        lock(&self.rng).chance(rate)
    }
}

/// Why a load run was not started.
#[derive(Debug)]
pub(crate) enum LoadRefusal {
    Running,
    Invalid(String),
}

/// A handler never panics while holding a lock, but if one ever did the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/orders", post(place))
        .route("/orders/{client_order_id}", get(lookup))
        .route("/orders/{client_order_id}/cancel", post(cancel))
        .route("/feed", get(feed))
        .route("/feed/stats", get(feed_stats))
        .route("/feed/drop", post(drop_feed_connections))
        .route("/load", get(show_load).post(start_load).delete(stop_load))
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
    if status == StatusCode::CREATED {
        sim.open_order(&placed, id, &settings);
    }

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
    let Some(placed) = sim.book().find(id) else {
        return reply(StatusCode::NOT_FOUND, json!({ "error": "unknown" }));
    };
    let mut body = json!(placed);
    if let Some(executions) = lock(&sim.market).executions(id) {
        body["state"] = json!(executions.state);
        body["filled_quantity"] = json!(executions.filled_quantity);
    }
    reply(StatusCode::OK, body)
}

/// Cancels are as cheap as lookups, and fail like placements (down, injected failures), so that
/// the service's cancel retries get exercised.
async fn cancel(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(client_order_id): Path<String>,
) -> Response {
    tokio::time::sleep(sim.settings().lookup_latency).await;
    let settings = sim.settings();
    if let Some(response) = unauthenticated(&settings, &headers) {
        return response;
    }
    if settings.down {
        return down();
    }
    if sim.fails(settings.failure_rate) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "simulated transient failure, try again" }),
        );
    }
    let Ok(id) = Uuid::parse_str(&client_order_id) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({ "reason": "client_order_id must be a UUID" }),
        );
    };
    let answer = sim.cancel(id);
    tracing::info!(client_order_id = %id, answer = ?answer, "cancel");
    match answer {
        CancelAnswer::Canceled {
            exchange_order_id,
            canceled,
            filled,
        } => reply(
            StatusCode::OK,
            json!({
                "client_order_id": id.to_string(),
                "exchange_order_id": exchange_order_id,
                "status": "canceled",
                "canceled_quantity": canceled.to_string(),
                "filled_quantity": filled.to_string(),
            }),
        ),
        CancelAnswer::TooLate {
            exchange_order_id,
            state,
            filled,
        } => {
            let (refusal, reason) = match state {
                WorkState::Expired => ("expired", "order has expired"),
                _ => ("filled", "order is already filled"),
            };
            reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "client_order_id": id.to_string(),
                    "exchange_order_id": exchange_order_id,
                    "refusal": refusal,
                    "reason": reason,
                    "filled_quantity": filled.to_string(),
                }),
            )
        }
        CancelAnswer::Unknown => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": "unknown order", "refusal": "unknown_order" }),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    /// [`RESUME_AFTER_PARAM`]: the last sequence the client has.
    after: Option<u64>,
}

/// The execution feed: a WebSocket, behind the same key as the order routes.
async fn feed(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(response) = unauthenticated(&sim.settings(), &headers) {
        return response;
    }
    debug_assert_eq!(RESUME_AFTER_PARAM, "after");
    let after = query.after;
    upgrade.on_upgrade(move |socket| async move {
        sim.feed.serve(socket, after, || sim.faults()).await;
    })
}

#[derive(Debug, Deserialize)]
struct FeedStatsQuery {
    /// `false` leaves out the per-order map (large after a long load run).
    orders: Option<bool>,
}

async fn feed_stats(State(sim): State<Arc<Sim>>, Query(query): Query<FeedStatsQuery>) -> Response {
    reply(
        StatusCode::OK,
        json!(sim.feed_stats(query.orders.unwrap_or(true))),
    )
}

async fn drop_feed_connections(State(sim): State<Arc<Sim>>) -> Response {
    sim.feed.drop_connections();
    tracing::info!("feed connections dropped on request");
    reply(StatusCode::OK, json!({ "dropped": true }))
}

async fn show_load(State(sim): State<Arc<Sim>>) -> Response {
    reply(StatusCode::OK, json!(sim.load_view()))
}

async fn start_load(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request: LoadRequest = if body.is_empty() {
        LoadRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": format!("invalid load document: {error}") }),
                );
            }
        }
    };
    match sim.start_load(request) {
        Ok(view) => reply(StatusCode::ACCEPTED, json!(view)),
        Err(LoadRefusal::Running) => reply(
            StatusCode::CONFLICT,
            json!({ "error": "a load run is in progress (DELETE /load stops it)" }),
        ),
        Err(LoadRefusal::Invalid(error)) => {
            reply(StatusCode::BAD_REQUEST, json!({ "error": error }))
        }
    }
}

async fn stop_load(State(sim): State<Arc<Sim>>) -> Response {
    reply(StatusCode::OK, json!(sim.stop_load()))
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
    if request.quantity <= 0 || request.quantity > Quantity::MAX {
        return Err(format!("quantity must be from 1 to {}", Quantity::MAX));
    }
    if let Some(price) = &request.limit_price {
        Price::parse(price).map_err(|problem| format!("limit_price {problem}"))?;
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
