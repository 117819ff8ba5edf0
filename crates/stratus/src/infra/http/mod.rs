//! HTTP: the listener (`server`, with its connection limits and clocks, and `tls`), request bodies
//! (`body`), RFC 9457 problems, small HTML pages, request ids and per-address limits — what every
//! HTTP endpoint of the system shares. It depends on no component.

pub(crate) mod admission;
pub(crate) mod body;
mod config;
mod connection;
mod limit;
pub(crate) mod metrics;
mod page;
mod problem;
mod request_id;
pub mod rest;
pub(crate) mod server;
pub mod tls;

pub use config::{MetricsAccess, ServerConfig};
pub use limit::AddressLimit;
pub use page::page;
pub use problem::{Problem, ProblemSchema, Violation};
pub use request_id::RequestIds;

/// A `Retry-After` value for a wait: whole seconds, rounded up and at least 1, so a client that
/// comes back after it is admitted.
pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
