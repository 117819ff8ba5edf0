//! The response cache (API Gateway's stage cache), per caller: a GET's `200` is kept under the
//! caller's identity — the access token's `sub`, or no one for anonymous requests — and the
//! request's path and query, so one caller's answer is never another's (the classic cache-key
//! leak). Entries end with their lifetime, with a change to the caller's data (a write through
//! the API, or the change stream), or when the caller asks (`Cache-Control: max-age=0` or
//! `no-cache` refreshes the caller's own entry). `Set-Cookie`, `private` and `no-store`
//! responses and those over 1 MiB are never kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;

use crate::infra::clock::Clock;
use crate::infra::stamps::Stamps;

/// Responses larger than this are not cached.
pub(crate) const MAX_CACHED_RESPONSE: usize = 1024 * 1024;
/// Responses kept per caller; past it the caller's entry starts over.
const MAX_PER_CALLER: usize = 256;
const ENTRY_OVERHEAD: usize = 512;

#[derive(Debug)]
struct CachedResponse {
    headers: HeaderMap,
    body: Bytes,
    stored_at: i64,
    ttl_millis: i64,
}

/// One caller's responses, by request target; replaced whole when one is added.
#[derive(Debug, Default)]
struct CallerEntries {
    responses: HashMap<String, Arc<CachedResponse>>,
    bytes: usize,
}

/// Whose data a change or write touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everyone's view (the blog's posts): a write clears the whole cache.
    Public,
    /// The caller's own data (todos): a write forgets the caller's entries only.
    Caller,
}

#[derive(Debug)]
pub(crate) struct ResponseCache {
    callers: moka::sync::Cache<Arc<str>, Arc<CallerEntries>>,
    stamps: Stamps,
    clock: Arc<dyn Clock>,
}

/// What the cache made of a request.
pub(crate) enum Lookup {
    Hit(Response),
    /// Not cached (or a refresh was asked for): `fill` with the response, under this stamp.
    Miss {
        caller: Arc<str>,
        target: String,
        stamp: u64,
    },
}

impl ResponseCache {
    pub(crate) fn new(capacity_bytes: u64, max_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let callers = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|caller: &Arc<str>, entries: &Arc<CallerEntries>| {
                u32::try_from(caller.len() + entries.bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(max_ttl)
            .build();
        Self { callers, stamps: Stamps::new(), clock }
    }

    /// Looks a GET up for `caller` (`""`: anonymous).
    pub(crate) fn lookup(&self, caller: &str, target: &str, refresh: bool) -> Lookup {
        let caller: Arc<str> = Arc::from(caller);
        if !refresh {
            let now = self.clock.now_millis();
            let hit = self.callers.get(&caller).and_then(|entries| entries.responses.get(target).cloned());
            if let Some(hit) = hit.filter(|hit| now.saturating_sub(hit.stored_at) < hit.ttl_millis) {
                return Lookup::Hit(respond(
                    StatusCode::OK,
                    hit.headers.clone(),
                    hit.body.clone(),
                    "Hit from stratus-gateway",
                ));
            }
        }
        let stamp = self.stamps.current(&caller);
        Lookup::Miss { caller, target: target.to_owned(), stamp }
    }

    /// Keeps a response the function gave after a miss, unless the caller's data changed
    /// meanwhile or the response may not be kept; returns it to send, marked as a miss.
    pub(crate) async fn fill(
        &self,
        miss: (Arc<str>, String, u64),
        ttl: Duration,
        response: Response,
    ) -> Response {
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
        let (caller, target, stamp) = miss;
        let entry = Arc::new(CachedResponse {
            headers: parts.headers.clone(),
            body: bytes.clone(),
            stored_at: self.clock.now_millis(),
            ttl_millis: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        });
        self.stamps.fill_if_unchanged(&caller, stamp, || {
            let current = self.callers.get(&caller);
            let mut entries = match current.as_deref() {
                Some(current) if current.responses.len() < MAX_PER_CALLER => {
                    CallerEntries { responses: current.responses.clone(), bytes: current.bytes }
                }
                _ => CallerEntries::default(),
            };
            let size = ENTRY_OVERHEAD + target.len() + entry.body.len();
            if let Some(replaced) = entries.responses.insert(target.clone(), Arc::clone(&entry)) {
                entries.bytes -= (ENTRY_OVERHEAD + target.len() + replaced.body.len()).min(entries.bytes);
            }
            entries.bytes += size;
            self.callers.insert(Arc::clone(&caller), Arc::new(entries));
        });
        respond(parts.status, parts.headers, bytes, "Miss from stratus-gateway")
    }

    /// Forgets one caller's responses (their data changed).
    pub(crate) fn forget(&self, caller: &str) {
        let caller: Arc<str> = Arc::from(caller);
        self.stamps.change(&caller, || self.callers.invalidate(&caller));
    }

    /// Forgets everything (public data changed).
    pub(crate) fn clear(&self) {
        self.stamps.bump_all();
        self.callers.invalidate_all();
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

fn respond(status: StatusCode, mut headers: HeaderMap, body: Bytes, layer: &'static str) -> Response {
    headers.insert("x-cache", HeaderValue::from_static(layer));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::clock::ManualClock;

    fn cache() -> ResponseCache {
        ResponseCache::new(
            1 << 24,
            Duration::from_secs(3600),
            Arc::new(ManualClock::new(std::time::SystemTime::now())),
        )
    }

    fn response(body: Vec<u8>, header: Option<(header::HeaderName, &'static str)>) -> Response {
        let mut response = Response::new(Body::from(body));
        if let Some((name, value)) = header {
            response.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        response
    }

    async fn stored(cache: &ResponseCache, caller: &str, response: Response) -> bool {
        let Lookup::Miss { caller, target, stamp } = cache.lookup(caller, "/x", false) else {
            panic!("a hit")
        };
        cache.fill((caller.clone(), target, stamp), Duration::from_secs(60), response).await;
        matches!(cache.lookup(&caller, "/x", false), Lookup::Hit(_))
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
        assert!(
            matches!(cache.lookup("bob", "/x", false), Lookup::Miss { .. }),
            "alice's entry is hers alone"
        );
    }

    #[tokio::test]
    async fn a_fill_overtaken_by_a_change_to_the_callers_data_is_dropped() {
        let cache = cache();
        let Lookup::Miss { caller, target, stamp } = cache.lookup("alice", "/x", false) else {
            panic!("a hit")
        };
        cache.forget("alice");
        cache.fill((caller, target, stamp), Duration::from_secs(60), response(b"{}".to_vec(), None)).await;
        assert!(matches!(cache.lookup("alice", "/x", false), Lookup::Miss { .. }));
    }
}
