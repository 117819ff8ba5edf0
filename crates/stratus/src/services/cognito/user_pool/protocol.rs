//! Cognito's JSON 1.1 wire protocol: `POST /` with `X-Amz-Target:
//! AWSCognitoIdentityProviderService.<Operation>`, plus each pool's JWKS and OpenID discovery
//! documents under its issuer URL. Errors carry Cognito's `__type` names.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};
use tracing::Instrument as _;

use crate::infra::http::body::{BodyLimit, BodyRefusal, read_whole_body};
use crate::infra::sigv4::{self, SignatureError, SignedRequest};

use super::operation::{Operation, OperatorOperation, PublicOperation};
use super::{
    AdminCreateUser, AuthFlow, AuthOutcome, Challenge, CodeDelivery, Identity, IdentityError, Tokens,
    UserPool, UserRecord,
};

const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Cognito requests are small; anything bigger is refused while it streams in.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The identity endpoint: mount it on the listener.
pub(crate) fn router(identity: Arc<Identity>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any);
    Router::new()
        // An explicit OPTIONS route keeps preflights inside this router (and its CORS layer)
        // rather than in the listener's fallback.
        .route("/", post(dispatch).options(|| async { StatusCode::NO_CONTENT }))
        .route("/{pool_id}/.well-known/jwks.json", get(jwks))
        .route("/{pool_id}/.well-known/openid-configuration", get(discovery))
        .layer(axum::middleware::from_fn_with_state(
            BodyLimit::new(MAX_BODY_BYTES, body_refused),
            read_whole_body,
        ))
        .layer(cors)
        .with_state(identity)
}

/// A refused body in Cognito's error shape, with AWS's exception names for the statuses.
fn body_refused(refusal: BodyRefusal) -> Response {
    let type_name = match refusal {
        BodyRefusal::TooLarge { .. } => "RequestEntityTooLargeException",
        BodyRefusal::TooSlow => "RequestTimeoutException",
        BodyRefusal::Unreadable => "SerializationException",
    };
    shaped_error(refusal.status(), type_name, &refusal.message())
}

/// `{"__type": …, "message": …}` with `x-amzn-ErrorType`, as AWS's JSON protocols answer.
fn shaped_error(status: StatusCode, type_name: &'static str, message: &str) -> Response {
    let body = json!({ "__type": type_name, "message": message });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(type_name));
    response
}

