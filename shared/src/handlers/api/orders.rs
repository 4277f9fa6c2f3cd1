//! `/orders`: accept an order (store, then enqueue), read one, cancel one, list them, read one's
//! history and its executions at the exchange.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::Value;
use tracing::Instrument;

use super::auth::{Credentials, admit, gate};
use super::order_views::{
    ExecutionList, ExecutionView, OrderEventView, OrderHistory, OrderList, OrderView,
};
use super::{ApiContext, ApiError, MAX_BODY_BYTES};
use crate::domain::{
    FieldError, IdempotencyKey, NewOrder, OrderId, OrderRejection, OrderStatus,
    repeated_attribute_error, repeated_attributes,
};
use crate::ports::{CancelOutcome, CreateOutcome, ListQuery, RequestKind};
use crate::telemetry::error_chain;
use crate::usecases::enqueue::{send_cancel_within, send_within};

const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long a client should wait before asking again to cancel an order a placer holds: an
/// attempt takes about half a second.
const CANCEL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

pub(super) fn router() -> Router<ApiContext> {
    Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{id}", get(get_order).delete(cancel_order))
        .route("/orders/{id}/events", get(order_events))
        .route("/orders/{id}/executions", get(order_executions))
}

/// Accepts an order. `201` means it is committed and its placement guaranteed.
#[utoipa::path(
    post,
    tag = "orders",
    path = "/orders",
    request_body(content = super::order_views::OrderRequestSchema, content_type = "application/json",
                 example = json!({"type": "limit", "side": "buy", "instrument": "US0378331005",
                                  "limit_price": "120.50", "quantity": 10})),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 100, pattern = "^[ -~]+$",
             description = "1 to 100 printable ASCII characters; a retry with the same key and order returns the original order, the same key with another order is a 422. A key is kept for 24 hours from its first use (the operator may configure another retention); after that it names a new order")),
    responses(
        (status = 201, description = "Stored; placement guaranteed", body = OrderView,
         headers(("Location" = String, description = "URL of the order")),
         links(
             ("GetOrder" = (operation_id = "get_order", parameters(("id" = "$response.body#/id")),
                            description = "The order, with its placement progress")),
             ("GetOrderEvents" = (operation_id = "order_events", parameters(("id" = "$response.body#/id")),
                                  description = "The order's history")),
             ("CancelOrder" = (operation_id = "cancel_order", parameters(("id" = "$response.body#/id")),
                               description = "Cancel the order: before placement at once, at the exchange its unfilled rest")),
             ("GetOrderExecutions" = (operation_id = "order_executions", parameters(("id" = "$response.body#/id")),
                                      description = "The order's fills at the exchange")),
         )),
        (status = 400, description = "Body is not JSON or not an object", body = super::error::ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = super::error::ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = super::error::ErrorBody),
        (status = 422, description = "Invalid order (every problem listed, e.g. an `expires_at` in the past or more than 30 days ahead), or idempotency key reused with another order", body = super::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = super::error::ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Over the client's request rate or open-order limit", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Nothing was stored", body = super::error::ErrorBody),
    )
)]
pub(super) async fn create_order(
    State(context): State<ApiContext>,
    Extension(Credentials(api_key)): Extension<Credentials>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match parse_order_request(&context, &headers, body).await {
        Ok((order, key, expires_at)) => {
            place_order(&context, &api_key, &order, key.as_ref(), expires_at).await
        }
        Err(invalid) => {
            // A refused request is refused for its key or limits first, then for its content.
            admit(&context, &api_key, RequestKind::PlaceOrder).await?;
            Err(invalid)
        }
    }
}

type OrderRequest = (NewOrder, Option<IdempotencyKey>, time::OffsetDateTime);

