//! `[identity]`: the user pools and their app clients, operator credentials, attempt limits,
//! and the remote issuers whose tokens the API accepts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, Secret, invalid};
use crate::services::cognito::authorizer::RemoteIssuer;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// User pools by name; a pool `default` with a client `app` always exists.
    pub pools: BTreeMap<String, PoolConfig>,
    /// The access key id operators sign Admin* requests with (SigV4).
    pub operator_access_key_id: String,
    /// Its secret; when unset, one is generated on first start and kept in
    /// `<stage dir>/identity/operator-credentials` (readable by the owner only).
    pub operator_secret_access_key: Option<Secret>,
    /// Sign-in attempts allowed per username per minute (and as a burst).
    pub sign_in_per_user_per_minute: u32,
    /// Requests to the identity endpoint allowed per client address per minute.
    pub requests_per_address_per_minute: u32,
    /// Other OpenID Connect issuers whose access tokens the API accepts (e.g. a real Cognito
    /// pool).
    pub issuers: Vec<RemoteIssuer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// `<region>_<9 alphanumerics>`; generated on first start and kept when unset.
    pub id: Option<String>,
    /// App clients by name.
    pub clients: BTreeMap<String, ClientConfig>,
    pub password_policy: PasswordPolicy,
    #[serde(with = "humantime_serde")]
    pub access_token_validity: Duration,
    #[serde(with = "humantime_serde")]
    pub id_token_validity: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_token_validity: Duration,
    /// Sender name in verification and reset emails.
    pub email_subject_prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// 26 lowercase alphanumerics; generated on first start and kept when unset.
    pub id: Option<String>,
}

/// Cognito's password policy; the defaults are Cognito's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub minimum_length: usize,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let pool = PoolConfig {
            clients: BTreeMap::from([("app".to_owned(), ClientConfig::default())]),
            ..PoolConfig::default()
        };
        Self {
            pools: BTreeMap::from([("default".to_owned(), pool)]),
            operator_access_key_id: "STRATUSOPERATOR".into(),
            operator_secret_access_key: None,
            sign_in_per_user_per_minute: 10,
            requests_per_address_per_minute: 300,
            issuers: Vec::new(),
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            id: None,
            clients: BTreeMap::new(),
            password_policy: PasswordPolicy::default(),
            access_token_validity: Duration::from_secs(3600),
            id_token_validity: Duration::from_secs(3600),
            refresh_token_validity: Duration::from_secs(30 * 24 * 3600),
            email_subject_prefix: "Stratus".into(),
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_lowercase: true,
            require_uppercase: true,
            require_numbers: true,
            require_symbols: true,
        }
    }
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.operator_access_key_id.len() < 4 {
            return invalid("identity.operator_access_key_id", "must be at least 4 characters");
        }
        if self.operator_secret_access_key.as_ref().is_some_and(|secret| secret.expose().len() < 16) {
            return invalid("identity.operator_secret_access_key", "must be at least 16 characters");
        }
        if self.sign_in_per_user_per_minute == 0 || self.requests_per_address_per_minute == 0 {
            return invalid(
                "identity.sign_in_per_user_per_minute",
                "and requests_per_address_per_minute must be positive",
            );
        }
        for (name, pool) in &self.pools {
            pool.validate(name)?;
        }
        for issuer in &self.issuers {
            if !issuer.issuer.starts_with("https://") && !issuer.issuer.starts_with("http://") {
                return invalid(
                    "identity.issuers.issuer",
                    format!("`{}` must be an http(s) URL", issuer.issuer),
                );
            }
        }
        Ok(())
    }
}

impl PoolConfig {
    fn validate(&self, name: &str) -> Result<(), Invalid> {
        let pool_id_ok = |id: &str| {
            id.split_once('_').is_some_and(|(region, suffix)| {
                !region.is_empty() && suffix.len() == 9 && suffix.chars().all(|c| c.is_ascii_alphanumeric())
            })
        };
        if let Some(id) = &self.id
            && !pool_id_ok(id)
        {
            return invalid(
                "identity.pools.<name>.id",
                format!("`{id}` of pool `{name}` must look like <region>_<9 alphanumerics>"),
            );
        }
        if self.clients.is_empty() {
            return invalid(
                "identity.pools.<name>.clients",
                format!("pool `{name}` needs at least one app client"),
            );
        }
        for (client, config) in &self.clients {
            if let Some(id) = &config.id
                && !(id.len() == 26 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            {
                return invalid(
                    "identity.pools.<name>.clients.<name>.id",
                    format!("`{id}` of client `{client}` must be 26 lowercase letters and digits"),
                );
            }
        }
        let token_range = Duration::from_secs(5 * 60)..=Duration::from_secs(24 * 3600);
        if !token_range.contains(&self.access_token_validity)
            || !token_range.contains(&self.id_token_validity)
        {
            return invalid(
                "identity.pools.<name>.access_token_validity",
                format!("and id_token_validity of pool `{name}` must be between 5m and 1day"),
            );
        }
        let refresh_range = Duration::from_secs(3600)..=Duration::from_secs(3650 * 24 * 3600);
        if !refresh_range.contains(&self.refresh_token_validity) {
            return invalid(
                "identity.pools.<name>.refresh_token_validity",
                format!("of pool `{name}` must be between 1h and 3650days"),
            );
        }
        if !(6..=99).contains(&self.password_policy.minimum_length) {
            return invalid(
                "identity.pools.<name>.password_policy.minimum_length",
                format!("of pool `{name}` must be between 6 and 99"),
            );
        }
        Ok(())
    }
}
