//! Identity pools and their identities in the stage database. An authenticated identity is
//! unique per pool, provider and subject (the user-pool `sub`), so the same user always gets the
//! same identity id; a guest identity is a row with no provider.

use std::sync::Arc;

use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use crate::infra::sqlite::{Database, DbError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity_pool_pools (
    pool_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, allow_unauthenticated INTEGER NOT NULL,
    providers TEXT NOT NULL, authenticated_role TEXT, unauthenticated_role TEXT,
    credentials_seconds INTEGER NOT NULL, created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_pool_identities (
    identity_id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, provider TEXT, subject TEXT,
    created_at INTEGER NOT NULL, last_modified INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS identity_pool_identities_by_login
    ON identity_pool_identities (pool_id, provider, subject);
CREATE INDEX IF NOT EXISTS identity_pool_identities_by_subject ON identity_pool_identities (subject);
";

/// A user pool app client an identity pool trusts (Cognito's `CognitoIdentityProvider`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// `cognito-idp.<region>.amazonaws.com/<user pool id>`.
    pub name: String,
    pub client_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    pub id: String,
    pub name: String,
    pub allow_unauthenticated: bool,
    pub providers: Vec<Provider>,
    pub authenticated_role: Option<String>,
    pub unauthenticated_role: Option<String>,
    pub credentials_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: String,
    pub pool_id: String,
    /// The provider and subject of an authenticated identity; `None` for a guest.
    pub login: Option<(String, String)>,
    pub created_at: i64,
    pub last_modified: i64,
}

#[derive(Debug)]
pub(super) struct Store {
    db: Arc<Database>,
}

fn json_column<T: Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

fn pool_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PoolRecord> {
    let providers: String = row.get(3)?;
    Ok(PoolRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        allow_unauthenticated: row.get(2)?,
        providers: serde_json::from_str(&providers).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(error))
        })?,
        authenticated_role: row.get(4)?,
        unauthenticated_role: row.get(5)?,
        credentials_seconds: row.get(6)?,
    })
}

const POOL_COLUMNS: &str = "pool_id, name, allow_unauthenticated, providers, authenticated_role, \
     unauthenticated_role, credentials_seconds";

fn identity_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IdentityRecord> {
    let provider: Option<String> = row.get(2)?;
    let subject: Option<String> = row.get(3)?;
    Ok(IdentityRecord {
        id: row.get(0)?,
        pool_id: row.get(1)?,
        login: provider.zip(subject),
        created_at: row.get(4)?,
        last_modified: row.get(5)?,
    })
}

const IDENTITY_COLUMNS: &str = "identity_id, pool_id, provider, subject, created_at, last_modified";

impl Store {
    pub(super) fn open(db: Arc<Database>) -> Result<Self, DbError> {
        db.migrate(SCHEMA)?;
        Ok(Self { db })
    }

