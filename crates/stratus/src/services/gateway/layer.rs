//! The gateway as a tower layer on each route of an API. What can be decided without waiting —
//! the throttles, the route's authorizer, a usage plan's key and, for a caller whose token was
//! verified before, the response cache — is decided in `call` itself: a refusal or a cache hit
//! boxes no future, clones no inner service and awaits nothing, so a hit costs little more than
//! the HTTP exchange. Everything else (a body a signature covers, an authorizer function, a
//! token seen for the first time, document validation, the function and the cache fill)
//! continues in [`finish`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{FromRequestParts as _, MatchedPath, RawPathParams, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures::future::{BoxFuture, Either, Ready, ready};
use tower::{Layer, Service, ServiceExt as _};

use super::authorizers::{Guard, RouteAuthorizers};
use super::cache::{Lookup, Miss, Scope, cacheable, refresh_requested};
use super::plans::Refusal;
use super::{ApiOptions, Caller, Gateway};
use crate::infra::http::Problem;
use crate::infra::http::body::BodyLimit;
use crate::services::cognito::authorizer::principal;

/// [`Gateway::wrap`]'s layer.
#[derive(Debug, Clone)]
pub(super) struct GatewayLayer {
    pub(super) gateway: Arc<Gateway>,
    pub(super) options: ApiOptions,
}

impl<S> Layer<S> for GatewayLayer {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GatewayService { gateway: Arc::clone(&self.gateway), options: self.options, inner }
    }
}

#[derive(Debug, Clone)]
pub(super) struct GatewayService<S> {
    gateway: Arc<Gateway>,
    options: ApiOptions,
    inner: S,
}

impl<S> Service<Request> for GatewayService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<Ready<Result<Response, Infallible>>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is a route, always ready: answering instead strands nothing.
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.gateway.decide(&self.options, &mut request) {
            Decided::Answered(response) => Either::Left(ready(Ok(response))),
            Decided::Pending(pending) => {
                // The readied service goes with the request; a clone stays for the next one.
                let fresh = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, fresh);
                let (gateway, options) = (Arc::clone(&self.gateway), self.options);
                Either::Right(Box::pin(
                    async move { Ok(finish(gateway, options, pending, request, inner).await) },
                ))
            }
        }
    }
}

/// What [`Gateway::decide`] made of a request.
enum Decided {
    /// Refused, or answered from the cache.
    Answered(Response),
    Pending(Pending),
}

/// What was decided about a request that must wait for something.
struct Pending {
    /// The route as declared (`/v1/todos/{id}`), when the router matched one.
    route: Option<MatchedPath>,
    guard: Guard,
    /// Whether the usage plan has admitted the request's key already (or none is required).
    keyed: bool,
    /// The cache's miss, when it was asked already.
    missed: Option<Miss>,
}

impl Gateway {
    /// The stage's throttles, the route's authorizer, and for a user-pool route the key and the
    /// cache — in API Gateway's order, as far as it goes without waiting.
    fn decide(&self, options: &ApiOptions, request: &mut Request) -> Decided {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let declared = route.as_ref().map_or_else(|| request.uri().path(), MatchedPath::as_str);
        if let Err(retry_after) = self.throttles.admit(request.method(), declared) {
            return Decided::Answered(refused(Refusal::Throttled { retry_after }));
        }
        let guard = self.authorizers.guard(request.method(), route.as_ref().map(MatchedPath::as_str));
        let pending = |keyed, missed| Pending { route: route.clone(), guard: guard.clone(), keyed, missed };
        // An IAM or function authorizer decides before the key is checked, as on API Gateway;
        // a user-pool route's token is checked after it, by the cache or the function.
        if !matches!(guard, Guard::UserPool) {
            return Decided::Pending(pending(false, None));
        }
        if let Err(refusal) = self.check_key(options, request.headers()) {
            return Decided::Answered(refused(refusal));
        }
        let (Some(cache), Some(_)) = (&self.cache, options.cache) else {
            return Decided::Pending(pending(true, None));
        };
        if !cacheable(request.method(), request.headers()) || self.reads_body(&guard, route.as_ref(), request)
        {
            return Decided::Pending(pending(true, None));
        }
        let Some(caller) = self.caller_at_once(request.headers()) else {
            return Decided::Pending(pending(true, None));
        };
        let target =
            request.uri().path_and_query().map_or_else(|| request.uri().path(), |target| target.as_str());
        match cache.lookup(caller.key(), target, refresh_requested(request.headers())) {
            Lookup::Hit(response) => Decided::Answered(response),
            Lookup::Miss(miss) => {
                // The function finds the caller and does not look their token up again.
                if let Caller::Token(claims) = caller {
                    request.extensions_mut().insert(principal(&claims));
                }
                Decided::Pending(pending(true, Some(miss)))
            }
        }
    }

