//! The placement pipeline in one test process, wired by the local runner's own `LocalSystem`
//! but driven step by step: a fresh database, a fresh orders queue with redrive to a fresh DLQ, a
//! fresh SNS topic whose raw deliveries land in an inbox queue (what an admin would receive), the
//! simulated exchange on a free port behind the real HTTP exchange client, and the api Router so
//! that orders are really committed and enqueued.
//!
//! Instead of background pollers, [`Pipeline::pump_until`] plays Lambda's SQS event source
//! mapping (receive up to 10, call the handler, delete what it did not report as failed) on the
//! orders queue (placer) and the DLQ (alerter) until a condition on the rows and alerts holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::QueueAttributeName;
use exchange_sim::{ControlPatch, SimHandle, SimSettings, Stats};
use http::StatusCode;
use local_runner::event_source::poll_once;
use local_runner::{Background, ExchangeChoice, LocalConfig, LocalSystem};
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::secrets::PepperSource;
use order_shared::adapters::sqs::{QueueTopology, QueueUrls, SqsOrderQueue};
use order_shared::domain::ExpiryPolicy;
use order_shared::domain::OrderId;
use order_shared::handlers::alerter::handle_dead_letters;
use order_shared::handlers::placer::{PlacerPorts, PlacerSettings, handle_placement_batch};
use order_shared::handlers::sweeper::{SweepSettings, SweeperPorts, TickReport, run_scheduled};
use order_shared::ports::PlacementMessage;
use order_shared::ports::{AlertPublisher, BreakerSettings, Exchange, LookupOutcome, OrderStore};
use order_shared::usecases::backoff::Backoff;
use serde_json::Value;
use sqs_local::sdk::SqsEndpoint;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{TEST_PEPPER, TestApi, TestDatabase, database_config, sdk_config, sweep_now};

/// The knobs a test may turn; the defaults make a fast, reliable pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Receives before SQS moves a message to the DLQ.
    pub max_receive_count: u32,
    pub visibility_timeout_seconds: u32,
    /// How soon a dead letter the alerter reported as failed comes back.
    pub dead_letter_visibility_timeout_seconds: u32,
    /// The placer's claim; longer than the exchange timeout and shorter than the visibility
    /// timeout, as the design asks.
    pub lease: Duration,
    /// With 1 s / 1 s the jittered delay is 0.5–1 s, which the SQS adapter sends as 0 whole
    /// seconds: a failed record is visible again at once, which keeps the tests fast.
    pub backoff: Backoff,
    pub concurrency: usize,
    /// The HTTP exchange client's whole-call timeout.
    pub exchange_timeout: Duration,
    /// The simulator's settings (`listen` is ignored: it binds a free port).
    pub sim: SimSettings,
    /// Concurrent placer polls per pump round (Lambda runs several invocations at once).
    pub placer_pollers: usize,
    /// Retries whose delay exceeds this park the order in the database.
    pub short_wait_max: Duration,
    pub park_from_receive: u32,
    pub breaker: BreakerSettings,
    pub expiry: ExpiryPolicy,
    pub alert_window: Duration,
    /// How many times the alerter sends a dead-lettered pending order again before failing it.
    pub dead_letter_resends: u32,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            max_receive_count: 3,
            visibility_timeout_seconds: 5,
            dead_letter_visibility_timeout_seconds: 1,
            lease: Duration::from_secs(3),
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            concurrency: 10,
            // Generous, so that a loaded machine does not turn a 503 into a timeout; the tests
            // about timeouts set their own.
            exchange_timeout: Duration::from_secs(2),
            sim: SimSettings {
                latency: Duration::from_millis(10),
                lookup_latency: Duration::from_millis(5),
                failure_rate: 0.0,
                ..SimSettings::default()
            },
            placer_pollers: 2,
            short_wait_max: Duration::from_secs(30),
            park_from_receive: 3,
            // High enough that the random failures of ordinary tests never open it.
            breaker: BreakerSettings {
                failure_threshold: 1_000,
                probe_interval: Duration::from_millis(500),
            },
            expiry: ExpiryPolicy::default(),
            alert_window: Duration::from_secs(300),
            dead_letter_resends: order_shared::handlers::alerter::DEFAULT_DEAD_LETTER_RESENDS,
        }
    }
}

