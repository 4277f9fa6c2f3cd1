//! The order state machine of the design: the statuses and the one table of moves between them.
//! The Postgres store builds the guards of its conditional updates from [`Transition`], so a
//! status or a move added here reaches the SQL, and one added only in the SQL cannot exist.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order is in its life. Only the moves of [`Transition`] exist; the store enforces them
/// with conditional updates so that late or duplicate messages cannot move an order backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Committed; its placement is guaranteed from here on.
    Pending,
    /// Claimed by a placer under a lease.
    Placing,
    /// Acknowledged by the exchange: working there, nothing filled yet. Final for the placement
    /// pipeline; from here the exchange's execution reports move it on.
    Placed,
    /// Refused by the exchange for good (final).
    Rejected,
    /// The exchange does not have it and retrying cannot help (a poison message); an admin was
    /// told (final until an admin retries it).
    Failed,
    /// Its time in force ran out before it could be placed (final): never sent afterwards.
    Expired,
    /// Canceled (final): by the client before placement, or at the exchange — the unfilled rest
    /// of a working order (`filled_quantity` says what traded before).
    Canceled,
    /// Working at the exchange with part of its quantity filled.
    PartiallyFilled,
    /// Filled completely at the exchange (final).
    Filled,
    /// Working at the exchange with a cancel sent and not yet answered: it ends `canceled` (the
    /// unfilled rest) or `filled` (the fill won the race).
    PendingCancel,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        Self::Pending,
        Self::Placing,
        Self::Placed,
        Self::Rejected,
        Self::Failed,
        Self::Expired,
        Self::Canceled,
        Self::PartiallyFilled,
        Self::Filled,
        Self::PendingCancel,
    ];

    /// The status of a newly committed order (the design's "(new) → pending").
    pub const INITIAL: OrderStatus = Self::Pending;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Placing => "placing",
            Self::Placed => "placed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Canceled => "canceled",
            Self::PartiallyFilled => "partially_filled",
            Self::Filled => "filled",
            Self::PendingCancel => "pending_cancel",
        }
    }

    /// Whether the moves of [`Transition`] allow this status to change into `next`. A claim that
    /// takes over an expired lease keeps `placing`: it renews the lease and changes no status, so
    /// it is not counted here.
    pub fn can_become(self, next: OrderStatus) -> bool {
        self != next
            && Transition::ALL
                .iter()
                .any(|t| t.to() == next && t.from().contains(&self))
    }

    /// Final for the placement pipeline: no placement message may change it (an admin retry
    /// may). Every status from `placed` on is: after placement only the exchange's execution
    /// reports move an order ([`OrderStatus::is_working`]). The client's open-order limit counts
    /// the statuses that are not final — the orders still waiting for placement.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Placing)
    }

    /// Working at the exchange: placed and not yet filled, canceled or expired there. The
    /// exchange's execution reports apply to an order in these statuses only.
    pub fn is_working(self) -> bool {
        matches!(
            self,
            Self::Placed | Self::PartiallyFilled | Self::PendingCancel
        )
    }

    /// An order ending here must reach an admin (grouped into incidents).
    pub fn alerts_admins(self) -> bool {
        matches!(self, Self::Failed | Self::Expired)
    }

    /// Held by a placer under a lease (`lease_expires_at`) that runs out on its own.
    pub fn is_leased(self) -> bool {
        matches!(self, Self::Placing)
    }
}

