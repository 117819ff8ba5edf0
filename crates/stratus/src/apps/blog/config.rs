//! `[blog]`: authors, the site's name and bucket, page and feed sizes, subscriptions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlogConfig {
    /// The user-pool group whose members write posts.
    pub authors_group: String,
    /// Largest request body the posts API accepts (413 beyond).
    pub max_body_bytes: usize,
    /// Posts per page when a listing does not say, and on the site's index pages.
    pub page_size: usize,
    /// The site's name, in every page and the feed.
    pub title: String,
    pub description: String,
    /// The private bucket the generated pages are written to (served only by the edge).
    pub site_bucket: String,
    /// Entries in the Atom feed.
    pub feed_entries: usize,
    /// Subscriptions accepted per client address per minute (and as a burst); beyond, 429
    /// with `Retry-After`.
    pub subscribe_per_address_per_minute: u32,
    /// How long an unsubscribe link stays valid.
    #[serde(with = "humantime_serde")]
    pub unsubscribe_link_ttl: Duration,
}

impl Default for BlogConfig {
    fn default() -> Self {
        Self {
            authors_group: "authors".into(),
            max_body_bytes: 1024 * 1024,
            page_size: 10,
            title: "Stratus Blog".into(),
            description: "Notes, written rarely and read often.".into(),
            site_bucket: "site".into(),
            feed_entries: 20,
            subscribe_per_address_per_minute: 5,
            unsubscribe_link_ttl: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

impl BlogConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.authors_group.is_empty() {
            return invalid("blog.authors_group", "must not be empty");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return invalid("blog.max_body_bytes", "must be between 1 KiB and 64 MiB");
        }
        if !(1..=100).contains(&self.page_size) {
            return invalid("blog.page_size", "must be between 1 and 100");
        }
        if self.title.trim().is_empty() {
            return invalid("blog.title", "must not be empty");
        }
        if crate::ports::blobs::validate_bucket_name(&self.site_bucket).is_err() {
            return invalid("blog.site_bucket", "must be a valid bucket name");
        }
        if !(1..=500).contains(&self.feed_entries) {
            return invalid("blog.feed_entries", "must be between 1 and 500");
        }
        if self.subscribe_per_address_per_minute == 0 {
            return invalid("blog.subscribe_per_address_per_minute", "must be at least 1");
        }
        if self.unsubscribe_link_ttl < Duration::from_secs(3600) {
            return invalid("blog.unsubscribe_link_ttl", "must be at least 1h");
        }
        Ok(())
    }
}
