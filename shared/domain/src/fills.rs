//! An order's fill state and the rule that applies the exchange's execution reports to it.
//!
//! Every report carries the order's cumulative filled quantity, so a report says where it belongs
//! in the order's history: a fill of `q` shares with cumulative `c` starts at `c − q`, a cancel or
//! expiry at `c`. A report applies only when it starts exactly where the order's fill state ends
//! — so each execution applies once (a second copy starts before the end), and in sequence (a
//! report after a missing one starts beyond the end and waits for it) — and only while the order
//! works at the exchange (before the placer has recorded it `placed`, it waits). Nothing here
//! de-duplicates by execution id or stores anything: the store keeps every report and retries
//! the waiting ones; this is only the arithmetic and the state machine's moves.

use std::fmt;

use rust_decimal::Decimal;

use super::{ExecutionEvent, ExecutionReport, OrderStatus, Quantity, Shares, Transition};

/// What the exchange has done with an order so far, as far as the applied reports tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillState {
    /// The order's status.
    pub status: OrderStatus,
    /// The order's quantity.
    pub quantity: Quantity,
    /// Shares filled so far.
    pub filled: Shares,
    /// The exact sum of quantity × price over the applied fills (two places).
    pub notional: Decimal,
}

/// Decimal places of the average fill price.
pub const AVERAGE_PRICE_PLACES: u32 = 6;

impl FillState {
    /// The average price of the filled shares (notional / filled, rounded half-even to
    /// [`AVERAGE_PRICE_PLACES`]); `None` before the first fill.
    pub fn average_price(&self) -> Option<Decimal> {
        (self.filled.get() > 0).then(|| {
            (self.notional / Decimal::from(self.filled.get())).round_dp(AVERAGE_PRICE_PLACES)
        })
    }

    /// Shares still open at the exchange.
    pub fn remaining(&self) -> i64 {
        self.quantity.get() - self.filled.get()
    }

    /// Applies one report if it is the next one for this order (see the module's documentation).
    pub fn apply(&self, report: &ExecutionReport) -> Result<Applied, Waiting> {
        let status = self.status;
        let cumulative = report.cumulative_quantity().get();
        if matches!(status, OrderStatus::Pending | OrderStatus::Placing) {
            return Err(Waiting::NotPlaced(status));
        }
        if let ExecutionEvent::CancelRefused = report.event() {
            // A cancel came too late: nothing changes, whatever the order's state.
            return Ok(Applied {
                state: *self,
                transition: None,
            });
        }
        if !status.is_working() {
            return Err(Waiting::Conflict(format!(
                "the order is {status}: a `{}` report cannot apply",
                report.kind()
            )));
        }
        let filled = self.filled.get();
        let starts_at = match report.event() {
            ExecutionEvent::PartialFill { quantity, .. }
            | ExecutionEvent::Fill { quantity, .. } => cumulative - quantity.get(),
            _ => cumulative,
        };
        if starts_at > filled {
            return Err(Waiting::EarlierReportMissing {
                filled: self.filled,
                starts_at,
            });
        }
        if starts_at < filled {
            return Err(Waiting::Conflict(format!(
                "the order has {filled} shares filled; this `{}` report starts at {starts_at}",
                report.kind()
            )));
        }
        let mut state = *self;
        let transition = match report.event() {
            ExecutionEvent::PartialFill { quantity, price }
            | ExecutionEvent::Fill { quantity, price } => {
                if cumulative + report.remaining_quantity().get() != self.quantity.get() {
                    return Err(Waiting::Conflict(format!(
                        "cumulative {cumulative} and remaining {} do not make the order's {}",
                        report.remaining_quantity(),
                        self.quantity.get()
                    )));
                }
                state.filled = report.cumulative_quantity();
                state.notional += Decimal::from(quantity.get()) * price.as_decimal();
                match report.event() {
                    ExecutionEvent::Fill { .. } => Some(Transition::Fill),
                    _ if status == OrderStatus::Placed => Some(Transition::PartiallyFill),
                    _ => None,
                }
            }
            ExecutionEvent::Canceled { quantity } | ExecutionEvent::Expired { quantity } => {
                if filled + quantity.get() != self.quantity.get() {
                    return Err(Waiting::Conflict(format!(
                        "{} shares {} after {filled} filled do not make the order's {}",
                        quantity.get(),
                        report.kind(),
                        self.quantity.get()
                    )));
                }
                Some(match report.event() {
                    ExecutionEvent::Canceled { .. } => Transition::CancelAtExchange,
                    _ => Transition::ExpireAtExchange,
                })
            }
            ExecutionEvent::CancelRefused => None,
        };
        if let Some(transition) = transition {
            debug_assert!(transition.from().contains(&status), "{transition:?}");
            state.status = transition.to();
        }
        Ok(Applied { state, transition })
    }
}

