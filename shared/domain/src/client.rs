//! Who an order belongs to.

use std::fmt;

/// The owner of API keys and orders. Chosen by the admin who creates the client, shown in logs
/// and alerts, so it is restricted to a short, safe alphabet: 1 to 64 characters of lower-case
/// ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_LEN: usize = 64;

    /// The client that the migration to per-client orders gave every order created before it.
    pub const DEFAULT: &'static str = "default";

    pub fn parse(input: &str) -> Result<Self, String> {
        let valid_start = input
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let valid_rest = input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if input.is_empty() || input.len() > Self::MAX_LEN || !valid_start || !valid_rest {
            return Err(format!(
                "a client id is 1 to {} characters of a-z, 0-9, '-', '_' and '.', \
                 starting with a letter or digit",
                Self::MAX_LEN
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_use_a_safe_alphabet() {
        for ok in [
            "default",
            "acme",
            "acme-capital_2.eu",
            "0x",
            &"a".repeat(64),
        ] {
            assert!(ClientId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme corp",
            "acme/1",
            "ä",
            &"a".repeat(65),
        ] {
            assert!(ClientId::parse(bad).is_err(), "{bad}");
        }
    }
}
