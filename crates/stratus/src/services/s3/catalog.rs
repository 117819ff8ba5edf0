//! What S3 keeps about an object besides its bytes — the MD5 ETag, content type and headers,
//! user metadata, the checksum it was written with — and the multipart uploads in progress with
//! their parts, in the stage's database. The bytes stay in the bucket's files, where functions
//! read them through the object-store port.
//!
//! A row names the file it describes by the store's tag of that file (inode, mtime, size): when
//! something else (a function, the CLI) later overwrites the object, the tags differ and the row
//! is ignored — the object then reads as what the store knows (size, time, its own tag).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use super::checksums::Algorithm;
use crate::infra::sqlite::{Database, DbError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS s3_objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL,
    file_tag TEXT NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
    attributes TEXT NOT NULL, checksum_algorithm TEXT, checksum TEXT,
    last_modified INTEGER NOT NULL,
    -- NULL: the `null` version (written while versioning was off or suspended)
    version_id TEXT,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS s3_buckets (bucket TEXT PRIMARY KEY, versioning TEXT NOT NULL);
-- Noncurrent versions (their bytes archived under `archive`) and delete markers (no bytes).
CREATE TABLE IF NOT EXISTS s3_versions (
    bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL,
    seq INTEGER NOT NULL, archive TEXT,
    etag TEXT NOT NULL, size INTEGER NOT NULL,
    attributes TEXT NOT NULL, checksum_algorithm TEXT, checksum TEXT,
    last_modified INTEGER NOT NULL,
    PRIMARY KEY (bucket, key, version_id)
);
CREATE INDEX IF NOT EXISTS s3_versions_by_age ON s3_versions (bucket, key, seq);
CREATE TABLE IF NOT EXISTS s3_uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
    attributes TEXT NOT NULL, checksum_algorithm TEXT, initiator TEXT NOT NULL, initiated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS s3_uploads_by_key ON s3_uploads (bucket, key, initiated);
CREATE TABLE IF NOT EXISTS s3_parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL,
    etag TEXT NOT NULL, size INTEGER NOT NULL, checksum TEXT, last_modified INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
";

/// The headers S3 keeps with an object and returns on GET and HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Attributes {
    pub(super) content_type: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_language: Option<String>,
    /// `x-amz-meta-*`, by name without the prefix.
    pub(super) metadata: BTreeMap<String, String>,
}

/// An object's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ObjectRow {
    pub(super) file_tag: String,
    /// Without quotes: hex MD5, or `<hex>-<parts>` for a multipart upload.
    pub(super) etag: String,
    pub(super) size: u64,
    pub(super) attributes: Attributes,
    pub(super) checksum: Option<(Algorithm, String)>,
    pub(super) last_modified: i64,
    /// `None`: the `null` version.
    pub(super) version_id: Option<String>,
}

/// A bucket's versioning, as S3 names its states; a bucket never versioned has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Versioning {
    Enabled,
    Suspended,
}

impl Versioning {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Suspended => "Suspended",
        }
    }

    pub(super) fn parse(name: &str) -> Option<Self> {
        [Self::Enabled, Self::Suspended].into_iter().find(|state| state.name() == name)
    }
}

/// A version that is not the current object: an archived object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) key: String,
    /// `null` for the null version.
    pub(super) version_id: String,
    /// Where its bytes are archived; `None` for a delete marker.
    pub(super) archive: Option<String>,
    pub(super) seq: i64,
    pub(super) row: ObjectRow,
}

impl Version {
    pub(super) fn is_delete_marker(&self) -> bool {
        self.archive.is_none()
    }
}

/// The wire name of a version id: `null` for the null version.
pub(super) fn version_name(version_id: Option<&str>) -> String {
    version_id.unwrap_or("null").to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Upload {
    pub(super) upload_id: String,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) attributes: Attributes,
    pub(super) checksum_algorithm: Option<Algorithm>,
    pub(super) initiator: String,
    pub(super) initiated: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) part_number: i32,
    pub(super) etag: String,
    pub(super) size: u64,
    pub(super) checksum: Option<String>,
    pub(super) last_modified: i64,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum CatalogError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the stored attributes of `{bucket}/{key}` are not readable")]
    Corrupt {
        bucket: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug)]
