//! The live-update stream's reads of the audit trail (the `OrderUpdateStore` port): each one
//! statement, no session state (no `LISTEN`: it would pin RDS Proxy).

use async_trait::async_trait;
use deadpool_postgres::Pool;
use deadpool_postgres::tokio_postgres::Row;
use uuid::Uuid;

use super::statements;
use super::store_errors::{checkout, query_error};
use crate::domain::{ClientId, OrderId};
use crate::ports::{OrderUpdate, OrderUpdateStore, StoreError, UpdatePoll};

/// The audit trail as the live-update stream reads it.
#[derive(Clone)]
pub struct PostgresOrderUpdates {
    pool: Pool,
}

impl PostgresOrderUpdates {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// Events after `$1`, at most `$2`, with the statement's snapshot `xmin` and a gap bound (one row
/// of nulls and the bounds when there is none). `pg_current_snapshot()` is the statement's own
/// snapshot. When an id is missing among those read, the statement takes a transaction id of
/// its own (`pg_current_xact_id()`, after its snapshot): every transaction that had started by
/// then — the missing event's writer among them, which drew its id before a later one committed —
/// has a smaller id. Only then: a transaction id costs a commit record, and gaps are rare.
const UPDATES_AFTER_SQL: &str = "\
    WITH s AS (SELECT pg_current_snapshot() AS snap), \
    e AS (SELECT * FROM order_events WHERE id > $1 ORDER BY id LIMIT $2), \
    gap AS (SELECT EXISTS ( \
              SELECT 1 FROM (SELECT id, lag(id, 1, $1) OVER (ORDER BY id) AS prev FROM e) x \
              WHERE x.id <> x.prev + 1) AS missing) \
    SELECT pg_snapshot_xmin(s.snap)::text::int8 AS xmin, \
           CASE WHEN (SELECT missing FROM gap) THEN pg_current_xact_id()::text::int8 \
                ELSE pg_snapshot_xmax(s.snap)::text::int8 END AS gap_bound, \
           e.id, e.order_id, o.client_id, e.from_status, e.to_status, e.reason, e.created_at \
    FROM s LEFT JOIN e ON true \
    LEFT JOIN orders o ON o.id = e.order_id \
    ORDER BY e.id";

/// One client's events in `($2, $3]`, at most `$4`.
const CLIENT_UPDATES_SQL: &str = "\
    SELECT e.id, e.order_id, o.client_id, e.from_status, e.to_status, e.reason, e.created_at \
    FROM order_events e JOIN orders o ON o.id = e.order_id \
    WHERE o.client_id = $1 AND e.id > $2 AND e.id <= $3 \
    ORDER BY e.id LIMIT $4";

fn update_from_row(row: &Row) -> Result<OrderUpdate, StoreError> {
    let event_id: i64 = row.get("id");
    let corrupt = |problem: String| StoreError::Corrupt {
        id: format!("order event {event_id}"),
        problem,
    };
    Ok(OrderUpdate {
        event_id,
        order_id: OrderId::from(row.get::<_, Uuid>("order_id")),
        client_id: ClientId::parse(row.get("client_id")).map_err(corrupt)?,
        from: row
            .get::<_, Option<&str>>("from_status")
            .map(str::parse)
            .transpose()
            .map_err(corrupt)?,
        status: row.get::<_, &str>("to_status").parse().map_err(corrupt)?,
        reason: row.get("reason"),
        at: row.get("created_at"),
    })
}

#[async_trait]
impl OrderUpdateStore for PostgresOrderUpdates {
    async fn updates_after(&self, after: i64, limit: u32) -> Result<UpdatePoll, StoreError> {
        let client = checkout(&self.pool).await?;
        let rows = statements::rows(&client, UPDATES_AFTER_SQL, &[&after, &i64::from(limit)])
            .await
            .map_err(query_error("read order updates"))?;
        let bound = |name: &str| {
            rows.first()
                .map(|row| row.get::<_, i64>(name).max(0) as u64)
                .unwrap_or_default()
        };
        let mut poll = UpdatePoll {
            updates: Vec::with_capacity(rows.len()),
            xmin: bound("xmin"),
            gap_bound: bound("gap_bound"),
        };
        for row in &rows {
            if row.get::<_, Option<i64>>("id").is_some() {
                poll.updates.push(update_from_row(row)?);
            }
        }
        Ok(poll)
    }

    async fn client_updates(
        &self,
        client_id: &ClientId,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<OrderUpdate>, StoreError> {
        let client = checkout(&self.pool).await?;
        let rows = statements::rows(
            &client,
            CLIENT_UPDATES_SQL,
            &[&client_id.as_str(), &after, &up_to, &i64::from(limit)],
        )
        .await
        .map_err(query_error("read a client's order updates"))?;
        rows.iter().map(update_from_row).collect()
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        let client = checkout(&self.pool).await?;
        let row = statements::one(
            &client,
            "SELECT coalesce(max(id), 0) AS id FROM order_events",
            &[],
        )
        .await
        .map_err(query_error("read the latest order event"))?;
        Ok(row.get("id"))
    }
}
