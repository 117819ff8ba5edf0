//! The credentials store: AWS access keys, looked up by access key id when a SigV4-signed
//! request arrives. Temporary credentials (`ASIA…`, what the identity pool and STS hand out)
//! carry a session token, an expiry and who they were issued to — the identity, the user-pool
//! user, the role, and the sign-in (refresh-token family) of the ID token they came from, which
//! whoever verifies a request checks against its issuer's revocations (`is_revoked`), so that
//! signing the user out, disabling or deleting them ends the credentials within a second. The operator's long-term keys (`AKIA…`-like, configured
//! or generated) live in the same store with no token and no expiry.
//!
//! Secrets are kept as given, since verifying a SigV4 signature needs them; session tokens only
//! as SHA-256 digests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::{Rng as _, RngCore as _};
use rusqlite::{OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use crate::infra::sqlite::{Database, DbError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS credentials (
    access_key_id TEXT PRIMARY KEY, secret_access_key TEXT NOT NULL,
    -- NULL for long-term keys
    session_token_hash TEXT, expires_at INTEGER,
    identity_id TEXT, role_arn TEXT, subject TEXT, issuer TEXT, family TEXT,
    created_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS credentials_by_identity ON credentials (identity_id);
";

/// AWS's bounds for temporary credentials' lifetime (`DurationSeconds`).
pub const MIN_DURATION: Duration = Duration::from_secs(15 * 60);
pub const MAX_DURATION: Duration = Duration::from_secs(12 * 3600);

/// Whom temporary credentials are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The identity pool's id for the user (`REGION:GUID`).
    pub identity_id: String,
    pub role_arn: String,
    /// The user-pool `sub`, for an authenticated identity.
    pub subject: Option<String>,
    /// The ID token's issuer and sign-in (`origin_jti`): revoking it revokes the credentials.
    pub sign_in: Option<SignIn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub issuer: String,
    pub family: String,
}

/// What a client is handed: AWS's `Credentials` shape.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Epoch seconds.
    pub expiration: i64,
}

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// A request's signer, once its access key id and session token are found good.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
    /// What the request's signature is verified with.
    pub secret_access_key: String,
    pub kind: CallerKind,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("access_key_id", &self.access_key_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// Long-term keys: the operator.
    Operator,
    Temporary {
        grant: Grant,
        expires_at: i64,
    },
}

/// Why a request's credentials are refused, named as S3 and STS name it.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `InvalidAccessKeyId`.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    UnknownAccessKey,
    /// `ExpiredToken`.
    #[error("The provided token has expired.")]
    Expired,
    /// `InvalidToken`: a temporary key without its session token, with another one, or a
    /// long-term key with one.
    #[error("The provided token is malformed or otherwise invalid.")]
    InvalidToken,
    /// `InvalidToken` too: the credentials were revoked (the user signed out, was disabled or
    /// deleted).
    #[error("The provided token has been revoked.")]
    Revoked,
    #[error("credential storage failed")]
    Storage(#[from] DbError),
}

/// The stage's credentials, in its database.
#[derive(Debug)]
pub struct CredentialStore {
    db: Arc<Database>,
}

impl CredentialStore {
    pub fn open(db: Arc<Database>) -> Result<Self, DbError> {
        db.migrate(SCHEMA)?;
        Ok(Self { db })
    }

    /// Records long-term keys (the operator's); replaces the secret of an existing id.
    pub async fn put_long_term(&self, access_key_id: &str, secret: &str, now: i64) -> Result<(), DbError> {
        let (id, secret) = (access_key_id.to_owned(), secret.to_owned());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO credentials (access_key_id, secret_access_key, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (access_key_id) DO UPDATE SET secret_access_key = excluded.secret_access_key,
                         session_token_hash = NULL, expires_at = NULL, revoked_at = NULL",
                    params![id, secret, now],
                )?;
                Ok(())
            })
            .await
    }

    /// Issues temporary credentials for `grant`, valid `duration` (clamped to 15 min–12 h).
    pub async fn issue(
        &self,
        grant: Grant,
        duration: Duration,
        now: i64,
    ) -> Result<IssuedCredentials, DbError> {
        let duration = duration.clamp(MIN_DURATION, MAX_DURATION);
        let issued = IssuedCredentials {
            access_key_id: format!("ASIA{}", random_from(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
            secret_access_key: random_base64(30),
            session_token: random_base64(96),
            expiration: now + i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        };
        let (row, token_hash) = (issued.clone(), digest(&issued.session_token));
        self.db
            .write(move |transaction| {
                let (issuer, family) = match &grant.sign_in {
                    Some(sign_in) => (Some(sign_in.issuer.as_str()), Some(sign_in.family.as_str())),
                    None => (None, None),
                };
                transaction.execute(
                    "INSERT INTO credentials (access_key_id, secret_access_key, session_token_hash, expires_at,
                         identity_id, role_arn, subject, issuer, family, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        row.access_key_id,
                        row.secret_access_key,
                        token_hash,
                        row.expiration,
                        grant.identity_id,
                        grant.role_arn,
                        grant.subject,
                        issuer,
                        family,
                        now
                    ],
                )?;
                Ok::<_, DbError>(())
            })
            .await?;
        Ok(issued)
    }

    /// The secret a request signed with `access_key_id` is verified with, if the key exists
    /// and has not expired. Whether its session token and grant still hold is [`Self::caller`]'s
    /// question, asked once the signature is good.
    pub fn secret(&self, access_key_id: &str, now: i64) -> Result<String, CredentialError> {
        let row = self.stored(access_key_id)?.ok_or(CredentialError::UnknownAccessKey)?;
        if row.expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Err(CredentialError::Expired);
        }
        Ok(row.secret)
    }

    fn stored(&self, access_key_id: &str) -> Result<Option<StoredRow>, DbError> {
        self.db.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT secret_access_key, session_token_hash, expires_at, identity_id, role_arn, subject,
                            issuer, family, revoked_at
                     FROM credentials WHERE access_key_id = ?1",
                )?
                .query_row([access_key_id], |row| {
                    Ok(StoredRow {
                        secret: row.get(0)?,
                        token_hash: row.get(1)?,
                        expires_at: row.get(2)?,
                        identity_id: row.get(3)?,
                        role_arn: row.get(4)?,
                        subject: row.get(5)?,
                        issuer: row.get(6)?,
                        family: row.get(7)?,
                        revoked_at: row.get(8)?,
                    })
                })
                .optional()
                .map_err(DbError::from)
        })
    }

    /// The caller a request signed with `access_key_id` (and `session_token`, if it sent one)
    /// comes from, checked for existence, expiry, token and revocation — the signature itself is
    /// the caller's to check, with the secret returned.
    pub fn caller(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: i64,
    ) -> Result<Caller, CredentialError> {
        let row = self.stored(access_key_id)?;
        let row = row.ok_or(CredentialError::UnknownAccessKey)?;
        let kind = match (row.token_hash, row.expires_at) {
            (None, None) => {
                if session_token.is_some() {
                    return Err(CredentialError::InvalidToken);
                }
                CallerKind::Operator
            }
            (Some(token_hash), Some(expires_at)) => {
                if expires_at <= now {
                    return Err(CredentialError::Expired);
                }
                // Both sides are SHA-256 digests: comparing them reveals nothing of the token.
                if session_token.map(digest) != Some(token_hash) {
                    return Err(CredentialError::InvalidToken);
                }
                if row.revoked_at.is_some() {
                    return Err(CredentialError::Revoked);
                }
                let sign_in = row.issuer.zip(row.family).map(|(issuer, family)| SignIn { issuer, family });
                let (Some(identity_id), Some(role_arn)) = (row.identity_id, row.role_arn) else {
                    return Err(CredentialError::Storage(corrupt(access_key_id)));
                };
                let grant = Grant { identity_id, role_arn, subject: row.subject, sign_in };
                CallerKind::Temporary { grant, expires_at }
            }
            _ => return Err(CredentialError::Storage(corrupt(access_key_id))),
        };
        Ok(Caller { access_key_id: access_key_id.to_owned(), secret_access_key: row.secret, kind })
    }

    /// Temporary credentials still valid at `now` (of one identity, or all), newest first.
    pub fn live(&self, identity_id: Option<&str>, now: i64) -> Result<Vec<LiveCredentials>, DbError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT access_key_id, identity_id, role_arn, subject, expires_at FROM credentials
                 WHERE expires_at > ?1 AND revoked_at IS NULL AND (?2 IS NULL OR identity_id = ?2)
                 ORDER BY created_at DESC, access_key_id",
            )?;
            let rows = statement.query_map(params![now, identity_id], |row| {
                Ok(LiveCredentials {
                    access_key_id: row.get(0)?,
                    identity_id: row.get(1)?,
                    role_arn: row.get(2)?,
                    subject: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Revokes every unexpired temporary credential of an identity (the CLI's revoke).
    pub async fn revoke_identity(&self, identity_id: &str, now: i64) -> Result<usize, DbError> {
        let identity_id = identity_id.to_owned();
        self.db
            .write(move |transaction| {
                Ok(transaction.execute(
                    "UPDATE credentials SET revoked_at = ?2
                     WHERE identity_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                    params![identity_id, now],
                )?)
            })
            .await
    }

    /// Forgets credentials that expired before `before`: they can only be refused now, and
    /// refusing an unknown key does as well.
    pub async fn sweep_expired(&self, before: i64) -> Result<usize, DbError> {
        self.db
            .write(move |transaction| {
                Ok(transaction.execute(
                    "DELETE FROM credentials WHERE expires_at IS NOT NULL AND expires_at < ?1",
                    [before],
                )?)
            })
            .await
    }
}

/// Temporary credentials as the CLI lists them (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCredentials {
    pub access_key_id: String,
    pub identity_id: String,
    pub role_arn: String,
    pub subject: Option<String>,
    pub expires_at: i64,
}

struct StoredRow {
    secret: String,
    token_hash: Option<String>,
    expires_at: Option<i64>,
    identity_id: Option<String>,
    role_arn: Option<String>,
    subject: Option<String>,
    issuer: Option<String>,
    family: Option<String>,
    revoked_at: Option<i64>,
}

/// A row with a token but no expiry, or the reverse, or temporary credentials without their
/// identity and role, was not written by this store.
fn corrupt(access_key_id: &str) -> DbError {
    DbError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
        2,
        rusqlite::types::Type::Null,
        format!("credentials {access_key_id} are neither long-term nor whole temporary ones").into(),
    ))
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_from(length: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..length).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

fn random_base64(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::STANDARD.encode(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::sqlite::Synchronous;

    fn store() -> (tempfile::TempDir, CredentialStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open(&dir.path().join("stratus.db"), Synchronous::Normal).expect("database");
        (dir, CredentialStore::open(Arc::new(db)).expect("store"))
    }

    fn grant(identity_id: &str) -> Grant {
        Grant {
            identity_id: identity_id.to_owned(),
            role_arn: "arn:aws:iam::000000000000:role/Cognito_Authenticated".into(),
            subject: Some("sub-1".into()),
            sign_in: Some(SignIn { issuer: "http://127.0.0.1/us-east-1_abc".into(), family: "f-1".into() }),
        }
    }

    #[tokio::test]
    async fn temporary_credentials_are_found_with_their_token_until_they_expire() {
        let (_dir, store) = store();
        let now = 1_800_000_000;
        let issued = store.issue(grant("us-east-1:a"), Duration::from_secs(3600), now).await.expect("issue");
        assert!(issued.access_key_id.starts_with("ASIA") && issued.access_key_id.len() == 20);
        assert_eq!(issued.expiration, now + 3600);
        let caller = store.caller(&issued.access_key_id, Some(&issued.session_token), now).expect("caller");
        assert_eq!(caller.secret_access_key, issued.secret_access_key);
        assert_eq!(
            caller.kind,
            CallerKind::Temporary { grant: grant("us-east-1:a"), expires_at: now + 3600 }
        );
        let refused = |token: Option<&str>, at: i64| {
            store.caller(&issued.access_key_id, token, at).expect_err("refused")
        };
        assert!(matches!(refused(None, now), CredentialError::InvalidToken));
        assert!(matches!(refused(Some("another token"), now), CredentialError::InvalidToken));
        assert!(matches!(refused(Some(&issued.session_token), now + 3600), CredentialError::Expired));
        assert!(matches!(store.caller("ASIAUNKNOWN", None, now), Err(CredentialError::UnknownAccessKey)));
    }

    #[tokio::test]
    async fn lifetimes_are_held_to_awss_bounds() {
        let (_dir, store) = store();
        let short = store.issue(grant("i"), Duration::from_secs(60), 0).await.expect("issue");
        assert_eq!(short.expiration, 15 * 60);
        let long = store.issue(grant("i"), Duration::from_secs(48 * 3600), 0).await.expect("issue");
        assert_eq!(long.expiration, 12 * 3600);
    }

    #[tokio::test]
    async fn long_term_keys_take_no_session_token() {
        let (_dir, store) = store();
        store.put_long_term("STRATUSOPERATOR", "operator-secret", 0).await.expect("put");
        let caller = store.caller("STRATUSOPERATOR", None, i64::MAX).expect("operator");
        assert_eq!(
            (caller.secret_access_key.as_str(), caller.kind),
            ("operator-secret", CallerKind::Operator)
        );
        assert!(matches!(store.caller("STRATUSOPERATOR", Some("t"), 0), Err(CredentialError::InvalidToken)));
    }

    #[tokio::test]
    async fn revoking_an_identity_ends_its_live_credentials_and_sweeping_forgets_the_expired() {
        let (_dir, store) = store();
        let now = 1_000_000;
        let alice =
            store.issue(grant("us-east-1:alice"), Duration::from_secs(3600), now).await.expect("issue");
        let bob = store.issue(grant("us-east-1:bob"), Duration::from_secs(3600), now).await.expect("issue");
        let live = store.live(None, now + 1).expect("live");
        assert_eq!(live.len(), 2);
        assert_eq!(
            store.live(Some("us-east-1:alice"), now + 1).expect("live")[0].access_key_id,
            alice.access_key_id
        );
        assert_eq!(store.revoke_identity("us-east-1:alice", now + 1).await.expect("revoke"), 1);
        assert_eq!(store.live(None, now + 2).expect("live").len(), 1, "revoked ones are not live");
        let alice_now = store.caller(&alice.access_key_id, Some(&alice.session_token), now + 2);
        assert!(matches!(alice_now, Err(CredentialError::Revoked)));
        assert!(store.caller(&bob.access_key_id, Some(&bob.session_token), now + 2).is_ok());
        assert_eq!(store.sweep_expired(now + 3601).await.expect("sweep"), 2);
        let gone = store.caller(&bob.access_key_id, Some(&bob.session_token), now + 3601);
        assert!(matches!(gone, Err(CredentialError::UnknownAccessKey)));
    }
}
