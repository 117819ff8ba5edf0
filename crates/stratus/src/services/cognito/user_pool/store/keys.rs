//! What a pool keeps across restarts besides its users: its id, its app clients' ids and its
//! signing keys (the current one and those retired recently enough to verify live tokens).

use std::sync::Arc;

use rand::Rng as _;
use rusqlite::{OptionalExtension as _, Transaction, params};

use super::Store;
use crate::infra::sqlite::{Database, DbError};

/// A private key (PKCS#8 PEM) and its key id.
#[derive(Debug)]
pub(in super::super) struct NewKey {
    pub(in super::super) kid: String,
    pub(in super::super) pem: String,
}

/// The pool's keys as stored.
#[derive(Debug)]
pub(in super::super) struct KeyRing {
    /// The key new tokens are signed with (PEM).
    pub(in super::super) current: String,
    /// Retired keys (PEM) with the time they were retired, newest first.
    pub(in super::super) retired: Vec<(String, i64)>,
}

fn random_alphanumeric(length: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..length).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

impl Store {
    /// The store of the pool called `name`, and its app clients' ids by name. A configured id
    /// wins; otherwise the one stored at an earlier start; otherwise a new one, as Cognito
    /// makes them (`<region>_<9 characters>`, 26-character client ids).
    pub(in super::super) fn open_blocking(
        db: Arc<Database>,
        name: &str,
        configured_id: Option<&str>,
        region: &str,
        clients: &[(&str, Option<&str>)],
    ) -> Result<(Self, Vec<(String, String)>), DbError> {
        let (pool_id, client_ids) = db.write_blocking(|transaction| {
            let pool_id = ensure_pool_id(transaction, name, configured_id, region)?;
            let mut client_ids = Vec::new();
            for (client_name, configured) in clients {
                let id = ensure_client_id(transaction, &pool_id, client_name, *configured)?;
                client_ids.push(((*client_name).to_owned(), id));
            }
            Ok::<_, DbError>((pool_id, client_ids))
        })?;
        Ok((Self { db, pool_id }, client_ids))
    }

    /// The keys that may have signed a token issued after `since`. On first start there is no
    /// current key: `generate` makes one, stored in the same transaction.
    pub(in super::super) fn key_ring_blocking<E: From<DbError>>(
        &self,
        since: i64,
        now: i64,
        generate: impl FnOnce() -> Result<NewKey, E>,
    ) -> Result<KeyRing, E> {
        self.db.write_blocking(|transaction| {
            let current = match current_key(transaction, &self.pool_id)? {
                Some(pem) => pem,
                None => {
                    let key = generate()?;
                    insert_key(transaction, &self.pool_id, &key, now)?;
                    key.pem
                }
            };
            Ok(KeyRing { current, retired: retired_keys(transaction, &self.pool_id, since)? })
        })
    }

    /// Retires the current key in favour of `key`.
    pub(in super::super) async fn rotate_key(
        &self,
        key: NewKey,
        since: i64,
        now: i64,
    ) -> Result<KeyRing, DbError> {
        let pool_id = self.pool_id.clone();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_keys SET retired_at = ?2 WHERE pool_id = ?1 AND retired_at IS NULL",
                    params![pool_id, now],
                )?;
                insert_key(transaction, &pool_id, &key, now)?;
                Ok(KeyRing { current: key.pem, retired: retired_keys(transaction, &pool_id, since)? })
            })
            .await
    }
}

fn ensure_pool_id(
    transaction: &Transaction<'_>,
    name: &str,
    configured: Option<&str>,
    region: &str,
) -> Result<String, DbError> {
    let stored: Option<String> = transaction
        .query_row("SELECT pool_id FROM identity_pools WHERE name = ?1", [name], |row| row.get(0))
        .optional()?;
    let id = match (configured, stored) {
        (Some(configured), _) => configured.to_owned(),
        (None, Some(stored)) => stored,
        (None, None) => format!(
            "{region}_{}",
            random_alphanumeric(9, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        ),
    };
    transaction.execute(
        "INSERT INTO identity_pools (name, pool_id) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET pool_id = excluded.pool_id",
        params![name, id],
    )?;
    Ok(id)
}

fn ensure_client_id(
    transaction: &Transaction<'_>,
    pool_id: &str,
    name: &str,
    configured: Option<&str>,
) -> Result<String, DbError> {
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

fn current_key(transaction: &Transaction<'_>, pool_id: &str) -> Result<Option<String>, DbError> {
    Ok(transaction
        .query_row(
            "SELECT private_pem FROM identity_keys WHERE pool_id = ?1 AND retired_at IS NULL
             ORDER BY created_at DESC LIMIT 1",
            [pool_id],
            |row| row.get(0),
        )
        .optional()?)
}

fn retired_keys(
    transaction: &Transaction<'_>,
    pool_id: &str,
    since: i64,
) -> Result<Vec<(String, i64)>, DbError> {
    let mut statement = transaction.prepare_cached(
        "SELECT private_pem, retired_at FROM identity_keys WHERE pool_id = ?1 AND retired_at > ?2
         ORDER BY retired_at DESC",
    )?;
    let rows = statement.query_map(params![pool_id, since], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn insert_key(transaction: &Transaction<'_>, pool_id: &str, key: &NewKey, now: i64) -> Result<(), DbError> {
    transaction.execute(
        "INSERT INTO identity_keys (pool_id, kid, private_pem, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![pool_id, key.kid, key.pem, now],
    )?;
    Ok(())
}
