//! Cognito identity pools: a user signs in to a user pool, trades the ID token for an identity
//! (`GetId`: `REGION:GUID`, the same for the same user every time) and that identity for
//! temporary AWS credentials (`GetCredentialsForIdentity`) carrying the pool's authenticated
//! role — which the S3 endpoint's IAM policies then hold to the user's own folder. Guests get
//! the unauthenticated role when the pool allows them (off by default).
//!
//! Only ID tokens of the trusted app clients are accepted: signature, `iss`, `aud`, expiry and
//! the sign-in's revocation are checked by the user pool that issued them, so a user who signed
//! out everywhere, was disabled or deleted gets neither an identity nor credentials, and the
//! credentials they hold stop working with their sign-in (see `credentials`).

mod config;
mod install;
mod openid;
pub(crate) mod protocol;
mod signers;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use config::{IdentityPoolConfig, IdentityPoolsConfig};
pub use openid::{OpenIdClaims, OpenIdError, OpenIdIssuer};
pub use signers::{RoleSession, SignedBy, SignedInUser, Signer};
pub use store::{IdentityRecord, PoolRecord, Provider};

use crate::infra::clock::Clock;
use crate::infra::sqlite::DbError;
use crate::services::cognito::credentials::{CredentialStore, Grant, IssuedCredentials, SignIn};
use crate::services::cognito::tokens::{IdClaims, TokenError};
use crate::services::cognito::user_pool::{Identity, UserPool};
use store::Store;

