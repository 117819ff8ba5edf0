//! Single-object operations: PUT, GET and HEAD (ranges, conditional headers), DELETE,
//! DeleteObjects (IAM asked per key), CopyObject.

use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt as _};
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETagCondition, GetObjectInput, GetObjectOutput,
    HeadObjectInput, HeadObjectOutput, PutObjectInput, PutObjectOutput, Timestamp,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::catalog::{Attributes, ObjectRow};
use super::checksums::Expected;
use super::transfer::{self, storage};
use super::versions::{Described, Source};
use super::{Endpoint, encryption, etag, key_path, set_checksum, timestamp};
use crate::ports::blobs::{Created, EventedStore, Removed};
use crate::services::cognito::identity_pool::Signer;

/// S3's content type for an object written without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Copies the stored headers and metadata into a GET or HEAD output.
macro_rules! describe {
    ($output:expr, $attributes:expr) => {{
        let attributes = $attributes;
        $output.content_type =
            Some(attributes.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()));
        $output.cache_control = attributes.cache_control;
        $output.content_disposition = attributes.content_disposition;
        $output.content_encoding = attributes.content_encoding;
        $output.content_language = attributes.content_language;
        if !attributes.metadata.is_empty() {
            $output.metadata = Some(attributes.metadata.into_iter().collect());
        }
    }};
}

/// An object as found: the store's view of the file and S3's description of it.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) meta: ObjectMeta,
    pub(super) row: ObjectRow,
}

/// The request's conditional headers.
#[derive(Debug, Default)]
struct Conditions {
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
}

fn seconds(timestamp: &Timestamp) -> i64 {
    time::OffsetDateTime::from(timestamp.clone()).unix_timestamp()
}

fn condition_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == etag,
    }
}

