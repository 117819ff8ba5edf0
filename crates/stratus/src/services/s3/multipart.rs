//! Multipart uploads: each part is received into a file of its own (`<upload id>/<part>`) and
//! described in the catalog; completing concatenates the named parts into the object in one
//! staged write, which emits `ObjectCreated:CompleteMultipartUpload`. The ETag is S3's: the MD5
//! of the parts' MD5s, then `-<count>`.

use futures::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutMultipartOptions};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, MultipartUpload,
    Part as S3Part, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::catalog::{Attributes, Part, Upload};
use super::checksums::{Algorithm, Claimed, Expected};
use super::config::{MAX_PARTS, MIN_PART_BYTES};
use super::objects::principal;
use super::transfer::{self, PartFile, storage};
use super::versions::Described;
use super::{Endpoint, encryption, etag, key_path, set_checksum, timestamp};
use crate::ports::blobs::Created;
use crate::services::cognito::identity_pool::Signer;

const MAX_LISTED: usize = 1000;

fn no_such_upload() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

fn part_path(upload_id: &str, part_number: i32) -> Path {
    Path::from(format!("{upload_id}/{part_number}"))
}

fn initiator(principal: &Signer) -> String {
    match principal {
        Signer::Operator => "operator".to_owned(),
        Signer::Role(session) => session.identity_id.clone(),
    }
}

impl Endpoint {
    /// The upload `upload_id` of `bucket/key`.
    fn upload_of(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<Upload> {
        // Upload ids are ours (hex); anything else cannot name one, nor a path.
        if upload_id.is_empty() || !upload_id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(no_such_upload());
        }
        match self.catalog.upload(upload_id)? {
            Some(upload) if upload.bucket == bucket && upload.key == key => Ok(upload),
            _ => Err(no_such_upload()),
        }
    }

