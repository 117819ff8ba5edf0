//! Static generation on write: the `site-generator` function receives the blog table's post
//! changes and rewrites exactly the pages they affect in the private site bucket — the post's
//! page, the index pages, the pages of its old and new tags, the Atom feed and the sitemap.
//! Pages are compared with what is stored and written only when they differ, so an edit
//! touches only the objects whose bytes change (and the edge invalidates only those).

use std::collections::BTreeSet;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt as _;
use minijinja::{Environment, context};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::markdown;
use super::store::{Post, PostError, PostStore, post_from_item};
use super::{PostStatus, Tag};
use crate::apps::blog::BlogConfig;
use crate::ports::events::TableChange;
use crate::ports::table::Item;

const TEMPLATES: [(&str, &str); 7] = [
    ("404.html", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/404.html"))),
    ("base.html", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/base.html"))),
    ("post.html", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/post.html"))),
    ("list.html", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/list.html"))),
    ("feed.xml", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/feed.xml"))),
    ("sitemap.xml", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/sitemap.xml"))),
    ("robots.txt", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/robots.txt"))),
];
const STYLESHEET: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/site/site.css"));

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("cannot read posts")]
    Posts(#[from] PostError),
    #[error("cannot write the site bucket")]
    Store(#[from] object_store::Error),
    #[error("cannot render a page")]
    Template(#[from] minijinja::Error),
    #[error("cannot read the template override {path}")]
    Override {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A post as templates see it.
#[derive(Debug, Clone, Serialize)]
struct PageModel {
    slug: String,
    title: String,
    summary: String,
    tags: Vec<String>,
    cover: Option<String>,
    publish_date: String,
    /// `2026-11-28`.
    date: String,
    updated_at: String,
    html: String,
}

#[derive(Debug, Clone, Serialize)]
struct SiteModel {
    title: String,
    description: String,
    base_url: String,
    stylesheet: String,
}

pub struct SiteGenerator {
    posts: PostStore,
    bucket: Arc<dyn ObjectStore>,
    templates: Environment<'static>,
    site: SiteModel,
    config: BlogConfig,
}

impl std::fmt::Debug for SiteGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteGenerator").field("bucket", &self.bucket.to_string()).finish_non_exhaustive()
    }
}

/// What one batch of changes requires.
#[derive(Debug, Default)]
struct Affected {
    render: BTreeSet<String>,
    remove: BTreeSet<String>,
    tags: BTreeSet<String>,
    listings: bool,
}

fn image_published(image: Option<&Item>) -> Option<(String, Vec<String>)> {
    let post = post_from_item(image?).ok()?;
    (post.status == PostStatus::Published).then(|| {
        (post.slug.as_str().to_owned(), post.tags.iter().map(|tag| tag.as_str().to_owned()).collect())
    })
}

impl SiteGenerator {
    /// `overrides`: a directory whose files replace the default templates of the same name.
    pub fn new(
        posts: PostStore,
        bucket: Arc<dyn ObjectStore>,
        config: &BlogConfig,
        base_url: &str,
        overrides: &FsPath,
    ) -> Result<Self, SiteError> {
        let mut templates = Environment::new();
        templates.set_auto_escape_callback(|name| {
            if name.ends_with(".html") || name.ends_with(".xml") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (name, default) in TEMPLATES {
            let path = overrides.join(name);
            let source = if path.is_file() {
                std::fs::read_to_string(&path)
                    .map_err(|source| SiteError::Override { path: path.display().to_string(), source })?
            } else {
                default.to_owned()
            };
            templates.add_template_owned(name, source)?;
        }
        let fingerprint = hex::encode(&Sha256::digest(STYLESHEET.as_bytes())[..6]);
        let site = SiteModel {
            title: config.title.clone(),
            description: config.description.clone(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            stylesheet: format!("/assets/site-{fingerprint}.css"),
        };
        Ok(Self { posts, bucket, templates, site, config: config.clone() })
    }

    /// Applies a batch of changes to the blog table (non-post items are ignored).
    pub async fn apply(&self, changes: &[TableChange]) -> Result<(), SiteError> {
        let mut affected = Affected::default();
        for change in changes {
            let keys = &change.dynamodb.keys;
            if keys.get("sk").and_then(|value| value.as_s()) != Some("POST") {
                continue;
            }
            let before = image_published(change.dynamodb.old_image.as_ref());
            let after = image_published(change.dynamodb.new_image.as_ref());
            if let Some((slug, tags)) = &before {
                affected.remove.insert(slug.clone());
                affected.tags.extend(tags.iter().cloned());
                affected.listings = true;
            }
            if let Some((slug, tags)) = &after {
                affected.remove.remove(slug);
                affected.render.insert(slug.clone());
                affected.tags.extend(tags.iter().cloned());
                affected.listings = true;
            }
        }
        self.regenerate(&affected).await
    }

    /// Renders the site's shared pages — the index ("no posts yet" on a fresh install), the feed,
    /// the sitemap, 404 and robots.txt — if the site has no index yet, so that a new install
    /// shows a site. Returns whether it rendered.
    pub async fn ensure_rendered(&self) -> Result<bool, SiteError> {
        match self.bucket.head(&Path::from("index.html")).await {
            Ok(_) => Ok(false),
            Err(object_store::Error::NotFound { .. }) => {
                self.regenerate(&Affected { listings: true, ..Affected::default() }).await?;
                Ok(true)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Regenerates every page, for a theme change (`stratus site rebuild`); `progress` hears
    /// (done, total) after each post. Returns the number of posts rendered.
    pub async fn rebuild(&self, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<usize, SiteError> {
        let published = self.all_published(None).await?;
        let total = published.len();
        for (done, post) in published.iter().enumerate() {
            let single =
                Affected { render: BTreeSet::from([post.slug.as_str().to_owned()]), ..Affected::default() };
            self.regenerate(&single).await?;
            progress(done + 1, total);
        }
        let tags =
            published.iter().flat_map(|post| post.tags.iter().map(|tag| tag.as_str().to_owned())).collect();
        self.regenerate(&Affected { tags, listings: true, ..Affected::default() }).await?;
        Ok(total)
    }

    async fn regenerate(&self, affected: &Affected) -> Result<(), SiteError> {
        self.write_if_changed(
            "robots.txt",
            self.templates.get_template("robots.txt")?.render(context! { site => &self.site })?,
        )
        .await?;
        self.write_if_changed(&self.site.stylesheet[1..], STYLESHEET.to_owned()).await?;
        self.write_if_changed(
            "404.html",
            self.templates.get_template("404.html")?.render(context! { site => &self.site })?,
        )
        .await?;
        for slug in &affected.remove {
            self.delete(&format!("posts/{slug}/index.html")).await?;
        }
        for slug in &affected.render {
            let Some(post) = self.posts.get(&super::Slug::parse(slug)?).await? else { continue };
            if post.status != PostStatus::Published {
                self.delete(&format!("posts/{slug}/index.html")).await?;
                continue;
            }
            let page = self
                .templates
                .get_template("post.html")?
                .render(context! { site => &self.site, post => model(&post) })?;
            self.write_if_changed(&format!("posts/{slug}/index.html"), page).await?;
        }
        if !affected.listings {
            return Ok(());
        }
        let published = self.all_published(None).await?;
        self.write_index_pages(&published).await?;
        for tag in &affected.tags {
            self.write_tag_page(tag).await?;
        }
        let models: Vec<PageModel> = published.iter().take(self.config.feed_entries).map(model).collect();
        let updated = published
            .iter()
            .map(|post| post.updated_at.clone())
            .max()
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
        let feed = self
            .templates
            .get_template("feed.xml")?
            .render(context! { site => &self.site, posts => models, updated => &updated })?;
        self.write_if_changed("feed.xml", feed).await?;
        let all_models: Vec<PageModel> = published.iter().map(model).collect();
        let tags: BTreeSet<&str> =
            published.iter().flat_map(|post| post.tags.iter().map(Tag::as_str)).collect();
        let sitemap = self.templates.get_template("sitemap.xml")?.render(context! {
            site => &self.site, posts => all_models, tags => tags, updated => (!published.is_empty()).then_some(updated),
        })?;
        self.write_if_changed("sitemap.xml", sitemap).await?;
        Ok(())
    }

    async fn write_index_pages(&self, published: &[Post]) -> Result<(), SiteError> {
        let size = self.config.page_size;
        let pages = published.len().div_ceil(size).max(1);
        let path_of =
            |page: usize| if page == 1 { "index.html".to_owned() } else { format!("page/{page}/index.html") };
        let url_of = |page: usize| if page == 1 { "/".to_owned() } else { format!("/page/{page}/") };
        for page in 1..=pages {
            let posts: Vec<PageModel> =
                published.iter().skip((page - 1) * size).take(size).map(model).collect();
            let html = self.templates.get_template("list.html")?.render(context! {
                site => &self.site, posts => posts, heading => None::<String>,
                newer => (page > 1).then(|| url_of(page - 1)), older => (page < pages).then(|| url_of(page + 1)),
            })?;
            self.write_if_changed(&path_of(page), html).await?;
        }
        // Pages beyond the last one (after unpublishing) disappear.
        let stale: Vec<Path> = self
            .bucket
            .list(Some(&Path::from("page")))
            .map_ok(|meta| meta.location)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter(|location| {
                let number = location.parts().nth(1).and_then(|part| part.as_ref().parse::<usize>().ok());
                number.is_none_or(|number| number > pages)
            })
            .collect();
        for location in stale {
            self.delete(location.as_ref()).await?;
        }
        Ok(())
    }

    async fn write_tag_page(&self, tag: &str) -> Result<(), SiteError> {
        let tag = Tag::parse(tag)?;
        let posts = self.all_published(Some(&tag)).await?;
        let path = format!("tags/{tag}/index.html");
        if posts.is_empty() {
            return self.delete(&path).await;
        }
        let models: Vec<PageModel> = posts.iter().map(model).collect();
        let html = self.templates.get_template("list.html")?.render(context! {
            site => &self.site, posts => models, heading => format!("#{tag}"), newer => None::<String>, older => None::<String>,
        })?;
        self.write_if_changed(&path, html).await
    }

    /// Every published post (of a tag), newest first, with bodies.
    async fn all_published(&self, tag: Option<&Tag>) -> Result<Vec<Post>, SiteError> {
        let mut posts = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.posts.list_published(tag, 100, cursor.as_deref()).await?;
            for summary in &page.posts {
                if let Some(post) = self.posts.get(&super::Slug::parse(&summary.slug)?).await?
                    && post.status == PostStatus::Published
                {
                    posts.push(post);
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(posts),
            }
        }
    }

    async fn write_if_changed(&self, key: &str, content: String) -> Result<(), SiteError> {
        let path = Path::from(key);
        let bytes = Bytes::from(content);
        match self.bucket.get(&path).await {
            Ok(existing) => {
                if existing.bytes().await? == bytes {
                    return Ok(());
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        self.bucket.put(&path, PutPayload::from_bytes(bytes)).await?;
        tracing::debug!(key, "site page written");
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), SiteError> {
        let path = Path::from(key);
        match self.bucket.head(&path).await {
            Ok(_) => Ok(self.bucket.delete(&path).await?),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn model(post: &Post) -> PageModel {
    let publish_date = post.publish_date.clone().unwrap_or_default();
    PageModel {
        slug: post.slug.as_str().to_owned(),
        title: post.title.clone(),
        summary: post.summary.clone(),
        tags: post.tags.iter().map(|tag| tag.as_str().to_owned()).collect(),
        cover: post.cover.clone(),
        date: publish_date.get(..10).unwrap_or_default().to_owned(),
        publish_date,
        updated_at: post.updated_at.clone(),
        html: markdown::to_html(&post.body),
    }
}

impl From<super::InvalidPost> for SiteError {
    fn from(error: super::InvalidPost) -> Self {
        Self::Posts(PostError::Invalid(error))
    }
}
