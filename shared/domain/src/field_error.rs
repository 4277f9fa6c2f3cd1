//! Why a request body did not become an order, in terms a client can fix.

use serde::Serialize;

/// One problem with one attribute of a request; `field` names the JSON attribute as the client
/// sent it so that a form can highlight it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The two ways a body can fail to be an order; they map to different statuses (400 vs 422)
/// because only the second is about the order itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRejection {
    /// The body is valid JSON but not a JSON object (HTTP 400).
    NotAnObject,
    /// The body is an object but breaks one or more rules (HTTP 422); every problem is listed.
    Invalid(Vec<FieldError>),
}
