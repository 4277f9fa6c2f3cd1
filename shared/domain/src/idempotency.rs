//! Client-chosen idempotency keys.

/// A client's `Idempotency-Key`: 1 to 100 printable ASCII characters. Bounded so that a key can
/// be indexed and logged safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 100;
    /// How long a key names its order by default (as lemon.markets): after it, the same key
    /// names a new order.
    pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() {
            return Err("must not be empty".into());
        }
        if input.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if !input.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("must contain printable ASCII characters only".into());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded() {
        assert!(IdempotencyKey::parse("abc-123").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(100)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(101)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
    }
}
