//! The gateway as a tower layer on each route of an API. What can be decided without waiting —
//! the throttles, the route's authorizer, a usage plan's key, the document's checks of path and
//! query and, for a caller whose token was verified before, the response cache — is decided in
//! `call` itself: a refusal or a cache hit boxes no future, clones no inner service and awaits
//! nothing, and a request with nothing left to wait for calls the function from there. The rest
//! (a body to read and check or to verify a signature over, an authorizer function, a token
//! seen for the first time, a write that forgets the caller's entries) continues in [`finish`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts as _, MatchedPath, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures::FutureExt as _;
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
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>,
    >;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is a route, always ready: answering instead strands nothing.
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.gateway.decide(&self.options, request) {
            Decided::Answered(response) => Either::Left(ready(Ok(response))),
            Decided::Call(request, None) => Either::Right(Either::Left(self.inner.call(request))),
            Decided::Call(request, Some((miss, ttl))) => {
                let (gateway, called) = (Arc::clone(&self.gateway), self.inner.call(request));
                Either::Right(Either::Right(Box::pin(async move {
                    let response = called.await?;
                    Ok(gateway.fill(miss, ttl, response).await)
                })))
            }
            Decided::Pending(request, pending) => {
                // The readied service goes with the request; a clone stays for the next one.
                let fresh = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, fresh);
                let (gateway, options) = (Arc::clone(&self.gateway), self.options);
                Either::Right(Either::Right(Box::pin(async move {
                    Ok(finish(gateway, options, pending, request, inner).await)
                })))
            }
        }
    }
}

/// What [`Gateway::decide`] made of a request.
enum Decided {
    /// Refused, or answered from the cache.
    Answered(Response),
    /// Admitted and checked: the function answers, and its response fills the cache after
    /// this miss, for this long.
    Call(Request, Option<(Miss, Duration)>),
    /// Something must be waited for first.
    Pending(Request, Pending),
}

/// What was decided about a request that must wait for something.
struct Pending {
    /// The route as declared (`/v1/todos/{id}`), when the router matched one.
    route: Option<MatchedPath>,
    guard: Guard,
    /// Whether the usage plan has admitted the request's key already (or none is required).
    keyed: bool,
}

