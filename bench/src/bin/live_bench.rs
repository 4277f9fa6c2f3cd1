//! `live-bench`: live order updates over the WebSocket at load (issue #16).
//!
//! In one process, against the Postgres of `TEST_ADMIN_DATABASE_URL` (default 127.0.0.1:5432) in
//! a fresh, migrated database: `--clients` clients, each with its own API key (registered through
//! `ClientRegistry`, as `orders-admin keys create` does, with a fixed test pepper) and
//! `--orders-per-client` orders stored `placed`; the real `UpdateHub` and `updates::router`
//! served by axum on a free port; one real WebSocket client (tokio-tungstenite) per client. A
//! load generator writes order updates at a paced `--rate` for `--duration-s`, the way the
//! service's writers do: one statement per update that locks and updates the order's row, then
//! inserts its `order_events` row (so the row is written before the event id is drawn, which the
//! hub's horizon relies on), `RETURNING` the event id; the commit instant is taken when the
//! statement (its own transaction) returns. Consecutive updates go to different clients' orders.
//!
//! Every client drops its socket without a close frame `--disconnects` times at random moments
//! (between 10 % and 90 % of the run), stays away up to `--max-offline-ms`, and reconnects with
//! `?after=<the last event id it received>`. After the load and a drain, it prints the updates
//! written and delivered, per-client counts, the commit → receipt latency of live events (an
//! event committed while its client's connection was open) and, apart, of resumed ones
//! (committed before the connection that delivered it was opened: their latency includes the
//! time away), where the time went (the hub's reads are timed through a wrapper around its
//! store), Postgres CPU per update (every `postgres` process from /proc: run it on an otherwise
//! quiet machine), and exits non-zero if an update was lost, duplicated or sent to the wrong
//! client. Prints numbers; asserts no timing.
//!
//! `cargo run --release -p bench --bin live-bench -- --duration-s 30`

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::Parser;
use futures::StreamExt;
use order_shared::adapters::postgres::{
    DatabaseConfig, DatabaseCredentials, PostgresAccessControl, PostgresOrderUpdates, TlsMode,
    build_pool, run_migrations,
};
use order_shared::auth::{ApiKey, KeyHasher};
use order_shared::domain::ClientId;
use order_shared::handlers::updates::{self, HubSettings, UpdateHub, UpdatesContext};
use order_shared::ports::{
    ClientLimits, ClientRegistry, OrderUpdate, OrderUpdateStore, StoreError, UpdatePoll,
};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Connected clients, one API key and one WebSocket each.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Order updates written per second, paced.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// How long the load runs.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Orders per client; the updates go round all of them.
    #[arg(long, default_value_t = 10)]
    orders_per_client: usize,
    /// Writer connections (with `synchronous_commit = on` a commit waits for its WAL flush, so
    /// the rate needs commits in flight to share flushes).
    #[arg(long, default_value_t = 32)]
    writers: usize,
    /// Forced disconnects per client.
    #[arg(long, default_value_t = 1)]
    disconnects: u32,
    /// A disconnected client stays away a random time up to this.
    #[arg(long, default_value_t = 1000)]
    max_offline_ms: u64,
    /// The hub's `poll_interval`.
    #[arg(long, default_value_t = 25)]
    poll_interval_ms: u64,
    /// The hub's `page`.
    #[arg(long, default_value_t = 1000)]
    page: u32,
    /// The hub's `buffer`.
    #[arg(long, default_value_t = 16_384)]
    buffer: usize,
    /// How long to wait after the load for every update to arrive.
    #[arg(long, default_value_t = 20)]
    drain_s: u64,
    /// Seed of the disconnect schedule.
    #[arg(long, default_value_t = 16)]
    seed: u64,
}

/// The stored pepper of the keys: a fixed test value (at least 32 bytes), never a secret.
const TEST_PEPPER: &[u8] = b"live-bench-pepper-not-a-secret-0000000";

