//! Random identifiers. SQS message ids, request ids and move task ids all have the form of a
//! random (version 4) UUID; one function makes them for the message, the HTTP layer and the
//! broker.

/// A random (version 4) UUID, hyphenated.
pub fn random_uuid() -> String {
    let bytes: [u8; 16] = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v4_uuids() {
        let id = random_uuid();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(id, random_uuid());
    }
}
