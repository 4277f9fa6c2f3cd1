//! What every SQS-triggered handler (placer, alerter) shares: the per-record outcome, the partial
//! batch response built from it, and the receive count that drives back-off.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Handled for good (placed, rejected, or already final): SQS may delete it.
    Done,
    /// Must come back: reported in `batchItemFailures`.
    Retry(String),
}

/// The partial batch response: only the records to retry, so SQS deletes the rest.
pub fn batch_response(outcomes: Vec<(String, RecordOutcome)>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (message_id, outcome) in outcomes {
        if let RecordOutcome::Retry(_) = outcome {
            response.add_failure(message_id);
        }
    }
    response
}

/// `ApproximateReceiveCount` of a record (1 on the first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_response_lists_only_records_to_retry() {
        let response = batch_response(vec![
            ("a".into(), RecordOutcome::Done),
            ("b".into(), RecordOutcome::Retry("exchange down".into())),
            ("c".into(), RecordOutcome::Done),
            ("d".into(), RecordOutcome::Retry("unknown order".into())),
        ]);
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec!["b".to_string(), "d".to_string()]);
    }

    #[test]
    fn all_done_is_an_empty_failure_list() {
        let response = batch_response(vec![("a".into(), RecordOutcome::Done)]);
        assert!(response.batch_item_failures.is_empty());
    }

    #[test]
    fn receive_count_defaults_to_first_delivery() {
        let mut record = SqsMessage::default();
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&record), 4);
    }
}
