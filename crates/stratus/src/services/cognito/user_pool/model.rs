//! A user pool's model: user statuses, the records operations return, and what they are asked.
//! It depends on nothing else in the pool, so the store, the filters and the operations can all
//! use it.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Unconfirmed,
    Confirmed,
    ForceChangePassword,
    ResetRequired,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unconfirmed => "UNCONFIRMED",
            Self::Confirmed => "CONFIRMED",
            Self::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            Self::ResetRequired => "RESET_REQUIRED",
        }
    }

    /// The status `as_str` wrote; `None` for anything else.
    pub(super) fn parse(text: &str) -> Option<Self> {
        [Self::Unconfirmed, Self::Confirmed, Self::ForceChangePassword, Self::ResetRequired]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A user as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub sub: String,
    pub username: String,
    /// Includes `sub`.
    pub attributes: BTreeMap<String, String>,
    pub status: UserStatus,
    pub enabled: bool,
    pub mfa_enabled: bool,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub precedence: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where a code was sent (masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDelivery {
    pub destination: String,
    pub medium: &'static str,
    pub attribute: &'static str,
}

/// Tokens of a successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Authenticated(Tokens),
    Challenge { name: &'static str, session: String, username: String },
}

/// What an operator asks for when creating a user.
#[derive(Debug, Clone, Default)]
pub struct AdminCreateUser {
    pub username: String,
    pub attributes: BTreeMap<String, String>,
    pub temporary_password: Option<String>,
}
