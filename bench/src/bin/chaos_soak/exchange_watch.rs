//! The exchange seen from outside, once a second: the simulator's `/stats` sampled for the calls
//! it has received (how hard a down exchange is hit, minute by minute) and, per order, after when
//! its last placement call arrived (an order must never be sent after its expiry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::timeline::Timeline;

const EVERY: Duration = Duration::from_secs(1);

/// Fields of `/stats` that count lookups (`GET /orders/{id}`), whichever this simulator has;
/// `total_calls` counts placements only.
const LOOKUP_COUNTERS: [&str; 3] = ["lookup_calls", "total_lookups", "total_lookup_calls"];

/// The running sampler; [`ExchangeWatch::stop`] ends it and hands over what it saw.
pub struct ExchangeWatch {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

/// What the samples showed.
#[derive(Default)]
pub struct Seen {
    /// (time since time zero, placement calls so far, lookups so far when the simulator
    /// counts them).
    pub series: Vec<(Duration, u64, Option<u64>)>,
    /// Per client order id: the placement calls seen so far, and the wall time (Unix seconds)
    /// after which the last of them arrived (the sample before the one that first showed it).
    pub last_call: HashMap<String, (u64, f64)>,
    /// Samples that failed (the simulator did not answer within the interval).
    pub missed: usize,
    /// When the last sample began (wall time, Unix seconds).
    previous_before: Option<f64>,
}

impl ExchangeWatch {
    pub fn start(exchange_url: &str, timeline: Arc<Timeline>) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let url = format!("{exchange_url}/stats");
        let task = tokio::spawn(sample(url, timeline, seen.clone()));
        Self { seen, task }
    }

    /// Takes one last sample, stops, and returns everything seen.
    pub async fn stop(self, exchange_url: &str, timeline: &Timeline) -> Seen {
        self.task.abort();
        let _ = self.task.await;
        let mut seen = Arc::try_unwrap(self.seen)
            .map(|m| m.into_inner().unwrap_or_default())
            .unwrap_or_default();
        let client = reqwest::Client::new();
        let before = wall_now();
        if let Ok(stats) = fetch(&client, &format!("{exchange_url}/stats")).await {
            seen.record(&stats, timeline.elapsed(), before);
        }
        seen
    }
}

async fn sample(url: String, timeline: Arc<Timeline>, seen: Arc<Mutex<Seen>>) {
    let client = reqwest::Client::new();
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        // The snapshot is taken after this instant: a call it shows for the first time arrived
        // after the previous sample's `before`.
        let before = wall_now();
        match tokio::time::timeout(EVERY * 5, fetch(&client, &url)).await {
            Ok(Ok(stats)) => seen
                .lock()
                .unwrap()
                .record(&stats, timeline.elapsed(), before),
            _ => seen.lock().unwrap().missed += 1,
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(client.get(url).send().await?.json().await?)
}

pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Seen {
    fn record(&mut self, stats: &serde_json::Value, at: Duration, before: f64) {
        let lookups = LOOKUP_COUNTERS
            .iter()
            .find_map(|name| stats[*name].as_u64());
        let calls = stats["total_calls"].as_u64().unwrap_or(0);
        // The previous sample's start bounds when a newly seen call arrived (the first sample
        // bounds nothing).
        let after = self.previous_before.unwrap_or(0.0);
        if let Some(per_order) = stats["place_calls"].as_object() {
            for (id, count) in per_order {
                let count = count.as_u64().unwrap_or(0);
                let entry = self.last_call.entry(id.clone()).or_insert((0, after));
                if count > entry.0 {
                    *entry = (count, after);
                }
            }
        }
        self.series.push((at, calls, lookups));
        self.previous_before = Some(before);
    }

    /// Exchange calls (placements and, when counted, lookups) between `from` and `to` (times
    /// since time zero), measured between the first sample at or after `from` and the last at
    /// or before `to`; with the span actually measured.
    pub fn calls_between(&self, from: Duration, to: Duration) -> Option<(u64, Duration)> {
        let first = self.series.iter().find(|(at, ..)| *at >= from)?;
        let last = self.series.iter().rev().find(|(at, ..)| *at <= to)?;
        if last.0 <= first.0 {
            return None;
        }
        let total = |s: &(Duration, u64, Option<u64>)| s.1 + s.2.unwrap_or(0);
        Some((total(last).saturating_sub(total(first)), last.0 - first.0))
    }

    /// Placements and lookups per minute between `from` and `to`, apart.
    pub fn split_per_minute(&self, from: Duration, to: Duration) -> Option<(f64, f64)> {
        let first = self.series.iter().find(|(at, ..)| *at >= from)?;
        let last = self.series.iter().rev().find(|(at, ..)| *at <= to)?;
        if last.0 <= first.0 {
            return None;
        }
        let minutes = (last.0 - first.0).as_secs_f64() / 60.0;
        let lookups = last.2.unwrap_or(0).saturating_sub(first.2.unwrap_or(0));
        Some((
            last.1.saturating_sub(first.1) as f64 / minutes,
            lookups as f64 / minutes,
        ))
    }

    /// Calls per minute between `from` and `to`.
    pub fn rate_per_minute(&self, from: Duration, to: Duration) -> Option<f64> {
        self.calls_between(from, to)
            .map(|(calls, span)| calls as f64 * 60.0 / span.as_secs_f64())
    }

    /// Whether the simulator counts lookups (else the rates are placements only).
    pub fn counts_lookups(&self) -> bool {
        self.series.iter().any(|(_, _, lookups)| lookups.is_some())
    }
}