/// The order, its idempotency key and its expiry from the request, or why not (nothing stored).
async fn parse_order_request(
    context: &ApiContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<OrderRequest, ApiError> {
    let (json, repeated) = read_json_body(headers, body).await?;
    let key = idempotency_key(headers);
    let order = NewOrder::parse_json(&json);
    // An attribute given twice is ambiguous (the parser keeps the last value, a gateway or a
    // log may read the first): refused, with whatever else is wrong.
    let repeated: Vec<FieldError> = repeated
        .iter()
        .map(|field| repeated_attribute_error(field))
        .collect();
    let order = match (order, key) {
        (Ok(order), Ok(key)) if repeated.is_empty() => (order, key),
        (Err(OrderRejection::NotAnObject), _) => return Err(ApiError::NotAnObject),
        (order, key) => {
            let mut errors = repeated;
            if let Err(OrderRejection::Invalid(invalid)) = order {
                errors.extend(invalid);
            }
            errors.extend(key.err());
            return Err(ApiError::invalid(errors));
        }
    };
    let (order, key) = order;
    let expires_at = context
        .expiry
        .expires_at(&order, time::OffsetDateTime::now_utc())
        .map_err(|error| ApiError::invalid(vec![error]))?;
    Ok((order, key, expires_at))
}

/// Admits and stores the order in one round trip, then sends it for placement.
async fn place_order(
    context: &ApiContext,
    api_key: &crate::auth::ApiKey,
    order: &NewOrder,
    key: Option<&IdempotencyKey>,
    expires_at: time::OffsetDateTime,
) -> Result<Response, ApiError> {
    let (_, outcome) = gate(
        context
            .orders
            .place(api_key, order, expires_at, key)
            .await?,
        api_key,
    )?;
    let (stored, replayed) = match outcome {
        CreateOutcome::Created(stored) => {
            crate::telemetry::metrics::order_accepted();
            (stored, false)
        }
        CreateOutcome::Replayed(stored) => (stored, true),
        CreateOutcome::KeyReused => {
            return Err(ApiError::Unprocessable {
                message: "Idempotency-Key was already used with a different order".into(),
                errors: vec![FieldError::new(
                    "Idempotency-Key",
                    "was already used with a different order",
                )],
            });
        }
    };

    let span = tracing::info_span!("order", order_id = %stored.id);
    async {
        if replayed {
            tracing::info!("idempotent replay; returning the original order");
            return;
        }
        // The commit above is the point of no return. The send below is one bounded attempt:
        // if it fails the order stays unmarked and the sweeper sends it. The mark is written
        // in the background: it only saves the sweeper work.
        let sent = send_within(context.queue.as_ref(), &stored, context.enqueue_timeout).await;
        match sent {
            Ok(()) => {
                context.enqueued_marks.record(&stored);
                tracing::info!("order accepted and enqueued");
            }
            Err(error) => tracing::warn!(
                error = %error_chain(&error),
                "order accepted; not enqueued, the sweeper will send it"
            ),
        }
    }
    .instrument(span)
    .await;

    let location = HeaderValue::from_str(&format!("/orders/{}", stored.id))
        .expect("a UUID path is a valid header value");
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(OrderView::from(&stored)),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Reads the body as JSON: 415 unless declared JSON, 413 past the limit, 400 unless valid JSON.
/// With it, the attributes the body's object names more than once.
async fn read_json_body(headers: &HeaderMap, body: Body) -> Result<(Value, Vec<String>), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))?;
    let json =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok((json, repeated_attributes(&bytes)))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, FieldError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        FieldError::new(
            "Idempotency-Key",
            "must contain printable ASCII characters only",
        )
    })?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|message| FieldError::new("Idempotency-Key", message))
}

/// One order with its placement progress.
#[utoipa::path(
    get,
    tag = "orders",
    path = "/orders/{id}",
    params(("id" = String, Path, format = Uuid, description = "Order id (UUID); anything else is a 404")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order, or another client's", body = super::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = super::error::ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Over the client's request rate or open-order limit", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
    )
)]
pub(super) async fn get_order(
    State(context): State<ApiContext>,
    Extension(Credentials(key)): Extension<Credentials>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    const NOT_FOUND: ApiError = ApiError::NotFound("Order not found");
    let Ok(id) = id.parse::<OrderId>() else {
        admit(&context, &key, RequestKind::Read).await?;
        return Err(NOT_FOUND);
    };
    let (_, order) = gate(context.orders.order(&key, id).await?, &key)?;
    Ok(Json(OrderView::from(&order.ok_or(NOT_FOUND)?)))
}

