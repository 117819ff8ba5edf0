//! Request bodies. Every body the listener hands on must arrive at a minimum pace ([`Paced`]);
//! an endpoint refuses a body over its limit while it streams, before buffering it
//! ([`BodyLimit`]); and a function's body is read whole before the function is invoked, as API
//! Gateway receives a request before it invokes Lambda, so a slow client never holds a
//! function slot.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::time::{Instant, Sleep};

use super::connection::UnreadBody;
use super::metrics::{HttpMetrics, Timeout};

type BoxError = Box<dyn StdError + Send + Sync>;

/// How fast a request body must arrive: within `initial`, plus one second for every `min_rate`
/// bytes delivered so far. A client that stops, or trickles below the rate, runs out of time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyPace {
    pub initial: Duration,
    pub min_rate: u64,
}

impl BodyPace {
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        started + self.initial + earned
    }
}

/// The body did not arrive at the minimum pace; the request is answered 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time: {received} bytes in {elapsed:?}")]
pub(crate) struct BodyTimeout {
    received: u64,
    elapsed: Duration,
}

/// A request body held to a [`BodyPace`]. The clock starts when the request head has arrived.
pub(crate) struct Paced<B> {
    inner: B,
    pace: BodyPace,
    started: Instant,
    received: u64,
    /// Armed the first time the body has to wait for the client.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
    /// Whether the body was read to its end.
    finished: bool,
    unread_body: UnreadBody,
    metrics: HttpMetrics,
}

impl<B> std::fmt::Debug for Paced<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced").field("pace", &self.pace).field("received", &self.received).finish()
    }
}

impl<B: http_body::Body> Paced<B> {
    pub(crate) fn new(inner: B, pace: BodyPace, unread_body: UnreadBody, metrics: HttpMetrics) -> Self {
        Self {
            finished: inner.is_end_stream(),
            inner,
            pace,
            started: Instant::now(),
            received: 0,
            timer: None,
            timed_out: false,
            unread_body,
            metrics,
        }
    }

    fn timeout(&self) -> BoxError {
        Box::new(BodyTimeout { received: self.received, elapsed: self.started.elapsed() })
    }
}

impl<B> http_body::Body for Paced<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Some(Err(this.timeout())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.finished = this.inner.is_end_stream();
                    if let Some(timer) = &mut this.timer {
                        timer.as_mut().reset(this.pace.deadline(this.started, this.received));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Pending => {
                let deadline = this.pace.deadline(this.started, this.received);
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timed_out = true;
                this.metrics.timed_out(Timeout::Body);
                tracing::debug!(received = this.received, "request body too slow");
                Poll::Ready(Some(Err(this.timeout())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Paced<B> {
    /// A body refused before its end may still be on its way: the connection lingers before it
    /// closes. One that was too slow does not: that client has had its time.
    fn drop(&mut self) {
        if !self.finished && !self.timed_out {
            self.unread_body.left_unread();
        }
    }
}

/// Why a request body was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Longer than the endpoint's limit (413).
    TooLarge { limit: usize },
    /// Slower than the minimum pace (408).
    TooSlow,
    /// The connection failed or the framing was invalid (400).
    Unreadable,
}

impl BodyRefusal {
    /// What reading a body failed with, from the error's chain.
    pub fn of(error: &(dyn StdError + 'static), limit: usize) -> Self {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if error.is::<BodyTimeout>() {
                return Self::TooSlow;
            }
            if error.is::<LengthLimitError>() {
                return Self::TooLarge { limit };
            }
            cause = error.source();
        }
        Self::Unreadable
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow => StatusCode::REQUEST_TIMEOUT,
            Self::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    pub fn message(self) -> String {
        match self {
            Self::TooLarge { limit } => format!("The request body exceeds {limit} bytes."),
            Self::TooSlow => "The request body did not arrive in time.".to_owned(),
            Self::Unreadable => "The request body could not be read.".to_owned(),
        }
    }
}

/// Renders a refusal in the endpoint's protocol (problem+json, Cognito's JSON, S3's XML).
pub(crate) type RenderRefusal = fn(BodyRefusal) -> Response;

/// An endpoint's body limit and how it words a refusal; used as middleware state.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub max_bytes: usize,
    pub render: RenderRefusal,
}

impl BodyLimit {
    pub fn new(max_bytes: usize, render: RenderRefusal) -> Self {
        Self { max_bytes, render }
    }

    fn refuse(self, refusal: BodyRefusal) -> Response {
        let mut response = (self.render)(refusal);
        // The rest of the body is never read, so the connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// Whether the declared length is over the limit, so the body need not be read at all.
    fn declared_too_large(self, request: &Request) -> bool {
        request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|length| length > self.max_bytes as u64)
    }

    fn too_large(self) -> Response {
        self.refuse(BodyRefusal::TooLarge { limit: self.max_bytes })
    }

    /// Reads a request's whole body within the limit: the request again, its body in memory,
    /// and the bytes; or the refusal to send (413, 408, 400, as the endpoint words them).
    pub(crate) async fn read_whole(self, request: Request) -> Result<(Request, Bytes), Response> {
        if self.declared_too_large(&request) {
            return Err(self.too_large());
        }
        let (parts, body) = request.into_parts();
        match Limited::new(body, self.max_bytes).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                Ok((Request::from_parts(parts, Body::from(bytes.clone())), bytes))
            }
            Err(error) => Err(self.refuse(BodyRefusal::of(error.as_ref(), self.max_bytes))),
        }
    }
}

/// Middleware that reads the whole body, within the limit, before the rest of the stack runs:
/// `router.layer(axum::middleware::from_fn_with_state(limit, read_whole_body))`.
pub(crate) async fn read_whole_body(
    State(limit): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    match limit.read_whole(request).await {
        Ok((request, _)) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

/// Middleware for endpoints that stream their bodies (uploads): a declared length over the
/// limit is refused at once, and the body is cut off where it passes the limit.
pub(crate) async fn limit_streamed_body(
    State(limit): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    if limit.declared_too_large(&request) {
        return limit.too_large();
    }
    next.run(request.map(|body| Body::new(Limited::new(body, limit.max_bytes)))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_by_a_second_for_every_min_rate_bytes() {
        let pace = BodyPace { initial: Duration::from_secs(10), min_rate: 1000 };
        let start = Instant::now();
        assert_eq!(pace.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(pace.deadline(start, 2500), start + Duration::from_millis(12_500));
    }

    #[tokio::test]
    async fn refusals_are_found_anywhere_in_the_error_chain() {
        let wrapped = axum::Error::new(BodyTimeout { received: 3, elapsed: Duration::from_secs(2) });
        assert_eq!(BodyRefusal::of(&wrapped, 10), BodyRefusal::TooSlow);
        let body = Limited::new(Body::from("more than ten bytes"), 10);
        let too_long = axum::Error::new(body.collect().await.expect_err("over the limit"));
        assert_eq!(BodyRefusal::of(&too_long, 10), BodyRefusal::TooLarge { limit: 10 });
        let other = std::io::Error::other("reset");
        assert_eq!(BodyRefusal::of(&other, 10), BodyRefusal::Unreadable);
    }
}
