//! The gateway in front of the APIs (API Gateway's role), as one layer around any API router
//! ([`Gateway::wrap`]), in the order API Gateway applies them: the stage's and the method's
//! throttles (`throttle`), the API key and its usage plan for APIs that require one (`keys`,
//! `plans`), then the per-caller response cache (`cache`). A cache hit or a refusal invokes no
//! function and takes no function slot.

mod admin;
mod authorizers;
mod cache;
mod config;
mod keys;
pub(crate) mod openapi;
mod plans;
mod throttle;
pub mod websocket;

pub(crate) use authorizers::AuthorizerParts;
pub use config::{
    AuthorizerKind, FunctionAuthorizerConfig, GatewayConfig, Lifetime, MAX_CACHE_TTL, PlanConfig,
    QuotaPeriod, Throttle,
};
pub use keys::{ApiKey, ApiKeys};
pub use websocket::{Connections, PostError, WebSocketConfig};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts as _, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use authorizers::{Guard, RouteAuthorizers};
pub use cache::Scope;
use cache::{Lookup, ResponseCache, cacheable, refresh_requested};
use plans::{Refusal, UsagePlans};
use throttle::Throttles;

use crate::infra::clock::Clock;
use crate::infra::http::Problem;
use crate::infra::http::body::BodyLimit;
use crate::services::cognito::authorizer::Authorizer;

/// How the gateway treats one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiOptions {
    /// Requires an API key of a usage plan, when the stage has plans.
    pub requires_key: bool,
    /// The largest JSON body the gateway reads to check it against the document (the API's
    /// own limit: 413 beyond).
    pub max_body_bytes: usize,
    /// Refuses query parameters the document does not list. Off for links that travel by
    /// email, which mail systems decorate with parameters of their own.
    pub strict_query: bool,
    /// Caches its GETs, forgetting on writes as the scope says; `None`: never cached.
    pub cache: Option<Scope>,
}

#[derive(Debug)]
pub(crate) struct Gateway {
    throttles: Throttles,
    plans: Option<UsagePlans>,
    cache: Option<ResponseCache>,
    authorizer: Arc<Authorizer>,
    authorizers: RouteAuthorizers,
    document: openapi::ApiDocument,
    connections: Arc<Connections>,
    config: GatewayConfig,
}

impl Gateway {
    pub(crate) fn new(
        config: &GatewayConfig,
        keys: ApiKeys,
        authorizer: Arc<Authorizer>,
        authorizers: AuthorizerParts,
        document: openapi::ApiDocument,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let plans =
            (!config.plans.is_empty()).then(|| UsagePlans::new(&config.plans, keys, Arc::clone(&clock)));
        let cache = (!config.cache_ttl.is_zero() || !config.cache_ttls.is_empty())
            .then(|| ResponseCache::new(config.cache_bytes, clock));
        Self {
            throttles: Throttles::new(config.rate, config.burst, &config.methods),
            plans,
            cache,
            authorizer,
            authorizers: RouteAuthorizers::new(config, authorizers),
            document,
            connections: Arc::new(Connections::new(config.websocket.clone())),
            config: config.clone(),
        }
    }

    /// The function authorizers `[gateway.authorization]` uses whose function no one registered.
    pub(crate) fn missing_authorizer_functions(&self) -> Vec<String> {
        self.authorizers.missing_functions()
    }

    /// `/v1/openapi.json` and the docs page.
    pub(crate) fn document_routes(&self) -> Router {
        self.document.routes()
    }

    /// The WebSocket API's open connections: push to a user, post to a connection.
    pub(crate) fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// `/v1/ws`, behind the stage's throttles.
    pub(crate) fn websocket_api(self: &Arc<Self>) -> Router {
        let api = websocket::router(Arc::clone(&self.connections), Arc::clone(&self.authorizer));
        self.wrap(api, ApiOptions { requires_key: false, max_body_bytes: 0, strict_query: true, cache: None })
    }

