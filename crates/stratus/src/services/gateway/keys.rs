//! API keys (API Gateway's): made for a usage plan, shown once, stored as SHA-256 digests; and
//! what each key has used of its quota in a period, so quotas survive a restart.

use std::sync::Arc;

use rand::Rng as _;
use rand::distributions::Alphanumeric;
use rusqlite::{OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use crate::infra::sqlite::{Database, DbError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, key_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS api_key_usage (
    key_id TEXT NOT NULL, period_start INTEGER NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (key_id, period_start)
) WITHOUT ROWID;
";

/// API Gateway's key length: 40 characters.
const KEY_CHARS: usize = 40;
const ID_CHARS: usize = 10;

/// A key as stored (without the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The digest a key is found by.
pub(super) type KeyHash = [u8; 32];

pub(super) fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

#[derive(Debug, Clone)]
pub struct ApiKeys {
    db: Arc<Database>,
}

fn random(length: usize) -> String {
    rand::rngs::OsRng.sample_iter(&Alphanumeric).take(length).map(char::from).collect()
}

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        plan: row.get(2)?,
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

const COLUMNS: &str = "id, name, plan, created_at, revoked_at";

impl ApiKeys {
    pub fn open(db: Arc<Database>) -> Result<Self, DbError> {
        db.migrate(SCHEMA)?;
        Ok(Self { db })
    }

    /// A new key for `plan`; the key itself is returned once and kept only as its digest.
    pub fn create(&self, name: &str, plan: &str, now: i64) -> Result<(ApiKey, String), DbError> {
        let key = random(KEY_CHARS);
        let record = ApiKey {
            id: random(ID_CHARS).to_lowercase(),
            name: name.to_owned(),
            plan: plan.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        self.db.write_blocking(|transaction| {
            transaction.execute(
                "INSERT INTO api_keys (id, name, plan, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.id, record.name, record.plan, hash_key(&key).as_slice(), now],
            )?;
            Ok::<_, DbError>(())
        })?;
        Ok((record, key))
    }

    pub fn list(&self) -> Result<Vec<ApiKey>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"))?;
            let rows = statement.query_map([], key_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Revokes a key; `false` when there is no such key or it was revoked already.
    pub fn revoke(&self, id: &str, now: i64) -> Result<bool, DbError> {
        self.db.write_blocking(|transaction| {
            let changed = transaction.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok::<_, DbError>(changed == 1)
        })
    }

    /// The key with this digest, revoked or not.
    pub fn find(&self, hash: &KeyHash) -> Result<Option<ApiKey>, DbError> {
        self.db.read(|connection| {
            let mut statement =
                connection.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1"))?;
            Ok(statement.query_row([hash.as_slice()], key_from_row).optional()?)
        })
    }

    /// What a key used in the period starting at `period_start`.
    pub fn used(&self, key_id: &str, period_start: i64) -> Result<u64, DbError> {
        self.db.read(|connection| {
            let used: Option<i64> = connection
                .prepare_cached("SELECT used FROM api_key_usage WHERE key_id = ?1 AND period_start = ?2")?
                .query_row(params![key_id, period_start], |row| row.get(0))
                .optional()?;
            Ok(used.map_or(0, |used| u64::try_from(used).unwrap_or_default()))
        })
    }

    /// Adds requests to keys' usage, one transaction for all; older periods are forgotten.
    pub async fn add_usage(&self, added: Vec<(String, i64, u64)>) -> Result<(), DbError> {
        self.db
            .write(move |transaction| {
                for (key_id, period_start, count) in &added {
                    let count = i64::try_from(*count).unwrap_or(i64::MAX);
                    transaction
                        .prepare_cached(
                            "INSERT INTO api_key_usage (key_id, period_start, used) VALUES (?1, ?2, ?3)
                             ON CONFLICT (key_id, period_start) DO UPDATE SET used = used + excluded.used",
                        )?
                        .execute(params![key_id, period_start, count])?;
                    transaction
                        .prepare_cached("DELETE FROM api_key_usage WHERE key_id = ?1 AND period_start < ?2")?
                        .execute(params![key_id, period_start])?;
                }
                Ok::<_, DbError>(())
            })
            .await
    }
}
