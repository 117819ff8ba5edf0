//! Challenge sessions (a sign-in waiting for its next step) and refresh tokens, which come in
//! families: one family per sign-in, one token per rotation. Tokens and sessions are stored by
//! their SHA-256 digest only.

use std::collections::HashSet;

use rusqlite::{OptionalExtension as _, params};

use super::{Store, corrupt};
use crate::infra::sqlite::DbError;
use crate::services::cognito::user_pool::model::Challenge;

/// A sign-in waiting for the answer to `challenge`.
#[derive(Debug, Clone)]
pub(in super::super) struct ChallengeSession {
    pub(in super::super) sub: String,
    pub(in super::super) client_id: String,
    pub(in super::super) challenge: Challenge,
    pub(in super::super) expires_at: i64,
    /// Answers tried so far.
    pub(in super::super) attempts: i64,
}

/// A refresh token about to be stored.
#[derive(Debug)]
pub(in super::super) struct NewRefreshToken {
    pub(in super::super) token_hash: String,
    pub(in super::super) sub: String,
    pub(in super::super) client_id: String,
    pub(in super::super) family: String,
    /// When the user signed in (the family began).
    pub(in super::super) auth_time: i64,
    pub(in super::super) created_at: i64,
    pub(in super::super) expires_at: i64,
}

#[derive(Debug, Clone)]
pub(in super::super) struct RefreshRow {
    pub(in super::super) sub: String,
    pub(in super::super) client_id: String,
    pub(in super::super) family: String,
    pub(in super::super) auth_time: i64,
    pub(in super::super) expires_at: i64,
    /// Set when the token was rotated.
    pub(in super::super) used_at: Option<i64>,
    pub(in super::super) revoked_at: Option<i64>,
}

/// Which refresh-token families a revocation covers.
#[derive(Debug, Clone)]
pub(in super::super) enum Families {
    /// Every family of the user: all their sign-ins.
    OfUser(String),
    One(String),
}

/// What a revocation stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in super::super) enum Revoke {
    /// The refresh tokens; access tokens already issued live out their lifetime.
    RefreshTokens,
    /// The refresh tokens and every access token issued from them.
    Everything,
}

