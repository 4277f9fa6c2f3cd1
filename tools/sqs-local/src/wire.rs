//! What both the HTTP layer and the error responses put on the wire, kept below both so that
//! neither has to import the other: the content type of every AWS JSON 1.0 answer.

/// The content type of every response, results and errors alike.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
