//! Signing keys and tokens. Each pool has RSA-2048 keys kept in the stage database; the newest
//! signs, and retired keys stay in the JWKS until every token they signed has expired. Tokens
//! carry Cognito's claims so client libraries and API gateways read them unchanged.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Accepted clock skew for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an RSA key")]
    Generate(#[source] rsa::Error),
    #[error("cannot encode the key")]
    Encode(#[source] rsa::pkcs8::Error),
    #[error("stored key is corrupt")]
    Decode(#[source] rsa::pkcs8::Error),
    #[error("cannot load the key into the JWT library")]
    Jwt(#[source] jsonwebtoken::errors::Error),
}

/// A key that verifies tokens, as published in the JWKS.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: String,
    pub(crate) decoding: DecodingKey,
    n: String,
    e: String,
    /// When it stopped signing (epoch seconds), if it has.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("retired_at", &self.retired_at).finish()
    }
}

/// The key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A new private key, PKCS#8 PEM.
pub fn generate_private_key() -> Result<String, KeyError> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(KeyError::Generate)?;
    Ok(key.to_pkcs8_pem(LineEnding::LF).map_err(KeyError::Encode)?.to_string())
}

/// Loads a stored private key: its signing half and its published half.
pub fn load_key(pem: &str, retired_at: Option<i64>) -> Result<(SigningKey, VerifyingKey), KeyError> {
    let private = RsaPrivateKey::from_pkcs8_pem(pem).map_err(KeyError::Decode)?;
    let public = RsaPublicKey::from(&private);
    let der = public.to_public_key_der().map_err(|e| KeyError::Encode(rsa::pkcs8::Error::PublicKey(e)))?;
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(der.as_bytes())[..20]);
    let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(KeyError::Jwt)?;
    let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(KeyError::Jwt)?;
    Ok((SigningKey { kid: kid.clone(), encoding }, VerifyingKey { kid, decoding, n, e, retired_at }))
}

/// The JSON Web Key Set document for these keys.
pub fn jwks(keys: &[VerifyingKey]) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| serde_json::json!({ "kid": key.kid, "alg": "RS256", "kty": "RSA", "use": "sig", "n": key.n, "e": key.e }))
        .collect();
    serde_json::json!({ "keys": keys })
}

/// Claims of an access token, as Cognito issues them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    #[serde(rename = "cognito:groups", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    pub iss: String,
    pub client_id: String,
    /// The sign-in the token belongs to (revoking it revokes the token). The claims below it
    /// marked `default` are what every Stratus token carries and some issuers' tokens do not
    /// (older pools, emulators): missing, they read as empty.
    #[serde(default)]
    pub origin_jti: String,
    #[serde(default)]
    pub event_id: String,
    pub token_use: String,
    #[serde(default)]
    pub scope: String,
    pub auth_time: i64,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub username: String,
}

/// Claims of an ID token: identity claims plus the user's attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    #[serde(rename = "cognito:groups", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    pub iss: String,
    #[serde(rename = "cognito:username")]
    pub username: String,
    pub origin_jti: String,
    pub aud: String,
    pub event_id: String,
    pub token_use: String,
    pub auth_time: i64,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Other attributes (`name`, `custom:*`, …).
    #[serde(flatten)]
    pub attributes: std::collections::BTreeMap<String, serde_json::Value>,
}

pub fn sign<T: Serialize>(key: &SigningKey, claims: &T) -> Result<String, KeyError> {
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::RS256) };
    jsonwebtoken::encode(&header, claims, &key.encoding).map_err(KeyError::Jwt)
}

/// Why a token was refused. Deliberately coarse: clients learn only that it is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not RS256")]
    Algorithm,
    #[error("the token carries key material or a key URL in its header")]
    EmbeddedKey,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not an access token")]
    WrongUse,
    #[error("the token was issued for another client")]
    WrongClient,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token has been revoked")]
    Revoked,
}

/// The header checks every verifier makes before looking at the signature: RS256 only, a key
/// id, and no key material or key location smuggled into the header.
pub fn check_header(token: &str) -> Result<String, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Algorithm);
    }
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some() {
        return Err(TokenError::EmbeddedKey);
    }
    header.kid.ok_or(TokenError::UnknownKey)
}

