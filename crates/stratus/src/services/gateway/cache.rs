//! The response cache (API Gateway's stage cache), per caller: a GET's `200` is kept under the
//! caller's identity — the access token's `sub`, or no one for anonymous requests — and the
//! request's path and query, so one caller's answer is never another's (the classic cache-key
//! leak). Entries end with their lifetime, with a change to the caller's data (a write through
//! the API, or the change stream), or when the caller asks (`Cache-Control: max-age=0` or
//! `no-cache` refreshes the caller's own entry). `Set-Cookie`, `private` and `no-store`
//! responses and those over 1 MiB are never kept.
//!
//! Forgetting is by generation: each response is kept with the stamp its caller's stripe had
//! when it was looked up, and answers only while the stripe still has it. A change bumps the
//! stamp — one counter, whatever the number of entries — and what it made stale is evicted
//! in time like any other entry. Callers sharing a stripe (1 in 1,024) forget together: a
//! change may forget a little more than it must, never less.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;

use crate::infra::clock::Clock;
use crate::infra::stamps::Stamps;

/// Responses larger than this are not cached.
pub(crate) const MAX_CACHED_RESPONSE: usize = 1024 * 1024;
const ENTRY_OVERHEAD: usize = 512;
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

#[derive(Debug)]
struct CachedResponse {
    /// The function's headers, with `x-cache` already saying it is a hit.
    headers: HeaderMap,
    body: Bytes,
    stored_at: i64,
    ttl_millis: i64,
    /// The caller's stamp when the response was looked up: it answers while the stamp holds.
    stamp: u64,
}

/// A response's place: the caller, then the request target (path and query), with a byte no
/// URI can hold between them.
fn entry_key(caller: &str, target: &str) -> String {
    let mut key = String::with_capacity(caller.len() + 1 + target.len());
    key.push_str(caller);
    key.push('\0');
    key.push_str(target);
    key
}

/// Whose data a change or write touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everyone's view (the blog's posts): a write clears the whole cache.
    Public,
    /// The caller's own data (todos): a write forgets the caller's entries only.
    Caller,
}

/// A response's weight against `[gateway] cache_bytes`.
#[derive(Debug, Clone, Copy)]
struct ResponseWeight;

impl quick_cache::Weighter<String, Arc<CachedResponse>> for ResponseWeight {
    fn weight(&self, key: &String, response: &Arc<CachedResponse>) -> u64 {
        (ENTRY_OVERHEAD + key.len() + response.body.len()) as u64
    }
}

/// quick_cache rather than moka: moka's bookkeeping on every insert cost more than the rest of
/// the gateway together. Lifetimes are checked here, on the stage's clock.
#[derive(Debug)]
pub(crate) struct ResponseCache {
    responses: quick_cache::sync::Cache<String, Arc<CachedResponse>, ResponseWeight>,
    stamps: Stamps,
    clock: Arc<dyn Clock>,
}

/// What the cache made of a request.
pub(crate) enum Lookup {
    Hit(Response),
    /// Not cached (or a refresh was asked for): `fill` with the response, under this stamp.
    Miss(Miss),
}

/// A lookup that found nothing to answer with.
#[derive(Debug)]
pub(crate) struct Miss {
    key: String,
    stamp: u64,
}

impl ResponseCache {
    pub(crate) fn new(capacity_bytes: u64, clock: Arc<dyn Clock>) -> Self {
        // Sized for responses of a few KiB; the weight, not the count, is the bound.
        let estimated = usize::try_from(capacity_bytes / 4096).unwrap_or(usize::MAX).max(16);
        let responses = quick_cache::sync::Cache::with_weighter(estimated, capacity_bytes, ResponseWeight);
        Self { responses, stamps: Stamps::new(), clock }
    }

    /// Looks a GET up for `caller` (`""`: anonymous).
    pub(crate) fn lookup(&self, caller: &str, target: &str, refresh: bool) -> Lookup {
        let stamp = self.stamps.current(&caller);
        let key = entry_key(caller, target);
        if !refresh {
            let now = self.clock.now_millis();
            let hit = self
                .responses
                .get(&key)
                .filter(|hit| hit.stamp == stamp && now.saturating_sub(hit.stored_at) < hit.ttl_millis);
            if let Some(hit) = hit {
                let mut response = Response::new(Body::from(hit.body.clone()));
                *response.headers_mut() = hit.headers.clone();
                return Lookup::Hit(response);
            }
        }
        Lookup::Miss(Miss { key, stamp })
    }

