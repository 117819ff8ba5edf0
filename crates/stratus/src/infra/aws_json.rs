//! AWS's JSON 1.1 protocol, as the AWS SDKs speak it to Cognito's two services (and to
//! DynamoDB, KMS, …): `POST /` with `X-Amz-Target: <Service>.<Operation>` and a JSON object body;
//! answers are JSON with `x-amzn-RequestId`, failures `{"__type", "message"}` with
//! `x-amzn-ErrorType`. The endpoint reads and checks the request and hands it to the service its
//! target names; what an operation means, and who may call it, is the service's. The same
//! `POST /` takes AWS's query protocol (a form body with `Action=`, STS's), handed to
//! [`aws_query`](super::aws_query).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use crate::infra::aws_query::{self, QueryService};
use crate::infra::http::body::{BodyLimit, BodyRefusal, read_whole_body};
use crate::infra::sigv4::{self, SignatureError, SignedRequest};

pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// One request, read and checked, for the service its target names.
#[derive(Debug)]
pub(crate) struct JsonCall<'a> {
    pub(crate) peer: SocketAddr,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    /// The raw body, for signature checks.
    pub(crate) body: &'a [u8],
    /// What follows the service's name in `X-Amz-Target`.
    pub(crate) operation: &'a str,
    /// The body: always a JSON object.
    pub(crate) input: Value,
}

impl JsonCall<'_> {
    /// Checks the request's SigV4 signature (by header) against one set of credentials.
    pub(crate) fn verify_signature(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
        now: std::time::SystemTime,
    ) -> Result<(), SignatureError> {
        let request = SignedRequest::of(self.method, self.uri, self.headers, self.body);
        sigv4::verify(&request, access_key_id, secret_access_key, now)
    }
}

/// A failure as the protocol answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonFault {
    pub(crate) status: StatusCode,
    pub(crate) type_name: &'static str,
    pub(crate) message: String,
}

impl JsonFault {
    /// A client error: 400.
    pub(crate) fn client(type_name: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, type_name, message: message.into() }
    }

    fn into_response(self) -> Response {
        let body = json!({ "__type": self.type_name, "message": self.message });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.type_name));
        response
    }
}

/// A service behind the endpoint.
#[async_trait]
pub(crate) trait JsonService: Send + Sync + std::fmt::Debug + 'static {
    /// Its name in `X-Amz-Target` (`AWSCognitoIdentityProviderService`).
    fn target(&self) -> &'static str;

    async fn call(&self, call: JsonCall<'_>) -> Result<Value, JsonFault>;
}

#[derive(Debug, Clone)]
struct Services {
    json: Arc<Vec<Arc<dyn JsonService>>>,
    query: Arc<Vec<Arc<dyn QueryService>>>,
}

/// `POST /` for `json` and `query` services, with bodies held to `max_body_bytes` and CORS open
/// (browser apps call Cognito directly).
pub(crate) fn endpoint(
    json: Vec<Arc<dyn JsonService>>,
    query: Vec<Arc<dyn QueryService>>,
    max_body_bytes: usize,
) -> Router {
    Router::new()
        // An explicit OPTIONS route keeps preflights inside this router (and its CORS layer)
        // rather than in the listener's fallback.
        .route("/", post(dispatch).options(|| async { StatusCode::NO_CONTENT }))
        .layer(axum::middleware::from_fn_with_state(
            BodyLimit::new(max_body_bytes, body_refused),
            read_whole_body,
        ))
        .layer(cors())
        .with_state(Services { json: Arc::new(json), query: Arc::new(query) })
}

/// CORS as AWS's JSON endpoints allow it: any origin, any header.
pub(crate) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any)
}

/// A refused body in the protocol's shape, with AWS's exception names for the statuses.
fn body_refused(refusal: BodyRefusal) -> Response {
    let type_name = match refusal {
        BodyRefusal::TooLarge { .. } => "RequestEntityTooLargeException",
        BodyRefusal::TooSlow => "RequestTimeoutException",
        BodyRefusal::Unreadable => "SerializationException",
    };
    JsonFault { status: refusal.status(), type_name, message: refusal.message() }.into_response()
}

async fn dispatch(
    State(services): State<Services>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if form {
        return aws_query::dispatch(&services.query, &body, &request_id).await;
    }
    let mut response = match handle(&services, peer, &method, &uri, &headers, &body).await {
        Ok(value) => {
            let mut response = (StatusCode::OK, value.to_string()).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(fault) => fault.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

async fn handle(
    services: &Services,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, JsonFault> {
    let target = headers.get("x-amz-target").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let unknown = || JsonFault::client("UnknownOperationException", format!("Unknown target `{target}`"));
    let (service, operation) = target.split_once('.').ok_or_else(unknown)?;
    let service = services.json.iter().find(|candidate| candidate.target() == service).ok_or_else(unknown)?;
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with(CONTENT_TYPE) && !content_type.starts_with("application/json") {
        return Err(JsonFault::client(
            "SerializationException",
            format!("Content-Type must be {CONTENT_TYPE}"),
        ));
    }
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|error| {
            JsonFault::client("SerializationException", format!("Malformed JSON: {error}"))
        })?
    };
    if !input.is_object() {
        return Err(JsonFault::client("SerializationException", "The request body must be a JSON object"));
    }
    service.call(JsonCall { peer, method, uri, headers, body, operation, input }).await
}
