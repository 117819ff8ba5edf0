//! The user pool's storage: schema and the row-level operations on users, codes, ids and
//! signing keys, inside the caller's transaction or connection.

use std::collections::BTreeMap;

use rand::Rng as _;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use super::IdentityError;
use super::model::UserStatus;
use crate::infra::sqlite::Database;
use crate::services::cognito::tokens::{self, SigningKey, VerifyingKey};
use crate::services::cognito::user_pool::PoolConfig;

/// Wrong guesses that burn a code.
const CODE_ATTEMPTS: i64 = 5;

pub(super) const SCHEMA: &str = "
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

pub(super) fn migrate(db: &Database) -> Result<(), IdentityError> {
    Ok(db.migrate(SCHEMA)?)
}

pub(super) struct UserRow {
    pub(super) sub: String,
    pub(super) username: String,
    pub(super) attributes: BTreeMap<String, String>,
    pub(super) password_hash: Option<String>,
    pub(super) status: UserStatus,
    pub(super) enabled: bool,
    pub(super) totp_secret: Option<String>,
    pub(super) totp_pending: Option<String>,
    pub(super) totp_enabled: bool,
    pub(super) totp_last_step: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

pub(super) const USER_COLUMNS: &str = "sub, username, attributes, password_hash, status, enabled, totp_secret, totp_pending, \
     totp_enabled, totp_last_step, created_at, updated_at";

/// A stored value that does not read back is a conversion failure of its column, not a default.
fn corrupt(column: usize, problem: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, problem.into())
}

pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let attributes: String = row.get(2)?;
    let status: String = row.get(4)?;
    Ok(UserRow {
        sub: row.get(0)?,
        username: row.get(1)?,
        attributes: serde_json::from_str(&attributes).map_err(|error| corrupt(2, error))?,
        password_hash: row.get(3)?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| corrupt(4, format!("unknown user status `{status}`")))?,
        enabled: row.get(5)?,
        totp_secret: row.get(6)?,
        totp_pending: row.get(7)?,
        totp_enabled: row.get(8)?,
        totp_last_step: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

pub(super) struct Keys {
    pub(super) signing: SigningKey,
    pub(super) verifying: Vec<VerifyingKey>,
}

pub(super) fn random_alphanumeric(length: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..length).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

pub(super) fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(super) fn user_where(
    connection: &Connection,
    pool_id: &str,
    condition: &str,
    value: &str,
) -> Result<Option<UserRow>, IdentityError> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM identity_users WHERE pool_id = ?1 AND {condition}"
        ))?
        .query_row(params![pool_id, value], user_from_row)
        .optional()?)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn insert_user(
    transaction: &Transaction<'_>,
    pool_id: &str,
    sub: &str,
    username: &str,
    attributes: &BTreeMap<String, String>,
    password_hash: Option<&str>,
    status: UserStatus,
    now: i64,
) -> Result<(), IdentityError> {
    let inserted = transaction.execute(
        "INSERT INTO identity_users (pool_id, sub, username, username_key, email, attributes, password_hash, status,
                                     created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT DO NOTHING",
        params![
            pool_id,
            sub,
            username,
            username.to_lowercase(),
            attributes.get("email"),
            serde_json::to_string(attributes).unwrap_or_default(),
            password_hash,
            status.as_str(),
            now
        ],
    )?;
    if inserted == 0 {
        return Err(IdentityError::UsernameExists("User already exists".into()));
    }
    Ok(())
}

pub(super) fn store_code(
    transaction: &Transaction<'_>,
    pool_id: &str,
    sub: &str,
    purpose: &str,
    code_hash: &str,
    expires_at: i64,
) -> Result<(), IdentityError> {
    transaction.execute(
        "INSERT INTO identity_codes (pool_id, sub, purpose, code_hash, expires_at, attempts) VALUES (?1, ?2, ?3, ?4, ?5, 0)
         ON CONFLICT (pool_id, sub, purpose) DO UPDATE SET code_hash = excluded.code_hash,
             expires_at = excluded.expires_at, attempts = 0",
        params![pool_id, sub, purpose, code_hash, expires_at],
    )?;
    Ok(())
}