impl Gateway {
    /// The stage's throttles, the route's authorizer, and for a user-pool route the key, the
    /// cache and the document's checks — in API Gateway's order, as far as it goes without
    /// waiting.
    fn decide(&self, options: &ApiOptions, mut request: Request) -> Decided {
        let route = request.extensions().get::<MatchedPath>().cloned();
        if let Err(retry_after) =
            self.throttles.admit(request.method(), declared_route(route.as_ref(), &request))
        {
            return Decided::Answered(refused(Refusal::Throttled { retry_after }));
        }
        let guard = self.authorizers.guard(request.method(), route.as_ref().map(MatchedPath::as_str));
        // An IAM or function authorizer decides before the key is checked, as on API Gateway;
        // a user-pool route's token is checked after it, by the cache or the function.
        if !matches!(guard, Guard::UserPool) {
            return Decided::Pending(request, Pending { route, guard, keyed: false });
        }
        if let Err(refusal) = self.check_key(options, request.headers()) {
            return Decided::Answered(refused(refusal));
        }
        if self.reads_body(&guard, route.as_ref(), &request) {
            return Decided::Pending(request, Pending { route, guard, keyed: true });
        }
        let (Some(cache), Some(_)) = (&self.cache, options.cache) else {
            return self.call_checked(options, route.as_ref(), request, None);
        };
        if !cacheable(request.method(), request.headers()) {
            return if is_read(request.method()) {
                self.call_checked(options, route.as_ref(), request, None)
            } else {
                // A write forgets the caller's entries once it succeeds.
                Decided::Pending(request, Pending { route, guard, keyed: true })
            };
        }
        let Some(caller) = self.caller_at_once(request.headers()) else {
            return Decided::Pending(request, Pending { route, guard, keyed: true });
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
                let ttl = self.ttl(request.method(), declared_route(route.as_ref(), &request));
                self.call_checked(options, route.as_ref(), request, Some((miss, ttl)))
            }
        }
    }

    /// The function's turn, once the document has no objection.
    fn call_checked(
        &self,
        options: &ApiOptions,
        route: Option<&MatchedPath>,
        request: Request,
        fill: Option<(Miss, Duration)>,
    ) -> Decided {
        match self.check(options, route, request, None) {
            Ok(request) => Decided::Call(request, fill),
            Err(problem) => Decided::Answered(problem.into_response()),
        }
    }

    /// The request checked against the document (path, query, and the JSON body when read)
    /// before the function runs: a 400 listing each violation otherwise. A cache hit needs no
    /// check: it answers the same path and query that passed when the entry was filled.
    fn check(
        &self,
        options: &ApiOptions,
        route: Option<&MatchedPath>,
        request: Request,
        body: Option<&[u8]>,
    ) -> Result<Request, Problem> {
        let Some(route) = route.map(MatchedPath::as_str) else { return Ok(request) };
        if !self.document.describes(request.method(), route) {
            return Ok(request);
        }
        let (mut parts, unread) = request.into_parts();
        let values = path_values(&mut parts);
        let body = body.filter(|_| is_json(&parts.headers));
        let checked = self.document.check(
            &parts.method,
            route,
            values.as_ref(),
            parts.uri.query(),
            body,
            options.strict_query,
        );
        checked.map(|()| Request::from_parts(parts, unread))
    }

    /// Keeps the function's response after a miss, when it may be kept.
    async fn fill(&self, miss: Miss, ttl: Duration, response: Response) -> Response {
        match &self.cache {
            Some(cache) => cache.fill(miss, ttl, response).await,
            None => response,
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

/// The route as declared (`/v1/todos/{id}`), or the path when no route matched.
fn declared_route<'a>(route: Option<&'a MatchedPath>, request: &'a Request) -> &'a str {
    route.map_or_else(|| request.uri().path(), MatchedPath::as_str)
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The route's path parameters, which the router has already parsed (so this never waits).
fn path_values(parts: &mut Parts) -> Option<RawPathParams> {
    RawPathParams::from_request_parts(parts, &()).now_or_never().and_then(Result::ok)
}

/// The rest of the way for a request [`Gateway::decide`] could not settle: the body when it
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
    let Pending { route, guard, keyed } = pending;
    let declared = declared_route(route.as_ref(), &request).to_owned();
    let (request, body) = match read_body(&gateway, &options, &guard, route.as_ref(), request).await {
        Ok(read) => read,
        Err(refusal) => return refusal,
    };
    let (mut parts, unread) = request.into_parts();
    // A function authorizer's REQUEST event carries the path parameters.
    let path_parameters: Vec<(String, String)> = match (&guard, path_values(&mut parts)) {
        (Guard::Function(_), Some(values)) => {
            values.iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect()
        }
        _ => Vec::new(),
    };
    let signed_body = body.as_deref().unwrap_or_default();
    let admitted =
        match gateway.authorizers.admit(&guard, &parts, &declared, &path_parameters, signed_body).await {
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
    let request = Request::from_parts(parts, unread);
    let run = |request: Request| async move {
        match inner.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    let (Some(cache), Some(scope)) = (&gateway.cache, options.cache) else {
        return match gateway.check(&options, route.as_ref(), request, body.as_deref()) {
            Ok(request) => run(request).await,
            Err(problem) => problem.into_response(),
        };
    };
    let mut request = match gateway.check(&options, route.as_ref(), request, body.as_deref()) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    if !cacheable(request.method(), request.headers()) {
        let writes = !is_read(request.method());
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
    // A token that does not verify: the function answers it.
    let Some(caller) = caller else { return run(request).await };
    let target =
        request.uri().path_and_query().map_or_else(|| request.uri().path(), |target| target.as_str());
    match cache.lookup(&caller, target, refresh_requested(request.headers())) {
        Lookup::Hit(response) => response,
        Lookup::Miss(miss) => {
            let ttl = gateway.ttl(request.method(), &declared);
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
