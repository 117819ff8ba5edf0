//! A built-in pool as one of the authorizer's verifiers.

use async_trait::async_trait;

use super::UserPool;
use crate::services::cognito::authorizer::AccessTokenVerifier;
use crate::services::cognito::tokens::{AccessClaims, TokenError};

/// A built-in pool verifies in-process, against its own keys and revocations.
#[async_trait]
impl AccessTokenVerifier for UserPool {
    fn issuer(&self) -> &str {
        UserPool::issuer(self)
    }

    async fn verify(&self, token: &str, _now: i64) -> Result<AccessClaims, TokenError> {
        // The pool checks lifetimes against its own clock, the stage's.
        self.verify_access_token(token)
    }

    fn is_revoked(&self, family: &str) -> bool {
        UserPool::is_revoked(self, family)
    }
}
