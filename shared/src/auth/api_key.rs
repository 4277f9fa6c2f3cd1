//! The key format: `sok_<key id>_<secret>`.
//!
//! - `sok_` ("stock order key") makes a leaked key easy to recognise and to search for (secret
//!   scanners match on such prefixes).
//! - The key id (16 hex digits, 64 random bits) is not secret: it names the key in the database,
//!   in logs and in the admin tool, so that one key can be found and revoked.
//! - The secret (64 hex digits, 256 random bits from the OS) is never stored or logged; only its
//!   peppered hash is stored.

use std::fmt;

const PREFIX: &str = "sok_";
const KEY_ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;

/// The public half of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Parses an id as shown by the admin tool (16 lower-case hex digits).
    pub fn parse(input: &str) -> Result<Self, MalformedKey> {
        if is_lower_hex(input, KEY_ID_HEX) {
            Ok(Self(input.to_owned()))
        } else {
            Err(MalformedKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A complete key: what a client sends and what the admin tool shows once at creation.
/// `Debug` and `Display` show only the id, so that a key that ends up in a log line leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    id: KeyId,
    secret: String,
}

/// The text is not a key of our format. Deliberately without detail: the answer to the client
/// is the same 401 as for an unknown key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an API key of the form sok_<16 hex digits>_<64 hex digits>")]
pub struct MalformedKey;

impl ApiKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; KEY_ID_HEX / 2];
        let mut secret = [0u8; SECRET_HEX / 2];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut secret)?;
        Ok(Self {
            id: KeyId(hex::encode(id)),
            secret: hex::encode(secret),
        })
    }

    /// Parses a presented key. Only the exact format passes, so that nothing else reaches the
    /// database.
    pub fn parse(input: &str) -> Result<Self, MalformedKey> {
        let rest = input.strip_prefix(PREFIX).ok_or(MalformedKey)?;
        let (id, secret) = rest.split_once('_').ok_or(MalformedKey)?;
        if !is_lower_hex(secret, SECRET_HEX) {
            return Err(MalformedKey);
        }
        Ok(Self {
            id: KeyId::parse(id)?,
            secret: secret.to_owned(),
        })
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// The whole key, to hand to its owner once. Named so that every use stands out in review.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({PREFIX}{}_<redacted>)", self.id)
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.id(), b.id());
        let text = a.expose();
        assert!(text.starts_with("sok_"));
        assert_eq!(text.len(), 4 + 16 + 1 + 64);
        assert_eq!(ApiKey::parse(&text).unwrap(), a);
    }

    #[test]
    fn only_the_exact_format_parses() {
        let good = format!("sok_{}_{}", "0123456789abcdef", "a".repeat(64));
        assert!(ApiKey::parse(&good).is_ok());
        for bad in [
            String::new(),
            "sok_".into(),
            good.to_uppercase(),
            good.replace("sok_", "xok_"),
            format!("{good}0"),
            good[..good.len() - 1].to_owned(),
            format!("sok_{}_{}", "0123456789abcdeg", "a".repeat(64)),
            format!("sok_{}-{}", "0123456789abcdef", "a".repeat(64)),
            format!(" {good}"),
        ] {
            assert_eq!(ApiKey::parse(&bad), Err(MalformedKey), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.id().as_str()));
        assert!(!shown.contains(key.secret()));
    }
}
