//! A consumer's delivery loop: reads its source in order, filters, batches, invokes, retries,
//! bisects, dead-letters, and checkpoints only what was processed — at least once, in order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{EventFilter, Record, StreamError, StreamLog};
use crate::infra::telemetry::error_chain;
use crate::ports::stream::{StartingPosition, StreamConfig};

/// What an invocation of a consumer's function reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every record was processed.
    Success,
    /// Records before this sequence number were processed; it and the rest were not.
    FailedFrom(u64),
    /// Nothing can be assumed processed.
    Failed(String),
}

/// Which delivery of a window of records this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first delivery of these records, then 2, 3, …
    pub number: u32,
    /// A failure now dead-letters the records instead of retrying them (the attempts or the
    /// record age are used up), unless the window is split first (`bisect_on_error`).
    pub last: bool,
}

/// Invokes a consumer's function with one batch.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    async fn deliver(&self, records: &[Record], attempt: Attempt) -> Outcome;
}

impl std::fmt::Debug for dyn Deliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deliver")
    }
}

/// Batching and retry behaviour of one consumer (Lambda's event source mapping settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    pub batch_size: usize,
    pub batching_window: Duration,
    pub max_attempts: u32,
    pub max_record_age: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub bisect_on_error: bool,
    pub starting_position: StartingPosition,
    pub poll_interval: Duration,
}

impl From<&StreamConfig> for DeliveryOptions {
    fn from(config: &StreamConfig) -> Self {
        Self {
            batch_size: config.batch_size,
            batching_window: config.batching_window,
            max_attempts: config.max_attempts,
            max_record_age: config.max_record_age,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            bisect_on_error: config.bisect_on_error,
            starting_position: config.starting_position,
            poll_interval: config.poll_interval,
        }
    }
}

/// A further test of a record's body, for rules the event filter language cannot state (S3's
/// key prefix and suffix compare the decoded key). A record it refuses is passed over like one
/// the event filter refuses.
#[derive(Clone)]
pub struct BodyFilter(Arc<dyn Fn(&serde_json::Value) -> bool + Send + Sync>);

impl BodyFilter {
    pub fn new(accepts: impl Fn(&serde_json::Value) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(accepts))
    }
}

impl std::fmt::Debug for BodyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyFilter")
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub name: String,
    /// `table/<name>` or `bucket/<name>`.
    pub source: String,
    pub filter: EventFilter,
    pub body_filter: Option<BodyFilter>,
    pub options: DeliveryOptions,
}

impl ConsumerSpec {
    fn accepts(&self, record: &Record) -> bool {
        self.filter.matches(&record.body)
            && self.body_filter.as_ref().is_none_or(|accepts| (accepts.0)(&record.body))
    }
}

/// A running consumer.
pub(crate) struct Consumer {
    pub(crate) log: Arc<StreamLog>,
    pub(crate) spec: ConsumerSpec,
    pub(crate) deliver: Arc<dyn Deliver>,
    /// Publishes the checkpoint after every advance (for draining and status).
    pub(crate) progress: watch::Sender<u64>,
    pub(crate) shutdown: CancellationToken,
}

enum Flow {
    Continue,
    Stop,
}

