//! The gateway in front of HTTP functions (API Gateway's role). For now: the stage's response
//! cache, which answers repeated anonymous GETs from memory until their TTL passes or the data
//! behind them changes (a write through the API clears it at once; other writers' changes clear
//! it through the change stream).

mod config;
pub use config::GatewayConfig;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Responses larger than this are not cached.
const MAX_CACHED_RESPONSE: usize = 1024 * 1024;

#[derive(Debug)]
struct CachedResponse {
    headers: HeaderMap,
    body: Bytes,
}

/// A cache of `200` responses to anonymous GET requests, keyed by path and query. Requests with
/// credentials, cookies, conditions or ranges always reach the function, so no one's private
/// view is ever shared.
#[derive(Debug)]
pub(crate) struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<CachedResponse>>,
}

impl ResponseCache {
    pub(crate) fn new(capacity_bytes: u64, ttl: Duration) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, value: &Arc<CachedResponse>| {
                u32::try_from(key.len() + value.body.len() + 512).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        Self { entries }
    }

    /// Forgets everything, e.g. when the data behind the cached routes changes.
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }
}

fn cacheable(request: &Request) -> bool {
    let headers = request.headers();
    request.method() == Method::GET
        && ![
            header::AUTHORIZATION,
            header::COOKIE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::RANGE,
        ]
        .iter()
        .any(|name| headers.contains_key(name))
}

/// The middleware: `router.layer(axum::middleware::from_fn_with_state(cache, cache_responses))`.
pub(crate) async fn cache_responses(
    State(cache): State<Arc<ResponseCache>>,
    request: Request,
    next: Next,
) -> Response {
    if !cacheable(&request) {
        let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let response = next.run(request).await;
        // A write through this gateway clears the cache at once; writes by other processes
        // reach it through the change stream.
        if writes && response.status().is_success() {
            cache.clear();
        }
        return response;
    }
    let key = request.uri().to_string();
    if let Some(hit) = cache.entries.get(&key) {
        return respond(StatusCode::OK, hit.headers.clone(), hit.body.clone(), "Hit from stratus-gateway");
    }
    let response = next.run(request).await;
    let private = response
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("no-store") || value.contains("private"));
    if response.status() != StatusCode::OK || private {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_CACHED_RESPONSE).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let entry = CachedResponse { headers: parts.headers.clone(), body: bytes.clone() };
    cache.entries.insert(key, Arc::new(entry));
    respond(parts.status, parts.headers, bytes, "Miss from stratus-gateway")
}

fn respond(status: StatusCode, mut headers: HeaderMap, body: Bytes, layer: &'static str) -> Response {
    headers.insert("x-cache", HeaderValue::from_static(layer));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
