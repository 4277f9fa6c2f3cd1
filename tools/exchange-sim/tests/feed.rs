//! The execution feed over a real WebSocket (tokio-tungstenite as the client, reading every
//! message with the wire format's own parser, as the ingester will): orders worked into fills,
//! cancels and expiries; resuming with `after=N` with no gap and no duplicate; injected
//! duplicates, redeliveries and dropped connections; the bounded memory; the load mode and the
//! counts in `/feed/stats`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use exchange_sim::{ControlPatch, FeedStats, LoadRequest, SimHandle, SimSettings, WorkState};
use futures::{SinkExt, StreamExt};
use order_shared::adapters::execution_feed::{CLOSE_AHEAD_OF_FEED, CLOSE_NOT_KEPT, parse_report};
use order_shared::domain::{ExecutionKind, ExecutionReport, OrderId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

mod common;

use common::{APPLE, quiet, start};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Long enough for a loaded machine, short enough that a missing report fails the test soon.
const WAIT: Duration = Duration::from_secs(10);

/// A simulator whose limit orders only fill when a test says so.
fn still() -> SimSettings {
    SimSettings {
        limit_fill_rate: 0.0,
        fill_interval: Duration::from_millis(10),
        ..quiet()
    }
}

async fn connect(sim: &SimHandle, after: Option<u64>) -> Socket {
    connect_with_key(sim, after, None).await
}

async fn connect_with_key(sim: &SimHandle, after: Option<u64>, key: Option<&str>) -> Socket {
    let url = match after {
        Some(after) => format!("{}?after={after}", sim.feed_url()),
        None => sim.feed_url(),
    };
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("x-api-key", key.parse().unwrap());
    }
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
}

/// What a connection delivered next.
#[derive(Debug)]
enum Next {
    Report(Box<ExecutionReport>),
    /// A close frame with its code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

async fn next(socket: &mut Socket) -> Next {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("the feed went quiet");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Next::Report(Box::new(parse_report(text.as_str()).unwrap()));
            }
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.expect("a close frame with a code");
                return Next::Closed(u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected feed message {other:?}"),
            None | Some(Err(_)) => return Next::Dropped,
        }
    }
}

async fn report(socket: &mut Socket) -> ExecutionReport {
    match next(socket).await {
        Next::Report(report) => *report,
        other => panic!("expected a report, got {other:?}"),
    }
}

async fn reports(socket: &mut Socket, n: usize) -> Vec<ExecutionReport> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(report(socket).await);
    }
    all
}

/// Reads until the order's report of one of the final kinds (fill, canceled, expired).
async fn until_done(socket: &mut Socket, id: Uuid) -> Vec<ExecutionReport> {
    let mut mine = Vec::new();
    loop {
        let report = report(socket).await;
        if report.client_order_id().as_uuid() == id {
            let done = report.kind().is_final();
            mine.push(report);
            if done {
                return mine;
            }
        }
    }
}

fn assert_gapless(reports: &[ExecutionReport], first: u64) {
    let sequences: Vec<u64> = reports.iter().map(ExecutionReport::sequence).collect();
    let expected: Vec<u64> = (first..first + reports.len() as u64).collect();
    assert_eq!(sequences, expected);
}

fn order(id: Uuid, kind: &str, quantity: i64) -> Value {
    json!({
        "client_order_id": id.to_string(),
        "instrument": APPLE,
        "side": "buy",
        "type": kind,
        "limit_price": (kind == "limit").then_some("187.25"),
        "quantity": quantity,
    })
}

async fn place(sim: &SimHandle, body: &Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/orders", sim.base_url))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["exchange_order_id"].as_str().unwrap().to_owned()
}

async fn cancel(sim: &SimHandle, id: Uuid) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/orders/{id}/cancel", sim.base_url))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn set(sim: &SimHandle, patch: ControlPatch) {
    sim.control(&patch).unwrap();
}

/// Runs a load of `reports` reports and waits until it is all published.
async fn load(sim: &SimHandle, reports: u64, fills_per_order: u32) {
    sim.start_load(LoadRequest {
        reports: Some(reports),
        fills_per_order,
        concurrent_orders: 7,
        ..LoadRequest::default()
    })
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.load().running {
        assert!(tokio::time::Instant::now() < deadline, "the load run hangs");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sim.load().published, reports);
}