/// An order's audit trail: each transition with its reason, attempt and time, oldest first.
#[utoipa::path(
    get,
    tag = "orders",
    path = "/orders/{id}/events",
    params(("id" = String, Path, format = Uuid, description = "Order id (UUID); anything else is a 404")),
    responses(
        (status = 200, description = "The order's transitions, oldest first", body = OrderHistory),
        (status = 404, description = "No such order, or another client's", body = super::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = super::error::ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Over the client's request rate", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
    )
)]
pub(super) async fn order_events(
    State(context): State<ApiContext>,
    Extension(Credentials(key)): Extension<Credentials>,
    Path(id): Path<String>,
) -> Result<Json<OrderHistory>, ApiError> {
    const NOT_FOUND: ApiError = ApiError::NotFound("Order not found");
    let Ok(id) = id.parse::<OrderId>() else {
        admit(&context, &key, RequestKind::Read).await?;
        return Err(NOT_FOUND);
    };
    let (_, events) = gate(context.orders.order_events(&key, id).await?, &key)?;
    Ok(Json(OrderHistory {
        order_id: id.as_uuid(),
        events: events
            .ok_or(NOT_FOUND)?
            .iter()
            .map(OrderEventView::from)
            .collect(),
    }))
}

/// The execution reports the exchange sent for an order and that were applied to it, in the
/// exchange's order: fills and partial fills (quantity and price), and how it ended there
/// (`canceled`, `expired`, or a refused cancel). The fills add up to the order's
/// `filled_quantity`.
#[utoipa::path(
    get,
    tag = "orders",
    path = "/orders/{id}/executions",
    params(("id" = String, Path, format = Uuid, description = "Order id (UUID); anything else is a 404")),
    responses(
        (status = 200, description = "The order's executions, oldest first (empty before the first)", body = ExecutionList),
        (status = 404, description = "No such order, or another client's", body = super::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = super::error::ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Over the client's request rate", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
    )
)]
pub(super) async fn order_executions(
    State(context): State<ApiContext>,
    Extension(Credentials(key)): Extension<Credentials>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionList>, ApiError> {
    const NOT_FOUND: ApiError = ApiError::NotFound("Order not found");
    let Ok(id) = id.parse::<OrderId>() else {
        admit(&context, &key, RequestKind::Read).await?;
        return Err(NOT_FOUND);
    };
    let (_, executions) = gate(context.orders.order_executions(&key, id).await?, &key)?;
    Ok(Json(ExecutionList {
        order_id: id.as_uuid(),
        executions: executions
            .ok_or(NOT_FOUND)?
            .iter()
            .map(ExecutionView::from)
            .collect(),
    }))
}

/// Cancels an order. Before any placer has claimed it, at once: `canceled`, never sent. Once it
/// is working at the exchange (`placed`, `partially_filled`), the cancel goes to the exchange:
/// `202` with `pending_cancel`, and the exchange's report ends it `canceled` (its unfilled rest;
/// `filled_quantity` keeps what traded) or `filled` (the fill won). Idempotent: asking again
/// answers the same (and sends the cancel again while it is unanswered).
#[utoipa::path(
    delete,
    tag = "orders",
    path = "/orders/{id}",
    params(("id" = String, Path, format = Uuid, description = "Order id (UUID); anything else is a 404")),
    responses(
        (status = 200, description = "Canceled: it was `pending` (or already `canceled`) and will never be sent to the exchange (or the exchange canceled it before)", body = OrderView),
        (status = 202, description = "Cancel sent to the exchange: the order was working there (`placed`, `partially_filled`) and is `pending_cancel` until the exchange answers; it ends `canceled` or, if the fill won, `filled`", body = OrderView),
        (status = 404, description = "No such order, or another client's", body = super::error::ErrorBody),
        (status = 409, description = "Too late, or not now: the order is being placed right now (`placing`; with `Retry-After`, ask again), or it is final (`filled`, `rejected`, `failed`, `expired`; the message names the status)", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Only while the order is being placed: seconds to wait before asking again"))),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = super::error::ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Over the client's request rate", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Internal error; nothing was changed", body = super::error::ErrorBody),
    )
)]
pub(super) async fn cancel_order(
    State(context): State<ApiContext>,
    Extension(Credentials(key)): Extension<Credentials>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    const NOT_FOUND: ApiError = ApiError::NotFound("Order not found");
    // A cancel is several statements (see `OrderStore::cancel_order`): admitted first.
    let client = admit(&context, &key, RequestKind::Read).await?;
    let id: OrderId = id.parse().map_err(|_| NOT_FOUND)?;
    match context.store.cancel_order(&client, id).await? {
        CancelOutcome::Canceled(order) => {
            crate::telemetry::metrics::order_canceled();
            tracing::info!(order_id = %id, "order canceled by the client");
            Ok((StatusCode::OK, Json(OrderView::from(&order))))
        }
        CancelOutcome::AlreadyCanceled(order) => {
            Ok((StatusCode::OK, Json(OrderView::from(&order))))
        }
        CancelOutcome::CancelRequested(order) | CancelOutcome::CancelPending(order) => {
            // The request is committed (`pending_cancel`): a send that fails here is sent again
            // by the sweeper, so the answer does not depend on it.
            match send_cancel_within(context.queue.as_ref(), &order, context.enqueue_timeout).await
            {
                Ok(()) => tracing::info!(order_id = %id, "cancel sent to the exchange"),
                Err(error) => tracing::warn!(
                    order_id = %id,
                    error = %error_chain(&error),
                    "cancel requested but not sent; the sweeper sends it"
                ),
            }
            Ok((StatusCode::ACCEPTED, Json(OrderView::from(&order))))
        }
        CancelOutcome::BeingPlaced(order) => {
            tracing::info!(order_id = %id, status = %order.status, "cancel refused: the order is being placed");
            Err(ApiError::Conflict {
                message: "Order is being placed and cannot be canceled right now; \
                          ask again in a moment"
                    .into(),
                retry_after: Some(CANCEL_RETRY_AFTER),
            })
        }
        CancelOutcome::Final(order) => Err(ApiError::Conflict {
            message: format!(
                "Order is already `{}` and can no longer be canceled",
                order.status
            ),
            retry_after: None,
        }),
        CancelOutcome::NotFound => Err(NOT_FOUND),
    }
}

