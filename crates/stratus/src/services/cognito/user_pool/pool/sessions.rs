//! Token families: a sign-in starts a family of refresh tokens; each refresh rotates the token
//! and issues new access and ID tokens; presenting a rotated token again revokes the family (it
//! may have been stolen). Revoking a family can also stop its access tokens, which the
//! authorizer learns within a second ([`UserPool::is_revoked`]).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use super::{Revocations, UserPool, digest, random_token};
use crate::services::cognito::tokens::{self, AccessClaims, IdClaims, TokenError};
use crate::services::cognito::user_pool::error::{Denied, IdentityError};
use crate::services::cognito::user_pool::model::Tokens;
use crate::services::cognito::user_pool::store::{Families, NewRefreshToken, Revoke, UserKey, UserRow};

impl UserPool {
    /// REFRESH_TOKEN_AUTH: rotates the refresh token and issues new tokens from its family.
    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> Result<Tokens, IdentityError> {
        self.check_client(client_id)?;
        let denied = |why| IdentityError::NotAuthorized(why);
        let (hash, now) = (digest(refresh_token), self.now());
        let stored = self.store.refresh_token(&hash)?.ok_or(denied(Denied::InvalidRefreshToken))?;
        if stored.revoked_at.is_some() {
            return Err(denied(Denied::RefreshTokenRevoked));
        }
        if stored.used_at.is_some() {
            tracing::warn!(pool = %self.name, sub = %stored.sub, "a rotated refresh token was reused; revoking its family");
            self.revoke(Families::One(stored.family), Revoke::Everything).await?;
            return Err(denied(Denied::RefreshTokenRevoked));
        }
        if stored.expires_at <= now {
            return Err(denied(Denied::RefreshTokenExpired));
        }
        if stored.client_id != client_id {
            return Err(denied(Denied::InvalidRefreshToken));
        }
        let user = self.user(UserKey::Sub(&stored.sub))?.ok_or(denied(Denied::InvalidRefreshToken))?;
        if !user.enabled {
            return Err(denied(Denied::UserDisabled));
        }
        let next = random_token(48);
        let successor = self.refresh_token_row(&next, &user, client_id, &stored.family, stored.auth_time);
        if !self.store.rotate_refresh_token(hash, successor).await? {
            return Err(denied(Denied::RefreshTokenRevoked));
        }
        let mut tokens = self.issue(&user, client_id, &stored.family, stored.auth_time)?;
        tokens.refresh_token = Some(next);
        Ok(tokens)
    }

    /// Starts a refresh-token family (one sign-in) and issues its first tokens.
    pub(super) async fn start_family(
        &self,
        user: &UserRow,
        client_id: &str,
    ) -> Result<Tokens, IdentityError> {
        let (family, refresh, now) = (uuid::Uuid::new_v4().to_string(), random_token(48), self.now());
        let row = self.refresh_token_row(&refresh, user, client_id, &family, now);
        self.store.insert_refresh_token(row).await?;
        let mut tokens = self.issue(user, client_id, &family, now)?;
        tokens.refresh_token = Some(refresh);
        tracing::info!(pool = %self.name, sub = %user.sub, "user signed in");
        Ok(tokens)
    }

    fn refresh_token_row(
        &self,
        token: &str,
        user: &UserRow,
        client_id: &str,
        family: &str,
        auth_time: i64,
    ) -> NewRefreshToken {
        let now = self.now();
        NewRefreshToken {
            token_hash: digest(token),
            sub: user.sub.clone(),
            client_id: client_id.to_owned(),
            family: family.to_owned(),
            auth_time,
            created_at: now,
            expires_at: now.saturating_add(Self::seconds(self.config.refresh_token_validity)),
        }
    }

