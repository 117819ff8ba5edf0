//! Who signed a request with an access key: the operator, or the holder of an identity's
//! temporary credentials, described by the condition keys AWS sets for them. The S3 endpoint
//! and the gateway's IAM authorizer both ask here, so both hold a caller to the same rules
//! before IAM decides what the role may do.

use std::sync::Arc;

use super::IdentityPools;
use crate::services::cognito::credentials::{CallerKind, CredentialError, Grant};
use crate::services::iam::Context;

/// The signer of a request whose credentials hold.
#[derive(Debug, Clone)]
pub enum Signer {
    /// Long-term keys: the operator, who may do anything.
    Operator,
    Role(Arc<RoleSession>),
}

/// Temporary credentials' holder: the role whose policies apply, and the condition keys that
/// describe them.
#[derive(Debug)]
pub struct RoleSession {
    pub access_key_id: String,
    pub identity_id: String,
    pub role_arn: String,
    pub context: Context,
    /// The user-pool sign-in behind the credentials; `None` for a guest identity.
    pub user: Option<SignedInUser>,
}

/// A user-pool user, as their identity's login names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInUser {
    /// The user-pool `sub`.
    pub sub: String,
    /// The user pool's issuer URL.
    pub issuer: String,
}

/// A signer and the secret its signature is to be verified with.
#[derive(Debug)]
pub struct SignedBy {
    pub secret_access_key: String,
    pub signer: Signer,
}

impl IdentityPools {
    /// The signer of credentials `access_key_id` (with `session_token`, if the request sent one),
    /// checked for existence, expiry, token, revocation and an ended sign-in. The signature itself
    /// is the caller's to check, with the secret returned.
    pub fn signer(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<SignedBy, CredentialError> {
        let caller = self.credentials.caller(access_key_id, session_token, self.now())?;
        let grant = match caller.kind {
            CallerKind::Operator => {
                return Ok(SignedBy {
                    secret_access_key: caller.secret_access_key,
                    signer: Signer::Operator,
                });
            }
            CallerKind::Temporary { grant, .. } => grant,
        };
        if let Some(sign_in) = &grant.sign_in
            && self.sign_in_revoked(&sign_in.issuer, &sign_in.family)
        {
            return Err(CredentialError::Revoked);
        }
        let context = self.condition_keys(&grant);
        let user = grant
            .subject
            .clone()
            .zip(grant.sign_in.as_ref())
            .map(|(sub, sign_in)| SignedInUser { sub, issuer: sign_in.issuer.clone() });
        let session = RoleSession {
            access_key_id: access_key_id.to_owned(),
            identity_id: grant.identity_id,
            role_arn: grant.role_arn,
            context,
            user,
        };
        Ok(SignedBy { secret_access_key: caller.secret_access_key, signer: Signer::Role(Arc::new(session)) })
    }

    /// The condition keys AWS sets for credentials from a Cognito identity pool.
    fn condition_keys(&self, grant: &Grant) -> Context {
        let mut context =
            Context::default().with("cognito-identity.amazonaws.com:sub", grant.identity_id.clone());
        if let Ok(identity) = self.identity(&grant.identity_id) {
            context = context.with("cognito-identity.amazonaws.com:aud", identity.pool_id);
            let amr = match identity.login {
                Some((provider, subject)) => {
                    vec!["authenticated".to_owned(), provider.clone(), format!("{provider}:{subject}")]
                }
                None => vec!["unauthenticated".to_owned()],
            };
            context = context.with_set("cognito-identity.amazonaws.com:amr", amr);
        }
        if let Some(subject) = &grant.subject {
            context = context.with("aws:PrincipalTag/username", subject.clone());
        }
        context
    }
}