/// A move of the state machine: one row of the design's table (split where two actors make the
/// same move differently), named for what happens. The store has one conditional update per
/// variant, guarded by [`Transition::from`] and [`Transition::waits_for_expired_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A placer claims the order under a lease: `pending` → `placing`, or it takes over
    /// `placing` once the lease has expired (the exchange de-duplicates on the order id).
    Claim,
    /// The exchange acknowledged the placer's attempt: `placing` → `placed`.
    Place,
    /// The exchange refused the order for good: `placing` → `rejected`.
    Reject,
    /// A transient exchange error: `placing` → `pending`, and the message comes back.
    Release,
    /// The alerter's lookup found that an attempt which timed out was placed after all:
    /// `pending`/`placing` → `placed`.
    PlaceByLookup,
    /// Retries exhausted: `pending`/`placing` → `failed`.
    Fail,
    /// An admin retries a failed order: `failed` → `pending`.
    Requeue,
    /// The client cancels an order nobody has claimed (and whose last attempt, if any, did not
    /// leave its outcome in doubt): `pending` → `canceled`.
    Cancel,
    /// Its time in force ran out while it waited (queued, parked, or dead-lettered) and no attempt
    /// left its outcome in doubt: `pending` → `expired`.
    Expire,
    /// Its time ran out and a lookup just confirmed that the exchange does not have it (the last
    /// attempt's outcome was unknown, or it reached the alerter): `pending`/`placing` → `expired`.
    ExpireAfterLookup,
    /// The client asks to cancel an order working at the exchange; the cancel goes to the
    /// exchange, whose report ends it: `placed`/`partially_filled` → `pending_cancel`.
    RequestCancel,
    /// The exchange's first partial fill: `placed` → `partially_filled`. (Later partial fills
    /// change the fill state, not the status.)
    PartiallyFill,
    /// The exchange filled the order's last open shares: a working order → `filled`.
    Fill,
    /// The exchange canceled the unfilled rest: a working order → `canceled`.
    CancelAtExchange,
    /// The order's time in force ran out at the exchange: a working order → `expired`. Not an
    /// incident: nothing went wrong on our side.
    ExpireAtExchange,
}

/// What a move requires of the order's time in force (`expires_at`), besides its status. An
/// order with no expiry (accepted before time in force existed) never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryRule {
    /// No condition.
    Any,
    /// Before its expiry — or after it while an attempt's outcome is unknown (flagged, or a
    /// crashed placer's expired lease), so that the order can be looked up (never placed anew)
    /// before it may expire.
    LiveOrUnconfirmed,
    /// Once its expiry has passed (and, as [`Transition::needs_settled_outcome`] says, no
    /// attempt's outcome is in doubt).
    ExpiredAndConfirmed,
    /// Once its expiry has passed.
    Expired,
}

impl Transition {
    pub const ALL: [Transition; 15] = [
        Self::Claim,
        Self::Place,
        Self::Reject,
        Self::Release,
        Self::PlaceByLookup,
        Self::Fail,
        Self::Requeue,
        Self::Cancel,
        Self::Expire,
        Self::ExpireAfterLookup,
        Self::RequestCancel,
        Self::PartiallyFill,
        Self::Fill,
        Self::CancelAtExchange,
        Self::ExpireAtExchange,
    ];

    /// The moves an execution report makes (the ingester's), in [`Transition::ALL`]'s order.
    pub const BY_EXECUTION: [Transition; 4] = [
        Self::PartiallyFill,
        Self::Fill,
        Self::CancelAtExchange,
        Self::ExpireAtExchange,
    ];

