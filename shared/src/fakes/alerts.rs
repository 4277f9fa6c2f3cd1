//! `AlertPublisher` in memory.

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::outage;
use crate::ports::{Alert, AlertPublisher, PublishError};

#[derive(Default)]
struct AlertsState {
    failing: bool,
    published: Vec<Alert>,
    attempts: usize,
}

/// The admins' alert topic in memory: records what was published; can be made to fail.
#[derive(Default)]
pub struct FakeAlerts {
    state: Mutex<AlertsState>,
}

impl FakeAlerts {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, AlertsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The alerts published, in order (not the refused ones).
    pub fn published(&self) -> Vec<Alert> {
        self.lock().published.clone()
    }

    /// The bodies of the published alerts, parsed (they are JSON).
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.lock()
            .published
            .iter()
            .map(|alert| serde_json::from_str(&alert.body).expect("alert bodies are JSON"))
            .collect()
    }

    /// Every publish, published or refused.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Makes every publish fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }
}

#[async_trait]
impl AlertPublisher for FakeAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), PublishError> {
        let mut state = self.lock();
        state.attempts += 1;
        if state.failing {
            return Err(PublishError(outage("the alert topic")));
        }
        state.published.push(alert.clone());
        Ok(())
    }
}
