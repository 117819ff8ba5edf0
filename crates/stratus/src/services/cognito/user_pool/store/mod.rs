//! A user pool's storage in the stage database. [`Store`] owns every SQL statement of the pool:
//! the operations ask it typed questions (a user by name or by sub, a session by its hash, the
//! families to revoke) and never pass SQL between functions. It decides nothing about Cognito's
//! rules; it reports what is stored and applies what it is told, each write in one transaction.

mod keys;
mod sessions;
mod users;

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::ToSql;
use rusqlite::types::ToSqlOutput;

use crate::infra::sqlite::{Database, DbError};

pub(super) use keys::{KeyRing, NewKey};
pub(super) use sessions::{ChallengeSession, Families, NewRefreshToken, Revoke};
pub(super) use users::{CodeVerdict, NewUser, UserChange, UserKey, UserRow};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity_pools (name TEXT PRIMARY KEY, pool_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS identity_clients (
    pool_id TEXT NOT NULL, name TEXT NOT NULL, client_id TEXT NOT NULL UNIQUE, PRIMARY KEY (pool_id, name)
);
CREATE TABLE IF NOT EXISTS identity_keys (
    pool_id TEXT NOT NULL, kid TEXT NOT NULL, private_pem TEXT NOT NULL,
    created_at INTEGER NOT NULL, retired_at INTEGER, PRIMARY KEY (pool_id, kid)
);
CREATE TABLE IF NOT EXISTS identity_users (
    pool_id TEXT NOT NULL, sub TEXT NOT NULL, username TEXT NOT NULL, username_key TEXT NOT NULL,
    email TEXT, attributes TEXT NOT NULL, password_hash TEXT, status TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1, totp_secret TEXT, totp_pending TEXT,
    totp_enabled INTEGER NOT NULL DEFAULT 0, totp_last_step INTEGER,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (pool_id, sub), UNIQUE (pool_id, username_key)
);
CREATE INDEX IF NOT EXISTS identity_users_by_email ON identity_users (pool_id, email);
CREATE TABLE IF NOT EXISTS identity_groups (
    pool_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT, precedence INTEGER,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (pool_id, name)
);
CREATE TABLE IF NOT EXISTS identity_memberships (
    pool_id TEXT NOT NULL, group_name TEXT NOT NULL, sub TEXT NOT NULL, PRIMARY KEY (pool_id, group_name, sub)
);
CREATE TABLE IF NOT EXISTS identity_codes (
    pool_id TEXT NOT NULL, sub TEXT NOT NULL, purpose TEXT NOT NULL, code_hash TEXT NOT NULL,
    expires_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (pool_id, sub, purpose)
);
CREATE TABLE IF NOT EXISTS identity_refresh_tokens (
    token_hash TEXT PRIMARY KEY, pool_id TEXT NOT NULL, sub TEXT NOT NULL, client_id TEXT NOT NULL,
    family TEXT NOT NULL, auth_time INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    -- set when rotated; `revoked_at` stops the refresh token, `access_revoked_at` also the
    -- access tokens issued from its family
    used_at INTEGER, revoked_at INTEGER, access_revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS identity_refresh_by_family ON identity_refresh_tokens (family);
CREATE INDEX IF NOT EXISTS identity_refresh_by_user ON identity_refresh_tokens (pool_id, sub);
CREATE TABLE IF NOT EXISTS identity_sessions (
    session_hash TEXT PRIMARY KEY, pool_id TEXT NOT NULL, sub TEXT NOT NULL, client_id TEXT NOT NULL,
    challenge TEXT NOT NULL, expires_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0
);
";

pub(super) fn migrate(db: &Database) -> Result<(), DbError> {
    db.migrate(SCHEMA)
}

/// One pool's rows.
#[derive(Debug)]
pub(super) struct Store {
    db: Arc<Database>,
    pool_id: String,
}

impl Store {
    pub(super) fn pool_id(&self) -> &str {
        &self.pool_id
    }
}

/// A stored value that does not read back is a conversion failure of its column, not a default.
fn corrupt(column: usize, problem: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, problem.into())
}

/// User attributes as their stored JSON column.
struct AttributesJson<'a>(&'a BTreeMap<String, String>);

impl ToSql for AttributesJson<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let json = serde_json::to_string(self.0)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        Ok(ToSqlOutput::from(json))
    }
}
