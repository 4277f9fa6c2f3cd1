//! A message as the endpoint stores it once accepted, and the checks SendMessage applies before
//! accepting one: attribute names and types, the body's character set, and the size limit that
//! counts the body plus every attribute's name, type and value (as SQS does).

use std::collections::HashMap;
use std::sync::Arc;

use crate::attribute::AttributeValue;
use crate::checksum;
use crate::error::{ErrorKind, SqsError};
use crate::id;

/// The immutable part of a stored message, shared (behind an `Arc`) between the queue and every
/// response that delivers it, so a receive copies pointers rather than bodies.
#[derive(Debug)]
pub struct MessageData {
    pub id: String,
    pub body: String,
    /// Sorted by name.
    pub attributes: Vec<(String, AttributeValue)>,
    pub body_md5: String,
    pub attributes_md5: Option<String>,
    /// Epoch milliseconds at SendMessage.
    pub sent_ms: u64,
    pub sender_id: String,
    /// The `AWSTraceHeader` system attribute, the only one SQS accepts on send.
    pub trace_header: Option<String>,
}

/// What a SendMessage (or one batch entry) asks for, after wire decoding.
#[derive(Debug, Default)]
pub struct NewMessage {
    pub body: Option<String>,
    pub attributes: HashMap<String, AttributeValue>,
    pub system_attributes: HashMap<String, AttributeValue>,
    pub delay_seconds: Option<i64>,
}

/// A validated message ready to enqueue, with the digests to report to the sender.
#[derive(Debug)]
pub struct Accepted {
    pub data: Arc<MessageData>,
    pub delay_seconds: u32,
    pub system_attributes_md5: Option<String>,
}

/// SQS's cap on message attributes per message.
const MAX_ATTRIBUTES: usize = 10;

