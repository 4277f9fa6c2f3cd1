//! What the three bench binaries (`chaos-soak`, `load-bench`, `cold-start`) have in common,
//! written once: child processes, waiting for a service, the order API as a client sees it, the
//! database connection, and how figures are summarised and written.

pub mod api;
pub mod db;
pub mod http;
pub mod process;
pub mod results;
