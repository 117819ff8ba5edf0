//! A function authorizer (API Gateway's Lambda authorizer): the registered function receives
//! the caller's token (or the request's identity sources) and the method's ARN, and answers a
//! principal and an IAM policy. The answer is kept for the authorizer's TTL by the identity
//! sources' values, and its policy evaluated for each call — so a cached policy must cover
//! every method the caller may use, as on API Gateway.
//!
//! No identity source: 401, the function not asked. The function refuses (`Unauthorized`):
//! 401. Its policy does not allow the method: 403. It fails or answers something that is not
//! a policy: 500 `{"message": null}`, logged.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;

use super::super::config::{AuthorizerKind, FunctionAuthorizerConfig, IdentitySource};
use super::{Admitted, Refusal};
use crate::infra::clock::Clock;
use crate::ports::events::{
    AuthorizerEvent, AuthorizerIdentity, AuthorizerRequestContext, AuthorizerResponse, RequestAuthorizerEvent,
};
use crate::services::cognito::authorizer::{AuthorizedBy, Principal};
use crate::services::functions::{AuthorizerFailure, AuthorizerFunctions};
use crate::services::iam::{self, Context, Decision, Policy};

/// Answers remembered at once per authorizer.
const CACHED_ANSWERS: u64 = 100_000;

/// The request an authorizer is asked about.
#[derive(Debug)]
pub(super) struct Called<'a> {
    pub parts: &'a Parts,
    /// As declared: `/v1/todos/{id}`.
    pub route: &'a str,
    pub path_parameters: &'a [(String, String)],
    pub method_arn: &'a str,
    pub account: &'a str,
    pub api_id: &'a str,
    pub stage: &'a str,
}

/// A function's answer, checked.
#[derive(Debug)]
struct Answer {
    principal: Principal,
    policy: Policy,
    /// Epoch milliseconds on the stage's clock.
    expires_at: i64,
}

pub(crate) struct FunctionAuthorizer {
    name: String,
    config: FunctionAuthorizerConfig,
    sources: Vec<IdentitySource>,
    functions: AuthorizerFunctions,
    answers: moka::sync::Cache<String, Arc<Answer>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FunctionAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionAuthorizer").field("name", &self.name).field("config", &self.config).finish()
    }
}

impl FunctionAuthorizer {
    pub(super) fn new(
        name: &str,
        config: &FunctionAuthorizerConfig,
        functions: AuthorizerFunctions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            // Validated with the configuration.
            sources: config
                .identity_source
                .iter()
                .filter_map(|source| IdentitySource::parse(source))
                .collect(),
            config: config.clone(),
            functions,
            // The TTL is checked on the stage's clock; this bound only frees memory sooner.
            answers: moka::sync::Cache::builder()
                .max_capacity(CACHED_ANSWERS)
                .time_to_live(config.ttl.max(Duration::from_secs(1)))
                .build(),
            clock,
        }
    }

    pub(super) fn function(&self) -> &str {
        &self.config.function
    }

    pub(super) async fn admit(&self, called: Called<'_>) -> Result<Admitted, Refusal> {
        let identity = self.identity(called.parts).ok_or_else(Refusal::unauthorized)?;
        let now = self.clock.now_millis();
        let cached = self.answers.get(&identity).filter(|answer| answer.expires_at > now);
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = Arc::new(self.ask(&called, &identity, now).await?);
                if !self.config.ttl.is_zero() {
                    self.answers.insert(identity, Arc::clone(&answer));
                }
                answer
            }
        };
        let context = Context::default();
        let request =
            iam::Request { action: "execute-api:Invoke", resource: called.method_arn, context: &context };
        match iam::evaluate(std::slice::from_ref(&answer.policy), request) {
            Decision::Allow(_) => Ok(Admitted {
                caller: answer.principal.sub.clone(),
                principal: Some(answer.principal.clone()),
            }),
            Decision::Deny(_) => Err(Refusal::denied_by_policy(true)),
            Decision::ImplicitDeny => Err(Refusal::denied_by_policy(false)),
        }
    }

    /// The identity sources' values, in order (the cache key); `None` when one is missing or empty.
    fn identity(&self, parts: &Parts) -> Option<String> {
        let reads_query = self.sources.iter().any(|source| matches!(source, IdentitySource::Query(_)));
        let query: Vec<(String, String)> = match (reads_query, parts.uri.query()) {
            (true, Some(query)) => serde_urlencoded::from_str(query).unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut values = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            let value = match source {
                IdentitySource::Header(name) => parts.headers.get(name).and_then(|value| value.to_str().ok()),
                IdentitySource::Query(name) => {
                    query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
                }
            };
            values.push(value.filter(|value| !value.trim().is_empty())?);
        }
        Some(values.join("\n"))
    }

    async fn ask(&self, called: &Called<'_>, identity: &str, now: i64) -> Result<Answer, Refusal> {
        let event = match self.config.kind {
            AuthorizerKind::Token => AuthorizerEvent::Token {
                authorization_token: identity.to_owned(),
                method_arn: called.method_arn.to_owned(),
            },
            AuthorizerKind::Request => AuthorizerEvent::Request(Box::new(request_event(called))),
        };
        let response = match self.functions.invoke(&self.config.function, event).await {
            Ok(response) => response,
            Err(AuthorizerFailure::Unauthorized) => return Err(Refusal::unauthorized()),
            Err(error) => {
                tracing::error!(authorizer = %self.name, error = %error, "the authorizer function failed");
                return Err(Refusal::misconfigured());
            }
        };
        let principal_id = response.principal_id.clone();
        let checked = self.checked(response).map_err(|problem| {
            tracing::error!(authorizer = %self.name, principal_id, problem, "the authorizer's answer is unusable");
            Refusal::misconfigured()
        })?;
        let ttl_millis = i64::try_from(self.config.ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(Answer { principal: checked.0, policy: checked.1, expires_at: now.saturating_add(ttl_millis) })
    }

    /// The principal and policy of a well-formed answer: a principal id, a policy document and a
    /// context of strings, numbers and booleans.
    fn checked(&self, response: AuthorizerResponse) -> Result<(Principal, Policy), String> {
        if response.principal_id.is_empty() {
            return Err("principalId is empty".into());
        }
        if let Some((key, _)) =
            response.context.iter().find(|(_, value)| value.is_object() || value.is_array())
        {
            return Err(format!("context value `{key}` is not a string, number or boolean"));
        }
        let document = response.policy_document.to_string();
        let policy =
            Policy::parse(&format!("authorizer `{}`", self.name), &document).map_err(|e| e.to_string())?;
        let text = |key: &str| response.context.get(key).and_then(|value| value.as_str()).map(str::to_owned);
        let principal = Principal {
            username: text("username").unwrap_or_else(|| response.principal_id.clone()),
            groups: text("groups")
                .map(|groups| {
                    groups.split(',').map(|group| group.trim().to_owned()).filter(|g| !g.is_empty()).collect()
                })
                .unwrap_or_default(),
            scopes: Vec::new(),
            issuer: format!("authorizer:{}", self.name),
            client_id: String::new(),
            authorized_by: AuthorizedBy::Function {
                authorizer: self.name.clone(),
                context: response.context.clone(),
            },
            sub: response.principal_id,
        };
        Ok((principal, policy))
    }
}

