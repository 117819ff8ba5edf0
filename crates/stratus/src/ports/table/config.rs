//! `[table]`: background upkeep of the tables, and the read cache in front of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cached::CacheSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableConfig {
    /// How often expired items (TTL) are deleted in the background.
    #[serde(with = "humantime_serde")]
    pub ttl_sweep_interval: Duration,
    /// How long the read cache in front of the applications' tables answers a get or a query
    /// from memory (DAX's default, 5 minutes; `0s` turns the cache off). Writes update it at
    /// once; other processes' writes reach it through the change stream.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Memory for cached items, in bytes, per table.
    pub item_cache_bytes: u64,
    /// Memory for cached query pages, in bytes, per table.
    pub query_cache_bytes: u64,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            ttl_sweep_interval: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(300),
            item_cache_bytes: 32 * 1024 * 1024,
            query_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

impl TableConfig {
    pub fn validate(&self) -> Result<(), crate::infra::settings::Invalid> {
        if self.ttl_sweep_interval.is_zero() {
            return crate::infra::settings::invalid("table.ttl_sweep_interval", "must be positive");
        }
        Ok(())
    }

    /// The read cache's settings, unless it is off.
    pub fn cache(&self) -> Option<CacheSettings> {
        (!self.cache_ttl.is_zero()).then_some(CacheSettings {
            ttl: self.cache_ttl,
            item_bytes: self.item_cache_bytes,
            query_bytes: self.query_cache_bytes,
        })
    }
}
