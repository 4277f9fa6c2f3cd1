//! One ingestion step: a batch of execution reports from the feed, applied to their orders with
//! the domain's fill rule and written in one atomic step with the feed's cursor. Every report is
//! stored (once per execution id); one that cannot apply yet waits in the store and is tried
//! again with a later batch of its order, or by a batch that asks for stranded reports.

use std::collections::{BTreeMap, HashSet};

use crate::domain::{ExecutionReport, OrderId, Waiting, apply_in_sequence};
use crate::ports::{
    BatchWritten, ExecutionStore, FillBatch, FillEvent, FillSnapshot, FillUpdate, IngestError,
    IngesterLease, NewReport,
};

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Reports in the batch.
    pub reports: usize,
    /// Reports already stored (an execution sent again) or twice in the batch: skipped.
    pub duplicates: usize,
    /// Reports applied to their orders (new ones and kept ones).
    pub applied: u64,
    /// Reports (new or kept) that wait after this step.
    pub waiting: usize,
    /// Orders the plan moved, and how many of them the store found unchanged and moved.
    pub orders_planned: usize,
    pub orders_moved: u64,
    /// The feed cursor after the step.
    pub last_sequence: u64,
}

impl BatchOutcome {
    /// Some orders changed between the read and the write: their reports wait and should be
    /// tried again soon.
    pub fn raced(&self) -> bool {
        (self.orders_moved as usize) < self.orders_planned
    }
}

/// Where a report of the plan comes from.
struct Candidate<'a> {
    report: &'a ExecutionReport,
    /// The reason it waited with, for a report kept earlier; `None` for a new one.
    kept: Option<Option<&'a str>>,
}

/// The batch to write for `reports` (new from the feed, in feed order) given what the store
/// holds: each execution stored once, each order's kept and new reports applied in sequence.
pub fn plan_batch(
    snapshot: &FillSnapshot,
    reports: &[ExecutionReport],
    last_sequence: u64,
) -> (FillBatch, BatchOutcome) {
    let mut outcome = BatchOutcome {
        reports: reports.len(),
        last_sequence,
        ..BatchOutcome::default()
    };
    let mut by_order: BTreeMap<OrderId, Vec<Candidate<'_>>> = BTreeMap::new();
    for waiting in &snapshot.waiting {
        by_order
            .entry(waiting.report.client_order_id())
            .or_default()
            .push(Candidate {
                report: &waiting.report,
                kept: Some(waiting.reason.as_deref()),
            });
    }
    let mut seen = HashSet::new();
    for report in reports {
        if snapshot.stored.contains(report.execution_id()) || !seen.insert(report.execution_id()) {
            outcome.duplicates += 1;
            continue;
        }
        by_order
            .entry(report.client_order_id())
            .or_default()
            .push(Candidate { report, kept: None });
    }

    let mut batch = FillBatch {
        last_sequence,
        ..FillBatch::default()
    };
    for (order_id, mut candidates) in by_order {
        candidates.sort_by_key(|c| c.report.sequence());
        let state = snapshot.orders.get(&order_id).copied();
        let (applied, waiting) = match state {
            None => (
                Vec::new(),
                (0..candidates.len())
                    .map(|i| (i, Waiting::UnknownOrder))
                    .collect(),
            ),
            Some(before) => {
                let reports: Vec<&ExecutionReport> = candidates.iter().map(|c| c.report).collect();
                let settled = apply_in_sequence(before, &reports);
                if !settled.applied.is_empty() {
                    let mut status = before.status;
                    for (i, transition) in &settled.applied {
                        if let Some(transition) = transition {
                            let report = reports[*i];
                            batch.events.push(FillEvent {
                                order_id,
                                from: status,
                                transition: *transition,
                                reason: format!(
                                    "{} reported by the exchange ({}): {} of {} shares filled",
                                    report.kind(),
                                    report.execution_id(),
                                    report.cumulative_quantity(),
                                    before.quantity.get()
                                ),
                            });
                            status = transition.to();
                        }
                    }
                    batch.updates.push(FillUpdate {
                        order_id,
                        before,
                        after: settled.state,
                    });
                }
                (settled.applied, settled.waiting)
            }
        };
        outcome.applied += applied.len() as u64;
        outcome.waiting += waiting.len();
        for (i, _) in applied {
            let candidate = &candidates[i];
            match candidate.kept {
                Some(_) => batch
                    .now_applied
                    .push((candidate.report.execution_id().clone(), order_id)),
                None => batch.new_reports.push(NewReport {
                    report: candidate.report.clone(),
                    applies: true,
                    waiting_reason: None,
                }),
            }
        }
        for (i, reason) in waiting {
            let candidate = &candidates[i];
            let reason = reason.to_string();
            match candidate.kept {
                Some(old) if old == Some(reason.as_str()) => {}
                Some(_) => batch
                    .still_waiting
                    .push((candidate.report.execution_id().clone(), reason)),
                None => batch.new_reports.push(NewReport {
                    report: candidate.report.clone(),
                    applies: false,
                    waiting_reason: Some(reason),
                }),
            }
        }
    }
    outcome.orders_planned = batch.updates.len();
    (batch, outcome)
}

/// One step: read what the store holds about `reports` (and, up to `stranded`, reports kept
/// for orders that work at the exchange now), plan, and write it all with the cursor at
/// `last_sequence`, under the lease. `IngestError::LeaseLost` when the lease is gone: nothing
/// was written.
pub async fn ingest_batch(
    store: &dyn ExecutionStore,
    lease: &IngesterLease,
    reports: &[ExecutionReport],
    last_sequence: u64,
    stranded: u32,
) -> Result<BatchOutcome, IngestError> {
    let mut orders: Vec<OrderId> = reports.iter().map(|r| r.client_order_id()).collect();
    orders.sort_unstable();
    orders.dedup();
    let executions: Vec<_> = reports.iter().map(|r| r.execution_id().clone()).collect();
    let snapshot = store.fill_snapshot(&orders, &executions, stranded).await?;
    let (batch, mut outcome) = plan_batch(&snapshot, reports, last_sequence);
    match store.write_batch(lease, &batch).await? {
        BatchWritten::LeaseLost => Err(IngestError::LeaseLost),
        BatchWritten::Written {
            orders_moved,
            last_sequence,
            applied,
            ..
        } => {
            outcome.orders_moved = orders_moved;
            outcome.applied = applied;
            outcome.last_sequence = last_sequence;
            Ok(outcome)
        }
    }
}
