//! TOTP MFA (RFC 6238): a secret is associated, proven with a first code, then enabled; each
//! code's time step is used once.

use super::UserPool;
use crate::services::cognito::user_pool::error::{IdentityError, Invalid};
use crate::services::cognito::user_pool::store::{UserChange, UserRow};
use crate::services::cognito::user_pool::totp;

impl UserPool {
    pub async fn associate_software_token(&self, access_token: &str) -> Result<String, IdentityError> {
        let user = self.user_of_token(access_token)?;
        let secret = totp::new_secret();
        self.store.update_user(&user.sub, UserChange::TotpPending(secret.clone()), self.now()).await?;
        Ok(secret)
    }

    pub async fn verify_software_token(&self, access_token: &str, code: &str) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        let pending = user.totp_pending.as_deref().ok_or(IdentityError::SoftwareTokenNotAssociated)?;
        let step = totp::matching_step(pending, code, self.now_unsigned())
            .ok_or(IdentityError::SoftwareTokenMismatch)?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.store.update_user(&user.sub, UserChange::TotpVerified { step }, self.now()).await?;
        Ok(())
    }

    pub async fn set_mfa_preference(
        &self,
        access_token: &str,
        software_token_enabled: bool,
    ) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        if software_token_enabled && user.totp_secret.is_none() {
            return Err(IdentityError::InvalidParameter(Invalid::MfaNotVerified));
        }
        self.store.update_user(&user.sub, UserChange::MfaEnabled(software_token_enabled), self.now()).await?;
        Ok(())
    }

    /// Checks a TOTP code and records its time step so it cannot be used again.
    pub(super) async fn accept_totp(
        &self,
        user: &UserRow,
        secret: &str,
        code: &str,
    ) -> Result<(), IdentityError> {
        let step =
            totp::matching_step(secret, code, self.now_unsigned()).ok_or(IdentityError::CodeMismatch)?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if user.totp_last_step.is_some_and(|last| step <= last) {
            return Err(IdentityError::CodeMismatch);
        }
        if self.store.advance_totp_step(&user.sub, step).await? {
            Ok(())
        } else {
            Err(IdentityError::CodeMismatch)
        }
    }

    fn now_unsigned(&self) -> u64 {
        u64::try_from(self.now()).unwrap_or_default()
    }
}
