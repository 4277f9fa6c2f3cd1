//! Queue attributes: the settable ones (with SQS's defaults and ranges), how they are parsed from
//! CreateQueue/SetQueueAttributes and rendered for GetQueueAttributes, and which names exist.

use crate::error::{ErrorKind, SqsError};

/// The settable attributes of a standard queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub delay_seconds: u32,
    pub maximum_message_size: u32,
    pub message_retention_period: u32,
    pub receive_message_wait_time_seconds: u32,
    pub visibility_timeout: u32,
    pub redrive_policy: Option<RedrivePolicy>,
    /// Stored and returned as given; not enforced.
    pub redrive_allow_policy: Option<String>,
    /// Stored and returned as given; not enforced.
    pub policy: Option<String>,
    pub kms_master_key_id: Option<String>,
    pub kms_data_key_reuse_period_seconds: Option<u32>,
    pub sqs_managed_sse_enabled: bool,
}

impl Default for QueueSettings {
    /// SQS's defaults (MaximumMessageSize is 1 MiB since 2025).
    fn default() -> Self {
        Self {
            delay_seconds: 0,
            maximum_message_size: 1_048_576,
            message_retention_period: 345_600,
            receive_message_wait_time_seconds: 0,
            visibility_timeout: 30,
            redrive_policy: None,
            redrive_allow_policy: None,
            policy: None,
            kms_master_key_id: None,
            kms_data_key_reuse_period_seconds: None,
            sqs_managed_sse_enabled: true,
        }
    }
}

/// Where a queue's failing messages go, and after how many receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    pub dead_letter_target_arn: String,
    pub max_receive_count: u32,
}

impl RedrivePolicy {
    /// The JSON SQS returns: the count as a number.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "deadLetterTargetArn": self.dead_letter_target_arn,
            "maxReceiveCount": self.max_receive_count,
        })
        .to_string()
    }

    /// Accepts `maxReceiveCount` as a number or a numeric string (both are common in the wild).
    fn parse(text: &str) -> Result<Self, SqsError> {
        let invalid = |reason: &str| {
            SqsError::invalid_parameter(format!(
                "Value {text} for parameter RedrivePolicy is invalid. Reason: {reason}"
            ))
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| invalid("Redrive policy is not a valid JSON map."))?;
        let target = value
            .get("deadLetterTargetArn")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
            })?;
        let count = match value.get("maxReceiveCount") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            invalid("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
        })?;
        if !(1..=1000).contains(&count) {
            return Err(invalid(
                "Invalid value for maxReceiveCount: must be between 1 and 1000.",
            ));
        }
        Ok(Self {
            dead_letter_target_arn: target.to_owned(),
            max_receive_count: count as u32,
        })
    }
}

/// Every attribute name GetQueueAttributes knows, in the order `All` returns them. FIFO-only
/// names are accepted and never returned (no FIFO queues here).
const ATTRIBUTE_NAMES: &[&str] = &[
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Checks GetQueueAttributes names; `All` expands to every name.
pub fn requested_names(names: &[String]) -> Result<Vec<&'static str>, SqsError> {
    let mut out = Vec::new();
    for name in names {
        if name == "All" {
            return Ok(ATTRIBUTE_NAMES.to_vec());
        }
        match ATTRIBUTE_NAMES.iter().find(|known| **known == name) {
            Some(known) => out.push(*known),
            None => {
                return Err(SqsError::new(
                    ErrorKind::InvalidAttributeName,
                    format!("Unknown Attribute {name}."),
                ));
            }
        }
    }
    Ok(out)
}

