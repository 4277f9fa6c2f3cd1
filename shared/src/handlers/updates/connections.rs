//! API Gateway's WebSocket routes `$connect` and `$disconnect` (a Lambda with `lambda_runtime`:
//! `lambda_http` cannot read WebSocket events). `$connect` checks the key as the local socket
//! does and stores the connection for the fan-out; anything but `200` refuses the connection.
//! `$disconnect` forgets it (API Gateway calls it at most once and not always, so the fan-out
//! also forgets a connection that answers `410 Gone`).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use axum::http::{HeaderValue, header};
use serde_json::json;

use super::credentials::{presented_key, resume_after};
use crate::ports::{AccessControl, Admission, LiveConnection, LiveConnections, RequestKind};
use crate::telemetry::error_chain;

/// What `$connect` and `$disconnect` need.
#[derive(Clone, Copy)]
pub struct ConnectionPorts<'a> {
    pub access: &'a dyn AccessControl,
    pub connections: &'a dyn LiveConnections,
}

fn answer(status: i64, message: Option<&str>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    if let Some(message) = message {
        response.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.body = Some(Body::Text(json!({ "message": message }).to_string()));
    }
    response
}

/// Handles one `$connect` or `$disconnect` event (any other route: `404`).
pub async fn handle_connection_event(
    event: ApiGatewayWebsocketProxyRequest,
    ports: ConnectionPorts<'_>,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.clone() else {
        tracing::error!("a WebSocket event without a connection id");
        return answer(400, Some("No connection id"));
    };
    match context.event_type.as_deref() {
        Some("CONNECT") => connect(&event, connection_id, ports).await,
        Some("DISCONNECT") => {
            if let Err(error) = ports.connections.disconnect(&connection_id).await {
                // The fan-out forgets it at its first `410 Gone` instead.
                tracing::warn!(%connection_id, error = %error_chain(&error), "could not forget a connection");
            }
            answer(200, None)
        }
        other => {
            tracing::warn!(%connection_id, event_type = ?other, "unexpected WebSocket event");
            answer(404, Some("Unknown route"))
        }
    }
}

async fn connect(
    event: &ApiGatewayWebsocketProxyRequest,
    connection_id: String,
    ports: ConnectionPorts<'_>,
) -> ApiGatewayProxyResponse {
    let Some((key, as_protocol)) = presented_key(&event.headers) else {
        return answer(401, Some("Missing or invalid API key"));
    };
    let Ok(resume_after) = resume_after(event.query_string_parameters.first("after")) else {
        return answer(
            422,
            Some("Query parameter `after` must be an event id (a non-negative integer)"),
        );
    };
    let client_id = match ports.access.admit(&key, RequestKind::Read).await {
        Ok(Admission::Admitted(client)) => client,
        Ok(Admission::Unauthenticated) => return answer(401, Some("Missing or invalid API key")),
        Ok(_) => return answer(429, Some("Too many requests")),
        Err(error) => {
            tracing::error!(%connection_id, error = %error_chain(&error), "could not check a live-update key");
            return answer(500, Some("Internal server error"));
        }
    };
    let connection = LiveConnection {
        connection_id,
        client_id,
        key_id: key.id().clone(),
        resume_after,
    };
    if let Err(error) = ports.connections.connect(&connection).await {
        tracing::error!(connection_id = %connection.connection_id, error = %error_chain(&error), "could not store a connection");
        return answer(500, Some("Internal server error"));
    }
    tracing::info!(connection_id = %connection.connection_id, client_id = %connection.client_id, ?resume_after, "live connection opened");
    let mut response = answer(200, None);
    if as_protocol {
        response.headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ApiKey;
    use crate::fakes::{FakeAccess, FakeLiveConnections, client};

    fn event(
        event_type: &str,
        headers: &[(&str, String)],
        after: Option<&str>,
    ) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ApiGatewayWebsocketProxyRequest::default();
        event.request_context.connection_id = Some("conn-1".into());
        event.request_context.event_type = Some(event_type.into());
        for (name, value) in headers {
            event.headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        if let Some(after) = after {
            event.query_string_parameters =
                std::collections::HashMap::from([("after".to_owned(), after.to_owned())]).into();
        }
        event
    }

    #[tokio::test]
    async fn a_valid_key_is_connected_and_stored_with_its_client_and_resume_point() {
        let key = ApiKey::generate().unwrap();
        let access = FakeAccess::admitting(&key, &client("acme"));
        let connections = FakeLiveConnections::new();
        let ports = ConnectionPorts {
            access: &access,
            connections: &connections,
        };

        let response = handle_connection_event(
            event(
                "CONNECT",
                &[("authorization", format!("Bearer {}", key.expose()))],
                Some("41"),
            ),
            ports,
        )
        .await;

        assert_eq!(response.status_code, 200);
        let stored = connections.all().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].client_id, client("acme"));
        assert_eq!(stored[0].key_id, *key.id());
        assert_eq!(stored[0].resume_after, Some(41));

        let gone = handle_connection_event(event("DISCONNECT", &[], None), ports).await;
        assert_eq!(gone.status_code, 200);
        assert!(connections.all().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_browser_key_as_subprotocol_is_answered_with_the_subprotocol() {
        let key = ApiKey::generate().unwrap();
        let access = FakeAccess::admitting(&key, &client("acme"));
        let connections = FakeLiveConnections::new();
        let response = handle_connection_event(
            event(
                "CONNECT",
                &[(
                    "sec-websocket-protocol",
                    format!("bearer, {}", key.expose()),
                )],
                None,
            ),
            ConnectionPorts {
                access: &access,
                connections: &connections,
            },
        )
        .await;
        assert_eq!(response.status_code, 200);
        assert_eq!(response.headers["sec-websocket-protocol"], "bearer");
    }

    #[tokio::test]
    async fn no_key_a_bad_key_an_unknown_key_or_a_bad_after_is_refused_and_stores_nothing() {
        let key = ApiKey::generate().unwrap();
        let access = FakeAccess::admitting(&key, &client("acme"));
        let connections = FakeLiveConnections::new();
        let ports = ConnectionPorts {
            access: &access,
            connections: &connections,
        };
        let unknown = ApiKey::generate().unwrap();
        for (headers, after, status) in [
            (vec![], None, 401),
            (vec![("authorization", "Bearer nope".to_owned())], None, 401),
            (
                vec![("authorization", format!("Bearer {}", unknown.expose()))],
                None,
                401,
            ),
            (
                vec![("authorization", format!("Bearer {}", key.expose()))],
                Some("-3"),
                422,
            ),
        ] {
            let response = handle_connection_event(event("CONNECT", &headers, after), ports).await;
            assert_eq!(response.status_code, status, "{headers:?} {after:?}");
        }
        assert!(connections.all().await.unwrap().is_empty());
    }
}
