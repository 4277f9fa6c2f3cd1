//! Postgres: the connection pool (credentials, TLS), the order store on top of it, and the API
//! keys with the per-client limits.

mod access_control;
mod connect;
mod migrate;
mod order_store;
mod store_errors;

pub use access_control::{OPEN_ORDERS_RETRY_AFTER, PostgresAccessControl, RATE_RETRY_AFTER};
pub use connect::{DatabaseConfig, DatabaseCredentials, PoolError, TlsMode, build_pool};
pub use migrate::{MigrationError, run_migrations, run_migrations_up_to};
pub use order_store::PostgresOrderStore;
