//! The IAM authorizer (API Gateway's `AWS_IAM`): a request signed with SigV4 for `execute-api`
//! by the operator or with an identity's temporary credentials, which the role's policies must
//! allow `execute-api:Invoke` on the method's ARN. Refusals are API Gateway's: 403 with the
//! reason, and nothing reaches the function.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::{Admitted, Refusal};
use crate::infra::clock::Clock;
use crate::infra::sigv4::{self, SignatureError, SignedRequest};
use crate::infra::telemetry::error_chain;
use crate::services::cognito::authorizer::{AuthorizedBy, Principal};
use crate::services::cognito::credentials::CredentialError;
use crate::services::cognito::identity_pool::{IdentityPools, Signer};
use crate::services::iam::{self, Decision, Iam};

const SERVICE: &str = "execute-api";
const ACTION: &str = "execute-api:Invoke";

#[derive(Debug)]
pub(super) struct IamAuthorizer {
    pools: Arc<IdentityPools>,
    iam: Arc<Iam>,
    region: String,
    clock: Arc<dyn Clock>,
}

impl IamAuthorizer {
    pub(super) fn new(pools: Arc<IdentityPools>, iam: Arc<Iam>, region: &str, clock: Arc<dyn Clock>) -> Self {
        Self { pools, iam, region: region.to_owned(), clock }
    }

    /// Checks the signature, the credentials and the policies for `method_arn`.
    pub(super) fn admit(&self, parts: &Parts, body: &[u8], method_arn: &str) -> Result<Admitted, Refusal> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        let Some(header) = header else {
            return Err(Refusal::forbidden(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let authorization = sigv4::parse_authorization(header).map_err(|_| {
            Refusal::forbidden(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters \
                 of a AWS4-HMAC-SHA256 signature.",
            )
        })?;
        if authorization.service != SERVICE {
            return Err(invalid_signature("Credential should be scoped to correct service: 'execute-api'."));
        }
        if authorization.region != self.region {
            return Err(invalid_signature(format!(
                "Credential should be scoped to a valid region: '{}'.",
                self.region
            )));
        }
        let token = parts.headers.get("x-amz-security-token").and_then(|value| value.to_str().ok());
        let signed_by = self
            .pools
            .signer(&authorization.access_key_id, token)
            .map_err(|error| credentials_refused(&error))?;
        let request = SignedRequest::of(&parts.method, &parts.uri, &parts.headers, body);
        sigv4::verify(&request, &authorization.access_key_id, &signed_by.secret_access_key, self.clock.now())
            .map_err(|error| signature_refused(&error))?;
        let session = match signed_by.signer {
            Signer::Operator => return Ok(Admitted { caller: "operator".into(), principal: None }),
            Signer::Role(session) => session,
        };
        let request = iam::Request { action: ACTION, resource: method_arn, context: &session.context };
        let decision = self.iam.decide(&session.role_arn, request);
        let explicit = match &decision {
            Decision::Allow(_) => {
                let principal = session.user.as_ref().map(|user| Principal {
                    sub: user.sub.clone(),
                    // API Gateway hands the function the identity, not the user's name or groups.
                    username: user.sub.clone(),
                    groups: Vec::new(),
                    scopes: Vec::new(),
                    issuer: user.issuer.clone(),
                    client_id: String::new(),
                    authorized_by: AuthorizedBy::Iam {
                        identity_id: session.identity_id.clone(),
                        role_arn: session.role_arn.clone(),
                    },
                });
                let caller = principal.as_ref().map_or_else(
                    || format!("identity:{}", session.identity_id),
                    |principal| principal.sub.clone(),
                );
                return Ok(Admitted { caller, principal });
            }
            Decision::Deny(deciding) => {
                tracing::info!(role = %session.role_arn, method_arn, decided_by = %deciding, "API call denied");
                true
            }
            Decision::ImplicitDeny => {
                tracing::info!(role = %session.role_arn, method_arn, "API call denied: no statement allowed it");
                false
            }
        };
        let role = session.role_arn.rsplit('/').next().unwrap_or_default();
        Err(Refusal::forbidden(
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::{}:assumed-role/{role}/CognitoIdentityCredentials is not authorized to perform: \
                 {ACTION} on resource: {method_arn}{}",
                self.iam.account(),
                if explicit { " with an explicit deny" } else { "" }
            ),
        ))
    }
}

fn invalid_signature(message: impl Into<String>) -> Refusal {
    Refusal::forbidden("InvalidSignatureException", message)
}

fn signature_refused(error: &SignatureError) -> Refusal {
    match error {
        SignatureError::Missing => {
            Refusal::forbidden("MissingAuthenticationTokenException", "Missing Authentication Token")
        }
        SignatureError::Malformed => Refusal::forbidden("IncompleteSignatureException", error.to_string()),
        SignatureError::UnknownAccessKey => Refusal::forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        SignatureError::Skewed => {
            invalid_signature("Signature expired: the request time is too far from the server time.")
        }
        SignatureError::Mismatch => invalid_signature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        ),
    }
}

fn credentials_refused(error: &CredentialError) -> Refusal {
    match error {
        CredentialError::UnknownAccessKey | CredentialError::InvalidToken | CredentialError::Revoked => {
            Refusal::forbidden(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        }
        CredentialError::Expired => Refusal::forbidden(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        CredentialError::Storage(_) => {
            tracing::error!(error = %error_chain(error), "cannot look up credentials");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
                "Internal server error",
            )
        }
    }
}