    /// The statuses this move starts from.
    pub fn from(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Self::Claim => &[Pending, Placing],
            Self::Place | Self::Reject | Self::Release => &[Placing],
            Self::PlaceByLookup | Self::Fail => &[Pending, Placing],
            Self::Requeue => &[Failed],
            Self::Cancel | Self::Expire => &[Pending],
            Self::ExpireAfterLookup => &[Pending, Placing],
            Self::RequestCancel => &[Placed, PartiallyFilled],
            Self::PartiallyFill => &[Placed],
            Self::Fill | Self::CancelAtExchange | Self::ExpireAtExchange => {
                &[Placed, PartiallyFilled, PendingCancel]
            }
        }
    }

    /// The status this move ends in.
    pub fn to(self) -> OrderStatus {
        match self {
            Self::Claim => OrderStatus::Placing,
            Self::Place | Self::PlaceByLookup => OrderStatus::Placed,
            Self::Reject => OrderStatus::Rejected,
            Self::Release | Self::Requeue => OrderStatus::Pending,
            Self::Fail => OrderStatus::Failed,
            Self::Cancel => OrderStatus::Canceled,
            Self::Expire | Self::ExpireAfterLookup | Self::ExpireAtExchange => OrderStatus::Expired,
            Self::RequestCancel => OrderStatus::PendingCancel,
            Self::PartiallyFill => OrderStatus::PartiallyFilled,
            Self::Fill => OrderStatus::Filled,
            Self::CancelAtExchange => OrderStatus::Canceled,
        }
    }

    /// Whether an order making this move joins an incident that admins hear about: the ends of
    /// the placement pipeline that went wrong (`failed`, or `expired` before it could be placed),
    /// not an expiry at the exchange, which is the market's business.
    pub fn alerts_admins(self) -> bool {
        self.to().alerts_admins() && !matches!(self, Self::ExpireAtExchange)
    }

    /// Whether an execution report makes this move (see [`Transition::BY_EXECUTION`]).
    pub fn is_by_execution(self) -> bool {
        Self::BY_EXECUTION.contains(&self)
    }

    /// Whether this move leaves a leased status only once the lease has expired. The lease
    /// holder's own moves need no such wait, nor does a lookup that found the order placed (the
    /// exchange's word beats the lease); a claim or a failure must not take an order away from a
    /// placer that may be talking to the exchange right now.
    pub fn waits_for_expired_lease(self) -> bool {
        matches!(self, Self::Claim | Self::Fail | Self::ExpireAfterLookup)
    }

    /// Whether the move needs the order's last attempt settled: an order that may have reached
    /// the exchange (a timeout after sending) can be neither canceled nor expired before a
    /// placement or a lookup says what became of it.
    pub fn needs_settled_outcome(self) -> bool {
        matches!(self, Self::Cancel | Self::Expire)
    }

    /// What the move requires of the order's expiry: a claim never sends an expired order (unless
    /// it must be looked up first), and only an expired order may expire.
    pub fn expiry_rule(self) -> ExpiryRule {
        match self {
            Self::Claim => ExpiryRule::LiveOrUnconfirmed,
            Self::Expire => ExpiryRule::ExpiredAndConfirmed,
            Self::ExpireAfterLookup => ExpiryRule::Expired,
            _ => ExpiryRule::Any,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|status| status.as_str()).collect();
                format!("must be one of {}; got `{s}`", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};
    use super::Transition;

    #[test]
    fn transition_table_matches_the_design() {
        let allowed = [
            (Pending, Placing),
            (Placing, Placed),
            // The alerter's lookup found that a timed-out attempt had been placed after all.
            (Pending, Placed),
            (Placing, Rejected),
            (Placing, Pending),
            (Pending, Failed),
            (Placing, Failed),
            (Failed, Pending),
            // The client cancels before any placer claimed it.
            (Pending, Canceled),
            // Time in force ran out: waiting, or confirmed absent at the exchange by a lookup.
            (Pending, Expired),
            (Placing, Expired),
            // After placement: the client's cancel of a working order, and the exchange's reports.
            (Placed, PendingCancel),
            (PartiallyFilled, PendingCancel),
            (Placed, PartiallyFilled),
            (Placed, Filled),
            (PartiallyFilled, Filled),
            (PendingCancel, Filled),
            (Placed, Canceled),
            (PartiallyFilled, Canceled),
            (PendingCancel, Canceled),
            (Placed, Expired),
            (PartiallyFilled, Expired),
            (PendingCancel, Expired),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn every_move_of_the_design_has_its_actor() {
        use Transition::*;
        // (move, from, to, waits for an expired lease): the design's table, row by row.
        let design: [(Transition, &[OrderStatus], OrderStatus, bool); 15] = [
            (Claim, &[Pending, Placing], Placing, true),
            (Place, &[Placing], Placed, false),
            (Reject, &[Placing], Rejected, false),
            (Release, &[Placing], Pending, false),
            (PlaceByLookup, &[Pending, Placing], Placed, false),
            (Fail, &[Pending, Placing], Failed, true),
            (Requeue, &[Failed], Pending, false),
            (Cancel, &[Pending], Canceled, false),
            (Expire, &[Pending], Expired, false),
            (ExpireAfterLookup, &[Pending, Placing], Expired, true),
            (
                RequestCancel,
                &[Placed, PartiallyFilled],
                PendingCancel,
                false,
            ),
            (PartiallyFill, &[Placed], PartiallyFilled, false),
            (
                Fill,
                &[Placed, PartiallyFilled, PendingCancel],
                Filled,
                false,
            ),
            (
                CancelAtExchange,
                &[Placed, PartiallyFilled, PendingCancel],
                Canceled,
                false,
            ),
            (
                ExpireAtExchange,
                &[Placed, PartiallyFilled, PendingCancel],
                Expired,
                false,
            ),
        ];
        for (transition, from, to, waits) in design {
            assert_eq!(transition.from(), from, "{transition:?}");
            assert_eq!(transition.to(), to, "{transition:?}");
            assert_eq!(
                transition.waits_for_expired_lease(),
                waits,
                "{transition:?}"
            );
        }
        assert_eq!(Transition::ALL, design.map(|(transition, ..)| transition));
    }

    #[test]
    fn all_lists_every_status_and_every_transition() {
        // A new variant fails to compile in these matches: add it to the list beside them, and
        // to `ALL`.
        for status in [
            Pending,
            Placing,
            Placed,
            Rejected,
            Failed,
            Expired,
            Canceled,
            PartiallyFilled,
            Filled,
            PendingCancel,
        ] {
            match status {
                Pending | Placing | Placed | Rejected | Failed | Expired | Canceled
                | PartiallyFilled | Filled | PendingCancel => {
                    assert!(OrderStatus::ALL.contains(&status), "{status}")
                }
            }
        }
        use Transition::*;
        for transition in [
            Claim,
            Place,
            Reject,
            Release,
            PlaceByLookup,
            Fail,
            Requeue,
            Cancel,
            Expire,
            ExpireAfterLookup,
            RequestCancel,
            PartiallyFill,
            Fill,
            CancelAtExchange,
            ExpireAtExchange,
        ] {
            match transition {
                Claim | Place | Reject | Release | PlaceByLookup | Fail | Requeue | Cancel
                | Expire | ExpireAfterLookup | RequestCancel | PartiallyFill | Fill
                | CancelAtExchange | ExpireAtExchange => {
                    assert!(Transition::ALL.contains(&transition), "{transition:?}")
                }
            }
        }
    }

    #[test]
    fn only_placing_is_leased_and_only_moves_out_of_it_wait_for_the_lease() {
        for status in OrderStatus::ALL {
            assert_eq!(status.is_leased(), status == Placing, "{status}");
        }
        for transition in Transition::ALL {
            if transition.waits_for_expired_lease() {
                assert!(
                    transition.from().iter().any(|s| s.is_leased()),
                    "{transition:?} waits for a lease it never meets"
                );
            }
        }
    }

    #[test]
    fn finished_orders_never_change_and_placed_ones_only_by_the_exchange_or_a_cancel() {
        for to in OrderStatus::ALL {
            for done in [Rejected, Filled, Canceled, Expired] {
                assert!(!done.can_become(to), "{done} -> {to}");
            }
            let moves: Vec<Transition> = Transition::ALL
                .into_iter()
                .filter(|t| t.to() == to && t.from().contains(&Placed))
                .collect();
            for transition in moves {
                assert!(
                    transition.is_by_execution() || transition == Transition::RequestCancel,
                    "{transition:?} moves a placed order"
                );
            }
        }
        // Working orders are final for the placement pipeline (no placement message moves them)
        // and the only ones execution reports apply to.
        for status in OrderStatus::ALL {
            assert_eq!(
                status.is_working(),
                [Placed, PartiallyFilled, PendingCancel].contains(&status),
                "{status}"
            );
            assert_eq!(status.is_final(), ![Pending, Placing].contains(&status));
        }
        for transition in Transition::BY_EXECUTION {
            assert!(transition.from().iter().all(|s| s.is_working()));
            assert!(!transition.alerts_admins() || transition.to() == Failed);
        }
        assert!(Transition::Expire.alerts_admins());
        assert!(!Transition::ExpireAtExchange.alerts_admins());
    }

    #[test]
    fn new_orders_start_pending_and_pending_is_not_final() {
        assert_eq!(OrderStatus::INITIAL, Pending);
        assert!(!OrderStatus::INITIAL.is_final());
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        assert_eq!(
            "PLACED".parse::<OrderStatus>().unwrap_err(),
            "must be one of pending, placing, placed, rejected, failed, expired, canceled, \
             partially_filled, filled, pending_cancel; got `PLACED`"
        );
    }
}
