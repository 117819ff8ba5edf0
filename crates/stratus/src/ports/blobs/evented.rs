//! The decorator that gives a store S3's event notifications: after a write or delete lands, an
//! `ObjectCreated:*` / `ObjectRemoved:Delete` record is appended to the change stream, from
//! where consumers receive it at least once (also after a crash, since the record is durable
//! before the call returns).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use super::{parse_key, stream_source};
use crate::infra::clock::Clock;
use crate::infra::sqlite::{Database, DbError};
use crate::ports::events::{
    BucketRef, ObjectEvent, ObjectEventEntity, ObjectRef, RequestParameters, ResponseElements, S3Principal,
    encode_event_key,
};

const STORE_NAME: &str = "stratus";

/// The principal that writes and owns every local bucket: the stage itself.
fn principal() -> S3Principal {
    S3Principal { principal_id: STORE_NAME.into() }
}

/// A bucket: a local store whose writes emit object events.
#[derive(Debug)]
pub struct EventedStore {
    /// The bucket's files, encrypted at rest or not.
    inner: Box<dyn ObjectStore>,
    files: Files,
    encrypted: bool,
    notifier: Arc<Notifier>,
}

/// Where a bucket's objects and its archive of noncurrent versions live on disk.
#[derive(Debug)]
pub(super) struct Files {
    /// Maps keys to the files of the bucket's directory.
    pub(super) objects: LocalFileSystem,
    /// Maps archived names to the files of the archive's directory.
    pub(super) archive: LocalFileSystem,
    /// The archive, read as the bucket is (decrypted if encrypted).
    pub(super) archived: Box<dyn ObjectStore>,
}

#[derive(Debug)]
struct Notifier {
    bucket: String,
    source: String,
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    region: String,
}

impl EventedStore {
    pub(super) fn new(
        bucket: &str,
        inner: Box<dyn ObjectStore>,
        files: Files,
        encrypted: bool,
        db: Arc<Database>,
        clock: Arc<dyn Clock>,
        region: &str,
    ) -> Self {
        let notifier = Notifier {
            bucket: bucket.to_owned(),
            source: stream_source(bucket),
            db,
            clock,
            region: region.to_owned(),
        };
        Self { inner, files, encrypted, notifier: Arc::new(notifier) }
    }

    pub fn bucket(&self) -> &str {
        &self.notifier.bucket
    }

    /// Whether the bucket's objects are encrypted at rest (SSE-S3).
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The name consumers use to subscribe to this bucket's events.
    pub fn stream_source(&self) -> &str {
        &self.notifier.source
    }
}

impl fmt::Display for EventedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventedStore({})", self.notifier.bucket)
    }
}

/// Re-validates a path handed to the store, whoever built it.
fn check(location: &Path) -> object_store::Result<()> {
    parse_key(location.as_ref())
        .map(|_| ())
        .map_err(|source| object_store::Error::Generic { store: STORE_NAME, source: Box::new(source) })
}

fn storage_error(source: DbError) -> object_store::Error {
    object_store::Error::Generic { store: STORE_NAME, source: Box::new(source) }
}

impl Notifier {
    async fn emit(
        &self,
        event_name: &str,
        key: &Path,
        size: Option<u64>,
        e_tag: Option<String>,
    ) -> object_store::Result<()> {
        let now = self.clock.now();
        let event = ObjectEvent {
            event_version: "2.1".into(),
            event_source: "aws:s3".into(),
            aws_region: self.region.clone(),
            event_time: humantime::format_rfc3339_millis(now).to_string(),
            event_name: event_name.into(),
            user_identity: principal(),
            // Writes reach the store from inside the process: the API, a function or the CLI.
            request_parameters: RequestParameters { source_ip_address: "127.0.0.1".into() },
            response_elements: ResponseElements {
                request_id: uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase(),
                host_id: STORE_NAME.into(),
            },
            s3: ObjectEventEntity {
                s3_schema_version: "1.0".into(),
                configuration_id: "stratus".into(),
                bucket: BucketRef {
                    name: self.bucket.clone(),
                    owner_identity: principal(),
                    arn: format!("arn:aws:s3:::{}", self.bucket),
                },
                object: ObjectRef {
                    key: encode_event_key(key.as_ref()),
                    size,
                    e_tag,
                    version_id: None,
                    // Filled in from the sequence number when the record is read.
                    sequencer: String::new(),
                },
            },
        };
        let body = serde_json::to_string(&event)
            .map_err(|source| object_store::Error::Generic { store: STORE_NAME, source: Box::new(source) })?;
        let source = self.source.clone();
        let created_at = crate::infra::clock::millis_since_epoch(now);
        self.db
            .write(move |transaction| {
                crate::ports::stream::append(transaction, &source, created_at, &body).map_err(DbError::from)
            })
            .await
            .map_err(storage_error)?;
        tracing::debug!(bucket = %self.bucket, key = %key, event = event_name, "object event recorded");
        Ok(())
    }
}

/// How an object went away, named as S3 names the `ObjectRemoved:*` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Delete,
    /// Deleted from a versioned bucket, where a delete marker now stands for it.
    DeleteMarkerCreated,
}