/// One `orders` row, as the assertions need it.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub exchange_order_id: Option<String>,
    pub placed_at: Option<OffsetDateTime>,
    pub enqueued_at: Option<OffsetDateTime>,
    pub alerted_at: Option<OffsetDateTime>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub outcome_unknown: bool,
}

impl OrderRow {
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "placed" | "rejected" | "failed" | "expired" | "canceled"
        )
    }
}

/// One `order_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    pub attempt: i32,
}

/// What one emulated event-source poll did.
#[derive(Debug, Clone, Default)]
pub struct PollReport {
    pub received: usize,
    /// Message ids the handler reported in `batchItemFailures`.
    pub failed: Vec<String>,
}

/// What the pipeline looks like between pump rounds.
#[derive(Debug, Clone)]
pub struct PumpState {
    pub orders: Vec<OrderRow>,
    /// Every alert seen in the inbox since the pipeline started.
    pub alerts: Vec<Value>,
    pub orders_queue_depth: u64,
    pub dead_letter_depth: u64,
    /// Records the placer / alerter reported as failed during this pump.
    pub placer_failures: usize,
    pub alerter_failures: usize,
}

impl PumpState {
    pub fn order(&self, id: Uuid) -> Option<&OrderRow> {
        self.orders.iter().find(|o| o.id == id)
    }

    pub fn status(&self, id: Uuid) -> &str {
        self.order(id).map(|o| o.status.as_str()).unwrap_or("")
    }

    /// Every given order is in one of `statuses`.
    pub fn all_in(&self, ids: &[Uuid], statuses: &[&str]) -> bool {
        ids.iter().all(|id| statuses.contains(&self.status(*id)))
    }

    pub fn queues_empty(&self) -> bool {
        self.orders_queue_depth == 0 && self.dead_letter_depth == 0
    }

    /// Alerts about one order.
    pub fn alerts_for(&self, id: Uuid) -> Vec<&Value> {
        let id = id.to_string();
        self.alerts
            .iter()
            .filter(|a| a["order_id"].as_str() == Some(id.as_str()))
            .collect()
    }
}

/// The whole pipeline, in process: the local runner's own wiring (`LocalSystem`), with moto for
/// SQS and SNS, a fresh database and fresh queue and topic names, and no background pollers.
pub struct Pipeline {
    pub options: PipelineOptions,
    pub db: TestDatabase,
    pub system: LocalSystem,
    pub store: Arc<PostgresOrderStore>,
    pub sdk: aws_config::SdkConfig,
    pub sqs: SqsClient,
    pub queues: QueueUrls,
    pub settings: PlacerSettings,
    pub api: TestApi,
    seen_alerts: Mutex<Vec<Value>>,
}