/// A report that applied: the order's state after it, and the move it made (none when only the
/// fill state changed, or for a refused cancel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub state: FillState,
    pub transition: Option<Transition>,
}

/// Why a report does not apply now. It is kept either way, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The placer has not recorded the order `placed` yet (a market order fills before the
    /// placement's answer is back): it applies once the order is placed.
    NotPlaced(OrderStatus),
    /// The store does not know the order (yet): it applies if the order turns up.
    UnknownOrder,
    /// A report before this one has not arrived (or waits itself): the order has `filled`
    /// shares filled, this report starts at `starts_at`.
    EarlierReportMissing { filled: Shares, starts_at: i64 },
    /// The report contradicts the order (it is closed, or the numbers do not match): it will not
    /// apply on its own; an admin has to look.
    Conflict(String),
}

impl Waiting {
    /// Whether the report may still apply later without anyone's help.
    pub fn may_apply_later(&self) -> bool {
        !matches!(self, Self::Conflict(_))
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPlaced(status) => write!(f, "the order is {status}, not yet placed"),
            Self::UnknownOrder => f.write_str("the order is unknown"),
            Self::EarlierReportMissing { filled, starts_at } => write!(
                f,
                "an earlier report is missing: {filled} shares filled, this one starts at {starts_at}"
            ),
            Self::Conflict(problem) => write!(f, "conflict: {problem}"),
        }
    }
}

/// What became of one order's reports: the state after those that applied, each applied report
/// (by its index in the input) with its move, and each waiting one with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub state: FillState,
    pub applied: Vec<(usize, Option<Transition>)>,
    pub waiting: Vec<(usize, Waiting)>,
}