    pub(super) async fn create_upload(
        &self,
        request: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let principal = principal(&request.extensions)?;
        let input = request.input;
        let store = self.store(&input.bucket)?;
        key_path(&input.key)?;
        let encryption = encryption(&store, input.server_side_encryption.as_ref())?;
        let checksum_algorithm = match &input.checksum_algorithm {
            Some(name) => Some(Algorithm::parse(name.as_str()).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("unknown checksum algorithm `{}`", name.as_str()),
                )
            })?),
            None => None,
        };
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let upload = Upload {
            upload_id: upload_id.clone(),
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            attributes: Attributes {
                content_type: input.content_type,
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            },
            checksum_algorithm,
            initiator: initiator(&principal),
            initiated: self.now_millis(),
        };
        self.catalog.create_upload(upload).await?;
        tracing::debug!(bucket = %input.bucket, key = %input.key, %upload_id, "multipart upload started");
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            server_side_encryption: encryption,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part(
        &self,
        request: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let mut expected =
            Expected::from_request(&request.headers, request.uri.query(), request.input.content_md5.clone())?;
        let input = request.input;
        let upload = self.upload_of(&input.bucket, &input.key, &input.upload_id)?;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        if let (Claimed::Nothing, Some(algorithm)) = (&expected.checksum, upload.checksum_algorithm) {
            expected.checksum = Claimed::Compute(algorithm);
        }
        let path = part_path(&upload.upload_id, input.part_number);
        let mut file = PartFile(
            self.parts.put_multipart_opts(&path, PutMultipartOptions::default()).await.map_err(storage)?,
        );
        let trailers = request.trailing_headers.as_ref();
        let (size, verified) =
            transfer::receive(input.body, self.max_object_bytes, &expected, trailers, &mut file).await?;
        file.0.complete().await.map_err(storage)?;
        let part = Part {
            part_number: input.part_number,
            etag: verified.etag(),
            size,
            checksum: verified.checksum.as_ref().map(|(_, value)| value.clone()),
            last_modified: self.now_millis(),
        };
        let part_etag = part.etag.clone();
        self.catalog.put_part(&upload.upload_id, part).await?;
        let mut output = UploadPartOutput {
            e_tag: Some(etag(&part_etag)),
            server_side_encryption: encryption(&*self.store(&upload.bucket)?, None)?,
            ..Default::default()
        };
        set_checksum!(output, &verified.checksum);
        Ok(S3Response::new(output))
    }

    pub(super) async fn complete_upload(
        &self,
        request: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = request.input;
        let upload = self.upload_of(&input.bucket, &input.key, &input.upload_id)?;
        let store = self.store(&input.bucket)?;
        let path = key_path(&input.key)?;
        let named = input.multipart_upload.and_then(|upload| upload.parts).unwrap_or_default();
        if named.is_empty() {
            return Err(s3_error!(MalformedXML, "You must specify at least one part"));
        }
        let stored = self.catalog.parts(&upload.upload_id, 0, MAX_PARTS as usize)?;
        let mut chosen = Vec::with_capacity(named.len());
        for (index, part) in named.iter().enumerate() {
            let number = part.part_number.unwrap_or_default();
            if index > 0 && number <= named[index - 1].part_number.unwrap_or_default() {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. Parts must be ordered by part number."
                ));
            }
            let found = stored.iter().find(|stored| stored.part_number == number);
            let matches =
                found.is_some_and(|found| part.e_tag.as_ref().is_none_or(|tag| tag.value() == found.etag));
            let (true, Some(found)) = (matches, found) else {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidPart,
                    format!("Part {number} could not be found, or its entity tag did not match."),
                ));
            };
            chosen.push(found.clone());
        }
        if let Some(small) = chosen[..chosen.len() - 1].iter().find(|part| part.size < MIN_PART_BYTES) {
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooSmall,
                format!(
                    "Part {} is {} bytes; every part but the last must be at least 5 MiB.",
                    small.part_number, small.size
                ),
            ));
        }
        let mut staged = store.stage(&path).await.map_err(storage)?;
        for part in &chosen {
            let read = async {
                let mut stream =
                    self.parts.get(&part_path(&upload.upload_id, part.part_number)).await?.into_stream();
                while let Some(piece) = stream.next().await {
                    staged.write(piece?).await?;
                }
                Ok::<_, object_store::Error>(())
            };
            if let Err(error) = read.await {
                let _ = staged.abort().await;
                return Err(storage(error));
            }
        }
        let checksum = upload.checksum_algorithm.and_then(|algorithm| composite_checksum(algorithm, &chosen));
        let described = Described {
            etag: multipart_etag(&chosen),
            attributes: upload.attributes,
            checksum: checksum.clone(),
        };
        let created = Created::CompleteMultipartUpload;
        let row = self
            .commit_object((&input.bucket, &input.key), &store, &path, staged, created, described)
            .await?;
        self.discard_upload(&upload.upload_id).await?;
        tracing::debug!(bucket = %input.bucket, key = %input.key, parts = chosen.len(), size = row.size, "multipart upload completed");
        let mut output = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(etag(&row.etag)),
            server_side_encryption: encryption(&store, None)?,
            version_id: row.version_id,
            ..Default::default()
        };
        set_checksum!(output, &checksum);
        Ok(S3Response::new(output))
    }

    /// Deletes an upload's part files and forgets it.
    async fn discard_upload(&self, upload_id: &str) -> S3Result<()> {
        for part in self.catalog.parts(upload_id, 0, MAX_PARTS as usize)? {
            match self.parts.delete(&part_path(upload_id, part.part_number)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(storage(error)),
            }
        }
        self.catalog.remove_upload(upload_id).await?;
        Ok(())
    }

    pub(super) async fn abort_upload(
        &self,
        request: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = request.input;
        let upload = self.upload_of(&input.bucket, &input.key, &input.upload_id)?;
        self.discard_upload(&upload.upload_id).await?;
        tracing::debug!(bucket = %input.bucket, key = %input.key, upload_id = %upload.upload_id, "multipart upload aborted");
        Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), axum::http::StatusCode::NO_CONTENT))
    }

    pub(super) fn list_parts(
        &self,
        request: &S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = &request.input;
        let upload = self.upload_of(&input.bucket, &input.key, &input.upload_id)?;
        let max = input.max_parts.map_or(MAX_LISTED, |max| usize::try_from(max).unwrap_or(0).min(MAX_LISTED));
        let after = input.part_number_marker.unwrap_or(0);
        let mut parts = self.catalog.parts(&upload.upload_id, after, max + 1)?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        let next = parts.last().filter(|_| truncated).map(|part| part.part_number);
        let listed = parts
            .into_iter()
            .map(|part| {
                let mut listed = S3Part {
                    part_number: Some(part.part_number),
                    e_tag: Some(etag(&part.etag)),
                    size: Some(i64::try_from(part.size).unwrap_or(i64::MAX)),
                    last_modified: Some(timestamp(part.last_modified)),
                    ..Default::default()
                };
                let checksum = upload.checksum_algorithm.zip(part.checksum);
                set_checksum!(listed, &checksum);
                listed
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(upload.bucket),
            key: Some(upload.key),
            upload_id: Some(upload.upload_id),
            max_parts: Some(i32::try_from(max).unwrap_or(i32::MAX)),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            parts: Some(listed),
            checksum_algorithm: upload.checksum_algorithm.map(|algorithm| algorithm.name().to_owned().into()),
            ..Default::default()
        }))
    }

    pub(super) fn list_uploads(
        &self,
        request: &S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = &request.input;
        self.store(&input.bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max =
            input.max_uploads.map_or(MAX_LISTED, |max| usize::try_from(max).unwrap_or(0).min(MAX_LISTED));
        let after = (
            input.key_marker.as_deref().unwrap_or_default(),
            input.upload_id_marker.as_deref().unwrap_or_default(),
        );
        let mut uploads = self.catalog.uploads(&input.bucket, &prefix, after, max + 1)?;
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        let next =
            uploads.last().filter(|_| truncated).map(|upload| (upload.key.clone(), upload.upload_id.clone()));
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket.clone()),
            prefix: Some(prefix),
            key_marker: input.key_marker.clone(),
            upload_id_marker: input.upload_id_marker.clone(),
            next_key_marker: next.as_ref().map(|(key, _)| key.clone()),
            next_upload_id_marker: next.map(|(_, id)| id),
            max_uploads: Some(i32::try_from(max).unwrap_or(i32::MAX)),
            is_truncated: Some(truncated),
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|upload| MultipartUpload {
                        key: Some(upload.key),
                        upload_id: Some(upload.upload_id),
                        initiated: Some(timestamp(upload.initiated)),
                        checksum_algorithm: upload
                            .checksum_algorithm
                            .map(|algorithm| algorithm.name().to_owned().into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

/// S3's multipart ETag: the MD5 of the concatenated binary MD5s of the parts, `-<count>`.
fn multipart_etag(parts: &[Part]) -> String {
    use s3s::crypto::Checksum as _;
    let mut md5 = s3s::crypto::Md5::new();
    for part in parts {
        if let Ok(digest) = hex::decode(&part.etag) {
            md5.update(&digest);
        }
    }
    format!("{}-{}", hex::encode(md5.finalize()), parts.len())
}

/// S3's composite checksum of a multipart object: the checksum of the parts' checksums,
/// `-<count>`; none unless every part has one.
fn composite_checksum(algorithm: Algorithm, parts: &[Part]) -> Option<(Algorithm, String)> {
    use base64::Engine as _;
    let mut hasher = algorithm.hasher();
    for part in parts {
        let digest = base64::engine::general_purpose::STANDARD.decode(part.checksum.as_ref()?).ok()?;
        hasher.update(&digest);
    }
    Some((algorithm, format!("{}-{}", hasher.finish(), parts.len())))
}
