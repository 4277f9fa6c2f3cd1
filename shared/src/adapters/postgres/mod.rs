//! Postgres: the connection pool (credentials, TLS) and the order store on top of it.

mod connect;
mod migrate;
mod order_store;

pub use connect::{DatabaseConfig, DatabaseCredentials, PoolError, TlsMode, build_pool};
pub use migrate::{MigrationError, run_migrations};
pub use order_store::PostgresOrderStore;
