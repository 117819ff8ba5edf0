//! What the listener counts for operators: bytes received, connections refused, timeouts
//! fired. Exposed at `/metrics` and summarised in the log while they move.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 1];

/// Which timeout closed a connection or ended a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// A request head did not arrive within `server.header_read_timeout`.
    Header,
    /// A keep-alive connection sat idle for `server.idle_timeout`.
    Idle,
    /// A request body fell below its minimum pace.
    Body,
    /// The client stopped reading a response for `server.send_timeout`.
    Send,
}

impl Timeout {
    pub(crate) const ALL: [Self; 4] = [Self::Header, Self::Idle, Self::Body, Self::Send];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Idle => "idle",
            Self::Body => "body",
            Self::Send => "send",
        }
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its client already had `server.max_connections_per_address` open.
    PerAddress,
    /// `server.max_connections` were open.
    Total,
}

impl Refusal {
    pub(crate) const ALL: [Self; 2] = [Self::PerAddress, Self::Total];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Total => "total",
        }
    }
}

/// The listener's counters; clones share them.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpMetrics {
    received_bytes: Counter,
    discarded_bytes: Counter,
    timeouts: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
}

impl HttpMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_received_bytes",
            "Bytes read from client connections",
            self.received_bytes.clone(),
        );
        registry.register(
            "http_discarded_bytes",
            "Bytes of unread request bodies drained and thrown away after their answer, before closing",
            self.discarded_bytes.clone(),
        );
        registry.register(
            "http_timeouts",
            "Connections closed or requests ended by a timeout, by kind (header, idle, body, send)",
            self.timeouts.clone(),
        );
        registry.register(
            "http_connections_refused",
            "New connections refused by a connection limit, by reason (per_address, total)",
            self.refused.clone(),
        );
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.received_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn discarded(&self, bytes: usize) {
        self.discarded_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn timed_out(&self, kind: Timeout) {
        self.timeouts.get_or_create(&[("kind", kind.as_str())]).inc();
    }

    pub(crate) fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&[("reason", reason.as_str())]).inc();
    }

    pub(crate) fn timeouts(&self, kind: Timeout) -> u64 {
        self.timeouts.get_or_create(&[("kind", kind.as_str())]).get()
    }

    pub(crate) fn refusals(&self, reason: Refusal) -> u64 {
        self.refused.get_or_create(&[("reason", reason.as_str())]).get()
    }
}
