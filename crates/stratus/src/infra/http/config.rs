//! `[server]`: the listener's address, public URL, connection limits and clocks.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::TlsConfig;
use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The URL clients use to reach this server (links, token issuers). Defaults to
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// A new connection's first request head (request line and headers) must arrive within
    /// this time; a later one within this time of its first byte.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection waiting for its next request is closed after this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request body has this long, plus one second for every `body_min_rate` bytes it has
    /// delivered, to arrive whole (Apache's `RequestReadTimeout body=…,MinRate=…`).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Bytes per second a request body must keep up, on average, once `body_timeout` has passed.
    pub body_min_rate: u64,
    /// A response the client has stopped reading for this long is abandoned and its
    /// connection closed.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// After answering a request whose body it did not read (a refusal), the server goes on
    /// reading and discarding what the client still sends, for up to this long, before it
    /// closes: closing on unread data resets the connection, and the client would lose the
    /// answer (nginx's lingering close). Zero closes at once.
    #[serde(with = "humantime_serde")]
    pub linger_timeout: Duration,
    /// Connections open at once; beyond, a new connection is answered 503 and closed. Lowered
    /// at start-up to what the process's file descriptor limit allows.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client: its /64), at most
    /// `max_connections`; beyond, a new connection is answered 429 and closed. Behind a reverse
    /// proxy, raise it.
    pub max_connections_per_address: usize,
    /// After a shutdown signal, how long in-flight requests may take before their connections
    /// are closed.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Who may read `/metrics` (Prometheus text): `loopback` clients only, `any` client, or
    /// `off`.
    pub metrics: MetricsAccess,
    /// HTTPS for this listener and the S3 endpoint's.
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    Loopback,
    Any,
    Off,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 1024,
            send_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(5),
            max_connections: 4096,
            max_connections_per_address: 256,
            shutdown_grace: Duration::from_secs(10),
            metrics: MetricsAccess::Loopback,
            tls: TlsConfig::default(),
        }
    }
}

impl ServerConfig {
    /// The URL clients reach the server at: `public_url` without its trailing `/`, or
    /// `http(s)://<address>` of the socket the server listens on.
    pub fn public_url(&self, listening: SocketAddr) -> String {
        self.public_url.as_deref().map_or_else(
            || format!("{}://{listening}", self.scheme()),
            |url| url.trim_end_matches('/').to_owned(),
        )
    }

    /// `https` with TLS on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.enabled() { "https" } else { "http" }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("server.public_url", "must start with http:// or https://");
        }
        let positive = [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.idle_timeout", self.idle_timeout),
            ("server.body_timeout", self.body_timeout),
            ("server.send_timeout", self.send_timeout),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, timeout)| timeout.is_zero()) {
            return invalid(key, "must be positive");
        }
        if self.body_min_rate == 0 {
            return invalid("server.body_min_rate", "must be at least 1 byte per second");
        }
        if self.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if self.max_connections_per_address == 0 {
            return invalid("server.max_connections_per_address", "must be at least 1");
        }
        self.tls.validate()
    }
}
