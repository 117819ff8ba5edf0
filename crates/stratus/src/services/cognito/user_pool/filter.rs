//! Cognito's ListUsers filter syntax: `attribute = "value"` or `attribute ^= "prefix"`.

use super::model::UserRecord;
use super::{IdentityError, Invalid};

/// A parsed ListUsers filter: `attribute = "value"` or `attribute ^= "prefix"`.
pub(super) struct UserFilter {
    attribute: String,
    prefix: bool,
    value: String,
}

impl UserFilter {
    pub(super) fn matches(&self, user: &UserRecord) -> bool {
        let actual = match self.attribute.as_str() {
            "username" => Some(user.username.as_str()),
            "status" | "cognito:user_status" => Some(user.status.as_str()),
            "sub" => Some(user.sub.as_str()),
            name => user.attributes.get(name).map(String::as_str),
        };
        let Some(actual) = actual else { return false };
        let (actual, expected) = (actual.to_lowercase(), self.value.to_lowercase());
        if self.prefix { actual.starts_with(&expected) } else { actual == expected }
    }
}

pub(super) fn parse_filter(text: &str) -> Result<UserFilter, IdentityError> {
    let invalid = || IdentityError::InvalidParameter(Invalid::Filter(text.to_owned()));
    let (attribute, prefix, rest) = if let Some((attribute, rest)) = text.split_once("^=") {
        (attribute, true, rest)
    } else if let Some((attribute, rest)) = text.split_once('=') {
        (attribute, false, rest)
    } else {
        return Err(invalid());
    };
    let attribute = attribute.trim();
    let value =
        rest.trim().strip_prefix('"').and_then(|value| value.strip_suffix('"')).ok_or_else(invalid)?;
    let searchable = [
        "username",
        "email",
        "phone_number",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "cognito:user_status",
        "status",
        "sub",
    ];
    if !searchable.contains(&attribute) {
        return Err(invalid());
    }
    Ok(UserFilter { attribute: attribute.to_owned(), prefix, value: value.to_owned() })
}
