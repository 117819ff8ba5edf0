//! `[table]`: background upkeep of the tables.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableConfig {
    /// How often expired items (TTL) are deleted in the background.
    #[serde(with = "humantime_serde")]
    pub ttl_sweep_interval: Duration,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self { ttl_sweep_interval: Duration::from_secs(5) }
    }
}

impl TableConfig {
    pub fn validate(&self) -> Result<(), crate::infra::settings::Invalid> {
        if self.ttl_sweep_interval.is_zero() {
            return crate::infra::settings::invalid("table.ttl_sweep_interval", "must be positive");
        }
        Ok(())
    }
}