async fn jwks(State(identity): State<Arc<Identity>>, Path(pool_id): Path<String>) -> Response {
    match identity.pool(&pool_id) {
        Ok(pool) => cacheable(pool.jwks()),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn discovery(State(identity): State<Arc<Identity>>, Path(pool_id): Path<String>) -> Response {
    match identity.pool(&pool_id) {
        Ok(pool) => cacheable(pool.discovery()),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Keys change rarely; verifiers may cache them for a while.
fn cacheable(document: Value) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(document)).into_response()
}

/// Why a request failed: the pool refused it, or it is not a request this protocol can read.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error(transparent)]
    Pool(#[from] IdentityError),
    #[error("Unknown target `{0}`")]
    UnknownTarget(String),
    #[error("Unknown operation {0}")]
    UnknownOperation(String),
    #[error("Content-Type must be {CONTENT_TYPE}")]
    ContentType,
    #[error("Malformed JSON: {0}")]
    MalformedJson(serde_json::Error),
    #[error("The request body must be a JSON object")]
    NotAnObject,
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
            Self::UnknownTarget(_) | Self::UnknownOperation(_) => "UnknownOperationException",
            Self::ContentType | Self::MalformedJson(_) | Self::NotAnObject => "SerializationException",
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

fn error_response(error: &RequestError) -> Response {
    if error.is_internal() {
        tracing::error!(error = %crate::infra::telemetry::error_chain(error), "identity request failed");
    }
    let status =
        if error.is_internal() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::BAD_REQUEST };
    shaped_error(status, error.type_name(), &error.to_string())
}

async fn dispatch(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let outcome = handle(&identity, peer, &method, &uri, &headers, &body).await;
    let mut response = match outcome {
        Ok(value) => {
            let mut response = (StatusCode::OK, value.to_string()).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(error) => error_response(&error),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

async fn handle(
    identity: &Identity,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, RequestError> {
    identity.throttle.request(peer.ip())?;
    let target = headers.get("x-amz-target").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let name =
        target.strip_prefix(TARGET_PREFIX).ok_or_else(|| RequestError::UnknownTarget(target.to_owned()))?;
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with(CONTENT_TYPE) && !content_type.starts_with("application/json") {
        return Err(RequestError::ContentType);
    }
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(RequestError::MalformedJson)?
    };
    if !input.is_object() {
        return Err(RequestError::NotAnObject);
    }
    let operation = Operation::parse(name).ok_or_else(|| RequestError::UnknownOperation(name.to_owned()))?;
    tracing::debug!(operation = name, "identity request");
    let span = tracing::info_span!("cognito", operation = name);
    match operation {
        Operation::Public(operation) => route(identity, operation, input).instrument(span).await,
        Operation::Operator(operation) => {
            check_operator(identity, method, uri, headers, body)?;
            route_admin(identity, operation, input).instrument(span).await
        }
    }
}

fn check_operator(
    identity: &Identity,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), RequestError> {
    let request = SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect(),
        body,
    };
    let operator = identity.operator();
    sigv4::verify(&request, &operator.access_key_id, &operator.secret_access_key, identity.now())?;
    Ok(())
}

/// The pool of an app client, after counting one sign-in or code attempt for `username`.
fn attempt_pool<'a>(
    identity: &'a Identity,
    client_id: &str,
    username: &str,
) -> Result<&'a Arc<UserPool>, RequestError> {
    let pool = identity.pool_for_client(client_id)?;
    identity.throttle.attempt(pool.id(), username)?;
    Ok(pool)
}

fn parse<T: DeserializeOwned>(input: Value) -> Result<T, RequestError> {
    serde_json::from_value(input).map_err(RequestError::Validation)
}

#[derive(Debug, Deserialize)]
struct AttributeType {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value", default)]
    value: String,
}

fn attribute_map(list: Vec<AttributeType>) -> BTreeMap<String, String> {
    list.into_iter().map(|attribute| (attribute.name, attribute.value)).collect()
}

fn attribute_list(attributes: &BTreeMap<String, String>) -> Value {
    Value::Array(attributes.iter().map(|(name, value)| json!({ "Name": name, "Value": value })).collect())
}

fn delivery(details: &CodeDelivery) -> Value {
    json!({ "Destination": details.destination, "DeliveryMedium": details.medium, "AttributeName": details.attribute })
}

fn authentication_result(tokens: &Tokens) -> Value {
    let mut result = json!({
        "AccessToken": tokens.access_token,
        "IdToken": tokens.id_token,
        "ExpiresIn": tokens.expires_in,
        "TokenType": "Bearer",
    });
    if let Some(refresh) = &tokens.refresh_token {
        result["RefreshToken"] = json!(refresh);
    }
    json!({ "AuthenticationResult": result, "ChallengeParameters": {} })
}

fn auth_outcome(outcome: &AuthOutcome) -> Value {
    match outcome {
        AuthOutcome::Authenticated(tokens) => authentication_result(tokens),
        AuthOutcome::Challenge { challenge, session, username } => json!({
            "ChallengeName": challenge.as_str(),
            "Session": session,
            "ChallengeParameters": { "USER_ID_FOR_SRP": username, "userAttributes": "{}", "requiredAttributes": "[]" },
        }),
    }
}

/// Cognito's `UserType`.
fn user_type(user: &UserRecord) -> Value {
    json!({
        "Username": user.username,
        "Attributes": attribute_list(&user.attributes),
        "UserCreateDate": user.created_at,
        "UserLastModifiedDate": user.updated_at,
        "Enabled": user.enabled,
        "UserStatus": user.status.as_str(),
        "MFAOptions": [],
    })
}

fn mfa_settings(user: &UserRecord) -> (Value, Value) {
    if user.mfa_enabled {
        (json!("SOFTWARE_TOKEN_MFA"), json!(["SOFTWARE_TOKEN_MFA"]))
    } else {
        (Value::Null, json!([]))
    }
}

fn required(map: &BTreeMap<String, String>, name: &'static str) -> Result<String, RequestError> {
    map.get(name).cloned().ok_or(RequestError::MissingParameter(name))
}

/// Request shapes several operations share.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ClientUser {
    client_id: String,
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccessTokenOnly {
    access_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoolUser {
    user_pool_id: String,
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Membership {
    user_pool_id: String,
    username: String,
    group_name: String,
}

/// The pool that issued an access token.
fn by_token(identity: &Identity, token: &str) -> Result<Arc<UserPool>, RequestError> {
    Ok(identity.pool_for_token(token).map(Arc::clone)?)
}

fn pool_of(identity: &Identity, id: &str) -> Result<Arc<UserPool>, RequestError> {
    Ok(identity.pool(id).map(Arc::clone)?)
}

/// One handler per operation: the request's shape, the pool's call, the response's shape.
async fn route(identity: &Identity, operation: PublicOperation, input: Value) -> Result<Value, RequestError> {
    match operation {
        PublicOperation::SignUp => sign_up(identity, input).await,
        PublicOperation::ConfirmSignUp => confirm_sign_up(identity, input).await,
        PublicOperation::ResendConfirmationCode => resend_confirmation_code(identity, input).await,
        PublicOperation::InitiateAuth => initiate_auth(identity, input).await,
        PublicOperation::RespondToAuthChallenge => respond_to_auth_challenge(identity, input).await,
        PublicOperation::AssociateSoftwareToken => associate_software_token(identity, input).await,
        PublicOperation::VerifySoftwareToken => verify_software_token(identity, input).await,
        PublicOperation::SetUserMFAPreference => set_user_mfa_preference(identity, input).await,
        PublicOperation::GetUser => get_user(identity, input).await,
        PublicOperation::UpdateUserAttributes => update_user_attributes(identity, input).await,
        PublicOperation::ChangePassword => change_password(identity, input).await,
        PublicOperation::ForgotPassword => forgot_password(identity, input).await,
        PublicOperation::ConfirmForgotPassword => confirm_forgot_password(identity, input).await,
        PublicOperation::GlobalSignOut => global_sign_out(identity, input).await,
        PublicOperation::RevokeToken => revoke_token(identity, input).await,
        PublicOperation::DeleteUser => delete_user(identity, input).await,
    }
}

async fn sign_up(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        client_id: String,
        username: String,
        password: String,
        #[serde(default)]
        user_attributes: Vec<AttributeType>,
    }
    let request: Request = parse(input)?;
    let pool = identity.pool_for_client(&request.client_id)?;
    let (sub, details) = pool
        .sign_up(
            &request.client_id,
            &request.username,
            &request.password,
            attribute_map(request.user_attributes),
        )
        .await?;
    Ok(json!({ "UserConfirmed": false, "UserSub": sub, "CodeDeliveryDetails": delivery(&details) }))
}

async fn confirm_sign_up(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        client_id: String,
        username: String,
        confirmation_code: String,
    }
    let request: Request = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    pool.confirm_sign_up(&request.client_id, &request.username, &request.confirmation_code).await?;
    Ok(json!({}))
}

async fn resend_confirmation_code(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: ClientUser = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    let details = pool.resend_confirmation_code(&request.client_id, &request.username).await?;
    Ok(json!({ "CodeDeliveryDetails": delivery(&details) }))
}

async fn initiate_auth(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        auth_flow: String,
        client_id: String,
        #[serde(default)]
        auth_parameters: BTreeMap<String, String>,
    }
    let request: Request = parse(input)?;
    let pool = identity.pool_for_client(&request.client_id)?;
    let flow =
        AuthFlow::parse(&request.auth_flow).ok_or(RequestError::UnsupportedAuthFlow(request.auth_flow))?;
    match flow {
        AuthFlow::UserPassword => {
            let username = required(&request.auth_parameters, "USERNAME")?;
            let password = required(&request.auth_parameters, "PASSWORD")?;
            identity.throttle.attempt(pool.id(), &username)?;
            Ok(auth_outcome(&pool.password_auth(&request.client_id, &username, &password).await?))
        }
        AuthFlow::RefreshToken => {
            let token = required(&request.auth_parameters, "REFRESH_TOKEN")?;
            Ok(authentication_result(&pool.refresh(&request.client_id, &token).await?))
        }
    }
}

async fn respond_to_auth_challenge(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        challenge_name: String,
        client_id: String,
        session: String,
        #[serde(default)]
        challenge_responses: BTreeMap<String, String>,
    }
    let request: Request = parse(input)?;
    let pool = identity.pool_for_client(&request.client_id)?;
    let username = required(&request.challenge_responses, "USERNAME")?;
    identity.throttle.attempt(pool.id(), &username)?;
    let challenge = Challenge::parse(&request.challenge_name)
        .ok_or(RequestError::UnsupportedChallenge(request.challenge_name))?;
    match challenge {
        Challenge::SoftwareTokenMfa => {
            let code = required(&request.challenge_responses, "SOFTWARE_TOKEN_MFA_CODE")?;
            Ok(authentication_result(
                &pool.respond_mfa(&request.client_id, &request.session, &username, &code).await?,
            ))
        }
        Challenge::NewPasswordRequired => {
            let password = required(&request.challenge_responses, "NEW_PASSWORD")?;
            let outcome =
                pool.respond_new_password(&request.client_id, &request.session, &username, &password).await?;
            Ok(auth_outcome(&outcome))
        }
    }
}

