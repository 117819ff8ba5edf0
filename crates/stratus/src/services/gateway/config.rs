//! `[gateway]`: the response cache in front of the API.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// How long an anonymous GET response of the API may be answered from memory (0s: never).
    /// Changes to the data behind it clear it sooner.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Memory for cached responses, in bytes.
    pub cache_bytes: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self { cache_ttl: Duration::from_secs(60), cache_bytes: 16 * 1024 * 1024 }
    }
}
