//! The HTTP face of the broker: AWS JSON 1.0 as the SDKs speak it. Every operation is a `POST`
//! (to any path; SDKs use `/`) whose `X-Amz-Target: AmazonSQS.<Operation>` header names the
//! operation and whose body is its JSON request. Answers are JSON with
//! `Content-Type: application/x-amz-json-1.0` and an `x-amzn-RequestId`. Signatures are not
//! checked; the signing region becomes the region in new queue ARNs.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::broker::{Broker, RequestContext};
use crate::error::{ErrorKind, SqsError};
use crate::id;
use crate::wire::CONTENT_TYPE;

/// Requests may carry a 1 MiB message plus JSON escaping; SQS itself caps a request well below.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The routes over `broker`: the API on `POST` at any path, `GET /health` for readiness checks.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(handle)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(broker)
}

/// The region in the SigV4 credential scope (`Credential=AKID/date/REGION/sqs/aws4_request`).
fn signing_region(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    let region = scope.split('/').nth(2)?;
    (!region.is_empty()).then(|| region.to_owned())
}

fn context(headers: &HeaderMap) -> RequestContext {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    RequestContext {
        base_url: format!("http://{host}"),
        region: signing_region(headers).unwrap_or_else(|| "us-east-1".to_owned()),
    }
}

fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, SqsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|error| SqsError::new(ErrorKind::Serialization, error.to_string()))
}

fn render<T: Serialize>(result: Result<T, SqsError>) -> Result<Vec<u8>, SqsError> {
    let value = result?;
    Ok(serde_json::to_vec(&value).expect("results serialize"))
}

async fn dispatch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, SqsError> {
    let b = broker;
    match operation {
        "CreateQueue" => render(b.create_queue(ctx, parse(body)?)),
        "GetQueueUrl" => render(b.get_queue_url(ctx, parse(body)?)),
        "ListQueues" => render(b.list_queues(ctx, parse(body)?)),
        "DeleteQueue" => render(b.delete_queue(parse(body)?)),
        "GetQueueAttributes" => render(b.get_queue_attributes(parse(body)?)),
        "SetQueueAttributes" => render(b.set_queue_attributes(parse(body)?)),
        "PurgeQueue" => render(b.purge_queue(parse(body)?)),
        "TagQueue" => render(b.tag_queue(parse(body)?)),
        "UntagQueue" => render(b.untag_queue(parse(body)?)),
        "ListQueueTags" => render(b.list_queue_tags(parse(body)?)),
        "ListDeadLetterSourceQueues" => render(b.list_dead_letter_source_queues(ctx, parse(body)?)),
        "SendMessage" => render(b.send_message(parse(body)?)),
        "SendMessageBatch" => render(b.send_message_batch(parse(body)?)),
        "ReceiveMessage" => render(b.receive_message(parse(body)?).await),
        "DeleteMessage" => render(b.delete_message(parse(body)?)),
        "DeleteMessageBatch" => render(b.delete_message_batch(parse(body)?)),
        "ChangeMessageVisibility" => render(b.change_message_visibility(parse(body)?)),
        "ChangeMessageVisibilityBatch" => render(b.change_message_visibility_batch(parse(body)?)),
        "StartMessageMoveTask" => render(b.start_message_move_task(parse(body)?)),
        "CancelMessageMoveTask" => render(b.cancel_message_move_task(parse(body)?)),
        "ListMessageMoveTasks" => render(b.list_message_move_tasks(parse(body)?)),
        "AddPermission" | "RemovePermission" => Err(SqsError::new(
            ErrorKind::UnsupportedOperation,
            format!("sqs-local does not implement {operation}."),
        )),
        _ => Err(SqsError::new(
            ErrorKind::UnknownOperation,
            format!("Unknown operation AmazonSQS.{operation}."),
        )),
    }
}

async fn handle(
    State(broker): State<Arc<Broker>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = id::random_uuid();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let result = match target.strip_prefix("AmazonSQS.") {
        Some(operation) if method == Method::POST => {
            let ctx = context(&headers);
            let result = dispatch(&broker, &ctx, operation, &body).await;
            if let Err(error) = &result {
                tracing::debug!(operation, %error, "request failed");
            }
            result
        }
        _ => Err(SqsError::new(
            ErrorKind::UnknownOperation,
            "sqs-local speaks the AWS JSON 1.0 protocol: POST with X-Amz-Target: AmazonSQS.<Operation>.",
        )),
    };
    let mut response = match result {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            json,
        )
            .into_response(),
        Err(error) => error.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}
