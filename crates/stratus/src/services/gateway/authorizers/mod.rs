//! The authorizer of each route (API Gateway's per-method authorization), by
//! `[gateway.authorization]`: the user pool's access tokens (every route's default, checked as
//! the API asks for them), IAM (`iam`: SigV4 with an identity's temporary credentials, allowed
//! by `execute-api:Invoke` on the method's ARN through the same IAM evaluator as the S3
//! endpoint), or a function authorizer (`function`). The latter two decide here, before the
//! usage plan and the function, and hand the function the [`Principal`] they vouch for.

mod function;
mod iam;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::config::{GatewayConfig, IAM, USER_POOL};
use crate::infra::clock::Clock;
use crate::services::cognito::authorizer::Principal;
use crate::services::cognito::identity_pool::IdentityPools;
use crate::services::functions::AuthorizerFunctions;
use function::FunctionAuthorizer;
use iam::IamAuthorizer;

/// What the route authorizers are built from.
#[derive(Debug)]
pub(crate) struct AuthorizerParts {
    pub pools: Arc<IdentityPools>,
    pub iam: Arc<crate::services::iam::Iam>,
    pub functions: AuthorizerFunctions,
    pub region: String,
    pub stage: String,
    pub clock: Arc<dyn Clock>,
}

/// The authorizer of one route.
#[derive(Debug, Clone)]
pub(crate) enum Guard {
    /// Access tokens, checked by the API's own extractor (or by the response cache, which keys
    /// by the caller).
    UserPool,
    Iam,
    Function(Arc<FunctionAuthorizer>),
}

/// Who an IAM or function authorizer let in.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    /// The caller the response cache keys by.
    pub caller: String,
    /// The user the function sees; `None` when the credentials are not a user's (the operator's,
    /// a guest identity's).
    pub principal: Option<Principal>,
}

#[derive(Debug)]
pub(crate) struct RouteAuthorizers {
    routes: HashMap<String, Guard>,
    iam: IamAuthorizer,
    functions: AuthorizerFunctions,
    /// `arn:aws:execute-api:<region>:<account>:<api>/<stage>`.
    arn_prefix: String,
    account: String,
    api_id: String,
    stage: String,
}

impl RouteAuthorizers {
    pub(crate) fn new(config: &GatewayConfig, parts: AuthorizerParts) -> Self {
        let account = parts.iam.account().to_owned();
        let authorizers: HashMap<&str, Arc<FunctionAuthorizer>> = config
            .authorizers
            .iter()
            .map(|(name, settings)| {
                let authorizer = FunctionAuthorizer::new(
                    name,
                    settings,
                    parts.functions.clone(),
                    Arc::clone(&parts.clock),
                );
                (name.as_str(), Arc::new(authorizer))
            })
            .collect();
        let routes = config
            .authorization
            .iter()
            .map(|(route, name)| {
                let guard = match name.as_str() {
                    USER_POOL => Guard::UserPool,
                    IAM => Guard::Iam,
                    // Validated: every other name is a function authorizer's.
                    other => {
                        authorizers.get(other).map_or(Guard::UserPool, |f| Guard::Function(Arc::clone(f)))
                    }
                };
                (route.clone(), guard)
            })
            .collect();
        Self {
            routes,
            iam: IamAuthorizer::new(parts.pools, parts.iam, &parts.region, parts.clock),
            functions: parts.functions,
            arn_prefix: format!(
                "arn:aws:execute-api:{}:{account}:{}/{}",
                parts.region, config.api_id, parts.stage
            ),
            account,
            api_id: config.api_id.clone(),
            stage: parts.stage,
        }
    }

    /// The authorizer of `method` on `route` (as declared: `/v1/todos/{id}`).
    pub(crate) fn guard(&self, method: &Method, route: Option<&str>) -> Guard {
        let Some(route) = route else { return Guard::UserPool };
        if self.routes.is_empty() {
            return Guard::UserPool;
        }
        let exact = self.routes.get(&format!("{method} {route}"));
        exact.or_else(|| self.routes.get(&format!("ANY {route}"))).cloned().unwrap_or(Guard::UserPool)
    }

    /// Function authorizers whose function is not registered: start-up stops on them.
    pub(crate) fn missing_functions(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .routes
            .values()
            .filter_map(|guard| match guard {
                Guard::Function(authorizer) if !self.functions.contains(authorizer.function()) => {
                    Some(authorizer.function().to_owned())
                }
                _ => None,
            })
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Whether the guard needs the whole body (SigV4 signs it).
    pub(crate) fn reads_body(guard: &Guard) -> bool {
        matches!(guard, Guard::Iam)
    }

    /// Asks the route's IAM or function authorizer; `Ok(None)` for a user-pool route, whose
    /// token is checked later.
    pub(crate) async fn admit(
        &self,
        guard: &Guard,
        parts: &Parts,
        route: &str,
        path_parameters: &[(String, String)],
        body: &[u8],
    ) -> Result<Option<Admitted>, Response> {
        let method_arn = || self.method_arn(&parts.method, parts.uri.path());
        match guard {
            Guard::UserPool => Ok(None),
            Guard::Iam => {
                self.iam.admit(parts, body, &method_arn()).map(Some).map_err(Refusal::into_response)
            }
            Guard::Function(authorizer) => {
                let method_arn = method_arn();
                let request = function::Called {
                    parts,
                    route,
                    path_parameters,
                    method_arn: &method_arn,
                    account: &self.account,
                    api_id: &self.api_id,
                    stage: &self.stage,
                };
                authorizer.admit(request).await.map(Some).map_err(Refusal::into_response)
            }
        }
    }

    /// `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`, the path as sent
    /// without its leading `/`.
    fn method_arn(&self, method: &Method, path: &str) -> String {
        format!("{}/{method}/{}", self.arn_prefix, path.trim_start_matches('/'))
    }
}

/// An authorizer's refusal, in API Gateway's words and status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: StatusCode,
    /// `x-amzn-errortype`.
    kind: &'static str,
    /// The body: `{"message": …}`, or `{"Message": …}` for an authorizer policy's denials, as
    /// API Gateway spells them; `None` is `{"message": null}`.
    field: &'static str,
    message: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, field: "message", message: Some(message.into()) }
    }

    fn forbidden(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, kind, message)
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UnauthorizedException", "Unauthorized")
    }

    /// The authorizer failed or answered nonsense: 500 with `{"message": null}`.
    fn misconfigured() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "AuthorizerConfigurationException",
            field: "message",
            message: None,
        }
    }

    fn denied_by_policy(explicit: bool) -> Self {
        let message = if explicit {
            "User is not authorized to access this resource with an explicit deny"
        } else {
            "User is not authorized to access this resource"
        };
        Self { field: "Message", ..Self::forbidden("AccessDeniedException", message) }
    }

    fn into_response(self) -> Response {
        let body = serde_json::json!({ self.field: self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
