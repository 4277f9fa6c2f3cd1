//! Measures the simulator's load mode: how many execution reports per second it publishes, and
//! how many one WebSocket client receives and parses (with the wire format's own parser, as the
//! ingester does). Prints numbers; asserts nothing (timings belong to a quiet machine, not to
//! the tests).
//!
//! ```text
//! cargo run --release -p exchange-sim --example feed_load -- [REPORTS] [PACED_RATE]
//! ```
//!
//! Runs two passes over an in-process simulator, the client in the same process: unthrottled
//! (`rate` 0) and paced at `PACED_RATE` reports/s (default 25 000), `REPORTS` reports each
//! (default 200 000).

use std::time::{Duration, Instant};

use exchange_sim::{LoadRequest, SimHandle, SimSettings};
use futures::StreamExt;
use order_shared::adapters::execution_feed::parse_report;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let reports: u64 = args
        .next()
        .map(|n| n.parse().expect("REPORTS is a whole number"))
        .unwrap_or(200_000);
    let paced: u64 = args
        .next()
        .map(|n| n.parse().expect("PACED_RATE is a whole number"))
        .unwrap_or(25_000);

    println!(
        "feed load: {reports} reports per pass, one client in the same process, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for rate in [0, paced] {
        let sim = exchange_sim::spawn(
            "127.0.0.1:0".parse().unwrap(),
            SimSettings {
                limit_fill_rate: 0.0,
                // Every report of a long run stays resumable.
                feed_capacity: reports as usize,
                ..SimSettings::default()
            },
        )
        .await
        .expect("simulator starts");
        pass(&sim, reports, rate).await;
        sim.shutdown().await;
    }
}

async fn pass(sim: &SimHandle, reports: u64, rate: u64) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}?after=0", sim.feed_url()))
        .await
        .expect("feed connects");
    let started = Instant::now();
    sim.start_load(LoadRequest {
        rate,
        reports: Some(reports),
        ..LoadRequest::default()
    })
    .expect("load starts");

    let mut received = 0u64;
    let mut last_sequence = 0;
    let mut first_second = None;
    while received < reports {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("the feed went quiet")
            .expect("the feed ended")
            .expect("the feed failed");
        if let Message::Text(text) = message {
            let report = parse_report(text.as_str()).expect("a well-formed report");
            assert_eq!(report.sequence(), last_sequence + 1, "a gap in the feed");
            last_sequence = report.sequence();
            received += 1;
            if first_second.is_none() && started.elapsed() >= Duration::from_secs(1) {
                first_second = Some(received);
            }
        }
    }
    let elapsed = started.elapsed();
    let load = sim.load();
    let stats = sim.feed_stats();
    println!(
        "rate {}: published {} in {:.3} s = {:.0} reports/s; client received and parsed {} in {:.3} s = {:.0} reports/s{}; filled {} shares over {} orders",
        if rate == 0 {
            "unthrottled".to_string()
        } else {
            format!("{rate}/s")
        },
        load.published,
        load.elapsed_ms as f64 / 1000.0,
        load.achieved_rate,
        received,
        elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64(),
        first_second.map_or(String::new(), |n| format!(" ({n} in the first second)")),
        stats.total_filled_quantity,
        stats.orders.len(),
    );
}
