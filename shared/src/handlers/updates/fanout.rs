//! The fan-out behind API Gateway's WebSocket API: in AWS a connection is not a socket this
//! process holds but a row (`$connect` stores it, `$disconnect` deletes it), and every message
//! is a call to the API Gateway Management API. One long-running fan-out reads the audit trail as
//! the local hub does (in id order, up to the [`UpdateHorizon`]; no `LISTEN`, which pins RDS
//! Proxy) and sends each event to the connections of the event's client: a connection that
//! resumes (`?after`) is first sent what it missed from the database, each connection's messages
//! go in order, a connection API Gateway reports gone (410) is forgotten, one whose send failed
//! otherwise catches up from the database at the next step (nothing is skipped), and the
//! connections of a revoked key are closed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::hub::HubSettings;
use super::messages::UpdateMessage;
use crate::domain::ClientId;
use crate::ports::{
    ConnectionPush, LiveConnections, OrderUpdate, OrderUpdateStore, PushError, StoreError,
};
use crate::telemetry::error_chain;
use crate::usecases::update_horizon::UpdateHorizon;

/// Events read per catch-up statement.
const CATCH_UP_PAGE: u32 = 500;

/// How the fan-out works.
#[derive(Debug, Clone, Copy)]
pub struct FanoutSettings {
    /// Reads of the audit trail (the hub's settings; `buffer` is unused here).
    pub hub: HubSettings,
    /// How often the connections table is read again (new and closed connections).
    pub refresh: Duration,
    /// How often revoked keys are looked for.
    pub recheck: Duration,
    /// Connections sent to at once.
    pub concurrency: usize,
}

impl Default for FanoutSettings {
    fn default() -> Self {
        Self {
            hub: HubSettings::default(),
            refresh: Duration::from_millis(250),
            recheck: Duration::from_secs(5),
            concurrency: 32,
        }
    }
}

/// The ports the fan-out needs.
#[derive(Clone)]
pub struct FanoutPorts {
    pub updates: Arc<dyn OrderUpdateStore>,
    pub connections: Arc<dyn LiveConnections>,
    pub push: Arc<dyn ConnectionPush>,
}

/// What one step did (logged, and returned to tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Events read that could be sent (past the horizon).
    pub events: usize,
    /// Messages that reached a connection.
    pub sent: usize,
    /// Connections forgotten because API Gateway says they are gone.
    pub gone: usize,
    /// Connections closed because their key was revoked.
    pub revoked: usize,
}

struct Connection {
    client: ClientId,
    /// The last event id sent to it.
    last: i64,
    /// A send failed: send it what it missed from the database before anything new.
    behind: bool,
}

/// The fan-out's state; [`Fanout::step`] does one round, [`Fanout::run`] loops.
pub struct Fanout {
    ports: FanoutPorts,
    settings: FanoutSettings,
    horizon: UpdateHorizon,
    connections: HashMap<String, Connection>,
    refreshed: Option<Instant>,
    rechecked: Option<Instant>,
}

impl Fanout {
    /// Starts after the newest event there is now. Connections already in the table were served
    /// by a fan-out that has stopped (a deployment, a replaced task): what it sent them is not
    /// known here, and what was committed after it stopped would reach them never, so they are
    /// closed — each client reconnects with `?after=<the last event id it saw>` and gets what it
    /// missed from the database, nothing lost and nothing twice.
    pub async fn start(ports: FanoutPorts, settings: FanoutSettings) -> Result<Self, StoreError> {
        let start = ports.updates.latest_event_id().await?;
        let stale = ports.connections.all().await?;
        for connection in &stale {
            let id = connection.connection_id.as_str();
            // Gone already (its $disconnect may be late): the row goes all the same.
            if let Err(error) = ports.push.close(id).await {
                tracing::debug!(connection_id = %id, error = %error, "could not close; forgotten anyway");
            }
            ports.connections.disconnect(id).await?;
        }
        if !stale.is_empty() {
            tracing::info!(
                closed = stale.len(),
                "closed the connections open before this fan-out started; their clients resume with ?after"
            );
        }
        Ok(Self {
            ports,
            settings,
            horizon: UpdateHorizon::starting_after(start),
            connections: HashMap::new(),
            refreshed: None,
            rechecked: None,
        })
    }