/// Checks `new` against the queue's limits and builds the stored message.
pub fn accept(
    new: NewMessage,
    max_size: u32,
    default_delay: u32,
    sender_id: &str,
    now_ms: u64,
) -> Result<Accepted, SqsError> {
    let body = new.body.ok_or_else(|| SqsError::missing("MessageBody"))?;
    let body = sanitize_body(body)?;
    let delay_seconds = match new.delay_seconds {
        None => default_delay,
        Some(delay @ 0..=900) => delay as u32,
        Some(delay) => {
            return Err(SqsError::invalid_parameter(format!(
                "Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )));
        }
    };
    if new.attributes.len() > MAX_ATTRIBUTES {
        return Err(SqsError::invalid_parameter(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            new.attributes.len()
        )));
    }
    for (name, value) in &new.attributes {
        validate_attribute(name, value)?;
    }
    let size = body.len()
        + new
            .attributes
            .iter()
            .map(|(name, value)| value.size(name))
            .sum::<usize>();
    if size > max_size as usize {
        return Err(SqsError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max_size} bytes."
        )));
    }
    let mut trace_header = None;
    for (name, value) in &new.system_attributes {
        if name != "AWSTraceHeader" {
            return Err(SqsError::invalid_parameter(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        if value.data_type != "String" || value.string_value.is_none() {
            return Err(SqsError::invalid_parameter(
                "Message system attribute 'AWSTraceHeader' must be of type String with a value.",
            ));
        }
        trace_header = value.string_value.clone();
    }
    let system_attributes_md5 = checksum::attributes_md5(
        new.system_attributes
            .iter()
            .map(|(name, value)| (name.as_str(), value)),
    );
    let mut attributes: Vec<(String, AttributeValue)> = new.attributes.into_iter().collect();
    attributes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let attributes_md5 = checksum::attributes_md5(
        attributes
            .iter()
            .map(|(name, value)| (name.as_str(), value)),
    );
    let data = MessageData {
        id: id::random_uuid(),
        body_md5: checksum::body_md5(&body),
        body,
        attributes,
        attributes_md5,
        sent_ms: now_ms,
        sender_id: sender_id.to_owned(),
        trace_header,
    };
    Ok(Accepted {
        data: Arc::new(data),
        delay_seconds,
        system_attributes_md5,
    })
}

/// SQS accepts XML's character set (#x9, #xA, #xD, #x20–#xD7FF, #xE000–#xFFFD, #x10000+) and
/// replaces anything else with U+FFFD rather than rejecting the message, unless nothing valid
/// remains.
fn sanitize_body(body: String) -> Result<String, SqsError> {
    if body.is_empty() {
        return Err(SqsError::invalid_parameter(
            "The request must contain a non-empty message body.",
        ));
    }
    if body.chars().all(allowed) {
        return Ok(body);
    }
    if !body.chars().any(allowed) {
        return Err(SqsError::new(
            ErrorKind::InvalidMessageContents,
            "Invalid binary character in the message body.",
        ));
    }
    Ok(body
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect())
}

fn allowed(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Names: alphanumerics, `_`, `-`, `.`; at most 256 characters; no leading, trailing or doubled
/// period; no `AWS.`/`Amazon.` prefix. Types: `String`, `Number` or `Binary`, optionally with a
/// `.label`; string and number values need `StringValue`, binary ones `BinaryValue`.
fn validate_attribute(name: &str, value: &AttributeValue) -> Result<(), SqsError> {
    let lower = name.to_ascii_lowercase();
    let name_ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if !name_ok {
        return Err(SqsError::invalid_parameter(format!(
            "The message attribute name '{name}' is invalid. Attribute name can contain A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters."
        )));
    }
    let base_type = value.data_type.split('.').next().unwrap_or_default();
    let has_value = match base_type {
        "String" | "Number" => value.string_value.as_ref().is_some_and(|v| !v.is_empty()),
        "Binary" => value.binary_value.as_ref().is_some_and(|v| !v.is_empty()),
        _ if value.data_type.is_empty() => {
            return Err(SqsError::invalid_parameter(format!(
                "The message attribute '{name}' must contain non-empty message attribute type."
            )));
        }
        _ => {
            return Err(SqsError::invalid_parameter(format!(
                "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
            )));
        }
    };
    let has_list = !value.string_list_values.is_empty() || !value.binary_list_values.is_empty();
    if !has_value && !has_list {
        return Err(SqsError::invalid_parameter(format!(
            "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{}'.",
            value.data_type
        )));
    }
    if base_type == "Number" {
        if let Some(text) = &value.string_value {
            if text.trim().parse::<f64>().is_err() {
                return Err(SqsError::invalid_parameter(format!(
                    "Can't cast the value of message (user) attribute '{name}' to a number."
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> NewMessage {
        NewMessage {
            body: Some(body.into()),
            ..NewMessage::default()
        }
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let mut new = message(&"x".repeat(1000));
        new.attributes.insert(
            "abcd".into(),
            AttributeValue::text("String", &"y".repeat(18)),
        );
        // 1000 + 4 + 6 + 18 = 1028 > 1024
        let error = accept(new, 1024, 0, "s", 0).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidParameterValue);
        assert!(error.message.contains("shorter than 1024 bytes"));
        assert!(accept(message(&"x".repeat(1024)), 1024, 0, "s", 0).is_ok());
    }

    #[test]
    fn invalid_characters_are_replaced() {
        let accepted = accept(message("a\u{1}b"), 1024, 0, "s", 0).unwrap();
        assert_eq!(accepted.data.body, "a\u{FFFD}b");
        let error = accept(message("\u{1}"), 1024, 0, "s", 0).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidMessageContents);
    }

    #[test]
    fn attribute_rules() {
        for (name, value, ok) in [
            ("ok_name-1.x", AttributeValue::text("String", "v"), true),
            ("n", AttributeValue::text("Number.int", "42"), true),
            ("n", AttributeValue::text("Number", "forty"), false),
            ("AWS.trace", AttributeValue::text("String", "v"), false),
            ("bad name", AttributeValue::text("String", "v"), false),
            (".lead", AttributeValue::text("String", "v"), false),
            ("t", AttributeValue::text("Text", "v"), false),
            ("e", AttributeValue::text("String", ""), false),
        ] {
            let mut new = message("b");
            new.attributes.insert(name.into(), value);
            assert_eq!(accept(new, 1024, 0, "s", 0).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn delay_bounds() {
        let mut new = message("b");
        new.delay_seconds = Some(901);
        assert!(accept(new, 1024, 0, "s", 0).is_err());
        let mut new = message("b");
        new.delay_seconds = None;
        assert_eq!(accept(new, 1024, 7, "s", 0).unwrap().delay_seconds, 7);
    }
}
