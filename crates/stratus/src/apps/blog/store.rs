//! Posts in the table, in a single-table design (see ARCHITECTURE.md):
//!
//! | item | `pk` | `sk` | index `published` (`gsi1pk`, `gsi1sk`) |
//! |---|---|---|---|
//! | post | `POST#<slug>` | `POST` | `PUBLISHED`, `<publish date>#<slug>` — only while published, and only the summary's attributes |
//!
//! Every post is also in the index `all_posts` (`gsi2pk = POSTS`, `gsi2sk = <slug>`), drafts
//! included, for authors' listings.
//! | tag entry | `TAG#<tag>` | `<publish date>#<slug>` | — |
//!
//! Tag entries exist only for published posts and are written in the same transaction as the
//! post, so a tag page never lists a draft.

use std::sync::Arc;

use super::{InvalidPost, PostContent, PostStatus, Slug, Tag};
use crate::infra::clock::Clock;
use crate::item;
use crate::ports::table::decode::{self, AttributeError};
use crate::ports::table::{
    AttributeValue, Condition, Cursor, IndexSpec, Item, KeyAttribute, Query, Table, TableError, TableSpec,
    TransactOp,
};

pub const TABLE: &str = "blog";
pub const PUBLISHED_INDEX: &str = "published";
pub const ALL_POSTS_INDEX: &str = "all_posts";
pub const SUBSCRIBERS_INDEX: &str = "subscribers";
/// What a listed post shows ([`PostSummary`]).
const SUMMARY_ATTRIBUTES: [&str; 6] = ["slug", "title", "summary", "tags", "cover", "publish_date"];

/// The blog table's schema.
pub fn table_spec() -> TableSpec {
    // The listings read summaries: the index holds them and not the posts' bodies.
    let published = IndexSpec::new(PUBLISHED_INDEX, KeyAttribute::string("gsi1pk"))
        .sort_key(KeyAttribute::string("gsi1sk"))
        .include(&SUMMARY_ATTRIBUTES);
    let all_posts = IndexSpec::new(ALL_POSTS_INDEX, KeyAttribute::string("gsi2pk"))
        .sort_key(KeyAttribute::string("gsi2sk"));
    let subscribers = IndexSpec::new(SUBSCRIBERS_INDEX, KeyAttribute::string("gsi3pk"))
        .sort_key(KeyAttribute::string("gsi3sk"));
    TableSpec::new(TABLE, KeyAttribute::string("pk"))
        .sort_key(KeyAttribute::string("sk"))
        .index(published)
        .index(all_posts)
        .index(subscribers)
}

