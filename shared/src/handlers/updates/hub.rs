//! The one poller of a process: reads new audit events and hands them to every session.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::ports::{OrderUpdate, OrderUpdateStore, StoreError};
use crate::telemetry::error_chain;
use crate::usecases::update_horizon::UpdateHorizon;

/// How the hub polls.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// Between two reads that found nothing new (a read that fills a page reads again at once).
    pub poll_interval: Duration,
    /// Events per read.
    pub page: u32,
    /// Events a slow session may fall behind before it catches up from the database instead.
    pub buffer: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(25),
            page: 1_000,
            buffer: 16_384,
        }
    }
}

/// New audit events for every session, in id order, never past one that may still commit.
pub struct UpdateHub {
    sender: broadcast::Sender<Arc<OrderUpdate>>,
    horizon: watch::Receiver<i64>,
    poller: tokio::task::JoinHandle<()>,
}

impl UpdateHub {
    /// Starts polling after the newest event there is now.
    pub async fn start(
        store: Arc<dyn OrderUpdateStore>,
        settings: HubSettings,
    ) -> Result<Self, StoreError> {
        let start = store.latest_event_id().await?;
        let (sender, _) = broadcast::channel(settings.buffer.max(1));
        let (horizon_tx, horizon) = watch::channel(start);
        let poller = tokio::spawn(poll(
            store,
            settings,
            UpdateHorizon::starting_after(start),
            sender.clone(),
            horizon_tx,
        ));
        Ok(Self {
            sender,
            horizon,
            poller,
        })
    }

    /// Every event handed out from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<OrderUpdate>> {
        self.sender.subscribe()
    }

    /// The last event id handed out: everything up to it is in the database for a catch-up.
    pub fn horizon(&self) -> i64 {
        *self.horizon.borrow()
    }
}

impl Drop for UpdateHub {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

async fn poll(
    store: Arc<dyn OrderUpdateStore>,
    settings: HubSettings,
    mut horizon: UpdateHorizon,
    sender: broadcast::Sender<Arc<OrderUpdate>>,
    horizon_tx: watch::Sender<i64>,
) {
    loop {
        let full = match store
            .updates_after(horizon.delivered(), settings.page)
            .await
        {
            Ok(poll) => {
                let ids: Vec<i64> = poll.updates.iter().map(|u| u.event_id).collect();
                let ready = horizon.advance(&ids, poll.xmin, poll.gap_bound);
                // The horizon first: a session that subscribes after an event was handed out
                // must find it in its catch-up (it subscribes, then reads the horizon).
                horizon_tx.send_replace(horizon.delivered());
                for update in poll.updates.into_iter().take(ready) {
                    // No session listening is fine: a later one catches up from the database.
                    let _ = sender.send(Arc::new(update));
                }
                ready > 0 && ids.len() as u32 == settings.page
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "could not read order updates; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        };
        if !full {
            tokio::time::sleep(settings.poll_interval).await;
        }
    }
}
