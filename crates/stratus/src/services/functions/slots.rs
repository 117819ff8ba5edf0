//! Invocation slots. HTTP functions and background functions (stream and object-event
//! consumers) each have a pool of their own, so neither kind of load can starve the other. An
//! HTTP function takes its slot only once the request has arrived whole and gives it back as
//! soon as its response is ready, never while a socket is read or written.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures::FutureExt as _;
use http_body_util::BodyExt as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::infra::http::Problem;

/// A pool of slots, and since when it has had none free.
#[derive(Debug)]
pub struct Pool {
    name: &'static str,
    capacity: usize,
    semaphore: Arc<Semaphore>,
    saturated_since: Mutex<Option<Instant>>,
    /// Requests refused because no slot came free in time (HTTP only).
    rejections: AtomicU64,
    timeouts: AtomicU64,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Pool>,
}

/// The pool is closed: the host is shutting down.
#[derive(Debug, Clone, Copy)]
pub struct Closed;

impl Pool {
    pub fn new(name: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            capacity,
            semaphore: Arc::new(Semaphore::new(capacity)),
            saturated_since: Mutex::new(None),
            rejections: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.semaphore.available_permits())
    }

    /// How long the pool has had no free slot; `None` while one is free.
    pub fn saturated_for(&self) -> Option<Duration> {
        self.saturated_since.lock().unwrap_or_else(PoisonError::into_inner).map(|since| since.elapsed())
    }

    /// Waits for a slot.
    pub async fn acquire(self: &Arc<Self>) -> Result<Slot, Closed> {
        let permit = Arc::clone(&self.semaphore).acquire_owned().await.map_err(|_| Closed)?;
        Ok(self.took(permit))
    }

    /// Waits at most `wait` for a slot.
    pub async fn acquire_within(self: &Arc<Self>, wait: Duration) -> Option<Slot> {
        match tokio::time::timeout(wait, self.acquire()).await {
            Ok(Ok(slot)) => Some(slot),
            Ok(Err(Closed)) | Err(_) => None,
        }
    }

    fn took(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        if self.semaphore.available_permits() == 0 {
            self.saturated_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(Instant::now);
        }
        Slot { permit: Some(permit), pool: Arc::clone(self) }
    }

    /// Counts a request refused because no slot came free in time.
    pub fn record_rejection(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an invocation that ran out of time.
    pub fn record_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::Relaxed)
    }

    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A waiter takes the permit at once, so the pool stays saturated while any wait.
        drop(self.permit.take());
        if self.pool.semaphore.available_permits() > 0 {
            *self.pool.saturated_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// Gauges and counters read from the pools at each scrape.
#[derive(Debug)]
pub(crate) struct PoolMetrics(pub Vec<Arc<Pool>>);

impl Collector for PoolMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let count = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.gauge(&mut encoder, "function_slots", "Invocation slots, by pool (http, background)", |pool| {
            count(pool.capacity)
        })?;
        self.gauge(&mut encoder, "function_slots_in_use", "Invocation slots in use, by pool", |pool| {
            count(pool.in_use())
        })?;
        self.gauge(
            &mut encoder,
            "function_slots_saturated_milliseconds",
            "How long the pool has had no free slot (0 while one is free)",
            |pool| pool.saturated_for().map_or(0, |held| i64::try_from(held.as_millis()).unwrap_or(i64::MAX)),
        )?;
        self.counter(
            &mut encoder,
            "function_rejections",
            "Requests answered 503 because no slot came free in time",
            Pool::rejections,
        )?;
        self.counter(
            &mut encoder,
            "function_timeouts",
            "Invocations that ran past their timeout",
            Pool::timeouts,
        )
    }
}

impl PoolMetrics {
    fn gauge(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        read: impl Fn(&Pool) -> i64,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
        for pool in &self.0 {
            ConstGauge::new(read(pool)).encode(family.encode_family(&[("pool", pool.name)])?)?;
        }
        Ok(())
    }

    fn counter(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        read: impl Fn(&Pool) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
        for pool in &self.0 {
            ConstCounter::new(read(pool)).encode(family.encode_family(&[("pool", pool.name)])?)?;
        }
        Ok(())
    }
}

/// How HTTP functions are invoked: in a slot of `pool`, waiting at most `queue_timeout` for
/// it, and answered 504 after `timeout`.
#[derive(Debug, Clone)]
pub(crate) struct HttpInvoker {
    pub pool: Arc<Pool>,
    pub queue_timeout: Duration,
    pub timeout: Duration,
}

/// Middleware around an HTTP function (inside the body reader, which has read the request by
/// now): `router.layer(axum::middleware::from_fn_with_state(invoker, invoke_http))`.
pub(crate) async fn invoke_http(
    State(invoker): State<HttpInvoker>,
    request: Request,
    next: Next,
) -> Response {
    let Some(slot) = invoker.pool.acquire_within(invoker.queue_timeout).await else {
        invoker.pool.record_rejection();
        tracing::warn!(pool = invoker.pool.name, "no function slot came free; answering 503");
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many requests are running; try again shortly.",
        )
        .with_header(header::RETRY_AFTER, "1")
        .into_response();
    };
    // The response is complete before the slot is given back: the function's work, body
    // included, runs in its slot and within its timeout.
    let run = async move {
        let (parts, body) = next.run(request).await.into_parts();
        let body = body.collect().await.map(http_body_util::Collected::to_bytes);
        (parts, body)
    };
    let outcome = tokio::time::timeout(invoker.timeout, AssertUnwindSafe(run).catch_unwind()).await;
    drop(slot);
    match outcome {
        Ok(Ok((parts, Ok(body)))) => Response::from_parts(parts, Body::from(body)),
        Ok(Ok((_, Err(error)))) => Problem::internal(&error).into_response(),
        Ok(Err(_panic)) => {
            tracing::error!("HTTP function panicked");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "The server could not complete the request.")
                .into_response()
        }
        Err(_elapsed) => {
            invoker.pool.record_timeout();
            tracing::warn!(timeout = ?invoker.timeout, "HTTP function timed out; answering 504");
            Problem::new(StatusCode::GATEWAY_TIMEOUT, "The function did not answer in time.").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pool_is_saturated_while_no_slot_is_free_and_waiters_keep_it_so() {
        let pool = Pool::new("test", 2);
        let first = pool.acquire().await.expect("slot");
        assert_eq!(pool.saturated_for(), None);
        let second = pool.acquire().await.expect("slot");
        assert!(pool.saturated_for().is_some());
        assert_eq!(pool.in_use(), 2);
        let waiter = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.acquire().await.map(drop) }
        });
        tokio::task::yield_now().await;
        drop(first);
        assert!(pool.saturated_for().is_some(), "the freed slot went to the waiter");
        waiter.await.expect("waiter").expect("slot");
        drop(second);
        assert_eq!(pool.saturated_for(), None);
        assert!(pool.acquire_within(Duration::from_millis(1)).await.is_some());
    }
}
