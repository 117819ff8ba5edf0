//! One user pool's operations, by concern: sign-up and recovery codes ([`sign_up`]), sign-in and
//! its challenges ([`auth`]), token families, refresh and revocation ([`sessions`]), TOTP MFA
//! ([`mfa`]), a user's own account ([`account`]) and administration ([`admin`]). Every row they
//! read or write goes through the pool's [`Store`].

mod account;
mod admin;
mod attributes;
mod auth;
mod mfa;
mod sessions;
mod sign_up;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use super::model::UserRecord;
use super::store::{KeyRing, NewKey, Store, UserKey, UserRow};
use super::{IdentityError, password};
use crate::infra::clock::Clock;
use crate::infra::sqlite::Database;
use crate::ports::mail::Mailer;
use crate::services::cognito::tokens::{self, SigningKey, VerifyingKey};
use crate::services::cognito::user_pool::PoolConfig;

/// The keys tokens are signed and verified with.
struct Keys {
    signing: SigningKey,
    verifying: Vec<VerifyingKey>,
}

/// Revoked refresh-token families, refreshed from the database at most once a second so that
/// revocations by other processes (the CLI) take effect promptly.
struct Revocations {
    families: HashSet<String>,
    loaded_at: Option<Instant>,
}

/// What a pool is opened with besides its configuration.
#[derive(Debug)]
pub(crate) struct PoolDeps {
    pub(crate) db: Arc<Database>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) region: String,
    pub(crate) public_url: String,
}

pub struct UserPool {
    name: String,
    id: String,
    issuer: String,
    clients: Vec<(String, String)>,
    config: PoolConfig,
    store: Store,
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

impl UserPool {
    /// Opens the pool `name`: its id, app client ids and signing key are created on first start
    /// and kept.
    pub(crate) fn open(name: &str, config: &PoolConfig, deps: &PoolDeps) -> Result<Self, IdentityError> {
        let clients: Vec<(&str, Option<&str>)> =
            config.clients.iter().map(|(name, client)| (name.as_str(), client.id.as_deref())).collect();
        let (store, clients) =
            Store::open_blocking(Arc::clone(&deps.db), name, config.id.as_deref(), &deps.region, &clients)?;
        let now = deps.clock.now_millis().div_euclid(1000);
        let ring = store.key_ring_blocking(retired_since(config, now), now, || {
            new_key(tokens::generate_private_key()?)
        })?;
        let issuer = format!("{}/{}", deps.public_url.trim_end_matches('/'), store.pool_id());
        tracing::info!(pool = name, pool_id = %store.pool_id(), issuer = %issuer, "user pool open");
        Ok(Self {
            name: name.to_owned(),
            id: store.pool_id().to_owned(),
            issuer,
            clients,
            config: config.clone(),
            store,
            mailer: Arc::clone(&deps.mailer),
            clock: Arc::clone(&deps.clock),
            keys: RwLock::new(keys_of(&ring)?),
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
            Err(IdentityError::ClientNotFound(client_id.to_owned()))
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
        let now = self.now();
        let ring = self.store.rotate_key(new_key(pem)?, retired_since(&self.config, now), now).await?;
        let keys = keys_of(&ring)?;
        let kid = keys.signing.kid.clone();
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        tracing::info!(pool = %self.name, kid = %kid, "signing key rotated");
        Ok(kid)
    }

    fn user(&self, key: UserKey<'_>) -> Result<Option<UserRow>, IdentityError> {
        Ok(self.store.user(key)?)
    }

    fn user_named(&self, username: &str) -> Result<Option<UserRow>, IdentityError> {
        self.user(UserKey::Username(username))
    }

    /// The user as the API reports it, with their groups.
    fn record(&self, user: UserRow) -> Result<UserRecord, IdentityError> {
        let groups = self.store.groups_of(&user.sub)?;
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

    /// Seconds from the configured validity, saturating.
    fn seconds(validity: std::time::Duration) -> i64 {
        i64::try_from(validity.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Retired keys are kept while a token they signed may still be valid.
fn retired_since(config: &PoolConfig, now: i64) -> i64 {
    let longest =
        config.access_token_validity.max(config.id_token_validity).as_secs() + tokens::LEEWAY_SECONDS;
    now.saturating_sub(i64::try_from(longest).unwrap_or(i64::MAX))
}

fn new_key(pem: String) -> Result<NewKey, IdentityError> {
    let (signing, _) = tokens::load_key(&pem, None)?;
    Ok(NewKey { kid: signing.kid, pem })
}

fn keys_of(ring: &KeyRing) -> Result<Keys, IdentityError> {
    let (signing, current) = tokens::load_key(&ring.current, None)?;
    let mut verifying = vec![current];
    for (pem, retired_at) in &ring.retired {
        verifying.push(tokens::load_key(pem, Some(*retired_at))?.1);
    }
    Ok(Keys { signing, verifying })
}

fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// How codes, sessions and refresh tokens are stored: by SHA-256, never as given out.
fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
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
