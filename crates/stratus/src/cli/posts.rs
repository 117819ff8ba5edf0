//! `stratus posts` and `stratus site`: publishing Markdown files and rebuilding the site.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::{open_platform, progress_bar, public_url};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// Create or update posts from Markdown files with YAML front matter (title, slug, tags,
    /// date, draft, summary, cover). A running server regenerates their pages within a second.
    Publish {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Recorded as the author of new posts.
        #[arg(long, default_value = "operator")]
        author: String,
    },
    /// Every post, drafts included.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Regenerate every page of the site (after a theme change).
    Rebuild,
}

async fn open_blog(config: &Config) -> anyhow::Result<crate::apps::blog::Blog> {
    let platform = open_platform(config)?;
    let public_url = public_url(config, &platform);
    Ok(crate::apps::blog::Blog::open(&platform, &config.blog, &public_url).await?)
}

pub(super) async fn posts(command: PostsCommand, config: &Config) -> anyhow::Result<()> {
    let blog = open_blog(config).await?;
    match command {
        PostsCommand::Publish { files, author } => {
            // A bar only where someone watches; every result is printed either way.
            let watched = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let bar = (files.len() > 1 && watched).then(|| progress_bar(files.len(), "posts"));
            let print = |line: String, failed: bool| {
                let emit = || if failed { eprintln!("{line}") } else { println!("{line}") };
                match &bar {
                    Some(bar) => bar.suspend(emit),
                    None => emit(),
                }
            };
            let mut failures = 0;
            for file in &files {
                match publish_file(&blog, file, &author).await {
                    Ok(line) => print(line, false),
                    Err(error) => {
                        failures += 1;
                        print(format!("{}: {error:#}", file.display()), true);
                    }
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if failures > 0 {
                anyhow::bail!("{failures} of {} files were not published", files.len());
            }
        }
        PostsCommand::List => {
            println!("{:<40} {:<10} {:<21} {:>4}  TITLE", "SLUG", "STATUS", "PUBLISHED", "VER");
            for post in blog.posts.list_all().await? {
                println!(
                    "{:<40} {:<10} {:<21} {:>4}  {}",
                    post.slug,
                    post.status.as_str(),
                    post.publish_date.as_deref().unwrap_or("-"),
                    post.version,
                    post.title
                );
            }
        }
    }
    Ok(())
}

/// Creates or replaces one post from a file; the line to print about it.
async fn publish_file(
    blog: &crate::apps::blog::Blog,
    file: &std::path::Path,
    author: &str,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let stem = file.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
    let input = crate::apps::blog::front_matter::parse(&text, stem)?;
    let slug = crate::apps::blog::Slug::parse(input.slug.as_deref().unwrap_or_default())?;
    let content = input.content()?;
    let status = input.status.unwrap_or(crate::apps::blog::PostStatus::Published);
    let post = match blog.posts.get(&slug).await? {
        None => blog.posts.create(slug, content, status, author).await?,
        Some(_) => {
            blog.posts
                .replace(&slug, None, move |post| {
                    post.title = content.title;
                    post.body = content.body;
                    post.summary = content.summary;
                    post.tags = content.tags;
                    post.cover = content.cover;
                    post.publish_date = content.publish_date.or(post.publish_date.take());
                    post.status = status;
                })
                .await?
        }
    };
    Ok(format!("{}  {}  v{}  {}", post.slug, post.status.as_str(), post.version, post.title))
}

pub(super) async fn rebuild_site(config: &Config) -> anyhow::Result<()> {
    let blog = open_blog(config).await?;
    let bar = progress_bar(0, "posts");
    let pages = blog
        .generator
        .rebuild(&|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
    bar.finish_and_clear();
    println!("rebuilt the site: {pages} posts with their index, tag, feed and sitemap pages");
    Ok(())
}