impl Store {
    pub(in super::super) async fn insert_session(
        &self,
        session_hash: String,
        session: ChallengeSession,
    ) -> Result<(), DbError> {
        let pool_id = self.pool_id.clone();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO identity_sessions (session_hash, pool_id, sub, client_id, challenge, expires_at, attempts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        session_hash,
                        pool_id,
                        session.sub,
                        session.client_id,
                        session.challenge.as_str(),
                        session.expires_at,
                        session.attempts
                    ],
                )?;
                Ok(())
            })
            .await
    }

    pub(in super::super) fn session(&self, session_hash: &str) -> Result<Option<ChallengeSession>, DbError> {
        self.db.read(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT sub, client_id, challenge, expires_at, attempts FROM identity_sessions
                     WHERE session_hash = ?1 AND pool_id = ?2",
                )?
                .query_row(params![session_hash, self.pool_id], |row| {
                    let challenge: String = row.get(2)?;
                    Ok(ChallengeSession {
                        sub: row.get(0)?,
                        client_id: row.get(1)?,
                        challenge: Challenge::parse(&challenge)
                            .ok_or_else(|| corrupt(2, format!("unknown challenge `{challenge}`")))?,
                        expires_at: row.get(3)?,
                        attempts: row.get(4)?,
                    })
                })
                .optional()?)
        })
    }

    pub(in super::super) async fn count_session_attempt(&self, session_hash: String) -> Result<(), DbError> {
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_sessions SET attempts = attempts + 1 WHERE session_hash = ?1",
                    [session_hash],
                )?;
                Ok(())
            })
            .await
    }

    pub(in super::super) async fn delete_session(&self, session_hash: String) -> Result<(), DbError> {
        self.db
            .write(move |transaction| {
                transaction
                    .execute("DELETE FROM identity_sessions WHERE session_hash = ?1", [session_hash])?;
                Ok(())
            })
            .await
    }

    pub(in super::super) async fn insert_refresh_token(&self, token: NewRefreshToken) -> Result<(), DbError> {
        let pool_id = self.pool_id.clone();
        self.db.write(move |transaction| insert_refresh_token(transaction, &pool_id, &token)).await
    }

    pub(in super::super) fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRow>, DbError> {
        self.db.read(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT sub, client_id, family, auth_time, expires_at, used_at, revoked_at
                     FROM identity_refresh_tokens WHERE token_hash = ?1 AND pool_id = ?2",
                )?
                .query_row(params![token_hash, self.pool_id], |row| {
                    Ok(RefreshRow {
                        sub: row.get(0)?,
                        client_id: row.get(1)?,
                        family: row.get(2)?,
                        auth_time: row.get(3)?,
                        expires_at: row.get(4)?,
                        used_at: row.get(5)?,
                        revoked_at: row.get(6)?,
                    })
                })
                .optional()?)
        })
    }

    /// Marks the token used and stores its successor, if the token is still unused and
    /// unrevoked; `false` (nothing written) if another rotation or a revocation came first.
    pub(in super::super) async fn rotate_refresh_token(
        &self,
        token_hash: String,
        next: NewRefreshToken,
    ) -> Result<bool, DbError> {
        let pool_id = self.pool_id.clone();
        self.db
            .write(move |transaction| {
                let rotated = transaction.execute(
                    "UPDATE identity_refresh_tokens SET used_at = ?2
                     WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL",
                    params![token_hash, next.created_at],
                )?;
                if rotated == 1 {
                    insert_refresh_token(transaction, &pool_id, &next)?;
                }
                Ok(rotated == 1)
            })
            .await
    }

    /// Revokes `families`; what was revoked before keeps its first revocation time.
    pub(in super::super) async fn revoke(
        &self,
        families: Families,
        scope: Revoke,
        now: i64,
    ) -> Result<(), DbError> {
        let pool_id = self.pool_id.clone();
        self.db
            .write(move |transaction| {
                let (condition, value) = match &families {
                    Families::OfUser(sub) => ("pool_id = ?2 AND sub = ?1", sub),
                    Families::One(family) => ("pool_id = ?2 AND family = ?1", family),
                };
                let access = match scope {
                    Revoke::RefreshTokens => "access_revoked_at",
                    Revoke::Everything => "COALESCE(access_revoked_at, ?3)",
                };
                transaction.execute(
                    &format!(
                        "UPDATE identity_refresh_tokens
                         SET revoked_at = COALESCE(revoked_at, ?3), access_revoked_at = {access}
                         WHERE family IN (SELECT DISTINCT family FROM identity_refresh_tokens WHERE {condition})"
                    ),
                    params![value, pool_id, now],
                )?;
                Ok(())
            })
            .await
    }

    /// Families whose access tokens were revoked after `since`.
    pub(in super::super) fn access_revoked_since(&self, since: i64) -> Result<HashSet<String>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT DISTINCT family FROM identity_refresh_tokens
                 WHERE pool_id = ?1 AND access_revoked_at IS NOT NULL AND access_revoked_at > ?2",
            )?;
            let rows = statement.query_map(params![self.pool_id, since], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<HashSet<_>, _>>()?)
        })
    }
}

fn insert_refresh_token(
    transaction: &rusqlite::Transaction<'_>,
    pool_id: &str,
    token: &NewRefreshToken,
) -> Result<(), DbError> {
    transaction.execute(
        "INSERT INTO identity_refresh_tokens
         (token_hash, pool_id, sub, client_id, family, auth_time, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            token.token_hash,
            pool_id,
            token.sub,
            token.client_id,
            token.family,
            token.auth_time,
            token.created_at,
            token.expires_at
        ],
    )?;
    Ok(())
}
