//! Sign-in (`USER_PASSWORD_AUTH`) and its challenges: a new password for a temporary one, a
//! TOTP code for MFA. A challenge is a session of its own, stored by digest, valid three
//! minutes and for three answers.

use super::{UserPool, digest, hash_password, random_token, verify_password};
use crate::services::cognito::user_pool::error::{Denied, IdentityError};
use crate::services::cognito::user_pool::model::{AuthOutcome, Challenge, Tokens, UserStatus};
use crate::services::cognito::user_pool::store::{ChallengeSession, UserChange, UserKey, UserRow};

const SESSION_VALIDITY: i64 = 180;
const SESSION_ATTEMPTS: i64 = 3;

impl UserPool {
    /// USER_PASSWORD_AUTH. Unknown users and wrong passwords are indistinguishable, in answer
    /// and in time (a dummy hash is verified for unknown users).
    pub async fn password_auth(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<AuthOutcome, IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_named(username)?;
        let stored = user.as_ref().and_then(|user| user.password_hash.as_deref()).unwrap_or(&self.dummy_hash);
        let password_ok = verify_password(password, stored).await?
            && user.as_ref().is_some_and(|user| user.password_hash.is_some());
        let Some(user) = user.filter(|_| password_ok) else {
            return Err(IdentityError::NotAuthorized(Denied::IncorrectCredentials));
        };
        if !user.enabled {
            return Err(IdentityError::NotAuthorized(Denied::UserDisabled));
        }
        match user.status {
            UserStatus::Unconfirmed => return Err(IdentityError::UserNotConfirmed),
            UserStatus::ResetRequired => return Err(IdentityError::PasswordResetRequired),
            UserStatus::ForceChangePassword => {
                return self.challenge(&user, client_id, Challenge::NewPasswordRequired).await;
            }
            UserStatus::Confirmed => {}
        }
        self.signed_in(&user, client_id).await
    }

    /// RespondToAuthChallenge with SOFTWARE_TOKEN_MFA.
    pub async fn respond_mfa(
        &self,
        client_id: &str,
        session: &str,
        username: &str,
        code: &str,
    ) -> Result<Tokens, IdentityError> {
        self.check_client(client_id)?;
        let user = self.use_session(client_id, session, Challenge::SoftwareTokenMfa, username).await?;
        let secret = user.totp_secret.as_deref().ok_or(IdentityError::CodeMismatch)?;
        self.accept_totp(&user, secret, code).await?;
        self.store.delete_session(digest(session)).await?;
        self.start_family(&user, client_id).await
    }

    /// RespondToAuthChallenge with NEW_PASSWORD_REQUIRED.
    pub async fn respond_new_password(
        &self,
        client_id: &str,
        session: &str,
        username: &str,
        new_password: &str,
    ) -> Result<AuthOutcome, IdentityError> {
        self.check_client(client_id)?;
        let user = self.use_session(client_id, session, Challenge::NewPasswordRequired, username).await?;
        self.check_password_policy(new_password)?;
        let change =
            UserChange::Password { hash: hash_password(new_password).await?, status: UserStatus::Confirmed };
        self.store.update_user(&user.sub, change, self.now()).await?;
        self.store.delete_session(digest(session)).await?;
        let user = self.user(UserKey::Sub(&user.sub))?.ok_or(IdentityError::UserNotFound)?;
        self.signed_in(&user, client_id).await
    }

    /// A confirmed user has given their password: tokens, or the MFA challenge first.
    async fn signed_in(&self, user: &UserRow, client_id: &str) -> Result<AuthOutcome, IdentityError> {
        if user.totp_enabled {
            return self.challenge(user, client_id, Challenge::SoftwareTokenMfa).await;
        }
        Ok(AuthOutcome::Authenticated(self.start_family(user, client_id).await?))
    }

    async fn challenge(
        &self,
        user: &UserRow,
        client_id: &str,
        challenge: Challenge,
    ) -> Result<AuthOutcome, IdentityError> {
        let session = random_token(48);
        let stored = ChallengeSession {
            sub: user.sub.clone(),
            client_id: client_id.to_owned(),
            challenge,
            expires_at: self.now() + SESSION_VALIDITY,
            attempts: 0,
        };
        self.store.insert_session(digest(&session), stored).await?;
        Ok(AuthOutcome::Challenge { challenge, session, username: user.username.clone() })
    }

    /// Takes one attempt of a challenge session; returns the user it belongs to.
    async fn use_session(
        &self,
        client_id: &str,
        session: &str,
        challenge: Challenge,
        username: &str,
    ) -> Result<UserRow, IdentityError> {
        let invalid = || IdentityError::NotAuthorized(Denied::InvalidSession);
        let hash = digest(session);
        let stored = self.store.session(&hash)?.ok_or_else(invalid)?;
        if stored.client_id != client_id
            || stored.challenge != challenge
            || stored.expires_at < self.now()
            || stored.attempts >= SESSION_ATTEMPTS
        {
            return Err(invalid());
        }
        self.store.count_session_attempt(hash).await?;
        let user = self.user(UserKey::Sub(&stored.sub))?.ok_or_else(invalid)?;
        if user.username.to_lowercase() != username.to_lowercase() {
            return Err(invalid());
        }
        Ok(user)
    }
}
