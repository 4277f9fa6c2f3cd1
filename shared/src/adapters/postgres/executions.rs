//! Execution reports and fill state on Postgres (the `ExecutionStore` port): the ingester's lease
//! (a row, renewed by every batch), the feed cursor, the read before a batch, and the batch's one
//! atomic statement, rendered from the domain's state machine by `transitions`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use deadpool_postgres::tokio_postgres::Row;
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::statements;
use super::store_errors::{checkout, query_error};
use super::transitions::apply_executions_sql;
use crate::domain::{
    ExecutionEvent, ExecutionId, ExecutionKind, ExecutionReport, FillState, OrderId, OrderStatus,
    Price, Quantity, Shares,
};
use crate::ports::{
    BatchWritten, ExecutionStore, FillBatch, FillSnapshot, IngesterLease, StoreError, WaitingReport,
};

/// The lease row all ingesters compete for.
pub const FEED_LEASE: &str = "execution-feed";

/// The executions and the orders' fill state; cheap to clone.
#[derive(Clone)]
pub struct PostgresExecutionStore {
    pool: Pool,
}

impl PostgresExecutionStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The feed started over (the local runner's fresh in-process simulator numbers from 1
    /// again): the cursor goes back to 0. Execution ids stay unique across the restart, so a
    /// report stored before is still never applied twice. Never for a real exchange, whose
    /// feed does not start over (close 4409 says so, and an operator decides).
    pub async fn restart_feed(&self) -> Result<(), StoreError> {
        let client = checkout(&self.pool).await?;
        statements::execute(
            &client,
            "UPDATE execution_feed_cursor SET last_sequence = 0, updated_at = now() WHERE id = 1",
            &[],
        )
        .await
        .map_err(query_error("restart feed cursor"))?;
        Ok(())
    }
}

const EXECUTION_COLUMNS: &str = "x.execution_id, x.order_id, x.sequence, x.kind, \
     x.exchange_order_id, x.quantity, x.price, x.cumulative_quantity, x.remaining_quantity, \
     x.executed_at, x.waiting_reason";

/// The statuses whose orders the exchange's reports apply to, as a statement parameter.
fn working_statuses() -> Vec<String> {
    OrderStatus::ALL
        .into_iter()
        .filter(|s| s.is_working())
        .map(|s| s.as_str().to_owned())
        .collect()
}

/// An order's fill state from a row with `id`, `status`, `order_quantity` (aliased: a row that
/// also holds an execution has that one's `quantity`), `filled_quantity` and `filled_notional`.
fn fill_state_from_row(row: &Row) -> Result<(OrderId, FillState), StoreError> {
    let id: Uuid = row.get("id");
    let corrupt = |problem: String| StoreError::Corrupt {
        id: id.to_string(),
        problem,
    };
    let status: OrderStatus = row.get::<_, &str>("status").parse().map_err(corrupt)?;
    let quantity = Quantity::new(row.get("order_quantity")).map_err(corrupt)?;
    let filled = Shares::new(row.get("filled_quantity")).map_err(corrupt)?;
    Ok((
        OrderId::from(id),
        FillState {
            status,
            quantity,
            filled,
            notional: row.get("filled_notional"),
        },
    ))
}

fn report_from_row(row: &Row) -> Result<WaitingReport, StoreError> {
    Ok(WaitingReport {
        report: execution_from_row(row)?,
        reason: row.get("waiting_reason"),
    })
}

