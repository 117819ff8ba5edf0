//! The S3-compatible endpoint: the stage's buckets over S3's REST API, on a listener of its own,
//! for AWS SDKs and CLIs with only the endpoint changed. s3s parses every operation and verifies
//! SigV4 (header, presigned, aws-chunked with signed chunks or trailers; SigV2 is refused before
//! it); the [`access`] gate checks credentials and asks IAM about each action; the operations
//! here keep S3's semantics over the buckets' files — MD5 ETags, metadata and checksums in the
//! [`catalog`], multipart parts in files of their own until completed, noncurrent [`versions`]
//! in each bucket's archive — and every write goes through the bucket's `EventedStore`, so
//! functions see the same object events as for any other write.

mod access;
mod actions;
mod catalog;
mod checksums;
mod config;
mod install;
mod listing;
mod multipart;
mod objects;
mod service;
mod transfer;
mod versions;

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use s3s::dto::{ETag, ServerSideEncryption, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};

pub use config::S3Config;
pub(crate) use install::{S3Listener, S3Parts, install};

use crate::infra::clock::Clock;
use crate::ports::blobs::{Buckets, EventedStore, parse_key};
use access::Gate;
use catalog::{Catalog, CatalogError};

/// The operations' shared state.
#[derive(Debug)]
pub(crate) struct Endpoint {
    buckets: Arc<Buckets>,
    catalog: Catalog,
    /// Parts of multipart uploads in progress: `<upload id>/<part number>`.
    parts: LocalFileSystem,
    gate: Gate,
    clock: Arc<dyn Clock>,
    region: String,
    max_object_bytes: u64,
}

impl Endpoint {
    fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    fn store(&self, bucket: &str) -> S3Result<Arc<EventedStore>> {
        match self.buckets.existing(bucket) {
            Ok(Some(store)) => Ok(store),
            Ok(None) | Err(crate::ports::blobs::BlobError::InvalidBucketName { .. }) => {
                Err(S3Error::with_message(S3ErrorCode::NoSuchBucket, "The specified bucket does not exist"))
            }
            Err(error) => Err(internal(&error)),
        }
    }
}

fn key_path(key: &str) -> S3Result<Path> {
    parse_key(key).map_err(|error| S3Error::with_message(S3ErrorCode::InvalidArgument, error.to_string()))
}

fn internal(error: &(dyn std::error::Error + 'static)) -> S3Error {
    tracing::error!(error = %crate::infra::telemetry::error_chain(error), "S3 endpoint failure");
    S3Error::with_message(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
}

impl From<CatalogError> for S3Error {
    fn from(error: CatalogError) -> Self {
        internal(&error)
    }
}

/// What a write into `store` reports as its server-side encryption: `AES256` for a bucket
/// encrypted at rest (every object in it is), nothing otherwise. A request for `AES256` on a
/// bucket that is not encrypted, or for anything else (KMS), is refused: nothing would honour it.
fn encryption(
    store: &EventedStore,
    requested: Option<&ServerSideEncryption>,
) -> S3Result<Option<ServerSideEncryption>> {
    match requested.map(ServerSideEncryption::as_str) {
        None | Some(ServerSideEncryption::AES256) if store.encrypted() => {
            Ok(Some(ServerSideEncryption::from_static(ServerSideEncryption::AES256)))
        }
        None => Ok(None),
        Some(ServerSideEncryption::AES256) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("bucket `{}` is not encrypted at rest (see [buckets] encrypted)", store.bucket()),
        )),
        Some(other) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("server-side encryption `{other}` is not supported; AES256 is"),
        )),
    }
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn timestamp(millis: i64) -> Timestamp {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or_default());
    Timestamp::from(at)
}

/// Sets the `checksum_*` field of an S3 output that matches the stored checksum.
macro_rules! set_checksum {
    ($output:expr, $checksum:expr) => {
        if let Some((algorithm, value)) = $checksum {
            let value = Some(value.clone());
            match algorithm {
                $crate::services::s3::checksums::Algorithm::Crc32 => $output.checksum_crc32 = value,
                $crate::services::s3::checksums::Algorithm::Crc32c => $output.checksum_crc32c = value,
                $crate::services::s3::checksums::Algorithm::Crc64Nvme => $output.checksum_crc64nvme = value,
                $crate::services::s3::checksums::Algorithm::Sha1 => $output.checksum_sha1 = value,
                $crate::services::s3::checksums::Algorithm::Sha256 => $output.checksum_sha256 = value,
            }
        }
    };
}
pub(crate) use set_checksum;
