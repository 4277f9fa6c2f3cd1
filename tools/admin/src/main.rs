//! `orders-admin`: the on-call admin's tool for failed orders, clients and their API keys. It
//! talks to the same database and queue as the functions (configured by the same environment
//! variables; keys also need the pepper: API_KEY_PEPPER or API_KEY_PEPPER_SECRET_ARN).

use anyhow::Context;
use clap::{Parser, Subcommand};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::PostgresAccessControl;
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::secrets::key_hasher;
use order_shared::adapters::sqs::SqsOrderQueue;
use order_shared::auth::{ApiKey, KeyHasher, KeyId};
use order_shared::config::{Env, process_env};
use order_shared::domain::ClientId;
use order_shared::domain::OrderId;
use order_shared::handlers::admin::{RetryResult, retry_failed_order};
use order_shared::ports::OrderLifecycle;
use order_shared::ports::{ClientLimits, ClientRegistry, KeyRecord};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Failed orders (list, retry), clients (limits) and API keys (create, list, revoke).
/// Needs DATABASE_URL (or DATABASE_SECRET_ARN) as the functions do; `retry` also needs
/// ORDERS_QUEUE_URL, and `keys create` the pepper (API_KEY_PEPPER or API_KEY_PEPPER_SECRET_ARN).
#[derive(Parser)]
#[command(name = "orders-admin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List failed orders, oldest failure first.
    ListFailed {
        /// Only orders that failed at or after this time (RFC 3339, e.g. 2026-11-25T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: Option<OffsetDateTime>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Move failed orders back to `pending` and enqueue them again.
    Retry {
        /// Order ids to retry.
        #[arg(
            required_unless_present = "all_failed_since",
            conflicts_with = "all_failed_since"
        )]
        ids: Vec<String>,
        /// Retry every order that failed at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        all_failed_since: Option<OffsetDateTime>,
    },
    /// Clients and their limits.
    #[command(subcommand)]
    Clients(ClientCommand),
    /// API keys: shown once at creation, stored only as a peppered hash.
    #[command(subcommand)]
    Keys(KeyCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create a client, or change the limits of an existing one.
    Set {
        /// Client id: a-z, 0-9, '-', '_', '.'; at most 64 characters.
        #[arg(value_parser = parse_client)]
        id: ClientId,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List clients with their limits.
    List,
}

#[derive(clap::Args)]
struct LimitArgs {
    /// Requests per second over all routes (default for a new client: 50).
    #[arg(long)]
    requests_per_second: Option<u32>,
    /// Orders not yet final (pending or placing) at any time (default for a new client: 1000).
    #[arg(long)]
    max_open_orders: Option<u32>,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key for a client (creating the client with default limits if needed) and print
    /// it. It is shown this once: only its hash is stored.
    Create {
        #[arg(long, value_parser = parse_client)]
        client: ClientId,
        /// A note for the key list, e.g. who holds the key.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (never their secrets), optionally of one client.
    List {
        #[arg(long, value_parser = parse_client)]
        client: Option<ClientId>,
    },
    /// Revoke a key for good; requests with it get 401 from then on.
    Revoke {
        /// The key id (the 16 hex digits after `sok_`), as `keys list` shows it.
        #[arg(value_parser = parse_key_id)]
        key_id: KeyId,
    },
    /// Print a fresh random key without storing it (for the local runner's LOCAL_API_KEY).
    New,
}

fn parse_client(text: &str) -> Result<ClientId, String> {
    ClientId::parse(text)
}

fn parse_key_id(text: &str) -> Result<KeyId, String> {
    KeyId::parse(text).map_err(|_| "a key id is 16 lower-case hex digits".into())
}

fn format_time(time: OffsetDateTime) -> String {
    time.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn print_keys(keys: &[KeyRecord]) {
    println!(
        "{:<16}  {:<20}  {:<20}  {:<20}  label",
        "key id", "client", "created", "revoked"
    );
    for k in keys {
        println!(
            "{:<16}  {:<20}  {:<20}  {:<20}  {}",
            k.key_id,
            k.client_id,
            format_time(k.created_at),
            k.revoked_at.map(format_time).unwrap_or_else(|| "-".into()),
            k.label
        );
    }
}

async fn clients_and_keys(
    store: &PostgresOrderStore,
    env: &Env<impl Fn(&str) -> Option<String>>,
    sdk: &order_shared::adapters::SdkConfig,
    command: Command,
) -> anyhow::Result<()> {
    // Listing and revoking never hash anything; only `keys create` needs the real pepper.
    let needs_pepper = matches!(command, Command::Keys(KeyCommand::Create { .. }));
    let hasher = if needs_pepper {
        key_hasher(&env.pepper()?, sdk)
            .await
            .map_err(|e| anyhow::anyhow!("reading the API key pepper: {e}"))?
    } else {
        KeyHasher::new(&[0; KeyHasher::MIN_PEPPER_BYTES]).expect("long enough")
    };
    let access = PostgresAccessControl::new(store.pool().clone(), hasher);
    match command {
        Command::Clients(ClientCommand::Set { id, limits }) => {
            let client = access
                .upsert_client(
                    &id,
                    ClientLimits {
                        requests_per_second: limits.requests_per_second,
                        max_open_orders: limits.max_open_orders,
                    },
                )
                .await?;
            println!(
                "client {}: {} requests/s, {} open orders",
                client.id, client.requests_per_second, client.max_open_orders
            );
        }
        Command::Clients(ClientCommand::List) => {
            println!(
                "{:<20}  {:>12}  {:>15}  created",
                "client", "requests/s", "max open orders"
            );
            for c in access.list_clients().await? {
                println!(
                    "{:<20}  {:>12}  {:>15}  {}",
                    c.id,
                    c.requests_per_second,
                    c.max_open_orders,
                    format_time(c.created_at)
                );
            }
        }
        Command::Keys(KeyCommand::Create { client, label }) => {
            let existing = access.list_clients().await?;
            if !existing.iter().any(|c| c.id == client) {
                let created = access
                    .upsert_client(&client, ClientLimits::default())
                    .await?;
                eprintln!(
                    "created client {} ({} requests/s, {} open orders)",
                    created.id, created.requests_per_second, created.max_open_orders
                );
            }
            let key = ApiKey::generate()?;
            access
                .create_key(&client, &key, &label)
                .await?
                .context("the client disappeared while its key was being created")?;
            eprintln!(
                "key id {} for client {client}; the key is shown only now:",
                key.id()
            );
            println!("{}", key.expose());
        }
        Command::Keys(KeyCommand::List { client }) => {
            print_keys(&access.list_keys(client.as_ref()).await?);
        }
        Command::Keys(KeyCommand::Revoke { key_id }) => match access.revoke_key(&key_id).await? {
            Some(key) => print_keys(&[key]),
            None => anyhow::bail!("no key with id {key_id}"),
        },
        Command::Keys(KeyCommand::New) | Command::ListFailed { .. } | Command::Retry { .. } => {
            unreachable!("handled by main")
        }
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("expected RFC 3339 time: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Keys(KeyCommand::New) = cli.command {
        println!("{}", ApiKey::generate()?.expose());
        return Ok(());
    }
    let env = process_env();
    let database = env.database(1)?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&database, &sdk)
        .await
        .context("connecting to the database")?;

    match cli.command {
        command @ (Command::Clients(_) | Command::Keys(_)) => {
            clients_and_keys(&store, &env, &sdk, command).await?;
        }
        Command::ListFailed { since, limit } => {
            let failed = store.list_failed(since, limit).await?;
            println!(
                "{:<36}  {:<20}  {:>8}  {:<12}  {:<4}  {:>10}  {:<7}  last error",
                "order id", "failed at", "attempts", "instrument", "side", "quantity", "alerted"
            );
            for f in &failed {
                println!(
                    "{:<36}  {:<20}  {:>8}  {:<12}  {:<4}  {:>10}  {:<7}  {}",
                    f.order.id,
                    f.failed_at
                        .replace_nanosecond(0)
                        .ok()
                        .and_then(|t| t.format(&Rfc3339).ok())
                        .unwrap_or_default(),
                    f.order.attempts,
                    f.order.details.instrument().as_str(),
                    f.order.details.side().as_str(),
                    f.order.details.quantity().get(),
                    if f.alerted_at.is_some() { "yes" } else { "no" },
                    f.order.last_error.as_deref().unwrap_or("-"),
                );
            }
            println!("{} failed order(s)", failed.len());
        }
        Command::Retry {
            ids,
            all_failed_since,
        } => {
            let queue_url = env.required("ORDERS_QUEUE_URL")?;
            let queue = SqsOrderQueue::new(&sdk, queue_url);
            let ids: Vec<OrderId> = match all_failed_since {
                Some(since) => store
                    .list_failed(Some(since), u32::MAX)
                    .await?
                    .into_iter()
                    .map(|f| f.order.id)
                    .collect(),
                None => ids
                    .iter()
                    .map(|id| id.parse().map_err(|e| anyhow::anyhow!("{id}: {e}")))
                    .collect::<anyhow::Result<_>>()?,
            };
            let mut requeued = 0;
            for id in ids {
                let result = retry_failed_order(&store, &queue, id).await?;
                let note = match result {
                    RetryResult::Requeued => "requeued",
                    RetryResult::RequeuedSweeperWillSend => {
                        "requeued (send failed; the sweeper will send it)"
                    }
                    RetryResult::NotFailed => "skipped: not failed",
                    RetryResult::TimeInForcePassed => {
                        "skipped: its time in force has run out (the client must place it again)"
                    }
                };
                if matches!(
                    result,
                    RetryResult::Requeued | RetryResult::RequeuedSweeperWillSend
                ) {
                    requeued += 1;
                }
                println!("{id}  {note}");
            }
            println!("{requeued} order(s) requeued");
        }
    }
    Ok(())
}
