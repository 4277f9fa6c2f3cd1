//! Admin alerts (SNS in AWS).

use async_trait::async_trait;

use super::BoxError;

/// An alert for the on-call admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub subject: String,
    /// JSON an admin (or a tool) can act on.
    pub body: String,
}

/// Publishing failed; the alert must be retried (the record is reported as failed).
#[derive(Debug, thiserror::Error)]
#[error("could not publish the alert")]
pub struct PublishError(#[source] pub BoxError);

/// Where admin alerts go (SNS in AWS).
#[async_trait]
pub trait AlertPublisher: Send + Sync {
    async fn publish(&self, alert: &Alert) -> Result<(), PublishError>;
}
