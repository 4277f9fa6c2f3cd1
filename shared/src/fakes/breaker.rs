//! `ExchangeBreaker` in memory: the same rules as the Postgres row, on one process's state.

use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::outage;
use crate::ports::{BreakerSettings, ExchangeBreaker, Permit, StoreError};

#[derive(Debug, Default)]
struct State {
    open: bool,
    failures: u32,
    next_probe_at: Option<OffsetDateTime>,
    down: bool,
    probes: usize,
    /// Every `record` call's `exchange_up`, in order (failed calls included).
    records: Vec<bool>,
}

/// The shared breaker; `force_open` opens it with the next probe due at a given time.
#[derive(Debug, Default)]
pub struct FakeBreaker {
    state: Mutex<State>,
}

impl FakeBreaker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn force_open(&self, next_probe_at: OffsetDateTime) {
        let mut state = self.state.lock().expect("breaker lock");
        state.open = true;
        state.next_probe_at = Some(next_probe_at);
    }

    pub fn is_open(&self) -> bool {
        self.state.lock().expect("breaker lock").open
    }

    /// Probes handed out so far.
    pub fn probes(&self) -> usize {
        self.state.lock().expect("breaker lock").probes
    }

    /// What the callers reported, in order: `true` for an exchange that answered, `false` for
    /// a transient failure or an unknown outcome.
    pub fn records(&self) -> Vec<bool> {
        self.state.lock().expect("breaker lock").records.clone()
    }

    /// Consecutive failures counted so far (reset by a success).
    pub fn failures(&self) -> u32 {
        self.state.lock().expect("breaker lock").failures
    }

    /// When the next probe may go out (`None`: the breaker is closed).
    pub fn next_probe_at(&self) -> Option<OffsetDateTime> {
        self.state.lock().expect("breaker lock").next_probe_at
    }

    /// Makes every call fail (`true`), as the database holding its row would, or work again.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("breaker lock").down = down;
    }
}

#[async_trait]
impl ExchangeBreaker for FakeBreaker {
    async fn permit(&self, settings: &BreakerSettings) -> Result<Permit, StoreError> {
        let mut state = self.state.lock().expect("breaker lock");
        if state.down {
            return Err(StoreError::Unavailable(outage("the breaker")));
        }
        if !state.open {
            return Ok(Permit::Call);
        }
        let now = OffsetDateTime::now_utc();
        match state.next_probe_at {
            Some(at) if at > now => Ok(Permit::Wait { until: at }),
            // Open without a probe time: the Postgres store treats it as closed.
            None => Ok(Permit::Call),
            Some(_) => {
                state.next_probe_at = Some(now + settings.probe_interval);
                state.probes += 1;
                Ok(Permit::Probe)
            }
        }
    }

    async fn record(
        &self,
        exchange_up: bool,
        settings: &BreakerSettings,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().expect("breaker lock");
        state.records.push(exchange_up);
        if state.down {
            return Err(StoreError::Unavailable(outage("the breaker")));
        }
        if exchange_up {
            state.open = false;
            state.failures = 0;
            state.next_probe_at = None;
            return Ok(());
        }
        state.failures += 1;
        if !state.open && state.failures >= settings.failure_threshold.max(1) {
            state.open = true;
            state.next_probe_at = Some(OffsetDateTime::now_utc() + settings.probe_interval);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SETTINGS: BreakerSettings = BreakerSettings {
        failure_threshold: 3,
        probe_interval: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn it_opens_after_the_threshold_and_lets_one_probe_through_when_due() {
        let breaker = FakeBreaker::new();
        for _ in 0..2 {
            breaker.record(false, &SETTINGS).await.unwrap();
        }
        assert_eq!(breaker.permit(&SETTINGS).await.unwrap(), Permit::Call);
        breaker.record(false, &SETTINGS).await.unwrap();
        assert!(breaker.is_open());
        let until = breaker.next_probe_at().unwrap();
        assert_eq!(
            breaker.permit(&SETTINGS).await.unwrap(),
            Permit::Wait { until }
        );

        // The probe is due: exactly one caller gets it, the next waits for the next one.
        breaker.force_open(OffsetDateTime::now_utc() - Duration::from_secs(1));
        assert_eq!(breaker.permit(&SETTINGS).await.unwrap(), Permit::Probe);
        assert!(matches!(
            breaker.permit(&SETTINGS).await.unwrap(),
            Permit::Wait { .. }
        ));
        assert_eq!(breaker.probes(), 1);

        // A failed probe keeps it open; a successful one closes it and resets the count.
        breaker.record(false, &SETTINGS).await.unwrap();
        assert!(breaker.is_open());
        breaker.record(true, &SETTINGS).await.unwrap();
        assert!(!breaker.is_open());
        assert_eq!(breaker.failures(), 0);
        assert_eq!(breaker.permit(&SETTINGS).await.unwrap(), Permit::Call);
        assert_eq!(breaker.records(), [false, false, false, false, true]);
    }

    #[tokio::test]
    async fn a_success_between_failures_restarts_the_count() {
        let breaker = FakeBreaker::new();
        for up in [false, false, true, false, false] {
            breaker.record(up, &SETTINGS).await.unwrap();
        }
        assert!(!breaker.is_open());
        assert_eq!(breaker.failures(), 2);
    }

    #[tokio::test]
    async fn a_down_breaker_fails_every_call() {
        let breaker = FakeBreaker::new();
        breaker.set_down(true);
        assert!(breaker.permit(&SETTINGS).await.is_err());
        assert!(breaker.record(true, &SETTINGS).await.is_err());
        breaker.set_down(false);
        assert_eq!(breaker.permit(&SETTINGS).await.unwrap(), Permit::Call);
    }
}
