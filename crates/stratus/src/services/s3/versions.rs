//! Bucket versioning, as S3 keeps it: once a bucket's versioning is `Enabled`, a write or a
//! delete keeps the object it replaces as a noncurrent version (its file hard-linked into the
//! bucket's archive, its description in the catalog), a delete leaves a delete marker, and any
//! version can be read or deleted by id; deleting the current version brings the newest
//! noncurrent one back. `Suspended` writes the `null` version, replacing the previous `null`.
//! Objects written before versioning was enabled are the `null` version.
//!
//! The files the object-store port reads stay the current versions, so functions see exactly
//! what an S3 GET without a version id sees.

use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore as _};
use s3s::dto::{
    DeleteMarkerEntry, GetBucketVersioningInput, GetBucketVersioningOutput, ListObjectVersionsInput,
    ListObjectVersionsOutput, ObjectVersion, PutBucketVersioningInput, PutBucketVersioningOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::catalog::{ObjectRow, Version, Versioning, version_name};
use super::transfer::storage;
use super::{Endpoint, etag, timestamp};
use crate::ports::blobs::{Created, EventedStore, Removed, Staged};

fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn no_such_version() -> S3Error {
    S3Error::with_message(S3ErrorCode::NoSuchVersion, "The specified version does not exist.")
}

/// What a write that replaces an object must finish once it has committed.
#[derive(Debug, Default)]
pub(super) struct Replacing {
    /// The new object's version id; `None` for the null version.
    pub(super) version_id: Option<String>,
    versioned: bool,
    kept: Option<Kept>,
}

/// The replaced object, linked into the archive.
#[derive(Debug)]
struct Kept {
    archive: String,
    version: String,
    row: ObjectRow,
}

/// What a committed object is described with, besides its size and time.
#[derive(Debug)]
pub(super) struct Described {
    pub(super) etag: String,
    pub(super) attributes: super::catalog::Attributes,
    pub(super) checksum: Option<(super::checksums::Algorithm, String)>,
}

/// Where a GET or HEAD reads from.
#[derive(Debug)]
pub(super) enum Source {
    /// The current object, whose file must still carry this tag.
    Current { file_tag: Option<String> },
    /// A noncurrent version's archived file.
    Archived { name: String },
}

impl Endpoint {
    /// Before a write replaces `key`: the new version's id, and the current object kept as a
    /// noncurrent version if the bucket's versioning says so.
    async fn before_replace(&self, bucket: &str, store: &EventedStore, path: &Path) -> S3Result<Replacing> {
        let Some(state) = self.catalog.versioning(bucket)? else { return Ok(Replacing::default()) };
        let version_id = (state == Versioning::Enabled).then(new_version_id);
        let kept = self.keep_current(bucket, store, path, state).await?;
        Ok(Replacing { version_id, versioned: true, kept })
    }

    /// Links the current object into the archive unless it is the null version of a
    /// suspended bucket (which the write or delete replaces).
    async fn keep_current(
        &self,
        bucket: &str,
        store: &EventedStore,
        path: &Path,
        state: Versioning,
    ) -> S3Result<Option<Kept>> {
        let current = match self.find(bucket, store, path).await {
            Ok(found) => found.row,
            Err(error) if error.code() == &S3ErrorCode::NoSuchKey => return Ok(None),
            Err(error) => return Err(error),
        };
        if state == Versioning::Suspended && current.version_id.is_none() {
            return Ok(None);
        }
        let archive = new_version_id();
        if !store.keep(path, &archive).map_err(storage)? {
            return Ok(None);
        }
        Ok(Some(Kept { archive, version: version_name(current.version_id.as_deref()), row: current }))
    }

    /// Commits a staged write of `key` as S3 does: the object it replaces kept as a noncurrent
    /// version if the bucket is versioned, the new one made visible (emitting its event) and
    /// described in the catalog. Returns the new object's description.
    pub(super) async fn commit_object(
        &self,
        (bucket, key): (&str, &str),
        store: &EventedStore,
        path: &Path,
        mut staged: Staged,
        created: Created,
        described: Described,
    ) -> S3Result<ObjectRow> {
        let replacing = match self.before_replace(bucket, store, path).await {
            Ok(replacing) => replacing,
            Err(error) => {
                let _ = staged.abort().await;
                return Err(error);
            }
        };
        let size = staged.size();
        let result = match staged.commit(created, &described.etag).await {
            Ok(result) => result,
            Err(error) => {
                self.abandon(store, replacing).await;
                return Err(storage(error));
            }
        };
        let row = ObjectRow {
            file_tag: result.e_tag.unwrap_or_default(),
            etag: described.etag,
            size,
            attributes: described.attributes,
            checksum: described.checksum,
            last_modified: self.now_millis(),
            version_id: replacing.version_id.clone(),
        };
        self.catalog.put_object(bucket, key, row.clone()).await?;
        self.after_replace(bucket, key, store, replacing).await?;
        Ok(row)
    }

    /// After the write committed: records the kept version; a new null version replaces a
    /// noncurrent null one.
    async fn after_replace(
        &self,
        bucket: &str,
        key: &str,
        store: &EventedStore,
        replacing: Replacing,
    ) -> S3Result<()> {
        if replacing.versioned && replacing.version_id.is_none() {
            self.forget_version(bucket, key, store, "null").await?;
        }
        if let Some(kept) = replacing.kept {
            self.catalog.add_version(bucket, key, &kept.version, Some(&kept.archive), &kept.row).await?;
        }
        Ok(())
    }

    /// After a failed write: the kept link goes.
    async fn abandon(&self, store: &EventedStore, replacing: Replacing) {
        if let Some(kept) = replacing.kept
            && let Err(error) = store.discard(&kept.archive).await
        {
            tracing::warn!(error = %error, "cannot discard the archive link of a failed write");
        }
    }

    async fn forget_version(
        &self,
        bucket: &str,
        key: &str,
        store: &EventedStore,
        version_id: &str,
    ) -> S3Result<()> {
        if let Some(version) =
            self.catalog.versions_of(bucket, key)?.into_iter().find(|v| v.version_id == version_id)
        {
            if let Some(archive) = &version.archive {
                store.discard(archive).await.map_err(storage)?;
            }
            self.catalog.remove_version(bucket, key, version_id).await?;
        }
        Ok(())
    }

    /// DELETE without a version id on a versioned bucket: the current object becomes a
    /// noncurrent version and a delete marker stands in for it. Returns the marker's id.
    pub(super) async fn delete_with_marker(
        &self,
        bucket: &str,
        key: &str,
        store: &EventedStore,
        path: &Path,
        state: Versioning,
    ) -> S3Result<String> {
        let kept = self.keep_current(bucket, store, path, state).await?;
        store.remove(path, Removed::DeleteMarkerCreated).await.map_err(storage)?;
        self.catalog.remove_object(bucket, key).await?;
        if let Some(kept) = kept {
            self.catalog.add_version(bucket, key, &kept.version, Some(&kept.archive), &kept.row).await?;
        }
        let marker = match state {
            Versioning::Enabled => new_version_id(),
            Versioning::Suspended => {
                self.forget_version(bucket, key, store, "null").await?;
                "null".to_owned()
            }
        };
        let row = ObjectRow {
            file_tag: String::new(),
            etag: String::new(),
            size: 0,
            attributes: Default::default(),
            checksum: None,
            last_modified: self.now_millis(),
            version_id: None,
        };
        self.catalog.add_version(bucket, key, &marker, None, &row).await?;
        Ok(marker)
    }

    /// DELETE of one version, for good. Deleting the current one (or the delete marker that
    /// hides the object) brings the newest remaining version back. Returns whether it was a
    /// delete marker.
    pub(super) async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        store: &EventedStore,
        path: &Path,
        version_id: &str,
    ) -> S3Result<bool> {
        let current = match self.find(bucket, store, path).await {
            Ok(found) => Some(found.row),
            Err(error) if error.code() == &S3ErrorCode::NoSuchKey => None,
            Err(error) => return Err(error),
        };
        if let Some(row) = &current
            && version_name(row.version_id.as_deref()) == version_id
        {
            store.remove(path, Removed::Delete).await.map_err(storage)?;
            self.catalog.remove_object(bucket, key).await?;
            self.promote(bucket, key, store, path).await?;
            return Ok(false);
        }
        let versions = self.catalog.versions_of(bucket, key)?;
        let Some(version) = versions.iter().find(|version| version.version_id == version_id) else {
            return Err(no_such_version());
        };
        let was_latest =
            current.is_none() && versions.first().is_some_and(|newest| newest.version_id == version_id);
        self.forget_version(bucket, key, store, version_id).await?;
        if was_latest && version.is_delete_marker() {
            self.promote(bucket, key, store, path).await?;
        }
        Ok(version.is_delete_marker())
    }

    /// Makes the newest noncurrent version current again, if it is an object.
    async fn promote(&self, bucket: &str, key: &str, store: &EventedStore, path: &Path) -> S3Result<()> {
        let Some(newest) = self.catalog.versions_of(bucket, key)?.into_iter().next() else { return Ok(()) };
        let Some(archive) = &newest.archive else { return Ok(()) };
        store.reinstate(archive, path).map_err(storage)?;
        let meta = object_store::ObjectStoreExt::head(store, path).await.map_err(storage)?;
        let version_id = (newest.version_id != "null").then(|| newest.version_id.clone());
        let row = ObjectRow { file_tag: meta.e_tag.unwrap_or_default(), version_id, ..newest.row };
        self.catalog.put_object(bucket, key, row).await?;
        self.catalog.remove_version(bucket, key, &newest.version_id).await?;
        store.discard(archive).await.map_err(storage)?;
        Ok(())
    }

    /// The version `version_id` of `key` to read: the current object or an archived one. A
    /// delete marker cannot be read (405, as in S3).
    pub(super) async fn version_source(
        &self,
        bucket: &str,
        key: &str,
        store: &EventedStore,
        path: &Path,
        version_id: &str,
    ) -> S3Result<(ObjectRow, Source)> {
        match self.find(bucket, store, path).await {
            Ok(found) if version_name(found.row.version_id.as_deref()) == version_id => {
                return Ok((found.row, Source::Current { file_tag: found.meta.e_tag }));
            }
            Ok(_) => {}
            Err(error) if error.code() == &S3ErrorCode::NoSuchKey => {}
            Err(error) => return Err(error),
        }
        let version: Version = self
            .catalog
            .versions_of(bucket, key)?
            .into_iter()
            .find(|version| version.version_id == version_id)
            .ok_or_else(no_such_version)?;
        match version.archive {
            Some(name) => {
                let version_id = (version_id != "null").then(|| version_id.to_owned());
                Ok((ObjectRow { version_id, ..version.row }, Source::Archived { name }))
            }
            None => Err(s3_error!(
                MethodNotAllowed,
                "The specified method is not allowed against a delete marker."
            )),
        }
    }

    /// Reads `range` of a source.
    pub(super) async fn read_source(
        &self,
        store: &EventedStore,
        path: &Path,
        source: &Source,
        range: Option<std::ops::Range<u64>>,
    ) -> object_store::Result<object_store::GetResult> {
        let range = range.map(GetRange::Bounded);
        match source {
            Source::Current { file_tag } => {
                store
                    .get_opts(path, GetOptions { if_match: file_tag.clone(), range, ..Default::default() })
                    .await
            }
            Source::Archived { name } => {
                store
                    .archived()
                    .get_opts(&Path::from(name.as_str()), GetOptions { range, ..Default::default() })
                    .await
            }
        }
    }

    pub(super) async fn put_versioning(
        &self,
        request: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = request.input;
        self.store(&input.bucket)?;
        let status = input.versioning_configuration.status.as_ref().map(|status| status.as_str().to_owned());
        let state = status
            .as_deref()
            .and_then(Versioning::parse)
            .ok_or_else(|| s3_error!(MalformedXML, "The versioning status must be Enabled or Suspended"))?;
        if input.versioning_configuration.mfa_delete.is_some() {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        self.catalog.set_versioning(&input.bucket, state).await?;
        tracing::info!(bucket = %input.bucket, versioning = state.name(), "bucket versioning set");
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(super) fn get_versioning(
        &self,
        request: &S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.store(&request.input.bucket)?;
        let status =
            self.catalog.versioning(&request.input.bucket)?.map(|state| state.name().to_owned().into());
        Ok(S3Response::new(GetBucketVersioningOutput { status, ..Default::default() }))
    }

    pub(super) async fn list_versions(
        &self,
        request: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = request.input;
        let store = self.store(&input.bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.map_or(1000, |max| usize::try_from(max).unwrap_or(0).min(1000));
        let current =
            self.objects(&input.bucket, &prefix, self.keys_under(&store, &prefix).await?, &|key| key)?;
        let rows = self.catalog.objects_under(&input.bucket, &prefix)?;
        // Every version, by key, newest first: the current object, then the noncurrent ones.
        let mut all: Vec<Listed> = current
            .into_iter()
            .map(|object| {
                let key = object.key.clone().unwrap_or_default();
                let version = rows.get(&key).and_then(|row| row.version_id.clone());
                Listed::Current { key, version: version_name(version.as_deref()), object }
            })
            .collect();
        all.extend(self.catalog.versions(&input.bucket, &prefix)?.into_iter().map(Listed::Noncurrent));
        all.sort_by(|a, b| a.key().cmp(b.key()).then(b.order().cmp(&a.order())));
        let start = resume_at(&all, input.key_marker.as_deref(), input.version_id_marker.as_deref());
        // The first row of each key is its latest version.
        let latest: Vec<bool> = all
            .iter()
            .enumerate()
            .map(|(index, entry)| index == 0 || all[index - 1].key() != entry.key())
            .collect();
        let delimiter = input.delimiter.as_deref().filter(|delimiter| !delimiter.is_empty());
        let key_marker = input.key_marker.as_deref();
        let (mut versions, mut markers, mut prefixes) = (Vec::new(), Vec::new(), Vec::<String>::new());
        let (mut taken, mut truncated, mut last) = (0, false, None::<(String, Option<String>)>);
        for (index, entry) in all.iter().enumerate().skip(start) {
            // Under a delimiter, the keys sharing a folder are one common prefix, counted once.
            let group = delimiter.and_then(|delimiter| {
                let key = entry.key();
                key[prefix.len()..]
                    .find(delimiter)
                    .map(|at| key[..prefix.len() + at + delimiter.len()].to_owned())
            });
            if let Some(group) = &group
                && (prefixes.last() == Some(group)
                    || key_marker.is_some_and(|marker| group.as_str() <= marker))
            {
                continue;
            }
            if taken == max {
                truncated = true;
                break;
            }
            taken += 1;
            match group {
                Some(group) => {
                    last = Some((group.clone(), None));
                    prefixes.push(group);
                }
                None => {
                    last = Some((entry.key().to_owned(), Some(entry.version().to_owned())));
                    match entry.row(latest[index]) {
                        Row::Version(version) => versions.push(version),
                        Row::Marker(marker) => markers.push(marker),
                    }
                }
            }
        }
        let next = last.filter(|_| truncated);
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(prefix),
            key_marker: input.key_marker,
            version_id_marker: input.version_id_marker,
            max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
            is_truncated: Some(truncated),
            next_key_marker: next.as_ref().map(|(key, _)| key.clone()),
            next_version_id_marker: next.and_then(|(_, version)| version),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                prefixes.into_iter().map(|prefix| s3s::dto::CommonPrefix { prefix: Some(prefix) }).collect(),
            ),
            delimiter: input.delimiter,
            ..Default::default()
        }))
    }
}

