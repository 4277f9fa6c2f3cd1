//! The order state machine of the design.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order is in its life. Only the transitions in [`OrderStatus::can_become`] exist; the
/// store enforces them with conditional updates so that late or duplicate messages cannot move an
/// order backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Committed; its placement is guaranteed from here on.
    Pending,
    /// Claimed by a placer under a lease.
    Placing,
    /// Acknowledged by the exchange (final).
    Placed,
    /// Refused by the exchange for good (final).
    Rejected,
    /// Retries exhausted; an admin was told (final until an admin retries it).
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        Self::Pending,
        Self::Placing,
        Self::Placed,
        Self::Rejected,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Placing => "placing",
            Self::Placed => "placed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    /// The transition table of the design, plus `pending → placed`: the alerter's lookup may find
    /// that an attempt which timed out was placed after all.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Placing)
                | (Placing, Placed)
                | (Pending, Placed)
                | (Placing, Rejected)
                | (Placing, Pending)
                | (Pending, Failed)
                | (Placing, Failed)
                | (Failed, Pending)
        )
    }

    /// Final for the placement pipeline: no message may change it (an admin retry may).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Placed | Self::Rejected | Self::Failed)
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
                format!("must be one of pending, placing, placed, rejected, failed; got `{s}`")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

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
    fn placed_and_rejected_never_change() {
        for to in OrderStatus::ALL {
            assert!(!Placed.can_become(to));
            assert!(!Rejected.can_become(to));
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        assert!("PLACED".parse::<OrderStatus>().is_err());
    }
}
