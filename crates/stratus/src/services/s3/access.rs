//! Who a request comes from and whether it may do what it asks. s3s has verified the SigV4
//! signature (header, presigned or chunked) with the secret [`Gate`] looked up; the gate then
//! checks what s3s does not — the session token, a presigned URL's week, the sign-in behind
//! temporary credentials — and asks IAM about every action the operation needs, before the
//! operation's input is even read. The operator may do anything; a bucket only the operator
//! may reach (the site's, which readers get through the edge) is refused to everyone else.

use std::collections::BTreeSet;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::CopySource;
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::infra::clock::Clock;
use crate::infra::telemetry::error_chain;
use crate::services::cognito::credentials::{CredentialError, CredentialStore};
use crate::services::cognito::identity_pool::{IdentityPools, Signer};
use crate::services::iam::{self, Decision, Iam};

/// SigV4's limit on a presigned URL's lifetime: 7 days.
const MAX_PRESIGNED_SECONDS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone)]
pub(super) struct Gate {
    credentials: Arc<CredentialStore>,
    pools: Arc<IdentityPools>,
    iam: Arc<Iam>,
    clock: Arc<dyn Clock>,
    operator_only: Arc<BTreeSet<String>>,
}

impl Gate {
    pub(super) fn new(
        credentials: Arc<CredentialStore>,
        pools: Arc<IdentityPools>,
        iam: Arc<Iam>,
        clock: Arc<dyn Clock>,
        operator_only: BTreeSet<String>,
    ) -> Self {
        Self { credentials, pools, iam, clock, operator_only: Arc::new(operator_only) }
    }

    fn now(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    fn principal(&self, access_key_id: &str, session_token: Option<&str>) -> S3Result<Signer> {
        Ok(self.pools.signer(access_key_id, session_token).map_err(refusal)?.signer)
    }

    /// IAM's answer for one action; a denial is `AccessDenied`, logged with what decided it.
    pub(super) fn authorize(
        &self,
        principal: &Signer,
        action: &str,
        resource: &str,
        extra: &[(&str, String)],
    ) -> S3Result<()> {
        let Signer::Role(session) = principal else { return Ok(()) };
        let mut context = session.context.clone();
        for (key, value) in extra {
            context = context.with(key, value.clone());
        }
        let decision =
            self.iam.decide(&session.role_arn, iam::Request { action, resource, context: &context });
        let decided_by = match &decision {
            Decision::Allow(_) => return Ok(()),
            Decision::Deny(deciding) => format!("denied by {deciding}"),
            Decision::ImplicitDeny => "no statement allowed it".to_owned(),
        };
        tracing::info!(
            access_key_id = %session.access_key_id,
            role = %session.role_arn,
            action,
            resource,
            decided_by,
            "S3 request denied"
        );
        Err(s3_error!(AccessDenied, "Access Denied"))
    }

    fn operator_only(&self, principal: &Signer, path: &S3Path) -> S3Result<()> {
        let bucket = match path {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket,
        };
        if matches!(principal, Signer::Role(_)) && self.operator_only.contains(bucket.as_ref()) {
            tracing::info!(bucket = %bucket, "S3 request denied: the bucket is reachable through the edge only");
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Auth for Gate {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.credentials.secret(access_key, self.now()).map(SecretKey::from).map_err(refusal)
    }
}

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed: sign the request"));
        };
        let access_key_id = credentials.access_key.clone();
        let query = Query::parse(cx.uri().query());

        if let Some(expires) = query.get("X-Amz-Expires")
            && expires.parse::<u64>().map_or(true, |seconds| seconds > MAX_PRESIGNED_SECONDS)
        {
            return Err(s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Expires must be less than a week (in seconds) that is 604800"
            ));
        }
        let token = cx
            .headers()
            .get("x-amz-security-token")
            .and_then(|value| value.to_str().ok())
            .or_else(|| query.get("X-Amz-Security-Token"));
        let principal = self.principal(&access_key_id, token)?;
        let path = cx.s3_path();
        self.operator_only(&principal, path)?;
        if let S3Path::Object { key, .. } = path {
            super::key_path(key)?;
        }
        let operation = cx.s3_op().name();
        if let Some(asked) = super::actions::asked(operation, path, &query) {
            self.authorize(&principal, asked.action, &asked.resource, &asked.context)?;
        }
        if let Some(source) = copy_source(operation, cx.headers())? {
            if let Signer::Role(_) = principal
                && self.operator_only.contains(source.bucket.as_str())
            {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            super::key_path(&source.key)?;
            let action = if source.versioned { "s3:GetObjectVersion" } else { "s3:GetObject" };
            self.authorize(
                &principal,
                action,
                &super::actions::object_arn(&source.bucket, &source.key),
                &[],
            )?;
        }
        cx.extensions_mut().insert(principal);
        Ok(())
    }
}

/// What CopyObject and UploadPartCopy read.
struct Source {
    bucket: String,
    key: String,
    versioned: bool,
}

/// The source of CopyObject and UploadPartCopy.
fn copy_source(operation: &str, headers: &axum::http::HeaderMap) -> S3Result<Option<Source>> {
    if !matches!(operation, "CopyObject" | "UploadPartCopy") {
        return Ok(None);
    }
    let Some(header) = headers.get("x-amz-copy-source").and_then(|value| value.to_str().ok()) else {
        return Err(s3_error!(InvalidArgument, "x-amz-copy-source is required"));
    };
    match CopySource::parse(header) {
        Ok(CopySource::Bucket { bucket, key, version_id }) => {
            Ok(Some(Source { bucket: bucket.into(), key: key.into(), versioned: version_id.is_some() }))
        }
        Ok(_) => Err(s3_error!(NotImplemented, "copying from an access point is not supported")),
        Err(error) => {
            Err(S3Error::with_message(S3ErrorCode::InvalidArgument, format!("x-amz-copy-source: {error}")))
        }
    }
}

/// SigV2 (HMAC-SHA1, no credential scope, no bound on a presigned URL's life) is refused as
/// S3's newer regions refuse it — before s3s looks at it, whose SigV2 check is not constant-time.
pub(super) fn refuses_sigv2(
    request: &axum::http::Request<axum::body::Body>,
) -> Option<axum::response::Response> {
    let header = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    let query = Query::parse(request.uri().query());
    if !header.is_some_and(|value| value.starts_with("AWS ")) && query.get("AWSAccessKeyId").is_none() {
        return None;
    }
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidRequest</Code><Message>The \
                authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.</Message></Error>";
    axum::http::Response::builder()
        .status(axum::http::StatusCode::BAD_REQUEST)
        .header(axum::http::header::CONTENT_TYPE, "application/xml")
        .body(axum::body::Body::from(body))
        .ok()
}

/// A refused credential, as S3 names it.
#[expect(clippy::needless_pass_by_value, reason = "the shape `map_err` takes")]
fn refusal(error: CredentialError) -> S3Error {
    let code = match &error {
        CredentialError::UnknownAccessKey => S3ErrorCode::InvalidAccessKeyId,
        CredentialError::Expired => S3ErrorCode::ExpiredToken,
        CredentialError::InvalidToken | CredentialError::Revoked => S3ErrorCode::InvalidToken,
        CredentialError::Storage(_) => {
            tracing::error!(error = %error_chain(&error), "cannot look up credentials");
            S3ErrorCode::InternalError
        }
    };
    S3Error::with_message(code, error.to_string())
}

/// A request's query parameters, decoded.
#[derive(Debug, Default)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Self {
        Self(query.and_then(|query| serde_urlencoded::from_str(query).ok()).unwrap_or_default())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}