/// Verifies signature, issuer and lifetime (with [`LEEWAY_SECONDS`]) and decodes the claims.
/// Verifies an RS256 token's signature and issuer with jsonwebtoken, and its lifetime (`exp`,
/// `nbf`, with `LEEWAY_SECONDS` of skew) against `now` (epoch seconds, from the `Clock` port),
/// so time is the system's, not the library's.
pub fn verify<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    issuer: &str,
    now: i64,
) -> Result<T, TokenError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    // `aud` is checked by the caller: access tokens carry `client_id` instead.
    validation.validate_aud = false;
    let claims = match jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) {
        Ok(data) => data.claims,
        Err(error) => {
            return Err(match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                _ => TokenError::Invalid,
            });
        }
    };
    let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(i64::MAX);
    let expires = claims.get("exp").and_then(serde_json::Value::as_i64).ok_or(TokenError::Invalid)?;
    let not_before = claims.get("nbf").and_then(serde_json::Value::as_i64);
    if expires.saturating_add(leeway) <= now || not_before.is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
    {
        return Err(TokenError::Expired);
    }
    serde_json::from_value(claims).map_err(|_| TokenError::Invalid)
}

/// Access tokens already verified, so a client that sends the same token on every request pays
/// for the RSA signature check once (API Gateway caches authorizer results the same way).
/// Entries are found by the token's signature (hashing 342 bytes, not the whole token) and a hit
/// counts only if the whole token is byte-for-byte the one verified, so any alteration misses.
/// Expiry is checked again on every hit, and callers check revocation on every hit.
///
/// A read-mostly map behind an `RwLock` rather than a general cache: hits take a shared lock
/// and nothing else (a general-purpose cache records every read for its eviction policy, which
/// costs more than the lookup under load). Memory is bounded by emptying the map when it is
/// full, which only costs some RSA checks again.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: std::sync::RwLock<std::collections::HashMap<String, (String, std::sync::Arc<AccessClaims>)>>,
}

/// Tokens remembered at most; about 2 KB each.
const MAX_VERIFIED_TOKENS: usize = 50_000;

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    /// The claims of a token verified before, unless it has expired since.
    pub fn get(&self, token: &str, now_seconds: i64) -> Option<std::sync::Arc<AccessClaims>> {
        let signature = signature_of(token)?;
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (verified_token, claims) = entries.get(signature)?;
        let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or_default();
        (verified_token == token && claims.exp + leeway > now_seconds).then(|| claims.clone())
    }

    pub fn insert(&self, token: &str, claims: &AccessClaims) {
        let Some(signature) = signature_of(token) else { return };
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_VERIFIED_TOKENS {
            entries.clear();
        }
        entries.insert(signature.to_owned(), (token.to_owned(), std::sync::Arc::new(claims.clone())));
    }
}

/// The third segment of a JWS compact token, when it has exactly three and a signature.
fn signature_of(token: &str) -> Option<&str> {
    let mut segments = token.splitn(4, '.');
    let (_, _, signature) = (segments.next()?, segments.next()?, segments.next()?);
    (segments.next().is_none() && !signature.is_empty()).then_some(signature)
}

/// The `iss` claim of a token, read without verification: only to route the token to the
/// issuer that verifies it.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_slice(&json).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: "s".into(),
            groups: Vec::new(),
            iss: "i".into(),
            client_id: "c".into(),
            origin_jti: "o".into(),
            event_id: "e".into(),
            token_use: "access".into(),
            scope: "x".into(),
            auth_time: 0,
            exp,
            iat: 0,
            jti: "j".into(),
            username: "u".into(),
        }
    }

    #[test]
    fn the_cache_answers_only_for_the_exact_unexpired_token() {
        // (See also: the map is emptied, not grown, past its bound.)
        let cache = VerifiedTokens::default();
        cache.insert("header.payload.signature", &claims(1_000));
        assert!(cache.get("header.payload.signature", 900).is_some());
        assert!(cache.get("header.tampered.signature", 900).is_none(), "same signature, other payload");
        assert!(cache.get("header.payload.signature", 1_000 + 61).is_none(), "expired beyond the skew");
        assert!(cache.get("not-a-token", 0).is_none());
    }
}