impl EventedStore {
    /// Deletes the object at `location`, emitting `removed`; `false` if there was none.
    pub async fn remove(&self, location: &Path, removed: Removed) -> object_store::Result<bool> {
        check(location)?;
        match self.inner.delete(location).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(error),
        }
        let name = match removed {
            Removed::Delete => "ObjectRemoved:Delete",
            Removed::DeleteMarkerCreated => "ObjectRemoved:DeleteMarkerCreated",
        };
        self.notifier.emit(name, location, None, None).await?;
        Ok(true)
    }

    /// Keeps the object now at `location` in the bucket's archive as `name` as well (a hard
    /// link: the object stays where it is until it is replaced or removed). `false` if there
    /// is no object there.
    pub fn keep(&self, location: &Path, name: &str) -> object_store::Result<bool> {
        check(location)?;
        let from = self.files.objects.path_to_filesystem(location)?;
        let to = self.files.archive.path_to_filesystem(&archived_name(name)?)?;
        match std::fs::hard_link(&from, &to) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(object_store::Error::Generic { store: STORE_NAME, source: Box::new(error) }),
        }
    }

    /// Makes the archived `name` the object at `location` again (a hard link, atomic for
    /// readers), without an event: it is a version S3 already announced.
    pub fn reinstate(&self, name: &str, location: &Path) -> object_store::Result<()> {
        check(location)?;
        let from = self.files.archive.path_to_filesystem(&archived_name(name)?)?;
        let to = self.files.objects.path_to_filesystem(location)?;
        let generic = |error: std::io::Error| object_store::Error::Generic {
            store: STORE_NAME,
            source: Box::new(error),
        };
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(generic)?;
        }
        // Linked beside the target, then renamed over it: readers see the old or the new file.
        let staging = to.with_file_name(format!(".{name}.reinstating"));
        std::fs::hard_link(&from, &staging).map_err(generic)?;
        std::fs::rename(&staging, &to).map_err(generic)
    }

    /// The archive of noncurrent versions, read as the bucket is read.
    pub fn archived(&self) -> &dyn ObjectStore {
        self.files.archived.as_ref()
    }

    /// Forgets the archived `name`.
    pub async fn discard(&self, name: &str) -> object_store::Result<()> {
        match self.files.archived.delete(&archived_name(name)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// An archive name: a version id, one path segment of letters, digits, `-` and `_`.
fn archived_name(name: &str) -> object_store::Result<Path> {
    if name.is_empty()
        || !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(object_store::Error::Generic {
            store: STORE_NAME,
            source: format!("`{name}` is not an archive name").into(),
        });
    }
    Ok(Path::from(name))
}

/// How an object came to be, named as S3 names the `ObjectCreated:*` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Put,
    Copy,
    CompleteMultipartUpload,
}

impl Created {
    fn event_name(self) -> &'static str {
        match self {
            Self::Put => "ObjectCreated:Put",
            Self::Copy => "ObjectCreated:Copy",
            Self::CompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
        }
    }
}

impl EventedStore {
    /// Starts writing an object piece by piece, invisible until [`Staged::commit`]: what a
    /// streamed upload needs, whose checksums are known only at its end.
    pub async fn stage(&self, location: &Path) -> object_store::Result<Staged> {
        check(location)?;
        let upload = self.inner.put_multipart_opts(location, PutMultipartOptions::default()).await?;
        Ok(Staged { upload, location: location.clone(), size: 0, notifier: Arc::clone(&self.notifier) })
    }
}

/// An object being written: pieces are appended in order; nothing is visible, and no event
/// emitted, until it is committed. Dropped uncommitted, its staging file is left for
/// `abort`; call it.
#[derive(Debug)]
pub struct Staged {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    size: u64,
    notifier: Arc<Notifier>,
}

impl Staged {
    pub async fn write(&mut self, piece: Bytes) -> object_store::Result<()> {
        self.size += piece.len() as u64;
        self.upload.put_part(PutPayload::from_bytes(piece)).await
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the object visible and emits its event, carrying `e_tag` (S3's, e.g. the MD5).
    pub async fn commit(mut self, created: Created, e_tag: &str) -> object_store::Result<PutResult> {
        let result = self.upload.complete().await?;
        self.notifier
            .emit(created.event_name(), &self.location, Some(self.size), Some(e_tag.to_owned()))
            .await?;
        Ok(result)
    }

    /// Discards what was written.
    pub async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}

#[async_trait]
impl ObjectStore for EventedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        check(location)?;
        let size = payload.content_length() as u64;
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.notifier.emit("ObjectCreated:Put", location, Some(size), result.e_tag.clone()).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        check(location)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(EventedUpload {
            inner,
            location: location.clone(),
            size: 0,
            notifier: Arc::clone(&self.notifier),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        check(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let checked = locations.map(|location| location.and_then(|path| check(&path).map(|()| path))).boxed();
        let notifier = Arc::clone(&self.notifier);
        self.inner
            .delete_stream(checked)
            .then(move |deleted| {
                let notifier = Arc::clone(&notifier);
                async move {
                    let path = deleted?;
                    notifier.emit("ObjectRemoved:Delete", &path, None, None).await?;
                    Ok(path)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        check(from)?;
        check(to)?;
        self.inner.copy_opts(from, to, options).await?;
        let meta = self.inner.head(to).await?;
        self.notifier.emit("ObjectCreated:Copy", to, Some(meta.size), meta.e_tag).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        check(from)?;
        check(to)?;
        self.inner.rename_opts(from, to, options).await?;
        let meta = self.inner.head(to).await?;
        self.notifier.emit("ObjectCreated:Copy", to, Some(meta.size), meta.e_tag).await?;
        self.notifier.emit("ObjectRemoved:Delete", from, None, None).await
    }
}

/// A multipart upload that emits `ObjectCreated:CompleteMultipartUpload` when it completes.
#[derive(Debug)]
struct EventedUpload {
    inner: Box<dyn MultipartUpload>,
    location: Path,
    size: u64,
    notifier: Arc<Notifier>,
}

#[async_trait]
impl MultipartUpload for EventedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.size += data.content_length() as u64;
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await?;
        self.notifier
            .emit(
                "ObjectCreated:CompleteMultipartUpload",
                &self.location,
                Some(self.size),
                result.e_tag.clone(),
            )
            .await?;
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
