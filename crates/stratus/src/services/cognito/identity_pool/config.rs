//! `[identity_pools.<name>]`: the identity pools of the stage, each trusting one user pool's app
//! clients and naming the roles its identities' credentials carry.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};
use crate::services::cognito::credentials::{MAX_DURATION, MIN_DURATION};

/// Identity pools by name; a pool `default`, trusting the default user pool's `app` client,
/// always exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdentityPoolsConfig {
    pub pools: BTreeMap<String, IdentityPoolConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityPoolConfig {
    /// `<region>:<GUID>`; generated on first start and kept when unset.
    pub id: Option<String>,
    /// The user pool (by name) whose ID tokens sign identities in.
    pub user_pool: String,
    /// Its app clients (by name) whose ID tokens are accepted.
    pub clients: Vec<String>,
    /// Whether guests (no login) get identities and credentials. Off, as in a new AWS pool.
    pub allow_unauthenticated: bool,
    /// The role of signed-in identities' credentials.
    pub authenticated_role: String,
    /// The role of guests' credentials.
    pub unauthenticated_role: String,
    /// How long credentials last (15 min – 12 h).
    #[serde(with = "humantime_serde")]
    pub credentials_validity: Duration,
}

impl Default for IdentityPoolConfig {
    fn default() -> Self {
        Self {
            id: None,
            user_pool: "default".into(),
            clients: vec!["app".into()],
            allow_unauthenticated: false,
            authenticated_role: "arn:aws:iam::000000000000:role/Cognito_DefaultAuthenticated".into(),
            unauthenticated_role: "arn:aws:iam::000000000000:role/Cognito_DefaultUnauthenticated".into(),
            credentials_validity: Duration::from_secs(3600),
        }
    }
}

impl Default for IdentityPoolsConfig {
    fn default() -> Self {
        Self { pools: BTreeMap::from([("default".to_owned(), IdentityPoolConfig::default())]) }
    }
}

impl IdentityPoolsConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (name, pool) in &self.pools {
            pool.validate(name)?;
        }
        Ok(())
    }
}

impl IdentityPoolConfig {
    fn validate(&self, name: &str) -> Result<(), Invalid> {
        if let Some(id) = &self.id
            && !is_pool_id(id)
        {
            return invalid(
                "identity_pools.<name>.id",
                format!("`{id}` of identity pool `{name}` must look like <region>:<GUID>"),
            );
        }
        if self.clients.is_empty() {
            return invalid(
                "identity_pools.<name>.clients",
                format!("identity pool `{name}` must trust at least one app client"),
            );
        }
        let roles = [
            ("identity_pools.<name>.authenticated_role", &self.authenticated_role),
            ("identity_pools.<name>.unauthenticated_role", &self.unauthenticated_role),
        ];
        for (key, role) in roles {
            if !is_role_arn(role) {
                return invalid(
                    key,
                    format!(
                        "`{role}` of identity pool `{name}` must be a role ARN (arn:aws:iam::<account>:role/<name>)"
                    ),
                );
            }
        }
        if !(MIN_DURATION..=MAX_DURATION).contains(&self.credentials_validity) {
            return invalid(
                "identity_pools.<name>.credentials_validity",
                format!("of identity pool `{name}` must be between 15m and 12h"),
            );
        }
        Ok(())
    }
}

/// `<region>:<GUID>`, as identity pool and identity ids are.
pub(super) fn is_pool_id(id: &str) -> bool {
    id.split_once(':').is_some_and(|(region, guid)| {
        !region.is_empty()
            && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && uuid::Uuid::parse_str(guid).is_ok()
    })
}

pub(super) fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", "aws", "iam", "", account, resource]
        if !account.is_empty() && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}
