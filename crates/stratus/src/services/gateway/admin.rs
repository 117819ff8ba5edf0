//! `/v1/api-keys`: the usage plans' API keys over REST, for members of `[gateway]
//! admins_group` (the same store as `stratus api-keys`). A new key is shown once.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};

use super::keys::{ApiKey, ApiKeys};
use crate::infra::clock::Clock;
use crate::infra::http::rest::ApiJson;
use crate::infra::http::{Problem, Violation};
use crate::services::cognito::authorizer::{Authorizer, Principal};

#[derive(Debug, Clone)]
pub(crate) struct AdminState(Arc<AdminContext>);

#[derive(Debug)]
pub(crate) struct AdminContext {
    pub keys: ApiKeys,
    pub authorizer: Arc<Authorizer>,
    pub plans: Vec<String>,
    pub admins_group: String,
    pub clock: Arc<dyn Clock>,
}

impl FromRef<AdminState> for Arc<Authorizer> {
    fn from_ref(state: &AdminState) -> Self {
        Arc::clone(&state.0.authorizer)
    }
}

pub(crate) fn router(context: AdminContext) -> Router {
    Router::new()
        .route("/v1/api-keys", get(list_keys).post(create_key))
        .route("/v1/api-keys/{id}", delete(revoke_key))
        .with_state(AdminState(Arc::new(context)))
}

/// An API key as listed (never the key itself).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ApiKey)]
pub(super) struct KeyView {
    id: String,
    name: String,
    plan: String,
    /// Epoch seconds.
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            plan: key.plan,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new key: `key` is shown only in this answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct NewKey {
    #[serde(flatten)]
    record: KeyView,
    /// Send as `x-api-key`.
    key: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct KeyList {
    items: Vec<KeyView>,
}

/// What a new key is for.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyRequest {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// One of `[gateway.plans]`.
    plan: String,
}

impl AdminState {
    fn admit(&self, principal: &Principal) -> Result<(), Problem> {
        principal.require_group(&self.0.admins_group)
    }
}

const P: &str = "application/problem+json";

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("user_pool" = [])),
    responses((status = 200, description = "Every key", body = KeyList),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = P),
        (status = 403, description = "Not an admin", body = crate::infra::http::ProblemSchema, content_type = P)))]
async fn list_keys(State(state): State<AdminState>, principal: Principal) -> Result<Response, Problem> {
    state.admit(&principal)?;
    let keys = state.0.keys.list().map_err(|e| Problem::internal(&e))?;
    Ok(Json(KeyList { items: keys.into_iter().map(KeyView::from).collect() }).into_response())
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = KeyRequest, security(("user_pool" = [])),
    responses((status = 201, description = "The new key, shown once", body = NewKey),
        (status = 400, description = "No such plan, or an invalid name", body = crate::infra::http::ProblemSchema, content_type = P),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = P),
        (status = 403, description = "Not an admin", body = crate::infra::http::ProblemSchema, content_type = P),
        (status = 415, description = "The body is not JSON", body = crate::infra::http::ProblemSchema, content_type = P)))]
async fn create_key(
    State(state): State<AdminState>,
    principal: Principal,
    ApiJson(request): ApiJson<KeyRequest>,
) -> Result<Response, Problem> {
    state.admit(&principal)?;
    let mut violations = Vec::new();
    if !state.0.plans.contains(&request.plan) {
        let plans = if state.0.plans.is_empty() { "none".to_owned() } else { state.0.plans.join(", ") };
        violations.push(Violation::new(
            "/plan",
            format!("no usage plan `{}` (the stage's: {plans})", request.plan),
        ));
    }
    if request.name.trim().is_empty() || request.name.chars().count() > 200 {
        violations.push(Violation::new("/name", "must be 1 to 200 characters"));
    }
    if !violations.is_empty() {
        return Err(Problem::invalid(violations));
    }
    let now = state.0.clock.now_millis() / 1000;
    let (record, key) =
        state.0.keys.create(&request.name, &request.plan, now).map_err(|e| Problem::internal(&e))?;
    tracing::info!(id = %record.id, plan = %record.plan, by = %principal.sub, "API key created");
    Ok((StatusCode::CREATED, Json(NewKey { record: record.into(), key })).into_response())
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", security(("user_pool" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked; it stops working within a second"),
        (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = P),
        (status = 403, description = "Not an admin", body = crate::infra::http::ProblemSchema, content_type = P),
        (status = 404, description = "No active key with this id", body = crate::infra::http::ProblemSchema, content_type = P)))]
async fn revoke_key(
    State(state): State<AdminState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    state.admit(&principal)?;
    let now = state.0.clock.now_millis() / 1000;
    if !state.0.keys.revoke(&id, now).map_err(|e| Problem::internal(&e))? {
        return Err(Problem::new(StatusCode::NOT_FOUND, format!("no active API key `{id}`")));
    }
    tracing::info!(%id, by = %principal.sub, "API key revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `/v1/api-keys` in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(list_keys, create_key, revoke_key),
    components(schemas(KeyView, NewKey, KeyList, KeyRequest, crate::infra::http::ProblemSchema)),
    tags((name = "api-keys", description = "The usage plans' API keys, for members of the admins group."))
)]
pub(super) struct ApiKeysApi;