/// A `REQUEST` authorizer's event for the call.
fn request_event(called: &Called<'_>) -> RequestAuthorizerEvent {
    let parts = called.parts;
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let query_string_parameters =
        parts.uri.query().and_then(|query| serde_urlencoded::from_str(query).ok()).unwrap_or_default();
    let path_parameters = called.path_parameters.iter().cloned().collect();
    let request_id = parts.headers.get("x-request-id").and_then(|value| value.to_str().ok());
    let source_ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default();
    let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
    RequestAuthorizerEvent {
        method_arn: called.method_arn.to_owned(),
        resource: called.route.to_owned(),
        path: path.clone(),
        http_method: method.clone(),
        headers,
        query_string_parameters,
        path_parameters,
        request_context: AuthorizerRequestContext {
            account_id: called.account.to_owned(),
            api_id: called.api_id.to_owned(),
            stage: called.stage.to_owned(),
            request_id: request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
            resource_path: called.route.to_owned(),
            http_method: method,
            path,
            identity: AuthorizerIdentity { source_ip },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::clock::ManualClock;

    fn authorizer(sources: &[&str]) -> FunctionAuthorizer {
        let config = FunctionAuthorizerConfig {
            function: "f".into(),
            kind: AuthorizerKind::Request,
            identity_source: sources.iter().map(|source| (*source).to_owned()).collect(),
            ttl: Duration::from_secs(300),
        };
        let invoker = crate::services::functions::slots::HttpInvoker {
            pool: crate::services::functions::slots::Pool::new("http", 1),
            queue_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        FunctionAuthorizer::new(
            "a",
            &config,
            AuthorizerFunctions::new(invoker),
            Arc::new(ManualClock::new(std::time::SystemTime::now())),
        )
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn every_identity_source_must_be_present_and_not_blank() {
        let authorizer = authorizer(&["header.X-Key", "query.tenant"]);
        let identity = |uri: &str, headers: &[(&str, &str)]| authorizer.identity(&parts(uri, headers));
        assert_eq!(identity("/v1/x?tenant=a%20b", &[("x-key", "k")]).as_deref(), Some("k\na b"));
        assert_eq!(identity("/v1/x?tenant=a", &[]), None);
        assert_eq!(identity("/v1/x", &[("x-key", "k")]), None);
        assert_eq!(identity("/v1/x?tenant=", &[("x-key", "k")]), None);
        assert_eq!(identity("/v1/x?tenant=a", &[("x-key", "  ")]), None);
    }
}
