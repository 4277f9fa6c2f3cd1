//! One module per trigger: the api (HTTP), its reference page (docs, HTTP), the placer (orders
//! queue), the alerter (dead-letter queue), the sweeper (schedule), the migrator (CloudFormation
//! custom resource), the ingester (the exchange's execution feed: a long-running process, not a
//! Lambda), the live order updates (a WebSocket per client), and the admin use cases behind the `orders-admin` tool. Each takes its ports
//! as arguments, so Lambda, the local runner and the tests run the same code. No handler imports
//! another; what two share lives in `sqs_batch` or in `crate::usecases`.

pub mod admin;
pub mod alerter;
pub mod api;
pub mod docs;
pub mod ingester;
pub mod live_page;
pub mod migrator;
pub mod placer;
pub mod sqs_batch;
pub mod sweeper;
pub mod updates;
