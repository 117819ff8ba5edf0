//! The blog installed: the posts and subscribers APIs, the site generator, the welcome email,
//! and the response cache in front of the posts API, with their triggers on the blog table.

use std::sync::Arc;

use axum::Router;

use super::subscriber_api::{self, SubscriberState};
use super::welcome::Welcome;
use super::{Blog, BlogConfig, OpenError, api, site, store, subscribers};
use crate::apps::registry::{SITE_GENERATOR, WELCOME_EMAIL};
use crate::component::{ChangeHook, InstallError, Installer};
use crate::infra::http::Problem;
use crate::infra::http::body::BodyLimit;
use crate::platform::Platform;
use crate::ports::events::BatchResponse;
use crate::ports::stream::EventFilter;
use crate::ports::table::Table;
use crate::services::functions::{FunctionError, HostError, StreamTrigger};
use crate::services::gateway::{ApiOptions, Scope};

/// The blog: the posts and subscribers APIs over the stage's `blog` table, the site generator
/// subscribed to its post changes and the welcome email to its new subscribers.
pub(crate) async fn install(
    with: &mut Installer<'_>,
    config: &BlogConfig,
) -> Result<(Router, SubscriberState), InstallError> {
    let (platform, public_url) = (with.platform, with.public_url);
    // The posts API's cached responses are everyone's: any post change, by whoever, ends them.
    let gateway = Arc::clone(with.gateway);
    let forget_responses: ChangeHook = Box::new(move |change| {
        if change.dynamodb.keys.get("sk").and_then(|sk| sk.as_s()) == Some("POST") {
            gateway.forget_all();
        }
    });
    let table = with.table(store::table_spec(), Some(forget_responses))?;
    let blog = Blog::over(platform, table.cached, table.direct, table.source, config, public_url)
        .await
        .map_err(|e| InstallError::open("blog", e))?;
    if blog.generator.ensure_rendered().await.map_err(|e| InstallError::open("blog's site", e))? {
        tracing::info!("the site had no pages yet: its index, feed, sitemap and 404 were rendered");
    }
    let host = &mut *with.host;
    let only_posts =
        EventFilter::parse(SITE_GENERATOR.filter().unwrap_or_default()).map_err(HostError::from)?;
    let generator = Arc::clone(&blog.generator);
    host.on_table_change(
        SITE_GENERATOR.name,
        &blog.source,
        StreamTrigger::new(with.stream).filter(only_posts.clone()),
        move |_, changes| {
            let generator = Arc::clone(&generator);
            async move {
                generator.apply(&changes).await.map_err(|error| Box::new(error) as FunctionError)?;
                Ok(BatchResponse::success())
            }
        },
    )?;
    let new_subscribers =
        EventFilter::parse(WELCOME_EMAIL.filter().unwrap_or_default()).map_err(HostError::from)?;
    let welcome = Arc::new(Welcome::new(
        Arc::clone(&platform.mailer),
        blog.tokens.clone(),
        blog.posts.clone(),
        &config.title,
        public_url,
    ));
    host.on_table_change(
        WELCOME_EMAIL.name,
        &blog.source,
        StreamTrigger::new(with.stream).filter(new_subscribers),
        move |_, changes| {
            let welcome = Arc::clone(&welcome);
            async move { Ok(welcome.handle(&changes).await) }
        },
    )?;
    let subscriptions =
        SubscriberState::new(blog.subscribers, blog.tokens, Arc::clone(with.authorizer), config.clone());
    // Subscriptions and unsubscribe links are never answered from the response cache.
    let subscriber_api = host.http_function(
        subscriber_api::router(subscriptions.clone()),
        BodyLimit::new(subscriber_api::MAX_SUBSCRIBE_BODY, Problem::body_refused),
    );
    let state = api::BlogState::new(blog.posts, Arc::clone(with.authorizer), config.clone());
    let posts_api =
        host.http_function(api::router(state), BodyLimit::new(config.max_body_bytes, Problem::body_refused));
    // Reads from the gateway's cache: a hit invokes no function, as on API Gateway.
    let posts_api = with.gateway.wrap(
        posts_api,
        ApiOptions {
            requires_key: false,
            max_body_bytes: config.max_body_bytes,
            strict_query: true,
            cache: Some(Scope::Public),
        },
    );
    let subscriber_api = with.gateway.wrap(
        subscriber_api,
        ApiOptions {
            requires_key: false,
            max_body_bytes: subscriber_api::MAX_SUBSCRIBE_BODY,
            strict_query: false,
            cache: None,
        },
    );
    Ok((posts_api.merge(subscriber_api), subscriptions))
}

impl Blog {
    /// `public_url` is the site's address in links, the feed and the sitemap. Templates in
    /// `<stage dir>/templates/` replace the default theme's files of the same name.
    pub async fn open(platform: &Platform, config: &BlogConfig, public_url: &str) -> Result<Self, OpenError> {
        let table = platform.table(store::table_spec())?;
        let source = table.stream_source().to_owned();
        let table: Arc<dyn Table> = Arc::new(table);
        Self::over(platform, Arc::clone(&table), table, source, config, public_url).await
    }

    /// The blog over its table: `reads` serves the APIs (the read cache, in the server),
    /// `direct` the site generator, which renders what the change it was called for left.
    async fn over(
        platform: &Platform,
        reads: Arc<dyn Table>,
        direct: Arc<dyn Table>,
        source: String,
        config: &BlogConfig,
        public_url: &str,
    ) -> Result<Self, OpenError> {
        let clock = Arc::clone(&platform.clock);
        let posts = store::PostStore::new(Arc::clone(&reads), Arc::clone(&clock));
        let subscribers = subscribers::SubscriberStore::new(Arc::clone(&reads), Arc::clone(&clock));
        let tokens =
            subscribers::UnsubscribeTokens::open(&direct, Arc::clone(&clock), config.unsubscribe_link_ttl)
                .await?;
        let bucket = platform.buckets.bucket(&config.site_bucket)?;
        let overrides = platform.stage_dir().join("templates");
        let rendered = store::PostStore::new(direct, clock);
        let generator = Arc::new(site::SiteGenerator::new(rendered, bucket, config, public_url, &overrides)?);
        Ok(Self { posts, subscribers, tokens, generator, source })
    }
}
