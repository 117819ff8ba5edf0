//! The API's authorizer (API Gateway's JWT authorizer): accepts `Authorization: Bearer` access
//! tokens from configured issuers — the built-in pools, checked in-process, and remote OpenID
//! Connect issuers such as a real Cognito pool, whose JWKS is fetched and cached.
//!
//! Every token must be RS256 with a known `kid` and no key material in its header; `iss`,
//! `client_id`, `token_use = access` and `exp`/`nbf` (60 s skew) are checked. Handlers receive
//! the [`Principal`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

use super::tokens::{self, AccessClaims, TokenError, unverified_issuer};
use crate::infra::clock::Clock;
use crate::infra::http::Problem;
use serde::{Deserialize, Serialize};

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user-pool `sub` (or a function authorizer's `principalId`): whose data this is.
    pub sub: String,
    pub username: String,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    pub issuer: String,
    pub client_id: String,
    pub authorized_by: AuthorizedBy,
}

/// Which authorizer vouched for the caller (API Gateway's `requestContext.identity` and
/// `requestContext.authorizer`).
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizedBy {
    /// An access token of a user pool.
    UserPool,
    /// SigV4 with the temporary credentials of an identity signed in through a user pool.
    Iam { identity_id: String, role_arn: String },
    /// A function authorizer, with the context it returned.
    Function { authorizer: String, context: std::collections::BTreeMap<String, serde_json::Value> },
}

impl Principal {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|member_of| member_of == group)
    }

    /// 403 unless the caller belongs to `group` (e.g. the blog's `authors`).
    pub fn require_group(&self, group: &str) -> Result<(), Problem> {
        if self.in_group(group) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!("This action requires membership of the `{group}` group."),
            ))
        }
    }
}

/// A minimum pause between JWKS fetches of one remote issuer, so unknown `kid`s cannot be used
/// to make Stratus hammer the issuer.
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Verifies the access tokens of one issuer: a built-in user pool, or a remote one through its
/// JWKS. An authorizer on Lambda needs only the remote kind, and so no SQLite.
#[async_trait]
pub trait AccessTokenVerifier: Send + Sync + std::fmt::Debug {
    /// The `iss` its tokens carry.
    fn issuer(&self) -> &str;

    /// Signature, issuer, lifetime (against `now`, epoch seconds), `token_use` and client.
    async fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError>;

    /// Whether the tokens of a refresh-token family were revoked (sign-out, reuse, …); an
    /// issuer that cannot tell answers `false`.
    fn is_revoked(&self, family: &str) -> bool {
        let _ = family;
        false
    }
}

/// A remote issuer whose access tokens the API accepts (`identity.issuers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteIssuer {
    /// The issuer URL (`iss`), e.g. `https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123`;
    /// its discovery document and JWKS are fetched from it.
    pub issuer: String,
    /// App client ids whose tokens are accepted.
    pub client_ids: Vec<String>,
    /// Where the discovery document is, when not at `<issuer>/.well-known/openid-configuration`
    /// (a pool reached through a private endpoint, an emulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
}

#[derive(Debug)]
pub struct Authorizer {
    verifiers: Vec<Arc<dyn AccessTokenVerifier>>,
    /// Token lifetimes are checked against it.
    clock: Arc<dyn Clock>,
    /// Tokens verified before, from any issuer; revocation is still checked on every hit.
    verified: tokens::VerifiedTokens,
}

/// A remote OpenID Connect issuer (a real Cognito pool, say): keys from its JWKS, fetched on
/// first use and again for an unknown `kid`, at most once a minute.
#[derive(Debug)]
pub struct RemoteVerifier {
    issuer: String,
    discovery_url: String,
    client_ids: Vec<String>,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<RemoteKeys>,
}

#[derive(Default)]
struct RemoteKeys {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys").field("kids", &self.by_kid.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("cannot reach the issuer")]
    Http(#[from] reqwest::Error),
    #[error("the discovery document has no jwks_uri")]
    NoJwksUri,
}

impl Authorizer {
    /// The built-in pools and the configured remote issuers. Fails only when the HTTP client for
    /// remote issuers' keys cannot be built (no TLS roots).
    pub fn new(
        local: Vec<Arc<dyn AccessTokenVerifier>>,
        remote: &[RemoteIssuer],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let mut verifiers = local;
        verifiers.extend(remote.iter().map(|issuer| {
            Arc::new(RemoteVerifier::new(issuer, http.clone())) as Arc<dyn AccessTokenVerifier>
        }));
        Ok(Self::with_verifiers(verifiers, clock))
    }

    /// An authorizer over any verifiers (on Lambda: remote ones only).
    pub fn with_verifiers(verifiers: Vec<Arc<dyn AccessTokenVerifier>>, clock: Arc<dyn Clock>) -> Self {
        Self { verifiers, clock, verified: tokens::VerifiedTokens::default() }
    }

