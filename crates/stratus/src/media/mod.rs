//! The blog's photos: uploads to the media bucket (`api`), the `thumbnail` function that renders
//! their thumbnails (`thumbnailer`, over the `thumbnail` engine), and the photo items that record
//! each one's state (`photos`).

pub mod api;
pub mod photos;
pub mod thumbnail;
pub mod thumbnailer;

use std::sync::Arc;

use crate::blobs::EventedStore;
use crate::config::Config;
use crate::platform::Platform;

/// The media parts over a stage's platform.
#[derive(Debug, Clone)]
pub struct Media {
    pub photos: photos::PhotoStore,
    pub bucket: Arc<EventedStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot open the media table")]
    Table(#[from] crate::table::TableError),
    #[error("cannot open the media bucket")]
    Bucket(#[from] crate::blobs::BlobError),
}

impl Media {
    pub fn open(platform: &Platform, config: &Config) -> Result<Self, MediaError> {
        let table = platform.table(photos::table_spec())?;
        let photos = photos::PhotoStore::new(Arc::new(table), Arc::clone(&platform.clock));
        let bucket = platform.buckets.bucket(&config.media.bucket)?;
        Ok(Self { photos, bucket })
    }
}
