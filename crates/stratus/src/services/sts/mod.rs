//! STS (AWS Security Token Service): `AssumeRoleWithWebIdentity`, the classic identity-pool flow
//! (`GetId` → `GetOpenIdToken` → STS) and what the AWS SDKs' web-identity credential providers
//! call. Only the identity pools' own OpenID tokens are accepted, and only for their pool's
//! roles: the authenticated role for a signed-in identity, the unauthenticated one for a guest —
//! the trust policy AWS's Cognito roles carry (`aud` = the pool, `amr` = how it signed in).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;

use crate::infra::aws_query::{QueryCall, QueryFault, QueryService, escape};
use crate::services::cognito::credentials::{Grant, IssuedCredentials, SignIn};
use crate::services::cognito::identity_pool::{IdentityPoolError, IdentityPools, OpenIdClaims};
use crate::services::cognito::tokens::TokenError;

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The range of `DurationSeconds`.
const DURATIONS: std::ops::RangeInclusive<u64> = 900..=43_200;

#[derive(Debug)]
pub(crate) struct Sts {
    pools: Arc<IdentityPools>,
}

/// What an assumed role hands back.
#[derive(Debug, Clone)]
pub(crate) struct AssumedRole {
    pub credentials: IssuedCredentials,
    pub identity_id: String,
    pub pool_id: String,
    pub role_arn: String,
    pub session_name: String,
}

impl Sts {
    pub(crate) fn new(pools: Arc<IdentityPools>) -> Self {
        Self { pools }
    }

    pub(crate) async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
        duration: Duration,
    ) -> Result<AssumedRole, QueryFault> {
        let valid_name = (2..=64).contains(&session_name.len())
            && session_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
        if !valid_name {
            return Err(QueryFault::sender(
                "ValidationError",
                "RoleSessionName must be 2-64 characters of letters, digits and +=,.@-_",
            ));
        }
        if !DURATIONS.contains(&duration.as_secs()) {
            return Err(QueryFault::sender(
                "ValidationError",
                "DurationSeconds must be between 900 and 43200",
            ));
        }
        let claims = self.pools.openid().verify(token, self.pools.now()).map_err(|error| match error {
            TokenError::Expired => QueryFault::sender("ExpiredTokenException", "Token expired"),
            _ => QueryFault::sender("InvalidIdentityToken", "The web identity token is not valid"),
        })?;
        let grant = self.grant(&claims, role_arn)?;
        let credentials =
            self.pools.issue_credentials(grant, duration).await.map_err(|error| internal(&error))?;
        tracing::info!(identity_id = %claims.sub, role = role_arn, access_key_id = %credentials.access_key_id, "role assumed");
        Ok(AssumedRole {
            credentials,
            identity_id: claims.sub,
            pool_id: claims.aud,
            role_arn: role_arn.to_owned(),
            session_name: session_name.to_owned(),
        })
    }

    /// The role's trust, checked: the token's identity exists in its pool, the role is the one
    /// that pool gives identities that signed in as this one did, and the sign-in still stands.
    fn grant(&self, claims: &OpenIdClaims, role_arn: &str) -> Result<Grant, QueryFault> {
        let invalid = || QueryFault::sender("InvalidIdentityToken", "The web identity token is not valid");
        let identity = self.pools.identity(&claims.sub).map_err(|_| invalid())?;
        if identity.pool_id != claims.aud {
            return Err(invalid());
        }
        let pool = self.pools.pool(&claims.aud).map_err(|_| invalid())?;
        let authenticated = claims.amr.iter().any(|method| method == "authenticated");
        let allowed = match (authenticated, &identity.login) {
            (true, Some(_)) => pool.authenticated_role.as_deref(),
            (false, None) => pool.unauthenticated_role.as_deref(),
            _ => return Err(invalid()),
        };
        if allowed != Some(role_arn) {
            return Err(QueryFault::sender(
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            ));
        }
        let sign_in = match (&claims.sign_in_issuer, &claims.sign_in) {
            (Some(issuer), Some(family)) => Some(SignIn { issuer: issuer.clone(), family: family.clone() }),
            _ => None,
        };
        if sign_in
            .as_ref()
            .is_some_and(|sign_in| self.pools.sign_in_revoked(&sign_in.issuer, &sign_in.family))
        {
            return Err(QueryFault::sender(
                "InvalidIdentityToken",
                "The web identity token has been revoked",
            ));
        }
        Ok(Grant {
            identity_id: identity.id,
            role_arn: role_arn.to_owned(),
            subject: identity.login.map(|(_, subject)| subject),
            sign_in,
        })
    }
}

fn internal(error: &IdentityPoolError) -> QueryFault {
    tracing::error!(error = %crate::infra::telemetry::error_chain(error), "STS request failed");
    QueryFault::receiver("An internal error occurred")
}

#[async_trait]
impl QueryService for Sts {
    fn handles(&self, action: &str) -> bool {
        action == "AssumeRoleWithWebIdentity"
    }

    fn namespace(&self) -> &'static str {
        NAMESPACE
    }

    async fn call(&self, call: QueryCall) -> Result<String, QueryFault> {
        let duration = match call.params.get("DurationSeconds") {
            Some(seconds) => seconds
                .parse::<u64>()
                .map_err(|_| QueryFault::sender("ValidationError", "DurationSeconds must be a number"))?,
            None => 3600,
        };
        let assumed = self
            .assume_role_with_web_identity(
                call.param("RoleArn")?,
                call.param("RoleSessionName")?,
                call.param("WebIdentityToken")?,
                Duration::from_secs(duration),
            )
            .await?;
        Ok(result_xml(&assumed))
    }
}

fn result_xml(assumed: &AssumedRole) -> String {
    let role_name = assumed.role_arn.rsplit('/').next().unwrap_or_default();
    let account = assumed.role_arn.split(':').nth(4).unwrap_or_default();
    let expiration =
        UNIX_EPOCH + Duration::from_secs(u64::try_from(assumed.credentials.expiration).unwrap_or_default());
    let credentials = &assumed.credentials;
    format!(
        "<SubjectFromWebIdentityToken>{subject}</SubjectFromWebIdentityToken><Audience>{audience}</Audience>\
         <AssumedRoleUser><Arn>arn:aws:sts::{account}:assumed-role/{role}/{session}</Arn>\
         <AssumedRoleId>AROA{role_id}:{session}</AssumedRoleId></AssumedRoleUser>\
         <Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
         <SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
         <Provider>cognito-identity.amazonaws.com</Provider>",
        subject = escape(&assumed.identity_id),
        audience = escape(&assumed.pool_id),
        account = escape(account),
        role = escape(role_name),
        session = escape(&assumed.session_name),
        role_id = role_name.len(),
        key = credentials.access_key_id,
        secret = escape(&credentials.secret_access_key),
        token = escape(&credentials.session_token),
        expiration = humantime::format_rfc3339_seconds(expiration),
    )
}
