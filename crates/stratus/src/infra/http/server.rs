//! The listener: takes connections within the connection limits and serves each over HTTP/1.1
//! with hyper, under the server's clocks — the head timer (`header_read_timeout`,
//! `idle_timeout`), the body pace (`body_timeout`, `body_min_rate`) and `send_timeout`. A slow
//! client costs a connection for a bounded time and nothing else: function slots are taken only
//! once a request has arrived (see `functions::slots`).
//!
//! With TLS (`tls`), a connection whose first byte is a TLS handshake is served over rustls
//! (the handshake within `header_read_timeout`) and every response carries HSTS; any other
//! connection gets plain HTTP answered with a permanent redirect to `https://`. HTTP/2 is not
//! offered (ALPN says `http/1.1`): its streams would need clocks of their own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::admission::{Admission, Admitted};
use super::body::{BodyPace, Paced};
use super::connection::Watched;
use super::metrics::{HttpMetrics, Refusal};
use crate::infra::http::ServerConfig;

/// hyper's read buffer. A request head must fit in it (Node.js's default limit; larger heads get
/// 431), and a body is read in pieces of at most this size, so an endpoint refusing a body has
/// read at most its limit, one piece, and the one piece hyper reads when it gives up the rest.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// File descriptors kept for the database, buckets and the blocking pool when the connection
/// limit is fitted to the process's descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 256;

#[derive(Debug)]
pub(crate) struct Listener {
    socket: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    admission: std::sync::Arc<Admission>,
    metrics: HttpMetrics,
    tls: Option<Tls>,
}

/// What a TLS listener serves with.
#[derive(Clone)]
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    hsts: axum::http::HeaderValue,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("hsts", &self.hsts).finish_non_exhaustive()
    }
}

impl Listener {
    /// Serves connections accepted by `socket` under `config`'s limits; the connection limit is
    /// lowered to what the file descriptor limit allows (raised first as far as permitted).
    pub(crate) fn new(socket: TcpListener, config: &ServerConfig, metrics: HttpMetrics) -> io::Result<Self> {
        let local_addr = socket.local_addr()?;
        let max_connections = fit_to_descriptors(config.max_connections);
        let per_client = config.max_connections_per_address.min(max_connections);
        Ok(Self {
            socket,
            local_addr,
            config: config.clone(),
            admission: Admission::new(max_connections, per_client),
            metrics,
            tls: None,
        })
    }

    /// Serves HTTPS with `tls` (and redirects plain HTTP to it).
    pub(crate) fn with_tls(mut self, tls: std::sync::Arc<rustls::ServerConfig>) -> Self {
        let max_age = self.config.tls.hsts_max_age.as_secs();
        let hsts = axum::http::HeaderValue::try_from(format!("max-age={max_age}"))
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("max-age=31536000"));
        self.tls = Some(Tls { acceptor: tokio_rustls::TlsAcceptor::from(tls), hsts });
        self
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The live connection counts, for metrics and the pressure log.
    pub(crate) fn admission(&self) -> &std::sync::Arc<Admission> {
        &self.admission
    }

    /// Serves `app` until `shutdown` completes; then stops accepting, lets requests in flight
    /// finish for up to `shutdown_grace`, and closes what remains.
    pub(crate) async fn serve(self, app: Router, shutdown: impl Future<Output = ()>) {
        let connections = TaskTracker::new();
        let (closing, abort) = (CancellationToken::new(), CancellationToken::new());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.max_buf_size(READ_BUFFER_BYTES).header_read_timeout(self.config.header_read_timeout);
        let refusals = RefusalResponses::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut accept_errors = AcceptErrors::default();
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_errors.handle(&error).await;
                    continue;
                }
            };
            let admitted = match self.admission.admit(peer.ip()) {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    self.metrics.refused(refusal);
                    refusals.send(&socket, refusal);
                    continue;
                }
            };
            let connection = Connection {
                socket,
                peer,
                admitted,
                http: http.clone(),
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                tls: self.tls.clone(),
            };
            connections.spawn(connection.serve(app.clone(), closing.clone(), abort.clone()));
        }
        drop(self.socket);
        closing.cancel();
        connections.close();
        if tokio::time::timeout(self.config.shutdown_grace, connections.wait()).await.is_err() {
            tracing::warn!(
                connections = connections.len(),
                grace = ?self.config.shutdown_grace,
                "closing connections whose requests did not finish within the shutdown grace"
            );
            abort.cancel();
            connections.wait().await;
        }
    }
}

struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    http: hyper::server::conn::http1::Builder,
    config: ServerConfig,
    metrics: HttpMetrics,
    tls: Option<Tls>,
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

