//! One live-update connection: `GET /updates` upgraded to a WebSocket.
//!
//! The key is checked before the upgrade (`Authorization: Bearer <key>`; a browser, which cannot
//! set that header on a WebSocket, sends it as the subprotocol pair `bearer, <key>` instead).
//! `?after=<event_id>` resumes after that event: the session first sends every later event of
//! its client from the database, then the live ones — skipping what it already sent, so each
//! event arrives once and in order. The key is checked again every `recheck`; a revoked key's
//! connection is closed with code 4401.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::credentials::{presented_key, resume_after};
use super::hub::UpdateHub;
use super::messages::UpdateMessage;
use crate::auth::ApiKey;
use crate::domain::ClientId;
use crate::ports::{AccessControl, Admission, OrderUpdate, OrderUpdateStore, RequestKind};
use crate::telemetry::error_chain;

/// Close code for a key that was revoked while connected (4000–4999: the application's own).
pub const CLOSE_KEY_REVOKED: u16 = 4401;
/// Events read per catch-up statement.
const CATCH_UP_PAGE: u32 = 500;

/// What every session can reach.
#[derive(Clone)]
pub struct UpdatesContext {
    pub access: Arc<dyn AccessControl>,
    pub store: Arc<dyn OrderUpdateStore>,
    pub hub: Arc<UpdateHub>,
    /// How often a connected key is checked again.
    pub recheck: Duration,
}

/// `GET /updates` (the WebSocket) on its own router: the local runner serves it on its own port.
pub fn router(context: UpdatesContext) -> Router {
    Router::new()
        .route("/updates", get(connect))
        .with_state(context)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "message": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

async fn connect(
    State(context): State<UpdatesContext>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some((key, as_protocol)) = presented_key(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "Missing or invalid API key");
    };
    let after = match resume_after(query.get("after").map(String::as_str)) {
        Ok(after) => after,
        Err(_) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Query parameter `after` must be an event id (a non-negative integer)",
            );
        }
    };
    let client = match context.access.admit(&key, RequestKind::Read).await {
        Ok(Admission::Admitted(client)) => client,
        Ok(Admission::RateLimited { .. } | Admission::TooManyOpenOrders { .. }) => {
            return refuse(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        }
        Ok(Admission::Unauthenticated) => {
            return refuse(StatusCode::UNAUTHORIZED, "Missing or invalid API key");
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not check a live-update key");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
    };
    let upgrade = if as_protocol {
        upgrade.protocols(["bearer"])
    } else {
        upgrade
    };
    upgrade.on_upgrade(move |socket| async move {
        let span = tracing::info_span!("live_updates", client_id = %client, after = ?after);
        tracing::Instrument::instrument(
            Session {
                context,
                client,
                key,
                last: 0,
            }
            .run(socket, after),
            span,
        )
        .await;
    })
}

/// Why a session ended.
enum End {
    /// The client went away (or the socket broke).
    Gone,
    /// The key was revoked.
    Revoked,
    /// The database could not be read for a catch-up: the client reconnects and resumes.
    StoreDown,
}

struct Session {
    context: UpdatesContext,
    client: ClientId,
    key: ApiKey,
    /// The last event id sent.
    last: i64,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket, after: Option<i64>) {
        // Subscribe before reading the horizon: nothing falls between the catch-up and the live
        // events (what both carry is sent once, by id).
        let mut live = self.context.hub.subscribe();
        self.last = match after {
            Some(after) => after,
            None => self.context.hub.horizon(),
        };
        let mut end = if after.is_some() {
            self.catch_up(&mut socket).await.err()
        } else {
            None
        };
        let mut recheck = tokio::time::interval(self.context.recheck);
        recheck.tick().await;
        while end.is_none() {
            end = tokio::select! {
                event = live.recv() => match event {
                    Ok(update) => self.send_if_ours(&mut socket, &update).await.err(),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "fell behind the live stream; catching up");
                        self.catch_up(&mut socket).await.err()
                    }
                    Err(RecvError::Closed) => Some(End::Gone),
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Some(End::Gone),
                    // Pings are answered by the socket itself; anything else is ignored.
                    Some(Ok(_)) => None,
                },
                _ = recheck.tick() => self.key_still_valid().await.err(),
            };
        }
        match end {
            Some(End::Revoked) => {
                tracing::info!("API key revoked: closing the live-update connection");
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: CLOSE_KEY_REVOKED,
                        reason: "API key revoked".into(),
                    })))
                    .await;
            }
            Some(End::StoreDown) => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1011,
                        reason: "temporarily unavailable; reconnect with ?after".into(),
                    })))
                    .await;
            }
            _ => {}
        }
    }

    /// Sends every event of the client after `last` up to the hub's horizon, from the database.
    async fn catch_up(&mut self, socket: &mut WebSocket) -> Result<(), End> {
        let up_to = self.context.hub.horizon();
        while self.last < up_to {
            let updates = self
                .context
                .store
                .client_updates(&self.client, self.last, up_to, CATCH_UP_PAGE)
                .await
                .map_err(|error| {
                    tracing::warn!(error = %error_chain(&error), "catch-up read failed");
                    End::StoreDown
                })?;
            if updates.is_empty() {
                self.last = up_to;
                break;
            }
            for update in &updates {
                self.send_if_ours(socket, update).await?;
            }
        }
        Ok(())
    }

    async fn send_if_ours(
        &mut self,
        socket: &mut WebSocket,
        update: &OrderUpdate,
    ) -> Result<(), End> {
        if update.client_id != self.client || update.event_id <= self.last {
            return Ok(());
        }
        let text = UpdateMessage::from(update).to_json();
        socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| End::Gone)?;
        self.last = update.event_id;
        Ok(())
    }

    /// A revoked key ends the session; an unreadable store or a rate limit does not.
    async fn key_still_valid(&self) -> Result<(), End> {
        match self
            .context
            .access
            .admit(&self.key, RequestKind::Read)
            .await
        {
            Ok(Admission::Unauthenticated) => Err(End::Revoked),
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "could not check the key again");
                Ok(())
            }
        }
    }
}
