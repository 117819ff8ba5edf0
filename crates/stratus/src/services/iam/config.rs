//! `[iam]`: the roles temporary credentials carry, each with its policies as JSON files. The
//! identity pools' default roles are built in: the authenticated one holds each user to their
//! own folder of the `user-files` bucket (AWS's Cognito example), the guest one allows nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IamConfig {
    /// The account in role ARNs (`arn:aws:iam::<account>:role/<name>`).
    #[serde(deserialize_with = "account_id")]
    pub account: String,
    /// Roles by name, beyond the built-in ones (or replacing them).
    pub roles: BTreeMap<String, RoleConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Policy documents (JSON, as AWS writes them) whose statements the role has.
    pub policy_files: Vec<PathBuf>,
}

/// An account id as text, or as the number an environment variable of digits reads as (its
/// leading zeros restored).
fn account_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Account {
        Text(String),
        Number(u64),
    }
    Ok(match Account::deserialize(deserializer)? {
        Account::Text(text) => text,
        Account::Number(number) => format!("{number:012}"),
    })
}

impl Default for IamConfig {
    fn default() -> Self {
        Self { account: "000000000000".into(), roles: BTreeMap::new() }
    }
}

impl IamConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.account.len() != 12 || !self.account.bytes().all(|byte| byte.is_ascii_digit()) {
            return invalid("iam.account", "must be 12 digits");
        }
        if let Some(name) = self.roles.keys().find(|name| {
            name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        }) {
            return invalid(
                "iam.roles.<name>",
                format!("`{name}` is not a role name (letters, digits, +=,.@-_)"),
            );
        }
        Ok(())
    }
}