/// Applies an order's unapplied reports (given in feed order) to `state`, each at most once and
/// each only when it is next: a pass over the reports applies what it can, and passes repeat
/// while one applied something (so a report given before the one it follows still applies).
pub fn apply_in_sequence(state: FillState, reports: &[&ExecutionReport]) -> Settlement {
    let mut state = state;
    let mut applied = Vec::new();
    let mut open: Vec<usize> = (0..reports.len()).collect();
    let mut reasons: Vec<Option<Waiting>> = vec![None; reports.len()];
    loop {
        let mut progress = false;
        open.retain(|&i| match state.apply(reports[i]) {
            Ok(step) => {
                state = step.state;
                applied.push((i, step.transition));
                progress = true;
                false
            }
            Err(reason) => {
                reasons[i] = Some(reason);
                true
            }
        });
        if !progress || open.is_empty() {
            break;
        }
    }
    let waiting = open
        .into_iter()
        .map(|i| (i, reasons[i].take().expect("a reason per waiting report")))
        .collect();
    Settlement {
        state,
        applied,
        waiting,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::{ExecutionId, OrderId, Price};

    fn q(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn s(n: i64) -> Shares {
        Shares::new(n).unwrap()
    }

    fn placed(quantity: i64) -> FillState {
        FillState {
            status: OrderStatus::Placed,
            quantity: q(quantity),
            filled: Shares::ZERO,
            notional: Decimal::ZERO,
        }
    }

    fn report(
        sequence: u64,
        event: ExecutionEvent,
        cumulative: i64,
        remaining: i64,
    ) -> ExecutionReport {
        ExecutionReport::new(
            sequence,
            ExecutionId::parse(&format!("EXE-{sequence}")).unwrap(),
            OrderId::from(Uuid::nil()),
            "EX-1".into(),
            event,
            s(cumulative),
            s(remaining),
            datetime!(2030-01-01 00:00 UTC),
        )
        .unwrap()
    }

    fn fill(
        sequence: u64,
        quantity: i64,
        price: &str,
        cumulative: i64,
        total: i64,
    ) -> ExecutionReport {
        let price = Price::parse(price).unwrap();
        let remaining = total - cumulative;
        let event = if remaining == 0 {
            ExecutionEvent::Fill {
                quantity: q(quantity),
                price,
            }
        } else {
            ExecutionEvent::PartialFill {
                quantity: q(quantity),
                price,
            }
        };
        report(sequence, event, cumulative, remaining)
    }

    #[test]
    fn partial_fills_then_a_fill_move_the_order_to_filled_with_the_weighted_average() {
        let order = placed(10);
        let first = order.apply(&fill(1, 3, "10.00", 3, 10)).unwrap();
        assert_eq!(first.transition, Some(Transition::PartiallyFill));
        assert_eq!(first.state.status, OrderStatus::PartiallyFilled);
        assert_eq!(first.state.average_price(), Some(Decimal::new(10, 0)));
        let second = first.state.apply(&fill(2, 4, "11.00", 7, 10)).unwrap();
        assert_eq!(
            second.transition, None,
            "a second partial fill keeps the status"
        );
        let last = second.state.apply(&fill(3, 3, "10.01", 10, 10)).unwrap();
        assert_eq!(last.transition, Some(Transition::Fill));
        assert_eq!(last.state.status, OrderStatus::Filled);
        assert_eq!(last.state.filled, s(10));
        assert_eq!(last.state.notional, Decimal::new(10403, 2));
        // (30 + 44 + 30.03) / 10
        assert_eq!(last.state.average_price(), Some(Decimal::new(10403, 3)));
        assert_eq!(last.state.remaining(), 0);
    }

    #[test]
    fn an_average_that_does_not_terminate_is_rounded_to_six_places() {
        let order = placed(3);
        let a = order.apply(&fill(1, 1, "1.00", 1, 3)).unwrap().state;
        let b = a.apply(&fill(2, 2, "1.01", 3, 3)).unwrap().state;
        assert_eq!(b.average_price(), Some(Decimal::new(1_006_667, 6)));
    }

    #[test]
    fn a_report_before_the_order_is_placed_waits() {
        for status in [OrderStatus::Pending, OrderStatus::Placing] {
            let order = FillState {
                status,
                ..placed(5)
            };
            assert_eq!(
                order.apply(&fill(1, 5, "1", 5, 5)),
                Err(Waiting::NotPlaced(status))
            );
            assert!(Waiting::NotPlaced(status).may_apply_later());
        }
    }

    #[test]
    fn a_copy_of_an_applied_fill_and_a_fill_after_a_gap_do_not_apply() {
        let order = placed(10);
        let first = fill(1, 3, "5", 3, 10);
        let after = order.apply(&first).unwrap().state;
        let copy = after.apply(&first).unwrap_err();
        assert!(matches!(copy, Waiting::Conflict(_)), "{copy}");
        assert!(!copy.may_apply_later());
        let gap = after.apply(&fill(3, 2, "5", 7, 10)).unwrap_err();
        assert_eq!(
            gap,
            Waiting::EarlierReportMissing {
                filled: s(3),
                starts_at: 5
            }
        );
    }

    #[test]
    fn cancels_and_expiries_end_a_working_order_with_its_rest() {
        let order = placed(10);
        let partly = order.apply(&fill(1, 4, "2", 4, 10)).unwrap().state;
        for (event, transition, status) in [
            (
                ExecutionEvent::Canceled { quantity: q(6) },
                Transition::CancelAtExchange,
                OrderStatus::Canceled,
            ),
            (
                ExecutionEvent::Expired { quantity: q(6) },
                Transition::ExpireAtExchange,
                OrderStatus::Expired,
            ),
        ] {
            for from in [
                partly,
                FillState {
                    status: OrderStatus::PendingCancel,
                    ..partly
                },
            ] {
                let done = from.apply(&report(2, event, 4, 0)).unwrap();
                assert_eq!(done.transition, Some(transition));
                assert_eq!(done.state.status, status);
                assert_eq!(done.state.filled, s(4));
                // Nothing applies after the end but a refused cancel.
                assert!(done.state.apply(&fill(3, 6, "2", 10, 10)).is_err());
                let refused = done
                    .state
                    .apply(&report(4, ExecutionEvent::CancelRefused, 4, 0))
                    .unwrap();
                assert_eq!(refused.state, done.state);
                assert_eq!(refused.transition, None);
            }
            // A cancel of the wrong rest contradicts the order.
            assert!(matches!(
                partly.apply(&report(
                    2,
                    ExecutionEvent::Canceled { quantity: q(5) },
                    4,
                    0
                )),
                Err(Waiting::Conflict(_))
            ));
        }
    }

    #[test]
    fn a_fill_wins_over_a_pending_cancel() {
        let order = FillState {
            status: OrderStatus::PendingCancel,
            ..placed(2)
        };
        let done = order.apply(&fill(1, 2, "3", 2, 2)).unwrap();
        assert_eq!(done.transition, Some(Transition::Fill));
        assert_eq!(done.state.status, OrderStatus::Filled);
        let partly = order.apply(&fill(1, 1, "3", 1, 2)).unwrap();
        assert_eq!(
            partly.transition, None,
            "a partial fill keeps pending_cancel"
        );
        assert_eq!(partly.state.status, OrderStatus::PendingCancel);
    }

    #[test]
    fn reports_given_out_of_order_apply_in_sequence() {
        let reports = [
            fill(3, 2, "3", 6, 6),
            fill(1, 1, "1", 1, 6),
            fill(2, 3, "2", 4, 6),
        ];
        let refs: Vec<&ExecutionReport> = reports.iter().collect();
        let settled = apply_in_sequence(placed(6), &refs);
        assert!(settled.waiting.is_empty());
        assert_eq!(
            settled.applied,
            vec![
                (1, Some(Transition::PartiallyFill)),
                (2, None),
                (0, Some(Transition::Fill))
            ]
        );
        assert_eq!(settled.state.status, OrderStatus::Filled);
        // A gap that never fills leaves the later reports waiting, with their reason.
        let settled = apply_in_sequence(placed(6), &[&reports[1], &reports[0]]);
        assert_eq!(settled.applied.len(), 1);
        assert!(matches!(
            settled.waiting.as_slice(),
            [(1, Waiting::EarlierReportMissing { .. })]
        ));
    }

    /// An order's history at the exchange: fills of the given sizes and prices (in cents), then
    /// (when `end` is set and shares are left) a cancel or an expiry of the rest, and maybe a
    /// refused cancel.
    fn history(total: i64, fills: &[(i64, i64)], end: Option<bool>) -> Vec<ExecutionReport> {
        let mut reports = Vec::new();
        let mut cumulative = 0;
        let mut sequence = 0;
        for &(size, cents) in fills {
            let size = size.min(total - cumulative);
            if size == 0 {
                break;
            }
            cumulative += size;
            sequence += 1;
            let price = Price::try_from(Decimal::new(cents, 2)).unwrap().to_string();
            reports.push(fill(sequence, size, &price, cumulative, total));
        }
        if let Some(cancel) = end {
            sequence += 1;
            if cumulative < total {
                let rest = q(total - cumulative);
                let event = if cancel {
                    ExecutionEvent::Canceled { quantity: rest }
                } else {
                    ExecutionEvent::Expired { quantity: rest }
                };
                reports.push(report(sequence, event, cumulative, 0));
            }
            reports.push(report(
                sequence + 1,
                ExecutionEvent::CancelRefused,
                cumulative,
                0,
            ));
        }
        reports
    }

    proptest! {
        /// The same reports, delivered in any order, some of them several times, and applied
        /// batch by batch as they arrive (each batch retrying what waited before): the order ends
        /// with exactly the filled quantity, notional, average price and status of the history
        /// applied once in order.
        #[test]
        fn any_order_with_duplicates_ends_in_the_same_state(
            total in 1i64..50,
            fills in proptest::collection::vec((1i64..10, 1i64..100_000), 0..12),
            end in proptest::option::of(any::<bool>()),
            copies in proptest::collection::vec(0usize..3, 16),
            seed in any::<u64>(),
            batch in 1usize..6,
            placed_after in 0usize..20,
        ) {
            let reports = history(total, &fills, end);
            let refs: Vec<&ExecutionReport> = reports.iter().collect();
            let expected = apply_in_sequence(placed(total), &refs);
            prop_assert!(expected.waiting.is_empty());

            // Deliveries: each report 1–3 times, shuffled.
            let mut deliveries: Vec<&ExecutionReport> = Vec::new();
            for (i, report) in reports.iter().enumerate() {
                for _ in 0..=copies[i % copies.len()] {
                    deliveries.push(report);
                }
            }
            let mut rng = seed | 1;
            for i in (1..deliveries.len()).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                deliveries.swap(i, (rng % (i as u64 + 1)) as usize);
            }

            // The ingester's way: batches; the order is `placing` until `placed_after` reports
            // have arrived; every report is kept, applied at most once, and what waits is retried
            // with the next batch (in feed order).
            let mut state = FillState { status: OrderStatus::Placing, ..placed(total) };
            let mut kept: Vec<&ExecutionReport> = Vec::new();
            let mut applied_ids = std::collections::BTreeSet::new();
            let mut arrived = 0;
            for chunk in deliveries.chunks(batch) {
                arrived += chunk.len();
                if arrived >= placed_after && state.status == OrderStatus::Placing {
                    state.status = OrderStatus::Placed;
                }
                for report in chunk {
                    // The store keeps one row per execution id.
                    if !kept.iter().any(|k| k.execution_id() == report.execution_id()) {
                        kept.push(report);
                    }
                }
                let mut waiting: Vec<&ExecutionReport> = kept
                    .iter()
                    .copied()
                    .filter(|r| !applied_ids.contains(r.execution_id()))
                    .collect();
                waiting.sort_by_key(|r| r.sequence());
                let settled = apply_in_sequence(state, &waiting);
                for (i, _) in &settled.applied {
                    prop_assert!(applied_ids.insert(waiting[*i].execution_id().clone()));
                }
                state = settled.state;
            }
            if state.status == OrderStatus::Placing {
                state.status = OrderStatus::Placed;
                let mut waiting: Vec<&ExecutionReport> = kept
                    .iter()
                    .copied()
                    .filter(|r| !applied_ids.contains(r.execution_id()))
                    .collect();
                waiting.sort_by_key(|r| r.sequence());
                let settled = apply_in_sequence(state, &waiting);
                for (i, _) in &settled.applied {
                    prop_assert!(applied_ids.insert(waiting[*i].execution_id().clone()));
                }
                state = settled.state;
            }
            prop_assert_eq!(applied_ids.len(), reports.len());
            prop_assert_eq!(state, expected.state);
            prop_assert_eq!(state.average_price(), expected.state.average_price());
        }

        /// Without the store's de-duplication, the rule alone still applies each execution once:
        /// a copy of an applied report never changes the state.
        #[test]
        fn a_copy_never_changes_the_state(
            total in 1i64..40,
            fills in proptest::collection::vec((1i64..8, 1i64..10_000), 1..10),
            end in proptest::option::of(any::<bool>()),
        ) {
            let reports = history(total, &fills, end);
            let mut state = placed(total);
            for report in &reports {
                state = state.apply(report).unwrap().state;
                for earlier in &reports {
                    if earlier.sequence() <= report.sequence() {
                        match state.apply(earlier) {
                            Ok(step) => prop_assert_eq!(step.state, state),
                            Err(reason) => prop_assert!(!matches!(reason, Waiting::NotPlaced(_))),
                        }
                    }
                }
            }
        }
    }
}
