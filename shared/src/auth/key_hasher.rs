//! Peppered hashes of API key secrets.
//!
//! The secrets are 256 random bits, so a fast keyed hash is the right tool (a slow password hash
//! buys nothing against a search space that size, and would cost milliseconds on every request).
//! The key of the HMAC is the pepper, which lives in Secrets Manager, not in the database: a
//! stolen `api_keys` table alone does not let anyone test candidate keys.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ApiKey;

type HmacSha256 = Hmac<Sha256>;

/// The stored form of a key's secret: HMAC-SHA-256(pepper, secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

/// The pepper is too short to be a real secret.
#[derive(Debug, thiserror::Error)]
#[error("the API key pepper must be at least {min} bytes long (got {got})")]
pub struct PepperError {
    pub min: usize,
    pub got: usize,
}

/// Hashes and verifies key secrets with the deployment's pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Vec<u8>,
}

impl KeyHasher {
    /// A pepper shorter than this is refused: it must be as hard to guess as a key.
    pub const MIN_PEPPER_BYTES: usize = 32;

    pub fn new(pepper: &[u8]) -> Result<Self, PepperError> {
        if pepper.len() < Self::MIN_PEPPER_BYTES {
            return Err(PepperError {
                min: Self::MIN_PEPPER_BYTES,
                got: pepper.len(),
            });
        }
        Ok(Self {
            pepper: pepper.to_vec(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.pepper).expect("HMAC accepts keys of any length")
    }

    pub fn hash(&self, key: &ApiKey) -> KeyHash {
        let mut mac = self.mac();
        mac.update(key.secret().as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }

    /// Whether `key` is the key that `stored` was made from, in time that does not depend on
    /// where the two hashes differ. With no stored hash (unknown or revoked key) the same work is
    /// done against a dummy, so that the answer takes as long either way.
    pub fn verify(&self, key: &ApiKey, stored: Option<&[u8]>) -> bool {
        let mut mac = self.mac();
        mac.update(key.secret().as_bytes());
        match stored {
            Some(stored) => mac.verify_slice(stored).is_ok(),
            None => {
                let _ = mac.verify_slice(&[0u8; 32]);
                false
            }
        }
    }
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(<pepper redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pepper: &str) -> KeyHasher {
        KeyHasher::new(pepper.as_bytes()).unwrap()
    }

    #[test]
    fn a_key_verifies_against_its_own_hash_only() {
        let h = hasher(&"p".repeat(32));
        let key = ApiKey::generate().unwrap();
        let other = ApiKey::generate().unwrap();
        let stored = h.hash(&key);
        assert!(h.verify(&key, Some(&stored.0)));
        assert!(!h.verify(&other, Some(&stored.0)));
        assert!(!h.verify(&key, None));
        assert!(!h.verify(&key, Some(&stored.0[..31])));
    }

    #[test]
    fn the_pepper_changes_the_hash() {
        let key = ApiKey::generate().unwrap();
        let a = hasher(&"a".repeat(32)).hash(&key);
        let b = hasher(&"b".repeat(32)).hash(&key);
        assert_ne!(a, b);
        assert!(!hasher(&"b".repeat(32)).verify(&key, Some(&a.0)));
    }

    #[test]
    fn short_peppers_are_refused_and_never_shown() {
        assert!(KeyHasher::new(b"short").is_err());
        let h = hasher(&"s3cret-pepper-".repeat(3));
        assert!(!format!("{h:?}").contains("s3cret"));
    }
}
