//! International Securities Identification Number (ISO 6166).

use std::fmt;

/// An ISIN whose check digit is correct, stored upper-case so that `us0378331005` and
/// `US0378331005` are the same instrument (and the same idempotent order).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Isin(String);

impl Isin {
    /// Parses user input: 12 characters, 2 letters (country), 9 alphanumerics, 1 check digit
    /// computed with the Luhn algorithm over the letters expanded to numbers (A=10 … Z=35).
    pub fn parse(input: &str) -> Result<Self, String> {
        let upper = input.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        if upper.chars().count() != 12 {
            return Err(format!(
                "must be 12 characters (an ISIN), got {}",
                input.chars().count()
            ));
        }
        if !bytes[..2].iter().all(u8::is_ascii_uppercase) {
            return Err("must start with a two-letter country code".into());
        }
        if !bytes[2..11].iter().all(u8::is_ascii_alphanumeric) {
            return Err("characters 3 to 11 must be letters or digits".into());
        }
        if !bytes[11].is_ascii_digit() {
            return Err("must end with a check digit".into());
        }
        if check_digit(&bytes[..11]) != bytes[11] - b'0' {
            return Err("has an invalid check digit".into());
        }
        Ok(Self(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Isin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Luhn over the digit string in which each letter stands for two digits.
fn check_digit(payload: &[u8]) -> u8 {
    let mut digits = Vec::with_capacity(22);
    for &b in payload {
        if b.is_ascii_digit() {
            digits.push(b - b'0');
        } else {
            let v = b - b'A' + 10;
            digits.push(v / 10);
            digits.push(v % 10);
        }
    }
    // Double every second digit counting from the right, starting with the rightmost one,
    // because the check digit itself will be the (undoubled) rightmost digit.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_isins_are_valid() {
        for isin in [
            "US0378331005", // Apple
            "DE000BAY0017", // Bayer
            "AU0000XVGZA3",
            "GB0002634946", // BAE Systems
            "US5949181045", // Microsoft
            "NL0000729408",
            "JP3435000009", // Sony
        ] {
            assert_eq!(Isin::parse(isin).unwrap().as_str(), isin);
        }
    }

    #[test]
    fn lower_case_input_is_upper_cased() {
        assert_eq!(
            Isin::parse("us0378331005").unwrap().as_str(),
            "US0378331005"
        );
    }

    #[test]
    fn wrong_check_digit_is_refused() {
        assert!(
            Isin::parse("US0378331006")
                .unwrap_err()
                .contains("check digit")
        );
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert!(
            Isin::parse("US037833100")
                .unwrap_err()
                .contains("12 characters")
        );
        assert!(
            Isin::parse("US03783310055")
                .unwrap_err()
                .contains("12 characters")
        );
        assert!(Isin::parse("").is_err());
    }

    #[test]
    fn non_ascii_is_refused_without_panicking() {
        assert!(Isin::parse("ÜS037833100").is_err());
        assert!(Isin::parse("US03783310é5").is_err());
    }
}
