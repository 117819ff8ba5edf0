//! `[functions]`: the HTTP and background pools of invocation slots, and their timeouts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsConfig {
    /// Invocations of HTTP functions running at once. A slot is taken once the request body
    /// has arrived and given back when the response is ready, never held by a slow socket.
    pub http_concurrency: usize,
    /// How long a request may wait for a free HTTP slot before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub http_queue_timeout: Duration,
    /// An HTTP function running longer than this is answered 504.
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
    /// Largest request body of an HTTP function that sets no limit of its own (413 beyond).
    pub max_body_bytes: usize,
    /// Invocations of stream and object-event functions running at once, in slots of their own
    /// that HTTP requests never take.
    pub background_concurrency: usize,
    /// A background invocation running longer than this fails (and is retried like any failure).
    #[serde(with = "humantime_serde")]
    pub background_timeout: Duration,
    /// `/readyz` reports unavailable once either pool has had no free slot for this long.
    #[serde(with = "humantime_serde")]
    pub saturation_threshold: Duration,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            http_concurrency: 64,
            http_queue_timeout: Duration::from_secs(1),
            // API Gateway's integration timeout.
            http_timeout: Duration::from_secs(29),
            max_body_bytes: 1024 * 1024,
            background_concurrency: 16,
            background_timeout: Duration::from_secs(30),
            saturation_threshold: Duration::from_secs(5),
        }
    }
}

impl FunctionsConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.http_concurrency == 0 {
            return invalid("functions.http_concurrency", "must be at least 1");
        }
        if self.background_concurrency == 0 {
            return invalid("functions.background_concurrency", "must be at least 1");
        }
        if self.http_timeout.is_zero() {
            return invalid("functions.http_timeout", "must be positive");
        }
        if self.background_timeout.is_zero() {
            return invalid("functions.background_timeout", "must be positive");
        }
        if self.saturation_threshold.is_zero() {
            return invalid("functions.saturation_threshold", "must be positive");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return invalid("functions.max_body_bytes", "must be between 1 KiB and 64 MiB");
        }
        Ok(())
    }
}
