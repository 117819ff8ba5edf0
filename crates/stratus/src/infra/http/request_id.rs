//! Request ids for `x-request-id`: RFC 9562 version 8 UUIDs made of a random per-process half
//! and a counter, so they are unique across restarts and cost a counter increment rather than
//! 122 fresh random bits per request.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Request};
use rand::RngCore as _;
use tower_http::request_id::{MakeRequestId, RequestId};

#[derive(Debug, Clone)]
pub struct RequestIds {
    process: u64,
    next: std::sync::Arc<AtomicU64>,
}

impl RequestIds {
    pub fn new() -> Self {
        Self { process: rand::rngs::OsRng.next_u64(), next: std::sync::Arc::new(AtomicU64::new(0)) }
    }

    fn next_id(&self) -> HeaderValue {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&self.process.to_be_bytes());
        raw[8..].copy_from_slice(&sequence.to_be_bytes());
        let id = uuid::Builder::from_custom_bytes(raw).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut text).as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(self.next_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_version_8_uuids_sharing_the_process_half() {
        let ids = RequestIds::new();
        let (first, second) = (ids.next_id(), ids.next_id());
        let parse = |value: &HeaderValue| uuid::Uuid::parse_str(value.to_str().unwrap()).unwrap();
        let (first, second) = (parse(&first), parse(&second));
        assert_ne!(first, second);
        assert_eq!(first.get_version_num(), 8);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(first.as_bytes()[..8], second.as_bytes()[..8]);
        assert_ne!(parse(&RequestIds::new().next_id()).as_bytes()[..8], first.as_bytes()[..8]);
    }
}
