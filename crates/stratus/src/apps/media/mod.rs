//! The blog's photos: uploads to the media bucket (`api`), the `thumbnail` function that renders
//! their thumbnails (`thumbnailer`, over the `thumbnail` engine), and the photo items that record
//! each one's state (`photos`).

mod config;
mod install;
pub use config::MediaConfig;
pub(crate) use install::install;

pub mod api;
pub mod photos;
pub mod thumbnail;
pub mod thumbnailer;

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use object_store::{MultipartUpload as _, ObjectStore, ObjectStoreExt as _, PutPayload};

use crate::services::signing::{SignedLinks, SigningError};

const UPLOAD_AUDIENCE: &str = "photo-upload";

/// The media parts over a stage's platform.
#[derive(Debug, Clone)]
pub struct Media {
    pub photos: photos::PhotoStore,
    /// The media bucket, as functions reach object storage: through the port.
    pub bucket: Arc<dyn ObjectStore>,
    /// The bucket's event stream (for the `thumbnail` function's trigger).
    pub source: String,
    /// Presigned upload links: the subject is `<photo id> <uploader>`.
    pub upload_links: SignedLinks,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot open the media table")]
    Table(#[from] crate::ports::table::TableError),
    #[error("cannot open the media bucket")]
    Bucket(#[from] crate::ports::blobs::BlobError),
    #[error("cannot prepare upload links")]
    Signing(#[from] SigningError),
}

impl Media {
    /// A presigned upload: the id the photo will have, and the token that allows one upload
    /// of it until the returned time.
    pub fn presign(
        &self,
        uploaded_by: &str,
    ) -> Result<(String, String, std::time::SystemTime), SigningError> {
        let id = Self::new_id();
        let (token, expires) = self.upload_links.issue(&format!("{id} {uploaded_by}"))?;
        Ok((id, token, expires))
    }

    /// The uploader a presigned token allows to upload photo `id`.
    pub fn check_presigned(&self, id: &str, token: &str) -> Result<String, SigningError> {
        let subject = self.upload_links.verify(token)?;
        match subject.split_once(' ') {
            Some((signed_id, uploader)) if signed_id == id => Ok(uploader.to_owned()),
            _ => Err(SigningError::Invalid),
        }
    }
}

/// Why an upload was not stored; nothing of it remains.
#[derive(Debug, thiserror::Error)]
pub enum UploadError<E: std::error::Error + 'static> {
    #[error("photos are limited to {limit} bytes")]
    TooLarge { limit: usize },
    #[error("this photo has been uploaded already")]
    Taken,
    #[error("the upload was interrupted")]
    Source(#[source] E),
    #[error("cannot write the media bucket")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Photo(#[from] photos::PhotoError),
}

/// A stored upload: the photo's id and size; its state is `pending` until thumbnailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub id: String,
    pub key: String,
    pub bytes: u64,
}

impl Media {
    /// A fresh photo id.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Streams `chunks` into `photos/<id>.<ext>`, the extension following the content (`bin`
    /// when it is no image: the `thumbnail` function then says why). The photo item is written
    /// first, so the function always finds it; on any failure both are removed. An id already
    /// used (a presigned URL's, twice) is [`UploadError::Taken`].
    pub async fn upload<S, E>(
        &self,
        id: &str,
        mut chunks: S,
        uploaded_by: &str,
        limit: usize,
    ) -> Result<Uploaded, UploadError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::error::Error + 'static,
    {
        let first = chunks.next().await.transpose().map_err(UploadError::Source)?.unwrap_or_default();
        let key = format!("photos/{id}.{}", extension_for(&first));
        match self.photos.create(id, &key, uploaded_by).await {
            Ok(()) => {}
            Err(photos::PhotoError::Table(crate::ports::table::TableError::ConditionFailed)) => {
                return Err(UploadError::Taken);
            }
            Err(error) => return Err(error.into()),
        }
        let mut upload = match self.bucket.put_multipart(&key.as_str().into()).await {
            Ok(upload) => upload,
            Err(error) => {
                self.photos.delete(id).await?;
                return Err(error.into());
            }
        };
        let stored: Result<usize, UploadError<E>> = async {
            let written = copy(upload.as_mut(), first, &mut chunks, limit).await?;
            self.photos.set_size(id, written as u64).await?;
            // The object event, and with it the thumbnail function, follows completion.
            upload.complete().await?;
            Ok(written)
        }
        .await;
        let written = match stored {
            Ok(written) => written,
            Err(error) => {
                let _ = upload.abort().await;
                self.photos.delete(id).await?;
                return Err(error);
            }
        };
        tracing::info!(%id, bytes = written, "photo uploaded");
        Ok(Uploaded { id: id.to_owned(), key, bytes: written as u64 })
    }
}

/// The original's extension, by its leading bytes (`bin` when it is no image we take).
fn extension_for(first: &[u8]) -> &'static str {
    thumbnail::sniff(first).map_or("bin", thumbnail::SourceFormat::extension)
}

/// Copies `first` and the rest of `chunks` into `upload`, refusing more than `limit` bytes.
async fn copy<S, E>(
    upload: &mut dyn object_store::MultipartUpload,
    first: Bytes,
    chunks: &mut S,
    limit: usize,
) -> Result<usize, UploadError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let mut written = 0usize;
    let mut next = Some(Ok(first));
    while let Some(chunk) = next.take() {
        let chunk = chunk.map_err(UploadError::Source)?;
        written += chunk.len();
        if written > limit {
            return Err(UploadError::TooLarge { limit });
        }
        if !chunk.is_empty() {
            upload.put_part(PutPayload::from(chunk)).await?;
        }
        next = chunks.next().await;
    }
    Ok(written)
}
