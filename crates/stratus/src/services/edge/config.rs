//! `[edge]`: the edge's memory, security headers and redirects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Memory for hot objects (and their compressed variants), in bytes.
    pub cache_bytes: u64,
    /// Sent with every page the edge serves.
    pub content_security_policy: String,
    /// Permanent redirects, path → location (`"/old" = "/posts/new/"`).
    pub redirects: BTreeMap<String, String>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
            content_security_policy:
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                                      frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
                    .into(),
            redirects: BTreeMap::new(),
        }
    }
}

impl EdgeConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.cache_bytes < 1024 * 1024 {
            return invalid("edge.cache_bytes", "must be at least 1 MiB");
        }
        if let Some((from, to)) =
            self.redirects.iter().find(|(from, to)| !from.starts_with('/') || to.is_empty())
        {
            return invalid(
                "edge.redirects",
                format!("`{from}` → `{to}`: paths start with '/' and locations are not empty"),
            );
        }
        Ok(())
    }
}
