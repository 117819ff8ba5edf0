//! `[todos]`: what one user's todos may hold, and where their attachments live.

use serde::{Deserialize, Serialize};

use super::model::Limits;
use super::store::StoreLimits;
use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TodosConfig {
    /// Todos one user may keep; creating one more is a 409 until some are deleted.
    pub max_todos_per_user: u64,
    /// Largest stored todo, in DynamoDB's item bytes (413 beyond).
    pub max_item_bytes: usize,
    pub max_title_chars: usize,
    /// Notes are Markdown, stored as written.
    pub max_notes_chars: usize,
    pub max_tags: usize,
    pub max_tag_chars: usize,
    pub max_attachments: usize,
    /// Largest request body (413 beyond).
    pub max_body_bytes: usize,
    /// Todos per page when a listing does not say (at most 100).
    pub page_size: usize,
    /// The bucket attachments are in: each user's own folder (`<identity id>/`) of it.
    pub attachments_bucket: String,
}

impl Default for TodosConfig {
    fn default() -> Self {
        Self {
            max_todos_per_user: 5000,
            max_item_bytes: 32 * 1024,
            max_title_chars: 200,
            max_notes_chars: 10_000,
            max_tags: 20,
            max_tag_chars: 40,
            max_attachments: 10,
            max_body_bytes: 64 * 1024,
            page_size: 20,
            attachments_bucket: "user-files".into(),
        }
    }
}

impl TodosConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_todos_per_user == 0 {
            return invalid("todos.max_todos_per_user", "must be at least 1");
        }
        if !(1024..=crate::ports::table::MAX_ITEM_BYTES).contains(&self.max_item_bytes) {
            return invalid(
                "todos.max_item_bytes",
                "must be between 1 KiB and 400 KiB (DynamoDB's item limit)",
            );
        }
        if self.max_title_chars == 0 || self.max_tag_chars == 0 {
            return invalid("todos.max_title_chars", "titles and tags need at least one character");
        }
        if !(1024..=1024 * 1024).contains(&self.max_body_bytes) {
            return invalid("todos.max_body_bytes", "must be between 1 KiB and 1 MiB");
        }
        if !(1..=100).contains(&self.page_size) {
            return invalid("todos.page_size", "must be between 1 and 100");
        }
        if crate::ports::blobs::validate_bucket_name(&self.attachments_bucket).is_err() {
            return invalid("todos.attachments_bucket", "must be a valid bucket name");
        }
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits {
            title_chars: self.max_title_chars,
            notes_chars: self.max_notes_chars,
            tags: self.max_tags,
            tag_chars: self.max_tag_chars,
            attachments: self.max_attachments,
        }
    }

    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits { todos_per_user: self.max_todos_per_user, item_bytes: self.max_item_bytes }
    }
}
