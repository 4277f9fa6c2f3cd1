//! The `ConnectionPush` port on the API Gateway Management API: `PostToConnection` for a
//! message, `DeleteConnection` to close. Its endpoint is the WebSocket API's own
//! (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`), not a regional service URL.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::ports::{ConnectionPush, PushError};

/// Messages to API Gateway WebSocket connections.
#[derive(Clone, Debug)]
pub struct ApiGatewayPush {
    client: Client,
}

impl ApiGatewayPush {
    /// `endpoint`: the WebSocket API's management endpoint (its `https://` stage URL).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

/// API Gateway's `410 Gone` (the connection is closed) apart from every other failure.
fn push_error<E, R>(error: SdkError<E, R>, is_gone: impl Fn(&E) -> bool) -> PushError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if error.as_service_error().is_some_and(is_gone) {
        PushError::Gone
    } else {
        PushError::Failed(Box::new(error))
    }
}

#[async_trait]
impl ConnectionPush for ApiGatewayPush {
    async fn push(&self, connection_id: &str, message: &str) -> Result<(), PushError> {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(message.as_bytes()))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| push_error(error, |e| e.is_gone_exception()))
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| push_error(error, |e| e.is_gone_exception()))
    }
}