    /// `/v1/api-keys`, for the admins group: a router to mount as an HTTP function.
    pub(crate) fn admin_api(&self, keys: ApiKeys, clock: Arc<dyn Clock>) -> Router {
        admin::router(admin::AdminContext {
            keys,
            authorizer: Arc::clone(&self.authorizer),
            plans: self.config.plans.keys().cloned().collect(),
            admins_group: self.config.admins_group.clone(),
            clock,
        })
    }

    /// The admin API's part of the OpenAPI document.
    pub(crate) fn admin_document() -> utoipa::openapi::OpenApi {
        <admin::ApiKeysApi as utoipa::OpenApi>::openapi()
    }

    /// `api` behind the gateway.
    pub(crate) fn wrap(self: &Arc<Self>, api: Router, options: ApiOptions) -> Router {
        api.layer(axum::middleware::from_fn_with_state((Arc::clone(self), options), handle))
    }

    /// Forgets a caller's cached responses: their data changed.
    pub(crate) fn forget_caller(&self, sub: &str) {
        if let Some(cache) = &self.cache {
            cache.forget(sub);
        }
    }

    /// Forgets every cached response: public data changed.
    pub(crate) fn forget_all(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Writes the usage plans' counts and forgets idle limiter state; every second, and once
    /// more at shutdown.
    pub(crate) async fn upkeep(&self) {
        if let Some(plans) = &self.plans {
            plans.flush().await;
            plans.prune();
        }
    }

    fn ttl(&self, method: &Method, path: &str) -> Duration {
        if self.config.cache_ttls.is_empty() {
            return self.config.cache_ttl;
        }
        self.config.cache_ttls.get(&format!("{method} {path}")).map_or(self.config.cache_ttl, |ttl| ttl.0)
    }

    /// The caller a request to a user-pool route speaks for: `Some("")` without credentials, the
    /// `sub` of a valid access token, `None` for a token that does not verify (the function
    /// answers that).
    async fn caller(&self, request: &mut Request) -> Option<String> {
        let Some(value) = request.headers().get(header::AUTHORIZATION) else { return Some(String::new()) };
        let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim().to_owned();
        let principal = self.authorizer.authenticate(&token).await.ok()?;
        let sub = principal.sub.clone();
        // The function's authorizer finds it and does not verify the token again.
        request.extensions_mut().insert(principal);
        Some(sub)
    }
}

async fn handle(
    State((gateway, options)): State<(Arc<Gateway>, ApiOptions)>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let method = request.method().clone();
    let declared = path.as_deref().unwrap_or_else(|| request.uri().path()).to_owned();
    if let Err(retry_after) = gateway.throttles.admit(&method, &declared) {
        return refused(Refusal::Throttled { retry_after });
    }
    let guard = gateway.authorizers.guard(request.method(), path.as_deref());
    let (request, body) = match read_body(&gateway, &options, &guard, path.as_deref(), request).await {
        Ok(read) => read,
        Err(refusal) => return refusal,
    };
    let (mut parts, unread) = request.into_parts();
    let path_values: Vec<(String, String)> = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(values) => values.iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        Err(_) => Vec::new(),
    };
    let signed_body = body.as_deref().unwrap_or_default();
    let admitted = match gateway.authorizers.admit(&guard, &parts, &declared, &path_values, signed_body).await
    {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    if let (true, Some(plans)) = (options.requires_key, &gateway.plans) {
        let key = parts.headers.get("x-api-key").and_then(|value| value.to_str().ok());
        if let Err(refusal) = plans.admit(key) {
            return refused(refusal);
        }
    }
    // The function finds the caller an authorizer let in, and does not verify them again.
    let caller = admitted.map(|admitted| {
        if let Some(principal) = admitted.principal {
            parts.extensions.insert(principal);
        }
        admitted.caller
    });
    let mut request = Request::from_parts(parts, unread);
    // Checked against the document before the function runs. A cache hit needs no check: it
    // answers the same path and query that passed it when the entry was filled.
    let invalid = |request: &Request| {
        let route = path.as_deref()?;
        let checked_body = body.as_deref().filter(|_| is_json(request.headers()));
        let (method, query) = (request.method(), request.uri().query());
        let checked =
            gateway.document.check(method, route, &path_values, query, checked_body, options.strict_query);
        checked.err().map(IntoResponse::into_response)
    };
    let (Some(cache), Some(scope)) = (&gateway.cache, options.cache) else {
        return match invalid(&request) {
            Some(problem) => problem,
            None => next.run(request).await,
        };
    };
    if !cacheable(request.method(), request.headers()) {
        if let Some(problem) = invalid(&request) {
            return problem;
        }
        let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let caller = match caller {
            Some(caller) => Some(caller),
            None if writes && scope == Scope::Caller => gateway.caller(&mut request).await,
            None => None,
        };
        let response = next.run(request).await;
        // A write through the gateway forgets at once; other writers' changes arrive through
        // the change stream.
        if writes && response.status().is_success() {
            match (scope, caller) {
                (Scope::Public, _) => cache.clear(),
                (Scope::Caller, Some(caller)) => cache.forget(&caller),
                (Scope::Caller, None) => {}
            }
        }
        return response;
    }
    let caller = match caller {
        Some(caller) => Some(caller),
        None => gateway.caller(&mut request).await,
    };
    let Some(caller) = caller else {
        // A token that does not verify: the function answers it.
        return match invalid(&request) {
            Some(problem) => problem,
            None => next.run(request).await,
        };
    };
    let target =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), ToString::to_string);
    match cache.lookup(&caller, &target, refresh_requested(request.headers())) {
        Lookup::Hit(response) => response,
        Lookup::Miss(miss) => {
            if let Some(problem) = invalid(&request) {
                return problem;
            }
            let ttl = gateway.ttl(&method, &declared);
            let response = next.run(request).await;
            cache.fill(miss, ttl, response).await
        }
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim() == "application/json" || media.trim().ends_with("+json"))
}

