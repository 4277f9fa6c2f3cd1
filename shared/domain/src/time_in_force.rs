//! Time in force: until when an order may still be sent to the exchange. A market order accepted
//! during an outage must not be executed an hour later at whatever the price is then, so market
//! orders expire soon by default; a limit order carries its own price protection and lives long.

use std::time::Duration;

use time::OffsetDateTime;

use super::{FieldError, NewOrder, OrderType};

/// The longest a client may ask for, and the default of a limit order.
pub const MAX_TIME_IN_FORCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The default lifetime of a market order (`MARKET_ORDER_TTL`).
pub const DEFAULT_MARKET_ORDER_TTL: Duration = Duration::from_secs(5 * 60);

/// How an accepted order's expiry is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    /// A market order without `expires_at` expires this long after acceptance.
    pub market_order_ttl: Duration,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        Self {
            market_order_ttl: DEFAULT_MARKET_ORDER_TTL,
        }
    }
}

impl ExpiryPolicy {
    /// The order's expiry: the client's, if it is in the future and at most 30 days ahead of
    /// `accepted_at`; otherwise the default for its type.
    pub fn expires_at(
        &self,
        order: &NewOrder,
        accepted_at: OffsetDateTime,
    ) -> Result<OffsetDateTime, FieldError> {
        let latest = accepted_at + MAX_TIME_IN_FORCE;
        match order.requested_expiry() {
            Some(requested) if requested <= accepted_at => Err(FieldError::new(
                "expires_at",
                "Attribute `expires_at` must be in the future",
            )),
            Some(requested) if requested > latest => Err(FieldError::new(
                "expires_at",
                "Attribute `expires_at` must be at most 30 days ahead",
            )),
            Some(requested) => Ok(requested),
            None => Ok(match order.order_type() {
                OrderType::Market => accepted_at + self.market_order_ttl,
                OrderType::Limit => latest,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn order(body: serde_json::Value) -> NewOrder {
        NewOrder::parse_json(&body).expect("valid order")
    }

    const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);

    #[test]
    fn market_orders_default_to_the_short_ttl_and_limit_orders_to_thirty_days() {
        let policy = ExpiryPolicy::default();
        let market =
            order(json!({"type":"market","side":"buy","instrument":"US0378331005","quantity":1}));
        let limit = order(
            json!({"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"1","quantity":1}),
        );
        assert_eq!(
            policy.expires_at(&market, NOW),
            Ok(NOW + Duration::from_secs(300))
        );
        assert_eq!(
            policy.expires_at(&limit, NOW),
            Ok(datetime!(2027-01-05 12:00 UTC))
        );
    }

    #[test]
    fn a_requested_expiry_must_be_in_the_future_and_within_thirty_days() {
        let policy = ExpiryPolicy::default();
        let at = |expires: &str| {
            policy.expires_at(
                &order(json!({"type":"market","side":"buy","instrument":"US0378331005","quantity":1,"expires_at":expires})),
                NOW,
            )
        };
        assert_eq!(
            at("2026-12-06T12:30:00+01:00").unwrap_err().field,
            "expires_at"
        );
        assert_eq!(at("2026-12-06T12:00:00Z").unwrap_err().field, "expires_at");
        assert_eq!(at("2027-01-05T12:00:01Z").unwrap_err().field, "expires_at");
        assert_eq!(
            at("2027-01-05T12:00:00Z"),
            Ok(datetime!(2027-01-05 12:00 UTC))
        );
        assert_eq!(
            at("2026-12-06T13:30:00+01:00"),
            Ok(datetime!(2026-12-06 12:30 UTC))
        );
    }

    #[test]
    fn a_malformed_expiry_is_a_field_error_of_the_parser() {
        let rejected = NewOrder::parse_json(
            &json!({"type":"market","side":"buy","instrument":"US0378331005","quantity":1,"expires_at":"tomorrow"}),
        );
        let Err(crate::OrderRejection::Invalid(errors)) = rejected else {
            panic!("refused");
        };
        assert_eq!(errors[0].field, "expires_at");
    }
}
