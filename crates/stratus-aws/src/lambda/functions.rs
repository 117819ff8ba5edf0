//! The registry's functions built over the deployment's [`Ports`]: the same components the
//! local host installs, fed by Lambda's events instead of the local change stream.

use std::sync::Arc;

use futures::future::BoxFuture;
use stratus::apps::blog::{api, site, store, subscriber_api, subscribers, welcome};
use stratus::apps::media::{photos, thumbnailer};
use stratus::apps::registry::{self, FunctionSpec};
use stratus::ports::events::{BatchResponse, ObjectEvent, TableChange};
use stratus::services::functions::FunctionError;

use super::ports::{Ports, PortsError};

/// A table-change function: a batch of records in, the records that failed out.
pub type ChangeHandler =
    Arc<dyn Fn(Vec<TableChange>) -> BoxFuture<'static, Result<BatchResponse, FunctionError>> + Send + Sync>;
/// An object function: one S3 event record.
pub type ObjectHandler =
    Arc<dyn Fn(ObjectEvent) -> BoxFuture<'static, Result<(), FunctionError>> + Send + Sync>;

pub enum Handler {
    Http(axum::Router),
    TableChanges(ChangeHandler),
    Objects(ObjectHandler),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Http(_) => "Handler::Http",
            Self::TableChanges(_) => "Handler::TableChanges",
            Self::Objects(_) => "Handler::Objects",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no function is called `{name}`; the handler names one of: {}", function_names())]
    Unknown { name: String },
    #[error("function `{0}` is in the registry but not built for Lambda yet")]
    NotBuilt(&'static str),
    #[error(transparent)]
    Ports(#[from] PortsError),
    #[error("cannot prepare function `{function}`")]
    Prepare {
        function: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn function_names() -> String {
    registry::FUNCTIONS.map(|function| function.name).join(", ")
}

fn prepare(function: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> BuildError {
    BuildError::Prepare { function, source: Box::new(source) }
}

/// The function the handler setting names.
pub async fn build(name: &str, ports: &Ports) -> Result<Handler, BuildError> {
    let spec = registry::find(name).ok_or_else(|| BuildError::Unknown { name: name.to_owned() })?;
    match spec {
        registry::API => api(ports).await,
        registry::SITE_GENERATOR => site_generator(ports, spec).await,
        registry::WELCOME_EMAIL => welcome_email(ports, spec).await,
        registry::THUMBNAIL => thumbnail(ports).await,
        other => Err(BuildError::NotBuilt(other.name)),
    }
}

async fn api(ports: &Ports) -> Result<Handler, BuildError> {
    let config = &ports.config.blog;
    let table = ports.table(store::table_spec()).await?;
    let clock = Arc::clone(&ports.clock);
    let authorizer = ports.authorizer()?;
    let tokens =
        subscribers::UnsubscribeTokens::open(&table, Arc::clone(&clock), config.unsubscribe_link_ttl)
            .await
            .map_err(|e| prepare("api", e))?;
    let posts = store::PostStore::new(Arc::clone(&table), Arc::clone(&clock));
    let subscribers = subscribers::SubscriberStore::new(table, clock);
    let posts_api = api::router(api::BlogState::new(posts, Arc::clone(&authorizer), config.clone()));
    let subscriber_api = subscriber_api::router(subscriber_api::SubscriberState::new(
        subscribers,
        tokens,
        authorizer,
        config.clone(),
    ));
    // Route 53's health check asks each region's API here.
    let health = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    Ok(Handler::Http(posts_api.merge(subscriber_api).merge(health)))
}

async fn site_generator(ports: &Ports, spec: FunctionSpec) -> Result<Handler, BuildError> {
    let config = &ports.config.blog;
    let posts = store::PostStore::new(ports.table(store::table_spec()).await?, Arc::clone(&ports.clock));
    let bucket = ports.bucket(&config.site_bucket)?;
    // No template overrides on Lambda: the default theme is built in.
    let overrides = std::path::Path::new("/nonexistent/templates");
    let generator = site::SiteGenerator::new(posts, bucket, config, &ports.public_url, overrides)
        .map_err(|e| prepare(spec.name, e))?;
    // A new stack shows a site (an index saying "no posts yet") before its first post, as a
    // fresh `stratus serve` does.
    generator.ensure_rendered().await.map_err(|e| prepare(spec.name, e))?;
    let generator = Arc::new(generator);
    Ok(Handler::TableChanges(Arc::new(move |changes| {
        let generator = Arc::clone(&generator);
        Box::pin(async move {
            generator.apply(&changes).await.map_err(|error| Box::new(error) as FunctionError)?;
            Ok(BatchResponse::success())
        })
    })))
}

async fn welcome_email(ports: &Ports, spec: FunctionSpec) -> Result<Handler, BuildError> {
    let config = &ports.config.blog;
    let table = ports.table(store::table_spec()).await?;
    let clock = Arc::clone(&ports.clock);
    let tokens =
        subscribers::UnsubscribeTokens::open(&table, Arc::clone(&clock), config.unsubscribe_link_ttl)
            .await
            .map_err(|e| prepare(spec.name, e))?;
    let posts = store::PostStore::new(table, clock);
    let welcome = Arc::new(welcome::Welcome::new(
        ports.mailer().await?,
        tokens,
        posts,
        &config.title,
        &ports.public_url,
    ));
    Ok(Handler::TableChanges(Arc::new(move |changes| {
        let welcome = Arc::clone(&welcome);
        Box::pin(async move { Ok(welcome.handle(&changes).await) })
    })))
}

async fn thumbnail(ports: &Ports) -> Result<Handler, BuildError> {
    let config = &ports.config.media;
    let photos = photos::PhotoStore::new(ports.table(photos::table_spec()).await?, Arc::clone(&ports.clock));
    let thumbnailer = Arc::new(thumbnailer::Thumbnailer::new(ports.bucket(&config.bucket)?, photos, config));
    Ok(Handler::Objects(Arc::new(move |event| {
        let thumbnailer = Arc::clone(&thumbnailer);
        Box::pin(async move {
            // Lambda retries an S3 event twice, then hands it to the on-failure destination; it
            // does not say which attempt this is, so a photo is never marked failed from here.
            thumbnailer.handle(&event.key(), false).await.map_err(|error| Box::new(error) as FunctionError)
        })
    })))
}