async fn associate_software_token(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    let secret =
        by_token(identity, &request.access_token)?.associate_software_token(&request.access_token).await?;
    Ok(json!({ "SecretCode": secret }))
}

async fn verify_software_token(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        user_code: String,
    }
    let request: Request = parse(input)?;
    let pool = by_token(identity, &request.access_token)?;
    let user = pool.get_user(&request.access_token).await?;
    identity.throttle.attempt(pool.id(), &user.username)?;
    pool.verify_software_token(&request.access_token, &request.user_code).await?;
    Ok(json!({ "Status": "SUCCESS" }))
}

async fn set_user_mfa_preference(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Settings {
        enabled: Option<bool>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        software_token_mfa_settings: Option<Settings>,
    }
    let request: Request = parse(input)?;
    if let Some(enabled) = request.software_token_mfa_settings.and_then(|settings| settings.enabled) {
        by_token(identity, &request.access_token)?.set_mfa_preference(&request.access_token, enabled).await?;
    }
    Ok(json!({}))
}

async fn get_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    let user = by_token(identity, &request.access_token)?.get_user(&request.access_token).await?;
    let (preferred, list) = mfa_settings(&user);
    let mut body = json!({
        "Username": user.username, "UserAttributes": attribute_list(&user.attributes),
        "MFAOptions": [], "UserMFASettingList": list,
    });
    if !preferred.is_null() {
        body["PreferredMfaSetting"] = preferred;
    }
    Ok(body)
}

