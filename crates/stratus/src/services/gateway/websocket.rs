//! The WebSocket API at `/v1/ws` (API Gateway's WebSocket APIs): a user-pool user connects with
//! an access token — in `Sec-WebSocket-Protocol` (`bearer, <token>`) or `?access_token=`, since
//! browsers cannot set `Authorization` — and receives what is pushed to them as JSON text
//! frames: every change to their todos, and whatever a function posts to the connection
//! ([`Connections::post`], API Gateway's `@connections`; a closed connection is `Gone`, 410).
//!
//! Each connection has a bounded queue: pushing never waits, and a connection whose queue is
//! full — a client that stopped reading — is closed rather than let slow anyone else down. The
//! server pings every `ping_interval`; a connection from which nothing (not even a pong) has
//! arrived for `idle_timeout` is closed, as are frames over `max_frame_bytes`. A user may hold
//! `connections_per_user` connections at once (429 beyond).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::infra::http::Problem;
use crate::services::cognito::authorizer::Authorizer;

/// `[gateway.websocket]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// A connection from which nothing arrived for this long is closed (API Gateway's: 10 min).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How often the server pings; a live client's pong keeps its connection.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Largest frame (and message) a client may send (API Gateway's: 32 KB).
    pub max_frame_bytes: usize,
    /// Connections one user may hold at once.
    pub connections_per_user: usize,
    /// Messages waiting for one connection; a client that lets more pile up is disconnected.
    pub queue: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            ping_interval: Duration::from_secs(30),
            max_frame_bytes: 32 * 1024,
            connections_per_user: 10,
            queue: 64,
        }
    }
}

/// Why a message could not be posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The connection is closed (API Gateway answers 410 Gone).
    #[error("the connection is gone")]
    Gone,
}

#[derive(Debug)]
struct Connection {
    owner: String,
    outgoing: mpsc::Sender<String>,
    /// Closes the connection (its client stopped reading, or the server stops).
    close: CancellationToken,
}

/// The open connections, by id and by owner.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<HashMap<String, Connection>>,
    next_id: AtomicU64,
    config: WebSocketConfig,
    stopping: CancellationToken,
}

impl Connections {
    pub(crate) fn new(config: WebSocketConfig) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            config,
            stopping: CancellationToken::new(),
        }
    }

    /// Sends `data` to one connection, without waiting.
    pub fn post(&self, connection_id: &str, data: String) -> Result<(), PostError> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let connection = open.get(connection_id).ok_or(PostError::Gone)?;
        Self::enqueue(connection, data);
        Ok(())
    }

    /// Sends `data` to every connection of `owner` (the user-pool `sub`); how many.
    pub fn push(&self, owner: &str, data: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sent = 0;
        for connection in open.values().filter(|connection| connection.owner == owner) {
            Self::enqueue(connection, data.to_owned());
            sent += 1;
        }
        sent
    }

    /// A full queue means the client stopped reading: it is disconnected, not waited for.
    fn enqueue(connection: &Connection, data: String) {
        if connection.outgoing.try_send(data).is_err() {
            connection.close.cancel();
        }
    }

    /// The ids of `owner`'s open connections.
    pub fn of(&self, owner: &str) -> Vec<String> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.iter().filter(|(_, connection)| connection.owner == owner).map(|(id, _)| id.clone()).collect()
    }

    /// Closes every connection (the server is stopping).
    pub(crate) fn close_all(&self) {
        self.stopping.cancel();
    }

    /// Registers a connection of `owner`, unless they hold as many as they may.
    fn register(&self, owner: &str) -> Option<(String, mpsc::Receiver<String>, CancellationToken)> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.values().filter(|connection| connection.owner == owner).count()
            >= self.config.connections_per_user
        {
            return None;
        }
        let id = format!("{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed) ^ rand::random::<u64>());
        let (outgoing, incoming) = mpsc::channel(self.config.queue.max(1));
        let close = self.stopping.child_token();
        open.insert(id.clone(), Connection { owner: owner.to_owned(), outgoing, close: close.clone() });
        Some((id, incoming, close))
    }

    fn unregister(&self, id: &str) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

