//! A user pool's model: user statuses, authentication flows and challenges, code purposes, the
//! records operations return, and what they are asked. It depends on nothing else in the pool,
//! so the store, the filters, the operations and the wire protocol can all use it.

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

/// What a one-time code sent by email is for. Each user holds at most one code per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Confirms the address given at sign-up (24 h).
    VerifyEmail,
    /// Lets a user who forgot their password choose a new one (1 h).
    ResetPassword,
}

impl CodePurpose {
    /// The name it is stored under.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "signup",
            Self::ResetPassword => "reset",
        }
    }

    /// Seconds a code stays valid.
    pub(super) fn validity(self) -> i64 {
        match self {
            Self::VerifyEmail => 24 * 3600,
            Self::ResetPassword => 3600,
        }
    }
}

/// The sign-in flows of `InitiateAuth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlow {
    UserPassword,
    RefreshToken,
}

impl AuthFlow {
    /// The flow an `AuthFlow` parameter names; `None` for flows this pool does not offer.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "USER_PASSWORD_AUTH" => Some(Self::UserPassword),
            "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

/// A step a sign-in must pass before tokens are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// The user signs in with a temporary password and must choose their own.
    NewPasswordRequired,
    /// The user has TOTP MFA and must give a code from their authenticator.
    SoftwareTokenMfa,
}

impl Challenge {
    const ALL: [Self; 2] = [Self::NewPasswordRequired, Self::SoftwareTokenMfa];

    /// Cognito's `ChallengeName`, also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewPasswordRequired => "NEW_PASSWORD_REQUIRED",
            Self::SoftwareTokenMfa => "SOFTWARE_TOKEN_MFA",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|challenge| challenge.as_str() == name)
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
    Challenge { challenge: Challenge, session: String, username: String },
}

/// What an operator asks for when creating a user.
#[derive(Debug, Clone, Default)]
pub struct AdminCreateUser {
    pub username: String,
    pub attributes: BTreeMap<String, String>,
    pub temporary_password: Option<String>,
}
