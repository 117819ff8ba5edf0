//! RFC 9457 `application/problem+json` errors for Stratus's own REST API. The body says what a
//! client can act on; internal causes are logged once, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::body::BodyRefusal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    /// A URI naming the kind of problem; `about:blank` means "see the status code".
    pub kind: &'static str,
    pub title: String,
    pub detail: Option<String>,
    /// Extra header, e.g. `WWW-Authenticate` on 401 or `Retry-After` on 429.
    pub header: Option<Box<(header::HeaderName, String)>>,
    /// What was wrong with the request, each part named by a JSON pointer (an `errors`
    /// extension member); empty for other problems.
    pub violations: Vec<Violation>,
}

/// One thing wrong with a request: where (RFC 6901 JSON pointer into the body, or the query
/// parameter or path segment named as `?name` or `{name}`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    pub pointer: String,
    pub detail: String,
}

impl Violation {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), detail: detail.into() }
    }
}

/// What the OpenAPI document says a problem is: the members of [`Body`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code, reason = "a schema only: problems are written by `IntoResponse for Problem`")]
pub struct ProblemSchema {
    /// `about:blank`: the status says what.
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: Option<String>,
    /// Each thing wrong with the request (400s).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<Violation>>,
}

/// The JSON members RFC 9457 defines.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    errors: &'a [Violation],
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: Some(detail.into()),
            header: None,
            violations: Vec::new(),
        }
    }

    /// A 400 listing everything wrong with the request.
    pub fn invalid(violations: Vec<Violation>) -> Self {
        let detail = match violations.as_slice() {
            [only] => format!("{}: {}", only.pointer, only.detail),
            all => format!("The request has {} problems, listed in `errors`.", all.len()),
        };
        Self { violations, ..Self::new(StatusCode::BAD_REQUEST, detail) }
    }

    #[must_use]
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.header = Some(Box::new((name, value.into())));
        self
    }

    /// A request body that was not accepted, as the REST API answers it: its
    /// [`RenderRefusal`](super::body::RenderRefusal).
    pub fn body_refused(refusal: BodyRefusal) -> Response {
        Self::from(refusal).into_response()
    }

    /// A 500 whose cause is logged here and not shown to the client.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %crate::infra::telemetry::error_chain(error), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "The server could not complete the request.")
    }
}

/// 413, 408 or 400, saying which.
impl From<BodyRefusal> for Problem {
    fn from(refusal: BodyRefusal) -> Self {
        Self::new(refusal.status(), refusal.message())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&Body {
            kind: self.kind,
            title: &self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            errors: &self.violations,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(extra) = self.header {
            let (name, value) = *extra;
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}
