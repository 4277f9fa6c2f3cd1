//! Steps that several handlers take the same way, written once: sending an order for placement
//! (the api, the sweeper and the admin retry), the retry back-off, and announcing incidents to
//! admins (the alerter and the sweeper), one ingestion step of execution reports (the ingester;
//! the tests drive it step by step), and how far the live-update stream may go. They sit between the ports
//! and the handlers: they use ports only, and no handler's code.

pub mod backoff;
pub mod enqueue;
pub mod incidents;
pub mod ingest;
pub mod update_horizon;