/// Where a listing resumes after the marker pair.
fn resume_at(all: &[Listed], key_marker: Option<&str>, version_marker: Option<&str>) -> usize {
    let after_key = |key: &str| all.iter().position(|entry| entry.key() > key).unwrap_or(all.len());
    match (key_marker, version_marker) {
        (None, _) => 0,
        (Some(key), None) => after_key(key),
        (Some(key), Some(version)) => all
            .iter()
            .position(|entry| entry.key() == key && entry.version() == version)
            .map_or_else(|| after_key(key), |at| at + 1),
    }
}

/// A listed version as S3 sends it.
enum Row {
    Version(ObjectVersion),
    Marker(DeleteMarkerEntry),
}

/// One row of a version listing.
#[derive(Debug)]
enum Listed {
    Current { key: String, version: String, object: s3s::dto::Object },
    Noncurrent(Version),
}

impl Listed {
    fn key(&self) -> &str {
        match self {
            Self::Current { key, .. } => key,
            Self::Noncurrent(version) => &version.key,
        }
    }

    fn version(&self) -> &str {
        match self {
            Self::Current { version, .. } => version,
            Self::Noncurrent(version) => &version.version_id,
        }
    }

    fn row(&self, latest: bool) -> Row {
        match self {
            Self::Current { key, version, object } => Row::Version(ObjectVersion {
                key: Some(key.clone()),
                version_id: Some(version.clone()),
                is_latest: Some(true),
                e_tag: object.e_tag.clone(),
                size: object.size,
                last_modified: object.last_modified.clone(),
                storage_class: Some("STANDARD".to_owned().into()),
                ..Default::default()
            }),
            Self::Noncurrent(version) if version.is_delete_marker() => Row::Marker(DeleteMarkerEntry {
                key: Some(version.key.clone()),
                version_id: Some(version.version_id.clone()),
                is_latest: Some(latest),
                last_modified: Some(timestamp(version.row.last_modified)),
                ..Default::default()
            }),
            Self::Noncurrent(version) => Row::Version(ObjectVersion {
                key: Some(version.key.clone()),
                version_id: Some(version.version_id.clone()),
                is_latest: Some(latest),
                e_tag: Some(etag(&version.row.etag)),
                size: Some(i64::try_from(version.row.size).unwrap_or(i64::MAX)),
                last_modified: Some(timestamp(version.row.last_modified)),
                storage_class: Some("STANDARD".to_owned().into()),
                ..Default::default()
            }),
        }
    }

    /// Newer is larger; the current object is the newest.
    fn order(&self) -> i64 {
        match self {
            Self::Current { .. } => i64::MAX,
            Self::Noncurrent(version) => version.seq,
        }
    }
}
