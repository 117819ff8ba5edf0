//! Object storage: `object_store::ObjectStore` over the local filesystem, one directory per
//! bucket under `<stage dir>/buckets`. Every store handed out is an [`EventedStore`], which
//! validates keys by S3's rules (and refuses anything that could leave the bucket directory) and
//! appends S3-shaped object events to the change stream once a write has landed.

#[cfg(feature = "conformance")]
pub mod conformance;
mod encrypted;
mod evented;

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use percent_encoding::percent_decode_str;

pub use encrypted::{Encrypted, StageKey, stage_key_path};
use evented::Files;
pub use evented::{Created, EventedStore, Removed, Staged};

use crate::infra::clock::Clock;
use crate::infra::sqlite::{Database, DbError};

/// What a read through a bucket yields, as a stream of large pieces: a local file is read 256
/// KiB at a time (object_store's own stream reads 8 KiB, one blocking call each).
pub fn read_stream(
    result: object_store::GetResult,
) -> futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>> {
    use futures::StreamExt as _;
    const READ_BYTES: u64 = 256 * 1024;
    let range = result.range.clone();
    let (file, path) = match result.payload {
        object_store::GetResultPayload::File(file, path) => (file, path),
        object_store::GetResultPayload::Stream(stream) => return stream,
    };
    let failed = move |source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("cannot read {}: {source}", path.display()).into(),
    };
    let file = tokio::fs::File::from_std(file);
    futures::stream::try_unfold(
        (file, range.start, range.end - range.start, false),
        move |(mut file, start, left, positioned)| {
            let failed = failed.clone();
            async move {
                use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                // A fresh handle reads from 0: only a range needs the (blocking) seek.
                if !positioned && start > 0 {
                    file.seek(std::io::SeekFrom::Start(start)).await.map_err(&failed)?;
                }
                if left == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(left.min(READ_BYTES)).unwrap_or(READ_BYTES as usize);
                let mut buffer = bytes::BytesMut::with_capacity(want);
                while buffer.len() < want {
                    let read = (&mut file)
                        .take((want - buffer.len()) as u64)
                        .read_buf(&mut buffer)
                        .await
                        .map_err(&failed)?;
                    if read == 0 {
                        return Err(failed(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the object shrank while being read",
                        )));
                    }
                }
                let sent = buffer.len() as u64;
                Ok(Some((buffer.freeze(), (file, start, left - sent, true))))
            }
        },
    )
    .boxed()
}

/// S3's limit on key length, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("object key must not be empty")]
    Empty,
    #[error("object key is {0} bytes; the limit is 1024")]
    TooLong(usize),
    #[error("object key must not contain control characters such as NUL")]
    ControlCharacter,
    #[error("object key must not contain a backslash")]
    Backslash,
    #[error("object key must not start or end with '/' or contain '//'")]
    EmptySegment,
    #[error("object key must not contain '.' or '..' segments, plain or percent-encoded")]
    Traversal,
    #[error("object key must not end in '#' followed by digits (reserved for uploads in progress)")]
    ReservedSuffix,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(
        "invalid bucket name `{name}`: use 3-63 characters of a-z, 0-9, '.', '-', starting and ending with a letter or digit"
    )]
    InvalidBucketName { name: String },
    #[error("cannot create bucket directory {}", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list the buckets in {}", path.display())]
    ListBuckets {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open bucket `{bucket}`")]
    Open {
        bucket: String,
        #[source]
        source: object_store::Error,
    },
    #[error("storage failure")]
    Storage(#[from] DbError),
    #[error("cannot read or create the stage's encryption key {}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encrypt the objects of bucket `{bucket}` written before it was encrypted")]
    Encrypt {
        bucket: String,
        #[source]
        source: std::io::Error,
    },
}

/// Parses a client-supplied key into a store path, by S3's rules plus what a filesystem needs:
/// at most 1024 bytes, no control characters, no backslashes, no empty, `.` or `..` segments —
/// also when percent-encoded.
pub fn parse_key(key: &str) -> Result<Path, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong(key.len()));
    }
    if key.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    if key.contains('\\') {
        return Err(KeyError::Backslash);
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(KeyError::EmptySegment);
        }
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        if matches!(decoded.as_ref(), "." | "..")
            || decoded.contains(['/', '\\'])
            || decoded.chars().any(char::is_control)
        {
            return Err(KeyError::Traversal);
        }
    }
    if let Some((_, suffix)) = key.rsplit_once('#')
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(KeyError::ReservedSuffix);
    }
    // Every segment was checked above, so parsing cannot fail; map it anyway.
    Path::parse(key).map_err(|_| KeyError::Traversal)
}

