//! The `thumbnail` function: for each original created under `photos/`, the configured
//! thumbnails under `thumbnails/photos/<id>/`, then the photo item marked `ready` or `failed`.
//! Encoding is deterministic and the item update is a plain overwrite, so a second delivery of
//! the same event rewrites the same bytes and the same item.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

use super::photos::{PhotoError, PhotoStore, ThumbnailRef, id_of_key};
use super::thumbnail::{Rendered, render_queued};
use crate::apps::media::MediaConfig;
use crate::infra::telemetry::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailerError {
    #[error("cannot read or write the media bucket")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error("the thumbnail task stopped")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Debug)]
pub struct Thumbnailer {
    bucket: Arc<dyn ObjectStore>,
    photos: PhotoStore,
    config: MediaConfig,
}

impl Thumbnailer {
    pub fn new(bucket: Arc<dyn ObjectStore>, photos: PhotoStore, config: &MediaConfig) -> Self {
        Self { bucket, photos, config: config.clone() }
    }

    /// Handles the creation of `key`. A picture that cannot be thumbnailed marks its photo
    /// `failed` with the reason and succeeds (retrying cannot help); storage errors fail the
    /// invocation so the stream retries it. When that was the `last_attempt`, a pending photo is
    /// marked `failed` too rather than left `pending` behind a dead letter; redriving the letter
    /// runs this again and a success marks it `ready`.
    pub async fn handle(&self, key: &str, last_attempt: bool) -> Result<(), ThumbnailerError> {
        let result = self.thumbnail(key).await;
        if let (Err(error), true, Some(id)) = (&result, last_attempt, id_of_key(key)) {
            // The top-level message only: the causes name paths of the server, and photos are public.
            tracing::warn!(key, error = %error_chain(error), "photo failed after its last attempt");
            let reason = format!("thumbnails could not be stored: {error}");
            if let Err(marking) = self.photos.give_up(id, &reason).await {
                tracing::warn!(key, error = %error_chain(&marking), "cannot mark the photo failed");
            }
        }
        result
    }

    async fn thumbnail(&self, key: &str) -> Result<(), ThumbnailerError> {
        let Some(id) = id_of_key(key) else { return Ok(()) };
        if self.photos.get(id).await?.is_none() {
            tracing::warn!(key, "an original without a photo item: ignored");
            return Ok(());
        }
        let bytes = match self.bucket.get(&Path::from(key)).await {
            Ok(result) => result.bytes().await?,
            // Deleted since: nothing to do.
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let (widths, formats) = (self.config.thumbnail_widths.clone(), self.config.thumbnail_formats.clone());
        let rendered = render_queued(bytes, widths, formats, self.config.decode_limits()).await?;
        match rendered {
            Ok(rendered) => self.store(id, rendered).await,
            Err(reason) => {
                tracing::info!(key, %reason, "photo refused");
                Ok(self.photos.mark_failed(id, &reason.to_string()).await?)
            }
        }
    }

    async fn store(&self, id: &str, rendered: Rendered) -> Result<(), ThumbnailerError> {
        let mut refs = Vec::with_capacity(rendered.thumbnails.len());
        for thumbnail in rendered.thumbnails {
            let key =
                format!("thumbnails/photos/{id}/{}.{}", thumbnail.long_edge, thumbnail.format.extension());
            self.bucket.put(&Path::from(key.as_str()), PutPayload::from(thumbnail.bytes)).await?;
            refs.push(ThumbnailRef {
                key,
                format: thumbnail.format,
                width: thumbnail.width,
                height: thumbnail.height,
            });
        }
        self.photos.mark_ready(id, rendered.width, rendered.height, &refs).await?;
        tracing::info!(id, thumbnails = refs.len(), "photo ready");
        Ok(())
    }
}
