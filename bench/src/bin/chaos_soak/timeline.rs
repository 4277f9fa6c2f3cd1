//! The soak's clock and log: time zero of the fault schedule and the load, what happened when
//! (printed as it happens), the Postgres restart window that the 5xx check allows for, and the
//! ingester's faults as they happened (for the report).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Timeline {
    start: Instant,
    /// Time zero as wall time (Unix seconds), to place the database's timestamps on the soak's
    /// clock.
    wall_start: f64,
    recorded: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    postgres_restart: Option<(Duration, Duration)>,
    events: Vec<(Duration, String)>,
    ingester_kills: Vec<IngesterKill>,
    feed_drops: usize,
    ingester_recovered: Option<Duration>,
}

/// One SIGKILL of the ingester: how far behind the feed it was when it was resumed with a
/// backlog, and how much of that it had not written when it was killed (more than 0: killed with
/// reports received or on their way, not written — mid-batch).
#[derive(Debug, Clone, Copy)]
pub struct IngesterKill {
    pub behind_at_resume: u64,
    pub unwritten_at_kill: u64,
}

impl Timeline {
    /// Starts the clock now; shared by the fault tasks, the load and the checks.
    pub fn start() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            wall_start: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            recorded: Mutex::default(),
        })
    }

    /// The instant `offset` after time zero.
    pub fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }

    /// Seconds since time zero of a wall time (Unix seconds).
    pub fn since_start(&self, wall: f64) -> f64 {
        wall - self.wall_start
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Sleeps until `offset` after time zero.
    pub async fn sleep_until(&self, offset: Duration) {
        tokio::time::sleep_until(self.at(offset).into()).await;
    }

    /// Prints `what` with the time since time zero, and records it.
    pub fn note(&self, what: impl Into<String>) {
        let (at, what) = (self.elapsed(), what.into());
        println!("[{:>6.1}s] {what}", at.as_secs_f64());
        self.recorded.lock().unwrap().events.push((at, what));
    }

    /// Records when the Postgres restart began and ended.
    pub fn postgres_restarted(&self, began: Duration, ended: Duration) {
        self.recorded.lock().unwrap().postgres_restart = Some((began, ended));
    }

    pub fn ingester_killed(&self, kill: IngesterKill) {
        self.recorded.lock().unwrap().ingester_kills.push(kill);
    }

    pub fn ingester_kills(&self) -> Vec<IngesterKill> {
        self.recorded.lock().unwrap().ingester_kills.clone()
    }

    /// How long after the Postgres restart the ingester had written what the feed had published
    /// by then.
    pub fn ingester_recovered(&self, took: Duration) {
        self.recorded.lock().unwrap().ingester_recovered = Some(took);
    }

    pub fn ingester_recovery(&self) -> Option<Duration> {
        self.recorded.lock().unwrap().ingester_recovered
    }

    /// Counts a drop of every feed connection at once that the exchange confirmed.
    pub fn feed_dropped(&self) {
        self.recorded.lock().unwrap().feed_drops += 1;
    }

    pub fn feed_drops(&self) -> usize {
        self.recorded.lock().unwrap().feed_drops
    }

    /// When the Postgres restart began and ended; `None` if it has not finished.
    pub fn postgres_restart(&self) -> Option<(Duration, Duration)> {
        self.recorded.lock().unwrap().postgres_restart
    }
}