/// Checks a bucket name by S3's rules.
pub fn validate_bucket_name(name: &str) -> Result<(), BlobError> {
    let bytes = name.as_bytes();
    let valid = (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("..");
    if valid { Ok(()) } else { Err(BlobError::InvalidBucketName { name: name.to_owned() }) }
}

/// The stream source of a bucket's object events.
pub fn stream_source(bucket: &str) -> String {
    format!("bucket/{bucket}")
}

/// `[buckets]`: which buckets are encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BucketsConfig {
    /// Encrypted at rest (S3's SSE-S3: AES-256-GCM under the stage's key,
    /// `<stage>/sse-s3.key`); objects already in such a bucket are encrypted when it opens.
    pub encrypted: Vec<String>,
}

impl Default for BucketsConfig {
    fn default() -> Self {
        Self { encrypted: vec!["user-files".into()] }
    }
}

impl BucketsConfig {
    pub fn validate(&self) -> Result<(), crate::infra::settings::Invalid> {
        match self.encrypted.iter().find(|name| validate_bucket_name(name).is_err()) {
            Some(name) => {
                crate::infra::settings::invalid("buckets.encrypted", format!("`{name}` is not a bucket name"))
            }
            None => Ok(()),
        }
    }
}

/// The stage's buckets.
#[derive(Debug)]
pub struct Buckets {
    root: PathBuf,
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    region: String,
    fsync: bool,
    encrypted: std::collections::BTreeSet<String>,
    /// The stage key, read (or created) when the first encrypted bucket opens.
    key: std::sync::OnceLock<StageKey>,
    key_path: PathBuf,
    open: Mutex<HashMap<String, Arc<EventedStore>>>,
}

