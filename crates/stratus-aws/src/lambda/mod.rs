//! The Lambda entry point: one `bootstrap` for every function. `_HANDLER` (the template's
//! `Handler`) names a function of the apps' registry; the bootstrap builds it over the AWS
//! adapters and feeds it Lambda's events — API Gateway REST requests through `lambda_http`,
//! DynamoDB Streams batches (answered with a partial batch response), S3 notifications.

mod functions;
mod ports;

use axum::http::Request;
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde_json::Value;
use stratus::ports::events::{BatchResponse, ObjectEvent, TableChange};
use tower::util::MapRequest;

pub use functions::{BuildError, ChangeHandler, Handler, ObjectHandler, build};
pub use ports::{Ports, PortsError};

/// Why an invocation failed: its event was not what the function's trigger sends, or the
/// function failed (the whole batch, or the S3 event, is then retried by Lambda).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the event is not a {expected} event")]
    Malformed {
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the function failed")]
    Function(#[source] stratus::services::functions::FunctionError),
    #[error("an HTTP function is invoked through lambda_http, not with a raw event")]
    NotAnEventFunction,
}

#[derive(Deserialize)]
struct Records<T> {
    #[serde(rename = "Records")]
    records: Vec<T>,
}

fn records<T: serde::de::DeserializeOwned>(
    event: Value,
    expected: &'static str,
) -> Result<Vec<T>, InvokeError> {
    serde_json::from_value::<Records<T>>(event)
        .map(|records| records.records)
        .map_err(|source| InvokeError::Malformed { expected, source })
}

/// One invocation of an event function with Lambda's event JSON; the response JSON (a partial
/// batch response for table changes, `null` for S3 events).
pub async fn invoke(handler: &Handler, event: Value) -> Result<Value, InvokeError> {
    match handler {
        Handler::TableChanges(handle) => {
            let changes: Vec<TableChange> = records(event, "DynamoDB Streams")?;
            let response: BatchResponse = handle(changes).await.map_err(InvokeError::Function)?;
            Ok(serde_json::to_value(response).unwrap_or(Value::Null))
        }
        Handler::Objects(handle) => {
            for record in records::<ObjectEvent>(event, "S3")? {
                handle(record).await.map_err(InvokeError::Function)?;
            }
            Ok(Value::Null)
        }
        Handler::Http(_) => Err(InvokeError::NotAnEventFunction),
    }
}

/// A router behind [`without_stage`].
pub type Stageless<B> = MapRequest<axum::Router, fn(Request<B>) -> Request<B>>;

/// The router as API Gateway invokes it: `lambda_http` puts the stage in front of a REST API's
/// path (`/prod/v1/posts`), which the apps' routes do not have, so it is taken off again before
/// routing (a layer of the router itself would run after).
pub fn without_stage<B>(router: axum::Router) -> Stageless<B> {
    MapRequest::new(router, strip_stage::<B>)
}

fn strip_stage<B>(mut request: Request<B>) -> Request<B> {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        _ => None,
    };
    // lambda_http adds the stage unless told not to or unless the path (API Gateway's, kept
    // as the raw path) starts with it already — a stage named `v1` with a path `/v1/posts`.
    let told_not_to = std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_some();
    let added = |stage: &String| {
        stage != "$default" && !told_not_to && !request.raw_http_path().starts_with(&format!("/{stage}/"))
    };
    if let Some(stage) = stage.filter(added) {
        let prefix = format!("/{stage}");
        let uri = request.uri();
        let rest = uri.path().strip_prefix(&prefix).filter(|rest| rest.is_empty() || rest.starts_with('/'));
        if let Some(rest) = rest {
            let path = if rest.is_empty() { "/" } else { rest };
            let path_and_query = match uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            let mut parts = uri.clone().into_parts();
            if let Ok(path_and_query) = path_and_query.parse() {
                parts.path_and_query = Some(path_and_query);
                if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
    }
    request
}

/// Runs the function `_HANDLER` names until Lambda stops the execution environment.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let name = std::env::var("_HANDLER").map_err(|_| "the _HANDLER variable names no function")?;
    let sdk = crate::sdk::load().await;
    let ports = Ports::from_env(&sdk)?;
    let handler = build(&name, &ports).await?;
    tracing::info!(function = %name, "initialised");
    match handler {
        Handler::Http(router) => lambda_http::run(without_stage(router)).await,
        handler => {
            let handler = std::sync::Arc::new(handler);
            lambda_runtime::run(lambda_runtime::service_fn(
                move |event: lambda_runtime::LambdaEvent<Value>| {
                    let handler = std::sync::Arc::clone(&handler);
                    async move { invoke(&handler, event.payload).await }
                },
            ))
            .await
        }
    }
}

/// What Lambda records of a failed invocation: the kind of failure and the whole cause chain.
impl From<InvokeError> for lambda_runtime::Diagnostic {
    fn from(error: InvokeError) -> Self {
        let error_type = match &error {
            InvokeError::Malformed { .. } => "MalformedEvent",
            InvokeError::Function(_) => "FunctionFailed",
            InvokeError::NotAnEventFunction => "NotAnEventFunction",
        };
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %message, "invocation failed");
        Self { error_type: error_type.to_owned(), error_message: message }
    }
}
