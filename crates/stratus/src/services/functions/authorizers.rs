//! Authorizer functions (API Gateway's Lambda authorizers): registered on the host by name like
//! any other function, invoked by the gateway in an HTTP slot, within the HTTP timeout, in a span
//! of their own.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use futures::FutureExt as _;
use tracing::Instrument as _;

use super::slots::HttpInvoker;
use super::{FunctionError, Invocation};
use crate::infra::telemetry::error_chain;
use crate::ports::events::{AuthorizerEvent, AuthorizerResponse, Unauthorized};

type Answer = Pin<Box<dyn Future<Output = Result<AuthorizerResponse, FunctionError>> + Send>>;
type Function = Arc<dyn Fn(Invocation, AuthorizerEvent) -> Answer + Send + Sync>;

/// Why an authorizer gave no answer to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerFailure {
    /// It refused the caller ([`Unauthorized`]).
    #[error("Unauthorized")]
    Unauthorized,
    #[error("no authorizer function `{0}` is registered")]
    Unknown(String),
    /// It failed, panicked or timed out, or no slot freed up in time.
    #[error("{0}")]
    Failed(String),
}

/// The registered authorizer functions; the host and the gateway share it.
#[derive(Clone)]
pub struct AuthorizerFunctions {
    functions: Arc<RwLock<HashMap<String, Function>>>,
    invoker: HttpInvoker,
}

impl std::fmt::Debug for AuthorizerFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let functions = self.functions.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("AuthorizerFunctions").field("names", &functions.keys().collect::<Vec<_>>()).finish()
    }
}

impl AuthorizerFunctions {
    pub(crate) fn new(invoker: HttpInvoker) -> Self {
        Self { functions: Arc::default(), invoker }
    }

    /// Registers `function` as `name`; `false` when the name is taken.
    pub(super) fn register<F, Fut>(&self, name: &str, function: F) -> bool
    where
        F: Fn(Invocation, AuthorizerEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<AuthorizerResponse, FunctionError>> + Send + 'static,
    {
        let mut functions = self.functions.write().unwrap_or_else(PoisonError::into_inner);
        if functions.contains_key(name) {
            return false;
        }
        let function: Function = Arc::new(move |invocation, event| Box::pin(function(invocation, event)));
        functions.insert(name.to_owned(), function);
        true
    }

    pub fn contains(&self, name: &str) -> bool {
        self.functions.read().unwrap_or_else(PoisonError::into_inner).contains_key(name)
    }

    /// Invokes the authorizer `name` with `event`.
    pub async fn invoke(
        &self,
        name: &str,
        event: AuthorizerEvent,
    ) -> Result<AuthorizerResponse, AuthorizerFailure> {
        let function = self.functions.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        let function = function.ok_or_else(|| AuthorizerFailure::Unknown(name.to_owned()))?;
        let invoker = &self.invoker;
        let Some(_slot) = invoker.pool.acquire_within(invoker.queue_timeout).await else {
            invoker.pool.record_rejection();
            return Err(AuthorizerFailure::Failed("no function slot was free in time".into()));
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let invocation = Invocation {
            request_id: request_id.clone(),
            function: Arc::from(name),
            attempt: 1,
            last_attempt: true,
            deadline: started + invoker.timeout,
        };
        let span = tracing::info_span!("invocation", function = %name, request_id = %request_id);
        async move {
            let running = AssertUnwindSafe(function(invocation, event)).catch_unwind();
            let outcome = match tokio::time::timeout(invoker.timeout, running).await {
                Err(_) => {
                    invoker.pool.record_timeout();
                    Err(AuthorizerFailure::Failed(format!("timed out after {:?}", invoker.timeout)))
                }
                Ok(Err(_panic)) => Err(AuthorizerFailure::Failed("the function panicked".into())),
                Ok(Ok(Err(error))) if refuses(error.as_ref()) => Err(AuthorizerFailure::Unauthorized),
                Ok(Ok(Err(error))) => Err(AuthorizerFailure::Failed(error_chain(error.as_ref()))),
                Ok(Ok(Ok(response))) => Ok(response),
            };
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &outcome {
                Ok(_) => tracing::info!(duration_ms, outcome = "allow or deny", "invocation finished"),
                Err(AuthorizerFailure::Unauthorized) => {
                    tracing::info!(duration_ms, outcome = "unauthorized", "invocation finished");
                }
                Err(error) => {
                    tracing::warn!(duration_ms, outcome = "error", error = %error, "invocation failed");
                }
            }
            outcome
        }
        .instrument(span)
        .await
    }
}

/// Lambda's convention: an error whose message is `Unauthorized` refuses the token.
fn refuses(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error.is::<Unauthorized>() || error.to_string() == "Unauthorized"
}