async fn update_user_attributes(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        user_attributes: Vec<AttributeType>,
    }
    let request: Request = parse(input)?;
    let pool = by_token(identity, &request.access_token)?;
    pool.update_user_attributes(&request.access_token, attribute_map(request.user_attributes)).await?;
    Ok(json!({ "CodeDeliveryDetailsList": [] }))
}

async fn change_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        previous_password: String,
        proposed_password: String,
    }
    let request: Request = parse(input)?;
    let pool = by_token(identity, &request.access_token)?;
    let user = pool.get_user(&request.access_token).await?;
    identity.throttle.attempt(pool.id(), &user.username)?;
    pool.change_password(&request.access_token, &request.previous_password, &request.proposed_password)
        .await?;
    Ok(json!({}))
}

async fn forgot_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: ClientUser = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    let details = pool.forgot_password(&request.client_id, &request.username).await?;
    Ok(json!({ "CodeDeliveryDetails": delivery(&details) }))
}

async fn confirm_forgot_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        client_id: String,
        username: String,
        confirmation_code: String,
        password: String,
    }
    let request: Request = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    pool.confirm_forgot_password(
        &request.client_id,
        &request.username,
        &request.confirmation_code,
        &request.password,
    )
    .await?;
    Ok(json!({}))
}

async fn global_sign_out(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    by_token(identity, &request.access_token)?.global_sign_out(&request.access_token).await?;
    Ok(json!({}))
}

async fn revoke_token(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        token: String,
        client_id: String,
    }
    let request: Request = parse(input)?;
    identity.pool_for_client(&request.client_id)?.revoke_token(&request.client_id, &request.token).await?;
    Ok(json!({}))
}

async fn delete_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    by_token(identity, &request.access_token)?.delete_user(&request.access_token).await?;
    Ok(json!({}))
}

async fn route_admin(
    identity: &Identity,
    operation: OperatorOperation,
    input: Value,
) -> Result<Value, RequestError> {
    match operation {
        OperatorOperation::AdminCreateUser => admin_create_user(identity, input).await,
        OperatorOperation::AdminSetUserPassword => admin_set_user_password(identity, input).await,
        OperatorOperation::AdminGetUser => admin_get_user(identity, input).await,
        OperatorOperation::AdminDeleteUser => admin_delete_user(identity, input).await,
        OperatorOperation::AdminDisableUser => admin_set_enabled(identity, input, false).await,
        OperatorOperation::AdminEnableUser => admin_set_enabled(identity, input, true).await,
        OperatorOperation::AdminAddUserToGroup => admin_set_membership(identity, input, true).await,
        OperatorOperation::AdminRemoveUserFromGroup => admin_set_membership(identity, input, false).await,
        OperatorOperation::ListUsers => list_users(identity, input).await,
        OperatorOperation::CreateGroup => create_group(identity, input).await,
        OperatorOperation::ListGroups => list_groups(identity, input).await,
    }
}

