//! Identity: a user pool with Cognito's behaviour and wire protocol (sign-up, email verification,
//! sign-in, TOTP MFA, password reset, groups, RS256 tokens with a JWKS), and the authorizer that
//! checks access tokens for the API — from this pool or any OpenID Connect issuer.
//!
//! On AWS the pool is Cognito itself; only [`authorizer`] is used there, pointed at Cognito's
//! issuer URL.

mod config;
pub use config::{ClientConfig, IdentityConfig, PasswordPolicy, PoolConfig};

mod error;
mod filter;
mod install;
mod mailing;
mod model;
pub mod operation;
mod password;
mod pool;
pub(crate) mod protocol;
mod store;
mod throttle;
mod totp;
mod verifier;

use std::sync::Arc;

pub use error::{Denied, IdentityError, Invalid};
pub use model::{
    AdminCreateUser, AuthFlow, AuthOutcome, Challenge, CodeDelivery, CodePurpose, Group, Tokens, UserRecord,
    UserStatus,
};
pub use pool::UserPool;
pub use throttle::Throttle;

use crate::infra::clock::Clock;
use crate::services::cognito::authorizer::AccessTokenVerifier;
use crate::services::cognito::tokens::unverified_issuer;

/// Every user pool of the stage, by id and by app client id.
#[derive(Debug)]
pub struct Identity {
    pools: Vec<Arc<UserPool>>,
    pub throttle: Throttle,
    operator: OperatorCredentials,
    /// Signed requests' dates are checked against it.
    clock: Arc<dyn Clock>,
}

/// The credentials Admin* requests must be signed with.
#[derive(Clone)]
pub struct OperatorCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for OperatorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn pools(&self) -> &[Arc<UserPool>] {
        &self.pools
    }

    /// The pools as the authorizer's verifiers.
    pub fn verifiers(&self) -> Vec<Arc<dyn AccessTokenVerifier>> {
        self.pools.iter().map(|pool| Arc::clone(pool) as Arc<dyn AccessTokenVerifier>).collect()
    }

    pub fn pool(&self, pool_id: &str) -> Result<&Arc<UserPool>, IdentityError> {
        self.pools
            .iter()
            .find(|pool| pool.id() == pool_id)
            .ok_or_else(|| IdentityError::PoolNotFound(pool_id.to_owned()))
    }

    pub fn pool_named(&self, name: &str) -> Option<&Arc<UserPool>> {
        self.pools.iter().find(|pool| pool.name() == name)
    }

    /// The pool an app client belongs to.
    pub fn pool_for_client(&self, client_id: &str) -> Result<&Arc<UserPool>, IdentityError> {
        self.pools
            .iter()
            .find(|pool| pool.has_client(client_id))
            .ok_or_else(|| IdentityError::ClientNotFound(client_id.to_owned()))
    }

    /// The pool that issued an access token (by its `iss`), for operations that take one.
    pub fn pool_for_token(&self, access_token: &str) -> Result<&Arc<UserPool>, IdentityError> {
        let invalid = || IdentityError::NotAuthorized(Denied::InvalidAccessToken);
        let issuer = unverified_issuer(access_token).ok_or_else(invalid)?;
        self.pools.iter().find(|pool| pool.issuer() == issuer).ok_or_else(invalid)
    }

    pub fn operator(&self) -> &OperatorCredentials {
        &self.operator
    }

    /// The time signed requests are checked at.
    pub fn now(&self) -> std::time::SystemTime {
        self.clock.now()
    }
}

/// The operator credentials of a stage: from configuration, or generated on first start and
/// kept in `<stage dir>/identity/operator-credentials`, an AWS shared-credentials file readable
/// only by its owner (`AWS_SHARED_CREDENTIALS_FILE=… aws cognito-idp admin-…` works).
pub fn operator_credentials(
    config: &IdentityConfig,
    stage_dir: &std::path::Path,
) -> std::io::Result<OperatorCredentials> {
    let access_key_id = config.operator_access_key_id.clone();
    if let Some(secret) = &config.operator_secret_access_key {
        return Ok(OperatorCredentials { access_key_id, secret_access_key: secret.expose().to_owned() });
    }
    let path = operator_credentials_path(stage_dir);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && let Some(secret) =
            existing.lines().find_map(|line| line.trim().strip_prefix("aws_secret_access_key = "))
    {
        return Ok(OperatorCredentials { access_key_id, secret_access_key: secret.trim().to_owned() });
    }
    use rand::RngCore as _;
    let mut bytes = [0u8; 30];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let contents =
        format!("[default]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n");
    crate::infra::files::write_private(&path, contents.as_bytes())?;
    Ok(OperatorCredentials { access_key_id, secret_access_key: secret })
}

pub fn operator_credentials_path(stage_dir: &std::path::Path) -> std::path::PathBuf {
    stage_dir.join("identity").join("operator-credentials")
}