    /// Keeps a response the function gave after a miss, unless it may not be kept; returns it
    /// to send, marked as a miss. A fill overtaken by a change to the caller's data carries the
    /// stamp from before it, and so never answers.
    pub(crate) async fn fill(&self, miss: Miss, ttl: Duration, response: Response) -> Response {
        if response.status() != StatusCode::OK || !storable(response.headers()) || ttl.is_zero() {
            return response;
        }
        // Only a body of known size within the limit is read here; any other passes through.
        let size = http_body::Body::size_hint(response.body()).exact();
        if size.is_none_or(|size| size > MAX_CACHED_RESPONSE as u64) {
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_CACHED_RESPONSE).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let mut headers = parts.headers.clone();
        headers.insert(X_CACHE, HeaderValue::from_static("Hit from stratus-gateway"));
        let entry = Arc::new(CachedResponse {
            headers,
            body: bytes.clone(),
            stored_at: self.clock.now_millis(),
            ttl_millis: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            stamp: miss.stamp,
        });
        self.responses.insert(miss.key, entry);
        let mut response = Response::from_parts(parts, Body::from(bytes));
        response.headers_mut().insert(X_CACHE, HeaderValue::from_static("Miss from stratus-gateway"));
        response
    }

    /// Forgets one caller's responses (their data changed).
    pub(crate) fn forget(&self, caller: &str) {
        self.stamps.bump(&caller);
    }

    /// Forgets everything (public data changed).
    pub(crate) fn clear(&self) {
        self.stamps.bump_all();
        self.responses.clear();
    }
}

/// Whether a request may be answered from the cache: a GET without cookies, conditions or
/// ranges (those always reach the function).
pub(crate) fn cacheable(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && ![header::COOKIE, header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::RANGE]
            .iter()
            .any(|name| headers.contains_key(name))
}

/// `Cache-Control: max-age=0` or `no-cache` on a request: the caller wants a fresh answer.
pub(crate) fn refresh_requested(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|directive| directive == "no-cache" || directive == "max-age=0")
    })
}

fn storable(headers: &HeaderMap) -> bool {
    let forbidden =
        headers.get_all(header::CACHE_CONTROL).iter().filter_map(|value| value.to_str().ok()).any(|value| {
            value.split(',').map(str::trim).any(|directive| matches!(directive, "private" | "no-store"))
        });
    !forbidden && !headers.contains_key(header::SET_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::clock::ManualClock;

    fn cache() -> ResponseCache {
        ResponseCache::new(1 << 24, Arc::new(ManualClock::new(std::time::SystemTime::now())))
    }

    fn response(body: Vec<u8>, header: Option<(header::HeaderName, &'static str)>) -> Response {
        let mut response = Response::new(Body::from(body));
        if let Some((name, value)) = header {
            response.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        response
    }

    async fn stored(cache: &ResponseCache, caller: &str, response: Response) -> bool {
        let Lookup::Miss(miss) = cache.lookup(caller, "/x", false) else { panic!("a hit") };
        cache.fill(miss, Duration::from_secs(60), response).await;
        matches!(cache.lookup(caller, "/x", false), Lookup::Hit(_))
    }

    #[tokio::test]
    async fn what_may_not_be_shared_or_is_too_large_is_never_kept() {
        let cache = cache();
        assert!(stored(&cache, "alice", response(b"{}".to_vec(), None)).await);
        assert!(!stored(&cache, "bob", response(b"{}".to_vec(), Some((header::SET_COOKIE, "s=1")))).await);
        let private = Some((header::CACHE_CONTROL, "private, max-age=60"));
        assert!(!stored(&cache, "carol", response(b"{}".to_vec(), private)).await);
        assert!(
            !stored(&cache, "dave", response(b"{}".to_vec(), Some((header::CACHE_CONTROL, "no-store"))))
                .await
        );
        assert!(!stored(&cache, "erin", response(vec![b'x'; MAX_CACHED_RESPONSE + 1], None)).await);
        assert!(matches!(cache.lookup("bob", "/x", false), Lookup::Miss(_)), "alice's entry is hers alone");
    }

    #[tokio::test]
    async fn a_fill_overtaken_by_a_change_to_the_callers_data_is_dropped() {
        let cache = cache();
        let Lookup::Miss(miss) = cache.lookup("alice", "/x", false) else { panic!("a hit") };
        cache.forget("alice");
        cache.fill(miss, Duration::from_secs(60), response(b"{}".to_vec(), None)).await;
        assert!(matches!(cache.lookup("alice", "/x", false), Lookup::Miss(_)));
    }
}
