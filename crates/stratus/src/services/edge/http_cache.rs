//! HTTP semantics of a cached object (RFC 9110/9111): conditional requests, ranges, content
//! negotiation of the precompressed variants.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::time::SystemTime;

use super::Cached;

/// Which representation: index into [`Cached::prebuilt`].
const IDENTITY: usize = 0;
const GZIP: usize = 1;
const BROTLI: usize = 2;

/// The headers every response about `object` carries, whatever its status and representation.
pub(super) fn common_headers(
    content_type: &'static str,
    cache_control: &'static str,
    last_modified: SystemTime,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(16);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(last_modified)) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers
}

/// The complete headers of a plain `200` for each representation the object has.
pub(super) fn prebuilt_headers(object: &Cached) -> [Option<HeaderMap>; 3] {
    let build = |bytes: Option<&Bytes>, encoding: Option<&str>| {
        let bytes = bytes?;
        let mut headers = object.headers.clone();
        let etag = match encoding {
            Some(encoding) => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_str(encoding).ok()?);
                format!("{}-{encoding}\"", object.etag.trim_end_matches('"'))
            }
            None => object.etag.clone(),
        };
        headers.insert(header::ETAG, HeaderValue::from_str(&etag).ok()?);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        Some(headers)
    };
    [
        build(Some(&object.bytes), None),
        build(object.gzip.as_ref(), Some("gzip")),
        build(object.brotli.as_ref(), Some("br")),
    ]
}

pub(super) fn respond(object: &Cached, method: &Method, request: &HeaderMap, status: StatusCode) -> Response {
    let plain = status == StatusCode::OK
        && ![header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::RANGE]
            .iter()
            .any(|name| request.contains_key(name));
    if plain {
        let accepted =
            request.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let (variant, bytes) = match (&object.brotli, &object.gzip) {
            (Some(brotli), _) if accepts(accepted, "br") => (BROTLI, brotli),
            (_, Some(gzip)) if accepts(accepted, "gzip") => (GZIP, gzip),
            _ => (IDENTITY, &object.bytes),
        };
        if let Some(headers) = &object.prebuilt[variant] {
            let body = if method == Method::HEAD { Body::empty() } else { Body::from(bytes.clone()) };
            // Moving the prebuilt map in, rather than merging it into an empty one.
            let mut response = Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers.clone();
            return response;
        }
    }
    let mut headers = object.headers.clone();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };

    if status == StatusCode::OK && not_modified(object, request) {
        set(header::ETAG, &object.etag);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }

    let range = request.get(header::RANGE).and_then(|value| value.to_str().ok());
    let if_range_ok = request
        .get(header::IF_RANGE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.trim() == object.etag);
    if let (Some(range), true, StatusCode::OK) = (range, if_range_ok, status) {
        let length = object.bytes.len() as u64;
        match parse_range(range, length) {
            Some(Ok((start, end))) => {
                set(header::ETAG, &object.etag);
                set(header::CONTENT_RANGE, &format!("bytes {start}-{end}/{length}"));
                let part = object.bytes.slice(start as usize..=end as usize);
                return body(StatusCode::PARTIAL_CONTENT, headers, method, part);
            }
            Some(Err(())) => {
                set(header::CONTENT_RANGE, &format!("bytes */{length}"));
                return (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response();
            }
            // Several ranges or a syntax we do not serve: the whole object (allowed by RFC 9110).
            None => {}
        }
    }

    let accepted =
        request.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let (bytes, encoding) = match (&object.brotli, &object.gzip) {
        (Some(brotli), _) if accepts(accepted, "br") => (brotli.clone(), Some("br")),
        (_, Some(gzip)) if accepts(accepted, "gzip") => (gzip.clone(), Some("gzip")),
        _ => (object.bytes.clone(), None),
    };
    match encoding {
        // Each representation has its own strong validator.
        Some(encoding) => {
            set(header::CONTENT_ENCODING, encoding);
            set(header::ETAG, &format!("{}-{encoding}\"", object.etag.trim_end_matches('"')));
        }
        None => set(header::ETAG, &object.etag),
    }
    body(status, headers, method, bytes)
}

fn body(status: StatusCode, mut headers: HeaderMap, method: &Method, bytes: Bytes) -> Response {
    if let Ok(length) = HeaderValue::from_str(&bytes.len().to_string()) {
        headers.insert(header::CONTENT_LENGTH, length);
    }
    let body = if method == Method::HEAD { Body::empty() } else { Body::from(bytes) };
    let mut response = (status, headers, body).into_response();
    if method == Method::HEAD {
        // Keep the length of the body a GET would have carried.
        response.headers_mut().remove(header::TRANSFER_ENCODING);
    }
    response
}

/// `If-None-Match` (weak comparison, any representation of ours) or, without it,
/// `If-Modified-Since`.
fn not_modified(object: &Cached, request: &HeaderMap) -> bool {
    if let Some(tags) = request.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) {
        let ours = object.etag.trim_matches('"');
        return tags.split(',').map(str::trim).any(|tag| {
            let tag = tag.trim_start_matches("W/").trim_matches('"');
            tag == "*"
                || tag == ours
                || tag.strip_prefix(ours).is_some_and(|rest| rest == "-br" || rest == "-gzip")
        });
    }
    request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok())
        .is_some_and(|since| {
            let modified = httpdate::parse_http_date(&httpdate::fmt_http_date(object.last_modified))
                .unwrap_or(object.last_modified);
            modified <= since
        })
}

fn accepts(header: &str, coding: &str) -> bool {
    header.split(',').any(|part| {
        let mut pieces = part.split(';');
        let name = pieces.next().unwrap_or_default().trim();
        let refused =
            pieces.any(|parameter| matches!(parameter.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        name.eq_ignore_ascii_case(coding) && !refused
    })
}

/// One `bytes=` range → inclusive (start, end); `Some(Err)` when unsatisfiable; `None` when
/// not a single byte range we serve.
fn parse_range(header: &str, length: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || length == 0 {
            return Some(Err(()));
        }
        (length.saturating_sub(suffix), length - 1)
    } else {
        let start: u64 = first.parse().ok()?;
        let end: u64 = if last.is_empty() { length.saturating_sub(1) } else { last.parse().ok()? };
        if start >= length || end < start {
            return Some(Err(()));
        }
        (start, end.min(length - 1))
    };
    Some(Ok(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn encodings_refused_with_q_zero_are_not_used() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(!accepts("gzip;q=0, identity", "gzip"));
        assert!(!accepts("identity", "gzip"));
    }
}
