//! The migrator's handler: a CloudFormation custom resource that applies `migrations/` on every
//! deploy. It always answers CloudFormation — on failure too, because a custom resource that
//! never answers blocks the stack for an hour — and does nothing on stack delete (dropping the
//! schema would drop the orders).

use std::future::Future;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};
use serde::Deserialize;

use crate::ports::BoxError;

/// The resource's stable physical id: changing it would make CloudFormation "replace" (delete)
/// the old one.
pub const PHYSICAL_RESOURCE_ID: &str = "order-schema-migrations";

/// The fields of a custom resource request that the migrator needs. Read into our own struct
/// (rather than `aws_lambda_events`' non-exhaustive enum) so that even a request type we do not
/// know still gets an answer at its `ResponseURL`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    pub request_type: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
}

/// Runs `migrate` for Create and Update, skips Delete, and builds the response to send.
pub async fn handle_custom_resource<F, Fut>(
    request: &CustomResourceRequest,
    migrate: F,
) -> CloudFormationCustomResourceResponse
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<String>, BoxError>>,
{
    let run = matches!(request.request_type.as_str(), "Create" | "Update");
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = CloudFormationCustomResourceResponseStatus::Success;
    response.physical_resource_id = PHYSICAL_RESOURCE_ID.into();
    response.stack_id = request.stack_id.clone();
    response.request_id = request.request_id.clone();
    response.logical_resource_id = request.logical_resource_id.clone();
    if !run {
        tracing::info!(request_type = %request.request_type, "nothing to do: the schema is kept");
        response.reason = Some(format!("{}: schema kept", request.request_type));
        return response;
    }
    match migrate().await {
        Ok(applied) => {
            tracing::info!(?applied, "migrations applied");
            response.data.insert(
                "Applied".into(),
                applied.join(",").chars().take(1000).collect(),
            );
            response.reason = Some(format!("{} migration(s) applied", applied.len()));
        }
        Err(error) => {
            let reason = crate::telemetry::error_chain(error.as_ref());
            tracing::error!(%reason, "migrations failed");
            response.status = CloudFormationCustomResourceResponseStatus::Failed;
            // CloudFormation shows this in the console; keep it short.
            response.reason = Some(reason.chars().take(500).collect());
        }
    }
    response
}

/// PUTs the response to CloudFormation. The pre-signed URL is signed for an empty content type.
pub async fn send_response(
    client: &reqwest::Client,
    url: &str,
    response: &CloudFormationCustomResourceResponse,
) -> Result<(), BoxError> {
    let body = serde_json::to_vec(response)?;
    client
        .put(url)
        .header("content-type", "")
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
