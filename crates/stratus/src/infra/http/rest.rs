//! What the REST APIs share: JSON bodies whose refusals are problem documents, and versions as
//! ETags (`"v3"`) for optimistic concurrency — `If-Match` on writes, `If-None-Match` on reads.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Problem;

/// A JSON body (`application/json` or `application/*+json`) whose rejections are problem
/// documents: 415 without a JSON content type, 413 over the body limit, 400 otherwise.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = match rejection {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    Problem::new(status, rejection.body_text())
}

/// The ETag of a version.
pub fn version_etag(version: u64) -> String {
    format!("\"v{version}\"")
}

/// The version an `If-Match` header names: `None` without the header, a 412 when it names none
/// this API could have issued (`what` names the resource in the message).
pub fn if_match_version(headers: &HeaderMap, what: &str) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    let version =
        text.trim_start_matches("W/").trim_matches('"').strip_prefix('v').and_then(|v| v.parse().ok());
    version.map(Some).ok_or_else(|| {
        Problem::new(StatusCode::PRECONDITION_FAILED, format!("If-Match names no version of this {what}"))
    })
}

/// A 304 when `If-None-Match` lists `etag` (or is `*`).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> Option<Response> {
    let listed = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| matches!(tag.trim(), "*") || tag.trim() == etag));
    listed.then(|| with_etag(StatusCode::NOT_MODIFIED.into_response(), etag))
}

/// `response` with its `ETag`.
pub fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
