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

    /// Parses the textual form of a JSON number or of a decimal string: an optional `-`, digits,
    /// an optional fraction and, for numbers, an optional exponent (`1e2`). The text is checked
    /// digit by digit before any conversion, so nothing is ever rounded into validity; trailing
    /// zeros beyond two places are harmless (`10.500`).
    pub fn parse(text: &str) -> Result<Self, String> {
        const NOT_A_NUMBER: &str = "must be a decimal number";
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => {
                let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
                let (sign, magnitude) = match exponent.strip_prefix('-') {
                    Some(m) => (-1, m),
                    None => (1, exponent),
                };
                if magnitude.is_empty() || !magnitude.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NOT_A_NUMBER.into());
                }
                // Clamped only where the result's class cannot change: once the shift exceeds
                // the mantissa's own length by 64 digits, a non-zero value is certainly too
                // large (or has too many decimals) whatever the exact exponent.
                let bound = mantissa.len() as i64 + 64;
                let magnitude: i64 = magnitude.parse().unwrap_or(i64::MAX).min(bound);
                (mantissa, sign * magnitude)
            }
            None => (digits, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty()
            || !all_digits(int_part)
            || !all_digits(frac_part)
            || (mantissa.contains('.') && frac_part.is_empty())
        {
            return Err(NOT_A_NUMBER.into());
        }
        // Shift the decimal point by the exponent, as text.
        let mut all: String = format!("{int_part}{frac_part}");
        let mut point = int_part.len() as i64 + exponent;
        if point < 0 {
            all.insert_str(0, &"0".repeat((-point) as usize));
            point = 0;
        }
        if point as usize > all.len() {
            all.push_str(&"0".repeat(point as usize - all.len()));
        }
        let (int_digits, frac_digits) = all.split_at(point as usize);
        let int_digits = int_digits.trim_start_matches('0');
        let frac_digits = frac_digits.trim_end_matches('0');
        let is_zero = int_digits.is_empty() && frac_digits.is_empty();
        if negative || is_zero {
            return Err("must be greater than 0".into());
        }
        if frac_digits.len() > 2 {
            return Err("must have at most 2 decimal places".into());
        }
        if int_digits.len() > 10 {
            return Err("must be at most 1000000000.00".into());
        }
        let normalised = format!(
            "{}.{}",
            if int_digits.is_empty() {
                "0"
            } else {
                int_digits
            },
            frac_digits
        );
        let value = Decimal::from_str_exact(normalised.trim_end_matches('.'))
            .map_err(|_| NOT_A_NUMBER.to_string())?;
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
        assert_eq!(Price::parse("12345e-2").unwrap().to_string(), "123.45");
        assert_eq!(Price::parse("0.5E+1").unwrap().to_string(), "5.00");
        let hundred = format!("1{}e-70", "0".repeat(72));
        assert_eq!(Price::parse(&hundred).unwrap().to_string(), "100.00");
        let ten = format!("0.{}1e72", "0".repeat(70));
        assert_eq!(Price::parse(&ten).unwrap().to_string(), "10.00");
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
            ("1e40", "at most 1000000000.00"),
            ("99999999999999999999999999999999", "at most 1000000000.00"),
            ("1.000000000000000000000000000001e1", "2 decimal places"),
            ("1_000", "decimal number"),
            ("+10", "decimal number"),
            (".5", "decimal number"),
            ("5.", "decimal number"),
            (" 10", "decimal number"),
            ("1e", "decimal number"),
            ("abc", "decimal number"),
            ("", "decimal number"),
            ("NaN", "decimal number"),
        ] {
            let err = Price::parse(input).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
        }
    }
}