/// Checks a code: on success deletes it (single use); on a mismatch counts the attempt. The
/// outer `Result` is storage, the inner one the verdict — so the caller commits either way and a
/// wrong guess is never rolled back.
pub(super) fn consume_code(
    transaction: &Transaction<'_>,
    pool_id: &str,
    sub: &str,
    purpose: &str,
    code: &str,
    now: i64,
) -> Result<Result<(), IdentityError>, IdentityError> {
    let stored: Option<(String, i64, i64)> = transaction
        .query_row(
            "SELECT code_hash, expires_at, attempts FROM identity_codes WHERE pool_id = ?1 AND sub = ?2 AND purpose = ?3",
            params![pool_id, sub, purpose],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let Some((code_hash, expires_at, attempts)) = stored else { return Ok(Err(IdentityError::ExpiredCode)) };
    if expires_at <= now {
        return Ok(Err(IdentityError::ExpiredCode));
    }
    if attempts >= CODE_ATTEMPTS {
        return Ok(Err(IdentityError::LimitExceeded(
            "Attempt limit exceeded, please try after some time.".into(),
        )));
    }
    // Both sides are SHA-256 digests, so comparing them reveals nothing about the code.
    if code_hash != digest(code) {
        transaction.execute(
            "UPDATE identity_codes SET attempts = attempts + 1 WHERE pool_id = ?1 AND sub = ?2 AND purpose = ?3",
            params![pool_id, sub, purpose],
        )?;
        return Ok(Err(IdentityError::CodeMismatch));
    }
    transaction.execute(
        "DELETE FROM identity_codes WHERE pool_id = ?1 AND sub = ?2 AND purpose = ?3",
        params![pool_id, sub, purpose],
    )?;
    Ok(Ok(()))
}

pub(super) fn ensure_pool_id(
    transaction: &Transaction<'_>,
    name: &str,
    config: &PoolConfig,
    region: &str,
) -> Result<String, IdentityError> {
    let stored: Option<String> = transaction
        .query_row("SELECT pool_id FROM identity_pools WHERE name = ?1", [name], |row| row.get(0))
        .optional()?;
    let id = match (&config.id, stored) {
        (Some(configured), _) => configured.clone(),
        (None, Some(stored)) => stored,
        (None, None) => format!(
            "{region}_{}",
            random_alphanumeric(9, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        ),
    };
    transaction.execute(
        "INSERT INTO identity_pools (name, pool_id) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET pool_id = excluded.pool_id",
        params![name, id],
    )?;
    Ok(id)
}

pub(super) fn ensure_client_id(
    transaction: &Transaction<'_>,
    pool_id: &str,
    name: &str,
    configured: Option<&str>,
) -> Result<String, IdentityError> {
    let stored: Option<String> = transaction
        .query_row(
            "SELECT client_id FROM identity_clients WHERE pool_id = ?1 AND name = ?2",
            params![pool_id, name],
            |row| row.get(0),
        )
        .optional()?;
    let id = match (configured, stored) {
        (Some(configured), _) => configured.to_owned(),
        (None, Some(stored)) => stored,
        (None, None) => random_alphanumeric(26, b"abcdefghijklmnopqrstuvwxyz0123456789"),
    };
    transaction.execute(
        "INSERT INTO identity_clients (pool_id, name, client_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (pool_id, name) DO UPDATE SET client_id = excluded.client_id",
        params![pool_id, name, id],
    )?;
    Ok(id)
}

pub(super) fn insert_key(
    transaction: &Transaction<'_>,
    pool_id: &str,
    pem: &str,
    now: i64,
) -> Result<(), IdentityError> {
    let (signing, _) = tokens::load_key(pem, None)?;
    transaction.execute(
        "INSERT INTO identity_keys (pool_id, kid, private_pem, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![pool_id, signing.kid, pem, now],
    )?;
    Ok(())
}

/// The current key (generating one on first start) and every retired key whose tokens may
/// still be valid.
pub(super) fn load_keys(
    transaction: &Transaction<'_>,
    pool_id: &str,
    now: i64,
    config: &PoolConfig,
) -> Result<Keys, IdentityError> {
    let current: Option<String> = transaction
        .query_row(
            "SELECT private_pem FROM identity_keys WHERE pool_id = ?1 AND retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
            [pool_id],
            |row| row.get(0),
        )
        .optional()?;
    let current = match current {
        Some(pem) => pem,
        None => {
            let pem = tokens::generate_private_key()?;
            insert_key(transaction, pool_id, &pem, now)?;
            pem
        }
    };
    let (signing, current_public) = tokens::load_key(&current, None)?;
    let longest = config.access_token_validity.max(config.id_token_validity).as_secs() as i64
        + tokens::LEEWAY_SECONDS as i64;
    let mut verifying = vec![current_public];
    let retired: Vec<(String, i64)> = transaction
        .prepare("SELECT private_pem, retired_at FROM identity_keys WHERE pool_id = ?1 AND retired_at > ?2 ORDER BY retired_at DESC")?
        .query_map(params![pool_id, now - longest], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (pem, retired_at) in retired {
        let (_, public) = tokens::load_key(&pem, Some(retired_at))?;
        verifying.push(public);
    }
    Ok(Keys { signing, verifying })
}
