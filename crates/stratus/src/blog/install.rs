//! The blog installed: the posts and subscribers APIs, the site generator, the welcome email,
//! and the response cache in front of the posts API, with their triggers on the blog table.

use std::sync::Arc;

use axum::Router;

use super::subscriber_api::{self, SubscriberState};
use super::welcome::Welcome;
use super::{Blog, BlogConfig, api};
use crate::component::{InstallError, Installer};
use crate::events::BatchResponse;
use crate::functions::{FunctionError, HostError, StreamTrigger};
use crate::gateway::GatewayConfig;
use crate::http::Problem;
use crate::http::body::BodyLimit;
use crate::stream::EventFilter;

/// The blog: the posts and subscribers APIs over the stage's `blog` table, the site generator
/// subscribed to its post changes and the welcome email to its new subscribers.
pub async fn install(
    with: &mut Installer<'_>,
    config: &BlogConfig,
    gateway: &GatewayConfig,
) -> Result<(Router, SubscriberState), InstallError> {
    let (platform, public_url) = (with.platform, with.public_url);
    let blog = Blog::open(platform, config, public_url).await.map_err(|e| InstallError::open("blog", e))?;
    let host = &mut *with.host;
    let only_posts =
        EventFilter::parse(r#"{"dynamodb": {"Keys": {"sk": {"S": ["POST"]}}}}"#).map_err(HostError::from)?;
    let generator = Arc::clone(&blog.generator);
    host.on_table_change(
        "site-generator",
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
    let new_subscribers = EventFilter::parse(
        r#"{"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": ["SUBSCRIBER"]}}}}"#,
    )
    .map_err(HostError::from)?;
    let welcome = Arc::new(Welcome::new(
        Arc::clone(&platform.mailer),
        blog.tokens.clone(),
        blog.posts.clone(),
        &config.title,
        public_url,
    ));
    host.on_table_change(
        "welcome-email",
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
    if gateway.cache_ttl.is_zero() {
        return Ok((posts_api.merge(subscriber_api), subscriptions));
    }
    // The stage's response cache: anonymous reads from memory, cleared by any post change. It
    // stands outside the function's slot: a hit invokes no function, as on API Gateway.
    let cache = Arc::new(crate::gateway::ResponseCache::new(gateway.cache_bytes, gateway.cache_ttl));
    let cleared = Arc::clone(&cache);
    host.on_table_change(
        "api-cache-invalidate",
        &blog.source,
        StreamTrigger::new(with.stream).filter(only_posts),
        move |_, _| {
            cleared.clear();
            async { Ok(BatchResponse::success()) }
        },
    )?;
    let posts_api =
        posts_api.layer(axum::middleware::from_fn_with_state(cache, crate::gateway::cache_responses));
    Ok((posts_api.merge(subscriber_api), subscriptions))
}