impl Buckets {
    /// `fsync` makes every write durable against power loss before it is acknowledged;
    /// the buckets `config` names are encrypted under the key at `key_path`.
    pub fn new(
        root: &FsPath,
        db: Arc<Database>,
        clock: Arc<dyn Clock>,
        region: &str,
        fsync: bool,
        config: &BucketsConfig,
        key_path: &FsPath,
    ) -> Result<Self, BlobError> {
        crate::ports::stream::migrate(&db)?;
        Ok(Self {
            root: root.to_owned(),
            db,
            clock,
            region: region.to_owned(),
            fsync,
            encrypted: config.encrypted.iter().cloned().collect(),
            key: std::sync::OnceLock::new(),
            key_path: key_path.to_owned(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Noncurrent versions kept by the S3 endpoint: `<stage>/versions/<bucket>/`.
    fn versions_root(&self) -> PathBuf {
        self.root.parent().unwrap_or(&self.root).join("versions")
    }

    /// A directory's store (encrypted or not) and the plain store that maps keys to its files.
    fn open_directory(
        &self,
        bucket: &str,
        directory: &FsPath,
        encrypted: bool,
    ) -> Result<(Box<dyn object_store::ObjectStore>, LocalFileSystem), BlobError> {
        std::fs::create_dir_all(directory)
            .map_err(|source| BlobError::CreateDirectory { path: directory.to_owned(), source })?;
        let open = || {
            LocalFileSystem::new_with_prefix(directory)
                .map(|local| local.with_automatic_cleanup(true).with_fsync(self.fsync))
                .map_err(|source| BlobError::Open { bucket: bucket.to_owned(), source })
        };
        let store: Box<dyn object_store::ObjectStore> =
            if encrypted { Box::new(Encrypted::new(open()?, self.stage_key()?)) } else { Box::new(open()?) };
        Ok((store, open()?))
    }

    fn stage_key(&self) -> Result<StageKey, BlobError> {
        if let Some(key) = self.key.get() {
            return Ok(key.clone());
        }
        let key = StageKey::open(&self.key_path)
            .map_err(|source| BlobError::Key { path: self.key_path.clone(), source })?;
        Ok(self.key.get_or_init(|| key).clone())
    }

    /// The bucket's store if the bucket exists (has a directory); never creates one.
    pub fn existing(&self, name: &str) -> Result<Option<Arc<EventedStore>>, BlobError> {
        validate_bucket_name(name)?;
        if !self.root.join(name).is_dir() {
            return Ok(None);
        }
        self.bucket(name).map(Some)
    }

    /// The buckets that exist, by name, with when each was created (its directory's time).
    pub fn list(&self) -> Result<Vec<(String, std::time::SystemTime)>, BlobError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(BlobError::ListBuckets { path: self.root.clone(), source }),
        };
        let mut buckets = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else { continue };
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() && validate_bucket_name(&name).is_ok() {
                buckets.push((
                    name,
                    metadata.created().or_else(|_| metadata.modified()).unwrap_or(std::time::UNIX_EPOCH),
                ));
            }
        }
        buckets.sort();
        Ok(buckets)
    }

    /// The bucket's store, creating its directory on first use.
    pub fn bucket(&self, name: &str) -> Result<Arc<EventedStore>, BlobError> {
        validate_bucket_name(name)?;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = open.get(name) {
            return Ok(Arc::clone(store));
        }
        let directory = self.root.join(name);
        let encrypted = self.encrypted.contains(name);
        let (inner, paths) = self.open_directory(name, &directory, encrypted)?;
        if encrypted {
            let converted = encrypted::encrypt_plaintext_files(&directory, &self.stage_key()?)
                .map_err(|source| BlobError::Encrypt { bucket: name.to_owned(), source })?;
            if converted > 0 {
                tracing::info!(
                    bucket = name,
                    converted,
                    "objects written before the bucket was encrypted now are"
                );
            }
        }
        let archive_directory = self.versions_root().join(name);
        let (archive, archive_paths) = self.open_directory(name, &archive_directory, encrypted)?;
        let files = Files { objects: paths, archive: archive_paths, archived: archive };
        let store = Arc::new(EventedStore::new(
            name,
            inner,
            files,
            encrypted,
            Arc::clone(&self.db),
            Arc::clone(&self.clock),
            &self.region,
        ));
        open.insert(name.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_s3_rules_and_stay_inside_the_bucket() {
        assert_eq!(parse_key("photos/2024/summer trip.jpg").unwrap().as_ref(), "photos/2024/summer trip.jpg");
        assert_eq!(parse_key("ünïcødé/ключ").unwrap().as_ref(), "ünïcødé/ключ");
        assert_eq!(parse_key("a#b").unwrap().as_ref(), "a#b");
        assert_eq!(parse_key(""), Err(KeyError::Empty));
        assert_eq!(parse_key(&"k".repeat(1025)), Err(KeyError::TooLong(1025)));
        assert!(parse_key(&"k".repeat(1024)).is_ok());
        for traversal in ["../etc/passwd", "a/../../b", "a/./b", "%2e%2e/x", "a/%2E%2E", "a/%2f..", ".."] {
            assert_eq!(parse_key(traversal), Err(KeyError::Traversal), "{traversal}");
        }
        assert_eq!(parse_key("a\0b"), Err(KeyError::ControlCharacter));
        assert_eq!(parse_key("a%00b"), Err(KeyError::Traversal));
        assert_eq!(parse_key("a\\..\\b"), Err(KeyError::Backslash));
        assert_eq!(parse_key("/abs"), Err(KeyError::EmptySegment));
        assert_eq!(parse_key("dir/"), Err(KeyError::EmptySegment));
        assert_eq!(parse_key("a//b"), Err(KeyError::EmptySegment));
        assert_eq!(parse_key("upload#12"), Err(KeyError::ReservedSuffix));
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(validate_bucket_name("site").is_ok());
        assert!(validate_bucket_name("media.example-1").is_ok());
        for bad in ["ab", "Site", "-site", "site-", "a..b", "a_b", &"a".repeat(64)] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