async fn admin_create_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        username: String,
        #[serde(default)]
        user_attributes: Vec<AttributeType>,
        temporary_password: Option<String>,
    }
    let request: Request = parse(input)?;
    let user = pool_of(identity, &request.user_pool_id)?
        .admin_create_user(AdminCreateUser {
            username: request.username,
            attributes: attribute_map(request.user_attributes),
            temporary_password: request.temporary_password,
        })
        .await?;
    Ok(json!({ "User": user_type(&user) }))
}

async fn admin_set_user_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        username: String,
        password: String,
        #[serde(default)]
        permanent: bool,
    }
    let request: Request = parse(input)?;
    pool_of(identity, &request.user_pool_id)?
        .admin_set_user_password(&request.username, &request.password, request.permanent)
        .await?;
    Ok(json!({}))
}

async fn admin_get_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: PoolUser = parse(input)?;
    let user = pool_of(identity, &request.user_pool_id)?.admin_get_user(&request.username)?;
    let (preferred, list) = mfa_settings(&user);
    let mut body = user_type(&user);
    body["UserAttributes"] = body["Attributes"].take();
    body.as_object_mut().map(|object| object.remove("Attributes"));
    body["UserMFASettingList"] = list;
    if !preferred.is_null() {
        body["PreferredMfaSetting"] = preferred;
    }
    Ok(body)
}

async fn admin_delete_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: PoolUser = parse(input)?;
    pool_of(identity, &request.user_pool_id)?.admin_delete_user(&request.username).await?;
    Ok(json!({}))
}

async fn admin_set_enabled(identity: &Identity, input: Value, enabled: bool) -> Result<Value, RequestError> {
    let request: PoolUser = parse(input)?;
    pool_of(identity, &request.user_pool_id)?.admin_set_enabled(&request.username, enabled).await?;
    Ok(json!({}))
}

async fn admin_set_membership(
    identity: &Identity,
    input: Value,
    member: bool,
) -> Result<Value, RequestError> {
    let request: Membership = parse(input)?;
    pool_of(identity, &request.user_pool_id)?
        .set_membership(&request.username, &request.group_name, member)
        .await?;
    Ok(json!({}))
}

async fn list_users(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        filter: Option<String>,
        limit: Option<usize>,
        pagination_token: Option<String>,
    }
    let request: Request = parse(input)?;
    let (users, next) = pool_of(identity, &request.user_pool_id)?.list_users(
        request.filter.as_deref(),
        request.limit.unwrap_or(60),
        request.pagination_token.as_deref(),
    )?;
    let mut body = json!({ "Users": users.iter().map(user_type).collect::<Vec<_>>() });
    if let Some(next) = next {
        body["PaginationToken"] = json!(next);
    }
    Ok(body)
}

async fn create_group(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        group_name: String,
        description: Option<String>,
        precedence: Option<i64>,
    }
    let request: Request = parse(input)?;
    let group = pool_of(identity, &request.user_pool_id)?
        .create_group(&request.group_name, request.description, request.precedence)
        .await?;
    Ok(json!({ "Group": group_type(&request.user_pool_id, &group) }))
}

async fn list_groups(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
    }
    let request: Request = parse(input)?;
    let groups = pool_of(identity, &request.user_pool_id)?.groups()?;
    Ok(
        json!({ "Groups": groups.iter().map(|group| group_type(&request.user_pool_id, group)).collect::<Vec<_>>() }),
    )
}

fn group_type(pool_id: &str, group: &super::Group) -> Value {
    let mut body = json!({
        "GroupName": group.name, "UserPoolId": pool_id,
        "CreationDate": group.created_at, "LastModifiedDate": group.updated_at,
    });
    if let Some(description) = &group.description {
        body["Description"] = json!(description);
    }
    if let Some(precedence) = group.precedence {
        body["Precedence"] = json!(precedence);
    }
    body
}