impl QueueSettings {
    /// Applies one CreateQueue/SetQueueAttributes attribute. The redrive target's existence is
    /// checked by the broker, which knows the other queues.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), SqsError> {
        fn ranged(name: &str, value: &str, min: u32, max: u32) -> Result<u32, SqsError> {
            value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| {
                    SqsError::new(
                        ErrorKind::InvalidAttributeValue,
                        format!("Invalid value for the parameter {name}."),
                    )
                })
        }
        let optional = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        match name {
            "DelaySeconds" => self.delay_seconds = ranged(name, value, 0, 900)?,
            "MaximumMessageSize" => {
                self.maximum_message_size = ranged(name, value, 1024, 1_048_576)?
            }
            "MessageRetentionPeriod" => {
                self.message_retention_period = ranged(name, value, 60, 1_209_600)?
            }
            "ReceiveMessageWaitTimeSeconds" => {
                self.receive_message_wait_time_seconds = ranged(name, value, 0, 20)?
            }
            "VisibilityTimeout" => self.visibility_timeout = ranged(name, value, 0, 43_200)?,
            "RedrivePolicy" => {
                self.redrive_policy = if value.trim().is_empty() {
                    None
                } else {
                    Some(RedrivePolicy::parse(value)?)
                }
            }
            "RedriveAllowPolicy" => self.redrive_allow_policy = optional(value),
            "Policy" => self.policy = optional(value),
            "KmsMasterKeyId" => self.kms_master_key_id = optional(value),
            "KmsDataKeyReusePeriodSeconds" => {
                self.kms_data_key_reuse_period_seconds = Some(ranged(name, value, 60, 86_400)?)
            }
            "SqsManagedSseEnabled" => {
                self.sqs_managed_sse_enabled = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(SqsError::new(
                            ErrorKind::InvalidAttributeValue,
                            format!("Invalid value for the parameter {name}."),
                        ));
                    }
                }
            }
            "FifoQueue"
            | "ContentBasedDeduplication"
            | "DeduplicationScope"
            | "FifoThroughputLimit" => {
                if name != "FifoQueue" || value.eq_ignore_ascii_case("true") {
                    return Err(SqsError::new(
                        ErrorKind::UnsupportedOperation,
                        "FIFO queues are not supported by sqs-local.",
                    ));
                }
            }
            _ => {
                return Err(SqsError::new(
                    ErrorKind::InvalidAttributeName,
                    format!("Unknown Attribute {name}."),
                ));
            }
        }
        Ok(())
    }

    /// The value of a settable attribute as GetQueueAttributes shows it (`None`: not shown).
    pub fn render(&self, name: &str) -> Option<String> {
        match name {
            "DelaySeconds" => Some(self.delay_seconds.to_string()),
            "MaximumMessageSize" => Some(self.maximum_message_size.to_string()),
            "MessageRetentionPeriod" => Some(self.message_retention_period.to_string()),
            "ReceiveMessageWaitTimeSeconds" => {
                Some(self.receive_message_wait_time_seconds.to_string())
            }
            "VisibilityTimeout" => Some(self.visibility_timeout.to_string()),
            "RedrivePolicy" => self.redrive_policy.as_ref().map(RedrivePolicy::to_json),
            "RedriveAllowPolicy" => self.redrive_allow_policy.clone(),
            "Policy" => self.policy.clone(),
            "KmsMasterKeyId" => self.kms_master_key_id.clone(),
            "KmsDataKeyReusePeriodSeconds" => self.kms_master_key_id.as_ref().map(|_| {
                self.kms_data_key_reuse_period_seconds
                    .unwrap_or(300)
                    .to_string()
            }),
            "SqsManagedSseEnabled" => Some(self.sqs_managed_sse_enabled.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced() {
        let mut settings = QueueSettings::default();
        assert!(settings.apply("VisibilityTimeout", "43200").is_ok());
        assert_eq!(
            settings
                .apply("VisibilityTimeout", "43201")
                .unwrap_err()
                .kind,
            ErrorKind::InvalidAttributeValue
        );
        assert_eq!(
            settings
                .apply("MaximumMessageSize", "1023")
                .unwrap_err()
                .kind,
            ErrorKind::InvalidAttributeValue
        );
        assert_eq!(
            settings.apply("Colour", "blue").unwrap_err().kind,
            ErrorKind::InvalidAttributeName
        );
    }

    #[test]
    fn redrive_policy_accepts_string_or_number_counts() {
        let mut settings = QueueSettings::default();
        settings
            .apply(
                "RedrivePolicy",
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:d","maxReceiveCount":"3"}"#,
            )
            .unwrap();
        assert_eq!(
            settings.render("RedrivePolicy").unwrap(),
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:d","maxReceiveCount":3}"#
        );
        settings
            .apply(
                "RedrivePolicy",
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:d","maxReceiveCount":4}"#,
            )
            .unwrap();
        assert_eq!(
            settings.redrive_policy.as_ref().unwrap().max_receive_count,
            4
        );
        settings.apply("RedrivePolicy", "").unwrap();
        assert_eq!(settings.redrive_policy, None);
        assert!(
            settings
                .apply("RedrivePolicy", r#"{"maxReceiveCount":4}"#)
                .is_err()
        );
    }

    #[test]
    fn all_expands_and_unknown_names_fail() {
        assert_eq!(
            requested_names(&["All".into()]).unwrap().len(),
            ATTRIBUTE_NAMES.len()
        );
        assert_eq!(
            requested_names(&["Nope".into()]).unwrap_err().kind,
            ErrorKind::InvalidAttributeName
        );
    }
}