impl Consumer {
    /// Runs until shutdown. Storage errors are logged and retried: a consumer never gives up.
    pub(crate) async fn run(self) {
        let mut commits = self.log.database().subscribe_commits();
        let mut checkpoint = *self.progress.borrow();
        tracing::info!(consumer = %self.spec.name, source = %self.spec.source, checkpoint, "stream consumer started");
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            commits.mark_unchanged();
            match self.step(&mut checkpoint, &mut commits).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => break,
                Err(error) => {
                    tracing::error!(consumer = %self.spec.name, error = %error_chain(&error), "stream consumer failed; retrying");
                    if self.pause(self.spec.options.backoff_max, &mut commits).await.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::info!(consumer = %self.spec.name, checkpoint, "stream consumer stopped");
    }

    /// Reads and delivers one batch, or waits for records.
    async fn step(
        &self,
        checkpoint: &mut u64,
        commits: &mut watch::Receiver<u64>,
    ) -> Result<Flow, StreamError> {
        let options = &self.spec.options;
        let read =
            self.log.read_after(&self.spec.name, &self.spec.source, *checkpoint, options.batch_size)?;
        let Some(last) = read.last().map(|record| record.seq) else {
            return Ok(self.wait_for_records(commits).await);
        };
        let batch: Vec<Record> = read.into_iter().filter(|record| self.spec.accepts(record)).collect();
        if let Some(first) = batch.first()
            && batch.len() < options.batching_window_capacity()
        {
            let window_ms = i64::try_from(options.batching_window.as_millis()).unwrap_or(i64::MAX);
            let age_ms = self.log.now_millis() - first.created_at_ms;
            if age_ms < window_ms {
                let remaining = Duration::from_millis(u64::try_from(window_ms - age_ms).unwrap_or_default());
                return Ok(match self.pause(remaining, commits).await {
                    Ok(()) => Flow::Continue,
                    Err(()) => Flow::Stop,
                });
            }
        }
        if !batch.is_empty() && self.deliver_batch(&batch, checkpoint).await?.is_err() {
            return Ok(Flow::Stop);
        }
        // Everything read is now processed, dead-lettered or filtered out.
        if *checkpoint < last {
            self.advance(checkpoint, last, Vec::new()).await?;
        }
        Ok(Flow::Continue)
    }

    async fn wait_for_records(&self, commits: &mut watch::Receiver<u64>) -> Flow {
        tokio::select! {
            () = self.shutdown.cancelled() => Flow::Stop,
            _ = commits.changed() => Flow::Continue,
            () = tokio::time::sleep(self.spec.options.poll_interval) => Flow::Continue,
        }
    }

    /// Waits `duration` unless new records arrive; `Err` on shutdown.
    async fn pause(&self, duration: Duration, commits: &mut watch::Receiver<u64>) -> Result<(), ()> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(()),
            _ = commits.changed() => Ok(()),
            () = tokio::time::sleep(duration) => Ok(()),
        }
    }

    fn age(&self, record: &Record) -> Duration {
        Duration::from_millis(u64::try_from(self.log.now_millis() - record.created_at_ms).unwrap_or_default())
    }

    async fn advance(
        &self,
        checkpoint: &mut u64,
        to: u64,
        dead: Vec<(Record, String, u32)>,
    ) -> Result<(), StreamError> {
        self.log.advance(&self.spec.name, to, dead).await?;
        *checkpoint = (*checkpoint).max(to);
        self.progress.send_replace(*checkpoint);
        Ok(())
    }

    /// Delivers `records` until each is processed or dead-lettered. `Ok(Err(()))` means shutdown
    /// interrupted it; what was not checkpointed is delivered again after restart.
    async fn deliver_batch(
        &self,
        records: &[Record],
        checkpoint: &mut u64,
    ) -> Result<Result<(), ()>, StreamError> {
        let options = &self.spec.options;
        let (mut start, mut end) = (0, records.len());
        // Failed attempts of the current window `records[start..end]`.
        let mut attempts = 0u32;
        while start < records.len() {
            if self.shutdown.is_cancelled() {
                return Ok(Err(()));
            }
            let window = &records[start..end];
            let attempt = Attempt {
                number: attempts + 1,
                last: attempts + 1 >= options.max_attempts || self.age(&window[0]) > options.max_record_age,
            };
            let outcome = self.deliver.deliver(window, attempt).await;
            let failure = match outcome {
                Outcome::Success => {
                    self.advance(checkpoint, window[window.len() - 1].seq, Vec::new()).await?;
                    (start, end, attempts) = (end, records.len(), 0);
                    continue;
                }
                Outcome::FailedFrom(seq) => match window.iter().position(|record| record.seq == seq) {
                    Some(0) => "the function reported this record as failed".to_owned(),
                    Some(processed) => {
                        // A new window starts at the failed record.
                        self.advance(checkpoint, window[processed - 1].seq, Vec::new()).await?;
                        (start, end, attempts) = (start + processed, records.len(), 0);
                        continue;
                    }
                    None => format!("the function reported unknown sequence number {seq} as failed"),
                },
                Outcome::Failed(error) => {
                    if options.bisect_on_error && window.len() > 1 {
                        end = start + window.len() / 2;
                        continue;
                    }
                    error
                }
            };
            attempts += 1;
            if attempts >= options.max_attempts || self.age(&window[0]) > options.max_record_age {
                let dead = window.iter().map(|record| (record.clone(), failure.clone(), attempts)).collect();
                tracing::warn!(
                    consumer = %self.spec.name,
                    first_seq = window[0].seq,
                    records = window.len(),
                    attempts,
                    error = %failure,
                    "records dead-lettered"
                );
                self.advance(checkpoint, window[window.len() - 1].seq, dead).await?;
                (start, end, attempts) = (end, records.len(), 0);
                continue;
            }
            let backoff = options.backoff(attempts);
            tracing::debug!(consumer = %self.spec.name, attempts, ?backoff, "batch failed; retrying");
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(Err(())),
                () = tokio::time::sleep(backoff) => {}
            }
        }
        Ok(Ok(()))
    }
}

impl DeliveryOptions {
    /// Exponential backoff after the `attempts`-th failure.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.backoff_initial.saturating_mul(factor).min(self.backoff_max)
    }

    /// A batch smaller than this waits for the batching window (if any) to fill.
    fn batching_window_capacity(&self) -> usize {
        if self.batching_window.is_zero() { 0 } else { self.batch_size }
    }
}