#[derive(Debug, Clone)]
struct WsState {
    connections: Arc<Connections>,
    authorizer: Arc<Authorizer>,
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

pub(crate) fn router(connections: Arc<Connections>, authorizer: Arc<Authorizer>) -> Router {
    Router::new().route("/v1/ws", get(connect)).with_state(WsState { connections, authorizer })
}

/// The access token a browser can send: the second subprotocol after `bearer`, or the query.
fn offered_token(headers: &HeaderMap, query: &TokenQuery) -> Option<String> {
    let protocols = headers.get_all("sec-websocket-protocol").iter().filter_map(|value| value.to_str().ok());
    let offered: Vec<&str> = protocols.flat_map(|value| value.split(',')).map(str::trim).collect();
    match offered.iter().position(|protocol| protocol.eq_ignore_ascii_case("bearer")) {
        Some(at) => offered.get(at + 1).map(|token| (*token).to_owned()),
        None => query.access_token.clone(),
    }
}

async fn connect(
    State(state): State<WsState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(token) = offered_token(&headers, &query) else {
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "An access token is required: subprotocols `bearer, <token>` or `?access_token=`.",
        )
        .into_response();
    };
    let principal = match state.authorizer.authenticate(&token).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(reason = %error, "WebSocket token refused");
            return Problem::new(StatusCode::UNAUTHORIZED, error.to_string()).into_response();
        }
    };
    let Some((id, outgoing, close)) = state.connections.register(&principal.sub) else {
        let limit = state.connections.config.connections_per_user;
        return Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("You have {limit} connections open, the most one user may."),
        )
        .into_response();
    };
    let config = state.connections.config.clone();
    let connections = Arc::clone(&state.connections);
    // The library's hard bound is twice the limit, so that a message just over it is read and
    // answered with 1009 here rather than cut off without a word.
    let upgrade = upgrade
        .max_frame_size(config.max_frame_bytes * 2)
        .max_message_size(config.max_frame_bytes * 2)
        .protocols(["bearer"]);
    tracing::info!(connection = %id, owner = %principal.sub, "WebSocket connected");
    upgrade
        .on_failed_upgrade({
            let (connections, id) = (Arc::clone(&connections), id.clone());
            move |error| {
                tracing::info!(%error, "WebSocket upgrade failed");
                connections.unregister(&id);
            }
        })
        .on_upgrade(move |socket| async move {
            serve(socket, &id, outgoing, close, &config).await;
            connections.unregister(&id);
            tracing::info!(connection = %id, "WebSocket closed");
        })
}

/// How long one frame may take to leave: a client that does not read is not waited for.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await, Ok(Ok(())))
}

/// Runs one connection: what is pushed goes out, pings keep it checked, silence ends it.
async fn serve(
    mut socket: WebSocket,
    id: &str,
    mut outgoing: mpsc::Receiver<String>,
    close: CancellationToken,
    config: &WebSocketConfig,
) {
    let hello = serde_json::json!({ "type": "connected", "connection_id": id }).to_string();
    if !send(&mut socket, Message::Text(hello.into())).await {
        return;
    }
    let mut pings = tokio::time::interval(config.ping_interval);
    pings.tick().await;
    let idle = tokio::time::sleep(config.idle_timeout);
    let mut idle = std::pin::pin!(idle);
    loop {
        tokio::select! {
            () = close.cancelled() => {
                let frame = CloseFrame { code: 1001, reason: "going away".into() };
                send(&mut socket, Message::Close(Some(frame))).await;
                return;
            }
            () = &mut idle => {
                let frame = CloseFrame { code: 1000, reason: "idle".into() };
                send(&mut socket, Message::Close(Some(frame))).await;
                return;
            }
            _ = pings.tick() => {
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    return;
                }
            }
            message = outgoing.recv() => {
                let Some(message) = message else { return };
                if !send(&mut socket, Message::Text(message.into())).await {
                    return;
                }
            }
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(_)) => {
                    send(&mut socket, Message::Close(Some(CloseFrame { code: 1002, reason: "protocol error".into() }))).await;
                    return;
                }
                Some(Ok(Message::Text(text))) if text.len() > config.max_frame_bytes => {
                    send(&mut socket, Message::Close(Some(CloseFrame { code: 1009, reason: "message too big".into() }))).await;
                    return;
                }
                Some(Ok(Message::Binary(bytes))) if bytes.len() > config.max_frame_bytes => {
                    send(&mut socket, Message::Close(Some(CloseFrame { code: 1009, reason: "message too big".into() }))).await;
                    return;
                }
                // Anything else from the client, a pong included, shows it is there.
                Some(Ok(_)) => idle.as_mut().reset(tokio::time::Instant::now() + config.idle_timeout),
            },
        }
    }
}