impl Conditions {
    /// RFC 9110's order: If-Match (else If-Unmodified-Since) fails with 412; If-None-Match
    /// (else If-Modified-Since) answers 304.
    fn check(&self, row: &ObjectRow) -> S3Result<()> {
        let modified = row.last_modified.div_euclid(1000);
        let failed = match (&self.if_match, &self.if_unmodified_since) {
            (Some(condition), _) => !condition_matches(condition, &row.etag),
            (None, Some(since)) => modified > seconds(since),
            (None, None) => false,
        };
        if failed {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let unchanged = match (&self.if_none_match, &self.if_modified_since) {
            (Some(condition), _) => condition_matches(condition, &row.etag),
            (None, Some(since)) => modified <= seconds(since),
            (None, None) => false,
        };
        if unchanged {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
        Ok(())
    }
}

impl Endpoint {
    /// The object at `path`, described by its catalog row when the row is the file's.
    pub(super) async fn find(&self, bucket: &str, store: &EventedStore, path: &Path) -> S3Result<Found> {
        let meta = match store.head(path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NoSuchKey,
                    "The specified key does not exist.",
                ));
            }
            Err(error) => return Err(storage(error)),
        };
        let tag = meta.e_tag.clone().unwrap_or_default();
        let row = match self.catalog.object(bucket, path.as_ref(), &tag)? {
            Some(row) => row,
            // Written by something other than this endpoint: what the store knows.
            None => ObjectRow {
                file_tag: tag.clone(),
                etag: tag,
                size: meta.size,
                attributes: Attributes::default(),
                checksum: None,
                last_modified: meta.last_modified.timestamp_millis(),
                version_id: None,
            },
        };
        Ok(Found { meta, row })
    }

    pub(super) async fn put(
        &self,
        request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let expected =
            Expected::from_request(&request.headers, request.uri.query(), request.input.content_md5.clone())?;
        let input = request.input;
        let store = self.store(&input.bucket)?;
        let path = key_path(&input.key)?;
        let encryption = encryption(&store, input.server_side_encryption.as_ref())?;
        let attributes = Attributes {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            metadata: input.metadata.unwrap_or_default().into_iter().collect(),
        };
        let mut staged = store.stage(&path).await.map_err(storage)?;
        let trailers = request.trailing_headers.as_ref();
        let (_, verified) =
            transfer::receive(input.body, self.max_object_bytes, &expected, trailers, &mut staged).await?;
        let described = Described { etag: verified.etag(), attributes, checksum: verified.checksum.clone() };
        let row = self
            .commit_object((&input.bucket, &input.key), &store, &path, staged, Created::Put, described)
            .await?;
        tracing::debug!(bucket = %input.bucket, key = %input.key, size = row.size, "object put");
        let mut output = PutObjectOutput {
            e_tag: Some(etag(&row.etag)),
            server_side_encryption: encryption,
            version_id: row.version_id,
            ..Default::default()
        };
        set_checksum!(output, &verified.checksum);
        Ok(S3Response::new(output))
    }

    pub(super) async fn get(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = request.input;
        if input.part_number.is_some() {
            return Err(s3_error!(NotImplemented, "GET by part number is not supported"));
        }
        let store = self.store(&input.bucket)?;
        let path = key_path(&input.key)?;
        let conditions = Conditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            if_modified_since: input.if_modified_since,
            if_unmodified_since: input.if_unmodified_since,
        };
        // The file read must be the one described: if it is replaced between the two steps,
        // the read fails its precondition and both are done again.
        for _ in 0..3 {
            let (row, source) =
                self.source(&input.bucket, &input.key, &store, &path, input.version_id.as_deref()).await?;
            conditions.check(&row)?;
            let range = match &input.range {
                Some(range) => Some(
                    range
                        .check(row.size)
                        .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?,
                ),
                None => None,
            };
            let result = match self.read_source(&store, &path, &source, range.clone()).await {
                Ok(result) => result,
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. })
                    if matches!(source, Source::Current { .. }) =>
                {
                    continue;
                }
                Err(error) => return Err(storage(error)),
            };
            let whole = range.is_none();
            let length = result.range.end - result.range.start;
            let mut output = GetObjectOutput {
                body: Some(transfer::send(result)),
                content_length: Some(i64::try_from(length).unwrap_or(i64::MAX)),
                content_range: range
                    .map(|range| format!("bytes {}-{}/{}", range.start, range.end - 1, row.size)),
                accept_ranges: Some("bytes".into()),
                e_tag: Some(etag(&row.etag)),
                last_modified: Some(timestamp(row.last_modified)),
                server_side_encryption: encryption(&store, None)?,
                version_id: row
                    .version_id
                    .clone()
                    .or_else(|| self.versioned_null(&input.bucket, input.version_id.as_deref())),
                ..Default::default()
            };
            describe!(output, row.attributes);
            if whole {
                set_checksum!(output, &row.checksum);
            }
            let status =
                if whole { axum::http::StatusCode::OK } else { axum::http::StatusCode::PARTIAL_CONTENT };
            return Ok(S3Response::with_status(output, status));
        }
        Err(s3_error!(SlowDown, "The object is being rewritten; retry"))
    }

    pub(super) async fn head(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = request.input;
        let store = self.store(&input.bucket)?;
        let path = key_path(&input.key)?;
        let (row, _) =
            self.source(&input.bucket, &input.key, &store, &path, input.version_id.as_deref()).await?;
        let conditions = Conditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            if_modified_since: input.if_modified_since,
            if_unmodified_since: input.if_unmodified_since,
        };
        conditions.check(&row)?;
        let mut output = HeadObjectOutput {
            version_id: row
                .version_id
                .clone()
                .or_else(|| self.versioned_null(&input.bucket, input.version_id.as_deref())),
            content_length: Some(i64::try_from(row.size).unwrap_or(i64::MAX)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&row.etag)),
            last_modified: Some(timestamp(row.last_modified)),
            server_side_encryption: encryption(&store, None)?,
            ..Default::default()
        };
        describe!(output, row.attributes);
        set_checksum!(output, &row.checksum);
        Ok(S3Response::new(output))
    }

    /// Deletes `key` (or one of its versions); deleting what is not there succeeds, as in S3.
    /// On a versioned bucket a delete without a version leaves a delete marker.
    async fn remove(&self, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Deleted> {
        let store = self.store(bucket)?;
        let path = key_path(key)?;
        if let Some(version_id) = version_id {
            let delete_marker = self.delete_version(bucket, key, &store, &path, version_id).await?;
            return Ok(Deleted { version_id: Some(version_id.to_owned()), delete_marker });
        }
        if let Some(state) = self.catalog.versioning(bucket)? {
            let marker = self.delete_with_marker(bucket, key, &store, &path, state).await?;
            return Ok(Deleted { version_id: Some(marker), delete_marker: true });
        }
        store.remove(&path, Removed::Delete).await.map_err(storage)?;
        self.catalog.remove_object(bucket, key).await?;
        Ok(Deleted { version_id: None, delete_marker: false })
    }

    pub(super) async fn delete(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = &request.input;
        let deleted = self.remove(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let output = DeleteObjectOutput {
            version_id: deleted.version_id,
            delete_marker: deleted.delete_marker.then_some(true),
            ..Default::default()
        };
        Ok(S3Response::with_status(output, axum::http::StatusCode::NO_CONTENT))
    }

    /// What a GET or HEAD reads: the current object, or the version asked for.
    async fn source(
        &self,
        bucket: &str,
        key: &str,
        store: &EventedStore,
        path: &Path,
        version_id: Option<&str>,
    ) -> S3Result<(ObjectRow, Source)> {
        match version_id {
            Some(version_id) => self.version_source(bucket, key, store, path, version_id).await,
            None => {
                let found = self.find(bucket, store, path).await?;
                Ok((found.row, Source::Current { file_tag: found.meta.e_tag }))
            }
        }
    }

    /// `null`, the id S3 reports for the null version, when the bucket is versioned.
    fn versioned_null(&self, bucket: &str, asked: Option<&str>) -> Option<String> {
        if asked.is_some() || matches!(self.catalog.versioning(bucket), Ok(Some(_))) {
            Some("null".to_owned())
        } else {
            None
        }
    }

    pub(super) async fn delete_many(
        &self,
        request: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let principal = principal(&request.extensions)?;
        let input = request.input;
        self.store(&input.bucket)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "A delete request names at most 1000 keys"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for object in input.delete.objects {
            let key = object.key;
            let arn = super::actions::object_arn(&input.bucket, &key);
            let action =
                if object.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
            let outcome = match self.gate.authorize(&principal, action, &arn, &[]) {
                Ok(()) => self.remove(&input.bucket, &key, object.version_id.as_deref()).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(_) if quiet => {}
                Ok(done) => deleted.push(DeletedObject {
                    key: Some(key),
                    version_id: object.version_id.clone(),
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: done.delete_marker.then_some(done.version_id).flatten(),
                }),
                Err(error) => errors.push(s3s::dto::Error {
                    code: Some(error.code().as_str().to_owned()),
                    message: error.message().map(str::to_owned),
                    key: Some(key),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn copy(
        &self,
        request: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = request.input;
        let CopySource::Bucket { bucket: source_bucket, key: source_key, version_id } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "copying from an access point is not supported"));
        };
        let version_id_of_source = version_id.as_ref().map(ToString::to_string);
        let source_store = self.store(source_bucket)?;
        let source_path = key_path(source_key)?;
        let target_store = self.store(&input.bucket)?;
        let target_path = key_path(&input.key)?;
        let encryption = encryption(&target_store, input.server_side_encryption.as_ref())?;
        let (found_row, found_source) = self
            .source(source_bucket, source_key, &source_store, &source_path, version_id.as_deref())
            .await?;
        let conditions = Conditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        };
        // A copy answers a failed condition with 412 either way.
        conditions.check(&found_row).map_err(|error| match error.code() {
            S3ErrorCode::NotModified => {
                s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
            }
            _ => error,
        })?;
        let replace =
            input.metadata_directive.as_ref().is_some_and(|directive| directive.as_str() == "REPLACE");
        if !replace && source_bucket.as_ref() == input.bucket && source_key.as_ref() == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let attributes = if replace {
            Attributes {
                content_type: input.content_type,
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            }
        } else {
            found_row.attributes.clone()
        };
        let source =
            self.read_source(&source_store, &source_path, &found_source, None).await.map_err(storage)?;
        let expected = Expected {
            content_md5: None,
            checksum: found_row
                .checksum
                .as_ref()
                .map_or(super::checksums::Claimed::Nothing, |(algorithm, _)| {
                    super::checksums::Claimed::Compute(*algorithm)
                }),
        };
        let mut staged = target_store.stage(&target_path).await.map_err(storage)?;
        let body = Some(transfer::send(source));
        let (_, verified) = transfer::receive(body, u64::MAX, &expected, None, &mut staged).await?;
        let described = Described { etag: verified.etag(), attributes, checksum: verified.checksum.clone() };
        let target = (input.bucket.as_str(), input.key.as_str());
        let row =
            self.commit_object(target, &target_store, &target_path, staged, Created::Copy, described).await?;
        let mut result = CopyObjectResult {
            e_tag: Some(etag(&row.etag)),
            last_modified: Some(timestamp(row.last_modified)),
            ..Default::default()
        };
        set_checksum!(result, &verified.checksum);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(result),
            server_side_encryption: encryption,
            version_id: row.version_id,
            copy_source_version_id: version_id_of_source,
            ..Default::default()
        }))
    }
}

/// What a delete did: the version it deleted, or the delete marker it left.
#[derive(Debug)]
struct Deleted {
    version_id: Option<String>,
    delete_marker: bool,
}

/// The principal the gate found for this request.
pub(super) fn principal(extensions: &axum::http::Extensions) -> S3Result<Signer> {
    extensions.get::<Signer>().cloned().ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))
}
