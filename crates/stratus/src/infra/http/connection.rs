//! One client connection's clocks. [`Watched`] wraps the socket: it counts what arrives, gives
//! up on a response the client has stopped reading, and closes with a lingering close when a
//! request body was left unread. [`HeadTimer`] is the timer hyper runs
//! while it waits for a request head, made to tell an idle keep-alive connection (which may
//! wait `idle_timeout`) from a head that has begun to arrive (which must finish within
//! `header_timeout` of its first byte). A new connection's first head gets `header_timeout` from
//! the start: a client that connects and says nothing is not idle, it is slow.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::metrics::{HttpMetrics, Timeout};

/// What the socket has delivered so far, shared by [`Watched`] and [`HeadTimer`].
#[derive(Debug, Default)]
struct Arrivals {
    bytes: AtomicU64,
}

/// Set by a request body dropped before its end ([`super::body::Paced`]): the client may still
/// be sending it, so the connection must not simply close. Closing a socket with unread data
/// sends a reset, and a reset makes the client's kernel discard the answer before the client
/// has read it.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnreadBody(Arc<AtomicBool>);

impl UnreadBody {
    pub(crate) fn left_unread(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Arrivals {
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A client socket that counts the bytes it reads and fails a write that has made no progress
/// for `send_timeout`.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    socket: S,
    arrivals: Arc<Arrivals>,
    send_timeout: Duration,
    /// Set while a write waits for the client to read.
    stalled: Option<Pin<Box<Sleep>>>,
    unread_body: UnreadBody,
    linger_timeout: Duration,
    /// Set once the write side is shut and the unread rest is being drained, until then.
    lingering: Option<Pin<Box<Sleep>>>,
    metrics: HttpMetrics,
}

impl<S> Watched<S> {
    pub(crate) fn new(
        socket: S,
        send_timeout: Duration,
        linger_timeout: Duration,
        metrics: HttpMetrics,
    ) -> Self {
        Self {
            socket,
            arrivals: Arc::default(),
            send_timeout,
            stalled: None,
            unread_body: UnreadBody::default(),
            linger_timeout,
            lingering: None,
            metrics,
        }
    }

    /// The flag this connection's request bodies set when they are dropped unread.
    pub(crate) fn unread_body(&self) -> UnreadBody {
        self.unread_body.clone()
    }

    /// The timer for hyper's header-read timeout on this connection.
    pub(crate) fn head_timer(&self, header_timeout: Duration, idle_timeout: Duration) -> HeadTimer {
        HeadTimer {
            arrivals: Arc::clone(&self.arrivals),
            header_timeout,
            idle_timeout,
            first_head: Arc::new(AtomicBool::new(true)),
            metrics: self.metrics.clone(),
        }
    }

    /// Called when a write is pending: fails it once the client has read nothing for
    /// `send_timeout`.
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.send_timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.metrics.timed_out(Timeout::Send);
        tracing::debug!("client stopped reading the response");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")))
    }

    fn progressed<T>(&mut self, result: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.poll_stalled(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.socket).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.arrivals.bytes.fetch_add(read as u64, Ordering::Relaxed);
            this.metrics.received(read);
        }
        result
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.socket).poll_write(cx, data);
        this.progressed(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.socket).poll_write_vectored(cx, buffers);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.socket).poll_flush(cx);
        this.progressed(result, cx)
    }

    /// Shuts the write side (the client sees the answer end), then, if a body was left
    /// unread, reads and discards until the client closes, fails, or `linger_timeout` passes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.lingering.is_none() {
            std::task::ready!(Pin::new(&mut this.socket).poll_shutdown(cx))?;
            if !this.unread_body.is_set() || this.linger_timeout.is_zero() {
                return Poll::Ready(Ok(()));
            }
            this.lingering = Some(Box::pin(tokio::time::sleep(this.linger_timeout)));
        }
        this.poll_drain(cx)
    }
}

impl<S: AsyncRead + Unpin> Watched<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 16 * 1024];
        loop {
            // Checked on every round: a fast client must not keep the drain going past its time.
            if self.lingering.as_mut().is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready()) {
                tracing::debug!("client still sending after the linger timeout; closing");
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.socket).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => self.metrics.discarded(buf.filled().len()),
                // The client hung up: there is nobody left to reset.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// hyper's timer for one connection. hyper asks it for a deadline each time it starts waiting
/// for a request head, and closes the connection when that deadline fires.
#[derive(Debug, Clone)]
pub(crate) struct HeadTimer {
    arrivals: Arc<Arrivals>,
    header_timeout: Duration,
    idle_timeout: Duration,
    first_head: Arc<AtomicBool>,
    metrics: HttpMetrics,
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Fixed(Box::pin(tokio::time::sleep(duration))))
    }

    /// The deadline hyper computed is ignored: the head's own rules decide (see the module).
    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let first = self.first_head.swap(false, Ordering::Relaxed);
        let (phase, wait) =
            if first { (Phase::Head, self.header_timeout) } else { (Phase::Idle, self.idle_timeout) };
        Box::pin(HeadDeadline {
            arrivals: Arc::clone(&self.arrivals),
            bytes_at_start: self.arrivals.bytes(),
            header_timeout: self.header_timeout,
            phase,
            sleep: Box::pin(tokio::time::sleep(wait)),
            metrics: self.metrics.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a keep-alive connection's next request.
    Idle,
    /// Part of a head has arrived (or this is the connection's first).
    Head,
}

struct HeadDeadline {
    arrivals: Arc<Arrivals>,
    bytes_at_start: u64,
    header_timeout: Duration,
    phase: Phase,
    sleep: Pin<Box<Sleep>>,
    metrics: HttpMetrics,
}

impl Future for HeadDeadline {
    type Output = ();

    /// hyper polls this after every read that leaves the head incomplete, so the first byte of
    /// a head is seen here as soon as it arrives.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.phase == Phase::Idle && this.arrivals.bytes() != this.bytes_at_start {
            this.phase = Phase::Head;
            this.sleep.as_mut().reset(Instant::now() + this.header_timeout);
        }
        if this.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let kind = match this.phase {
            Phase::Idle => Timeout::Idle,
            Phase::Head => Timeout::Header,
        };
        // An idle connection closing is routine; a head that never finished is worth a line.
        if kind == Timeout::Header {
            tracing::debug!("request head too slow; closing the connection");
        }
        this.metrics.timed_out(kind);
        Poll::Ready(())
    }
}

impl hyper::rt::Sleep for HeadDeadline {}

/// A plain sleep, for any other timer hyper may ask for.
struct Fixed(Pin<Box<Sleep>>);

impl Future for Fixed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for Fixed {}
