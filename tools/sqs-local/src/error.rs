//! SQS errors as the AWS JSON 1.0 protocol carries them, so that an SDK maps each one to the same
//! error variant it would get from AWS.
//!
//! SQS is "awsQueryCompatible": besides the JSON body (`__type`, `message`) every error response
//! carries `x-amzn-query-error: <legacy code>;Sender`, and the SDKs match on that legacy code
//! (`AWS.SimpleQueueService.NonExistentQueue`, not `QueueDoesNotExist`). Without the header the
//! Rust SDK would report most errors as "unhandled". Codes and HTTP statuses follow the SQS
//! Smithy model (`aws.protocols#awsQueryError`); errors outside the model (`InvalidParameterValue`,
//! `MissingParameter`) use the shapes the service itself returns.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::wire::CONTENT_TYPE;

/// Every error this endpoint returns. The variant decides the code, type and status; the message
/// is free text (kept close to the service's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    EmptyBatchRequest,
    TooManyEntriesInBatchRequest,
    BatchEntryIdsNotDistinct,
    InvalidBatchEntryId,
    BatchRequestTooLong,
    PurgeQueueInProgress,
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidMessageContents,
    ResourceNotFound,
    UnsupportedOperation,
    /// Not in the Smithy model, but what the service returns for out-of-range parameters
    /// (message too long, `MaxNumberOfMessages` 11, ...). SDKs surface it as an unhandled error
    /// whose code is `InvalidParameterValue`.
    InvalidParameterValue,
    MissingParameter,
    /// The body is not the JSON the operation expects.
    Serialization,
    /// `X-Amz-Target` names no operation.
    UnknownOperation,
}

struct Shape {
    type_name: &'static str,
    query_code: &'static str,
    status: StatusCode,
}

impl ErrorKind {
    fn shape(self) -> Shape {
        use ErrorKind::*;
        let (type_name, query_code, status) = match self {
            QueueDoesNotExist => (
                "com.amazonaws.sqs#QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
                400,
            ),
            QueueNameExists => (
                "com.amazonaws.sqs#QueueNameExists",
                "QueueAlreadyExists",
                400,
            ),
            ReceiptHandleIsInvalid => (
                "com.amazonaws.sqs#ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
                404,
            ),
            EmptyBatchRequest => (
                "com.amazonaws.sqs#EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
                400,
            ),
            TooManyEntriesInBatchRequest => (
                "com.amazonaws.sqs#TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                400,
            ),
            BatchEntryIdsNotDistinct => (
                "com.amazonaws.sqs#BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                400,
            ),
            InvalidBatchEntryId => (
                "com.amazonaws.sqs#InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                400,
            ),
            BatchRequestTooLong => (
                "com.amazonaws.sqs#BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                400,
            ),
            PurgeQueueInProgress => (
                "com.amazonaws.sqs#PurgeQueueInProgress",
                "AWS.SimpleQueueService.PurgeQueueInProgress",
                403,
            ),
            InvalidAttributeName => (
                "com.amazonaws.sqs#InvalidAttributeName",
                "InvalidAttributeName",
                400,
            ),
            InvalidAttributeValue => (
                "com.amazonaws.sqs#InvalidAttributeValue",
                "InvalidAttributeValue",
                400,
            ),
            InvalidMessageContents => (
                "com.amazonaws.sqs#InvalidMessageContents",
                "InvalidMessageContents",
                400,
            ),
            ResourceNotFound => (
                "com.amazonaws.sqs#ResourceNotFoundException",
                "ResourceNotFoundException",
                404,
            ),
            UnsupportedOperation => (
                "com.amazonaws.sqs#UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                400,
            ),
            InvalidParameterValue => (
                "com.amazon.coral.service#InvalidParameterValueException",
                "InvalidParameterValue",
                400,
            ),
            MissingParameter => (
                "com.amazon.coral.service#MissingRequiredParameterException",
                "MissingParameter",
                400,
            ),
            Serialization => (
                "com.amazon.coral.service#SerializationException",
                "SerializationException",
                400,
            ),
            UnknownOperation => (
                "com.amazon.coral.service#UnknownOperationException",
                "UnknownOperationException",
                400,
            ),
        };
        Shape {
            type_name,
            query_code,
            status: StatusCode::from_u16(status).expect("valid status"),
        }
    }

    /// The legacy code SDKs match on (and that batch results carry in `Code`).
    pub fn code(self) -> &'static str {
        self.shape().query_code
    }

    /// The HTTP status of a whole-request failure.
    pub fn status(self) -> StatusCode {
        self.shape().status
    }
}

/// A failed operation: what went wrong and the message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsError {
    pub kind: ErrorKind,
    pub message: String,
}

impl SqsError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn queue_does_not_exist() -> Self {
        Self::new(
            ErrorKind::QueueDoesNotExist,
            "The specified queue does not exist.",
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameterValue, message)
    }

    pub fn missing(parameter: &str) -> Self {
        Self::new(
            ErrorKind::MissingParameter,
            format!("The request must contain the parameter {parameter}."),
        )
    }

    pub fn receipt_handle_invalid(handle: &str) -> Self {
        Self::new(
            ErrorKind::ReceiptHandleIsInvalid,
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }
}

impl std::fmt::Display for SqsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for SqsError {}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let shape = self.kind.shape();
        let body = serde_json::json!({
            "__type": shape.type_name,
            "message": self.message,
        });
        let mut response = (shape.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE),
        );
        headers.insert(
            "x-amzn-query-error",
            HeaderValue::from_str(&format!("{};Sender", shape.query_code))
                .expect("ASCII error code"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(kind: ErrorKind) -> (StatusCode, String, serde_json::Value) {
        let response = SqsError::new(kind, "m").into_response();
        let status = response.status();
        let header = response.headers()["x-amzn-query-error"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = body_json(response);
        (status, header, body)
    }

    /// The body of a response built from a string (no runtime needed).
    fn body_json(response: Response) -> serde_json::Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn responses_carry_the_query_compatible_code() {
        let (status, header, body) = rendered(ErrorKind::QueueDoesNotExist);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(header, "AWS.SimpleQueueService.NonExistentQueue;Sender");
        assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert_eq!(body["message"], "m");

        let (status, header, _) = rendered(ErrorKind::ReceiptHandleIsInvalid);
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(header, "ReceiptHandleIsInvalid;Sender");

        let (status, header, body) = rendered(ErrorKind::InvalidParameterValue);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(header, "InvalidParameterValue;Sender");
        assert_eq!(
            body["__type"],
            "com.amazon.coral.service#InvalidParameterValueException"
        );

        let (status, _, _) = rendered(ErrorKind::PurgeQueueInProgress);
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