fn traded(reports: &[ExecutionReport]) -> i64 {
    reports
        .iter()
        .filter_map(|report| report.event().traded())
        .map(|(quantity, _)| quantity.get())
        .sum()
}

// --- orders worked into reports ---------------------------------------------------------------

#[tokio::test]
async fn market_orders_fill_at_once_and_their_fills_sum_to_the_order_quantity() {
    let sim = start(SimSettings {
        market_fills_max: 4,
        ..still()
    })
    .await;
    let mut socket = connect(&sim, Some(0)).await;
    let mut split = 0;
    for _ in 0..12 {
        let id = Uuid::now_v7();
        let exchange_order_id = place(&sim, &order(id, "market", 9)).await;
        let mine = until_done(&mut socket, id).await;
        let (last, partials) = mine.split_last().unwrap();
        assert_eq!(last.kind(), ExecutionKind::Fill);
        assert!(
            partials
                .iter()
                .all(|r| r.kind() == ExecutionKind::PartialFill)
        );
        assert!(mine.len() <= 4);
        split += usize::from(mine.len() > 1);
        assert_eq!(traded(&mine), 9);
        let mut cumulative = 0;
        for report in &mine {
            cumulative += report.event().traded().unwrap().0.get();
            assert_eq!(report.cumulative_quantity().get(), cumulative);
            assert_eq!(report.remaining_quantity().get(), 9 - cumulative);
            assert_eq!(report.exchange_order_id(), exchange_order_id);
        }
        assert_eq!(sim.feed_stats().orders[&id.to_string()].filled_quantity, 9);
    }
    // One piece has a chance of 1 in 4 per order: all twelve in one piece would be 1 in 16 million.
    assert!(split > 0, "no market order was filled in several reports");
    let stats = sim.feed_stats();
    assert_eq!(stats.total_filled_quantity, 12 * 9);
    assert_eq!(stats.orders_by_state[&WorkState::Filled], 12);
}