/// Rebuilds a stored report (the columns of `executions`); a row the domain would refuse is
/// reported as corrupt, not hidden. Shared with the api's list of an order's executions.
pub(super) fn execution_from_row(row: &Row) -> Result<ExecutionReport, StoreError> {
    let execution_id: String = row.get("execution_id");
    let corrupt = |problem: String| StoreError::Corrupt {
        id: execution_id.clone(),
        problem,
    };
    let kind = ExecutionKind::parse(row.get("kind")).map_err(corrupt)?;
    let quantity: i64 = row.get("quantity");
    let price: Option<Decimal> = row.get("price");
    let price = price.map(Price::try_from).transpose().map_err(corrupt)?;
    let positive = || Quantity::new(quantity).map_err(corrupt);
    let event = match (kind, price) {
        (ExecutionKind::PartialFill, Some(price)) => ExecutionEvent::PartialFill {
            quantity: positive()?,
            price,
        },
        (ExecutionKind::Fill, Some(price)) => ExecutionEvent::Fill {
            quantity: positive()?,
            price,
        },
        (ExecutionKind::Canceled, _) => ExecutionEvent::Canceled {
            quantity: positive()?,
        },
        (ExecutionKind::Expired, _) => ExecutionEvent::Expired {
            quantity: positive()?,
        },
        (ExecutionKind::CancelRefused, _) => ExecutionEvent::CancelRefused,
        (_, None) => return Err(corrupt("a fill without a price".into())),
    };
    let sequence: i64 = row.get("sequence");
    let report = ExecutionReport::new(
        u64::try_from(sequence).map_err(|e| corrupt(e.to_string()))?,
        ExecutionId::parse(&execution_id).map_err(corrupt)?,
        OrderId::from(row.get::<_, Uuid>("order_id")),
        row.get("exchange_order_id"),
        event,
        Shares::new(row.get("cumulative_quantity")).map_err(corrupt)?,
        Shares::new(row.get("remaining_quantity")).map_err(corrupt)?,
        row.get::<_, OffsetDateTime>("executed_at"),
    )
    .map_err(corrupt)?;
    Ok(report)
}