impl Pipeline {
    pub async fn start(options: PipelineOptions) -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let db = TestDatabase::create().await;
        let sdk = sdk_config().await;
        let config = LocalConfig {
            // The functions through PgBouncer when the tests use it; migrations directly.
            database: database_config(db.functions_url.clone()),
            migration_database: Some(database_config(db.url.clone())),
            pepper: PepperSource::Value(TEST_PEPPER.into()),
            local_key: None,
            sqs_endpoint: SqsEndpoint::External,
            sqs_local_listen: None,
            topology: QueueTopology {
                orders_name: format!("pipe-orders-{suffix}"),
                dead_letters_name: format!("pipe-dlq-{suffix}"),
                max_receive_count: options.max_receive_count,
                visibility_timeout_seconds: options.visibility_timeout_seconds,
                // In AWS the alerter's event source mapping would bring a failed dead letter
                // back after the DLQ's visibility timeout; short, so tests need not wait 30 s.
                dead_letter_visibility_timeout_seconds: Some(
                    options.dead_letter_visibility_timeout_seconds,
                ),
            },
            alert_topic_name: format!("pipe-alerts-{suffix}"),
            alerts_inbox_name: format!("pipe-inbox-{suffix}"),
            alerts_via_sns: Some(true),
            exchange: ExchangeChoice::Simulated(Box::new(SimSettings {
                listen: "127.0.0.1:0".parse().expect("address"),
                ..options.sim.clone()
            })),
            exchange_api_key: None,
            exchange_connect_timeout: options.exchange_timeout,
            exchange_timeout: options.exchange_timeout,
            placer: PlacerSettings {
                lease: options.lease,
                concurrency: options.concurrency,
                backoff: options.backoff,
                short_wait_max: options.short_wait_max,
                park_from_receive: options.park_from_receive,
                breaker: options.breaker,
            },
            sweep: SweepSettings {
                // Orders the api just sent are marked within milliseconds; a parked order is
                // older than this anyway.
                grace: Duration::from_secs(2),
                alert_window: options.alert_window,
                ..sweep_now()
            },
            dead_letter_resends: options.dead_letter_resends,
            enqueue_timeout: Duration::from_secs(2),
            expiry: options.expiry,
            idempotency_retention: order_shared::domain::IdempotencyKey::DEFAULT_RETENTION,
            background: Background {
                placer_pollers: options.placer_pollers,
                // Each pump round polls once without waiting.
                poll_wait: Duration::ZERO,
                sweep_every: Duration::from_secs(3600),
                print_alerts: false,
                ingester: None,
            },
            listen: "127.0.0.1:0".parse().expect("address"),
            updates_listen: "127.0.0.1:0".parse().expect("address"),
        };
        let system = LocalSystem::start(&config, &sdk)
            .await
            .expect("the local system starts (scripts/start-services.sh starts moto)");
        let api = TestApi::for_context(system.api_context(), system.access.clone()).await;
        Self {
            options,
            db,
            store: system.store.clone(),
            sdk,
            sqs: system.sqs.clone(),
            queues: system.queues.clone(),
            settings: system.placer.clone(),
            system,
            api,
            seen_alerts: Mutex::new(Vec::new()),
        }
    }

    /// The queue adapter background senders (the sweeper, the admin tool) use.
    pub fn order_queue(&self) -> SqsOrderQueue {
        self.system.background_queue()
    }

    pub fn placer_ports(&self) -> PlacerPorts<'_> {
        self.system.placer_ports()
    }

    fn sim(&self) -> &SimHandle {
        self.system
            .simulator
            .as_ref()
            .expect("the pipeline runs the simulator")
    }

    /// Changes the simulated exchange while the pipeline runs.
    pub fn control(&self, patch: ControlPatch) {
        self.sim().control(&patch).expect("valid control patch");
    }

    pub fn stats(&self) -> Stats {
        self.sim().stats()
    }

    /// The simulated exchange's feed counters (cancels accepted and refused among them).
    pub fn feed_stats(&self) -> exchange_sim::FeedStats {
        self.sim().feed_stats()
    }

    /// `POST /orders` through the api Router: committed and enqueued. Returns the order id.
    pub async fn post_order(&self, body: &str) -> Uuid {
        let response = self.api.post_order(body, None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json);
        Uuid::parse_str(response.json["id"].as_str().expect("id")).expect("UUID id")
    }

    /// Posts `count` orders (a few at a time); ids in posting order.
    pub async fn post_orders(&self, count: usize, body: &str) -> Vec<Uuid> {
        use futures::StreamExt;
        futures::stream::iter(0..count)
            .map(|_| self.post_order(body))
            .buffered(8)
            .collect()
            .await
    }

    /// The placement message the api sent for an order (to send it again).
    pub async fn placement_message(&self, id: Uuid) -> String {
        let order = self
            .store
            .find_order(OrderId::from(id))
            .await
            .expect("find order")
            .expect("order exists");
        PlacementMessage::for_order(&order).to_json()
    }

    /// Sends any body to a queue (duplicates, poison).
    pub async fn send_raw(&self, queue_url: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    /// One placer invocation: receive up to 10 from the orders queue, handle, delete the rest.
    pub async fn run_placer_once(&self) -> PollReport {
        self.run_placer_once_with(self.placer_ports()).await
    }

    /// One placer invocation on other ports (e.g. a store that cannot be reached).
    pub async fn run_placer_once_with(&self, ports: PlacerPorts<'_>) -> PollReport {
        let failed = Mutex::new(Vec::new());
        let failed_ref = &failed;
        let settings = &self.settings;
        let received = poll_once(
            &self.sqs,
            &self.system.orders_source,
            &move |event| async move {
                let response = handle_placement_batch(event, ports, settings).await;
                failed_ref.lock().unwrap().extend(
                    response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.clone()),
                );
                response
            },
        )
        .await
        .expect("poll the orders queue");
        PollReport {
            received,
            failed: failed.into_inner().unwrap(),
        }
    }

    /// One alerter invocation on the DLQ, publishing through `alerts`.
    pub async fn run_alerter_once_with(&self, alerts: &dyn AlertPublisher) -> PollReport {
        let failed = Mutex::new(Vec::new());
        let failed_ref = &failed;
        let ports = self.system.alerter_ports(alerts);
        let received = poll_once(
            &self.sqs,
            &self.system.dead_letter_source,
            &move |event| async move {
                let response = handle_dead_letters(event, ports, &self.system.alerter).await;
                failed_ref.lock().unwrap().extend(
                    response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.clone()),
                );
                response
            },
        )
        .await
        .expect("poll the DLQ");
        PollReport {
            received,
            failed: failed.into_inner().unwrap(),
        }
    }

    /// One scheduled sweeper run (expire, re-send due orders, announce incidents).
    pub async fn run_sweeper_once_with(&self, alerts: &dyn AlertPublisher) -> TickReport {
        let queue = self.system.background_queue();
        let ports = SweeperPorts {
            store: self.store.as_ref(),
            incidents: self.store.as_ref(),
            queue: &queue,
            alerts,
        };
        run_scheduled(ports, &self.system.sweep)
            .await
            .expect("sweep")
    }

    pub async fn run_sweeper_once(&self) -> TickReport {
        self.run_sweeper_once_with(self.system.alerts.as_ref())
            .await
    }

    /// `DELETE /orders/{id}` through the api Router: the status code and the order's status.
    pub async fn cancel(&self, id: Uuid) -> (StatusCode, Value) {
        let response = self
            .api
            .send(
                http::Request::delete(format!("/orders/{id}"))
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await;
        (response.status, response.json)
    }

    pub async fn run_alerter_once(&self) -> PollReport {
        self.run_alerter_once_with(self.system.alerts.as_ref())
            .await
    }

    /// Calls the alerter's handler directly with hand-made records (no queue involved).
    pub async fn alerter_handles(&self, records: Vec<SqsMessage>) -> PollReport {
        let received = records.len();
        let mut event = SqsEvent::default();
        event.records = records;
        let response = handle_dead_letters(
            event,
            self.system.alerter_ports(self.system.alerts.as_ref()),
            &self.system.alerter,
        )
        .await;
        PollReport {
            received,
            failed: response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
        }
    }

    /// Runs the placer and the alerter until `done` holds, or panics with the last state.
    pub async fn pump_until(
        &self,
        within: Duration,
        done: impl FnMut(&PumpState) -> bool,
    ) -> PumpState {
        self.pump_until_with(self.system.alerts.as_ref(), within, done)
            .await
    }

    /// `pump_until` with the alerter publishing through `alerts`.
    pub async fn pump_until_with(
        &self,
        alerts: &dyn AlertPublisher,
        within: Duration,
        mut done: impl FnMut(&PumpState) -> bool,
    ) -> PumpState {
        let deadline = Instant::now() + within;
        let (mut placer_failures, mut alerter_failures) = (0, 0);
        loop {
            let state = self.state(placer_failures, alerter_failures).await;
            if done(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "the pipeline did not get there within {within:?}; last state: {state:#?}"
            );
            let placers = futures::future::join_all(
                (0..self.options.placer_pollers.max(1)).map(|_| self.run_placer_once()),
            );
            let (placed, alerted) = tokio::join!(placers, self.run_alerter_once_with(alerts));
            // The schedule: parked orders that are due go back to the queue, expired ones end.
            self.run_sweeper_once_with(alerts).await;
            placer_failures += placed.iter().map(|r| r.failed.len()).sum::<usize>();
            alerter_failures += alerted.failed.len();
            let received = placed.iter().map(|r| r.received).sum::<usize>() + alerted.received;
            if received == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn state(&self, placer_failures: usize, alerter_failures: usize) -> PumpState {
        PumpState {
            orders: self.orders().await,
            alerts: self.alerts().await,
            orders_queue_depth: self.queue_depth(&self.queues.orders).await,
            dead_letter_depth: self.queue_depth(&self.queues.dead_letters).await,
            placer_failures,
            alerter_failures,
        }
    }

    /// Every order row, oldest first.
    pub async fn orders(&self) -> Vec<OrderRow> {
        self.db
            .client()
            .await
            .query(
                "SELECT id, status, attempts, last_error, exchange_order_id, placed_at, \
                        enqueued_at, alerted_at, lease_expires_at, expires_at, next_attempt_at, \
                        outcome_unknown \
                 FROM orders ORDER BY id",
                &[],
            )
            .await
            .expect("read orders")
            .iter()
            .map(|row| OrderRow {
                id: row.get("id"),
                status: row.get("status"),
                attempts: row.get("attempts"),
                last_error: row.get("last_error"),
                exchange_order_id: row.get("exchange_order_id"),
                placed_at: row.get("placed_at"),
                enqueued_at: row.get("enqueued_at"),
                alerted_at: row.get("alerted_at"),
                lease_expires_at: row.get("lease_expires_at"),
                expires_at: row.get("expires_at"),
                next_attempt_at: row.get("next_attempt_at"),
                outcome_unknown: row.get("outcome_unknown"),
            })
            .collect()
    }

    pub async fn order(&self, id: Uuid) -> OrderRow {
        self.orders()
            .await
            .into_iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("order {id} exists"))
    }

    /// The audit trail of one order, in order.
    pub async fn events(&self, id: Uuid) -> Vec<EventRow> {
        self.db
            .client()
            .await
            .query(
                "SELECT from_status, to_status, reason, attempt FROM order_events \
                 WHERE order_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .expect("read events")
            .iter()
            .map(|row| EventRow {
                from: row.get("from_status"),
                to: row.get("to_status"),
                reason: row.get("reason"),
                attempt: row.get("attempt"),
            })
            .collect()
    }

    /// Every alert that reached the inbox so far (the inbox is drained into memory).
    pub async fn alerts(&self) -> Vec<Value> {
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.system.alerts_inbox.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive alerts");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let body = message.body().unwrap_or_default();
                let alert = serde_json::from_str(body)
                    .unwrap_or_else(|_| panic!("an alert is the raw JSON body, got {body}"));
                self.seen_alerts.lock().unwrap().push(alert);
                self.sqs
                    .delete_message()
                    .queue_url(&self.system.alerts_inbox.queue_url)
                    .set_receipt_handle(message.receipt_handle)
                    .send()
                    .await
                    .expect("delete alert");
            }
        }
        self.seen_alerts.lock().unwrap().clone()
    }

    /// Visible + in flight + delayed messages.
    pub async fn queue_depth(&self, queue_url: &str) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        attributes
            .values()
            .map(|v| v.parse::<u64>().expect("a count"))
            .sum()
    }

    /// What the exchange itself says it holds for a client order id.
    pub async fn exchange_order_id(&self, id: Uuid) -> Option<String> {
        match self
            .system
            .exchange
            .lookup(OrderId::from(id))
            .await
            .expect("exchange lookup")
        {
            LookupOutcome::Placed { exchange_order_id } => Some(exchange_order_id),
            LookupOutcome::Unknown => None,
        }
    }

    /// Installs a real trigger that makes the next `placing → placed` UPDATE fail, once: the
    /// exchange has acknowledged, but the row is not updated — as if the placer died in between.
    /// A sequence counts the firings (sequences are not rolled back with the failed statement).
    pub async fn fail_next_placed_update(&self) {
        self.db
            .client()
            .await
            .batch_execute(
                "CREATE SEQUENCE test_placed_updates; \
                 CREATE FUNCTION test_fail_first_placed_update() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ \
                 BEGIN \
                   IF nextval('test_placed_updates') = 1 THEN \
                     RAISE EXCEPTION 'injected fault: crashed before recording the placement'; \
                   END IF; \
                   RETURN NEW; \
                 END $$; \
                 CREATE TRIGGER test_fail_first_placed_update BEFORE UPDATE ON orders \
                   FOR EACH ROW WHEN (OLD.status = 'placing' AND NEW.status = 'placed') \
                   EXECUTE FUNCTION test_fail_first_placed_update();",
            )
            .await
            .expect("install the fault trigger");
    }

    /// How often the fault trigger ran (the first run failed the update).
    pub async fn placed_update_attempts(&self) -> i64 {
        let row = self
            .db
            .client()
            .await
            .query_one(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_placed_updates",
                &[],
            )
            .await
            .expect("read the fault counter");
        row.get(0)
    }
}

/// A hand-made SQS record, as the event source mapping would hand it to a handler.
pub fn record(message_id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.to_owned());
    record.body = Some(body.to_owned());
    record.event_source = Some("aws:sqs".into());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    record
}