    /// The id stored for the pool called `name`, if any.
    pub(super) fn id_named(&self, name: &str) -> Result<Option<String>, DbError> {
        self.db.read(|connection| {
            Ok(connection
                .query_row("SELECT pool_id FROM identity_pool_pools WHERE name = ?1", [name], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    /// Creates the pool, or replaces the settings of the pool with its id. `false` if another
    /// pool has its name.
    pub(super) fn put_pool_blocking(&self, pool: &PoolRecord, now: i64) -> Result<bool, DbError> {
        self.db.write_blocking(|transaction| put_pool(transaction, pool, now))
    }

    pub(super) async fn put_pool(&self, pool: PoolRecord, now: i64) -> Result<bool, DbError> {
        self.db.write(move |transaction| put_pool(transaction, &pool, now)).await
    }

    pub(super) fn pool(&self, id: &str) -> Result<Option<PoolRecord>, DbError> {
        self.db.read(|connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {POOL_COLUMNS} FROM identity_pool_pools WHERE pool_id = ?1"
                ))?
                .query_row([id], pool_from_row)
                .optional()?)
        })
    }

    /// Pools in id order after `after`, at most `limit`.
    pub(super) fn pools(&self, after: &str, limit: usize) -> Result<Vec<PoolRecord>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {POOL_COLUMNS} FROM identity_pool_pools WHERE pool_id > ?1 ORDER BY pool_id LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![after, limit as i64], pool_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    pub(super) fn identity(&self, id: &str) -> Result<Option<IdentityRecord>, DbError> {
        self.db.read(|connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identity_pool_identities WHERE identity_id = ?1"
                ))?
                .query_row([id], identity_from_row)
                .optional()?)
        })
    }

    /// The identities of a pool in id order after `after`, at most `limit`.
    pub(super) fn identities(
        &self,
        pool_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<IdentityRecord>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identity_pool_identities
                 WHERE pool_id = ?1 AND identity_id > ?2 ORDER BY identity_id LIMIT ?3"
            ))?;
            let rows = statement.query_map(params![pool_id, after, limit as i64], identity_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The identity of `login` in the pool, created with `new_id` the first time.
    pub(super) async fn identity_for_login(
        &self,
        pool_id: &str,
        login: (String, String),
        new_id: String,
        now: i64,
    ) -> Result<IdentityRecord, DbError> {
        let pool_id = pool_id.to_owned();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO identity_pool_identities (identity_id, pool_id, provider, subject, created_at, last_modified)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (pool_id, provider, subject) DO NOTHING",
                    params![new_id, pool_id, login.0, login.1, now],
                )?;
                Ok(transaction.query_row(
                    &format!(
                        "SELECT {IDENTITY_COLUMNS} FROM identity_pool_identities
                         WHERE pool_id = ?1 AND provider = ?2 AND subject = ?3"
                    ),
                    params![pool_id, login.0, login.1],
                    identity_from_row,
                )?)
            })
            .await
    }

    pub(super) async fn new_guest(
        &self,
        pool_id: &str,
        id: String,
        now: i64,
    ) -> Result<IdentityRecord, DbError> {
        let record = IdentityRecord {
            id,
            pool_id: pool_id.to_owned(),
            login: None,
            created_at: now,
            last_modified: now,
        };
        let row = record.clone();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO identity_pool_identities (identity_id, pool_id, created_at, last_modified)
                     VALUES (?1, ?2, ?3, ?3)",
                    params![row.id, row.pool_id, now],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(record)
    }

    /// Records that credentials were handed to the identity.
    pub(super) async fn touch(&self, identity_id: &str, now: i64) -> Result<(), DbError> {
        let identity_id = identity_id.to_owned();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_pool_identities SET last_modified = ?2 WHERE identity_id = ?1",
                    params![identity_id, now],
                )?;
                Ok(())
            })
            .await
    }

    /// The identities of a user-pool user, in every pool (how a function maps a `sub` back).
    pub(super) fn identities_of_subject(&self, subject: &str) -> Result<Vec<IdentityRecord>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identity_pool_identities WHERE subject = ?1 ORDER BY identity_id"
            ))?;
            let rows = statement.query_map([subject], identity_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

fn put_pool(transaction: &rusqlite::Transaction<'_>, pool: &PoolRecord, now: i64) -> Result<bool, DbError> {
    let taken: Option<String> = transaction
        .query_row("SELECT pool_id FROM identity_pool_pools WHERE name = ?1", [&pool.name], |row| row.get(0))
        .optional()?;
    if taken.is_some_and(|id| id != pool.id) {
        return Ok(false);
    }
    transaction.execute(
        "INSERT INTO identity_pool_pools (pool_id, name, allow_unauthenticated, providers, authenticated_role,
             unauthenticated_role, credentials_seconds, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (pool_id) DO UPDATE SET name = excluded.name,
             allow_unauthenticated = excluded.allow_unauthenticated, providers = excluded.providers,
             authenticated_role = excluded.authenticated_role,
             unauthenticated_role = excluded.unauthenticated_role,
             credentials_seconds = excluded.credentials_seconds",
        params![
            pool.id,
            pool.name,
            pool.allow_unauthenticated,
            json_column(&pool.providers)?,
            pool.authenticated_role,
            pool.unauthenticated_role,
            pool.credentials_seconds,
            now
        ],
    )?;
    Ok(true)
}