/// Orders, newest first, a page at a time.
#[utoipa::path(
    get,
    tag = "orders",
    path = "/orders",
    params(
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, format = Uuid, description = "`next_cursor` of the previous page (an order id)"),
    ),
    responses(
        (status = 200, description = "A page of orders", body = OrderList),
        (status = 422, description = "Invalid or unknown query parameter (every problem listed)", body = super::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown or revoked API key", body = super::error::ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Over the client's request rate or open-order limit", body = super::error::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
    )
)]
pub(super) async fn list_orders(
    State(context): State<ApiContext>,
    Extension(Credentials(key)): Extension<Credentials>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<OrderList>, ApiError> {
    let query = query
        .map_err(|e| ApiError::Unprocessable {
            message: "Invalid query string".into(),
            errors: vec![FieldError::new("query", e.body_text())],
        })
        .and_then(|Query(params)| {
            list_query(&params).map_err(|errors| ApiError::Unprocessable {
                message: "Invalid query parameters".into(),
                errors,
            })
        });
    let query = match query {
        Ok(query) => query,
        Err(invalid) => {
            admit(&context, &key, RequestKind::Read).await?;
            return Err(invalid);
        }
    };
    let (_, page) = gate(context.orders.orders(&key, &query).await?, &key)?;
    Ok(Json(OrderList {
        orders: page.orders.iter().map(OrderView::from).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}

fn list_query(params: &HashMap<String, String>) -> Result<ListQuery, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut unknown: Vec<&String> = params
        .keys()
        .filter(|k| !["status", "limit", "cursor"].contains(&k.as_str()))
        .collect();
    unknown.sort();
    for key in unknown {
        errors.push(FieldError::new(
            key.as_str(),
            format!("Unknown query parameter `{key}`"),
        ));
    }
    let status = match params.get("status").map(|s| s.parse::<OrderStatus>()) {
        None => None,
        Some(Ok(status)) => Some(status),
        Some(Err(message)) => {
            errors.push(FieldError::new(
                "status",
                format!("Parameter `status` {message}"),
            ));
            None
        }
    };
    let limit = match params.get("limit").map(|s| s.parse::<u32>()) {
        None => DEFAULT_PAGE,
        Some(Ok(limit)) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => {
            errors.push(FieldError::new(
                "limit",
                format!("Parameter `limit` must be an integer from 1 to {MAX_PAGE}"),
            ));
            DEFAULT_PAGE
        }
    };
    let before = match params.get("cursor").map(|s| s.parse::<OrderId>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                "cursor",
                "Parameter `cursor` must be a `next_cursor` value from a previous page",
            ));
            None
        }
    };
    if errors.is_empty() {
        Ok(ListQuery {
            status,
            before,
            limit,
        })
    } else {
        Err(errors)
    }
}
