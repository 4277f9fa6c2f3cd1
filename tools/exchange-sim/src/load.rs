//! The load mode: synthetic orders filled one share per report at a given rate, for measuring
//! how fast an ingester keeps up. Started with `POST /load`, watched with `GET /load`, stopped
//! with `DELETE /load`; its reports go on the same feed as every other, counted per order in
//! `GET /feed/stats`.
//!
//! `POST /load` body (all optional, unknown fields refused):
//! - `rate`: reports per second (default 0: as fast as the simulator can);
//! - `reports`: stop after this many; `duration_ms`: stop after this long (neither: run until
//!   `DELETE /load`);
//! - `fills_per_order` (default 10): shares per synthetic order, one per report, so each order
//!   gets `fills_per_order - 1` partial fills and a fill;
//! - `concurrent_orders` (default 100): orders filled in turn, so their reports interleave;
//! - `client_order_ids`: ids to give the first synthetic orders (e.g. orders a benchmark stored
//!   beforehand); none may be an order the simulator already has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::market::LoadPlan;

/// Reports published under one hold of the locks; connections get their turn in between.
const CHUNK: u64 = 1000;

/// What `POST /load` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    #[serde(default)]
    pub rate: u64,
    #[serde(default)]
    pub reports: Option<u64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default = "default_fills_per_order")]
    pub fills_per_order: u32,
    #[serde(default = "default_concurrent_orders")]
    pub concurrent_orders: u32,
    #[serde(default)]
    pub client_order_ids: Vec<Uuid>,
}

fn default_fills_per_order() -> u32 {
    10
}

fn default_concurrent_orders() -> u32 {
    100
}

impl Default for LoadRequest {
    fn default() -> Self {
        Self {
            rate: 0,
            reports: None,
            duration_ms: None,
            fills_per_order: default_fills_per_order(),
            concurrent_orders: default_concurrent_orders(),
            client_order_ids: Vec::new(),
        }
    }
}

impl LoadRequest {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.fills_per_order == 0 || i64::from(self.fills_per_order) > 1_000_000_000 {
            return Err("fills_per_order must be from 1 to 1000000000".into());
        }
        if self.concurrent_orders == 0 || self.concurrent_orders > 1_000_000 {
            return Err("concurrent_orders must be from 1 to 1000000".into());
        }
        Ok(())
    }

    pub(crate) fn plan(&self) -> LoadPlan {
        LoadPlan::new(
            i64::from(self.fills_per_order),
            self.concurrent_orders as usize,
            self.client_order_ids.clone(),
        )
    }
}

/// The `GET /load` document: the current or last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadView {
    pub running: bool,
    /// Asked-for rate (0: unthrottled).
    pub rate: u64,
    pub reports: Option<u64>,
    pub duration_ms: Option<u64>,
    /// Reports published so far (injected duplicates not included).
    pub published: u64,
    pub elapsed_ms: u64,
    /// `published` per second of `elapsed_ms`.
    pub achieved_rate: f64,
}

/// A run in progress or finished, shared by the generator task and the handlers.
pub(crate) struct LoadRun {
    request: LoadRequest,
    started: Instant,
    published: AtomicU64,
    stop: AtomicBool,
    /// Set when the generator ended: its elapsed time in microseconds + 1 (0: still running).
    finished_micros: AtomicU64,
}

impl LoadRun {
    pub(crate) fn new(request: LoadRequest) -> Arc<Self> {
        Arc::new(Self {
            request,
            started: Instant::now(),
            published: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            finished_micros: AtomicU64::new(0),
        })
    }

    pub(crate) fn is_running(&self) -> bool {
        self.finished_micros.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub(crate) fn view(&self) -> LoadView {
        let finished = self.finished_micros.load(Ordering::SeqCst);
        let elapsed = if finished == 0 {
            self.started.elapsed()
        } else {
            Duration::from_micros(finished - 1)
        };
        let published = self.published.load(Ordering::SeqCst);
        LoadView {
            running: finished == 0,
            rate: self.request.rate,
            reports: self.request.reports,
            duration_ms: self.request.duration_ms,
            published,
            elapsed_ms: elapsed.as_millis() as u64,
            achieved_rate: if elapsed.is_zero() {
                0.0
            } else {
                published as f64 / elapsed.as_secs_f64()
            },
        }
    }

    /// Publishes the run's reports with `step` (which publishes up to the count it is given and
    /// returns how many it did; `None` once the simulator is gone), pacing them to the rate.
    pub(crate) async fn generate(
        self: Arc<Self>,
        mut plan: LoadPlan,
        mut step: impl FnMut(&mut LoadPlan, u64) -> Option<u64>,
    ) {
        let request = &self.request;
        let duration = request.duration_ms.map(Duration::from_millis);
        let mut published = 0u64;
        loop {
            let elapsed = self.started.elapsed();
            if self.stop.load(Ordering::SeqCst) || duration.is_some_and(|d| elapsed >= d) {
                break;
            }
            let left = request.reports.map_or(u64::MAX, |n| n - published);
            if left == 0 {
                break;
            }
            let due = if request.rate == 0 {
                CHUNK
            } else {
                ((request.rate as f64 * elapsed.as_secs_f64()) as u64).saturating_sub(published)
            }
            .min(CHUNK)
            .min(left);
            if due == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let Some(done) = step(&mut plan, due) else {
                break;
            };
            published += done;
            self.published.store(published, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
        let micros = self.started.elapsed().as_micros() as u64;
        self.finished_micros.store(micros + 1, Ordering::SeqCst);
        tracing::info!(published, elapsed_ms = micros / 1000, "load run ended");
    }
}
