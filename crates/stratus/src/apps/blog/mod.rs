//! The blog: posts written by authors (a user-pool group), stored in the table in a
//! single-table design ([`store`]), served by a REST API ([`api`]).

mod config;
mod install;
pub use config::BlogConfig;
pub(crate) use install::install;

pub mod api;
pub(crate) mod front_matter;
mod markdown;
pub mod site;
pub mod store;
pub mod subscriber_api;
pub mod subscribers;
pub mod welcome;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The blog's parts over a stage's platform, shared by the server and the CLI.
#[derive(Debug, Clone)]
pub struct Blog {
    pub posts: store::PostStore,
    pub subscribers: subscribers::SubscriberStore,
    pub tokens: subscribers::UnsubscribeTokens,
    pub generator: Arc<site::SiteGenerator>,
    /// The stream source of the blog table.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the blog table")]
    Table(#[from] crate::ports::table::TableError),
    #[error("cannot open the site bucket")]
    Bucket(#[from] crate::ports::blobs::BlobError),
    #[error("cannot prepare the site generator")]
    Site(#[from] site::SiteError),
    #[error("cannot prepare unsubscribe links")]
    Subscribers(#[from] subscribers::SubscriberError),
}

/// A post's URL name: 1–100 characters of `a-z`, `0-9` and single `-` between them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// A tag: 1–40 characters of `a-z`, `0-9` and `-`, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Tag(String);

/// Why a post was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct InvalidPost {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidPost {
    InvalidPost { field, problem: problem.into() }
}

fn is_word(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--")
}

impl Slug {
    pub fn parse(text: &str) -> Result<Self, InvalidPost> {
        if is_word(text, 100) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid("slug", "must be 1-100 characters of a-z, 0-9 and single '-' between them"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Tag {
    pub fn parse(text: &str) -> Result<Self, InvalidPost> {
        let lower = text.trim().to_lowercase();
        if is_word(&lower, 40) {
            Ok(Self(lower))
        } else {
            Err(invalid("tags", format!("`{text}` must be 1-40 characters of a-z, 0-9 and '-'")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostStatus {
    Draft,
    Published,
}

impl PostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
        }
    }
}

/// What an author sends to create or replace a post.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostInput {
    pub slug: Option<String>,
    pub title: String,
    /// Markdown.
    pub body: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Key of the cover photo in the media bucket.
    #[serde(default)]
    pub cover: Option<String>,
    /// RFC 3339; defaults to the time of publication.
    #[serde(default)]
    pub publish_date: Option<String>,
    #[serde(default)]
    pub status: Option<PostStatus>,
}

/// A post's content, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostContent {
    pub title: String,
    pub body: String,
    pub summary: String,
    pub tags: Vec<Tag>,
    pub cover: Option<String>,
    /// RFC 3339 (UTC, seconds).
    pub publish_date: Option<String>,
}

pub const MAX_TITLE: usize = 200;
pub const MAX_SUMMARY: usize = 1_000;
pub const MAX_TAGS: usize = 10;
/// Posts are items; DynamoDB's 400 KB item limit bounds the body well below it.
pub const MAX_BODY: usize = 256 * 1024;

impl PostInput {
    /// Validates everything but the slug.
    pub fn content(&self) -> Result<PostContent, InvalidPost> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(invalid("title", format!("must be 1-{MAX_TITLE} characters")));
        }
        if self.body.len() > MAX_BODY {
            return Err(invalid("body", format!("must be at most {MAX_BODY} bytes of Markdown")));
        }
        let summary = self.summary.clone().unwrap_or_else(|| derive_summary(&self.body));
        if summary.chars().count() > MAX_SUMMARY {
            return Err(invalid("summary", format!("must be at most {MAX_SUMMARY} characters")));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        let mut tags = self.tags.iter().map(|tag| Tag::parse(tag)).collect::<Result<Vec<_>, _>>()?;
        tags.sort();
        tags.dedup();
        if let Some(cover) = &self.cover {
            crate::ports::blobs::parse_key(cover).map_err(|e| invalid("cover", e.to_string()))?;
        }
        let publish_date = self
            .publish_date
            .as_deref()
            .map(|date| {
                humantime::parse_rfc3339_weak(date)
                    .map(|time| humantime::format_rfc3339_seconds(time).to_string())
                    .map_err(|_| {
                        invalid("publish_date", "must be an RFC 3339 date-time, e.g. 2026-11-28T09:00:00Z")
                    })
            })
            .transpose()?;
        Ok(PostContent {
            title: title.to_owned(),
            body: self.body.clone(),
            summary: summary.trim().to_owned(),
            tags,
            cover: self.cover.clone(),
            publish_date,
        })
    }
}

/// The first paragraph of the body as plain text, at most 300 characters.
fn derive_summary(body: &str) -> String {
    let paragraph = body
        .split("\n\n")
        .map(str::trim)
        .find(|block| !block.is_empty() && !block.starts_with('#') && !block.starts_with("```"))
        .unwrap_or_default();
    let plain: String = paragraph
        .chars()
        .filter(|c| !matches!(c, '*' | '_' | '`' | '[' | ']' | '>' | '#'))
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    match plain.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &plain[..cut]),
        None => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_tags_are_url_safe_words() {
        assert!(Slug::parse("hello-world-2").is_ok());
        for bad in ["", "Hello", "a b", "-a", "a-", "a--b", "../etc", "a/b", "é", &"a".repeat(101)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Tag::parse(" Rust ").unwrap().as_str(), "rust");
        assert!(Tag::parse("c++").is_err());
    }

    #[test]
    fn the_summary_defaults_to_the_first_paragraph() {
        assert_eq!(
            derive_summary("# Title\n\nFirst *para*graph.\nNext line.\n\nSecond."),
            "First paragraph. Next line."
        );
    }
}
