//! The exchange's execution reports: the feed they arrive on (`ExecutionFeed`) and the store that
//! keeps them and the orders' fill state (`ExecutionStore`), as the ingester uses them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;

use super::{BoxError, StoreError};
use crate::domain::{ExecutionId, ExecutionReport, FillState, OrderId, OrderStatus, Transition};

/// Why the feed gave no (more) reports.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The exchange could not be reached or refused the connection (retry with back-off).
    #[error("cannot connect to the execution feed")]
    Connect(#[source] BoxError),
    /// The connection broke or was closed (resume after the last stored sequence).
    #[error("the execution feed connection ended: {0}")]
    Disconnected(String),
    /// The reports after the requested sequence are gone from the feed (close 4410): resuming
    /// cannot close the gap; an operator must (retried with the longest back-off meanwhile).
    #[error("the execution feed no longer keeps the reports after our last sequence: {0}")]
    NotKept(String),
    /// The requested sequence is beyond the feed's last (close 4409): the feed started over.
    #[error("the execution feed is behind our last sequence (did it start over?): {0}")]
    AheadOfFeed(String),
    /// A message that is not a report; its sequence cannot be skipped (the ingester stops and
    /// resumes, so the report is asked for again).
    #[error("malformed execution report: {0}")]
    Malformed(String),
}

/// One connection to the feed: reports in feed order, from the sequence after the one it was
/// opened with.
#[async_trait]
pub trait FeedConnection: Send {
    /// The next report; `None` once the connection ended cleanly (then resume).
    async fn next_report(&mut self) -> Option<Result<ExecutionReport, FeedError>>;
}

/// The exchange's execution feed.
#[async_trait]
pub trait ExecutionFeed: Send + Sync {
    /// Connects and asks for every report after sequence `after` (0: all the feed keeps).
    async fn connect(&self, after: u64) -> Result<Box<dyn FeedConnection>, FeedError>;
}

/// What the store holds about a batch's orders and reports before it is applied.
#[derive(Debug, Default, Clone)]
pub struct FillSnapshot {
    /// The fill state of every order the batch (or a waiting report) names that exists.
    pub orders: HashMap<OrderId, FillState>,
    /// Which of the batch's execution ids are stored already (a report sent again).
    pub stored: HashSet<ExecutionId>,
    /// Reports kept earlier and not yet applied, of the batch's orders (and, when asked for, of
    /// any order that is now working at the exchange), in feed order.
    pub waiting: Vec<WaitingReport>,
}

/// A report kept without being applied, with the reason it was given.
#[derive(Debug, Clone)]
pub struct WaitingReport {
    pub report: ExecutionReport,
    pub reason: Option<String>,
}

/// One order's move to a new fill state (only if it still is in `before`'s status and fill).
#[derive(Debug, Clone)]
pub struct FillUpdate {
    pub order_id: OrderId,
    pub before: FillState,
    pub after: FillState,
}

/// A status change for the audit trail.
#[derive(Debug, Clone)]
pub struct FillEvent {
    pub order_id: OrderId,
    pub from: OrderStatus,
    pub transition: Transition,
    pub reason: String,
}

/// A report stored for the first time: applied with its order's update, or waiting.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub report: ExecutionReport,
    pub applies: bool,
    pub waiting_reason: Option<String>,
}

/// Everything one batch writes, in one atomic step.
#[derive(Debug, Clone, Default)]
pub struct FillBatch {
    /// The feed's cursor after this batch.
    pub last_sequence: u64,
    pub updates: Vec<FillUpdate>,
    pub events: Vec<FillEvent>,
    pub new_reports: Vec<NewReport>,
    /// Kept reports applied now: (execution, its order).
    pub now_applied: Vec<(ExecutionId, OrderId)>,
    /// Kept reports that still wait, with their current reason.
    pub still_waiting: Vec<(ExecutionId, String)>,
}

/// What writing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWritten {
    /// Written; `orders_moved` of the planned updates matched (the others' reports wait).
    Written {
        orders_moved: u64,
        stored: u64,
        applied: u64,
        last_sequence: u64,
    },
    /// Nothing written: this ingester no longer holds the lease.
    LeaseLost,
}

/// Who holds the ingester's lease, and for how long each renewal lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngesterLease {
    pub holder: String,
    pub duration: Duration,
}

/// The store side of ingestion.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Takes the lease if it is free or expired, or renews it if `lease` holds it: `true` when
    /// `lease.holder` holds it afterwards.
    async fn acquire_lease(&self, lease: &IngesterLease) -> Result<bool, StoreError>;

    /// Gives the lease up (a clean shutdown), so that another ingester need not wait it out.
    async fn release_lease(&self, lease: &IngesterLease) -> Result<(), StoreError>;

    /// The feed's last sequence whose report is stored (0: none).
    async fn last_sequence(&self) -> Result<u64, StoreError>;

    /// The fill state of `orders`, which of `executions` are stored, and the waiting reports of
    /// `orders` — plus, up to `stranded` of them, the waiting reports of any order now working
    /// at the exchange (with those orders' state).
    async fn fill_snapshot(
        &self,
        orders: &[OrderId],
        executions: &[ExecutionId],
        stranded: u32,
    ) -> Result<FillSnapshot, StoreError>;

    /// Writes a batch in one atomic step, only while `lease` holds the lease (renewing it).
    async fn write_batch(
        &self,
        lease: &IngesterLease,
        batch: &FillBatch,
    ) -> Result<BatchWritten, StoreError>;
}

/// Why an ingester stopped a session (the loop around it decides what next).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// Another ingester holds the lease now: stop writing.
    #[error("the ingester lease was lost")]
    LeaseLost,
}
