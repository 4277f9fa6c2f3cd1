//! Limit prices: exact decimals, never floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// A strictly positive price with at most two decimal places and at most 1 000 000 000.00, so
/// that it fits the store's `NUMERIC(18,2)` without the silent rounding that type would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Price(Decimal);

impl Price {
    pub const MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

    /// Parses the textual form of a JSON number or of a decimal string. Scientific notation is
    /// accepted for numbers (`1e2`), trailing zeros beyond two places are harmless (`10.500`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("must be a decimal number".into());
        }
        let parsed = if trimmed.contains(['e', 'E']) {
            Decimal::from_scientific(trimmed)
        } else {
            Decimal::from_str_exact(trimmed)
        };
        let value = parsed.map_err(|_| "must be a decimal number".to_string())?;
        Self::try_from(value)
    }

    pub fn as_decimal(&self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Price {
    type Error = String;

    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        let value = value.normalize();
        if value <= Decimal::ZERO {
            return Err("must be greater than 0".into());
        }
        if value > Self::MAX {
            return Err("must be at most 1000000000.00".into());
        }
        if value.scale() > 2 {
            return Err("must have at most 2 decimal places".into());
        }
        let mut value = value;
        value.rescale(2);
        Ok(Self(value))
    }
}

impl FromStr for Price {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_kept_exactly_with_two_places() {
        assert_eq!(Price::parse("10").unwrap().to_string(), "10.00");
        assert_eq!(Price::parse("10.5").unwrap().to_string(), "10.50");
        assert_eq!(Price::parse("0.01").unwrap().to_string(), "0.01");
        assert_eq!(Price::parse("10.500").unwrap().to_string(), "10.50");
        assert_eq!(Price::parse("1e2").unwrap().to_string(), "100.00");
        assert_eq!(
            Price::parse("1000000000.00").unwrap().to_string(),
            "1000000000.00"
        );
        assert_eq!(
            Price::parse("999999999.99").unwrap().to_string(),
            "999999999.99"
        );
    }

    #[test]
    fn out_of_range_and_imprecise_prices_are_refused() {
        for (input, why) in [
            ("0", "greater than 0"),
            ("0.00", "greater than 0"),
            ("-1", "greater than 0"),
            ("10.005", "2 decimal places"),
            ("1000000000.01", "at most 1000000000.00"),
            ("1e40", "decimal number"),
            ("99999999999999999999999999999999", "decimal number"),
            ("abc", "decimal number"),
            ("", "decimal number"),
            ("NaN", "decimal number"),
        ] {
            let err = Price::parse(input).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
        }
    }
}