    /// Verifies a bearer access token and returns its principal.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        let now = self.clock.now_millis().div_euclid(1000);
        if let Some(claims) = self.verified.get(token, now) {
            if self.revoked(&claims) {
                return Err(TokenError::Revoked);
            }
            return Ok(principal(&claims));
        }
        let issuer = unverified_issuer(token).ok_or(TokenError::Malformed)?;
        let claims = self.verifier(&issuer).ok_or(TokenError::WrongIssuer)?.verify(token, now).await?;
        self.verified.insert(token, &claims);
        Ok(principal(&claims))
    }

    /// The claims of a token verified before, still valid and not revoked since: what can be
    /// known about a caller without awaiting anything. `None` when the token must be verified
    /// (or is refused) by [`Authorizer::authenticate`].
    pub fn verified_before(&self, token: &str) -> Option<Arc<AccessClaims>> {
        let claims = self.verified.get(token, self.clock.now_millis().div_euclid(1000))?;
        (!self.revoked(&claims)).then_some(claims)
    }

    fn revoked(&self, claims: &AccessClaims) -> bool {
        self.verifier(&claims.iss).is_some_and(|verifier| verifier.is_revoked(&claims.origin_jti))
    }

    fn verifier(&self, issuer: &str) -> Option<&Arc<dyn AccessTokenVerifier>> {
        self.verifiers.iter().find(|verifier| verifier.issuer() == issuer)
    }
}

impl RemoteVerifier {
    pub fn new(issuer: &RemoteIssuer, http: reqwest::Client) -> Self {
        let trimmed = issuer.issuer.trim_end_matches('/');
        Self {
            issuer: trimmed.to_owned(),
            discovery_url: issuer
                .discovery_url
                .clone()
                .unwrap_or_else(|| format!("{trimmed}/.well-known/openid-configuration")),
            client_ids: issuer.client_ids.clone(),
            http,
            keys: tokio::sync::Mutex::new(RemoteKeys::default()),
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut keys = self.keys.lock().await;
        if let Some(key) = keys.by_kid.get(kid) {
            return Ok(key.clone());
        }
        if keys.fetched_at.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return Err(TokenError::UnknownKey);
        }
        keys.fetched_at = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(fetched) => keys.by_kid = fetched,
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, error = %crate::infra::telemetry::error_chain(&error), "cannot fetch the issuer's JWKS");
            }
        }
        keys.by_kid.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, FetchError> {
        let issuer = &self.issuer;
        let discovery: serde_json::Value =
            self.http.get(&self.discovery_url).send().await?.error_for_status()?.json().await?;
        let jwks_uri = discovery.get("jwks_uri").and_then(|uri| uri.as_str()).ok_or(FetchError::NoJwksUri)?;
        let set: JwkSet = self.http.get(jwks_uri).send().await?.error_for_status()?.json().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let rsa = matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_));
            if let (true, Some(kid), Ok(key)) = (rsa, jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        tracing::info!(issuer = %issuer, keys = keys.len(), "fetched the issuer's JWKS");
        Ok(keys)
    }
}

#[async_trait]
impl AccessTokenVerifier for RemoteVerifier {
    fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let kid = tokens::check_header(token)?;
        let key = self.key(&kid).await?;
        let claims: AccessClaims = tokens::verify(token, &key, &self.issuer, now)?;
        if claims.token_use != "access" {
            return Err(TokenError::WrongUse);
        }
        if !self.client_ids.contains(&claims.client_id) {
            return Err(TokenError::WrongClient);
        }
        Ok(claims)
    }
}

/// The principal an access token's claims describe.
pub(crate) fn principal(claims: &AccessClaims) -> Principal {
    Principal {
        sub: claims.sub.clone(),
        username: claims.username.clone(),
        groups: claims.groups.clone(),
        scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
        issuer: claims.iss.clone(),
        client_id: claims.client_id.clone(),
        authorized_by: AuthorizedBy::UserPool,
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, detail).with_header(
        header::WWW_AUTHENTICATE,
        format!("Bearer error=\"invalid_token\", error_description=\"{detail}\""),
    )
}

impl<S> FromRequestParts<S> for Principal
where
    Arc<Authorizer>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Verified already, in front of the function (the gateway's response cache keys by it).
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let authorizer = Arc::<Authorizer>::from_ref(state);
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        if value.is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256 ")) {
            // Allowed by IAM, but with credentials no user-pool user signed in for (a guest
            // identity's, the operator's): there is no user whose data this would be.
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "These credentials are not a signed-in user's: use credentials an identity pool issued for a user-pool login.",
            ));
        }
        let Some(token) = value.and_then(|value| value.strip_prefix("Bearer ")) else {
            return Err(Problem::new(StatusCode::UNAUTHORIZED, "An access token is required.")
                .with_header(header::WWW_AUTHENTICATE, "Bearer"));
        };
        authorizer.authenticate(token.trim()).await.map_err(|error| {
            tracing::info!(reason = %error, "access token refused");
            unauthorized(&error.to_string())
        })
    }
}

/// `Option<Principal>`: `None` without an `Authorization` header, a 401 for a bad token.
impl<S> OptionalFromRequestParts<S> for Principal
where
    Arc<Authorizer>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await.map(Some)
    }
}
