//! Sign-up, and the codes sent by email: confirming the address, resending, and resetting a
//! forgotten password. Answers for unknown users look like real ones (Cognito's
//! `PreventUserExistenceErrors`).

use std::collections::BTreeMap;

use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use super::attributes::{SetBy, validate_username};
use super::{UserPool, digest, hash_password};
use crate::services::cognito::user_pool::error::{Denied, IdentityError, Invalid};
use crate::services::cognito::user_pool::mailing::{self, CodeEmail};
use crate::services::cognito::user_pool::model::{CodeDelivery, CodePurpose, UserStatus};
use crate::services::cognito::user_pool::store::{
    CodeVerdict, Families, NewUser, Revoke, UserChange, UserRow,
};

/// Wrong guesses that burn a code.
const CODE_ATTEMPTS: i64 = 5;

fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000))
}

fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            format!("{}***@{}***", local.chars().next().unwrap_or('*'), domain.chars().next().unwrap_or('*'))
        }
        None => "***".into(),
    }
}

/// What a code request for an unknown user answers: plausible and stable for the username, and
/// unrelated to any real address.
fn decoy_delivery(username: &str) -> CodeDelivery {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let hash = Sha256::digest(username.to_lowercase().as_bytes());
    let (local, domain) =
        (letters[usize::from(hash[0]) % 26] as char, letters[usize::from(hash[1]) % 26] as char);
    CodeDelivery { destination: format!("{local}***@{domain}***"), medium: "EMAIL", attribute: "email" }
}

impl UserPool {
    pub async fn sign_up(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(String, CodeDelivery), IdentityError> {
        self.check_client(client_id)?;
        validate_username(username)?;
        let attributes = self.validate_attributes(attributes, SetBy::User)?;
        let email = attributes
            .get("email")
            .cloned()
            .ok_or(IdentityError::InvalidParameter(Invalid::EmailRequired))?;
        self.check_password_policy(password)?;
        let user = NewUser {
            sub: uuid::Uuid::new_v4().to_string(),
            username: username.to_owned(),
            attributes,
            password_hash: Some(hash_password(password).await?),
            status: UserStatus::Unconfirmed,
        };
        let sub = user.sub.clone();
        let code = new_code();
        let purpose = CodePurpose::VerifyEmail;
        if !self.store.insert_user(user, Some((purpose, digest(&code))), self.now()).await? {
            return Err(IdentityError::UsernameExists);
        }
        let delivery = self.send_code(&sub, username, &email, &code, purpose).await?;
        tracing::info!(pool = %self.name, sub = %sub, "user signed up");
        Ok((sub, delivery))
    }

    pub async fn confirm_sign_up(
        &self,
        client_id: &str,
        username: &str,
        code: &str,
    ) -> Result<(), IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_named(username)?.ok_or(IdentityError::CodeMismatch)?;
        if user.status == UserStatus::Confirmed {
            return Err(IdentityError::NotAuthorized(Denied::CannotConfirm(user.status)));
        }
        let mut attributes = user.attributes.clone();
        attributes.insert("email_verified".into(), "true".into());
        let confirmed = UserChange::Confirmed { attributes };
        self.redeem_code(&user, CodePurpose::VerifyEmail, code, confirmed).await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "user confirmed");
        Ok(())
    }

    pub async fn resend_confirmation_code(
        &self,
        client_id: &str,
        username: &str,
    ) -> Result<CodeDelivery, IdentityError> {
        self.check_client(client_id)?;
        let user = self.user_named(username)?.filter(|user| user.status == UserStatus::Unconfirmed);
        let Some(user) = user else {
            // Unknown and already-confirmed users get the same answer as a real resend.
            return Ok(decoy_delivery(username));
        };
        self.issue_code(&user, CodePurpose::VerifyEmail).await
    }

    /// Always "succeeds", so that it does not reveal whether the user exists.
    pub async fn forgot_password(
        &self,
        client_id: &str,
        username: &str,
    ) -> Result<CodeDelivery, IdentityError> {
        self.check_client(client_id)?;
        let Some(user) = self.user_named(username)?.filter(|user| user.enabled) else {
            return Ok(decoy_delivery(username));
        };
        self.issue_code(&user, CodePurpose::ResetPassword).await
    }

    pub async fn confirm_forgot_password(
        &self,
        client_id: &str,
        username: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), IdentityError> {
        self.check_client(client_id)?;
        self.check_password_policy(new_password)?;
        let user = self.user_named(username)?.ok_or(IdentityError::CodeMismatch)?;
        let reset =
            UserChange::Password { hash: hash_password(new_password).await?, status: UserStatus::Confirmed };
        self.redeem_code(&user, CodePurpose::ResetPassword, code, reset).await?;
        self.revoke(Families::OfUser(user.sub.clone()), Revoke::Everything).await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "password reset; sessions revoked");
        Ok(())
    }

    /// Applies `then` if `code` is the user's code for `purpose`.
    async fn redeem_code(
        &self,
        user: &UserRow,
        purpose: CodePurpose,
        code: &str,
        then: UserChange,
    ) -> Result<(), IdentityError> {
        let verdict =
            self.store.redeem_code(&user.sub, purpose, digest(code), CODE_ATTEMPTS, then, self.now()).await?;
        match verdict {
            CodeVerdict::Accepted => Ok(()),
            CodeVerdict::Mismatch => Err(IdentityError::CodeMismatch),
            CodeVerdict::Expired => Err(IdentityError::ExpiredCode),
            CodeVerdict::AttemptsExhausted => Err(IdentityError::CodeAttemptsExceeded),
        }
    }

    /// Replaces the user's code for `purpose` with a fresh one and mails it.
    async fn issue_code(&self, user: &UserRow, purpose: CodePurpose) -> Result<CodeDelivery, IdentityError> {
        let email =
            user.attributes.get("email").cloned().ok_or(IdentityError::InvalidParameter(Invalid::NoEmail))?;
        let code = new_code();
        self.store.put_code(&user.sub, purpose, digest(&code), self.now()).await?;
        self.send_code(&user.sub, &user.username, &email, &code, purpose).await
    }

    async fn send_code(
        &self,
        sub: &str,
        username: &str,
        email: &str,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<CodeDelivery, IdentityError> {
        let kind = match purpose {
            CodePurpose::VerifyEmail => "verify",
            CodePurpose::ResetPassword => "reset",
        };
        let message = mailing::render(&CodeEmail {
            idempotency_key: format!("identity/{}/{kind}/{sub}/{}", self.id, &digest(code)[..16]),
            to: email,
            username,
            code,
            pool_name: &self.config.email_subject_prefix,
            purpose,
        })?;
        self.mailer.send(&message).await?;
        Ok(CodeDelivery { destination: mask_email(email), medium: "EMAIL", attribute: "email" })
    }
}
