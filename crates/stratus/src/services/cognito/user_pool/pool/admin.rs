//! What an operator does (the Admin* operations, groups, listing users) and the CLI with them.

use super::attributes::{SetBy, validate_username};
use super::{UserPool, hash_password};
use crate::services::cognito::user_pool::error::{IdentityError, Invalid};
use crate::services::cognito::user_pool::filter::parse_filter;
use crate::services::cognito::user_pool::model::{AdminCreateUser, Group, UserRecord, UserStatus};
use crate::services::cognito::user_pool::store::{Families, NewUser, Revoke, UserChange, UserRow};

impl UserPool {
    /// Creates a user who must choose their own password at first sign-in.
    pub async fn admin_create_user(&self, request: AdminCreateUser) -> Result<UserRecord, IdentityError> {
        validate_username(&request.username)?;
        let attributes = self.validate_attributes(request.attributes, SetBy::Operator)?;
        let password_hash = match &request.temporary_password {
            Some(password) => {
                self.check_password_policy(password)?;
                Some(hash_password(password).await?)
            }
            None => None,
        };
        let user = NewUser {
            sub: uuid::Uuid::new_v4().to_string(),
            username: request.username.clone(),
            attributes,
            password_hash,
            status: UserStatus::ForceChangePassword,
        };
        let sub = user.sub.clone();
        if !self.store.insert_user(user, None, self.now()).await? {
            return Err(IdentityError::UsernameExists);
        }
        tracing::info!(pool = %self.name, sub = %sub, "user created by an operator");
        self.admin_get_user(&request.username)
    }

    /// Sets a password; `permanent` confirms the user, otherwise they must change it at sign-in.
    pub async fn admin_set_user_password(
        &self,
        username: &str,
        password: &str,
        permanent: bool,
    ) -> Result<(), IdentityError> {
        let user = self.existing(username)?;
        self.check_password_policy(password)?;
        let status = if permanent { UserStatus::Confirmed } else { UserStatus::ForceChangePassword };
        let change = UserChange::Password { hash: hash_password(password).await?, status };
        self.store.update_user(&user.sub, change, self.now()).await?;
        self.revoke(Families::OfUser(user.sub), Revoke::Everything).await
    }

    pub fn admin_get_user(&self, username: &str) -> Result<UserRecord, IdentityError> {
        self.record(self.existing(username)?)
    }

    pub async fn admin_delete_user(&self, username: &str) -> Result<(), IdentityError> {
        let user = self.existing(username)?;
        self.remove_user(&user.sub).await
    }

    /// Disabling a user also ends their sign-ins, access tokens included.
    pub async fn admin_set_enabled(&self, username: &str, enabled: bool) -> Result<(), IdentityError> {
        let user = self.existing(username)?;
        self.store.update_user(&user.sub, UserChange::Enabled(enabled), self.now()).await?;
        if !enabled {
            self.revoke(Families::OfUser(user.sub), Revoke::Everything).await?;
        }
        Ok(())
    }

    pub async fn create_group(
        &self,
        name: &str,
        description: Option<String>,
        precedence: Option<i64>,
    ) -> Result<Group, IdentityError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_whitespace) {
            return Err(IdentityError::InvalidParameter(Invalid::GroupName));
        }
        let now = self.now();
        let group =
            Group { name: name.to_owned(), description, precedence, created_at: now, updated_at: now };
        if !self.store.insert_group(group.clone()).await? {
            return Err(IdentityError::GroupExists(name.to_owned()));
        }
        Ok(group)
    }

    pub fn groups(&self) -> Result<Vec<Group>, IdentityError> {
        Ok(self.store.groups()?)
    }

    pub async fn set_membership(
        &self,
        username: &str,
        group: &str,
        member: bool,
    ) -> Result<(), IdentityError> {
        let user = self.existing(username)?;
        if !self.groups()?.iter().any(|existing| existing.name == group) {
            return Err(IdentityError::GroupNotFound);
        }
        Ok(self.store.set_membership(group, &user.sub, member).await?)
    }

    /// Users in username order, filtered by Cognito's filter syntax (`email = "a@b.c"`,
    /// `username ^= "ad"`, also on `sub`, `status`, `name`, …); a page of up to `limit` (≤ 60)
    /// after `after` (a username).
    pub fn list_users(
        &self,
        filter: Option<&str>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<UserRecord>, Option<String>), IdentityError> {
        let filter = filter.filter(|text| !text.trim().is_empty()).map(parse_filter).transpose()?;
        let limit = limit.clamp(1, 60);
        let mut page = Vec::new();
        let mut next = None;
        for user in self.store.users_after(after.unwrap_or_default())? {
            let record = self.record(user)?;
            if filter.as_ref().is_none_or(|filter| filter.matches(&record)) {
                if page.len() == limit {
                    next = page.last().map(|last: &UserRecord| last.username.clone());
                    break;
                }
                page.push(record);
            }
        }
        Ok((page, next))
    }

    fn existing(&self, username: &str) -> Result<UserRow, IdentityError> {
        self.user_named(username)?.ok_or(IdentityError::UserNotFound)
    }

    /// Deletes a user after ending their sign-ins.
    pub(super) async fn remove_user(&self, sub: &str) -> Result<(), IdentityError> {
        self.revoke(Families::OfUser(sub.to_owned()), Revoke::Everything).await?;
        self.store.delete_user(sub).await?;
        tracing::info!(pool = %self.name, sub = %sub, "user deleted");
        Ok(())
    }
}
