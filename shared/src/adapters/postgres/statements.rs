//! Every statement this service sends, sent without session state.
//!
//! RDS Proxy pins a client to one database connection for good when the session carries state,
//! and a named prepared statement is such state (so is `SET`, an advisory lock, `LISTEN`, a
//! temporary table). tokio-postgres's plain `query(&str, ..)` prepares a *named* statement first
//! (one round trip) and runs it in a second, so it would pin as well — and through PgBouncer in
//! transaction mode the second half may even reach another server connection. The functions
//! therefore send every statement through these helpers: `query_typed` sends parse, bind and
//! execute of an unnamed statement in one round trip, with each parameter's type stated by the
//! Rust value's `PgTyped` type instead of asked of the server.

use deadpool_postgres::tokio_postgres::types::{ToSql, Type};
use deadpool_postgres::tokio_postgres::{Client, Error, Row};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

/// The Postgres type a Rust value is sent as.
pub(super) trait PgTyped {
    const TYPE: Type;
}

macro_rules! pg_typed {
    ($($rust:ty => $pg:ident),* $(,)?) => {
        $(impl PgTyped for $rust { const TYPE: Type = Type::$pg; })*
    };
}

pg_typed!(
    Uuid => UUID,
    String => TEXT,
    i32 => INT4,
    i64 => INT8,
    f64 => FLOAT8,
    bool => BOOL,
    OffsetDateTime => TIMESTAMPTZ,
    Decimal => NUMERIC,
    Vec<u8> => BYTEA,
    Vec<Uuid> => UUID_ARRAY,
    Vec<String> => TEXT_ARRAY,
    Vec<Option<String>> => TEXT_ARRAY,
    Vec<i64> => INT8_ARRAY,
    Vec<bool> => BOOL_ARRAY,
    Vec<Decimal> => NUMERIC_ARRAY,
    Vec<Option<Decimal>> => NUMERIC_ARRAY,
    Vec<OffsetDateTime> => TIMESTAMPTZ_ARRAY,
    Vec<Option<OffsetDateTime>> => TIMESTAMPTZ_ARRAY,
);

impl PgTyped for &str {
    const TYPE: Type = Type::TEXT;
}

impl PgTyped for &[u8] {
    const TYPE: Type = Type::BYTEA;
}

impl<T: PgTyped> PgTyped for Option<T> {
    const TYPE: Type = T::TYPE;
}

/// A statement parameter: a value and the type it is sent as.
pub(super) trait Param: Sync {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type);
}

impl<T: PgTyped + ToSql + Sync> Param for T {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        (self, T::TYPE)
    }
}

fn typed<'a>(params: &'a [&'a dyn Param]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().map(|p| p.typed()).collect()
}

/// All rows of one statement, in one round trip.
pub(super) async fn rows(
    client: &Client,
    sql: &str,
    params: &[&dyn Param],
) -> Result<Vec<Row>, Error> {
    client.query_typed(sql, &typed(params)).await
}

/// The row of a statement that returns exactly one (an error otherwise).
pub(super) async fn one(client: &Client, sql: &str, params: &[&dyn Param]) -> Result<Row, Error> {
    client.query_typed_one(sql, &typed(params)).await
}

/// The row of a statement that returns at most one.
pub(super) async fn optional(
    client: &Client,
    sql: &str,
    params: &[&dyn Param],
) -> Result<Option<Row>, Error> {
    client.query_typed_opt(sql, &typed(params)).await
}

/// The number of rows a statement changed.
pub(super) async fn execute(
    client: &Client,
    sql: &str,
    params: &[&dyn Param],
) -> Result<u64, Error> {
    client.execute_typed(sql, &typed(params)).await
}
