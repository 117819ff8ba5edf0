//! What a user-pool operation can refuse, as data. The wire protocol names each for Cognito's
//! clients (`__type`, HTTP status); the messages here are Cognito's, so that the CLI and logs
//! read as an SDK user would see them.

use super::model::UserStatus;
use super::password;
use crate::infra::sqlite::DbError;
use crate::services::cognito::tokens;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("User already exists")]
    UsernameExists,
    #[error("Invalid verification code provided, please try again.")]
    CodeMismatch,
    #[error("Invalid code provided, please request a code again.")]
    ExpiredCode,
    #[error("Attempt limit exceeded, please try after some time.")]
    CodeAttemptsExceeded,
    #[error("{0}")]
    NotAuthorized(Denied),
    #[error("User is not confirmed.")]
    UserNotConfirmed,
    #[error("Password reset required for the user")]
    PasswordResetRequired,
    /// The password policy's findings, in Cognito's words.
    #[error("{0}")]
    InvalidPassword(String),
    #[error("{0}")]
    InvalidParameter(Invalid),
    #[error("Too many requests, please try again later.")]
    TooManyRequests,
    #[error("User pool {0} does not exist.")]
    PoolNotFound(String),
    #[error("User pool client {0} does not exist.")]
    ClientNotFound(String),
    #[error("Group not found.")]
    GroupNotFound,
    #[error("User does not exist.")]
    UserNotFound,
    #[error("A group with the name {0} already exists.")]
    GroupExists(String),
    #[error("Call AssociateSoftwareToken first")]
    SoftwareTokenNotAssociated,
    #[error("Code mismatch")]
    SoftwareTokenMismatch,
    #[error("internal error")]
    Storage(#[from] DbError),
    #[error("internal error")]
    Keys(#[from] tokens::KeyError),
    #[error("internal error")]
    Mail(#[from] crate::ports::mail::MailError),
    #[error("internal error")]
    Template(#[from] minijinja::Error),
    #[error("internal error")]
    Worker(#[source] tokio::task::JoinError),
    #[error("internal error")]
    Password(#[from] password::PasswordError),
    #[error("cannot read or create the operator credentials")]
    OperatorCredentials(#[source] std::io::Error),
}

impl IdentityError {
    /// True for failures of Stratus rather than of the request.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Storage(_)
                | Self::Keys(_)
                | Self::Mail(_)
                | Self::Template(_)
                | Self::Worker(_)
                | Self::Password(_)
                | Self::OperatorCredentials(_)
        )
    }
}

/// Why a caller is not authorized (`NotAuthorizedException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Unknown user or wrong password: the same answer for both.
    #[error("Incorrect username or password.")]
    IncorrectCredentials,
    #[error("User is disabled.")]
    UserDisabled,
    #[error("User cannot be confirmed. Current status is {}", .0.as_str())]
    CannotConfirm(UserStatus),
    #[error("Invalid session for the user, session is expired.")]
    InvalidSession,
    #[error("Invalid Access Token")]
    InvalidAccessToken,
    #[error("Access Token has expired")]
    AccessTokenExpired,
    #[error("Access Token has been revoked")]
    AccessTokenRevoked,
    #[error("Invalid Refresh Token")]
    InvalidRefreshToken,
    #[error("Refresh Token has expired")]
    RefreshTokenExpired,
    #[error("Refresh Token has been revoked")]
    RefreshTokenRevoked,
    #[error("The token was not issued to this client")]
    TokenOfAnotherClient,
}

/// A parameter the pool cannot accept (`InvalidParameterException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("Username must be 1-128 characters without spaces")]
    Username,
    #[error("Attributes did not conform to the schema: email: The attribute is required")]
    EmailRequired,
    #[error("Cannot send a code to the user as there is no registered email")]
    NoEmail,
    #[error("Invalid email address format.")]
    Email,
    #[error("Attribute {0} is not part of the schema")]
    UnknownAttribute(String),
    #[error("Cannot modify {0}")]
    ReadOnlyAttribute(String),
    #[error("Attribute {name} is longer than {max} characters")]
    AttributeTooLong { name: String, max: usize },
    #[error("GroupName must be 1-128 characters without whitespace")]
    GroupName,
    #[error("User has not verified software token mfa")]
    MfaNotVerified,
    #[error("Invalid search filter: {0}")]
    Filter(String),
}
