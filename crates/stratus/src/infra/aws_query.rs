//! AWS's query protocol, as the AWS SDKs speak it to STS: a form body with `Action`, `Version`
//! and the action's parameters; answers are XML, `<{Action}Response><{Action}Result>…`, failures
//! `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One request, its form read into parameters.
#[derive(Debug)]
pub(crate) struct QueryCall {
    pub(crate) params: BTreeMap<String, String>,
}

impl QueryCall {
    pub(crate) fn param(&self, name: &'static str) -> Result<&str, QueryFault> {
        self.params.get(name).map(String::as_str).ok_or_else(|| {
            QueryFault::sender("ValidationError", format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"))
        })
    }
}

/// A failure as the protocol answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryFault {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl QueryFault {
    /// The client's fault: 400, `Sender`.
    pub(crate) fn sender(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    /// Stratus's fault: 500, `Receiver`.
    pub(crate) fn receiver(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, code: "InternalFailure", message: message.into() }
    }
}

/// A service behind the endpoint, by the actions it answers.
#[async_trait]
pub(crate) trait QueryService: Send + Sync + std::fmt::Debug + 'static {
    fn handles(&self, action: &str) -> bool;

    /// The action's result element's content (XML), or its failure.
    async fn call(&self, call: QueryCall) -> Result<String, QueryFault>;

    /// The namespace of its responses (`https://sts.amazonaws.com/doc/2011-06-15/`).
    fn namespace(&self) -> &'static str;
}

pub(crate) async fn dispatch(services: &[Arc<dyn QueryService>], body: &[u8], request_id: &str) -> Response {
    let params: BTreeMap<String, String> = match serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        Ok(pairs) => pairs.into_iter().collect(),
        Err(error) => {
            return fault(&QueryFault::sender("MalformedQueryString", error.to_string()), request_id);
        }
    };
    let Some(action) = params.get("Action").cloned() else {
        return fault(&QueryFault::sender("MissingAction", "Missing Action"), request_id);
    };
    let Some(service) = services.iter().find(|service| service.handles(&action)) else {
        return fault(
            &QueryFault::sender("InvalidAction", format!("Could not find operation {action}")),
            request_id,
        );
    };
    let span = tracing::info_span!("aws_query", action = %action);
    let called = tracing::Instrument::instrument(service.call(QueryCall { params }), span);
    match called.await {
        Ok(result) => {
            let body = format!(
                "<{action}Response xmlns=\"{namespace}\"><{action}Result>{result}</{action}Result>\
                 <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>",
                namespace = service.namespace(),
            );
            xml(StatusCode::OK, body, request_id)
        }
        Err(error) => fault(&error, request_id),
    }
}

fn fault(fault: &QueryFault, request_id: &str) -> Response {
    let kind = if fault.status.is_server_error() { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>",
        fault.code,
        escape(&fault.message)
    );
    xml(fault.status, body, request_id)
}

fn xml(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

/// Text for an XML element.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}
