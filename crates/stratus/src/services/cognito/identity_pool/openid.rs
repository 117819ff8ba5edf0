//! The identity pools' own OpenID Connect tokens (`GetOpenIdToken`), what the classic flow hands
//! to STS `AssumeRoleWithWebIdentity`: `sub` is the identity id, `aud` the identity pool id,
//! `amr` says how the identity signed in. One RS256 key for the stage, made on first start and
//! published at `<issuer>/.well-known/jwks.json`. A token of a signed-in identity also names the
//! user-pool sign-in it came from, so credentials obtained with it end with that sign-in.

use std::sync::Arc;

use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use crate::infra::sqlite::{Database, DbError};
use crate::services::cognito::tokens::{self, KeyError, SigningKey, TokenError, VerifyingKey};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity_pool_keys (kid TEXT PRIMARY KEY, private_pem TEXT NOT NULL, created_at INTEGER NOT NULL);
";

/// How long a token from `GetOpenIdToken` lasts (AWS: 10 minutes).
pub(super) const VALIDITY_SECONDS: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIdClaims {
    /// The identity id.
    pub sub: String,
    /// The identity pool id.
    pub aud: String,
    /// `authenticated` and the provider, or `unauthenticated`.
    pub amr: Vec<String>,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    /// The user-pool issuer and sign-in (`origin_jti`) of a signed-in identity.
    #[serde(rename = "stratus:sign_in_issuer", default, skip_serializing_if = "Option::is_none")]
    pub sign_in_issuer: Option<String>,
    #[serde(rename = "stratus:sign_in", default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<String>,
}

/// Signs and verifies the identity pools' tokens.
pub struct OpenIdIssuer {
    issuer: String,
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for OpenIdIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenIdIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenIdError {
    #[error(transparent)]
    Storage(#[from] DbError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl OpenIdIssuer {
    /// The issuer at `issuer` (`<public URL>/cognito-identity`), with the stage's key.
    pub(super) fn open(db: &Arc<Database>, issuer: String, now: i64) -> Result<Self, OpenIdError> {
        db.migrate(SCHEMA)?;
        let pem = db.write_blocking(|transaction| {
            let stored: Option<String> = transaction
                .query_row(
                    "SELECT private_pem FROM identity_pool_keys ORDER BY created_at DESC LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()
                .map_err(DbError::from)?;
            if let Some(pem) = stored {
                return Ok::<_, OpenIdError>(pem);
            }
            let pem = tokens::generate_private_key()?;
            let (signing, _) = tokens::load_key(&pem, None)?;
            transaction
                .execute(
                    "INSERT INTO identity_pool_keys (kid, private_pem, created_at) VALUES (?1, ?2, ?3)",
                    params![signing.kid, pem, now],
                )
                .map_err(DbError::from)?;
            Ok(pem)
        })?;
        let (signing, verifying) = tokens::load_key(&pem, None)?;
        Ok(Self { issuer, signing, verifying })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn jwks(&self) -> serde_json::Value {
        tokens::jwks(std::slice::from_ref(&self.verifying))
    }

    pub(super) fn sign(&self, claims: &OpenIdClaims) -> Result<String, KeyError> {
        tokens::sign(&self.signing, claims)
    }

    /// Verifies signature, issuer and lifetime; the audience is the caller's to check.
    pub fn verify(&self, token: &str, now: i64) -> Result<OpenIdClaims, TokenError> {
        let kid = tokens::check_header(token)?;
        if kid != self.verifying.kid {
            return Err(TokenError::UnknownKey);
        }
        tokens::verify(token, &self.verifying.decoding, &self.issuer, now)
    }
}