    /// Loops until `shutdown` resolves; a failed step is logged and the next one tries again.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = match self.step().await {
                Ok(report) => report.events as u32 == self.settings.hub.page,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "fan-out step failed; retrying");
                    false
                }
            };
            let pause = if busy {
                Duration::ZERO
            } else {
                self.settings.hub.poll_interval
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round: new and closed connections, catch-ups, new events, revoked keys.
    pub async fn step(&mut self) -> Result<StepReport, StoreError> {
        let mut report = StepReport::default();
        if due(self.refreshed, self.settings.refresh) {
            self.refresh().await?;
            self.refreshed = Some(Instant::now());
        }
        if due(self.rechecked, self.settings.recheck) {
            report.revoked = self.close_revoked().await?;
            self.rechecked = Some(Instant::now());
        }
        // Those that missed something catch up to the horizon before new events go out.
        let behind: Vec<String> = self
            .connections
            .iter()
            .filter(|(_, c)| c.behind)
            .map(|(id, _)| id.clone())
            .collect();
        for id in behind {
            self.catch_up(&id, &mut report).await?;
        }
        let poll = self
            .ports
            .updates
            .updates_after(self.horizon.delivered(), self.settings.hub.page)
            .await?;
        let ids: Vec<i64> = poll.updates.iter().map(|u| u.event_id).collect();
        let ready = self.horizon.advance(&ids, poll.xmin, poll.gap_bound);
        report.events = ready;
        self.send_live(&poll.updates[..ready], &mut report).await?;
        Ok(report)
    }

    /// Reads the table: new connections join (resuming ones marked to catch up), closed ones
    /// are dropped.
    async fn refresh(&mut self) -> Result<(), StoreError> {
        let stored = self.ports.connections.all().await?;
        let present: HashSet<&str> = stored.iter().map(|c| c.connection_id.as_str()).collect();
        self.connections
            .retain(|id, _| present.contains(id.as_str()));
        for connection in stored {
            if self.connections.contains_key(&connection.connection_id) {
                continue;
            }
            let (last, behind) = match connection.resume_after {
                Some(after) => (after, after < self.horizon.delivered()),
                None => (self.horizon.delivered(), false),
            };
            self.connections.insert(
                connection.connection_id,
                Connection {
                    client: connection.client_id,
                    last,
                    behind,
                },
            );
        }
        Ok(())
    }

    /// Sends one connection its client's events after its last up to the horizon.
    async fn catch_up(&mut self, id: &str, report: &mut StepReport) -> Result<(), StoreError> {
        let up_to = self.horizon.delivered();
        loop {
            let Some(connection) = self.connections.get(id) else {
                return Ok(());
            };
            if connection.last >= up_to {
                break;
            }
            let updates = self
                .ports
                .updates
                .client_updates(&connection.client, connection.last, up_to, CATCH_UP_PAGE)
                .await?;
            if updates.is_empty() {
                break;
            }
            let refs: Vec<&OrderUpdate> = updates.iter().collect();
            let outcome = send_in_order(self.ports.push.as_ref(), id, &refs).await;
            if !self.apply(id, outcome, report).await? {
                return Ok(());
            }
        }
        if let Some(connection) = self.connections.get_mut(id) {
            connection.last = connection.last.max(up_to);
            connection.behind = false;
        }
        Ok(())
    }

    /// Sends new events to the connections of their clients: each connection's in order,
    /// several connections at once.
    async fn send_live(
        &mut self,
        updates: &[OrderUpdate],
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let mut by_client: HashMap<&ClientId, Vec<&OrderUpdate>> = HashMap::new();
        for update in updates {
            by_client.entry(&update.client_id).or_default().push(update);
        }
        let work: Vec<(String, Vec<&OrderUpdate>)> = self
            .connections
            .iter()
            .filter(|(_, c)| !c.behind)
            .filter_map(|(id, c)| {
                let mine: Vec<&OrderUpdate> = by_client
                    .get(&c.client)?
                    .iter()
                    .copied()
                    .filter(|u| u.event_id > c.last)
                    .collect();
                (!mine.is_empty()).then(|| (id.clone(), mine))
            })
            .collect();
        let push = self.ports.push.clone();
        let outcomes: Vec<(String, Outcome)> = futures::stream::iter(work)
            .map(|(id, mine)| {
                let push = push.clone();
                async move {
                    let outcome = send_in_order(push.as_ref(), &id, &mine).await;
                    (id, outcome)
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for (id, outcome) in outcomes {
            self.apply(&id, outcome, report).await?;
        }
        // Whoever had nothing to receive is at the horizon too.
        let horizon = self.horizon.delivered();
        for connection in self.connections.values_mut().filter(|c| !c.behind) {
            connection.last = connection.last.max(horizon);
        }
        Ok(())
    }

    /// Records a connection's sends; `false` once the connection is no longer sent to.
    async fn apply(
        &mut self,
        id: &str,
        outcome: Outcome,
        report: &mut StepReport,
    ) -> Result<bool, StoreError> {
        report.sent += outcome.sent;
        let Some(connection) = self.connections.get_mut(id) else {
            return Ok(false);
        };
        if let Some(last) = outcome.last_sent {
            connection.last = last;
        }
        match outcome.error {
            None => Ok(true),
            Some(PushError::Gone) => {
                tracing::info!(connection_id = %id, "live connection gone; forgotten");
                self.connections.remove(id);
                self.ports.connections.disconnect(id).await?;
                report.gone += 1;
                Ok(false)
            }
            Some(PushError::Failed(error)) => {
                tracing::warn!(connection_id = %id, error = %error_chain(error.as_ref()), "send failed; the connection catches up next");
                connection.behind = true;
                Ok(false)
            }
        }
    }

    async fn close_revoked(&mut self) -> Result<usize, StoreError> {
        let revoked = self.ports.connections.revoked().await?;
        for id in &revoked {
            tracing::info!(connection_id = %id, "API key revoked: closing the live connection");
            if let Err(error) = self.ports.push.close(id).await {
                tracing::warn!(connection_id = %id, error = %error, "could not close; forgotten anyway");
            }
            self.ports.connections.disconnect(id).await?;
            self.connections.remove(id);
        }
        Ok(revoked.len())
    }
}

fn due(last: Option<Instant>, every: Duration) -> bool {
    last.is_none_or(|at| at.elapsed() >= every)
}

/// What sending a run of messages to one connection did.
struct Outcome {
    sent: usize,
    last_sent: Option<i64>,
    /// The send that stopped the run, if one did.
    error: Option<PushError>,
}

async fn send_in_order(push: &dyn ConnectionPush, id: &str, updates: &[&OrderUpdate]) -> Outcome {
    let mut outcome = Outcome {
        sent: 0,
        last_sent: None,
        error: None,
    };
    for update in updates {
        match push.push(id, &UpdateMessage::from(*update).to_json()).await {
            Ok(()) => {
                outcome.sent += 1;
                outcome.last_sent = Some(update.event_id);
            }
            Err(error) => {
                outcome.error = Some(error);
                break;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyId;
    use crate::domain::{OrderId, OrderStatus};
    use crate::fakes::{FakeLiveConnections, FakeOrderUpdates, FakePush, PushAnswer, client};
    use crate::ports::LiveConnection;

    const KEY_A: &str = "00000000000000aa";
    const KEY_B: &str = "00000000000000bb";

    struct World {
        updates: Arc<FakeOrderUpdates>,
        connections: Arc<FakeLiveConnections>,
        push: Arc<FakePush>,
    }

    impl World {
        fn new() -> Self {
            Self {
                updates: Arc::new(FakeOrderUpdates::new()),
                connections: Arc::new(FakeLiveConnections::new()),
                push: Arc::new(FakePush::new()),
            }
        }

        async fn fanout(&self) -> Fanout {
            Fanout::start(
                FanoutPorts {
                    updates: self.updates.clone(),
                    connections: self.connections.clone(),
                    push: self.push.clone(),
                },
                FanoutSettings {
                    refresh: Duration::ZERO,
                    recheck: Duration::ZERO,
                    ..FanoutSettings::default()
                },
            )
            .await
            .unwrap()
        }

        async fn connect(&self, id: &str, who: &str, key: &str, resume_after: Option<i64>) {
            self.connections
                .connect(&LiveConnection {
                    connection_id: id.into(),
                    client_id: client(who),
                    key_id: KeyId::parse(key).unwrap(),
                    resume_after,
                })
                .await
                .unwrap();
        }

        fn event_ids(&self, connection: &str) -> Vec<i64> {
            self.push
                .received(connection)
                .iter()
                .map(|m| m["event_id"].as_i64().unwrap())
                .collect()
        }
    }

    #[tokio::test]
    async fn each_event_goes_to_every_connection_of_its_client_and_no_other_in_order() {
        let world = World::new();
        let mut fanout = world.fanout().await;
        world.connect("a1", "acme", KEY_A, None).await;
        world.connect("a2", "acme", KEY_A, None).await;
        world.connect("g1", "globex", KEY_B, None).await;
        fanout.step().await.unwrap();
        let order = OrderId::generate();
        let other = OrderId::generate();

        let mut acme = Vec::new();
        for status in [
            OrderStatus::Pending,
            OrderStatus::Placing,
            OrderStatus::Placed,
        ] {
            acme.push(world.updates.record(&client("acme"), order, status));
            world
                .updates
                .record(&client("globex"), other, OrderStatus::Pending);
        }
        let report = fanout.step().await.unwrap();

        assert_eq!(report.events, 6);
        assert_eq!(world.event_ids("a1"), acme);
        assert_eq!(world.event_ids("a2"), acme);
        let globex = world.push.received("g1");
        assert_eq!(globex.len(), 3);
        assert!(
            globex
                .iter()
                .all(|m| m["order_id"] == other.to_string().as_str())
        );
        assert_eq!(world.push.received("a1")[2]["status"], "placed");
    }

    #[tokio::test]
    async fn a_resuming_connection_first_gets_what_it_missed_then_the_live_events() {
        let world = World::new();
        let order = OrderId::generate();
        let seen = world
            .updates
            .record(&client("acme"), order, OrderStatus::Pending);
        let missed = world
            .updates
            .record(&client("acme"), order, OrderStatus::Placing);
        world
            .updates
            .record(&client("globex"), OrderId::generate(), OrderStatus::Pending);
        let mut fanout = world.fanout().await;
        world.connect("a1", "acme", KEY_A, Some(seen)).await;

        let live = world
            .updates
            .record(&client("acme"), order, OrderStatus::Placed);
        fanout.step().await.unwrap();

        assert_eq!(world.event_ids("a1"), [missed, live]);
    }

    #[tokio::test]
    async fn an_event_that_may_still_commit_holds_the_stream_and_nothing_is_sent_out_of_order() {
        let world = World::new();
        let mut fanout = world.fanout().await;
        world.connect("a1", "acme", KEY_A, None).await;
        fanout.step().await.unwrap();
        let order = OrderId::generate();
        world.updates.set_snapshot(100, 110);
        let slow = world.updates.reserve();
        let fast = world
            .updates
            .record(&client("acme"), order, OrderStatus::Placing);

        fanout.step().await.unwrap();
        assert!(world.event_ids("a1").is_empty(), "held behind {slow}");

        world
            .updates
            .commit(slow, &client("acme"), order, OrderStatus::Pending);
        fanout.step().await.unwrap();
        assert_eq!(world.event_ids("a1"), [slow, fast]);
    }

    #[tokio::test]
    async fn a_gone_connection_is_forgotten_and_a_failed_send_catches_up_without_loss() {
        let world = World::new();
        let mut fanout = world.fanout().await;
        world.connect("gone", "acme", KEY_A, None).await;
        world.connect("flaky", "acme", KEY_A, None).await;
        fanout.step().await.unwrap();
        world.push.script("gone", &[PushAnswer::Gone]);
        world
            .push
            .script("flaky", &[PushAnswer::Deliver, PushAnswer::Fail]);
        let order = OrderId::generate();
        let ids: Vec<i64> = [
            OrderStatus::Pending,
            OrderStatus::Placing,
            OrderStatus::Placed,
        ]
        .into_iter()
        .map(|s| world.updates.record(&client("acme"), order, s))
        .collect();

        let report = fanout.step().await.unwrap();
        assert_eq!(report.gone, 1);
        assert_eq!(world.connections.ids(), ["flaky"]);
        assert_eq!(world.event_ids("flaky"), ids[..1]);

        let later = world
            .updates
            .record(&client("acme"), order, OrderStatus::Filled);
        fanout.step().await.unwrap();
        assert_eq!(
            world.event_ids("flaky"),
            [ids[0], ids[1], ids[2], later],
            "caught up from the store, then live; nothing lost, nothing twice"
        );
    }

    #[tokio::test]
    async fn connections_open_before_the_fan_out_starts_are_closed_and_resume_without_loss() {
        let world = World::new();
        let order = OrderId::generate();
        // Served by the previous fan-out up to `seen`; it stopped before `missed` went out.
        world.connect("old", "acme", KEY_A, None).await;
        let seen = world
            .updates
            .record(&client("acme"), order, OrderStatus::Pending);
        let missed = world
            .updates
            .record(&client("acme"), order, OrderStatus::Placing);

        let mut fanout = world.fanout().await;
        assert_eq!(world.push.closed(), ["old"]);
        assert!(world.connections.ids().is_empty());

        // The client reconnects from the last event it saw.
        world.connect("new", "acme", KEY_A, Some(seen)).await;
        let live = world
            .updates
            .record(&client("acme"), order, OrderStatus::Placed);
        fanout.step().await.unwrap();
        assert_eq!(world.event_ids("new"), [missed, live]);
        assert!(world.push.received("old").is_empty());
    }

    #[tokio::test]
    async fn the_connections_of_a_revoked_key_are_closed_and_forgotten() {
        let world = World::new();
        let mut fanout = world.fanout().await;
        world.connect("a1", "acme", KEY_A, None).await;
        world.connect("g1", "globex", KEY_B, None).await;
        fanout.step().await.unwrap();
        world.connections.revoke_key(KEY_A);

        let report = fanout.step().await.unwrap();
        world
            .updates
            .record(&client("acme"), OrderId::generate(), OrderStatus::Pending);
        fanout.step().await.unwrap();

        assert_eq!(report.revoked, 1);
        assert_eq!(world.push.closed(), ["a1"]);
        assert_eq!(world.connections.ids(), ["g1"]);
        assert!(world.push.received("a1").is_empty());
    }
}
