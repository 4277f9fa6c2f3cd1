//! The exchange's execution feed over a WebSocket (the `ExecutionFeed` port): connects to
//! `…/feed?after=N` (`ws://` locally, `wss://` in AWS: rustls, web PKI roots) with the
//! exchange's API key and reads one report per text message with the
//! wire format of `execution_feed`. Pings are answered by the WebSocket library as it reads; a
//! connection silent for longer than `silence_timeout` (the exchange pings idle connections every
//! 10 s) counts as dropped, so a half-open TCP connection cannot stall the ingester.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::execution_feed::{
    CLOSE_AHEAD_OF_FEED, CLOSE_NOT_KEPT, RESUME_AFTER_PARAM, parse_report,
};
use crate::domain::ExecutionReport;
use crate::ports::{ExecutionFeed, FeedConnection, FeedError};

/// Where the feed is and how to talk to it.
#[derive(Clone)]
pub struct FeedSocketConfig {
    /// `ws://host:port/feed` (the query is added per connection).
    pub url: String,
    /// Sent as `x-api-key` when set.
    pub api_key: Option<String>,
    /// The connect and handshake bound.
    pub connect_timeout: Duration,
    /// No message (not even a ping) for this long: the connection is dead.
    pub silence_timeout: Duration,
}

impl std::fmt::Debug for FeedSocketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSocketConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("silence_timeout", &self.silence_timeout)
            .finish()
    }
}

/// The WebSocket feed client.
#[derive(Clone)]
pub struct FeedSocket {
    config: FeedSocketConfig,
    /// `wss://`: TLS with the web PKI roots, certificate and host name verified.
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for FeedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSocket")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FeedSocket {
    pub fn new(config: FeedSocketConfig) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            config,
            tls: Arc::new(tls),
        }
    }
}

struct SocketConnection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    silence_timeout: Duration,
}

fn boxed(error: impl std::error::Error + Send + Sync + 'static) -> FeedError {
    FeedError::Connect(Box::new(error))
}

#[async_trait]
impl ExecutionFeed for FeedSocket {
    async fn connect(&self, after: u64) -> Result<Box<dyn FeedConnection>, FeedError> {
        let separator = if self.config.url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{separator}{RESUME_AFTER_PARAM}={after}", self.config.url);
        let mut request = url.into_client_request().map_err(boxed)?;
        if let Some(key) = &self.config.api_key {
            let value = HeaderValue::from_str(key).map_err(boxed)?;
            request.headers_mut().insert("x-api-key", value);
        }
        let (socket, _) = tokio::time::timeout(
            self.config.connect_timeout,
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                None,
                false,
                Some(Connector::Rustls(Arc::clone(&self.tls))),
            ),
        )
        .await
        .map_err(|_| FeedError::Connect("connect timed out".into()))?
        .map_err(boxed)?;
        Ok(Box::new(SocketConnection {
            socket,
            silence_timeout: self.config.silence_timeout,
        }))
    }
}

#[async_trait]
impl FeedConnection for SocketConnection {
    async fn next_report(&mut self) -> Option<Result<ExecutionReport, FeedError>> {
        loop {
            let message = match tokio::time::timeout(self.silence_timeout, self.socket.next()).await
            {
                Err(_) => {
                    return Some(Err(FeedError::Disconnected(format!(
                        "no message for {} s",
                        self.silence_timeout.as_secs()
                    ))));
                }
                Ok(message) => message,
            };
            return match message {
                Some(Ok(Message::Text(text))) => Some(
                    parse_report(text.as_str()).map_err(|e| FeedError::Malformed(e.to_string())),
                ),
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(frame) if u16::from(frame.code) == CLOSE_NOT_KEPT => {
                        Some(Err(FeedError::NotKept(frame.reason.to_string())))
                    }
                    Some(frame) if u16::from(frame.code) == CLOSE_AHEAD_OF_FEED => {
                        Some(Err(FeedError::AheadOfFeed(frame.reason.to_string())))
                    }
                    Some(frame) => Some(Err(FeedError::Disconnected(format!(
                        "closed with {}: {}",
                        u16::from(frame.code),
                        frame.reason
                    )))),
                    None => None,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => Some(Err(FeedError::Malformed(
                    "a binary message on the feed".into(),
                ))),
                Some(Err(error)) => Some(Err(FeedError::Disconnected(error.to_string()))),
                None => Some(Err(FeedError::Disconnected(
                    "the connection ended without a close frame".into(),
                ))),
            };
        }
    }
}
