//! Cognito identity pools' wire protocol: the `AWSCognitoIdentityService.<Operation>` targets of
//! the JSON 1.1 endpoint, and the issuer documents of their OpenID tokens. `GetId`,
//! `GetCredentialsForIdentity` and `GetOpenIdToken` are unsigned, as in AWS (the login token is
//! the proof); managing pools and reading identities takes the operator's signature.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{IdentityPoolError, IdentityPools, IdentityRecord, PoolRecord, Provider};
use crate::infra::aws_json::{JsonCall, JsonFault, JsonService};
use crate::infra::sigv4::SignatureError;
use crate::services::cognito::user_pool::Identity;

#[derive(Debug)]
pub(crate) struct IdentityPoolService {
    pub(crate) pools: Arc<IdentityPools>,
    /// The user pools' endpoint settings: the per-address throttle and the operator.
    pub(crate) identity: Arc<Identity>,
}

/// What `X-Amz-Target` names; `access` says who may call it, exhaustively, so no operator
/// operation can be served unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    GetId,
    GetCredentialsForIdentity,
    GetOpenIdToken,
    CreateIdentityPool,
    DescribeIdentityPool,
    ListIdentityPools,
    SetIdentityPoolRoles,
    GetIdentityPoolRoles,
    ListIdentities,
    DescribeIdentity,
}

impl Operation {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GetId" => Self::GetId,
            "GetCredentialsForIdentity" => Self::GetCredentialsForIdentity,
            "GetOpenIdToken" => Self::GetOpenIdToken,
            "CreateIdentityPool" => Self::CreateIdentityPool,
            "DescribeIdentityPool" => Self::DescribeIdentityPool,
            "ListIdentityPools" => Self::ListIdentityPools,
            "SetIdentityPoolRoles" => Self::SetIdentityPoolRoles,
            "GetIdentityPoolRoles" => Self::GetIdentityPoolRoles,
            "ListIdentities" => Self::ListIdentities,
            "DescribeIdentity" => Self::DescribeIdentity,
            _ => return None,
        })
    }

    /// Whether only the operator may call it.
    fn signed(self) -> bool {
        match self {
            Self::GetId | Self::GetCredentialsForIdentity | Self::GetOpenIdToken => false,
            Self::CreateIdentityPool
            | Self::DescribeIdentityPool
            | Self::ListIdentityPools
            | Self::SetIdentityPoolRoles
            | Self::GetIdentityPoolRoles
            | Self::ListIdentities
            | Self::DescribeIdentity => true,
        }
    }
}

#[async_trait]
impl JsonService for IdentityPoolService {
    fn target(&self) -> &'static str {
        "AWSCognitoIdentityService"
    }

    async fn call(&self, call: JsonCall<'_>) -> Result<Value, JsonFault> {
        self.identity
            .throttle
            .request(call.peer.ip())
            .map_err(|error| JsonFault::client("TooManyRequestsException", error.to_string()))?;
        let operation = Operation::parse(call.operation).ok_or_else(|| {
            JsonFault::client("UnknownOperationException", format!("Unknown operation {}", call.operation))
        })?;
        if operation.signed() {
            self.check_operator(&call)?;
        }
        let span = tracing::info_span!("cognito_identity", operation = call.operation);
        let (pools, input) = (&*self.pools, call.input);
        let handled = async move {
            match operation {
                Operation::GetId => get_id(pools, input).await,
                Operation::GetCredentialsForIdentity => get_credentials_for_identity(pools, input).await,
                Operation::GetOpenIdToken => get_open_id_token(pools, input).await,
                Operation::CreateIdentityPool => create_identity_pool(pools, input).await,
                Operation::DescribeIdentityPool => describe_identity_pool(pools, input),
                Operation::ListIdentityPools => list_identity_pools(pools, input),
                Operation::SetIdentityPoolRoles => set_identity_pool_roles(pools, input).await,
                Operation::GetIdentityPoolRoles => get_identity_pool_roles(pools, input),
                Operation::ListIdentities => list_identities(pools, input),
                Operation::DescribeIdentity => describe_identity(pools, input),
            }
        };
        tracing::Instrument::instrument(handled, span).await
    }
}

impl IdentityPoolService {
    fn check_operator(&self, call: &JsonCall<'_>) -> Result<(), JsonFault> {
        let operator = self.identity.operator();
        call.verify_signature(&operator.access_key_id, &operator.secret_access_key, self.identity.now())
            .map_err(|error| {
                let type_name = match error {
                    SignatureError::Missing => "MissingAuthenticationTokenException",
                    SignatureError::UnknownAccessKey => "UnrecognizedClientException",
                    _ => "InvalidSignatureException",
                };
                JsonFault::client(type_name, error.to_string())
            })
    }
}