/// What an identity-pool operation can refuse, as data; the protocol names each for Cognito's
/// clients.
#[derive(Debug, thiserror::Error)]
pub enum IdentityPoolError {
    #[error("IdentityPool '{0}' not found.")]
    PoolNotFound(String),
    #[error("Identity '{0}' not found.")]
    IdentityNotFound(String),
    #[error("Unauthenticated access is not supported for this identity pool.")]
    GuestsNotAllowed,
    #[error("Token is not from a supported provider of this identity pool.")]
    UnknownProvider,
    #[error("Invalid login token. {0}")]
    InvalidLogin(TokenError),
    #[error(
        "Logins don't match. Please include at least one valid login for this identity or identity pool."
    )]
    LoginsMismatch,
    #[error("Only one login per request is supported.")]
    SeveralLogins,
    #[error("Invalid identity pool configuration. Check assigned IAM roles for this pool.")]
    NoRole,
    #[error("{0}")]
    InvalidParameter(String),
    #[error("An identity pool named {0} already exists.")]
    NameTaken(String),
    #[error("internal error")]
    Storage(#[from] DbError),
    #[error("internal error")]
    Keys(#[from] crate::services::cognito::tokens::KeyError),
    #[error("cannot open the identity pools' token issuer")]
    OpenId(#[from] OpenIdError),
}

/// Every identity pool of the stage, over the user pools whose ID tokens they trust.
#[derive(Debug)]
pub struct IdentityPools {
    store: Store,
    user_pools: Arc<Identity>,
    credentials: Arc<CredentialStore>,
    openid: OpenIdIssuer,
    clock: Arc<dyn Clock>,
    region: String,
}

/// An identity and the credentials issued to it.
#[derive(Debug, Clone)]
pub struct IdentityCredentials {
    pub identity_id: String,
    pub credentials: IssuedCredentials,
}

/// Who a login token says the caller is.
struct Login {
    provider: String,
    claims: IdClaims,
    issuer: String,
}

impl IdentityPools {
    /// The stage's time, epoch seconds.
    pub fn now(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    /// Whether a user-pool sign-in has ended (signed out, user disabled or deleted); a sign-in
    /// of an issuer no pool has is taken as ended.
    pub fn sign_in_revoked(&self, issuer: &str, family: &str) -> bool {
        self.user_pools
            .pools()
            .iter()
            .find(|pool| pool.issuer() == issuer)
            .is_none_or(|pool| pool.is_revoked(family))
    }

    /// Temporary credentials for `grant` (STS's, whose role the caller has checked).
    pub async fn issue_credentials(
        &self,
        grant: Grant,
        duration: Duration,
    ) -> Result<IssuedCredentials, IdentityPoolError> {
        Ok(self.credentials.issue(grant, duration, self.now()).await?)
    }

    /// A new identity or pool id: `<region>:<GUID>`.
    fn new_id(&self) -> String {
        format!("{}:{}", self.region, uuid::Uuid::new_v4())
    }

    pub fn pool(&self, id: &str) -> Result<PoolRecord, IdentityPoolError> {
        self.store.pool(id)?.ok_or_else(|| IdentityPoolError::PoolNotFound(id.to_owned()))
    }

    /// The id of the pool called `name` (the configured ones, for `serve` to print).
    pub fn id_named(&self, name: &str) -> Result<Option<String>, IdentityPoolError> {
        Ok(self.store.id_named(name)?)
    }

    /// GetId: the caller's identity in the pool, created on first use.
    pub async fn get_id(
        &self,
        pool_id: &str,
        logins: &BTreeMap<String, String>,
    ) -> Result<IdentityRecord, IdentityPoolError> {
        let pool = self.pool(pool_id)?;
        match self.login(&pool, logins)? {
            Some(login) => {
                let key = (login.provider, login.claims.sub);
                Ok(self.store.identity_for_login(&pool.id, key, self.new_id(), self.now()).await?)
            }
            None if pool.allow_unauthenticated => {
                Ok(self.store.new_guest(&pool.id, self.new_id(), self.now()).await?)
            }
            None => Err(IdentityPoolError::GuestsNotAllowed),
        }
    }

    /// GetCredentialsForIdentity: temporary credentials with the pool's role.
    pub async fn credentials_for(
        &self,
        identity_id: &str,
        logins: &BTreeMap<String, String>,
    ) -> Result<IdentityCredentials, IdentityPoolError> {
        let (identity, pool, login) = self.authorize(identity_id, logins)?;
        let grant = match login {
            Some(login) => Grant {
                identity_id: identity.id.clone(),
                role_arn: pool.authenticated_role.clone().ok_or(IdentityPoolError::NoRole)?,
                subject: Some(login.claims.sub),
                sign_in: Some(SignIn { issuer: login.issuer, family: login.claims.origin_jti }),
            },
            None => Grant {
                identity_id: identity.id.clone(),
                role_arn: pool.unauthenticated_role.clone().ok_or(IdentityPoolError::NoRole)?,
                subject: None,
                sign_in: None,
            },
        };
        let validity = Duration::from_secs(u64::try_from(pool.credentials_seconds).unwrap_or(3600));
        let now = self.now();
        let credentials = self.credentials.issue(grant, validity, now).await?;
        self.store.touch(&identity.id, now).await?;
        tracing::info!(identity_id = %identity.id, access_key_id = %credentials.access_key_id, "credentials issued");
        Ok(IdentityCredentials { identity_id: identity.id, credentials })
    }

    /// GetOpenIdToken: a token of the identity for STS `AssumeRoleWithWebIdentity`.
    pub async fn open_id_token(
        &self,
        identity_id: &str,
        logins: &BTreeMap<String, String>,
    ) -> Result<(String, String), IdentityPoolError> {
        let (identity, pool, login) = self.authorize(identity_id, logins)?;
        let now = self.now();
        let (amr, sign_in_issuer, sign_in) = match login {
            Some(login) => (
                vec!["authenticated".to_owned(), login.provider],
                Some(login.issuer),
                Some(login.claims.origin_jti),
            ),
            None => (vec!["unauthenticated".to_owned()], None, None),
        };
        let claims = OpenIdClaims {
            sub: identity.id.clone(),
            aud: pool.id,
            amr,
            iss: self.openid.issuer().to_owned(),
            exp: now + openid::VALIDITY_SECONDS,
            iat: now,
            sign_in_issuer,
            sign_in,
        };
        let token = self.openid.sign(&claims)?;
        self.store.touch(&identity.id, now).await?;
        Ok((identity.id, token))
    }

    /// The identity pools' token issuer (its JWKS, and STS's verification).
    pub fn openid(&self) -> &OpenIdIssuer {
        &self.openid
    }

    /// The identity, its pool and the verified login it must present: an authenticated identity
    /// its own user's, a guest none (and only where guests are allowed).
    fn authorize(
        &self,
        identity_id: &str,
        logins: &BTreeMap<String, String>,
    ) -> Result<(IdentityRecord, PoolRecord, Option<Login>), IdentityPoolError> {
        let identity = self
            .store
            .identity(identity_id)?
            .ok_or_else(|| IdentityPoolError::IdentityNotFound(identity_id.to_owned()))?;
        let pool = self.pool(&identity.pool_id)?;
        match &identity.login {
            Some((provider, subject)) => {
                let login = self.login(&pool, logins)?.ok_or(IdentityPoolError::LoginsMismatch)?;
                if &login.provider != provider || &login.claims.sub != subject {
                    return Err(IdentityPoolError::LoginsMismatch);
                }
                Ok((identity, pool, Some(login)))
            }
            None if !pool.allow_unauthenticated => Err(IdentityPoolError::GuestsNotAllowed),
            None if !logins.is_empty() => Err(IdentityPoolError::LoginsMismatch),
            None => Ok((identity, pool, None)),
        }
    }

    /// Creates a pool trusting `providers` (CreateIdentityPool); it has no roles until
    /// SetIdentityPoolRoles gives it some.
    pub async fn create_pool(
        &self,
        name: &str,
        allow_unauthenticated: bool,
        providers: Vec<Provider>,
    ) -> Result<PoolRecord, IdentityPoolError> {
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ' ' || c == '-');
        if !valid_name {
            return Err(IdentityPoolError::InvalidParameter(
                "IdentityPoolName must be 1-128 letters, digits, spaces, '-' or '_'".into(),
            ));
        }
        let pool = PoolRecord {
            id: self.new_id(),
            name: name.to_owned(),
            allow_unauthenticated,
            providers,
            authenticated_role: None,
            unauthenticated_role: None,
            credentials_seconds: 3600,
        };
        if !self.store.put_pool(pool.clone(), self.now()).await? {
            return Err(IdentityPoolError::NameTaken(name.to_owned()));
        }
        tracing::info!(pool_id = %pool.id, name, "identity pool created");
        Ok(pool)
    }

    /// SetIdentityPoolRoles.
    pub async fn set_roles(
        &self,
        pool_id: &str,
        authenticated: Option<String>,
        unauthenticated: Option<String>,
    ) -> Result<(), IdentityPoolError> {
        for role in authenticated.iter().chain(&unauthenticated) {
            if !config::is_role_arn(role) {
                return Err(IdentityPoolError::InvalidParameter(format!("{role} is not a role ARN")));
            }
        }
        let mut pool = self.pool(pool_id)?;
        pool.authenticated_role = authenticated;
        pool.unauthenticated_role = unauthenticated;
        self.store.put_pool(pool, self.now()).await?;
        Ok(())
    }

    /// A page of pools (ListIdentityPools).
    pub fn pools(&self, after: Option<&str>, limit: usize) -> Result<Vec<PoolRecord>, IdentityPoolError> {
        Ok(self.store.pools(after.unwrap_or_default(), limit.clamp(1, 60))?)
    }

    /// A page of a pool's identities (ListIdentities).
    pub fn identities(
        &self,
        pool_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IdentityRecord>, IdentityPoolError> {
        self.pool(pool_id)?;
        Ok(self.store.identities(pool_id, after.unwrap_or_default(), limit.clamp(1, 60))?)
    }

    pub fn identity(&self, identity_id: &str) -> Result<IdentityRecord, IdentityPoolError> {
        self.store
            .identity(identity_id)?
            .ok_or_else(|| IdentityPoolError::IdentityNotFound(identity_id.to_owned()))
    }

    /// The identities of a user-pool user, for functions that know the `sub` and want the
    /// folder.
    pub fn identities_of(&self, sub: &str) -> Result<Vec<IdentityRecord>, IdentityPoolError> {
        Ok(self.store.identities_of_subject(sub)?)
    }

    /// The one login in `logins`, verified; `None` when there is none.
    fn login(
        &self,
        pool: &PoolRecord,
        logins: &BTreeMap<String, String>,
    ) -> Result<Option<Login>, IdentityPoolError> {
        let mut entries = logins.iter();
        let Some((key, token)) = entries.next() else { return Ok(None) };
        if entries.next().is_some() {
            return Err(IdentityPoolError::SeveralLogins);
        }
        let (provider, user_pool) = self.provider(pool, key).ok_or(IdentityPoolError::UnknownProvider)?;
        let clients: Vec<String> = pool
            .providers
            .iter()
            .filter(|candidate| candidate.name == provider)
            .map(|candidate| candidate.client_id.clone())
            .collect();
        let claims = user_pool.verify_id_token(token, &clients).map_err(IdentityPoolError::InvalidLogin)?;
        Ok(Some(Login { provider, claims, issuer: user_pool.issuer().to_owned() }))
    }

    /// The trusted provider a `Logins` key names, in either form clients send: AWS's
    /// `cognito-idp.<region>.amazonaws.com/<pool id>`, or the ID token's `iss` without its scheme
    /// (Amplify's).
    fn provider(&self, pool: &PoolRecord, key: &str) -> Option<(String, &Arc<UserPool>)> {
        pool.providers.iter().find_map(|provider| {
            let user_pool_id = provider.name.rsplit('/').next()?;
            let user_pool = self.user_pools.pool(user_pool_id).ok()?;
            let issuer = user_pool.issuer();
            let bare = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
            (provider.name == key || bare == key).then(|| (provider.name.clone(), user_pool))
        })
    }
}

/// The provider name AWS gives a user pool.
pub fn provider_name(region: &str, user_pool_id: &str) -> String {
    format!("cognito-idp.{region}.amazonaws.com/{user_pool_id}")
}
