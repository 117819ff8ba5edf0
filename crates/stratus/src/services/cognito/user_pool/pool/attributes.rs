//! What the pool accepts as a username, an attribute or a password.

use std::collections::BTreeMap;

use super::UserPool;
use crate::services::cognito::user_pool::error::{IdentityError, Invalid};
use crate::services::cognito::user_pool::password;

const MAX_ATTRIBUTE_VALUE: usize = 2048;
const STANDARD_ATTRIBUTES: &[&str] = &[
    "address",
    "birthdate",
    "email",
    "email_verified",
    "family_name",
    "gender",
    "given_name",
    "locale",
    "middle_name",
    "name",
    "nickname",
    "phone_number",
    "phone_number_verified",
    "picture",
    "preferred_username",
    "profile",
    "zoneinfo",
    "website",
];

/// Who is setting attributes: only an operator may set the `*_verified` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SetBy {
    User,
    Operator,
}

impl UserPool {
    /// The attributes if the schema allows them, emails normalised (trimmed, lower case).
    pub(super) fn validate_attributes(
        &self,
        attributes: BTreeMap<String, String>,
        by: SetBy,
    ) -> Result<BTreeMap<String, String>, IdentityError> {
        let mut checked = BTreeMap::new();
        for (name, value) in attributes {
            let custom =
                name.strip_prefix("custom:").is_some_and(|rest| !rest.is_empty() && rest.len() <= 20);
            if !(custom || STANDARD_ATTRIBUTES.contains(&name.as_str())) || name == "sub" {
                return Err(IdentityError::InvalidParameter(Invalid::UnknownAttribute(name)));
            }
            if name.ends_with("_verified") && by == SetBy::User {
                return Err(IdentityError::InvalidParameter(Invalid::ReadOnlyAttribute(name)));
            }
            if value.len() > MAX_ATTRIBUTE_VALUE {
                return Err(IdentityError::InvalidParameter(Invalid::AttributeTooLong {
                    name,
                    max: MAX_ATTRIBUTE_VALUE,
                }));
            }
            let value = if name == "email" {
                let address: lettre::Address =
                    value.trim().parse().map_err(|_| IdentityError::InvalidParameter(Invalid::Email))?;
                address.to_string().to_lowercase()
            } else {
                value
            };
            checked.insert(name, value);
        }
        Ok(checked)
    }

    pub(super) fn check_password_policy(&self, password: &str) -> Result<(), IdentityError> {
        password::check_policy(&self.config.password_policy, password).map_err(IdentityError::InvalidPassword)
    }
}

pub(super) fn validate_username(username: &str) -> Result<(), IdentityError> {
    let valid = !username.is_empty()
        && username.chars().count() <= 128
        && !username.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(()) } else { Err(IdentityError::InvalidParameter(Invalid::Username)) }
}
