//! Cognito's JSON 1.1 wire protocol: `POST /` with `X-Amz-Target:
//! AWSCognitoIdentityProviderService.<Operation>`, plus each pool's JWKS and OpenID discovery
//! documents under its issuer URL. Here: reading a request and checking who may make it; the
//! handlers are in [`public`] and [`admin`], one per operation, the response shapes in
//! [`shapes`], and Cognito's `__type` for every failure in [`error`].

mod admin;
mod error;
mod public;
mod shapes;

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
use crate::infra::sigv4::{self, SignedRequest};

use self::admin::route_admin;
use self::error::{RequestError, error_response};
use self::public::route;
use super::operation::Operation;
use super::{Identity, UserPool};

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
