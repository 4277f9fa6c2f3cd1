//! What the three bench binaries (`chaos-soak`, `load-bench`, `cold-start`) have in common,
//! written once: child processes, waiting for a service, the order API as a client sees it, the
//! database connection, a throwaway Postgres cluster, a counting proxy for the database
//! protocol, and how figures are summarised and written.

pub mod api;
pub mod cluster;
pub mod db;
pub mod http;
pub mod pg_wire;
pub mod process;
pub mod results;
