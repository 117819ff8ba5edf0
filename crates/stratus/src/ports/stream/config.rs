//! `[stream]`: retention, batching and retries of the change stream's consumers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartingPosition {
    /// A new consumer starts with the oldest record still retained.
    TrimHorizon,
    /// A new consumer starts after the newest record.
    Latest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    pub batch_size: usize,
    #[serde(with = "humantime_serde")]
    pub batching_window: Duration,
    /// Invocations of a single failing record before it is dead-lettered.
    pub max_attempts: u32,
    /// A failing record older than this is dead-lettered without further attempts.
    #[serde(with = "humantime_serde")]
    pub max_record_age: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    pub bisect_on_error: bool,
    pub starting_position: StartingPosition,
    /// How often consumers look for records written by other processes (the CLI).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub trim_interval: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        let day = Duration::from_secs(24 * 60 * 60);
        Self {
            retention: day,
            batch_size: 100,
            batching_window: Duration::ZERO,
            max_attempts: 5,
            max_record_age: day,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            bisect_on_error: true,
            starting_position: StartingPosition::TrimHorizon,
            poll_interval: Duration::from_secs(1),
            trim_interval: Duration::from_secs(60),
        }
    }
}

impl StreamConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(1..=10_000).contains(&self.batch_size) {
            return invalid("stream.batch_size", "must be between 1 and 10000");
        }
        if self.max_attempts == 0 {
            return invalid("stream.max_attempts", "must be at least 1");
        }
        if self.retention < Duration::from_secs(60) {
            return invalid("stream.retention", "must be at least 1m");
        }
        if self.backoff_initial > self.backoff_max {
            return invalid("stream.backoff_initial", "must not exceed stream.backoff_max");
        }
        if self.poll_interval.is_zero() || self.trim_interval.is_zero() {
            return invalid("stream.poll_interval", "and stream.trim_interval must be positive");
        }
        Ok(())
    }
}