    /// A usage plan's key, for an API that requires one when the stage has plans.
    fn check_key(&self, options: &ApiOptions, headers: &HeaderMap) -> Result<(), Refusal> {
        match (options.requires_key, &self.plans) {
            (true, Some(plans)) => {
                plans.admit(headers.get("x-api-key").and_then(|value| value.to_str().ok()))
            }
            _ => Ok(()),
        }
    }

    /// Whether something in front of the function needs the whole body: a SigV4 signature
    /// covers it, the document has a schema for a JSON one.
    fn reads_body(&self, guard: &Guard, route: Option<&MatchedPath>, request: &Request) -> bool {
        let validated =
            route.is_some_and(|route| self.document.checks_body(request.method(), route.as_str()));
        RouteAuthorizers::reads_body(guard) || (validated && is_json(request.headers()))
    }
}

/// The rest of the way for a request [`Gateway::decide`] could not answer: the body when it
/// must be read, the IAM or function authorizer, the key after them, the caller when their
/// token is new, the document's checks, the function, and the cache around it.
async fn finish<S>(
    gateway: Arc<Gateway>,
    options: ApiOptions,
    pending: Pending,
    request: Request,
    inner: S,
) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let Pending { route, guard, keyed, missed } = pending;
    let path = route.as_ref().map(MatchedPath::as_str);
    let declared = path.unwrap_or_else(|| request.uri().path()).to_owned();
    let (request, body) = match read_body(&gateway, &options, &guard, route.as_ref(), request).await {
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
    if !keyed && let Err(refusal) = gateway.check_key(&options, &parts.headers) {
        return refused(refusal);
    }
    // The function finds the caller an authorizer let in, and does not verify them again.
    let caller = admitted.map(|admitted| {
        if let Some(principal) = admitted.principal {
            parts.extensions.insert(principal);
        }
        admitted.caller
    });
    let mut request = Request::from_parts(parts, unread);
    let run = |request: Request| async move {
        match inner.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    // Checked against the document before the function runs. A cache hit needs no check: it
    // answers the same path and query that passed it when the entry was filled.
    let invalid = |request: &Request| {
        let route = path?;
        let checked_body = body.as_deref().filter(|_| is_json(request.headers()));
        let (method, query) = (request.method(), request.uri().query());
        let checked =
            gateway.document.check(method, route, &path_values, query, checked_body, options.strict_query);
        checked.err().map(axum::response::IntoResponse::into_response)
    };
    let (Some(cache), Some(scope)) = (&gateway.cache, options.cache) else {
        return match invalid(&request) {
            Some(problem) => problem,
            None => run(request).await,
        };
    };
    let ttl = gateway.ttl(request.method(), &declared);
    if let Some(miss) = missed {
        if let Some(problem) = invalid(&request) {
            return problem;
        }
        return cache.fill(miss, ttl, run(request).await).await;
    }
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
        let response = run(request).await;
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
            None => run(request).await,
        };
    };
    let target =
        request.uri().path_and_query().map_or_else(|| request.uri().path(), |target| target.as_str());
    match cache.lookup(&caller, target, refresh_requested(request.headers())) {
        Lookup::Hit(response) => response,
        Lookup::Miss(miss) => {
            if let Some(problem) = invalid(&request) {
                return problem;
            }
            cache.fill(miss, ttl, run(request).await).await
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim() == "application/json" || media.trim().ends_with("+json"))
}

/// The request with its body read whole when [`Gateway::reads_body`] says so, within the API's
/// limit and the connection's pace; refusals are the REST API's (413, 408, 400).
async fn read_body(
    gateway: &Gateway,
    options: &ApiOptions,
    guard: &Guard,
    route: Option<&MatchedPath>,
    request: Request,
) -> Result<(Request, Option<Bytes>), Response> {
    if !gateway.reads_body(guard, route, &request) {
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
