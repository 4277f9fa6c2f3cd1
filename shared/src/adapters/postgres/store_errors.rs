//! How pool and statement failures become `StoreError`s, the same way for every Postgres adapter:
//! a connection-level failure means "unavailable" (retry later), anything else a failed query.

use deadpool_postgres::{Object, Pool, tokio_postgres};

use crate::ports::StoreError;

/// A connection from the pool, or `Unavailable` when none can be had in time.
pub(super) async fn checkout(pool: &Pool) -> Result<Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))
}

pub(super) fn query_error(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| {
        if source.is_closed() || source.as_db_error().is_none() && source.code().is_none() {
            // Connection-level failures (reset, closed, I/O) mean the database is unreachable.
            StoreError::Unavailable(Box::new(source))
        } else {
            StoreError::Query {
                what,
                source: Box::new(source),
            }
        }
    }
}
