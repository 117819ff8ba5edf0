//! One user pool's operations — sign-up, authentication and challenges, token verification and
//! revocation, password reset, administration — over its storage in the stage database
//! ([`super::store`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng as _, RngCore as _};
use rusqlite::{OptionalExtension, params};

use sha2::{Digest as _, Sha256};

use super::filter::parse_filter;
use super::mailing::{self, CodeEmail, Purpose};
use super::model::{AdminCreateUser, AuthOutcome, CodeDelivery, Group, Tokens, UserRecord, UserStatus};
use super::store::{
    Keys, USER_COLUMNS, UserRow, consume_code, digest, ensure_client_id, ensure_pool_id, insert_key,
    insert_user, load_keys, store_code, user_from_row, user_where,
};
use super::{IdentityError, password, totp};
use crate::infra::clock::Clock;
use crate::infra::sqlite::Database;
use crate::ports::mail::Mailer;
use crate::services::cognito::tokens::{self, AccessClaims, IdClaims, TokenError};
use crate::services::cognito::user_pool::PoolConfig;

const SIGN_UP_CODE_VALIDITY: i64 = 24 * 3600;
const RESET_CODE_VALIDITY: i64 = 3600;
const SESSION_VALIDITY: i64 = 180;
const SESSION_ATTEMPTS: i64 = 3;
const MAX_ATTRIBUTE_VALUE: usize = 2048;
const STANDARD_ATTRIBUTES: &[&str] = &[
    "address",
    "birthdate",
    "email",
    "email_verified",
    "family_name",
    "gender",
    "given_name",
    "locale",
    "middle_name",
    "name",
    "nickname",
    "phone_number",
    "phone_number_verified",
    "picture",
    "preferred_username",
    "profile",
    "zoneinfo",
    "website",
];
const INCORRECT_CREDENTIALS: &str = "Incorrect username or password.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revoke {
    RefreshTokens,
    Everything,
}

struct RefreshRow {
    sub: String,
    client_id: String,
    family: String,
    auth_time: i64,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// Revoked refresh-token families, refreshed from the database at most once a second so that
/// revocations by other processes (the CLI) take effect promptly.
struct Revocations {
    families: HashSet<String>,
    loaded_at: Option<Instant>,
}

pub struct UserPool {
    name: String,
    id: String,
    issuer: String,
    clients: Vec<(String, String)>,
    config: PoolConfig,
    db: Arc<Database>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    keys: RwLock<Keys>,
    revocations: RwLock<Revocations>,
    /// Verified against when the user does not exist, so both cases take as long.
    dummy_hash: String,
    verified: tokens::VerifiedTokens,
}

impl std::fmt::Debug for UserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPool").field("name", &self.name).field("id", &self.id).finish_non_exhaustive()
    }
}

fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000))
}

fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            format!("{}***@{}***", local.chars().next().unwrap_or('*'), domain.chars().next().unwrap_or('*'))
        }
        None => "***".into(),
    }
}

/// What a code request for an unknown user answers: plausible and stable for the username, and
/// unrelated to any real address.
fn decoy_delivery(username: &str) -> CodeDelivery {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let hash = Sha256::digest(username.to_lowercase().as_bytes());
    let (local, domain) =
        (letters[usize::from(hash[0]) % 26] as char, letters[usize::from(hash[1]) % 26] as char);
    CodeDelivery { destination: format!("{local}***@{domain}***"), medium: "EMAIL", attribute: "email" }
}

