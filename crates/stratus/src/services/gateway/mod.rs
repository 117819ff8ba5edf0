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
mod layer;
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
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};

use authorizers::RouteAuthorizers;
use cache::ResponseCache;
pub use cache::Scope;
use plans::UsagePlans;
use throttle::Throttles;

use crate::infra::clock::Clock;
use crate::services::cognito::authorizer::Authorizer;
use crate::services::cognito::tokens::AccessClaims;

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
        api.layer(layer::GatewayLayer { gateway: Arc::clone(self), options })
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

    /// The caller when known without waiting: anonymous, or the holder of an access token
    /// verified before. `None`: the token must be verified first (or does not verify).
    fn caller_at_once(&self, headers: &HeaderMap) -> Option<Caller> {
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Some(Caller::Anonymous) };
        let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
        self.authorizer.verified_before(token).map(Caller::Token)
    }
}

/// Whom the response cache keys a request by.
enum Caller {
    Anonymous,
    Token(Arc<AccessClaims>),
}

impl Caller {
    fn key(&self) -> &str {
        match self {
            Self::Anonymous => "",
            Self::Token(claims) => &claims.sub,
        }
    }
}