    /// Signs an access and an ID token for the user, in the family begun at `auth_time`.
    fn issue(
        &self,
        user: &UserRow,
        client_id: &str,
        family: &str,
        auth_time: i64,
    ) -> Result<Tokens, IdentityError> {
        let now = self.now();
        let groups = self.store.groups_of(&user.sub)?;
        let access_seconds = Self::seconds(self.config.access_token_validity);
        let id_seconds = Self::seconds(self.config.id_token_validity);
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
            exp: now.saturating_add(access_seconds),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            username: user.username.clone(),
        };
        let attributes: BTreeMap<String, serde_json::Value> = user
            .attributes
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "sub" | "email" | "email_verified"))
            .filter(|(name, _)| !name.starts_with("cognito:"))
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect();
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
            exp: now.saturating_add(id_seconds),
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
            expires_in: u64::try_from(access_seconds).unwrap_or(u64::MAX),
        })
    }

    /// Verifies one of this pool's access tokens: signature, issuer, lifetime, use, client and
    /// revocation.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims = match self.verified.get(token, self.now()) {
            Some(claims) => AccessClaims::clone(&claims),
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
        let key = self.verifying_key(token)?;
        let claims: AccessClaims = tokens::verify(token, &key, &self.issuer, self.now())?;
        if claims.token_use != "access" {
            return Err(TokenError::WrongUse);
        }
        if !self.has_client(&claims.client_id) {
            return Err(TokenError::WrongClient);
        }
        Ok(claims)
    }

    /// Verifies one of this pool's ID tokens for an identity pool: signature, issuer, lifetime,
    /// use, audience (one of `clients`, by id) and revocation of its sign-in — a user who signed
    /// out everywhere, was disabled or deleted has no valid ID token.
    pub fn verify_id_token(&self, token: &str, clients: &[String]) -> Result<IdClaims, TokenError> {
        let key = self.verifying_key(token)?;
        let claims: IdClaims = tokens::verify(token, &key, &self.issuer, self.now())?;
        if claims.token_use != "id" {
            return Err(TokenError::WrongUse);
        }
        if !self.has_client(&claims.aud) || !clients.contains(&claims.aud) {
            return Err(TokenError::WrongClient);
        }
        if self.is_revoked(&claims.origin_jti) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// The published key a token names in its header.
    fn verifying_key(&self, token: &str) -> Result<jsonwebtoken::DecodingKey, TokenError> {
        let kid = tokens::check_header(token)?;
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.verifying
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| key.decoding.clone())
            .ok_or(TokenError::UnknownKey)
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
        let lifetime = Self::seconds(self.config.access_token_validity)
            .saturating_add(i64::try_from(tokens::LEEWAY_SECONDS).unwrap_or_default());
        let loaded: Result<HashSet<String>, _> =
            self.store.access_revoked_since(self.now().saturating_sub(lifetime));
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

    /// Revokes `families` and makes this process see it at once.
    pub(super) async fn revoke(&self, families: Families, scope: Revoke) -> Result<(), IdentityError> {
        self.store.revoke(families, scope, self.now()).await?;
        self.revocations.write().unwrap_or_else(std::sync::PoisonError::into_inner).loaded_at = None;
        Ok(())
    }

    /// The user an access token belongs to, for operations that take one.
    pub(super) fn user_of_token(&self, access_token: &str) -> Result<UserRow, IdentityError> {
        let claims = self.verify_access_token(access_token).map_err(|error| {
            IdentityError::NotAuthorized(match error {
                TokenError::Expired => Denied::AccessTokenExpired,
                TokenError::Revoked => Denied::AccessTokenRevoked,
                _ => Denied::InvalidAccessToken,
            })
        })?;
        let user = self
            .user(UserKey::Sub(&claims.sub))?
            .ok_or(IdentityError::NotAuthorized(Denied::InvalidAccessToken))?;
        if !user.enabled {
            return Err(IdentityError::NotAuthorized(Denied::UserDisabled));
        }
        Ok(user)
    }

    /// Ends every sign-in of the user: refresh tokens and the access tokens issued from them.
    pub async fn global_sign_out(&self, access_token: &str) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        self.revoke(Families::OfUser(user.sub.clone()), Revoke::Everything).await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "global sign-out");
        Ok(())
    }

    /// RevokeToken: revokes the refresh token's family and the access tokens issued from it.
    pub async fn revoke_token(&self, client_id: &str, refresh_token: &str) -> Result<(), IdentityError> {
        self.check_client(client_id)?;
        match self.store.refresh_token(&digest(refresh_token))? {
            Some(stored) if stored.client_id == client_id => {
                self.revoke(Families::One(stored.family), Revoke::Everything).await
            }
            Some(_) => Err(IdentityError::NotAuthorized(Denied::TokenOfAnotherClient)),
            // Revoking an unknown token succeeds, as in Cognito.
            None => Ok(()),
        }
    }
}
