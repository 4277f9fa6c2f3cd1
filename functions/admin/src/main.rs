//! `orders-admin`: the on-call admin's tool for failed orders. It talks to the same database and
//! queue as the functions (configured by the same environment variables).

use anyhow::Context;
use clap::{Parser, Subcommand};
use order_shared::adapters::aws_sdk_config;
use order_shared::adapters::postgres::PostgresOrderStore;
use order_shared::adapters::sqs::SqsOrderQueue;
use order_shared::admin::{RetryResult, retry_failed_order};
use order_shared::config::process_env;
use order_shared::domain::OrderId;
use order_shared::ports::OrderLifecycle;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Failed orders: list them, and send chosen ones (or all since a time) to the exchange again.
/// Needs DATABASE_URL (or DATABASE_SECRET_ARN) and ORDERS_QUEUE_URL, as the functions do.
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
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("expected RFC 3339 time: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = process_env();
    let database = env.database(1)?;
    let sdk = aws_sdk_config().await;
    let store = PostgresOrderStore::connect(&database, &sdk)
        .await
        .context("connecting to the database")?;

    match cli.command {
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
                };
                if result != RetryResult::NotFailed {
                    requeued += 1;
                }
                println!("{id}  {note}");
            }
            println!("{requeued} order(s) requeued");
        }
    }
    Ok(())
}