#[tokio::test]
async fn a_limit_order_fills_over_time_in_partial_fills_then_a_fill_at_its_price() {
    let sim = start(still()).await;
    let mut socket = connect(&sim, Some(0)).await;
    let id = Uuid::now_v7();
    place(&sim, &order(id, "limit", 10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sim.feed_stats().last_sequence == 0,
        "filled while the fill rate was 0"
    );

    set(
        &sim,
        ControlPatch {
            limit_fill_rate: Some(1.0),
            ..ControlPatch::default()
        },
    );
    let mine = until_done(&mut socket, id).await;
    assert!(mine.len() >= 2, "{mine:?}");
    assert_eq!(mine[0].kind(), ExecutionKind::PartialFill);
    assert_eq!(mine.last().unwrap().kind(), ExecutionKind::Fill);
    assert_eq!(traded(&mine), 10);
    assert!(
        mine.iter()
            .all(|r| r.event().traded().unwrap().1.to_string() == "187.25")
    );
    assert_gapless(&mine, 1);
    let seen: Value = reqwest::get(format!("{}/orders/{id}", sim.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["state"], "filled");
    assert_eq!(seen["filled_quantity"], 10);
}

#[tokio::test]
async fn a_cancel_cancels_the_unfilled_rest_after_partial_fills() {
    // Time enough between two fills to stop them after the first.
    let sim = start(SimSettings {
        fill_interval: Duration::from_millis(300),
        ..still()
    })
    .await;
    let mut socket = connect(&sim, Some(0)).await;
    let id = Uuid::now_v7();
    place(&sim, &order(id, "limit", 10)).await;

    // Let it fill a little: the first fill of a 10-share order takes at most 6.
    set(
        &sim,
        ControlPatch {
            limit_fill_rate: Some(1.0),
            ..ControlPatch::default()
        },
    );
    let first = report(&mut socket).await;
    set(
        &sim,
        ControlPatch {
            limit_fill_rate: Some(0.0),
            ..ControlPatch::default()
        },
    );
    assert_eq!(first.kind(), ExecutionKind::PartialFill);

    let (status, answer) = cancel(&sim, id).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut mine = vec![first];
    mine.extend(until_done(&mut socket, id).await);
    let canceled = mine.last().unwrap();
    assert_eq!(canceled.kind(), ExecutionKind::Canceled);
    let filled = traded(&mine);
    assert!(filled < 10);
    assert_eq!(canceled.event().quantity().unwrap().get(), 10 - filled);
    assert_eq!(canceled.cumulative_quantity().get(), filled);
    assert_eq!(canceled.remaining_quantity().get(), 0);
    assert_eq!(answer["canceled_quantity"], (10 - filled).to_string());
    assert_eq!(answer["filled_quantity"], filled.to_string());

    // Again: the same answer, no second report; and it never fills after.
    let (status, again) = cancel(&sim, id).await;
    assert_eq!((status, &again), (StatusCode::OK, &answer));
    set(
        &sim,
        ControlPatch {
            limit_fill_rate: Some(1.0),
            ..ControlPatch::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = sim.feed_stats();
    assert_eq!(stats.last_sequence, mine.last().unwrap().sequence());
    assert_eq!(stats.orders[&id.to_string()].state, WorkState::Canceled);
    assert_eq!(stats.orders[&id.to_string()].filled_quantity, filled);
}

#[tokio::test]
async fn a_cancel_after_the_fill_is_refused_and_reported_so() {
    let sim = start(still()).await;
    let mut socket = connect(&sim, Some(0)).await;
    let id = Uuid::now_v7();
    place(&sim, &order(id, "market", 5)).await;
    until_done(&mut socket, id).await;

    let (status, answer) = cancel(&sim, id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["refusal"], "filled");
    let refused = report(&mut socket).await;
    assert_eq!(refused.kind(), ExecutionKind::CancelRefused);
    assert_eq!(refused.client_order_id(), OrderId::from(id));
    assert_eq!(refused.cumulative_quantity().get(), 5);
    assert_eq!(refused.event().quantity(), None);

    let (status, answer) = cancel(&sim, Uuid::now_v7()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["refusal"], "unknown_order");
    let stats = sim.feed_stats();
    assert_eq!(stats.cancels_refused, 1);
    assert_eq!(stats.reports_by_kind.cancel_refused, 1);
}

#[tokio::test]
async fn an_order_expires_with_its_unfilled_rest() {
    let sim = start(still()).await;
    let mut socket = connect(&sim, Some(0)).await;
    let id = Uuid::now_v7();
    let mut body = order(id, "limit", 10);
    let expiry = OffsetDateTime::now_utc() + Duration::from_millis(300);
    body["expires_at"] = json!(expiry.format(&Rfc3339).unwrap());
    place(&sim, &body).await;

    let expired = report(&mut socket).await;
    assert_eq!(expired.kind(), ExecutionKind::Expired);
    assert_eq!(expired.event().quantity().unwrap().get(), 10);
    assert_eq!(expired.remaining_quantity().get(), 0);
    assert!(expired.time() >= expiry);
    let (status, answer) = cancel(&sim, id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["refusal"], "expired");
    assert_eq!(sim.feed_stats().orders_by_state[&WorkState::Expired], 1);
}

// --- resuming, faults and memory -------------------------------------------------------------

#[tokio::test]
async fn a_client_resuming_after_n_gets_exactly_the_missed_reports_then_live_ones() {
    let sim = start(still()).await;
    load(&sim, 300, 4).await;

    let mut first = connect(&sim, Some(0)).await;
    let seen = reports(&mut first, 120).await;
    assert_gapless(&seen, 1);
    drop(first);

    // Published while nobody listened.
    load(&sim, 200, 4).await;
    let last_seen = seen.last().unwrap().sequence();
    let mut again = connect(&sim, Some(last_seen)).await;
    let missed = reports(&mut again, 380).await;
    assert_gapless(&missed, 121);

    // Then live: placed after the client caught up.
    let id = Uuid::now_v7();
    place(&sim, &order(id, "market", 3)).await;
    let live = until_done(&mut again, id).await;
    assert_eq!(live[0].sequence(), 501);
    assert_gapless(&live, 501);

    // Every execution once, across both connections.
    let ids: HashSet<_> = seen
        .iter()
        .chain(&missed)
        .chain(&live)
        .map(|r| r.execution_id().clone())
        .collect();
    assert_eq!(ids.len(), 500 + live.len());
}

#[tokio::test]
async fn without_after_a_client_gets_only_what_comes_next() {
    let sim = start(still()).await;
    load(&sim, 50, 5).await;
    let mut socket = connect(&sim, None).await;
    // The connection is served once its first read is done; give it that moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = Uuid::now_v7();
    place(&sim, &order(id, "market", 2)).await;
    assert_eq!(report(&mut socket).await.sequence(), 51);
}

#[tokio::test]
async fn injected_duplicates_repeat_an_execution_under_the_next_sequence() {
    let sim = start(SimSettings {
        feed_duplicate_rate: 1.0,
        ..still()
    })
    .await;
    load(&sim, 50, 5).await;
    let mut socket = connect(&sim, Some(0)).await;
    let all = reports(&mut socket, 100).await;
    assert_gapless(&all, 1);
    for pair in all.chunks(2) {
        assert_eq!(pair[0].execution_id(), pair[1].execution_id());
        assert_eq!(pair[0].event(), pair[1].event());
        assert_eq!(pair[0].cumulative_quantity(), pair[1].cumulative_quantity());
    }
    let stats = sim.feed_stats();
    assert_eq!(stats.duplicates_published, 50);
    assert_eq!(stats.last_sequence, 100);
    // A duplicate is not a fill: the exchange filled 50 shares.
    assert_eq!(stats.total_filled_quantity, 50);
    assert_eq!(
        stats.reports_by_kind.partial_fill + stats.reports_by_kind.fill,
        50
    );
}

#[tokio::test]
async fn a_redelivered_message_repeats_its_sequence_number() {
    let sim = start(SimSettings {
        feed_redeliver_rate: 1.0,
        ..still()
    })
    .await;
    load(&sim, 20, 5).await;
    let mut socket = connect(&sim, Some(0)).await;
    let all = reports(&mut socket, 40).await;
    for (n, pair) in all.chunks(2).enumerate() {
        assert_eq!(pair[0], pair[1]);
        assert_eq!(pair[0].sequence(), n as u64 + 1);
    }
    let stats = sim.feed_stats();
    assert_eq!(stats.messages_redelivered, 20);
    assert_eq!(stats.messages_sent, 40);
}

#[tokio::test]
async fn a_dropped_connection_ends_without_a_close_frame_and_resumes_without_a_gap() {
    let sim = start(still()).await;
    load(&sim, 10, 10).await;
    let mut socket = connect(&sim, Some(0)).await;
    let mut seen = reports(&mut socket, 10).await;

    let response = reqwest::Client::new()
        .post(format!("{}/feed/drop", sim.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.feed_stats().connections_dropped == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Published after the drop: never sent on the dropped connection, which just ends.
    load(&sim, 990, 10).await;
    match next(&mut socket).await {
        Next::Dropped => {}
        other => panic!("a drop sends nothing more, no close frame either: {other:?}"),
    }

    let mut again = connect(&sim, Some(seen.last().unwrap().sequence())).await;
    seen.extend(reports(&mut again, 990).await);
    assert_gapless(&seen, 1);
    let stats = sim.feed_stats();
    assert_eq!(stats.connections_dropped, 1);
    assert_eq!(stats.connections_opened, 2);
}

#[tokio::test]
async fn a_client_that_resumes_after_every_random_drop_gets_everything_once() {
    let sim = start(SimSettings {
        feed_drop_rate: 0.01,
        ..still()
    })
    .await;
    load(&sim, 3000, 10).await;
    let mut seen: Vec<ExecutionReport> = Vec::new();
    let mut connections = 0;
    while seen.len() < 3000 {
        connections += 1;
        assert!(connections < 1000, "no progress");
        let after = seen.last().map_or(0, ExecutionReport::sequence);
        let mut socket = connect(&sim, Some(after)).await;
        while seen.len() < 3000 {
            match next(&mut socket).await {
                Next::Report(report) => seen.push(*report),
                Next::Dropped => break,
                Next::Closed(code, reason) => panic!("unexpected close {code} {reason}"),
            }
        }
    }
    assert_gapless(&seen, 1);
    assert!(
        connections > 1,
        "a drop rate of 1 % over 3000 messages dropped nothing"
    );
    assert!(sim.feed_stats().connections_dropped >= connections - 1);
}

#[tokio::test]
async fn a_resume_point_no_longer_kept_or_beyond_the_feed_is_refused_with_a_close_code() {
    let sim = start(SimSettings {
        feed_capacity: 10,
        ..still()
    })
    .await;
    load(&sim, 50, 5).await;
    let stats = sim.feed_stats();
    assert_eq!((stats.kept, stats.oldest_kept_sequence), (10, 41));

    let mut socket = connect(&sim, Some(5)).await;
    match next(&mut socket).await {
        Next::Closed(code, reason) => {
            assert_eq!(code, CLOSE_NOT_KEPT);
            assert!(reason.contains("41"), "{reason}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // The oldest kept one's predecessor is still a gapless resume point.
    let mut socket = connect(&sim, Some(40)).await;
    assert_gapless(&reports(&mut socket, 10).await, 41);

    let mut socket = connect(&sim, Some(51)).await;
    match next(&mut socket).await {
        Next::Closed(code, _) => assert_eq!(code, CLOSE_AHEAD_OF_FEED),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn the_feed_wants_the_api_key_when_one_is_set() {
    let sim = start(SimSettings {
        api_key: Some("feed-key".into()),
        ..still()
    })
    .await;
    let refused = tokio_tungstenite::connect_async(sim.feed_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let mut socket = connect_with_key(&sim, Some(0), Some("feed-key")).await;
    socket
        .send(Message::Ping(Default::default()))
        .await
        .unwrap();
    load(&sim, 3, 3).await;
    assert_gapless(&reports(&mut socket, 3).await, 1);
}

// --- the load mode and the counts ------------------------------------------------------------

#[tokio::test]
async fn what_a_client_received_matches_the_exchange_counts() {
    let sim = start(SimSettings {
        feed_duplicate_rate: 0.05,
        feed_redeliver_rate: 0.05,
        ..still()
    })
    .await;
    let mut socket = connect(&sim, Some(0)).await;
    load(&sim, 2000, 8).await;
    let stats = sim.feed_stats();
    let mut filled: BTreeMap<String, i64> = BTreeMap::new();
    let mut executions = HashSet::new();
    let mut last = 0;
    while last < stats.last_sequence {
        let report = report(&mut socket).await;
        // What an ingester does: skip what it has, by sequence and by execution id.
        if report.sequence() <= last {
            continue;
        }
        assert_eq!(report.sequence(), last + 1, "a gap");
        last = report.sequence();
        if !executions.insert(report.execution_id().clone()) {
            continue;
        }
        if let Some((quantity, _)) = report.event().traded() {
            *filled
                .entry(report.client_order_id().to_string())
                .or_default() += quantity.get();
        }
    }
    let exchange: BTreeMap<String, i64> = stats
        .orders
        .iter()
        .filter(|(_, order)| order.filled_quantity > 0)
        .map(|(id, order)| (id.clone(), order.filled_quantity))
        .collect();
    assert_eq!(filled, exchange);
    assert_eq!(filled.values().sum::<i64>(), 2000);
    assert_eq!(stats.total_filled_quantity, 2000);
    assert_eq!(stats.last_sequence, 2000 + stats.duplicates_published);
}

#[tokio::test]
async fn the_load_endpoints_start_show_refuse_and_stop_a_run() {
    let sim = start(still()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/load", sim.base_url);
    let given = Uuid::now_v7();
    let response = client
        .post(&url)
        .json(&json!({"rate": 2000, "fills_per_order": 3, "client_order_ids": [given]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let running: Value = response.json().await.unwrap();
    assert_eq!(running["running"], true);
    assert_eq!(running["rate"], 2000);

    let response = client.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopped: Value = client
        .delete(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stopped["published"].as_u64().unwrap() > 0, "{stopped}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shown: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(shown["running"], false);
    let published = shown["published"].as_u64().unwrap();
    // Paced: never ahead of 2000 per second of its run (elapsed_ms is rounded down).
    let elapsed_ms = shown["elapsed_ms"].as_u64().unwrap();
    assert!(published <= 2 * (elapsed_ms + 1), "{shown}");

    let stats: FeedStats = reqwest::get(format!("{}/feed/stats", sim.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.last_sequence, published);
    assert_eq!(stats.total_filled_quantity as u64, published);
    assert!(stats.orders[&given.to_string()].synthetic);
    let lean: Value = reqwest::get(format!("{}/feed/stats?orders=false", sim.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lean["orders"], json!({}));
    assert_eq!(lean["total_filled_quantity"], json!(published));

    for bad in [
        json!({"fills_per_order": 0}),
        json!({"concurrent_orders": 0}),
        json!({"rate": "fast"}),
        json!({"reprots": 5}),
        json!({"client_order_ids": [given]}),
    ] {
        let response = client.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn per_order_reports_stay_in_order_while_load_orders_interleave() {
    let sim = start(still()).await;
    let mut socket = connect(&sim, Some(0)).await;
    load(&sim, 700, 10).await;
    let all = reports(&mut socket, 700).await;
    let mut cumulative: HashMap<OrderId, i64> = HashMap::new();
    let mut switches = 0;
    for pair in all.windows(2) {
        switches += usize::from(pair[0].client_order_id() != pair[1].client_order_id());
    }
    for report in &all {
        let so_far = cumulative.entry(report.client_order_id()).or_default();
        *so_far += 1;
        assert_eq!(report.cumulative_quantity().get(), *so_far);
    }
    assert!(switches > 600, "the orders' reports do not interleave");
    assert_eq!(cumulative.len(), 70);
}

#[tokio::test]
async fn a_cancel_racing_fills_ends_each_order_one_way_only() {
    let sim = start(SimSettings {
        fill_interval: Duration::from_millis(1),
        limit_fill_rate: 1.0,
        ..quiet()
    })
    .await;
    let mut socket = connect(&sim, Some(0)).await;
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        place(&sim, &order(*id, "limit", 20)).await;
    }
    let answers: HashMap<Uuid, StatusCode> = futures::future::join_all(ids.iter().map(|id| {
        let sim = &sim;
        async move { (*id, cancel(sim, *id).await.0) }
    }))
    .await
    .into_iter()
    .collect();

    // Every order ends once; a refused cancel is reported after the fill that won.
    let mut per_order: HashMap<Uuid, Vec<ExecutionReport>> = HashMap::new();
    let complete = |per_order: &HashMap<Uuid, Vec<ExecutionReport>>| {
        ids.iter().all(|id| {
            per_order.get(id).is_some_and(|mine| {
                let ended = mine.iter().any(|r| r.kind().is_final());
                let refused = mine
                    .iter()
                    .any(|r| r.kind() == ExecutionKind::CancelRefused);
                ended && (answers[id] != StatusCode::UNPROCESSABLE_ENTITY || refused)
            })
        })
    };
    while !complete(&per_order) {
        let report = report(&mut socket).await;
        per_order
            .entry(report.client_order_id().as_uuid())
            .or_default()
            .push(report);
    }
    for id in &ids {
        let mine = &per_order[id];
        let kinds: Vec<ExecutionKind> = mine.iter().map(ExecutionReport::kind).collect();
        let finals = kinds.iter().filter(|kind| kind.is_final()).count();
        assert_eq!(finals, 1, "{kinds:?}");
        let end = kinds.iter().position(|kind| kind.is_final()).unwrap();
        assert!(
            kinds[end + 1..]
                .iter()
                .all(|kind| *kind == ExecutionKind::CancelRefused),
            "{kinds:?}"
        );
        match answers[id] {
            StatusCode::OK => {
                assert_eq!(kinds[end], ExecutionKind::Canceled, "{kinds:?}");
                let canceled = mine[end].event().quantity().unwrap().get();
                assert_eq!(traded(mine) + canceled, 20);
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(kinds[end], ExecutionKind::Fill, "{kinds:?}");
                assert_eq!(traded(mine), 20);
            }
            other => panic!("unexpected cancel answer {other}"),
        }
        assert_eq!(
            sim.feed_stats().orders[&id.to_string()].filled_quantity,
            traded(mine)
        );
    }
}
