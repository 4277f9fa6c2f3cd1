//! `load-bench placements`: N market orders posted at once against the simulated exchange
//! (latency and failure rate as configured), successful placements/s against the bound
//! C / latency × (1 − failure rate), accept→placed latency percentiles, and the placed-count time
//! series for the plot.

use std::path::Path;
use std::time::{Duration, Instant};

use bench::api::{bearer, bench_api_key, market_order};
use bench::results::write_json;
use serde_json::{Value, json};

use crate::machine;

pub async fn placements(
    url: &str,
    database_url: &str,
    orders: usize,
    in_flight: u32,
    latency: f64,
    failure_rate: f64,
    out: &Path,
) -> anyhow::Result<()> {
    let db = bench::db::connect(database_url).await?;
    // The benchmark client's key (scripts/bench.sh registers it), on every request.
    let headers = match bench_api_key() {
        Some(key) => bearer(&key)?,
        None => reqwest::header::HeaderMap::new(),
    };
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(orders);
    // Post all orders first (fast), so the placer is the only limit.
    let bodies = (0..orders).map(|i| market_order("buy", "US0378331005", 1 + i % 100));
    let responses = futures::future::join_all(bodies.map(|body| {
        let client = client.clone();
        let url = format!("{url}/orders");
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?
                .json::<Value>()
                .await
        }
    }))
    .await;
    for r in responses {
        if let Some(id) = r?["id"].as_str() {
            ids.push(uuid::Uuid::parse_str(id)?);
        }
    }
    let posted = started.elapsed();
    println!(
        "posted {} orders in {:.1} s",
        ids.len(),
        posted.as_secs_f64()
    );
    let mut series = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'placed'), \
                        count(*) FILTER (WHERE status IN ('placed','rejected','failed')) \
                 FROM orders WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        let (placed, done): (i64, i64) = (row.get(0), row.get(1));
        series.push(json!({"t": started.elapsed().as_secs_f64(), "placed": placed}));
        if done as usize >= ids.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'placed'), \
                    extract(epoch FROM max(placed_at) - min(placed_at))::float8, \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM placed_at - created_at))::float8, \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM placed_at - created_at))::float8, \
                    avg(attempts)::float8 \
             FROM orders WHERE id = ANY($1) AND status = 'placed'",
            &[&ids],
        )
        .await?;
    let placed: i64 = row.get(0);
    let span: f64 = row.get::<_, Option<f64>>(1).unwrap_or(0.0);
    let p50: f64 = row.get::<_, Option<f64>>(2).unwrap_or(f64::NAN);
    let p99: f64 = row.get::<_, Option<f64>>(3).unwrap_or(f64::NAN);
    let attempts: f64 = row.get::<_, Option<f64>>(4).unwrap_or(f64::NAN);
    let rate = if span > 0.0 {
        placed as f64 / span
    } else {
        0.0
    };
    let bound = in_flight as f64 / latency * (1.0 - failure_rate);
    // The steady state: from 10 % to 90 % of the orders placed. The overall rate also holds the
    // tail of orders whose calls failed and wait out their back-off (2 s, 4 s, … by design),
    // which no throughput bound of the exchange calls describes.
    let steady = steady_rate(&series, ids.len(), 0.1, 0.9);
    println!(
        "placements: {placed} placed of {} in {span:.1} s → {rate:.1}/s overall, {steady:.1}/s steady (10 %→90 % placed)",
        ids.len()
    );
    println!(
        "bound C / latency × (1 − failure rate) = {in_flight} / {latency} × {:.2} = {bound:.1}/s → steady {:.0} %, overall {:.0} % of it",
        1.0 - failure_rate,
        100.0 * steady / bound,
        100.0 * rate / bound
    );
    println!("accept→placed latency p50 {p50:.2} s, p99 {p99:.2} s; mean attempts {attempts:.2}");
    write_json(
        &out.join("placements.json"),
        &json!({"machine": machine(), "orders": ids.len(), "placed": placed, "seconds": span,
               "placements_per_s": rate, "bound_per_s": bound, "ratio": rate / bound,
               "steady_placements_per_s": steady, "steady_ratio": steady / bound,
               "in_flight": in_flight, "latency_s": latency, "failure_rate": failure_rate,
               "accept_to_placed_p50_s": p50, "accept_to_placed_p99_s": p99,
               "mean_attempts": attempts, "series": series}),
    )
}

/// Placements per second between the moments `from` and `to` (fractions of `total`) were
/// reached, interpolated linearly between the samples of the placed-count series.
fn steady_rate(series: &[Value], total: usize, from: f64, to: f64) -> f64 {
    let points: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|p| Some((p["t"].as_f64()?, p["placed"].as_f64()?)))
        .collect();
    let crossing = |target: f64| {
        points.windows(2).find_map(|w| {
            let ((t0, n0), (t1, n1)) = (w[0], w[1]);
            (n0 < target && n1 >= target).then(|| t0 + (t1 - t0) * (target - n0) / (n1 - n0))
        })
    };
    let (low, high) = (from * total as f64, to * total as f64);
    match (crossing(low), crossing(high)) {
        (Some(a), Some(b)) if b > a => (high - low) / (b - a),
        _ => f64::NAN,
    }
}