/// One update: lock the order's row, update it, append its audit event, in one statement (its
/// own transaction), like the service's transitions (`adapters/postgres/transitions.rs`).
const UPDATE_SQL: &str = "\
    WITH prev AS ( \
      SELECT id, status AS from_status FROM orders WHERE id = $1 FOR UPDATE \
    ), upd AS ( \
      UPDATE orders o SET status = 'partially_filled', filled_quantity = o.filled_quantity + 1, \
             updated_at = now() \
      FROM prev WHERE o.id = prev.id \
      RETURNING o.id, o.attempts, prev.from_status \
    ) \
    INSERT INTO order_events (order_id, from_status, to_status, reason, attempt) \
    SELECT id, from_status, 'partially_filled', 'live-bench fill', attempts FROM upd \
    RETURNING id";

fn admin_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// CPU seconds (user + system) of every process named `postgres`, or of `pid` (as in
/// `ingest-bench`).
fn cpu_seconds(only: Option<u32>) -> anyhow::Result<f64> {
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if only.is_some_and(|p| p != pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if only.is_none() && &stat[open + 1..close] != "postgres" {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    Ok(total as f64 / ticks)
}

/// What the hub's reads saw, and when: an event is *read* when a poll first returns it, and
/// *released* (broadcast to the sessions) when the hub's next poll starts after it — the hub
/// broadcasts what its horizon allows right after a read, then asks for what follows.
#[derive(Default)]
struct HubTrace {
    first_read: HashMap<i64, Instant>,
    released: HashMap<i64, Instant>,
    unreleased: BTreeSet<i64>,
    last_read_at: Option<Instant>,
    reads: u64,
    read_time: Duration,
    catch_up_reads: u64,
    catch_up_rows: u64,
    /// Every poll: `after`, the snapshot's xmin, the gap bound, the largest id returned.
    polls: Vec<(i64, u64, u64, Option<i64>)>,
}

/// The hub's store, timed: the real Postgres adapter underneath.
struct TimedUpdates {
    inner: PostgresOrderUpdates,
    trace: Mutex<HubTrace>,
}

#[async_trait]
impl OrderUpdateStore for TimedUpdates {
    async fn updates_after(&self, after: i64, limit: u32) -> Result<UpdatePoll, StoreError> {
        {
            let mut trace = self.trace.lock().unwrap();
            if let Some(at) = trace.last_read_at {
                let done: Vec<i64> = trace.unreleased.range(..=after).copied().collect();
                for id in done {
                    trace.unreleased.remove(&id);
                    trace.released.insert(id, at);
                }
            }
        }
        let started = Instant::now();
        let poll = self.inner.updates_after(after, limit).await?;
        let now = Instant::now();
        let mut trace = self.trace.lock().unwrap();
        trace.reads += 1;
        trace.read_time += now - started;
        trace.last_read_at = Some(now);
        let largest = poll.updates.last().map(|u| u.event_id);
        trace
            .polls
            .push((after, poll.xmin, poll.gap_bound, largest));
        for update in &poll.updates {
            if !trace.released.contains_key(&update.event_id) {
                trace.first_read.entry(update.event_id).or_insert(now);
                trace.unreleased.insert(update.event_id);
            }
        }
        Ok(poll)
    }

    async fn client_updates(
        &self,
        client: &ClientId,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<OrderUpdate>, StoreError> {
        let rows = self
            .inner
            .client_updates(client, after, up_to, limit)
            .await?;
        let mut trace = self.trace.lock().unwrap();
        trace.catch_up_reads += 1;
        trace.catch_up_rows += rows.len() as u64;
        Ok(rows)
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        self.inner.latest_event_id().await
    }
}

/// One update as written.
struct Written {
    event_id: i64,
    client: usize,
    scheduled: Instant,
    sent: Instant,
    committed: Instant,
}

/// Writes the updates numbered from `next` at their paced instants until `total` are taken.
async fn write_updates(
    db: tokio_postgres::Client,
    next: Arc<AtomicU64>,
    total: u64,
    start: Instant,
    interval: Duration,
    orders: Arc<Vec<(Uuid, usize)>>,
) -> anyhow::Result<Vec<Written>> {
    let statement = db.prepare(UPDATE_SQL).await?;
    let mut written = Vec::new();
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= total {
            return Ok(written);
        }
        let scheduled = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (order, client) = orders[(k % orders.len() as u64) as usize];
        let sent = Instant::now();
        let row = db
            .query_one(&statement, &[&order])
            .await
            .context("writing an update")?;
        let committed = Instant::now();
        written.push(Written {
            event_id: row.get(0),
            client,
            scheduled,
            sent,
            committed,
        });
    }
}

#[derive(Deserialize)]
struct UpdateMessage {
    event_id: i64,
    order_id: Uuid,
}

/// One message as a client received it.
struct Received {
    event_id: i64,
    order_id: Uuid,
    at: Instant,
    /// When the connection that delivered it was opened.
    connection_opened: Instant,
}

#[derive(Default)]
struct ClientRun {
    received: Vec<Received>,
    /// Forced disconnects followed by a reconnect.
    reconnects: u32,
    /// Connections that ended without being dropped by the client.
    unexpected_ends: u32,
    connect_failures: u32,
    unparsed: u32,
    /// When each connection was opened (the handshake's answer received).
    opened: Vec<Instant>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, key: &str, after: Option<i64>) -> anyhow::Result<Socket> {
    let url = match after {
        Some(after) => format!("{url}?after={after}"),
        None => url.to_owned(),
    };
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}"))?,
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}

/// One client: connects, records every message, drops its socket at each of `drops` (without a
/// close frame), stays away `offline`, and resumes after the last event id it received.
async fn run_client(
    url: String,
    key: String,
    drops: Vec<(Instant, Duration)>,
    mut stop: watch::Receiver<bool>,
    connected: Arc<AtomicUsize>,
    messages: Arc<AtomicU64>,
) -> ClientRun {
    let mut run = ClientRun::default();
    let mut last: Option<i64> = None;
    let mut drops = drops.into_iter();
    let mut next_drop = drops.next();
    let mut first = true;
    loop {
        let socket = match open(&url, &key, last).await {
            Ok(socket) => socket,
            Err(error) => {
                run.connect_failures += 1;
                if run.connect_failures % 10 == 1 {
                    eprintln!("live-bench: a client could not connect: {error:#}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let opened = Instant::now();
        run.opened.push(opened);
        if first {
            connected.fetch_add(1, Ordering::Relaxed);
            first = false;
        }
        let mut socket = socket;
        loop {
            let drop_at = next_drop.map_or(Instant::now() + Duration::from_secs(3600), |d| d.0);
            tokio::select! {
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let at = Instant::now();
                        match serde_json::from_str::<UpdateMessage>(&text) {
                            Ok(message) => {
                                last = Some(message.event_id);
                                run.received.push(Received {
                                    event_id: message.event_id,
                                    order_id: message.order_id,
                                    at,
                                    connection_opened: opened,
                                });
                                messages.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => run.unparsed += 1,
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        run.unexpected_ends += 1;
                        break;
                    }
                },
                _ = tokio::time::sleep_until(drop_at.into()) => {
                    // A forced disconnect: the TCP connection goes, no close frame.
                    let offline = next_drop.map_or(Duration::ZERO, |d| d.1);
                    drop(socket);
                    next_drop = drops.next();
                    run.reconnects += 1;
                    tokio::time::sleep(offline).await;
                    break;
                }
                _ = stop.changed() => return run,
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `later - earlier` in ms, negative if `later` came first.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        ms(later - earlier)
    } else {
        -ms(earlier - later)
    }
}

fn summary(name: &str, mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "  {name:<34} n {:>6}  p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1} ms",
        values.len(),
        percentile(&values, 50.0),
        percentile(&values, 90.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(f64::NAN),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.orders_per_client == 0 || args.rate == 0 || args.writers == 0 {
        bail!("--clients, --orders-per-client, --rate and --writers must be at least 1");
    }
    let total = args.rate * args.duration_s;

    let admin = bench::db::connect(&admin_url()).await?;
    let name = format!("live_bench_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let base = admin_url();
    let base = base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let outcome = run(&args, total, &url).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    outcome
}

async fn run(args: &Args, total: u64, url: &str) -> anyhow::Result<()> {
    // The hub's polls, the sessions' catch-ups and key checks: as the local runner, one small
    // pool (a poll at a time, plus a few catch-ups and key checks at once).
    let pool = build_pool(
        &DatabaseConfig {
            credentials: DatabaseCredentials::Url(url.to_owned()),
            tls: TlsMode::Disable,
            ca_file: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
        },
        None,
    )
    .await?;
    run_migrations(&pool).await?;
    let db = bench::db::connect(url).await?;
    let commit_setting: String = db.query_one("SHOW synchronous_commit", &[]).await?.get(0);

    // Clients and keys, as `orders-admin clients set` and `keys create` make them.
    let access = PostgresAccessControl::new(pool.clone(), KeyHasher::new(TEST_PEPPER)?);
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let client = ClientId::parse(&format!("live-bench-{i:03}")).map_err(anyhow::Error::msg)?;
        access
            .upsert_client(
                &client,
                ClientLimits {
                    requests_per_second: Some(1000),
                    max_open_orders: None,
                },
            )
            .await?;
        let key = ApiKey::generate()?;
        access
            .create_key(&client, &key, "live-bench")
            .await?
            .context("the client was just created")?;
        clients.push((client, key));
    }
    // Orders, already placed; order j belongs to client j % clients, so consecutive updates go
    // to different clients.
    let count = args.clients * args.orders_per_client;
    let orders: Vec<(Uuid, usize)> = (0..count)
        .map(|j| (Uuid::now_v7(), j % args.clients))
        .collect();
    let ids: Vec<Uuid> = orders.iter().map(|o| o.0).collect();
    let owners: Vec<String> = orders
        .iter()
        .map(|o| clients[o.1].0.as_str().to_owned())
        .collect();
    db.execute(
        "INSERT INTO orders (id, client_id, order_type, side, instrument, quantity, status, \
                exchange_order_id, placed_at, request_fingerprint, expires_at) \
         SELECT id, client_id, 'market', 'buy', 'US0378331005', 1000000000, 'placed', \
                'EX-' || id, now(), 'live-bench', now() + interval '1 day' \
         FROM unnest($1::uuid[], $2::text[]) AS t (id, client_id)",
        &[&ids, &owners],
    )
    .await
    .context("inserting the orders")?;
    db.batch_execute("VACUUM ANALYZE orders").await?;
    let owner_of: HashMap<Uuid, usize> = orders.iter().copied().collect();

    // The server: the real hub and router, on a free port.
    let store = Arc::new(TimedUpdates {
        inner: PostgresOrderUpdates::new(pool.clone()),
        trace: Mutex::new(HubTrace::default()),
    });
    let settings = HubSettings {
        poll_interval: Duration::from_millis(args.poll_interval_ms),
        page: args.page,
        buffer: args.buffer,
    };
    let hub = UpdateHub::start(store.clone(), settings).await?;
    let router = updates::router(UpdatesContext {
        access: Arc::new(access.clone()),
        store: store.clone(),
        hub: Arc::new(hub),
        recheck: Duration::from_secs(2),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ws_url = format!("ws://{}/updates", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // The clients, each with its disconnect schedule; all connected before the load starts.
    let load_start = Instant::now() + Duration::from_secs(3);
    let run_for = Duration::from_secs(args.duration_s);
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let (stop, stopped) = watch::channel(false);
    let connected = Arc::new(AtomicUsize::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(args.clients);
    for (_, key) in &clients {
        let mut drops: Vec<(Instant, Duration)> = (0..args.disconnects)
            .map(|_| {
                let at = load_start + run_for.mul_f64(0.1 + 0.8 * rng.f64());
                let offline = Duration::from_millis(rng.u64(0..=args.max_offline_ms));
                (at, offline)
            })
            .collect();
        drops.sort_by_key(|d| d.0);
        tasks.push(tokio::spawn(run_client(
            ws_url.clone(),
            key.expose(),
            drops,
            stopped.clone(),
            connected.clone(),
            messages.clone(),
        )));
    }
    while connected.load(Ordering::Relaxed) < args.clients {
        if Instant::now() > load_start + Duration::from_secs(30) {
            bail!(
                "only {} of {} clients connected",
                connected.load(Ordering::Relaxed),
                args.clients
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The load.
    let mut writers = Vec::with_capacity(args.writers);
    let next = Arc::new(AtomicU64::new(0));
    let orders = Arc::new(orders);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for _ in 0..args.writers {
        let db = bench::db::connect(url).await?;
        writers.push(tokio::spawn(write_updates(
            db,
            next.clone(),
            total,
            load_start,
            interval,
            orders.clone(),
        )));
    }
    tokio::time::sleep_until(load_start.into()).await;
    let pg_before = cpu_seconds(None)?;
    let me_before = cpu_seconds(Some(std::process::id()))?;
    let mut written = Vec::with_capacity(total as usize);
    for writer in writers {
        written.extend(writer.await??);
    }
    let load_end = Instant::now();
    let pg_cpu = cpu_seconds(None)? - pg_before;
    let me_cpu = cpu_seconds(Some(std::process::id()))? - me_before;

    // The drain: until every update written has arrived (or the time is up), then a moment more
    // for anything that would arrive twice.
    let drain_start = Instant::now();
    while messages.load(Ordering::Relaxed) < written.len() as u64
        && drain_start.elapsed() < Duration::from_secs(args.drain_s)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = drain_start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let mut runs = Vec::with_capacity(args.clients);
    for task in tasks {
        runs.push(task.await?);
    }
    server.abort();

    // The evidence.
    let commits: HashMap<i64, &Written> = written.iter().map(|w| (w.event_id, w)).collect();
    let trace = std::mem::take(&mut *store.trace.lock().unwrap());
    let mut written_per_client = vec![0u64; args.clients];
    for w in &written {
        written_per_client[w.client] += 1;
    }
    let (mut live, mut resumed) = (Vec::new(), Vec::new());
    let (mut to_hub_read, mut read_to_release, mut release_to_receipt) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut negative = 0u64;
    let (mut total_lost, mut total_wrong, mut total_dup, mut total_unordered) = (0, 0, 0, 0);
    let mut total_delivered = 0u64;
    let mut rows = Vec::with_capacity(args.clients);
    let mut lost_lines = Vec::new();
    let mut lost_ids: Vec<i64> = Vec::new();
    for (c, run) in runs.iter().enumerate() {
        let mut seen = HashSet::new();
        let (mut wrong, mut dup, mut unordered, mut resumed_here) = (0u64, 0u64, 0u64, 0u64);
        let mut previous = 0i64;
        for r in &run.received {
            if owner_of.get(&r.order_id) != Some(&c) {
                wrong += 1;
                continue;
            }
            if !seen.insert(r.event_id) {
                dup += 1;
                continue;
            }
            if r.event_id < previous {
                unordered += 1;
            }
            previous = r.event_id;
            let Some(w) = commits.get(&r.event_id) else {
                // An event this run did not write: there are none in a fresh database.
                wrong += 1;
                continue;
            };
            let latency = signed_ms(r.at, w.committed);
            if latency < 0.0 {
                negative += 1;
            }
            if w.committed < r.connection_opened {
                resumed.push(latency);
                resumed_here += 1;
            } else {
                live.push(latency);
                if let (Some(read), Some(released)) = (
                    trace.first_read.get(&r.event_id),
                    trace.released.get(&r.event_id),
                ) {
                    to_hub_read.push(signed_ms(*read, w.committed));
                    read_to_release.push(signed_ms(*released, *read));
                    release_to_receipt.push(signed_ms(r.at, *released));
                }
            }
        }
        let missing: Vec<&Written> = written
            .iter()
            .filter(|w| w.client == c && !seen.contains(&w.event_id))
            .collect();
        let lost = missing.len() as u64;
        lost_ids.extend(missing.iter().map(|w| w.event_id));
        // What a lost update's timeline looked like, from the load's start.
        for w in missing.iter().take(5) {
            let since = |at: Instant| signed_ms(at, load_start);
            let opens: Vec<String> = run
                .opened
                .iter()
                .map(|at| format!("{:.1}", since(*at)))
                .collect();
            lost_lines.push(format!(
                "  lost: {} event {} committed at {:.1} ms, first read by the hub at {}, \
                 released at {}; its client's connections opened at [{}] ms; last event \
                 received before the reconnect: {}",
                clients[c].0.as_str(),
                w.event_id,
                since(w.committed),
                trace
                    .first_read
                    .get(&w.event_id)
                    .map_or("never".into(), |at| format!("{:.1} ms", since(*at))),
                trace
                    .released
                    .get(&w.event_id)
                    .map_or("never".into(), |at| format!("{:.1} ms", since(*at))),
                opens.join(", "),
                run.received
                    .iter()
                    .filter(|r| r.connection_opened < *run.opened.last().unwrap())
                    .map(|r| r.event_id)
                    .max()
                    .map_or("none".into(), |id| id.to_string()),
            ));
        }
        total_lost += lost;
        total_wrong += wrong;
        total_dup += dup;
        total_unordered += unordered;
        total_delivered += seen.len() as u64;
        rows.push(format!(
            "  {:<16} written {:>5}  received {:>5}  resumed {:>4}  lost {lost}  wrong {wrong}  \
             duplicates {dup}  out of order {unordered}  reconnects {}  unexpected ends {}  \
             connect failures {}",
            clients[c].0.as_str(),
            written_per_client[c],
            seen.len(),
            resumed_here,
            run.reconnects,
            run.unexpected_ends,
            run.connect_failures,
        ));
    }
    let reconnects: u32 = runs.iter().map(|r| r.reconnects).sum();
    let clients_disconnected = runs.iter().filter(|r| r.reconnects > 0).count();
    let unexpected: u32 = runs.iter().map(|r| r.unexpected_ends).sum();
    let unparsed: u32 = runs.iter().map(|r| r.unparsed).sum();
    let load_s = (load_end - load_start).as_secs_f64();
    let statement: Vec<f64> = written.iter().map(|w| ms(w.committed - w.sent)).collect();
    let behind: Vec<f64> = written
        .iter()
        .map(|w| signed_ms(w.sent, w.scheduled))
        .collect();
    let live_p99 = {
        let mut sorted = live.clone();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, 99.0)
    };

    println!(
        "live-bench: {} clients, {} orders each, {} updates/s for {} s ({total} updates), \
         {} writer connections, synchronous_commit = {commit_setting}",
        args.clients, args.orders_per_client, args.rate, args.duration_s, args.writers
    );
    println!(
        "  hub settings     poll_interval {} ms, page {}, buffer {}; key recheck 2 s",
        args.poll_interval_ms, args.page, args.buffer
    );
    println!(
        "  written          {} in {load_s:.2} s = {:.0}/s",
        written.len(),
        written.len() as f64 / load_s
    );
    println!(
        "  delivered        {total_delivered} distinct (client, event) pairs; all arrived {:.2} s \
         after the load ended",
        drained_in.as_secs_f64()
    );
    println!(
        "  reconnects       {reconnects} forced ({clients_disconnected} of {} clients), \
         {unexpected} unexpected ends, {} connect failures",
        args.clients,
        runs.iter().map(|r| r.connect_failures).sum::<u32>()
    );
    println!("  commit -> receipt (ms; a message's receipt minus its update's commit)");
    println!("{}", summary("live", live.clone()));
    println!("{}", summary("resumed (committed while away)", resumed));
    if negative > 0 {
        println!("  ({negative} receipts were timed before their writer saw the commit return)");
    }
    println!("  where a live update's time goes (ms)");
    println!("{}", summary("commit -> first hub read", to_hub_read));
    println!(
        "{}",
        summary("hub read -> released (gap wait)", read_to_release)
    );
    println!(
        "{}",
        summary("released -> client receipt", release_to_receipt)
    );
    println!(
        "  hub reads        {} in {:.1} s, {:.2} ms each on average; catch-ups {} reads, {} rows",
        trace.reads,
        (load_end - load_start + drained_in).as_secs_f64(),
        ms(trace.read_time) / trace.reads.max(1) as f64,
        trace.catch_up_reads,
        trace.catch_up_rows
    );
    println!("  writers (ms)");
    println!("{}", summary("update statement (incl. commit)", statement));
    println!("{}", summary("sent behind schedule", behind));
    println!(
        "  Postgres CPU     {pg_cpu:.2} s = {:.1} µs per update (all postgres processes)",
        pg_cpu * 1e6 / written.len().max(1) as f64
    );
    println!(
        "  this process CPU {me_cpu:.2} s = {:.1} µs per update (hub, {} sessions and their \
         clients, writers)",
        me_cpu * 1e6 / written.len().max(1) as f64,
        args.clients
    );
    println!("  per client");
    for row in &rows {
        println!("{row}");
    }
    for line in &lost_lines {
        println!("{line}");
    }
    // How the hub went past a lost event: the polls that saw the gap and the one after which it
    // moved on, against the xid that wrote the event.
    for id in lost_ids.iter().take(10) {
        let xid: Option<String> = db
            .query_opt("SELECT xmin::text FROM order_events WHERE id = $1", &[id])
            .await?
            .map(|row| row.get(0));
        let first_gap = trace
            .polls
            .iter()
            .find(|p| p.0 < *id && p.3.is_some_and(|largest| largest > *id));
        let passed = trace
            .polls
            .windows(2)
            .find(|w| w[0].0 < *id && w[1].0 >= *id);
        println!(
            "  lost event {id}: written by xid {}; gap first seen by a poll with (after, xmin, \
             gap bound, largest id) {:?}; the hub moved past it after the poll {:?}",
            xid.unwrap_or_else(|| "(no row)".into()),
            first_gap,
            passed.map(|w| w[0]),
        );
    }
    println!(
        "  checks           lost {total_lost}, wrong client {total_wrong}, duplicates \
         {total_dup}, out of order {total_unordered}, unparsed {unparsed}"
    );
    println!(
        "  goal             live p99 {live_p99:.1} ms against <= 250 ms: {}",
        if live_p99 <= 250.0 { "met" } else { "MISSED" }
    );

    pool.close();
    drop(db);
    if total_lost + total_wrong + total_dup > 0 || unparsed > 0 {
        bail!(
            "lost {total_lost}, wrong client {total_wrong}, duplicates {total_dup}, \
             unparsed {unparsed}"
        );
    }
    if clients_disconnected < args.clients && args.disconnects > 0 {
        bail!(
            "only {clients_disconnected} of {} clients were disconnected",
            args.clients
        );
    }
    Ok(())
}
