//! What a signed-in user does with their own account, by access token.

use std::collections::BTreeMap;

use super::attributes::SetBy;
use super::{UserPool, hash_password, verify_password};
use crate::services::cognito::user_pool::error::{Denied, IdentityError};
use crate::services::cognito::user_pool::model::{UserRecord, UserStatus};
use crate::services::cognito::user_pool::store::{Families, Revoke, UserChange};

impl UserPool {
    pub async fn get_user(&self, access_token: &str) -> Result<UserRecord, IdentityError> {
        let user = self.user_of_token(access_token)?;
        self.record(user)
    }

    pub async fn update_user_attributes(
        &self,
        access_token: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        let changes = self.validate_attributes(attributes, SetBy::User)?;
        let mut merged = user.attributes.clone();
        if changes.get("email").is_some_and(|email| Some(email) != user.attributes.get("email")) {
            // A new address is unverified until proven.
            merged.insert("email_verified".into(), "false".into());
        }
        merged.extend(changes);
        self.store.update_user(&user.sub, UserChange::Attributes(merged), self.now()).await?;
        Ok(())
    }

    pub async fn change_password(
        &self,
        access_token: &str,
        previous: &str,
        proposed: &str,
    ) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        let stored = user.password_hash.as_deref().unwrap_or(&self.dummy_hash);
        if !verify_password(previous, stored).await? {
            return Err(IdentityError::NotAuthorized(Denied::IncorrectCredentials));
        }
        self.check_password_policy(proposed)?;
        let change =
            UserChange::Password { hash: hash_password(proposed).await?, status: UserStatus::Confirmed };
        self.store.update_user(&user.sub, change, self.now()).await?;
        // As in Cognito, access tokens stay valid until they expire; GlobalSignOut ends them.
        self.revoke(Families::OfUser(user.sub.clone()), Revoke::RefreshTokens).await?;
        tracing::info!(pool = %self.name, sub = %user.sub, "password changed; refresh tokens revoked");
        Ok(())
    }

    pub async fn delete_user(&self, access_token: &str) -> Result<(), IdentityError> {
        let user = self.user_of_token(access_token)?;
        self.remove_user(&user.sub).await
    }
}
