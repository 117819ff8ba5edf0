//! Every failure as Cognito names it: the pool's refusals and requests that cannot be read.

use axum::http::StatusCode;

use crate::infra::aws_json::JsonFault;
use crate::infra::sigv4::SignatureError;
use crate::services::cognito::user_pool::IdentityError;

/// Why a request failed: the pool refused it, or it is not a request this protocol can read.
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestError {
    #[error(transparent)]
    Pool(#[from] IdentityError),
    #[error("Unknown operation {0}")]
    UnknownOperation(String),
    #[error("1 validation error detected: {0}")]
    Validation(serde_json::Error),
    #[error("Missing required parameter {0}")]
    MissingParameter(&'static str),
    #[error("AuthFlow {0} is not supported by this user pool")]
    UnsupportedAuthFlow(String),
    #[error("ChallengeName {0} is not supported")]
    UnsupportedChallenge(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl RequestError {
    fn is_internal(&self) -> bool {
        matches!(self, Self::Pool(error) if error.is_internal())
    }

    /// The `__type` a Cognito client expects.
    fn type_name(&self) -> &'static str {
        match self {
            Self::Pool(error) => pool_error_type(error),
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::Validation(_)
            | Self::MissingParameter(_)
            | Self::UnsupportedAuthFlow(_)
            | Self::UnsupportedChallenge(_) => "InvalidParameterException",
            Self::Signature(SignatureError::Missing) => "MissingAuthenticationTokenException",
            Self::Signature(SignatureError::UnknownAccessKey) => "UnrecognizedClientException",
            Self::Signature(_) => "InvalidSignatureException",
        }
    }
}

fn pool_error_type(error: &IdentityError) -> &'static str {
    match error {
        IdentityError::UsernameExists => "UsernameExistsException",
        IdentityError::CodeMismatch => "CodeMismatchException",
        IdentityError::ExpiredCode => "ExpiredCodeException",
        IdentityError::CodeAttemptsExceeded => "LimitExceededException",
        IdentityError::NotAuthorized(_) => "NotAuthorizedException",
        IdentityError::UserNotConfirmed => "UserNotConfirmedException",
        IdentityError::PasswordResetRequired => "PasswordResetRequiredException",
        IdentityError::InvalidPassword(_) => "InvalidPasswordException",
        IdentityError::InvalidParameter(_) => "InvalidParameterException",
        IdentityError::TooManyRequests => "TooManyRequestsException",
        IdentityError::PoolNotFound(_) | IdentityError::ClientNotFound(_) | IdentityError::GroupNotFound => {
            "ResourceNotFoundException"
        }
        IdentityError::UserNotFound => "UserNotFoundException",
        IdentityError::GroupExists(_) => "GroupExistsException",
        IdentityError::SoftwareTokenNotAssociated | IdentityError::SoftwareTokenMismatch => {
            "EnableSoftwareTokenMFAException"
        }
        IdentityError::Storage(_)
        | IdentityError::Keys(_)
        | IdentityError::Mail(_)
        | IdentityError::Template(_)
        | IdentityError::Worker(_)
        | IdentityError::Password(_)
        | IdentityError::OperatorCredentials(_) => "InternalErrorException",
    }
}

/// The failure as the JSON endpoint answers it; Stratus's own failures are logged here.
pub(super) fn fault(error: &RequestError) -> JsonFault {
    if error.is_internal() {
        tracing::error!(error = %crate::infra::telemetry::error_chain(error), "identity request failed");
    }
    let status =
        if error.is_internal() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::BAD_REQUEST };
    JsonFault { status, type_name: error.type_name(), message: error.to_string() }
}