/// The failure as Cognito names it; Stratus's own are logged.
fn fault(error: &IdentityPoolError) -> JsonFault {
    let type_name = match error {
        IdentityPoolError::PoolNotFound(_) | IdentityPoolError::IdentityNotFound(_) => {
            "ResourceNotFoundException"
        }
        IdentityPoolError::GuestsNotAllowed
        | IdentityPoolError::UnknownProvider
        | IdentityPoolError::InvalidLogin(_)
        | IdentityPoolError::LoginsMismatch => "NotAuthorizedException",
        IdentityPoolError::SeveralLogins | IdentityPoolError::InvalidParameter(_) => {
            "InvalidParameterException"
        }
        IdentityPoolError::NoRole => "InvalidIdentityPoolConfigurationException",
        IdentityPoolError::NameTaken(_) => "ResourceConflictException",
        IdentityPoolError::Storage(_) | IdentityPoolError::Keys(_) | IdentityPoolError::OpenId(_) => {
            tracing::error!(error = %crate::infra::telemetry::error_chain(error), "identity pool request failed");
            return JsonFault {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                type_name: "InternalErrorException",
                message: error.to_string(),
            };
        }
    };
    JsonFault::client(type_name, error.to_string())
}

fn parse<T: DeserializeOwned>(input: Value) -> Result<T, JsonFault> {
    serde_json::from_value(input).map_err(|error| {
        JsonFault::client("InvalidParameterException", format!("1 validation error detected: {error}"))
    })
}

/// A full page continues after its last id; a short one is the end.
fn next_token<'a>(ids: impl ExactSizeIterator<Item = &'a str>, max_results: usize) -> Option<&'a str> {
    let full = ids.len() == max_results.clamp(1, 60);
    ids.last().filter(|_| full)
}

fn logins_of(identity: &IdentityRecord) -> Value {
    json!(identity.login.iter().map(|(provider, _)| provider).collect::<Vec<_>>())
}

fn identity_description(identity: &IdentityRecord) -> Value {
    json!({
        "IdentityId": identity.id,
        "Logins": logins_of(identity),
        "CreationDate": identity.created_at,
        "LastModifiedDate": identity.last_modified,
    })
}

fn pool_description(pool: &PoolRecord) -> Value {
    json!({
        "IdentityPoolId": pool.id,
        "IdentityPoolName": pool.name,
        "AllowUnauthenticatedIdentities": pool.allow_unauthenticated,
        "CognitoIdentityProviders": pool.providers.iter().map(|provider| json!({
            "ProviderName": provider.name, "ClientId": provider.client_id, "ServerSideTokenCheck": true,
        })).collect::<Vec<_>>(),
    })
}

/// The request of the operations an identity makes with its logins.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdentityLogins {
    identity_id: String,
    #[serde(default)]
    logins: BTreeMap<String, String>,
}

async fn get_id(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        identity_pool_id: String,
        #[serde(default)]
        logins: BTreeMap<String, String>,
    }
    let request: Request = parse(input)?;
    let identity =
        pools.get_id(&request.identity_pool_id, &request.logins).await.map_err(|error| fault(&error))?;
    Ok(json!({ "IdentityId": identity.id }))
}

async fn get_credentials_for_identity(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    let request: IdentityLogins = parse(input)?;
    let issued =
        pools.credentials_for(&request.identity_id, &request.logins).await.map_err(|error| fault(&error))?;
    let credentials = &issued.credentials;
    Ok(json!({
        "IdentityId": issued.identity_id,
        "Credentials": {
            "AccessKeyId": credentials.access_key_id,
            "SecretKey": credentials.secret_access_key,
            "SessionToken": credentials.session_token,
            // Epoch seconds, a JSON number, as AWS's JSON protocol writes timestamps.
            "Expiration": credentials.expiration,
        },
    }))
}

async fn get_open_id_token(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    let request: IdentityLogins = parse(input)?;
    let (identity_id, token) =
        pools.open_id_token(&request.identity_id, &request.logins).await.map_err(|error| fault(&error))?;
    Ok(json!({ "IdentityId": identity_id, "Token": token }))
}

