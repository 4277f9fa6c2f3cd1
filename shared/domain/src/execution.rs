//! What the exchange reports about a placed order after placement: fills, partial fills, the
//! cancel of its unfilled rest, its expiry and refused cancels — one [`ExecutionReport`] each,
//! numbered by the exchange's feed. Built only through [`ExecutionReport::new`], which refuses a
//! report whose numbers do not add up, so the code that applies reports can trust them.

use std::fmt;

use time::OffsetDateTime;

use super::{OrderId, Price, Quantity};

/// A whole number of shares that may be zero, 0 ≤ n ≤ [`Quantity::MAX`]: what an order has
/// filled so far, or what is left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Shares(i64);

impl Shares {
    pub const ZERO: Self = Self(0);

    pub fn new(value: i64) -> Result<Self, String> {
        if value < 0 {
            return Err("must be at least 0".into());
        }
        if value > Quantity::MAX {
            return Err("must be at most 1000000000".into());
        }
        Ok(Self(value))
    }

    pub fn get(&self) -> i64 {
        self.0
    }
}

impl From<Quantity> for Shares {
    fn from(quantity: Quantity) -> Self {
        Self(quantity.get())
    }
}

impl fmt::Display for Shares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The exchange's id of one execution. It stays the same when the exchange sends the report
/// again (under a new feed sequence number or the same one), so it is what de-duplicates:
/// 1 to 64 printable ASCII characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(String);

impl ExecutionId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty()
            || input.len() > Self::MAX_LEN
            || !input.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "an execution id is 1 to {} printable ASCII characters without spaces",
                Self::MAX_LEN
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a report, as the feed names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecutionKind {
    PartialFill,
    Fill,
    Canceled,
    Expired,
    CancelRefused,
}

impl ExecutionKind {
    pub const ALL: [Self; 5] = [
        Self::PartialFill,
        Self::Fill,
        Self::Canceled,
        Self::Expired,
        Self::CancelRefused,
    ];

    /// The feed's name: `partial_fill`, `fill`, `canceled`, `expired`, `cancel_refused`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PartialFill => "partial_fill",
            Self::Fill => "fill",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::CancelRefused => "cancel_refused",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == input)
            .ok_or_else(|| {
                format!(
                    "must be one of partial_fill, fill, canceled, expired, cancel_refused, \
                     got `{input}`"
                )
            })
    }

    /// Whether the order is done with after this report (nothing left open at the exchange).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Fill | Self::Canceled | Self::Expired)
    }
}

impl fmt::Display for ExecutionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to the order, with the amounts that belong to each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionEvent {
    /// Some shares traded at `price`; some are still open.
    PartialFill { quantity: Quantity, price: Price },
    /// The last open shares traded at `price`: the order is filled.
    Fill { quantity: Quantity, price: Price },
    /// The unfilled rest (`quantity` shares) was canceled on the client's request.
    Canceled { quantity: Quantity },
    /// The unfilled rest (`quantity` shares) expired with the order's time in force.
    Expired { quantity: Quantity },
    /// A cancel came too late: the order had already filled or expired. Nothing changed.
    CancelRefused,
}

impl ExecutionEvent {
    pub fn kind(&self) -> ExecutionKind {
        match self {
            Self::PartialFill { .. } => ExecutionKind::PartialFill,
            Self::Fill { .. } => ExecutionKind::Fill,
            Self::Canceled { .. } => ExecutionKind::Canceled,
            Self::Expired { .. } => ExecutionKind::Expired,
            Self::CancelRefused => ExecutionKind::CancelRefused,
        }
    }

    /// The shares traded and their price, for the two kinds that trade.
    pub fn traded(&self) -> Option<(Quantity, Price)> {
        match *self {
            Self::PartialFill { quantity, price } | Self::Fill { quantity, price } => {
                Some((quantity, price))
            }
            _ => None,
        }
    }

    /// The shares this report is about: traded, canceled or expired; `None` for a refused
    /// cancel.
    pub fn quantity(&self) -> Option<Quantity> {
        match *self {
            Self::PartialFill { quantity, .. }
            | Self::Fill { quantity, .. }
            | Self::Canceled { quantity }
            | Self::Expired { quantity } => Some(quantity),
            Self::CancelRefused => None,
        }
    }
}

