//! Request parameter checks the operations share: integers within a range, queue names and batch
//! entry ids (both 1–80 of `[A-Za-z0-9_-]`), and the checks every batch request passes before
//! any of its entries runs.

use std::collections::HashSet;

use crate::error::{ErrorKind, SqsError};

/// Queue names: 1–80 of `[A-Za-z0-9_-]`.
pub(super) fn valid_queue_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Batch entry ids: 1–80 of `[A-Za-z0-9_-]`.
fn valid_batch_id(id: &str) -> bool {
    valid_queue_name(id)
}

/// `value` (or `default` when absent) if within `min..=max`, else SQS's `InvalidParameterValue`.
pub(super) fn ranged(
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
    name: &str,
) -> Result<i64, SqsError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {name} is invalid. Reason: Must be between {min} and {max}, if provided."
        )))
    }
}

/// The checks every batch operation applies to its entry ids, in the service's order.
pub(super) fn check_batch(ids: &[Option<&str>], entry_type: &str) -> Result<(), SqsError> {
    if ids.is_empty() {
        return Err(SqsError::new(
            ErrorKind::EmptyBatchRequest,
            format!("There should be at least one {entry_type} in the request."),
        ));
    }
    if ids.len() > 10 {
        return Err(SqsError::new(
            ErrorKind::TooManyEntriesInBatchRequest,
            format!(
                "Maximum number of entries per request are 10. You have sent {}.",
                ids.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        let id = id.ok_or_else(|| SqsError::missing(&format!("{entry_type}.Id")))?;
        if !valid_batch_id(id) {
            return Err(SqsError::new(
                ErrorKind::InvalidBatchEntryId,
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                ErrorKind::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_checks_in_order() {
        let kind = |ids: &[Option<&str>]| check_batch(ids, "E").unwrap_err().kind;
        assert_eq!(kind(&[]), ErrorKind::EmptyBatchRequest);
        assert_eq!(
            kind(&[Some("a"); 11]),
            ErrorKind::TooManyEntriesInBatchRequest
        );
        assert_eq!(kind(&[Some("a b")]), ErrorKind::InvalidBatchEntryId);
        assert_eq!(
            kind(&[Some("a"), Some("a")]),
            ErrorKind::BatchEntryIdsNotDistinct
        );
        assert!(check_batch(&[Some("a"), Some("b-1_")], "E").is_ok());
    }
}
