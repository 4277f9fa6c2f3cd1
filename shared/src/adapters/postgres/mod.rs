//! Postgres: the connection pool (credentials, TLS), the order store on top of it, and the API
//! keys with the per-client limits. The order store is one type, `PostgresOrderStore`, in two
//! modules: `orders` (the `OrderStore` port) and `lifecycle` (the `OrderLifecycle` port, whose
//! statements `transitions` renders from the domain's state machine); the same type also keeps
//! the exchange breaker (`breaker`) and the incidents admins are told about (`incidents`).
//! `executions` keeps the exchange's execution reports and the orders' fill state for the
//! ingester (`PostgresExecutionStore`); `order_updates` reads the audit trail for the live-update
//! stream (`PostgresOrderUpdates`), and `live_connections` the clients connected to it through API
//! Gateway (`PostgresLiveConnections`).

mod access_control;
mod breaker;
mod client_orders;
mod connect;
mod executions;
mod incidents;
mod lifecycle;
mod live_connections;
mod migrate;
mod order_rows;
mod order_updates;
mod orders;
mod statements;
mod store_errors;
mod transitions;

pub use access_control::{OPEN_ORDERS_RETRY_AFTER, PostgresAccessControl, RATE_RETRY_AFTER};
pub use connect::{DatabaseConfig, DatabaseCredentials, PoolError, TlsMode, build_pool, warm_up};
pub use executions::{FEED_LEASE, PostgresExecutionStore};
pub use live_connections::PostgresLiveConnections;
pub use migrate::{MigrationError, ensure_application_role, run_migrations, run_migrations_up_to};
pub use order_updates::PostgresOrderUpdates;
pub use orders::PostgresOrderStore;