fn sequence_param(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

#[async_trait]
impl ExecutionStore for PostgresExecutionStore {
    async fn acquire_lease(&self, lease: &IngesterLease) -> Result<bool, StoreError> {
        let client = checkout(&self.pool).await?;
        // Free, expired, or already ours. A batch renews it inside its own statement, so a
        // takeover waits for the batch's row lock and then sees the renewed lease.
        let taken = statements::execute(
            &client,
            "UPDATE ingester_leases SET holder = $2, \
                    expires_at = now() + make_interval(secs => $3), \
                    acquired_at = CASE WHEN holder IS DISTINCT FROM $2 OR expires_at <= now() \
                                       THEN now() ELSE acquired_at END, \
                    updated_at = now() \
             WHERE name = $1 AND (holder = $2 OR holder IS NULL OR expires_at <= now())",
            &[
                &FEED_LEASE,
                &lease.holder.as_str(),
                &lease.duration.as_secs_f64(),
            ],
        )
        .await
        .map_err(query_error("acquire ingester lease"))?;
        Ok(taken == 1)
    }

    async fn release_lease(&self, lease: &IngesterLease) -> Result<(), StoreError> {
        let client = checkout(&self.pool).await?;
        statements::execute(
            &client,
            "UPDATE ingester_leases SET holder = NULL, expires_at = '-infinity', \
                    updated_at = now() \
             WHERE name = $1 AND holder = $2",
            &[&FEED_LEASE, &lease.holder.as_str()],
        )
        .await
        .map_err(query_error("release ingester lease"))?;
        Ok(())
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        let client = checkout(&self.pool).await?;
        let row = statements::one(
            &client,
            "SELECT last_sequence FROM execution_feed_cursor WHERE id = 1",
            &[],
        )
        .await
        .map_err(query_error("read feed cursor"))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn fill_snapshot(
        &self,
        orders: &[OrderId],
        executions: &[ExecutionId],
        stranded: u32,
    ) -> Result<FillSnapshot, StoreError> {
        let client = checkout(&self.pool).await?;
        let order_ids: Vec<Uuid> = orders.iter().map(|id| id.as_uuid()).collect();
        let execution_ids: Vec<String> =
            executions.iter().map(|id| id.as_str().to_owned()).collect();
        let states_sql = "SELECT id, status, quantity AS order_quantity, filled_quantity, \
                                 filled_notional \
                          FROM orders WHERE id = ANY($1)";
        let stored_sql = "SELECT execution_id FROM executions WHERE execution_id = ANY($1)";
        let waiting_sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions x \
             WHERE x.applied_at IS NULL AND x.order_id = ANY($1) ORDER BY x.sequence"
        );
        // Waiting reports of orders that work at the exchange now (placed since, or moved
        // while their batch was written), oldest first, with their orders' state.
        let stranded_sql = format!(
            "SELECT {EXECUTION_COLUMNS}, o.id, o.status, o.quantity AS order_quantity, \
                    o.filled_quantity, o.filled_notional \
             FROM executions x JOIN orders o ON o.id = x.order_id \
             WHERE x.applied_at IS NULL AND o.status = ANY($1) \
             ORDER BY x.sequence LIMIT $2"
        );
        let working = working_statuses();
        let limit = i64::from(stranded);
        // Sent together: the connection pipelines them (one round trip).
        let by_order: [&dyn statements::Param; 1] = [&order_ids];
        let by_execution: [&dyn statements::Param; 1] = [&execution_ids];
        let stranded_params: [&dyn statements::Param; 2] = [&working, &limit];
        let (states, stored, waiting, stranded_rows) = futures::try_join!(
            statements::rows(&client, states_sql, &by_order),
            statements::rows(&client, stored_sql, &by_execution),
            statements::rows(&client, &waiting_sql, &by_order),
            async {
                if stranded == 0 {
                    Ok(Vec::new())
                } else {
                    statements::rows(&client, &stranded_sql, &stranded_params).await
                }
            },
        )
        .map_err(query_error("read fill state"))?;
        let mut snapshot = FillSnapshot {
            orders: HashMap::with_capacity(states.len()),
            stored: HashSet::with_capacity(stored.len()),
            waiting: Vec::with_capacity(waiting.len() + stranded_rows.len()),
        };
        for row in &states {
            let (id, state) = fill_state_from_row(row)?;
            snapshot.orders.insert(id, state);
        }
        for row in &stored {
            let id: String = row.get(0);
            snapshot
                .stored
                .insert(
                    ExecutionId::parse(&id).map_err(|problem| StoreError::Corrupt {
                        id: id.clone(),
                        problem,
                    })?,
                );
        }
        let mut seen = HashSet::new();
        for row in waiting.iter().chain(&stranded_rows) {
            let waiting = report_from_row(row)?;
            if seen.insert(waiting.report.execution_id().clone()) {
                snapshot.waiting.push(waiting);
            }
        }
        for row in &stranded_rows {
            let (id, state) = fill_state_from_row(row)?;
            snapshot.orders.entry(id).or_insert(state);
        }
        snapshot.waiting.sort_by_key(|w| w.report.sequence());
        Ok(snapshot)
    }

    async fn write_batch(
        &self,
        lease: &IngesterLease,
        batch: &FillBatch,
    ) -> Result<BatchWritten, StoreError> {
        let client = checkout(&self.pool).await?;
        let u = &batch.updates;
        let order_ids: Vec<Uuid> = u.iter().map(|x| x.order_id.as_uuid()).collect();
        let expected_status: Vec<String> =
            u.iter().map(|x| x.before.status.as_str().into()).collect();
        let expected_filled: Vec<i64> = u.iter().map(|x| x.before.filled.get()).collect();
        let new_status: Vec<String> = u.iter().map(|x| x.after.status.as_str().into()).collect();
        let new_filled: Vec<i64> = u.iter().map(|x| x.after.filled.get()).collect();
        let new_notional: Vec<Decimal> = u.iter().map(|x| x.after.notional).collect();
        let new_average: Vec<Option<Decimal>> = u.iter().map(|x| x.after.average_price()).collect();

        let e = &batch.events;
        let event_orders: Vec<Uuid> = e.iter().map(|x| x.order_id.as_uuid()).collect();
        let event_from: Vec<String> = e.iter().map(|x| x.from.as_str().into()).collect();
        let event_to: Vec<String> = e
            .iter()
            .map(|x| x.transition.to().as_str().into())
            .collect();
        let event_reason: Vec<String> = e.iter().map(|x| x.reason.clone()).collect();

        let n = &batch.new_reports;
        let ids: Vec<String> = n
            .iter()
            .map(|x| x.report.execution_id().as_str().into())
            .collect();
        let report_orders: Vec<Uuid> = n
            .iter()
            .map(|x| x.report.client_order_id().as_uuid())
            .collect();
        let sequences: Vec<i64> = n
            .iter()
            .map(|x| sequence_param(x.report.sequence()))
            .collect();
        let kinds: Vec<String> = n.iter().map(|x| x.report.kind().as_str().into()).collect();
        let exchange_ids: Vec<String> = n
            .iter()
            .map(|x| x.report.exchange_order_id().into())
            .collect();
        let quantities: Vec<i64> = n
            .iter()
            .map(|x| x.report.event().quantity().map_or(0, |q| q.get()))
            .collect();
        let prices: Vec<Option<Decimal>> = n
            .iter()
            .map(|x| x.report.event().traded().map(|(_, p)| p.as_decimal()))
            .collect();
        let cumulative: Vec<i64> = n
            .iter()
            .map(|x| x.report.cumulative_quantity().get())
            .collect();
        let remaining: Vec<i64> = n
            .iter()
            .map(|x| x.report.remaining_quantity().get())
            .collect();
        let times: Vec<OffsetDateTime> = n.iter().map(|x| x.report.time()).collect();
        let applies: Vec<bool> = n.iter().map(|x| x.applies).collect();
        let reasons: Vec<Option<String>> = n.iter().map(|x| x.waiting_reason.clone()).collect();

        let kept_ids: Vec<String> = batch
            .now_applied
            .iter()
            .map(|(id, _)| id.as_str().into())
            .collect();
        let kept_orders: Vec<Uuid> = batch
            .now_applied
            .iter()
            .map(|(_, order)| order.as_uuid())
            .collect();
        let still_ids: Vec<String> = batch
            .still_waiting
            .iter()
            .map(|(id, _)| id.as_str().into())
            .collect();
        let still_reasons: Vec<String> = batch
            .still_waiting
            .iter()
            .map(|(_, reason)| reason.clone())
            .collect();

        let row = statements::one(
            &client,
            &apply_executions_sql(),
            &[
                &FEED_LEASE,
                &lease.holder.as_str(),
                &lease.duration.as_secs_f64(),
                &sequence_param(batch.last_sequence),
                &order_ids,
                &expected_status,
                &expected_filled,
                &new_status,
                &new_filled,
                &new_notional,
                &new_average,
                &event_orders,
                &event_from,
                &event_to,
                &event_reason,
                &ids,
                &report_orders,
                &sequences,
                &kinds,
                &exchange_ids,
                &quantities,
                &prices,
                &cumulative,
                &remaining,
                &times,
                &applies,
                &reasons,
                &kept_ids,
                &kept_orders,
                &still_ids,
                &still_reasons,
            ],
        )
        .await
        .map_err(query_error("write execution batch"))?;
        if row.get::<_, i64>("leased") == 0 {
            return Ok(BatchWritten::LeaseLost);
        }
        let count = |name: &str| u64::try_from(row.get::<_, i64>(name)).unwrap_or(0);
        Ok(BatchWritten::Written {
            orders_moved: count("orders_moved"),
            stored: count("stored"),
            applied: count("applied_new") + count("applied_kept"),
            last_sequence: row
                .get::<_, Option<i64>>("last_sequence")
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        })
    }
}
