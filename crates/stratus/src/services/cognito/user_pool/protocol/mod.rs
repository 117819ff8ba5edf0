//! Cognito user pools' wire protocol: the `AWSCognitoIdentityProviderService.<Operation>`
//! targets of the JSON 1.1 endpoint (`infra::aws_json`), plus each pool's JWKS and OpenID
//! discovery documents under its issuer URL. Here: which operation, and who may call it; the
//! handlers are in [`public`] and [`admin`], one per operation, the response shapes in
//! [`shapes`], and Cognito's `__type` for every failure in [`error`].

mod admin;
mod error;
mod public;
mod shapes;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument as _;

use crate::infra::aws_json::{self, JsonCall, JsonFault, JsonService};

use self::admin::route_admin;
use self::error::{RequestError, fault};
use self::public::route;
use super::operation::Operation;
use super::{Identity, UserPool};

/// Cognito requests are small; anything bigger is refused while it streams in.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Each pool's JWKS and OpenID discovery documents, under its issuer URL.
pub(crate) fn issuer_routes(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/{pool_id}/.well-known/jwks.json", get(jwks))
        .route("/{pool_id}/.well-known/openid-configuration", get(discovery))
        .layer(aws_json::cors())
        .with_state(identity)
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

/// The user pools' operations (`AWSCognitoIdentityProviderService.*`) on the JSON endpoint.
#[derive(Debug)]
pub(crate) struct UserPoolService(pub(crate) Arc<Identity>);

#[async_trait]
impl JsonService for UserPoolService {
    fn target(&self) -> &'static str {
        "AWSCognitoIdentityProviderService"
    }

    async fn call(&self, call: JsonCall<'_>) -> Result<Value, JsonFault> {
        handle(&self.0, call).await.map_err(|error| fault(&error))
    }
}

async fn handle(identity: &Identity, call: JsonCall<'_>) -> Result<Value, RequestError> {
    identity.throttle.request(call.peer.ip())?;
    let name = call.operation;
    let operation = Operation::parse(name).ok_or_else(|| RequestError::UnknownOperation(name.to_owned()))?;
    tracing::debug!(operation = name, "identity request");
    let span = tracing::info_span!("cognito", operation = name);
    match operation {
        Operation::Public(operation) => route(identity, operation, call.input).instrument(span).await,
        Operation::Operator(operation) => {
            check_operator(identity, &call)?;
            route_admin(identity, operation, call.input).instrument(span).await
        }
    }
}

fn check_operator(identity: &Identity, call: &JsonCall<'_>) -> Result<(), RequestError> {
    let operator = identity.operator();
    call.verify_signature(&operator.access_key_id, &operator.secret_access_key, identity.now())?;
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