/// The identity pools' issuer documents: its JWKS and OpenID discovery.
pub(crate) fn issuer_routes(pools: Arc<IdentityPools>) -> Router {
    async fn jwks(State(pools): State<Arc<IdentityPools>>) -> Response {
        ([(header::CACHE_CONTROL, "public, max-age=300")], Json(pools.openid().jwks())).into_response()
    }
    async fn discovery(State(pools): State<Arc<IdentityPools>>) -> Response {
        let issuer = pools.openid().issuer();
        let document = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        ([(header::CACHE_CONTROL, "public, max-age=300")], Json(document)).into_response()
    }
    Router::new()
        .route("/cognito-identity/.well-known/jwks.json", get(jwks))
        .route("/cognito-identity/.well-known/openid-configuration", get(discovery))
        .with_state(pools)
}

async fn create_identity_pool(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ProviderInput {
        provider_name: String,
        client_id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        identity_pool_name: String,
        allow_unauthenticated_identities: bool,
        #[serde(default)]
        cognito_identity_providers: Vec<ProviderInput>,
    }
    let request: Request = parse(input)?;
    let providers = request
        .cognito_identity_providers
        .into_iter()
        .map(|provider| Provider { name: provider.provider_name, client_id: provider.client_id })
        .collect();
    let pool = pools
        .create_pool(&request.identity_pool_name, request.allow_unauthenticated_identities, providers)
        .await
        .map_err(|error| fault(&error))?;
    Ok(pool_description(&pool))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoolId {
    identity_pool_id: String,
}

fn describe_identity_pool(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    let request: PoolId = parse(input)?;
    Ok(pool_description(&pools.pool(&request.identity_pool_id).map_err(|error| fault(&error))?))
}

fn list_identity_pools(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        max_results: usize,
        next_token: Option<String>,
    }
    let request: Request = parse(input)?;
    let page =
        pools.pools(request.next_token.as_deref(), request.max_results).map_err(|error| fault(&error))?;
    let mut body = json!({
        "IdentityPools": page.iter().map(|pool| json!({"IdentityPoolId": pool.id, "IdentityPoolName": pool.name})).collect::<Vec<_>>(),
    });
    if let Some(next) = next_token(page.iter().map(|item| item.id.as_str()), request.max_results) {
        body["NextToken"] = json!(next);
    }
    Ok(body)
}

async fn set_identity_pool_roles(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        identity_pool_id: String,
        roles: BTreeMap<String, String>,
    }
    let request: Request = parse(input)?;
    if let Some(unknown) =
        request.roles.keys().find(|kind| !matches!(kind.as_str(), "authenticated" | "unauthenticated"))
    {
        return Err(JsonFault::client(
            "InvalidParameterException",
            format!("Roles may name `authenticated` and `unauthenticated`, not `{unknown}`"),
        ));
    }
    pools
        .set_roles(
            &request.identity_pool_id,
            request.roles.get("authenticated").cloned(),
            request.roles.get("unauthenticated").cloned(),
        )
        .await
        .map_err(|error| fault(&error))?;
    Ok(json!({}))
}

fn get_identity_pool_roles(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    let request: PoolId = parse(input)?;
    let pool = pools.pool(&request.identity_pool_id).map_err(|error| fault(&error))?;
    let mut roles = serde_json::Map::new();
    if let Some(role) = &pool.authenticated_role {
        roles.insert("authenticated".into(), json!(role));
    }
    if let Some(role) = &pool.unauthenticated_role {
        roles.insert("unauthenticated".into(), json!(role));
    }
    Ok(json!({ "IdentityPoolId": pool.id, "Roles": roles }))
}

fn list_identities(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        identity_pool_id: String,
        max_results: usize,
        next_token: Option<String>,
    }
    let request: Request = parse(input)?;
    let page = pools
        .identities(&request.identity_pool_id, request.next_token.as_deref(), request.max_results)
        .map_err(|error| fault(&error))?;
    let mut body = json!({
        "IdentityPoolId": request.identity_pool_id,
        "Identities": page.iter().map(identity_description).collect::<Vec<_>>(),
    });
    if let Some(next) = next_token(page.iter().map(|item| item.id.as_str()), request.max_results) {
        body["NextToken"] = json!(next);
    }
    Ok(body)
}

fn describe_identity(pools: &IdentityPools, input: Value) -> Result<Value, JsonFault> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        identity_id: String,
    }
    let request: Request = parse(input)?;
    Ok(identity_description(&pools.identity(&request.identity_id).map_err(|error| fault(&error))?))
}
