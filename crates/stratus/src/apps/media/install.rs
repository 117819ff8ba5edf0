//! Photos installed: the upload API and the `thumbnail` function on the media bucket's new
//! originals.

use std::sync::Arc;

use axum::Router;
use object_store::ObjectStore;

use super::thumbnailer::Thumbnailer;
use super::{Media, MediaConfig, MediaError, UPLOAD_AUDIENCE, api, photos};
use crate::apps::registry::THUMBNAIL;
use crate::component::{InstallError, Installer};
use crate::infra::http::Problem;
use crate::infra::http::body::BodyLimit;
use crate::platform::Platform;
use crate::services::functions::{FunctionError, ObjectTrigger};
use crate::services::gateway::ApiOptions;
use crate::services::signing::SignedLinks;

/// Photos: the upload API and the `thumbnail` function on the media bucket's new originals.
pub(crate) async fn install(
    with: &mut Installer<'_>,
    config: &MediaConfig,
    authors_group: &str,
) -> Result<Router, InstallError> {
    let media = Media::open(with.platform, config)
        .await
        .map_err(|e| InstallError::open("media bucket and table", e))?;
    let host = &mut *with.host;
    let thumbnailer = Arc::new(Thumbnailer::new(Arc::clone(&media.bucket), media.photos.clone(), config));
    host.on_object_event(
        THUMBNAIL.name,
        &media.source,
        ObjectTrigger::created(with.stream).prefix(THUMBNAIL.prefix().unwrap_or_default()),
        move |invocation, event| {
            let thumbnailer = Arc::clone(&thumbnailer);
            async move {
                thumbnailer
                    .handle(&event.key(), invocation.last_attempt)
                    .await
                    .map_err(|error| Box::new(error) as FunctionError)
            }
        },
    )?;
    let state = api::PhotoState::new(api::PhotoContext {
        media,
        authorizer: Arc::clone(with.authorizer),
        config: config.clone(),
        authors_group: authors_group.to_owned(),
        public_url: with.public_url.to_owned(),
    });
    let limit = BodyLimit::new(with.functions.max_body_bytes, Problem::body_refused);
    let functions = host.http_function(api::functions(state.clone()), limit);
    let api = functions.merge(api::uploads(state));
    Ok(with.gateway.wrap(
        api,
        ApiOptions {
            requires_key: false,
            max_body_bytes: with.functions.max_body_bytes,
            strict_query: true,
            cache: None,
        },
    ))
}

impl Media {
    pub async fn open(platform: &Platform, config: &MediaConfig) -> Result<Self, MediaError> {
        let table: Arc<dyn crate::ports::table::Table> = Arc::new(platform.table(photos::table_spec())?);
        let photos = photos::PhotoStore::new(Arc::clone(&table), Arc::clone(&platform.clock));
        let evented = platform.buckets.bucket(&config.bucket)?;
        let source = evented.stream_source().to_owned();
        let bucket: Arc<dyn ObjectStore> = evented;
        let key = crate::item! { "id" => "SECRET#upload" };
        let clock = Arc::clone(&platform.clock);
        let upload_links =
            SignedLinks::open(&table, key, UPLOAD_AUDIENCE, clock, config.upload_link_ttl).await?;
        Ok(Self { photos, bucket, source, upload_links })
    }
}