/// One report from the exchange's execution feed, with numbers that add up:
/// - a partial fill leaves shares open (`remaining_quantity` ≥ 1), a fill leaves none;
/// - a fill's `cumulative_quantity` includes its own `quantity`;
/// - a cancel or an expiry leaves nothing open (`remaining_quantity` 0) and does not change
///   `cumulative_quantity`;
/// - `cumulative_quantity` + `remaining_quantity` never exceeds [`Quantity::MAX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    sequence: u64,
    execution_id: ExecutionId,
    client_order_id: OrderId,
    exchange_order_id: String,
    event: ExecutionEvent,
    cumulative_quantity: Shares,
    remaining_quantity: Shares,
    time: OffsetDateTime,
}

impl ExecutionReport {
    /// The longest exchange order id kept (the exchange's own ids are far shorter).
    pub const MAX_EXCHANGE_ORDER_ID_LEN: usize = 100;

    /// A report, if its numbers add up (see the type's documentation). The error names the field
    /// at fault.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sequence: u64,
        execution_id: ExecutionId,
        client_order_id: OrderId,
        exchange_order_id: String,
        event: ExecutionEvent,
        cumulative_quantity: Shares,
        remaining_quantity: Shares,
        time: OffsetDateTime,
    ) -> Result<Self, String> {
        if sequence == 0 {
            return Err("sequence: must be at least 1".into());
        }
        if exchange_order_id.trim().is_empty()
            || exchange_order_id.len() > Self::MAX_EXCHANGE_ORDER_ID_LEN
        {
            return Err(format!(
                "exchange_order_id: must be 1 to {} characters",
                Self::MAX_EXCHANGE_ORDER_ID_LEN
            ));
        }
        if cumulative_quantity.get() + remaining_quantity.get() > Quantity::MAX {
            return Err(
                "remaining_quantity: cumulative and remaining quantity exceed the largest order"
                    .into(),
            );
        }
        match event {
            ExecutionEvent::PartialFill { quantity, .. }
            | ExecutionEvent::Fill { quantity, .. }
                if cumulative_quantity.get() < quantity.get() =>
            {
                return Err(format!(
                    "cumulative_quantity: {cumulative_quantity} is less than this fill's {}",
                    quantity.get()
                ));
            }
            ExecutionEvent::PartialFill { .. } if remaining_quantity == Shares::ZERO => {
                return Err("remaining_quantity: a partial fill leaves shares open".into());
            }
            ExecutionEvent::Fill { .. }
            | ExecutionEvent::Canceled { .. }
            | ExecutionEvent::Expired { .. }
                if remaining_quantity != Shares::ZERO =>
            {
                return Err(format!(
                    "remaining_quantity: a `{}` report leaves no shares open",
                    event.kind()
                ));
            }
            _ => {}
        }
        Ok(Self {
            sequence,
            execution_id,
            client_order_id,
            exchange_order_id,
            event,
            cumulative_quantity,
            remaining_quantity,
            time,
        })
    }

    /// The feed's sequence number: one sequence for the whole feed, without gaps, starting at 1.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn execution_id(&self) -> &ExecutionId {
        &self.execution_id
    }

    /// Our order id, which we gave the exchange as the client order id.
    pub fn client_order_id(&self) -> OrderId {
        self.client_order_id
    }

    pub fn exchange_order_id(&self) -> &str {
        &self.exchange_order_id
    }

    pub fn event(&self) -> ExecutionEvent {
        self.event
    }

    pub fn kind(&self) -> ExecutionKind {
        self.event.kind()
    }

    /// Shares of the order filled so far, this report included.
    pub fn cumulative_quantity(&self) -> Shares {
        self.cumulative_quantity
    }

    /// Shares of the order still open at the exchange after this report.
    pub fn remaining_quantity(&self) -> Shares {
        self.remaining_quantity
    }

    /// When it happened at the exchange.
    pub fn time(&self) -> OffsetDateTime {
        self.time
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    fn q(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn s(n: i64) -> Shares {
        Shares::new(n).unwrap()
    }

    fn report(
        event: ExecutionEvent,
        cumulative: i64,
        remaining: i64,
    ) -> Result<ExecutionReport, String> {
        ExecutionReport::new(
            7,
            ExecutionId::parse("EXE-1").unwrap(),
            OrderId::from(Uuid::nil()),
            "EX-1".into(),
            event,
            s(cumulative),
            s(remaining),
            datetime!(2030-01-01 00:00 UTC),
        )
    }

    #[test]
    fn reports_whose_numbers_add_up_are_built() {
        let price = Price::parse("10.50").unwrap();
        let partial = report(
            ExecutionEvent::PartialFill {
                quantity: q(3),
                price,
            },
            3,
            7,
        )
        .unwrap();
        assert_eq!(partial.kind(), ExecutionKind::PartialFill);
        assert_eq!(partial.event().traded(), Some((q(3), price)));
        assert!(!partial.kind().is_final());
        let fill = report(
            ExecutionEvent::Fill {
                quantity: q(7),
                price,
            },
            10,
            0,
        )
        .unwrap();
        assert!(fill.kind().is_final());
        assert_eq!(fill.cumulative_quantity(), s(10));
        let canceled = report(ExecutionEvent::Canceled { quantity: q(7) }, 3, 0).unwrap();
        assert_eq!(canceled.event().quantity(), Some(q(7)));
        assert_eq!(canceled.event().traded(), None);
        report(ExecutionEvent::Expired { quantity: q(10) }, 0, 0).unwrap();
        let refused = report(ExecutionEvent::CancelRefused, 10, 0).unwrap();
        assert_eq!(refused.event().quantity(), None);
        assert!(!refused.kind().is_final());
    }

    #[test]
    fn reports_whose_numbers_do_not_add_up_are_refused() {
        let price = Price::parse("1").unwrap();
        for (event, cumulative, remaining, field) in [
            (
                ExecutionEvent::PartialFill {
                    quantity: q(3),
                    price,
                },
                3,
                0,
                "remaining_quantity",
            ),
            (
                ExecutionEvent::PartialFill {
                    quantity: q(3),
                    price,
                },
                2,
                5,
                "cumulative_quantity",
            ),
            (
                ExecutionEvent::Fill {
                    quantity: q(3),
                    price,
                },
                3,
                1,
                "remaining_quantity",
            ),
            (
                ExecutionEvent::Canceled { quantity: q(3) },
                0,
                3,
                "remaining_quantity",
            ),
            (
                ExecutionEvent::Expired { quantity: q(3) },
                0,
                3,
                "remaining_quantity",
            ),
            (
                ExecutionEvent::CancelRefused,
                Quantity::MAX,
                1,
                "remaining_quantity",
            ),
        ] {
            let error = report(event, cumulative, remaining).unwrap_err();
            assert!(error.starts_with(field), "{event:?}: {error}");
        }
        let zero = ExecutionReport::new(
            0,
            ExecutionId::parse("E").unwrap(),
            OrderId::generate(),
            "EX".into(),
            ExecutionEvent::CancelRefused,
            s(0),
            s(0),
            datetime!(2030-01-01 00:00 UTC),
        );
        assert!(zero.unwrap_err().starts_with("sequence"));
    }

    #[test]
    fn kinds_ids_and_shares_parse_strictly() {
        for kind in ExecutionKind::ALL {
            assert_eq!(ExecutionKind::parse(kind.as_str()).unwrap(), kind);
        }
        assert!(ExecutionKind::parse("Fill").is_err());
        assert!(ExecutionId::parse("").is_err());
        assert!(ExecutionId::parse("a b").is_err());
        assert!(ExecutionId::parse(&"x".repeat(65)).is_err());
        assert_eq!(ExecutionId::parse("EXE-9").unwrap().as_str(), "EXE-9");
        assert!(Shares::new(-1).is_err());
        assert!(Shares::new(Quantity::MAX + 1).is_err());
        assert_eq!(Shares::from(q(5)), s(5));
    }
}
