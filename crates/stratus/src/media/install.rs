//! Photos installed: the upload API and the `thumbnail` function on the media bucket's new
//! originals.

use std::sync::Arc;

use axum::Router;

use super::thumbnailer::Thumbnailer;
use super::{Media, MediaConfig, api};
use crate::component::{InstallError, Installer};
use crate::functions::{FunctionError, ObjectTrigger};
use crate::http::Problem;
use crate::http::body::BodyLimit;

/// Photos: the upload API and the `thumbnail` function on the media bucket's new originals.
pub async fn install(
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
        "thumbnail",
        &media.source,
        ObjectTrigger::created(with.stream).prefix("photos/"),
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
    Ok(functions.merge(api::uploads(state)))
}
