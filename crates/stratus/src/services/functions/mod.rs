//! The local function host: registers functions with their triggers and invokes them with
//! Lambda's delivery semantics — one invocation at a time per consumer (so order per item
//! holds), each with a request id, a timeout and a `tracing` span, in slots of their own kind
//! (`slots`: HTTP and background pools). Shutdown lets in-flight invocations finish and their
//! checkpoints land.

mod authorizers;
mod config;
pub use authorizers::{AuthorizerFailure, AuthorizerFunctions};
pub use config::FunctionsConfig;

pub(crate) mod slots;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use futures::FutureExt as _;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::infra::http::body::{BodyLimit, read_whole_body};
use crate::infra::telemetry::error_chain;
use crate::ports::events::{AuthorizerEvent, AuthorizerResponse, BatchResponse, ObjectEvent, TableChange};
use crate::ports::stream::StreamConfig;
use crate::ports::stream::consumer::Consumer;
use crate::ports::stream::{
    Attempt, BodyFilter, ConsumerSpec, Deliver, DeliveryOptions, EventFilter, Outcome, Record, StreamError,
    StreamLog,
};
use slots::{HttpInvoker, Pool, invoke_http};

/// What a function returns when it fails; its message (with causes) is logged and kept with
/// dead letters.
pub type FunctionError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The context of one invocation, like Lambda's `Context`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub function: Arc<str>,
    /// 1 for the first delivery of these records, then 2, 3, …
    pub attempt: u32,
    /// A failure now sends the records to the dead-letter queue rather than back for a retry:
    /// the last chance to record the failure where users see it.
    pub last_attempt: bool,
    pub deadline: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("a function named `{name}` is already registered")]
    DuplicateFunction { name: String },
    #[error("function `{name}` stopped unexpectedly")]
    ConsumerStopped { name: String },
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Filter(#[from] crate::ports::stream::FilterError),
}

/// How a table-change function is fed (Lambda's event source mapping for a stream).
#[derive(Debug, Clone)]
pub struct StreamTrigger {
    pub filter: EventFilter,
    pub options: DeliveryOptions,
}

impl StreamTrigger {
    /// Every change, with the configured batching and retry settings.
    pub fn new(config: &StreamConfig) -> Self {
        Self { filter: EventFilter::default(), options: DeliveryOptions::from(config) }
    }

    #[must_use]
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.options.batch_size = batch_size;
        self
    }
}

/// S3 notification filter rules on the object key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub prefix: String,
    pub suffix: String,
}

impl KeyFilter {
    /// Whether an object event's key (decoded as S3 encodes it) passes the rules.
    fn accepts(&self, event: &serde_json::Value) -> bool {
        let Some(encoded) = event.pointer("/s3/object/key").and_then(|key| key.as_str()) else {
            return false;
        };
        let key = crate::ports::events::decode_event_key(encoded);
        key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }
}

/// Which object events reach a function (an S3 notification configuration).
#[derive(Debug, Clone)]
pub struct ObjectTrigger {
    pub keys: KeyFilter,
    /// `ObjectCreated:` or `ObjectRemoved:` (prefixes of the event name), or both when empty.
    pub event_prefix: String,
    pub options: DeliveryOptions,
}

impl ObjectTrigger {
    /// Object-created events for every key.
    pub fn created(config: &StreamConfig) -> Self {
        let mut options = DeliveryOptions::from(config);
        // S3 invokes a function once per event.
        options.batch_size = 1;
        Self { keys: KeyFilter::default(), event_prefix: "ObjectCreated:".into(), options }
    }

    /// Every object event (created and removed) for every key.
    pub fn any(config: &StreamConfig) -> Self {
        Self { event_prefix: String::new(), ..Self::created(config) }
    }

    /// Object-removed events for every key.
    pub fn removed(config: &StreamConfig) -> Self {
        Self { event_prefix: "ObjectRemoved:".into(), ..Self::created(config) }
    }

    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys.prefix = prefix.into();
        self
    }

    #[must_use]
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.keys.suffix = suffix.into();
        self
    }
}

#[derive(Debug)]
pub struct Host {
    log: Arc<StreamLog>,
    limits: Arc<Limits>,
    pending: Vec<(ConsumerSpec, Arc<dyn Deliver>)>,
    running: Vec<RunningConsumer>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    authorizers: AuthorizerFunctions,
}