/// A stored post.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Post {
    pub slug: Slug,
    pub title: String,
    pub body: String,
    pub summary: String,
    pub tags: Vec<Tag>,
    pub cover: Option<String>,
    pub publish_date: Option<String>,
    pub status: PostStatus,
    pub version: u64,
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A post as listed (no body).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PostSummary {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub cover: Option<String>,
    pub publish_date: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error(transparent)]
    Invalid(#[from] InvalidPost),
    #[error("a post with slug `{0}` already exists")]
    SlugTaken(Slug),
    #[error("no post `{0}`")]
    NotFound(Slug),
    #[error("post `{slug}` is at version {current}, not {expected}")]
    VersionMismatch { slug: Slug, expected: u64, current: u64 },
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("a stored post is corrupt")]
    Corrupt(#[from] AttributeError),
    #[error("storage failure")]
    Table(#[source] TableError),
}

impl From<TableError> for PostError {
    fn from(error: TableError) -> Self {
        match error {
            TableError::InvalidCursor { .. } => Self::InvalidCursor,
            other => Self::Table(other),
        }
    }
}

/// A page of listed posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPage {
    pub posts: Vec<PostSummary>,
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PostStore {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

fn post_key(slug: &Slug) -> Item {
    item! { "pk" => format!("POST#{slug}"), "sk" => "POST" }
}

impl PostStore {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    fn now(&self) -> String {
        humantime::format_rfc3339_seconds(self.clock.now()).to_string()
    }

    pub async fn get(&self, slug: &Slug) -> Result<Option<Post>, PostError> {
        let item = self.table.get_shared(&post_key(slug)).await?;
        item.map(|item| post_from_item(&item)).transpose()
    }

    /// Creates a post; the slug must be free (checked atomically).
    pub async fn create(
        &self,
        slug: Slug,
        content: PostContent,
        status: PostStatus,
        author: &str,
    ) -> Result<Post, PostError> {
        let now = self.now();
        let post = Post {
            publish_date: match status {
                PostStatus::Published => Some(content.publish_date.clone().unwrap_or_else(|| now.clone())),
                PostStatus::Draft => content.publish_date.clone(),
            },
            slug,
            title: content.title,
            body: content.body,
            summary: content.summary,
            tags: content.tags,
            cover: content.cover,
            status,
            version: 1,
            author: author.to_owned(),
            created_at: now.clone(),
            updated_at: now,
        };
        let mut operations =
            vec![TransactOp::Put { item: post_item(&post), condition: Some(Condition::not_exists("pk")) }];
        operations
            .extend(tag_entries(&post).into_iter().map(|item| TransactOp::Put { item, condition: None }));
        match self.table.transact_write(operations).await {
            Ok(()) => Ok(post),
            Err(TableError::TransactionCanceled { .. }) => Err(PostError::SlugTaken(post.slug)),
            Err(error) => Err(error.into()),
        }
    }

    /// Replaces a post's content (and status) if it is still at `expected_version`.
    pub async fn replace(
        &self,
        slug: &Slug,
        expected_version: Option<u64>,
        change: impl FnOnce(&mut Post),
    ) -> Result<Post, PostError> {
        let current = self.current(slug, expected_version).await?;
        let mut next = current.clone();
        change(&mut next);
        next.slug = current.slug.clone();
        next.version = current.version + 1;
        next.updated_at = self.now();
        if next.status == PostStatus::Published && next.publish_date.is_none() {
            next.publish_date = Some(next.updated_at.clone());
        }
        let mut operations = vec![TransactOp::Put {
            item: post_item(&next),
            condition: Some(Condition::eq("version", current.version)),
        }];
        let (old_entries, new_entries) = (tag_entries(&current), tag_entries(&next));
        for entry in &old_entries {
            if !new_entries.contains(entry) {
                let key = item! { "pk" => entry["pk"].clone(), "sk" => entry["sk"].clone() };
                let still_written =
                    new_entries.iter().any(|new| new["pk"] == entry["pk"] && new["sk"] == entry["sk"]);
                if !still_written {
                    operations.push(TransactOp::Delete { key, condition: None });
                }
            }
        }
        for entry in new_entries {
            if !old_entries.contains(&entry) {
                operations.push(TransactOp::Put { item: entry, condition: None });
            }
        }
        match self.table.transact_write(operations).await {
            Ok(()) => Ok(next),
            // Someone else wrote in between.
            Err(TableError::TransactionCanceled { .. }) => {
                let latest = self.get(slug).await?.map_or(0, |post| post.version);
                Err(PostError::VersionMismatch {
                    slug: slug.clone(),
                    expected: current.version,
                    current: latest,
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The post, if it is still at `expected_version` (when one is given).
    async fn current(&self, slug: &Slug, expected_version: Option<u64>) -> Result<Post, PostError> {
        let current = self.get(slug).await?.ok_or_else(|| PostError::NotFound(slug.clone()))?;
        match expected_version {
            Some(expected) if expected != current.version => {
                Err(PostError::VersionMismatch { slug: slug.clone(), expected, current: current.version })
            }
            _ => Ok(current),
        }
    }

    pub async fn delete(&self, slug: &Slug, expected_version: Option<u64>) -> Result<(), PostError> {
        let current = self.current(slug, expected_version).await?;
        let mut operations = vec![TransactOp::Delete {
            key: post_key(slug),
            condition: Some(Condition::eq("version", current.version)),
        }];
        for entry in tag_entries(&current) {
            operations.push(TransactOp::Delete {
                key: item! { "pk" => entry["pk"].clone(), "sk" => entry["sk"].clone() },
                condition: None,
            });
        }
        match self.table.transact_write(operations).await {
            Ok(()) => Ok(()),
            Err(TableError::TransactionCanceled { .. }) => Err(PostError::VersionMismatch {
                slug: slug.clone(),
                expected: current.version,
                current: current.version + 1,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Every post, drafts included, by slug.
    pub async fn list_all(&self) -> Result<Vec<Post>, PostError> {
        let mut posts = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .table
                .query(Query::partition("POSTS").index(ALL_POSTS_INDEX).limit(100).start_after(cursor))
                .await?;
            for item in &page.items {
                posts.push(post_from_item(item)?);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(posts),
            }
        }
    }

    /// Published posts, newest first, optionally of one tag; `cursor` continues a listing.
    pub async fn list_published(
        &self,
        tag: Option<&Tag>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<PostPage, PostError> {
        let cursor = cursor.map(Cursor::from_token).transpose()?;
        let query = match tag {
            None => Query::partition("PUBLISHED").index(PUBLISHED_INDEX),
            Some(tag) => Query::partition(format!("TAG#{tag}")),
        };
        let page = self.table.query(query.backward().limit(limit).start_after(cursor)).await?;
        let posts = page.items.iter().map(summary_from_item).collect::<Result<Vec<_>, _>>()?;
        Ok(PostPage { posts, next: page.next.map(|cursor| cursor.to_token()) })
    }
}

fn post_item(post: &Post) -> Item {
    let mut item = post_key(&post.slug);
    item.insert("type".into(), "post".into());
    item.insert("slug".into(), post.slug.as_str().into());
    item.insert("title".into(), post.title.clone().into());
    item.insert("body".into(), post.body.clone().into());
    item.insert("summary".into(), post.summary.clone().into());
    if !post.tags.is_empty() {
        item.insert(
            "tags".into(),
            AttributeValue::Ss(post.tags.iter().map(|tag| tag.as_str().to_owned()).collect()),
        );
    }
    if let Some(cover) = &post.cover {
        item.insert("cover".into(), cover.clone().into());
    }
    if let Some(date) = &post.publish_date {
        item.insert("publish_date".into(), date.clone().into());
    }
    item.insert("status".into(), post.status.as_str().into());
    item.insert("version".into(), post.version.into());
    item.insert("author".into(), post.author.clone().into());
    item.insert("created_at".into(), post.created_at.clone().into());
    item.insert("updated_at".into(), post.updated_at.clone().into());
    item.insert("gsi2pk".into(), "POSTS".into());
    item.insert("gsi2sk".into(), post.slug.as_str().into());
    if post.status == PostStatus::Published
        && let Some(date) = &post.publish_date
    {
        item.insert("gsi1pk".into(), "PUBLISHED".into());
        item.insert("gsi1sk".into(), format!("{date}#{}", post.slug).into());
    }
    item
}

/// The tag entries a post should have: one per tag while published.
fn tag_entries(post: &Post) -> Vec<Item> {
    let (PostStatus::Published, Some(date)) = (post.status, &post.publish_date) else { return Vec::new() };
    post.tags
        .iter()
        .map(|tag| {
            let mut entry = item! { "pk" => format!("TAG#{tag}"), "sk" => format!("{date}#{}", post.slug) };
            entry.insert("type".into(), "tag_entry".into());
            entry.insert("slug".into(), post.slug.as_str().into());
            entry.insert("title".into(), post.title.clone().into());
            entry.insert("summary".into(), post.summary.clone().into());
            entry.insert("publish_date".into(), date.clone().into());
            if !post.tags.is_empty() {
                entry.insert(
                    "tags".into(),
                    AttributeValue::Ss(post.tags.iter().map(|t| t.as_str().to_owned()).collect()),
                );
            }
            if let Some(cover) = &post.cover {
                entry.insert("cover".into(), cover.clone().into());
            }
            entry
        })
        .collect()
}

pub fn post_from_item(item: &Item) -> Result<Post, PostError> {
    let slug = decode::string(item, "slug")?;
    let status = match decode::string(item, "status")?.as_str() {
        "published" => PostStatus::Published,
        "draft" => PostStatus::Draft,
        other => return Err(AttributeError::invalid("status", other, "draft or published").into()),
    };
    Ok(Post {
        slug: Slug::parse(&slug).map_err(|e| AttributeError::invalid("slug", &slug, e.to_string()))?,
        title: decode::string(item, "title")?,
        body: decode::string(item, "body")?,
        summary: decode::string(item, "summary")?,
        tags: decode::string_set(item, "tags")?
            .iter()
            .map(|tag| Tag::parse(tag).map_err(|e| AttributeError::invalid("tags", tag, e.to_string())))
            .collect::<Result<_, _>>()?,
        cover: decode::optional_string(item, "cover")?,
        publish_date: decode::optional_string(item, "publish_date")?,
        status,
        version: decode::number(item, "version")?,
        author: decode::string(item, "author")?,
        created_at: decode::string(item, "created_at")?,
        updated_at: decode::string(item, "updated_at")?,
    })
}

/// A listed post: entries of the `published` index and of the tag partitions, both of which
/// hold published posts only.
fn summary_from_item(item: &Item) -> Result<PostSummary, PostError> {
    Ok(PostSummary {
        slug: decode::string(item, "slug")?,
        title: decode::string(item, "title")?,
        summary: decode::string(item, "summary")?,
        tags: decode::string_set(item, "tags")?,
        cover: decode::optional_string(item, "cover")?,
        publish_date: decode::string(item, "publish_date")?,
    })
}