impl Connection {
    async fn serve(self, app: Router, closing: CancellationToken, abort: CancellationToken) {
        // `_admitted` counts the connection until it ends.
        let Self { socket, peer, admitted: _admitted, http, config, metrics, tls } = self;
        // Responses go out as soon as they are written, not when Nagle's algorithm allows.
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let header_timeout = config.header_read_timeout;
        let mut first = [0u8; 1];
        let peeked = match &tls {
            Some(_) => tokio::time::timeout(header_timeout, socket.peek(&mut first)).await,
            None => Ok(Ok(0)),
        };
        let io = Watched::new(socket, config.send_timeout, config.linger_timeout, metrics.clone());
        match (tls, peeked) {
            (None, _) => Self::drive(io, peer, http, &config, metrics, app, None, closing, abort).await,
            (Some(tls), Ok(Ok(1))) if first[0] == TLS_HANDSHAKE => {
                let timer = io.head_timer(config.header_read_timeout, config.idle_timeout);
                let unread = io.unread_body();
                match tokio::time::timeout(header_timeout, tls.acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        let hsts = Some(tls.hsts);
                        Self::drive_with(
                            stream, timer, unread, peer, http, &config, metrics, app, hsts, closing, abort,
                        )
                        .await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => metrics.timed_out(super::metrics::Timeout::Header),
                }
            }
            (Some(_), Ok(Ok(1))) => {
                let redirect = Router::new().fallback(redirect_to_https);
                Self::drive(io, peer, http, &config, metrics, redirect, None, closing, abort).await;
            }
            // The client closed, or said nothing in time.
            (Some(_), Ok(_)) => {}
            (Some(_), Err(_)) => metrics.timed_out(super::metrics::Timeout::Header),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one connection's parts, taken apart once")]
    async fn drive(
        io: Watched<TcpStream>,
        peer: SocketAddr,
        http: hyper::server::conn::http1::Builder,
        config: &ServerConfig,
        metrics: HttpMetrics,
        app: Router,
        hsts: Option<axum::http::HeaderValue>,
        closing: CancellationToken,
        abort: CancellationToken,
    ) {
        let timer = io.head_timer(config.header_read_timeout, config.idle_timeout);
        let unread = io.unread_body();
        Self::drive_with(io, timer, unread, peer, http, config, metrics, app, hsts, closing, abort).await;
    }

    /// Serves HTTP/1.1 over `io` until the client leaves, the connection times out, or the
    /// listener closes.
    #[expect(clippy::too_many_arguments, reason = "one connection's parts, taken apart once")]
    async fn drive_with<I>(
        io: I,
        timer: super::connection::HeadTimer,
        unread_body: super::connection::UnreadBody,
        peer: SocketAddr,
        mut http: hyper::server::conn::http1::Builder,
        config: &ServerConfig,
        metrics: HttpMetrics,
        app: Router,
        hsts: Option<axum::http::HeaderValue>,
        closing: CancellationToken,
        abort: CancellationToken,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        http.timer(timer);
        let pace = BodyPace { initial: config.body_timeout, min_rate: config.body_min_rate };
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request =
                request.map(|body| Body::new(Paced::new(body, pace, unread_body.clone(), metrics.clone())));
            request.extensions_mut().insert(ConnectInfo(peer));
            let hsts = hsts.clone();
            let response = app.clone().oneshot(request);
            async move {
                let mut response = response.await?;
                if let Some(hsts) = hsts {
                    response.headers_mut().insert(axum::http::header::STRICT_TRANSPORT_SECURITY, hsts);
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = http.serve_connection(TokioIo::new(io), service).with_upgrades();
        let mut connection = std::pin::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            () = closing.cancelled() => {
                // Finishes the request in flight, if any, then closes.
                connection.as_mut().graceful_shutdown();
                tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = abort.cancelled() => return,
                }
            }
        };
        // Timeouts and clients that hang up are routine; they are counted, not logged.
        if let Err(error) = ended {
            tracing::trace!(%peer, %error, "connection ended");
        }
    }
}

/// Plain HTTP on a TLS listener: the same address over `https://`.
async fn redirect_to_https(request: axum::http::Request<Body>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Some(host) = request.headers().get(axum::http::header::HOST).and_then(|host| host.to_str().ok())
    else {
        return (axum::http::StatusCode::BAD_REQUEST, "This server speaks HTTPS; the request named no host.")
            .into_response();
    };
    let path = request.uri().path_and_query().map_or("/", axum::http::uri::PathAndQuery::as_str);
    let location = format!("https://{host}{path}");
    (axum::http::StatusCode::PERMANENT_REDIRECT, [(axum::http::header::LOCATION, location)]).into_response()
}

/// The answers to a refused connection: a complete HTTP response, written without waiting.
struct RefusalResponses {
    per_address: Vec<u8>,
    total: Vec<u8>,
}

impl RefusalResponses {
    fn new() -> Self {
        Self {
            per_address: refusal_response(
                429,
                "Too Many Requests",
                "Too many connections from this address.",
            ),
            total: refusal_response(503, "Service Unavailable", "The server has too many connections open."),
        }
    }

    /// Best effort, never blocking: a client too slow to take a few hundred bytes gets nothing.
    fn send(&self, socket: &TcpStream, refusal: Refusal) {
        let response = match refusal {
            Refusal::PerAddress => &self.per_address,
            Refusal::Total => &self.total,
        };
        let _ = socket.try_write(response);
        // What the client already sent is read, so that closing sends a FIN, not a reset that
        // could discard the answer before the client reads it.
        let mut sink = [0u8; 4096];
        let _ = socket.try_read(&mut sink);
    }
}

fn refusal_response(status: u16, title: &str, detail: &str) -> Vec<u8> {
    let body =
        serde_json::json!({ "type": "about:blank", "title": title, "status": status, "detail": detail })
            .to_string();
    format!(
        "HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accept failures: a client that gave up is nothing; running out of descriptors is logged
/// (at most every 10 s) and waited out briefly instead of spinning.
#[derive(Default)]
struct AcceptErrors {
    logged: Option<Instant>,
}

impl AcceptErrors {
    async fn handle(&mut self, error: &io::Error) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
        if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted) {
            return;
        }
        if self.logged.is_none_or(|logged| logged.elapsed() >= Duration::from_secs(10)) {
            self.logged = Some(Instant::now());
            tracing::error!(%error, "cannot accept connections");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `wanted`, or fewer if the descriptor limit (raised to its hard limit first) cannot hold
/// that many connections besides what the rest of the process needs.
fn fit_to_descriptors(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::debug!(%error, "cannot read the file descriptor limit");
            return wanted;
        }
    };
    let available = usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX).max(1);
    if wanted > available {
        tracing::warn!(
            wanted,
            available,
            descriptor_limit = limit,
            "server.max_connections lowered to fit the file descriptor limit"
        );
        return available;
    }
    wanted
}
