//! Users, their one-time codes, groups and memberships.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension as _, Transaction, params};

use super::{AttributesJson, Store, corrupt};
use crate::infra::sqlite::DbError;
use crate::services::cognito::user_pool::model::{CodePurpose, Group, UserStatus};

const USER_COLUMNS: &str = "sub, username, attributes, password_hash, status, enabled, totp_secret, \
     totp_pending, totp_enabled, totp_last_step, created_at, updated_at";

/// A user as stored.
#[derive(Debug, Clone)]
pub(in super::super) struct UserRow {
    pub(in super::super) sub: String,
    pub(in super::super) username: String,
    pub(in super::super) attributes: BTreeMap<String, String>,
    pub(in super::super) password_hash: Option<String>,
    pub(in super::super) status: UserStatus,
    pub(in super::super) enabled: bool,
    pub(in super::super) totp_secret: Option<String>,
    pub(in super::super) totp_pending: Option<String>,
    pub(in super::super) totp_enabled: bool,
    pub(in super::super) totp_last_step: Option<i64>,
    pub(in super::super) created_at: i64,
    pub(in super::super) updated_at: i64,
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
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

/// How a user is looked up.
#[derive(Debug, Clone, Copy)]
pub(in super::super) enum UserKey<'a> {
    /// Case-insensitively, as Cognito compares usernames.
    Username(&'a str),
    Sub(&'a str),
}

/// A user about to be created.
#[derive(Debug)]
pub(in super::super) struct NewUser {
    pub(in super::super) sub: String,
    pub(in super::super) username: String,
    pub(in super::super) attributes: BTreeMap<String, String>,
    pub(in super::super) password_hash: Option<String>,
    pub(in super::super) status: UserStatus,
}

/// One change to a stored user.
#[derive(Debug)]
pub(in super::super) enum UserChange {
    /// Replaces the attributes (and the indexed email).
    Attributes(BTreeMap<String, String>),
    /// The address is verified: the user is confirmed with these attributes.
    Confirmed {
        attributes: BTreeMap<String, String>,
    },
    Password {
        hash: String,
        status: UserStatus,
    },
    Enabled(bool),
    /// A TOTP secret handed out, not yet proven.
    TotpPending(String),
    /// The pending secret is proven with the code of `step`: it becomes the user's.
    TotpVerified {
        step: i64,
    },
    MfaEnabled(bool),
}

/// What checking a one-time code found. A mismatch has been counted by the time it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in super::super) enum CodeVerdict {
    /// Matched, and used up.
    Accepted,
    Mismatch,
    /// None was issued, or it expired.
    Expired,
    /// Too many wrong guesses: the code is burnt.
    AttemptsExhausted,
}

impl Store {
    pub(in super::super) fn user(&self, key: UserKey<'_>) -> Result<Option<UserRow>, DbError> {
        let (condition, value) = match key {
            UserKey::Username(username) => ("username_key = ?2", username.to_lowercase()),
            UserKey::Sub(sub) => ("sub = ?2", sub.to_owned()),
        };
        self.db.read(|connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM identity_users WHERE pool_id = ?1 AND {condition}"
                ))?
                .query_row(params![self.pool_id, value], user_from_row)
                .optional()?)
        })
    }

    /// Every user whose username sorts after `after`, in username order.
    pub(in super::super) fn users_after(&self, after: &str) -> Result<Vec<UserRow>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM identity_users WHERE pool_id = ?1 AND username_key > ?2
                 ORDER BY username_key"
            ))?;
            let rows = statement.query_map(params![self.pool_id, after.to_lowercase()], user_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Creates the user, and with it the code that will confirm them, if any. `false` if the
    /// username is taken (nothing is written then).
    pub(in super::super) async fn insert_user(
        &self,
        user: NewUser,
        code: Option<(CodePurpose, String)>,
        now: i64,
    ) -> Result<bool, DbError> {
        let pool_id = self.pool_id.clone();
        self.db
            .write(move |transaction| {
                let inserted = transaction.execute(
                    "INSERT INTO identity_users (pool_id, sub, username, username_key, email, attributes,
                                                 password_hash, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT DO NOTHING",
                    params![
                        pool_id,
                        user.sub,
                        user.username,
                        user.username.to_lowercase(),
                        user.attributes.get("email"),
                        AttributesJson(&user.attributes),
                        user.password_hash,
                        user.status.as_str(),
                        now
                    ],
                )?;
                if inserted == 0 {
                    return Ok(false);
                }
                if let Some((purpose, code_hash)) = code {
                    put_code(transaction, &pool_id, &user.sub, purpose, &code_hash, now)?;
                }
                Ok(true)
            })
            .await
    }

    pub(in super::super) async fn update_user(
        &self,
        sub: &str,
        change: UserChange,
        now: i64,
    ) -> Result<(), DbError> {
        let (pool_id, sub) = (self.pool_id.clone(), sub.to_owned());
        self.db.write(move |transaction| apply(transaction, &pool_id, &sub, &change, now)).await
    }

    /// Records that a TOTP code of `step` was used, unless one of that step or later already
    /// was: conditional, so two concurrent uses of one code cannot both pass.
    pub(in super::super) async fn advance_totp_step(&self, sub: &str, step: i64) -> Result<bool, DbError> {
        let (pool_id, sub) = (self.pool_id.clone(), sub.to_owned());
        self.db
            .write(move |transaction| {
                let updated = transaction.execute(
                    "UPDATE identity_users SET totp_last_step = ?3
                     WHERE pool_id = ?1 AND sub = ?2 AND (totp_last_step IS NULL OR totp_last_step < ?3)",
                    params![pool_id, sub, step],
                )?;
                Ok(updated == 1)
            })
            .await
    }

    /// Deletes the user with their memberships, codes and challenge sessions.
    pub(in super::super) async fn delete_user(&self, sub: &str) -> Result<(), DbError> {
        let (pool_id, sub) = (self.pool_id.clone(), sub.to_owned());
        self.db
            .write(move |transaction| {
                for statement in [
                    "DELETE FROM identity_users WHERE pool_id = ?1 AND sub = ?2",
                    "DELETE FROM identity_memberships WHERE pool_id = ?1 AND sub = ?2",
                    "DELETE FROM identity_codes WHERE pool_id = ?1 AND sub = ?2",
                    "DELETE FROM identity_sessions WHERE pool_id = ?1 AND sub = ?2",
                ] {
                    transaction.execute(statement, params![pool_id, sub])?;
                }
                Ok(())
            })
            .await
    }

    /// Replaces the user's code for `purpose`, with a fresh attempt count.
    pub(in super::super) async fn put_code(
        &self,
        sub: &str,
        purpose: CodePurpose,
        code_hash: String,
        now: i64,
    ) -> Result<(), DbError> {
        let (pool_id, sub) = (self.pool_id.clone(), sub.to_owned());
        self.db
            .write(move |transaction| put_code(transaction, &pool_id, &sub, purpose, &code_hash, now))
            .await
    }

    /// Checks the user's code for `purpose` and, in the same transaction, applies `then` if it
    /// matches. A match uses the code up; a mismatch counts against `max_attempts` and is
    /// committed, never rolled back.
    pub(in super::super) async fn redeem_code(
        &self,
        sub: &str,
        purpose: CodePurpose,
        code_hash: String,
        max_attempts: i64,
        then: UserChange,
        now: i64,
    ) -> Result<CodeVerdict, DbError> {
        let (pool_id, sub) = (self.pool_id.clone(), sub.to_owned());
        self.db
            .write(move |transaction| {
                let key = params![pool_id, sub, purpose.as_str()];
                let stored: Option<(String, i64, i64)> = transaction
                    .query_row(
                        "SELECT code_hash, expires_at, attempts FROM identity_codes
                         WHERE pool_id = ?1 AND sub = ?2 AND purpose = ?3",
                        key,
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?;
                let verdict = match stored {
                    None => CodeVerdict::Expired,
                    Some((_, expires_at, _)) if expires_at <= now => CodeVerdict::Expired,
                    Some((_, _, attempts)) if attempts >= max_attempts => CodeVerdict::AttemptsExhausted,
                    // Both sides are SHA-256 digests, so comparing them reveals nothing of the code.
                    Some((stored_hash, _, _)) if stored_hash != code_hash => CodeVerdict::Mismatch,
                    Some(_) => CodeVerdict::Accepted,
                };
                match verdict {
                    CodeVerdict::Mismatch => {
                        transaction.execute(
                            "UPDATE identity_codes SET attempts = attempts + 1
                             WHERE pool_id = ?1 AND sub = ?2 AND purpose = ?3",
                            key,
                        )?;
                    }
                    CodeVerdict::Accepted => {
                        transaction.execute(
                            "DELETE FROM identity_codes WHERE pool_id = ?1 AND sub = ?2 AND purpose = ?3",
                            key,
                        )?;
                        apply(transaction, &pool_id, &sub, &then, now)?;
                    }
                    CodeVerdict::Expired | CodeVerdict::AttemptsExhausted => {}
                }
                Ok(verdict)
            })
            .await
    }

    /// `false` if a group of that name exists (nothing is written then).
    pub(in super::super) async fn insert_group(&self, group: Group) -> Result<bool, DbError> {
        let pool_id = self.pool_id.clone();
        self.db
            .write(move |transaction| {
                let inserted = transaction.execute(
                    "INSERT INTO identity_groups (pool_id, name, description, precedence, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    params![
                        pool_id,
                        group.name,
                        group.description,
                        group.precedence,
                        group.created_at,
                        group.updated_at
                    ],
                )?;
                Ok(inserted == 1)
            })
            .await
    }

    /// Every group, by name.
    pub(in super::super) fn groups(&self) -> Result<Vec<Group>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT name, description, precedence, created_at, updated_at FROM identity_groups
                 WHERE pool_id = ?1 ORDER BY name",
            )?;
            let rows = statement.query_map([&self.pool_id], |row| {
                Ok(Group {
                    name: row.get(0)?,
                    description: row.get(1)?,
                    precedence: row.get(2)?,
                    created_at: row.get(3)?,
                    updated_at: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The user's groups, by precedence (lowest first, unranked last), then name.
    pub(in super::super) fn groups_of(&self, sub: &str) -> Result<Vec<String>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT m.group_name FROM identity_memberships m JOIN identity_groups g
                   ON g.pool_id = m.pool_id AND g.name = m.group_name
                 WHERE m.pool_id = ?1 AND m.sub = ?2
                 ORDER BY g.precedence IS NULL, g.precedence, m.group_name",
            )?;
            let rows = statement.query_map(params![self.pool_id, sub], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    pub(in super::super) async fn set_membership(
        &self,
        group: &str,
        sub: &str,
        member: bool,
    ) -> Result<(), DbError> {
        let (pool_id, group, sub) = (self.pool_id.clone(), group.to_owned(), sub.to_owned());
        let statement = if member {
            "INSERT INTO identity_memberships (pool_id, group_name, sub) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM identity_memberships WHERE pool_id = ?1 AND group_name = ?2 AND sub = ?3"
        };
        self.db
            .write(move |transaction| {
                transaction.execute(statement, params![pool_id, group, sub])?;
                Ok(())
            })
            .await
    }
}

fn put_code(
    transaction: &Transaction<'_>,
    pool_id: &str,
    sub: &str,
    purpose: CodePurpose,
    code_hash: &str,
    now: i64,
) -> Result<(), DbError> {
    transaction.execute(
        "INSERT INTO identity_codes (pool_id, sub, purpose, code_hash, expires_at, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)
         ON CONFLICT (pool_id, sub, purpose) DO UPDATE SET code_hash = excluded.code_hash,
             expires_at = excluded.expires_at, attempts = 0",
        params![pool_id, sub, purpose.as_str(), code_hash, now + purpose.validity()],
    )?;
    Ok(())
}

fn apply(
    transaction: &Transaction<'_>,
    pool_id: &str,
    sub: &str,
    change: &UserChange,
    now: i64,
) -> Result<(), DbError> {
    match change {
        UserChange::Attributes(attributes) => transaction.execute(
            "UPDATE identity_users SET attributes = ?4, email = ?5, updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, AttributesJson(attributes), attributes.get("email")],
        ),
        UserChange::Confirmed { attributes } => transaction.execute(
            "UPDATE identity_users SET status = ?4, attributes = ?5, updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, UserStatus::Confirmed.as_str(), AttributesJson(attributes)],
        ),
        UserChange::Password { hash, status } => transaction.execute(
            "UPDATE identity_users SET password_hash = ?4, status = ?5, updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, hash, status.as_str()],
        ),
        UserChange::Enabled(enabled) => transaction.execute(
            "UPDATE identity_users SET enabled = ?4, updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, enabled],
        ),
        UserChange::TotpPending(secret) => transaction.execute(
            "UPDATE identity_users SET totp_pending = ?4, updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, secret],
        ),
        UserChange::TotpVerified { step } => transaction.execute(
            "UPDATE identity_users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?4,
             updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, step],
        ),
        UserChange::MfaEnabled(enabled) => transaction.execute(
            "UPDATE identity_users SET totp_enabled = ?4, updated_at = ?3 WHERE pool_id = ?1 AND sub = ?2",
            params![pool_id, sub, now, enabled],
        ),
    }?;
    Ok(())
}
