//! API keys: how they look, how they are made, and how a presented key is checked against the
//! stored hash. No storage and no HTTP here — the Postgres adapter keeps the hashes, the api
//! middleware reads the `Authorization` header.

mod api_key;
mod key_hasher;

pub use api_key::{ApiKey, KeyId, MalformedKey};
pub use key_hasher::{KeyHash, KeyHasher, PepperError};