/// The request with its body read whole when something in front of the function needs it: a
/// SigV4 signature covers it, the document has a schema for a JSON one. It is read within the
/// API's limit and the connection's pace; refusals are the REST API's (413, 408, 400).
async fn read_body(
    gateway: &Gateway,
    options: &ApiOptions,
    guard: &Guard,
    route: Option<&str>,
    request: Request,
) -> Result<(Request, Option<Bytes>), Response> {
    let validated = route.is_some_and(|route| gateway.document.checks_body(request.method(), route));
    let needed = RouteAuthorizers::reads_body(guard) || (validated && is_json(request.headers()));
    if !needed {
        return Ok((request, None));
    }
    let limit = BodyLimit::new(options.max_body_bytes, Problem::body_refused);
    let (request, bytes) = limit.read_whole(request).await?;
    Ok((request, Some(bytes)))
}

/// A refusal in API Gateway's words: `{"message": …}`, with `Retry-After` on a 429.
fn refused(refusal: Refusal) -> Response {
    let (status, message, kind, retry_after) = match refusal {
        Refusal::Forbidden => (StatusCode::FORBIDDEN, "Forbidden", "ForbiddenException", None),
        Refusal::Throttled { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "TooManyRequestsException",
            Some(retry_after),
        ),
        Refusal::LimitExceeded { retry_after } => {
            (StatusCode::TOO_MANY_REQUESTS, "Limit Exceeded", "LimitExceededException", Some(retry_after))
        }
    };
    let mut response = (status, axum::Json(serde_json::json!({ "message": message }))).into_response();
    let headers = response.headers_mut();
    headers.insert("x-amzn-errortype", HeaderValue::from_static(kind));
    if let Some(wait) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(crate::infra::http::retry_after_seconds(wait)));
    }
    response
}