impl UserPool {
    pub(super) fn open(
        name: &str,
        config: &PoolConfig,
        region: &str,
        public_url: &str,
        db: Arc<Database>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IdentityError> {
        let now = clock.now_millis() / 1000;
        let (id, clients, keys) = db.write_blocking(|transaction| {
            let id = ensure_pool_id(transaction, name, config, region)?;
            let mut clients = Vec::new();
            for (client_name, client) in &config.clients {
                clients.push((
                    client_name.clone(),
                    ensure_client_id(transaction, &id, client_name, client.id.as_deref())?,
                ));
            }
            let keys = load_keys(transaction, &id, now, config)?;
            Ok::<_, IdentityError>((id, clients, keys))
        })?;
        let issuer = format!("{}/{}", public_url.trim_end_matches('/'), id);
        tracing::info!(pool = name, pool_id = %id, issuer = %issuer, "user pool open");
        Ok(Self {
            name: name.to_owned(),
            id,
            issuer,
            clients,
            config: config.clone(),
            db,
            mailer,
            clock,
            keys: RwLock::new(keys),
            revocations: RwLock::new(Revocations { families: HashSet::new(), loaded_at: None }),
            dummy_hash: password::hash(&random_token(16))?,
            verified: tokens::VerifiedTokens::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// App clients: (name, client id).
    pub fn clients(&self) -> &[(String, String)] {
        &self.clients
    }

    pub fn has_client(&self, client_id: &str) -> bool {
        self.clients.iter().any(|(_, id)| id == client_id)
    }

    fn check_client(&self, client_id: &str) -> Result<(), IdentityError> {
        if self.has_client(client_id) {
            Ok(())
        } else {
            Err(IdentityError::ResourceNotFound(format!("User pool client {client_id} does not exist.")))
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    /// The published keys (current and recently retired).
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens::jwks(&keys.verifying)
    }

    /// The OpenID Connect discovery document.
    pub fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "authorization_endpoint": format!("{}/oauth2/authorize", self.issuer),
            "token_endpoint": format!("{}/oauth2/token", self.issuer),
            "userinfo_endpoint": format!("{}/oauth2/userInfo", self.issuer),
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["sub", "email", "email_verified", "cognito:username", "cognito:groups"],
        })
    }

    /// Starts signing with a new key; the old one stays published until its tokens expire.
    pub async fn rotate_key(&self) -> Result<String, IdentityError> {
        let pem = tokio::task::spawn_blocking(tokens::generate_private_key)
            .await
            .map_err(IdentityError::Worker)??;
        let (id, now, config) = (self.id.clone(), self.now(), self.config.clone());
        let keys = self
            .db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_keys SET retired_at = ?2 WHERE pool_id = ?1 AND retired_at IS NULL",
                    params![id, now],
                )?;
                insert_key(transaction, &id, &pem, now)?;
                load_keys(transaction, &id, now, &config)
            })
            .await?;
        let kid = keys.signing.kid.clone();
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        tracing::info!(pool = %self.name, kid = %kid, "signing key rotated");
        Ok(kid)
    }

    // ---- sign-up and confirmation -------------------------------------------------------------

    pub async fn sign_up(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(String, CodeDelivery), IdentityError> {
        self.check_client(client_id)?;
        validate_username(username)?;
        let attributes = self.validate_attributes(attributes, false)?;
        let email = attributes.get("email").cloned().ok_or_else(|| {
            IdentityError::InvalidParameter(
                "Attributes did not conform to the schema: email: The attribute is required".into(),
            )
        })?;
        password::check_policy(&self.config.password_policy, password)
            .map_err(IdentityError::InvalidPassword)?;
        let hash = hash_password(password).await?;
        let sub = uuid::Uuid::new_v4().to_string();
        let (pool_id, now, username_owned) = (self.id.clone(), self.now(), username.to_owned());
        let code = new_code();
        let (sub_written, code_hash) = (sub.clone(), digest(&code));
        self.db
            .write(move |transaction| {
                insert_user(
                    transaction,
                    &pool_id,
                    &sub_written,
                    &username_owned,
                    &attributes,
                    Some(&hash),
                    UserStatus::Unconfirmed,
                    now,
                )?;
                store_code(
                    transaction,
                    &pool_id,
                    &sub_written,
                    "signup",
                    &code_hash,
                    now + SIGN_UP_CODE_VALIDITY,
                )?;
                Ok::<_, IdentityError>(())
            })
            .await?;
        let delivery = self.send_code(&sub, username, &email, &code, Purpose::VerifyEmail).await?;
        tracing::info!(pool = %self.name, sub = %sub, "user signed up");
        Ok((sub, delivery))
    }

    /// Replaces the user's code for `purpose` with a fresh one and mails it.
    async fn issue_code(&self, user: &UserRow, purpose: Purpose) -> Result<CodeDelivery, IdentityError> {
        let (slot, validity) = match purpose {
            Purpose::VerifyEmail => ("signup", SIGN_UP_CODE_VALIDITY),
            Purpose::ResetPassword => ("reset", RESET_CODE_VALIDITY),
        };
        let email = user.attributes.get("email").cloned().unwrap_or_default();
        let code = new_code();
        let (pool_id, sub, code_hash, now) = (self.id.clone(), user.sub.clone(), digest(&code), self.now());
        self.db
            .write(move |transaction| {
                store_code(transaction, &pool_id, &sub, slot, &code_hash, now + validity)
            })
            .await?;
        self.send_code(&user.sub, &user.username, &email, &code, purpose).await
    }

    async fn send_code(
        &self,
        sub: &str,
        username: &str,
        email: &str,
        code: &str,
        purpose: Purpose,
    ) -> Result<CodeDelivery, IdentityError> {
        let kind = match purpose {
            Purpose::VerifyEmail => "verify",
            Purpose::ResetPassword => "reset",
        };
        let message = mailing::render(&CodeEmail {
            idempotency_key: format!("identity/{}/{kind}/{sub}/{}", self.id, &digest(code)[..16]),
            to: email,
            username,
            code,
            pool_name: &self.config.email_subject_prefix,
            purpose,
        })?;
        self.mailer.send(&message).await?;
        Ok(CodeDelivery { destination: mask_email(email), medium: "EMAIL", attribute: "email" })
    }

    pub async fn confirm_sign_up(
        &self,
        client_id: &str,
        username: &str,
        code: &str,
    ) -> Result<(), IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_by_name(username)?.ok_or(IdentityError::CodeMismatch)?;
        if user.status == UserStatus::Confirmed {
            return Err(IdentityError::NotAuthorized(
                "User cannot be confirmed. Current status is CONFIRMED".into(),
            ));
        }
        let (pool_id, sub, code, now) = (self.id.clone(), user.sub.clone(), code.to_owned(), self.now());
        let mut attributes = user.attributes.clone();
        attributes.insert("email_verified".into(), "true".into());
        self.db
            .write(move |transaction| {
                let verdict = consume_code(transaction, &pool_id, &sub, "signup", &code, now)?;
                if verdict.is_ok() {
                    transaction.execute(
                        "UPDATE identity_users SET status = 'CONFIRMED', attributes = ?3, updated_at = ?4
                         WHERE pool_id = ?1 AND sub = ?2",
                        params![pool_id, sub, serde_json::to_string(&attributes).unwrap_or_default(), now],
                    )?;
                }
                Ok::<_, IdentityError>(verdict)
            })
            .await??;
        tracing::info!(pool = %self.name, sub = %user.sub, "user confirmed");
        Ok(())
    }

    pub async fn resend_confirmation_code(
        &self,
        client_id: &str,
        username: &str,
    ) -> Result<CodeDelivery, IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_by_name(username)?.filter(|user| user.status == UserStatus::Unconfirmed);
        let Some(user) = user else {
            // Unknown and already-confirmed users get the same answer as a real resend, so the
            // call reveals nothing about who exists (Cognito's PreventUserExistenceErrors).
            return Ok(decoy_delivery(username));
        };
        self.issue_code(&user, Purpose::VerifyEmail).await
    }

    // ---- authentication ------------------------------------------------------------------------

    /// USER_PASSWORD_AUTH. Unknown users and wrong passwords are indistinguishable, in answer
    /// and in time (a dummy hash is verified for unknown users).
    pub async fn password_auth(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<AuthOutcome, IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_by_name(username)?;
        let stored = user
            .as_ref()
            .and_then(|user| user.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password_ok = verify_password(password, &stored).await?
            && user.as_ref().is_some_and(|u| u.password_hash.is_some());
        let Some(user) = user.filter(|_| password_ok) else {
            return Err(IdentityError::NotAuthorized(INCORRECT_CREDENTIALS.into()));
        };
        if !user.enabled {
            return Err(IdentityError::NotAuthorized("User is disabled.".into()));
        }
        match user.status {
            UserStatus::Unconfirmed => return Err(IdentityError::UserNotConfirmed),
            UserStatus::ResetRequired => return Err(IdentityError::PasswordResetRequired),
            UserStatus::ForceChangePassword => {
                return self.challenge(&user, client_id, "NEW_PASSWORD_REQUIRED").await;
            }
            UserStatus::Confirmed => {}
        }
        if user.totp_enabled {
            return self.challenge(&user, client_id, "SOFTWARE_TOKEN_MFA").await;
        }
        let now = self.now();
        Ok(AuthOutcome::Authenticated(self.start_session_tokens(&user, client_id, now).await?))
    }

    async fn challenge(
        &self,
        user: &UserRow,
        client_id: &str,
        name: &'static str,
    ) -> Result<AuthOutcome, IdentityError> {
        let session = random_token(48);
        let (pool_id, sub, client, hash, expires) = (
            self.id.clone(),
            user.sub.clone(),
            client_id.to_owned(),
            digest(&session),
            self.now() + SESSION_VALIDITY,
        );
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO identity_sessions (session_hash, pool_id, sub, client_id, challenge, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![hash, pool_id, sub, client, name, expires],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await?;
        Ok(AuthOutcome::Challenge { name, session, username: user.username.clone() })
    }

    /// Takes one attempt of a challenge session; returns the user it belongs to.
    async fn use_session(
        &self,
        client_id: &str,
        session: &str,
        challenge: &str,
        username: &str,
    ) -> Result<UserRow, IdentityError> {
        let invalid =
            || IdentityError::NotAuthorized("Invalid session for the user, session is expired.".into());
        let (hash, pool_id, now) = (digest(session), self.id.clone(), self.now());
        let row: Option<(String, String, String, i64, i64)> = self.db.read(|connection| {
            Ok::<_, IdentityError>(
                connection
                    .query_row(
                        "SELECT sub, client_id, challenge, expires_at, attempts FROM identity_sessions
                         WHERE session_hash = ?1 AND pool_id = ?2",
                        params![hash, pool_id],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                    )
                    .optional()?,
            )
        })?;
        let Some((sub, session_client, session_challenge, expires_at, attempts)) = row else {
            return Err(invalid());
        };
        if session_client != client_id
            || session_challenge != challenge
            || expires_at < now
            || attempts >= SESSION_ATTEMPTS
        {
            return Err(invalid());
        }
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_sessions SET attempts = attempts + 1 WHERE session_hash = ?1",
                    [hash],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await?;
        let user = self.user_by_sub(&sub)?.ok_or_else(invalid)?;
        if user.username.to_lowercase() != username.to_lowercase() {
            return Err(invalid());
        }
        Ok(user)
    }

    async fn end_session(&self, session: &str) -> Result<(), IdentityError> {
        let hash = digest(session);
        self.db
            .write(move |transaction| {
                transaction.execute("DELETE FROM identity_sessions WHERE session_hash = ?1", [hash])?;
                Ok::<_, IdentityError>(())
            })
            .await
    }

    /// RespondToAuthChallenge with SOFTWARE_TOKEN_MFA.
    pub async fn respond_mfa(
        &self,
        client_id: &str,
        session: &str,
        username: &str,
        code: &str,
    ) -> Result<Tokens, IdentityError> {
        self.check_client(client_id)?;
        let user = self.use_session(client_id, session, "SOFTWARE_TOKEN_MFA", username).await?;
        let secret = user.totp_secret.clone().ok_or(IdentityError::CodeMismatch)?;
        self.accept_totp(&user, &secret, code).await?;
        self.end_session(session).await?;
        self.start_session_tokens(&user, client_id, self.now()).await
    }

    /// RespondToAuthChallenge with NEW_PASSWORD_REQUIRED.
    pub async fn respond_new_password(
        &self,
        client_id: &str,
        session: &str,
        username: &str,
        new_password: &str,
    ) -> Result<AuthOutcome, IdentityError> {
        self.check_client(client_id)?;
        let user = self.use_session(client_id, session, "NEW_PASSWORD_REQUIRED", username).await?;
        password::check_policy(&self.config.password_policy, new_password)
            .map_err(IdentityError::InvalidPassword)?;
        let hash = hash_password(new_password).await?;
        self.set_password_row(&user.sub, hash, UserStatus::Confirmed).await?;
        self.end_session(session).await?;
        let user = self.user_by_sub(&user.sub)?.ok_or(IdentityError::UserNotFound)?;
        if user.totp_enabled {
            return self.challenge(&user, client_id, "SOFTWARE_TOKEN_MFA").await;
        }
        Ok(AuthOutcome::Authenticated(self.start_session_tokens(&user, client_id, self.now()).await?))
    }

    /// Checks a TOTP code and records its time step so it cannot be used again.
    async fn accept_totp(&self, user: &UserRow, secret: &str, code: &str) -> Result<(), IdentityError> {
        let now = u64::try_from(self.now()).unwrap_or_default();
        let step = totp::matching_step(secret, code, now).ok_or(IdentityError::CodeMismatch)?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if user.totp_last_step.is_some_and(|last| step <= last) {
            return Err(IdentityError::CodeMismatch);
        }
        let (pool_id, sub) = (self.id.clone(), user.sub.clone());
        let updated = self
            .db
            .write(move |transaction| {
                // Conditional, so two concurrent uses of one code cannot both pass.
                Ok::<_, IdentityError>(transaction.execute(
                    "UPDATE identity_users SET totp_last_step = ?3
                     WHERE pool_id = ?1 AND sub = ?2 AND (totp_last_step IS NULL OR totp_last_step < ?3)",
                    params![pool_id, sub, step],
                )?)
            })
            .await?;
        if updated == 0 { Err(IdentityError::CodeMismatch) } else { Ok(()) }
    }

    /// REFRESH_TOKEN_AUTH: the refresh token is rotated; presenting a rotated one again revokes
    /// its whole family (it may have been stolen).
    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> Result<Tokens, IdentityError> {
        self.check_client(client_id)?;
        let invalid = |why: &str| IdentityError::NotAuthorized(why.to_owned());
        let (hash, pool_id, now) = (digest(refresh_token), self.id.clone(), self.now());
        let row: Option<RefreshRow> = self.db.read(|connection| {
            Ok::<_, IdentityError>(
                connection
                    .query_row(
                        "SELECT sub, client_id, family, auth_time, expires_at, used_at, revoked_at
                         FROM identity_refresh_tokens WHERE token_hash = ?1 AND pool_id = ?2",
                        params![hash, pool_id],
                        |row| {
                            Ok(RefreshRow {
                                sub: row.get(0)?,
                                client_id: row.get(1)?,
                                family: row.get(2)?,
                                auth_time: row.get(3)?,
                                expires_at: row.get(4)?,
                                used_at: row.get(5)?,
                                revoked_at: row.get(6)?,
                            })
                        },
                    )
                    .optional()?,
            )
        })?;
        let Some(RefreshRow {
            sub,
            client_id: token_client,
            family,
            auth_time,
            expires_at,
            used_at,
            revoked_at,
        }) = row
        else {
            return Err(invalid("Invalid Refresh Token"));
        };
        if revoked_at.is_some() {
            return Err(invalid("Refresh Token has been revoked"));
        }
        if used_at.is_some() {
            tracing::warn!(pool = %self.name, sub = %sub, "a rotated refresh token was reused; revoking its family");
            self.revoke_families("family = ?1", vec![family]).await?;
            return Err(invalid("Refresh Token has been revoked"));
        }
        if expires_at <= now {
            return Err(invalid("Refresh Token has expired"));
        }
        if token_client != client_id {
            return Err(invalid("Invalid Refresh Token"));
        }
        let user = self.user_by_sub(&sub)?.ok_or_else(|| invalid("Invalid Refresh Token"))?;
        if !user.enabled {
            return Err(invalid("User is disabled."));
        }
        let next = random_token(48);
        let validity = i64::try_from(self.config.refresh_token_validity.as_secs()).unwrap_or(i64::MAX);
        let (next_hash, family_written, client, sub_written) =
            (digest(&next), family.clone(), client_id.to_owned(), sub.clone());
        let pool_id = self.id.clone();
        let rotated = self
            .db
            .write(move |transaction| {
                let rotated = transaction.execute(
                    "UPDATE identity_refresh_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL",
                    params![hash, now],
                )?;
                if rotated == 1 {
                    transaction.execute(
                        "INSERT INTO identity_refresh_tokens
                         (token_hash, pool_id, sub, client_id, family, auth_time, created_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![next_hash, pool_id, sub_written, client, family_written, auth_time, now, now + validity],
                    )?;
                }
                Ok::<_, IdentityError>(rotated == 1)
            })
            .await?;
        if !rotated {
            return Err(invalid("Refresh Token has been revoked"));
        }
        let mut tokens = self.issue(&user, client_id, &family, auth_time, now)?;
        tokens.refresh_token = Some(next);
        Ok(tokens)
    }

    /// Starts a refresh-token family (one sign-in) and issues its first tokens.
    async fn start_session_tokens(
        &self,
        user: &UserRow,
        client_id: &str,
        now: i64,
    ) -> Result<Tokens, IdentityError> {
        let family = uuid::Uuid::new_v4().to_string();
        let refresh = random_token(48);
        let validity = i64::try_from(self.config.refresh_token_validity.as_secs()).unwrap_or(i64::MAX);
        let (hash, pool_id, sub, client, family_written) =
            (digest(&refresh), self.id.clone(), user.sub.clone(), client_id.to_owned(), family.clone());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "INSERT INTO identity_refresh_tokens
                     (token_hash, pool_id, sub, client_id, family, auth_time, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
                    params![hash, pool_id, sub, client, family_written, now, now + validity],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await?;
        let mut tokens = self.issue(user, client_id, &family, now, now)?;
        tokens.refresh_token = Some(refresh);
        tracing::info!(pool = %self.name, sub = %user.sub, "user signed in");
        Ok(tokens)
    }

    fn issue(
        &self,
        user: &UserRow,
        client_id: &str,
        family: &str,
        auth_time: i64,
        now: i64,
    ) -> Result<Tokens, IdentityError> {
        let groups = self.groups_of(&user.sub)?;
        let access_seconds = i64::try_from(self.config.access_token_validity.as_secs()).unwrap_or(3600);
        let id_seconds = i64::try_from(self.config.id_token_validity.as_secs()).unwrap_or(3600);
        let event_id = uuid::Uuid::new_v4().to_string();
        let access = AccessClaims {
            sub: user.sub.clone(),
            groups: groups.clone(),
            iss: self.issuer.clone(),
            client_id: client_id.to_owned(),
            origin_jti: family.to_owned(),
            event_id: event_id.clone(),
            token_use: "access".into(),
            scope: "aws.cognito.signin.user.admin".into(),
            auth_time,
            exp: now + access_seconds,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            username: user.username.clone(),
        };
        let mut attributes: BTreeMap<String, serde_json::Value> = user
            .attributes
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "sub" | "email" | "email_verified"))
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect();
        attributes.retain(|name, _| !name.starts_with("cognito:"));
        let id = IdClaims {
            sub: user.sub.clone(),
            groups,
            iss: self.issuer.clone(),
            username: user.username.clone(),
            origin_jti: family.to_owned(),
            aud: client_id.to_owned(),
            event_id,
            token_use: "id".into(),
            auth_time,
            exp: now + id_seconds,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            email: user.attributes.get("email").cloned(),
            email_verified: user.attributes.get("email_verified").map(|value| value == "true"),
            attributes,
        };
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(Tokens {
            access_token: tokens::sign(&keys.signing, &access)?,
            id_token: tokens::sign(&keys.signing, &id)?,
            refresh_token: None,
            expires_in: u64::try_from(access_seconds).unwrap_or(3600),
        })
    }

    // ---- access-token operations --------------------------------------------------------------

    /// Verifies one of this pool's access tokens: signature, issuer, lifetime, use, client and
    /// revocation.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims = match self.verified.get(token, self.now()) {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature_and_claims(token)?;
                self.verified.insert(token, &claims);
                claims
            }
        };
        if self.is_revoked(&claims.origin_jti) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    fn verify_signature_and_claims(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let kid = tokens::check_header(token)?;
        let key = {
            let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.verifying.iter().find(|key| key.kid == kid).map(|key| key.decoding.clone())
        }
        .ok_or(TokenError::UnknownKey)?;
        let claims: AccessClaims = tokens::verify(token, &key, &self.issuer, self.now())?;
        if claims.token_use != "access" {
            return Err(TokenError::WrongUse);
        }
        if !self.has_client(&claims.client_id) {
            return Err(TokenError::WrongClient);
        }
        Ok(claims)
    }

    /// Whether the access tokens of a refresh-token family were revoked (sign-out, reuse, …).
    pub(crate) fn is_revoked(&self, family: &str) -> bool {
        {
            let revocations = self.revocations.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if revocations.loaded_at.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return revocations.families.contains(family);
            }
        }
        // Families revoked recently enough that an access token issued before the revocation
        // may still be unexpired.
        let lifetime = i64::try_from(self.config.access_token_validity.as_secs()).unwrap_or(i64::MAX)
            + i64::try_from(tokens::LEEWAY_SECONDS).unwrap_or_default();
        let since = self.now().saturating_sub(lifetime);
        let loaded: Result<HashSet<String>, IdentityError> = self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT DISTINCT family FROM identity_refresh_tokens
                 WHERE pool_id = ?1 AND access_revoked_at IS NOT NULL AND access_revoked_at > ?2",
            )?;
            let rows = statement.query_map(params![self.id, since], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<HashSet<_>, _>>()?)
        });
        match loaded {
            Ok(families) => {
                let revoked = families.contains(family);
                let mut revocations =
                    self.revocations.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                *revocations = Revocations { families, loaded_at: Some(Instant::now()) };
                revoked
            }
            Err(error) => {
                // Fail closed: a token cannot be shown to be unrevoked without the database.
                tracing::error!(error = %crate::infra::telemetry::error_chain(&error), "cannot load revocations");
                true
            }
        }
    }

    fn forget_revocation_cache(&self) {
        self.revocations.write().unwrap_or_else(std::sync::PoisonError::into_inner).loaded_at = None;
    }

    /// The user an access token belongs to, for operations that take one.
    fn user_of_token(&self, access_token: &str) -> Result<UserRow, IdentityError> {
        let claims = self.verify_access_token(access_token).map_err(|error| {
            IdentityError::NotAuthorized(match error {
                TokenError::Expired => "Access Token has expired".into(),
                TokenError::Revoked => "Access Token has been revoked".into(),
                _ => "Invalid Access Token".into(),
            })
        })?;
        let user = self
            .user_by_sub(&claims.sub)?
            .ok_or(IdentityError::NotAuthorized("Invalid Access Token".into()))?;
        if !user.enabled {
            return Err(IdentityError::NotAuthorized("User is disabled.".into()));
        }
        Ok(user)
    }

    pub async fn get_user(&self, access_token: &str) -> Result<UserRecord, IdentityError> {
        let user = self.user_of_token(access_token)?;
        self.record(user)
    }

    pub async fn update_user_attributes(
        &self,
        access_token: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        let changes = self.validate_attributes(attributes, false)?;
        let mut merged = user.attributes.clone();
        if changes.get("email").is_some_and(|email| Some(email) != user.attributes.get("email")) {
            // A new address is unverified until proven.
            merged.insert("email_verified".into(), "false".into());
        }
        merged.extend(changes);
        self.write_attributes(&user.sub, merged).await
    }

    pub async fn change_password(
        &self,
        access_token: &str,
        previous: &str,
        proposed: &str,
    ) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        let stored = user.password_hash.clone().unwrap_or_else(|| self.dummy_hash.clone());
        if !verify_password(previous, &stored).await? {
            return Err(IdentityError::NotAuthorized(INCORRECT_CREDENTIALS.into()));
        }
        password::check_policy(&self.config.password_policy, proposed)
            .map_err(IdentityError::InvalidPassword)?;
        let hash = hash_password(proposed).await?;
        self.set_password_row(&user.sub, hash, UserStatus::Confirmed).await?;
        // As in Cognito, access tokens stay valid until they expire; GlobalSignOut ends them.
        self.revoke_refresh_tokens("pool_id = ?1 AND sub = ?2", vec![self.id.clone(), user.sub.clone()])
            .await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "password changed; refresh tokens revoked");
        Ok(())
    }

    pub async fn global_sign_out(&self, access_token: &str) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        self.revoke_families("pool_id = ?1 AND sub = ?2", vec![self.id.clone(), user.sub.clone()]).await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "global sign-out");
        Ok(())
    }

    /// RevokeToken: revokes the refresh token's family and the access tokens issued from it.
    pub async fn revoke_token(&self, client_id: &str, refresh_token: &str) -> Result<(), IdentityError> {
        self.check_client(client_id)?;
        let (hash, pool_id) = (digest(refresh_token), self.id.clone());
        let family: Option<(String, String)> = self.db.read(|connection| {
            Ok::<_, IdentityError>(
                connection
                    .query_row(
                        "SELECT family, client_id FROM identity_refresh_tokens WHERE token_hash = ?1 AND pool_id = ?2",
                        params![hash, pool_id],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?,
            )
        })?;
        match family {
            Some((family, owner)) if owner == client_id => {
                self.revoke_families("family = ?1", vec![family]).await
            }
            Some(_) => Err(IdentityError::NotAuthorized("The token was not issued to this client".into())),
            // Revoking an unknown token succeeds, as in Cognito.
            None => Ok(()),
        }
    }

    pub async fn delete_user(&self, access_token: &str) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        self.remove_user(&user.sub).await
    }

    pub async fn associate_software_token(&self, access_token: &str) -> Result<String, IdentityError> {
        let user = self.user_of_token(access_token)?;
        let secret = totp::new_secret();
        let (pool_id, sub, pending, now) = (self.id.clone(), user.sub, secret.clone(), self.now());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_users SET totp_pending = ?3, updated_at = ?4 WHERE pool_id = ?1 AND sub = ?2",
                    params![pool_id, sub, pending, now],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await?;
        Ok(secret)
    }

    pub async fn verify_software_token(&self, access_token: &str, code: &str) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        let pending = user.totp_pending.clone().ok_or_else(|| {
            IdentityError::EnableSoftwareTokenMfa("Call AssociateSoftwareToken first".into())
        })?;
        let now = u64::try_from(self.now()).unwrap_or_default();
        let step = totp::matching_step(&pending, code, now)
            .ok_or_else(|| IdentityError::EnableSoftwareTokenMfa("Code mismatch".into()))?;
        let (pool_id, sub, now) = (self.id.clone(), user.sub, self.now());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?3,
                     updated_at = ?4 WHERE pool_id = ?1 AND sub = ?2",
                    params![pool_id, sub, i64::try_from(step).unwrap_or(i64::MAX), now],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await
    }

    pub async fn set_mfa_preference(
        &self,
        access_token: &str,
        software_token_enabled: bool,
    ) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        if software_token_enabled && user.totp_secret.is_none() {
            return Err(IdentityError::InvalidParameter("User has not verified software token mfa".into()));
        }
        let (pool_id, sub, now) = (self.id.clone(), user.sub, self.now());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_users SET totp_enabled = ?3, updated_at = ?4 WHERE pool_id = ?1 AND sub = ?2",
                    params![pool_id, sub, software_token_enabled, now],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await
    }

    // ---- password reset -----------------------------------------------------------------------

    /// Always "succeeds" so that it does not reveal whether the user exists.
    pub async fn forgot_password(
        &self,
        client_id: &str,
        username: &str,
    ) -> Result<CodeDelivery, IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_by_name(username)?;
        let Some(user) = user.filter(|user| user.enabled) else {
            // The same answer as for a real user, so the call reveals nothing about who exists.
            return Ok(decoy_delivery(username));
        };
        self.issue_code(&user, Purpose::ResetPassword).await
    }

    pub async fn confirm_forgot_password(
        &self,
        client_id: &str,
        username: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), IdentityError> {
        self.check_client(client_id)?;
        password::check_policy(&self.config.password_policy, new_password)
            .map_err(IdentityError::InvalidPassword)?;
        let user = self.user_by_name(username)?.ok_or(IdentityError::CodeMismatch)?;
        let hash = hash_password(new_password).await?;
        let (pool_id, sub, code, now) = (self.id.clone(), user.sub.clone(), code.to_owned(), self.now());
        self.db
            .write(move |transaction| {
                let verdict = consume_code(transaction, &pool_id, &sub, "reset", &code, now)?;
                if verdict.is_ok() {
                    transaction.execute(
                        "UPDATE identity_users SET password_hash = ?3, status = 'CONFIRMED', updated_at = ?4
                         WHERE pool_id = ?1 AND sub = ?2",
                        params![pool_id, sub, hash, now],
                    )?;
                }
                Ok::<_, IdentityError>(verdict)
            })
            .await??;
        self.revoke_families("pool_id = ?1 AND sub = ?2", vec![self.id.clone(), user.sub.clone()]).await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "password reset; sessions revoked");
        Ok(())
    }

    // ---- administration -----------------------------------------------------------------------

    pub async fn admin_create_user(&self, request: AdminCreateUser) -> Result<UserRecord, IdentityError> {
        validate_username(&request.username)?;
        let attributes = self.validate_attributes(request.attributes, true)?;
        let hash = match &request.temporary_password {
            Some(password) => {
                password::check_policy(&self.config.password_policy, password)
                    .map_err(IdentityError::InvalidPassword)?;
                Some(hash_password(password).await?)
            }
            None => None,
        };
        let sub = uuid::Uuid::new_v4().to_string();
        let (pool_id, now, username, sub_written) =
            (self.id.clone(), self.now(), request.username.clone(), sub.clone());
        self.db
            .write(move |transaction| {
                insert_user(
                    transaction,
                    &pool_id,
                    &sub_written,
                    &username,
                    &attributes,
                    hash.as_deref(),
                    UserStatus::ForceChangePassword,
                    now,
                )
            })
            .await?;
        tracing::info!(pool = %self.name, sub = %sub, "user created by an operator");
        self.admin_get_user(&request.username)
    }

    /// Sets a password; `permanent` confirms the user, otherwise they must change it at sign-in.
    pub async fn admin_set_user_password(
        &self,
        username: &str,
        password: &str,
        permanent: bool,
    ) -> Result<(), IdentityError> {
        let user = self.user_by_name(username)?.ok_or(IdentityError::UserNotFound)?;
        password::check_policy(&self.config.password_policy, password)
            .map_err(IdentityError::InvalidPassword)?;
        let hash = hash_password(password).await?;
        let status = if permanent { UserStatus::Confirmed } else { UserStatus::ForceChangePassword };
        self.set_password_row(&user.sub, hash, status).await?;
        self.revoke_families("pool_id = ?1 AND sub = ?2", vec![self.id.clone(), user.sub]).await
    }

    pub fn admin_get_user(&self, username: &str) -> Result<UserRecord, IdentityError> {
        let user = self.user_by_name(username)?.ok_or(IdentityError::UserNotFound)?;
        self.record(user)
    }

    pub async fn admin_delete_user(&self, username: &str) -> Result<(), IdentityError> {
        let user = self.user_by_name(username)?.ok_or(IdentityError::UserNotFound)?;
        self.remove_user(&user.sub).await
    }

    pub async fn admin_set_enabled(&self, username: &str, enabled: bool) -> Result<(), IdentityError> {
        let user = self.user_by_name(username)?.ok_or(IdentityError::UserNotFound)?;
        let (pool_id, sub, now) = (self.id.clone(), user.sub.clone(), self.now());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_users SET enabled = ?3, updated_at = ?4 WHERE pool_id = ?1 AND sub = ?2",
                    params![pool_id, sub, enabled, now],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await?;
        if !enabled {
            self.revoke_families("pool_id = ?1 AND sub = ?2", vec![self.id.clone(), user.sub]).await?;
        }
        Ok(())
    }

    pub async fn create_group(
        &self,
        name: &str,
        description: Option<String>,
        precedence: Option<i64>,
    ) -> Result<Group, IdentityError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_whitespace) {
            return Err(IdentityError::InvalidParameter(
                "GroupName must be 1-128 characters without whitespace".into(),
            ));
        }
        let (pool_id, group, now) = (self.id.clone(), name.to_owned(), self.now());
        let created = self
            .db
            .write(move |transaction| {
                Ok::<_, IdentityError>(transaction.execute(
                    "INSERT INTO identity_groups (pool_id, name, description, precedence, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT DO NOTHING",
                    params![pool_id, group, description, precedence, now],
                )?)
            })
            .await?;
        if created == 0 {
            return Err(IdentityError::GroupExists(name.to_owned()));
        }
        let created = self.groups()?.into_iter().find(|group| group.name == name);
        created.ok_or_else(|| IdentityError::ResourceNotFound("Group not found.".into()))
    }

    pub fn groups(&self) -> Result<Vec<Group>, IdentityError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT name, description, precedence, created_at, updated_at FROM identity_groups
                 WHERE pool_id = ?1 ORDER BY name",
            )?;
            let rows = statement.query_map([&self.id], |row| {
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

    pub async fn set_membership(
        &self,
        username: &str,
        group: &str,
        member: bool,
    ) -> Result<(), IdentityError> {
        let user = self.user_by_name(username)?.ok_or(IdentityError::UserNotFound)?;
        if !self.groups()?.iter().any(|existing| existing.name == group) {
            return Err(IdentityError::ResourceNotFound("Group not found.".into()));
        }
        let (pool_id, sub, group) = (self.id.clone(), user.sub, group.to_owned());
        self.db
            .write(move |transaction| {
                if member {
                    transaction.execute(
                        "INSERT INTO identity_memberships (pool_id, group_name, sub) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        params![pool_id, group, sub],
                    )?;
                } else {
                    transaction.execute(
                        "DELETE FROM identity_memberships WHERE pool_id = ?1 AND group_name = ?2 AND sub = ?3",
                        params![pool_id, group, sub],
                    )?;
                }
                Ok::<_, IdentityError>(())
            })
            .await
    }

    /// Users in username order, filtered by Cognito's filter syntax (`email = "a@b.c"`,
    /// `username ^= "ad"`, also on `sub`, `status`, `name`, …); a page of up to `limit` (≤ 60)
    /// after `after` (a username).
    pub fn list_users(
        &self,
        filter: Option<&str>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<UserRecord>, Option<String>), IdentityError> {
        let filter = filter.filter(|text| !text.trim().is_empty()).map(parse_filter).transpose()?;
        let limit = limit.clamp(1, 60);
        let users: Vec<UserRow> = self.db.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM identity_users WHERE pool_id = ?1 AND username_key > ?2 ORDER BY username_key"
            ))?;
            let rows = statement.query_map(params![self.id, after.unwrap_or_default().to_lowercase()], user_from_row)?;
            Ok::<_, IdentityError>(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let mut page = Vec::new();
        let mut next = None;
        for user in users {
            let record = self.record(user)?;
            if filter.as_ref().is_none_or(|filter| filter.matches(&record)) {
                if page.len() == limit {
                    next = page.last().map(|last: &UserRecord| last.username.clone());
                    break;
                }
                page.push(record);
            }
        }
        Ok((page, next))
    }

    // ---- storage helpers ----------------------------------------------------------------------

    fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, IdentityError> {
        self.db.read(|connection| {
            user_where(connection, &self.id, "username_key = ?2", &username.to_lowercase())
        })
    }

    fn user_by_sub(&self, sub: &str) -> Result<Option<UserRow>, IdentityError> {
        self.db.read(|connection| user_where(connection, &self.id, "sub = ?2", sub))
    }

    fn groups_of(&self, sub: &str) -> Result<Vec<String>, IdentityError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT m.group_name FROM identity_memberships m JOIN identity_groups g
                   ON g.pool_id = m.pool_id AND g.name = m.group_name
                 WHERE m.pool_id = ?1 AND m.sub = ?2 ORDER BY g.precedence IS NULL, g.precedence, m.group_name",
            )?;
            let rows = statement.query_map(params![self.id, sub], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn record(&self, user: UserRow) -> Result<UserRecord, IdentityError> {
        let groups = self.groups_of(&user.sub)?;
        let mut attributes = user.attributes;
        attributes.insert("sub".into(), user.sub.clone());
        Ok(UserRecord {
            sub: user.sub,
            username: user.username,
            attributes,
            status: user.status,
            enabled: user.enabled,
            mfa_enabled: user.totp_enabled,
            groups,
            created_at: user.created_at,
            updated_at: user.updated_at,
        })
    }

    async fn write_attributes(
        &self,
        sub: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), IdentityError> {
        let (pool_id, sub, now) = (self.id.clone(), sub.to_owned(), self.now());
        let email = attributes.get("email").map(|email| email.to_lowercase());
        let json = serde_json::to_string(&attributes).unwrap_or_default();
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_users SET attributes = ?3, email = ?4, updated_at = ?5 WHERE pool_id = ?1 AND sub = ?2",
                    params![pool_id, sub, json, email, now],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await
    }

    async fn set_password_row(
        &self,
        sub: &str,
        hash: String,
        status: UserStatus,
    ) -> Result<(), IdentityError> {
        let (pool_id, sub, now) = (self.id.clone(), sub.to_owned(), self.now());
        self.db
            .write(move |transaction| {
                transaction.execute(
                    "UPDATE identity_users SET password_hash = ?3, status = ?4, updated_at = ?5 WHERE pool_id = ?1 AND sub = ?2",
                    params![pool_id, sub, hash, status.as_str(), now],
                )?;
                Ok::<_, IdentityError>(())
            })
            .await
    }

    async fn remove_user(&self, sub: &str) -> Result<(), IdentityError> {
        self.revoke_families("pool_id = ?1 AND sub = ?2", vec![self.id.clone(), sub.to_owned()]).await?;
        let (pool_id, sub_owned) = (self.id.clone(), sub.to_owned());
        self.db
            .write(move |transaction| {
                for table in ["identity_users", "identity_memberships", "identity_codes", "identity_sessions"]
                {
                    transaction.execute(
                        &format!("DELETE FROM {table} WHERE pool_id = ?1 AND sub = ?2"),
                        params![pool_id, sub_owned],
                    )?;
                }
                Ok::<_, IdentityError>(())
            })
            .await?;
        tracing::info!(pool = %self.name, sub = %sub, "user deleted");
        Ok(())
    }

    /// Revokes every refresh-token family matching `condition` (over `identity_refresh_tokens`):
    /// its refresh tokens and the access tokens issued from it.
    async fn revoke_families(
        &self,
        condition: &'static str,
        values: Vec<String>,
    ) -> Result<(), IdentityError> {
        self.revoke(condition, values, Revoke::Everything).await
    }

    /// Revokes the refresh tokens of matching families; their access tokens live out their hour.
    async fn revoke_refresh_tokens(
        &self,
        condition: &'static str,
        values: Vec<String>,
    ) -> Result<(), IdentityError> {
        self.revoke(condition, values, Revoke::RefreshTokens).await
    }

    async fn revoke(
        &self,
        condition: &'static str,
        values: Vec<String>,
        scope: Revoke,
    ) -> Result<(), IdentityError> {
        let now = self.now();
        self.db
            .write(move |transaction| {
                let families: Vec<String> = transaction
                    .prepare(&format!("SELECT DISTINCT family FROM identity_refresh_tokens WHERE {condition}"))?
                    .query_map(rusqlite::params_from_iter(values.iter()), |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                for family in families {
                    transaction.execute(
                        "UPDATE identity_refresh_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE family = ?1",
                        params![family, now],
                    )?;
                    if scope == Revoke::Everything {
                        transaction.execute(
                            "UPDATE identity_refresh_tokens SET access_revoked_at = COALESCE(access_revoked_at, ?2)
                             WHERE family = ?1",
                            params![family, now],
                        )?;
                    }
                }
                Ok::<_, IdentityError>(())
            })
            .await?;
        self.forget_revocation_cache();
        Ok(())
    }

    fn validate_attributes(
        &self,
        attributes: BTreeMap<String, String>,
        operator: bool,
    ) -> Result<BTreeMap<String, String>, IdentityError> {
        let mut checked = BTreeMap::new();
        for (name, value) in attributes {
            let custom =
                name.strip_prefix("custom:").is_some_and(|rest| !rest.is_empty() && rest.len() <= 20);
            if !(custom || STANDARD_ATTRIBUTES.contains(&name.as_str())) || name == "sub" {
                return Err(IdentityError::InvalidParameter(format!(
                    "Attribute {name} is not part of the schema"
                )));
            }
            if name.ends_with("_verified") && !operator {
                return Err(IdentityError::InvalidParameter(format!("Cannot modify {name}")));
            }
            if value.len() > MAX_ATTRIBUTE_VALUE {
                return Err(IdentityError::InvalidParameter(format!(
                    "Attribute {name} is longer than {MAX_ATTRIBUTE_VALUE} characters"
                )));
            }
            let value = if name == "email" {
                let address: lettre::Address = value
                    .trim()
                    .parse()
                    .map_err(|_| IdentityError::InvalidParameter("Invalid email address format.".into()))?;
                address.to_string().to_lowercase()
            } else {
                value
            };
            checked.insert(name, value);
        }
        Ok(checked)
    }
}

async fn hash_password(password: &str) -> Result<String, IdentityError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(IdentityError::Worker)?
        .map_err(IdentityError::from)
}

async fn verify_password(password: &str, stored: &str) -> Result<bool, IdentityError> {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || password::verify(&password, &stored))
        .await
        .map_err(IdentityError::Worker)?
        .map_err(IdentityError::from)
}

fn validate_username(username: &str) -> Result<(), IdentityError> {
    let valid = !username.is_empty()
        && username.chars().count() <= 128
        && !username.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(IdentityError::InvalidParameter("Username must be 1-128 characters without spaces".into()))
    }
}