#[derive(Debug)]
struct Limits {
    /// Stream and object-event invocations.
    background: Arc<Pool>,
    background_timeout: Duration,
    http: HttpInvoker,
}

#[derive(Debug, Clone)]
struct RunningConsumer {
    name: String,
    source: String,
    progress: watch::Receiver<u64>,
}

impl Host {
    pub fn new(log: Arc<StreamLog>, config: &FunctionsConfig) -> Self {
        let limits = Limits {
            background: Pool::new("background", config.background_concurrency),
            background_timeout: config.background_timeout,
            http: HttpInvoker {
                pool: Pool::new("http", config.http_concurrency),
                queue_timeout: config.http_queue_timeout,
                timeout: config.http_timeout,
            },
        };
        Self {
            log,
            authorizers: AuthorizerFunctions::new(limits.http.clone()),
            limits: Arc::new(limits),
            pending: Vec::new(),
            running: Vec::new(),
            tasks: JoinSet::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Registers a function over batches of a table's changes. It returns which records failed
    /// (a partial batch response) or an error for the whole batch.
    pub fn on_table_change<F, Fut>(
        &mut self,
        name: &str,
        table_source: &str,
        trigger: StreamTrigger,
        function: F,
    ) -> Result<(), HostError>
    where
        F: Fn(Invocation, Vec<TableChange>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<BatchResponse, FunctionError>> + Send + 'static,
    {
        let spec = ConsumerSpec {
            name: name.to_owned(),
            source: table_source.to_owned(),
            filter: trigger.filter,
            body_filter: None,
            options: trigger.options,
        };
        let deliver = TableChangeFunction { name: name.into(), limits: Arc::clone(&self.limits), function };
        self.register(spec, Arc::new(deliver))
    }

    /// Registers a function over a bucket's object events, one event per invocation.
    pub fn on_object_event<F, Fut>(
        &mut self,
        name: &str,
        bucket_source: &str,
        trigger: ObjectTrigger,
        function: F,
    ) -> Result<(), HostError>
    where
        F: Fn(Invocation, ObjectEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), FunctionError>> + Send + 'static,
    {
        let filter = if trigger.event_prefix.is_empty() {
            EventFilter::default()
        } else {
            let pattern = serde_json::json!({ "eventName": [{ "prefix": trigger.event_prefix }] });
            EventFilter::new([pattern])?
        };
        let spec = ConsumerSpec {
            name: name.to_owned(),
            source: bucket_source.to_owned(),
            filter,
            body_filter: Some({
                let keys = trigger.keys;
                BodyFilter::new(move |event| keys.accepts(event))
            }),
            options: trigger.options,
        };
        let deliver = ObjectFunction { name: name.into(), limits: Arc::clone(&self.limits), function };
        self.register(spec, Arc::new(deliver))
    }

    fn register(&mut self, spec: ConsumerSpec, deliver: Arc<dyn Deliver>) -> Result<(), HostError> {
        let taken =
            self.pending.iter().map(|(spec, _)| &spec.name).chain(self.running.iter().map(|r| &r.name));
        if taken.into_iter().any(|name| *name == spec.name) {
            return Err(HostError::DuplicateFunction { name: spec.name });
        }
        self.pending.push((spec, deliver));
        Ok(())
    }

    /// Starts every registered function's consumer.
    pub fn start(&mut self) -> Result<(), HostError> {
        for (spec, deliver) in std::mem::take(&mut self.pending) {
            let checkpoint =
                self.log.register_consumer(&spec.name, &spec.source, spec.options.starting_position)?;
            let (progress, receiver) = watch::channel(checkpoint);
            self.running.push(RunningConsumer {
                name: spec.name.clone(),
                source: spec.source.clone(),
                progress: receiver,
            });
            let consumer = Consumer {
                log: Arc::clone(&self.log),
                spec,
                deliver,
                progress,
                shutdown: self.shutdown.child_token(),
            };
            self.tasks.spawn(consumer.run());
        }
        Ok(())
    }

    /// Serves `function` (an axum `Router`, the value `lambda_http::run` serves on AWS) as the
    /// local API Gateway invokes it: the request body is read whole within `limit` first, then
    /// the function runs in an HTTP slot, within the HTTP timeout.
    pub fn http_function(&self, function: Router, limit: BodyLimit) -> Router {
        function
            // The body has been read and bounded by now; the extractors' own limit would only
            // be a second, different one.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn_with_state(self.limits.http.clone(), invoke_http))
            .layer(axum::middleware::from_fn_with_state(limit, read_whole_body))
    }

    /// Registers an authorizer function (API Gateway's Lambda authorizer), which the gateway calls
    /// for the routes `[gateway.authorization]` gives to an authorizer naming it.
    pub fn on_authorize<F, Fut>(&mut self, name: &str, function: F) -> Result<(), HostError>
    where
        F: Fn(Invocation, AuthorizerEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<AuthorizerResponse, FunctionError>> + Send + 'static,
    {
        if self.authorizers.register(name, function) {
            Ok(())
        } else {
            Err(HostError::DuplicateFunction { name: name.to_owned() })
        }
    }

    /// The registered authorizer functions, for the gateway.
    pub fn authorizers(&self) -> AuthorizerFunctions {
        self.authorizers.clone()
    }

    /// The HTTP and background pools, for metrics.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        vec![Arc::clone(&self.limits.http.pool), Arc::clone(&self.limits.background)]
    }

    /// Names of the running consumers.
    pub fn consumer_names(&self) -> Vec<String> {
        self.running.iter().map(|consumer| consumer.name.clone()).collect()
    }

    /// A cheap handle for health checks.
    pub fn health(&self) -> HostHealth {
        HostHealth {
            consumers: self.running.iter().map(|c| (c.name.clone(), c.progress.clone())).collect(),
            pools: self.pools(),
        }
    }

    /// Waits until every consumer has processed (or dead-lettered, or filtered out) every record
    /// written before this call. Tests use it instead of sleeping.
    pub async fn drain(&self) -> Result<(), HostError> {
        self.drainer().drain().await
    }

    /// A handle that drains the consumers started so far, usable after the host has moved
    /// into a running application.
    pub fn drainer(&self) -> Drainer {
        Drainer { log: Arc::clone(&self.log), consumers: self.running.clone() }
    }

    /// Stops every consumer after its in-flight invocation finishes and is checkpointed.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops at once, as a crash would: in-flight invocations are dropped, nothing more is
    /// checkpointed. For tests of at-least-once delivery.
    pub async fn abort(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Waits for consumers to catch up; see [`Host::drain`].
#[derive(Debug, Clone)]
pub struct Drainer {
    log: Arc<StreamLog>,
    consumers: Vec<RunningConsumer>,
}

impl Drainer {
    pub async fn drain(&self) -> Result<(), HostError> {
        for consumer in &self.consumers {
            let target = self.log.latest_for(&consumer.name, &consumer.source)?;
            let mut progress = consumer.progress.clone();
            progress
                .wait_for(|checkpoint| *checkpoint >= target)
                .await
                .map_err(|_| HostError::ConsumerStopped { name: consumer.name.clone() })?;
        }
        Ok(())
    }
}

/// Whether the host's consumers are still running, and how busy its pools are.
#[derive(Debug, Clone)]
pub struct HostHealth {
    consumers: Vec<(String, watch::Receiver<u64>)>,
    pools: Vec<Arc<Pool>>,
}

impl HostHealth {
    pub fn names(&self) -> Vec<String> {
        self.consumers.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Names of consumers whose task has ended.
    pub fn stopped(&self) -> Vec<String> {
        self.consumers
            .iter()
            .filter(|(_, progress)| progress.has_changed().is_err())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }
}

/// Runs one invocation in a background slot, within the timeout, in its own span; a panic is
/// a failure like any other.
async fn invoke<T>(
    function: &Arc<str>,
    limits: &Limits,
    attempt: Attempt,
    records: usize,
    call: impl FnOnce(Invocation) -> std::pin::Pin<Box<dyn Future<Output = Result<T, FunctionError>> + Send>>,
) -> Result<T, String> {
    let Ok(_slot) = limits.background.acquire().await else {
        return Err("the function host is shutting down".into());
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let invocation = Invocation {
        request_id: request_id.clone(),
        function: Arc::clone(function),
        attempt: attempt.number,
        last_attempt: attempt.last,
        deadline: started + limits.background_timeout,
    };
    let span = tracing::info_span!(
        "invocation",
        function = %function,
        request_id = %request_id,
        attempt = attempt.number,
        records
    );
    async move {
        let running = AssertUnwindSafe(call(invocation)).catch_unwind();
        let outcome = match tokio::time::timeout(limits.background_timeout, running).await {
            Err(_) => {
                limits.background.record_timeout();
                Err(format!("timed out after {:?}", limits.background_timeout))
            }
            Ok(Err(_panic)) => Err("the function panicked".to_owned()),
            Ok(Ok(Err(error))) => Err(error_chain(error.as_ref())),
            Ok(Ok(Ok(value))) => Ok(value),
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &outcome {
            Ok(_) => tracing::info!(duration_ms, outcome = "success", "invocation finished"),
            Err(error) => tracing::warn!(duration_ms, outcome = "error", error = %error, "invocation failed"),
        }
        outcome
    }
    .instrument(span)
    .await
}

/// The sequence number as DynamoDB Streams spells it.
pub fn sequence_number(seq: u64) -> String {
    format!("{seq:021}")
}

fn decode_table_change(record: &Record) -> Result<TableChange, String> {
    let mut change: TableChange = serde_json::from_value(record.body.clone())
        .map_err(|e| format!("record {} is not a table change: {e}", record.seq))?;
    change.dynamodb.sequence_number = sequence_number(record.seq);
    change.event_id = format!("{:032x}", record.seq);
    Ok(change)
}

fn decode_object_event(record: &Record) -> Result<ObjectEvent, String> {
    let mut event: ObjectEvent = serde_json::from_value(record.body.clone())
        .map_err(|e| format!("record {} is not an object event: {e}", record.seq))?;
    event.s3.object.sequencer = format!("{:016X}", record.seq);
    Ok(event)
}

struct TableChangeFunction<F> {
    name: Arc<str>,
    limits: Arc<Limits>,
    function: F,
}

#[async_trait]
impl<F, Fut> Deliver for TableChangeFunction<F>
where
    F: Fn(Invocation, Vec<TableChange>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BatchResponse, FunctionError>> + Send + 'static,
{
    async fn deliver(&self, records: &[Record], attempt: Attempt) -> Outcome {
        let changes = match records.iter().map(decode_table_change).collect::<Result<Vec<_>, _>>() {
            Ok(changes) => changes,
            Err(error) => return Outcome::Failed(error),
        };
        let response = invoke(&self.name, &self.limits, attempt, records.len(), |context| {
            Box::pin((self.function)(context, changes))
        })
        .await;
        match response {
            Err(error) => Outcome::Failed(error),
            Ok(response) => {
                let failed: Result<Vec<u64>, _> = response
                    .batch_item_failures
                    .iter()
                    .map(|failure| failure.item_identifier.parse::<u64>())
                    .collect();
                match failed {
                    Ok(failed) => failed.into_iter().min().map_or(Outcome::Success, Outcome::FailedFrom),
                    Err(_) => {
                        Outcome::Failed("the batch response names a record that is not in the batch".into())
                    }
                }
            }
        }
    }
}

struct ObjectFunction<F> {
    name: Arc<str>,
    limits: Arc<Limits>,
    function: F,
}

#[async_trait]
impl<F, Fut> Deliver for ObjectFunction<F>
where
    F: Fn(Invocation, ObjectEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), FunctionError>> + Send + 'static,
{
    async fn deliver(&self, records: &[Record], attempt: Attempt) -> Outcome {
        // Object functions get one event per invocation (batch size 1); a larger batch is
        // delivered event by event and the first failure stops it.
        for record in records {
            let event = match decode_object_event(record) {
                Ok(event) => event,
                Err(error) => return Outcome::Failed(error),
            };
            let result = invoke(&self.name, &self.limits, attempt, 1, |context| {
                Box::pin((self.function)(context, event))
            })
            .await;
            if let Err(error) = result {
                return if record.seq == records[0].seq {
                    Outcome::Failed(error)
                } else {
                    Outcome::FailedFrom(record.seq)
                };
            }
        }
        Outcome::Success
    }
}
