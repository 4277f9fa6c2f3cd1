//! The MD5 digests SQS returns with every message (`MD5OfMessageBody`, `MD5OfMessageAttributes`),
//! computed byte for byte as AWS does, because SDKs that verify them (Java, .NET, boto3's
//! optional check) reject a message whose digest differs.

use md5::{Digest, Md5};

use crate::attribute::AttributeValue;

/// Hex MD5 of the UTF-8 body.
pub fn body_md5(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// Hex MD5 of message attributes, or `None` when there are none (SQS then omits the field).
///
/// The encoding is SQS's: attributes sorted by name; for each, the 4-byte big-endian length and
/// the bytes of the name, then of the data type, then one bare transport byte (1 string,
/// 2 binary, 3 string list, 4 binary list) and the length-prefixed value(s). Number values
/// travel as strings.
pub fn attributes_md5<'a, I>(attributes: I) -> Option<String>
where
    I: IntoIterator<Item = (&'a str, &'a AttributeValue)>,
{
    let mut sorted: Vec<(&str, &AttributeValue)> = attributes.into_iter().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut digest = Md5::new();
    fn field(digest: &mut Md5, bytes: &[u8]) {
        digest.update((bytes.len() as u32).to_be_bytes());
        digest.update(bytes);
    }
    for (name, value) in sorted {
        field(&mut digest, name.as_bytes());
        field(&mut digest, value.data_type.as_bytes());
        if let Some(text) = &value.string_value {
            digest.update([1u8]);
            field(&mut digest, text.as_bytes());
        } else if let Some(bytes) = &value.binary_value {
            digest.update([2u8]);
            field(&mut digest, bytes);
        } else if !value.string_list_values.is_empty() {
            digest.update([3u8]);
            for item in &value.string_list_values {
                field(&mut digest, item.as_bytes());
            }
        } else if !value.binary_list_values.is_empty() {
            digest.update([4u8]);
            for item in &value.binary_list_values {
                field(&mut digest, item);
            }
        }
    }
    Some(hex::encode(digest.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_digest_is_plain_md5() {
        assert_eq!(body_md5("x"), "9dd4e461268c8034f5c8564e155c67a6");
        assert_eq!(body_md5("hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    /// The reference value is what moto (and AWS) return for the same three attributes.
    #[test]
    fn attribute_digest_matches_the_service() {
        let a = AttributeValue::text("String", "v");
        let b = AttributeValue {
            data_type: "Binary".into(),
            binary_value: Some(vec![0, 1]),
            ..AttributeValue::default()
        };
        let n = AttributeValue::text("Number.int", "42");
        let digest = attributes_md5([("n", &n), ("a", &a), ("b", &b)]);
        assert_eq!(digest.as_deref(), Some("42e24c7518fe3b520c88aa7727333373"));
    }

    #[test]
    fn no_attributes_no_digest() {
        assert_eq!(attributes_md5(std::iter::empty()), None);
    }
}