pub(super) struct Catalog {
    db: Arc<Database>,
    /// Each bucket's versioning, read once: every GET, HEAD and write asks it, and only this
    /// endpoint (one per stage) changes it.
    versioning: std::sync::RwLock<HashMap<String, Option<Versioning>>>,
}

fn size_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Catalog {
    pub(super) fn open(db: Arc<Database>) -> Result<Self, DbError> {
        db.migrate(SCHEMA)?;
        Ok(Self { db, versioning: std::sync::RwLock::default() })
    }

    fn attributes_json(bucket: &str, key: &str, attributes: &Attributes) -> Result<String, CatalogError> {
        serde_json::to_string(attributes).map_err(|source| CatalogError::Corrupt {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        })
    }

    fn attributes(bucket: &str, key: &str, json: &str) -> Result<Attributes, CatalogError> {
        serde_json::from_str(json).map_err(|source| CatalogError::Corrupt {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        })
    }

    pub(super) async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        row: ObjectRow,
    ) -> Result<(), CatalogError> {
        let attributes = Self::attributes_json(bucket, key, &row.attributes)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let (algorithm, checksum) =
            row.checksum.map_or((None, None), |(algorithm, value)| (Some(algorithm.name()), Some(value)));
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT OR REPLACE INTO s3_objects
                        (bucket, key, file_tag, etag, size, attributes, checksum_algorithm, checksum, last_modified,
                         version_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        bucket,
                        key,
                        row.file_tag,
                        row.etag,
                        to_sql(row.size),
                        attributes,
                        algorithm,
                        checksum,
                        row.last_modified,
                        row.version_id
                    ],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }

    pub(super) async fn remove_object(&self, bucket: &str, key: &str) -> Result<(), CatalogError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.db
            .write(move |transaction| {
                transaction
                    .execute("DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2", params![bucket, key])?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }

    /// The row of `bucket/key`, if it describes the file tagged `file_tag`.
    pub(super) fn object(
        &self,
        bucket: &str,
        key: &str,
        file_tag: &str,
    ) -> Result<Option<ObjectRow>, CatalogError> {
        let row = self.db.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT file_tag, etag, size, attributes, checksum_algorithm, checksum, last_modified, version_id
                     FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND file_tag = ?3",
                )?
                .query_row(params![bucket, key, file_tag], read_object)
                .optional()
                .map_err(DbError::from)
        })?;
        row.map(|(row, attributes)| {
            Ok(ObjectRow { attributes: Self::attributes(bucket, key, &attributes)?, ..row })
        })
        .transpose()
    }

    /// The rows of every object whose key starts with `prefix`, by key, for a listing.
    pub(super) fn objects_under(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<HashMap<String, ObjectRow>, CatalogError> {
        let rows = self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT file_tag, etag, size, attributes, checksum_algorithm, checksum, last_modified, version_id, key
                 FROM s3_objects WHERE bucket = ?1 AND substr(key, 1, length(?2)) = ?2",
            )?;
            let rows = statement
                .query_map(params![bucket, prefix], |row| Ok((read_object(row)?, row.get::<_, String>(8)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>(rows)
        })?;
        rows.into_iter()
            .map(|((row, attributes), key)| {
                let attributes = Self::attributes(bucket, &key, &attributes)?;
                Ok((key, ObjectRow { attributes, ..row }))
            })
            .collect()
    }

    pub(super) fn versioning(&self, bucket: &str) -> Result<Option<Versioning>, CatalogError> {
        let known =
            self.versioning.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(bucket).copied();
        if let Some(state) = known {
            return Ok(state);
        }
        let state: Option<String> = self.db.read(|connection| {
            connection
                .prepare_cached("SELECT versioning FROM s3_buckets WHERE bucket = ?1")?
                .query_row([bucket], |row| row.get(0))
                .optional()
                .map_err(DbError::from)
        })?;
        let state = state.as_deref().and_then(Versioning::parse);
        self.versioning
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(bucket.to_owned(), state);
        Ok(state)
    }

    pub(super) async fn set_versioning(&self, bucket: &str, state: Versioning) -> Result<(), CatalogError> {
        let name = bucket.to_owned();
        let bucket = bucket.to_owned();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT OR REPLACE INTO s3_buckets (bucket, versioning) VALUES (?1, ?2)",
                    params![bucket, state.name()],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        self.versioning.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, Some(state));
        Ok(())
    }

    /// Records a noncurrent version (or a delete marker, without `archive`) as the newest,
    /// replacing a version of the same id (the null version).
    pub(super) async fn add_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        archive: Option<&str>,
        row: &ObjectRow,
    ) -> Result<(), CatalogError> {
        let attributes = Self::attributes_json(bucket, key, &row.attributes)?;
        let (bucket, key, version_id) = (bucket.to_owned(), key.to_owned(), version_id.to_owned());
        let archive = archive.map(str::to_owned);
        let row = row.clone();
        let (algorithm, checksum) =
            row.checksum.map_or((None, None), |(algorithm, value)| (Some(algorithm.name()), Some(value)));
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT OR REPLACE INTO s3_versions
                        (bucket, key, version_id, seq, archive, etag, size, attributes, checksum_algorithm, checksum,
                         last_modified)
                     VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM s3_versions), ?4, ?5, ?6, ?7, ?8, ?9,
                             ?10)",
                    params![
                        bucket,
                        key,
                        version_id,
                        archive,
                        row.etag,
                        to_sql(row.size),
                        attributes,
                        algorithm,
                        checksum,
                        row.last_modified
                    ],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }

    pub(super) async fn remove_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<(), CatalogError> {
        let (bucket, key, version_id) = (bucket.to_owned(), key.to_owned(), version_id.to_owned());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "DELETE FROM s3_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
                    params![bucket, key, version_id],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }

    /// The noncurrent versions and delete markers of keys starting with `prefix`, by key and
    /// newest first.
    pub(super) fn versions(&self, bucket: &str, prefix: &str) -> Result<Vec<Version>, CatalogError> {
        let rows = self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT etag, etag, size, attributes, checksum_algorithm, checksum, last_modified, version_id,
                        key, archive, seq
                 FROM s3_versions WHERE bucket = ?1 AND substr(key, 1, length(?2)) = ?2
                 ORDER BY key, seq DESC",
            )?;
            let rows = statement
                .query_map(params![bucket, prefix], |row| {
                    Ok((
                        read_object(row)?,
                        row.get::<_, String>(8)?,
                        row.get::<_, Option<String>>(9)?,
                        row.get::<_, i64>(10)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>(rows)
        })?;
        rows.into_iter()
            .map(|((row, attributes), key, archive, seq)| {
                let attributes = Self::attributes(bucket, &key, &attributes)?;
                let version_id = version_name(row.version_id.as_deref());
                Ok(Version {
                    key,
                    version_id,
                    archive,
                    seq,
                    row: ObjectRow { attributes, version_id: None, ..row },
                })
            })
            .collect()
    }

    /// The noncurrent versions of one key, newest first.
    pub(super) fn versions_of(&self, bucket: &str, key: &str) -> Result<Vec<Version>, CatalogError> {
        Ok(self.versions(bucket, key)?.into_iter().filter(|version| version.key == key).collect())
    }

    pub(super) async fn create_upload(&self, upload: Upload) -> Result<(), CatalogError> {
        let attributes = Self::attributes_json(&upload.bucket, &upload.key, &upload.attributes)?;
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO s3_uploads (upload_id, bucket, key, attributes, checksum_algorithm, initiator, initiated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        upload.upload_id,
                        upload.bucket,
                        upload.key,
                        attributes,
                        upload.checksum_algorithm.map(Algorithm::name),
                        upload.initiator,
                        upload.initiated
                    ],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }

    pub(super) fn upload(&self, upload_id: &str) -> Result<Option<Upload>, CatalogError> {
        let row = self.db.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT upload_id, bucket, key, attributes, checksum_algorithm, initiator, initiated
                     FROM s3_uploads WHERE upload_id = ?1",
                )?
                .query_row([upload_id], read_upload)
                .optional()
                .map_err(DbError::from)
        })?;
        row.map(finish_upload).transpose()
    }

    /// Uploads in progress in `bucket` whose key starts with `prefix`, by key and start, after
    /// the marker pair, at most `limit`.
    pub(super) fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<Upload>, CatalogError> {
        let rows = self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT upload_id, bucket, key, attributes, checksum_algorithm, initiator, initiated
                 FROM s3_uploads WHERE bucket = ?1 AND substr(key, 1, length(?2)) = ?2
                   AND (key > ?3 OR (key = ?3 AND upload_id > ?4))
                 ORDER BY key, upload_id LIMIT ?5",
            )?;
            let rows = statement
                .query_map(
                    params![bucket, prefix, after.0, after.1, i64::try_from(limit).unwrap_or(i64::MAX)],
                    read_upload,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>(rows)
        })?;
        rows.into_iter().map(finish_upload).collect()
    }

    pub(super) async fn put_part(&self, upload_id: &str, part: Part) -> Result<(), CatalogError> {
        let upload_id = upload_id.to_owned();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT OR REPLACE INTO s3_parts (upload_id, part_number, etag, size, checksum, last_modified)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![upload_id, part.part_number, part.etag, to_sql(part.size), part.checksum, part.last_modified],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }

    /// The upload's parts after `after`, by number, at most `limit`.
    pub(super) fn parts(&self, upload_id: &str, after: i32, limit: usize) -> Result<Vec<Part>, CatalogError> {
        Ok(self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT part_number, etag, size, checksum, last_modified FROM s3_parts
                 WHERE upload_id = ?1 AND part_number > ?2 ORDER BY part_number LIMIT ?3",
            )?;
            let rows = statement
                .query_map(params![upload_id, after, i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                    Ok(Part {
                        part_number: row.get(0)?,
                        etag: row.get(1)?,
                        size: size_of(row.get(2)?),
                        checksum: row.get(3)?,
                        last_modified: row.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, DbError>(rows)
        })?)
    }

    /// Forgets an upload and its parts (completed or aborted).
    pub(super) async fn remove_upload(&self, upload_id: &str) -> Result<(), CatalogError> {
        let upload_id = upload_id.to_owned();
        self.db
            .write(move |transaction| {
                transaction.execute("DELETE FROM s3_parts WHERE upload_id = ?1", [&upload_id])?;
                transaction.execute("DELETE FROM s3_uploads WHERE upload_id = ?1", [&upload_id])?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(())
    }
}

type RawObject = (ObjectRow, String);

fn read_object(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawObject> {
    let algorithm: Option<String> = row.get(4)?;
    let checksum: Option<String> = row.get(5)?;
    Ok((
        ObjectRow {
            file_tag: row.get(0)?,
            etag: row.get(1)?,
            size: size_of(row.get(2)?),
            attributes: Attributes::default(),
            checksum: algorithm.as_deref().and_then(Algorithm::parse).zip(checksum),
            last_modified: row.get(6)?,
            version_id: row.get(7)?,
        },
        row.get(3)?,
    ))
}

type RawUpload = (Upload, String);

fn read_upload(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawUpload> {
    let algorithm: Option<String> = row.get(4)?;
    Ok((
        Upload {
            upload_id: row.get(0)?,
            bucket: row.get(1)?,
            key: row.get(2)?,
            attributes: Attributes::default(),
            checksum_algorithm: algorithm.as_deref().and_then(Algorithm::parse),
            initiator: row.get(5)?,
            initiated: row.get(6)?,
        },
        row.get(3)?,
    ))
}

fn finish_upload((upload, attributes): RawUpload) -> Result<Upload, CatalogError> {
    let attributes = Catalog::attributes(&upload.bucket, &upload.key, &attributes)?;
    Ok(Upload { attributes, ..upload })
}
