//! A delivery as ReceiveMessage returns it: the system attributes the receiver asked for, the
//! message attributes it asked for (`All`, `.*`, `prefix.*` or exact names) and the digest of
//! exactly those.

use std::collections::BTreeMap;

use super::queue::Delivery;
use crate::attribute::AttributeValue;
use crate::checksum;
use crate::protocol::{WireAttributeValue, WireMessage};

/// The message as ReceiveMessage returns `delivery` to a receiver that asked for `system_names`
/// and the message attributes matching `attribute_patterns`.
pub(super) fn render(
    delivery: &Delivery,
    system_names: &[String],
    attribute_patterns: &[String],
) -> WireMessage {
    let data = &delivery.data;
    let wants = |name: &str| system_names.iter().any(|n| n == "All" || n == name);
    let mut attributes = BTreeMap::new();
    if wants("SenderId") {
        attributes.insert("SenderId", data.sender_id.clone());
    }
    if wants("SentTimestamp") {
        attributes.insert("SentTimestamp", data.sent_ms.to_string());
    }
    if wants("ApproximateReceiveCount") {
        attributes.insert(
            "ApproximateReceiveCount",
            delivery.receive_count.to_string(),
        );
    }
    if wants("ApproximateFirstReceiveTimestamp") {
        attributes.insert(
            "ApproximateFirstReceiveTimestamp",
            delivery.first_receive_ms.to_string(),
        );
    }
    if let Some(trace) = data
        .trace_header
        .as_ref()
        .filter(|_| wants("AWSTraceHeader"))
    {
        attributes.insert("AWSTraceHeader", trace.clone());
    }
    if let Some(source) = delivery
        .dead_letter_source_arn
        .as_ref()
        .filter(|_| wants("DeadLetterQueueSourceArn"))
    {
        attributes.insert("DeadLetterQueueSourceArn", source.to_string());
    }
    let selected: Vec<&(String, AttributeValue)> = data
        .attributes
        .iter()
        .filter(|(name, _)| attribute_wanted(attribute_patterns, name))
        .collect();
    let md5_of_message_attributes = if selected.len() == data.attributes.len() {
        data.attributes_md5.clone()
    } else {
        checksum::attributes_md5(selected.iter().map(|(name, value)| (name.as_str(), value)))
    };
    WireMessage {
        message_id: data.id.clone(),
        receipt_handle: delivery.receipt_handle.clone(),
        md5_of_body: data.body_md5.clone(),
        body: data.body.clone(),
        attributes,
        md5_of_message_attributes,
        message_attributes: selected
            .into_iter()
            .map(|(name, value)| (name.clone(), WireAttributeValue::encode(value)))
            .collect(),
    }
}

/// Which message attributes a receiver asked for: `All`, `.*`, `prefix.*` or exact names.
fn attribute_wanted(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| {
        pattern == "All"
            || pattern == name
            || pattern
                .strip_suffix(".*")
                .is_some_and(|prefix| name.starts_with(prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_patterns() {
        let patterns = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(attribute_wanted(&patterns(&["All"]), "x"));
        assert!(attribute_wanted(&patterns(&[".*"]), "x"));
        assert!(attribute_wanted(&patterns(&["trace.*"]), "trace.id"));
        assert!(!attribute_wanted(&patterns(&["trace.*"]), "other"));
        assert!(attribute_wanted(&patterns(&["x"]), "x"));
        assert!(!attribute_wanted(&[], "x"));
    }
}
