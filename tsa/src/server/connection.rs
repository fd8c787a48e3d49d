//! One client connection: what phase it is in, and the deadline that phase allows.
//!
//! hyper's own `header_read_timeout` starts when hyper begins to read a head, that is when a
//! connection opens and again as soon as a reply has gone out; it covers the head only and
//! runs through the idle time between two requests. It therefore cannot express "the whole
//! request, body included, within 5 s of its first byte" nor "an idle connection for 30 s",
//! so it is switched off and this module keeps the time itself:
//!
//! * [`Tracked`] wraps the socket and notes the first byte read while the connection is idle;
//! * [`ConnService`] marks the head parsed and hands the router a [`DeadlineBody`], which
//!   fails with [`RequestTimedOut`] when the body is still incomplete at the deadline (the
//!   timestamp handler answers that 408);
//! * [`serve`] drives hyper's connection and closes it when the phase's deadline passes, or at
//!   the drain deadline once shutdown has begun.
//!
//! Once a reply is handed to hyper the connection counts as idle: a client that never reads
//! its reply (so that the write blocks) is therefore cut by the idle timeout too.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};

/// The deadlines a connection runs under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// Headers and body, from the request's first byte.
    pub request: Duration,
    /// No request in progress.
    pub idle: Duration,
    /// After the request deadline, for the 408 to be written.
    pub reply_grace: Duration,
}

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No request in progress (fresh, or between two requests) since then.
    Idle(Instant),
    /// A request's first byte (or, for TLS, the connection) arrived then; its head is not
    /// parsed yet.
    Head(Instant),
    /// The head of a request begun then is parsed; its body is not read to the end.
    Body(Instant),
    /// The body is read: the time is ours (signing, archive), not the client's.
    Handling,
}

/// The phase of one connection, shared by its socket, its service and its driver.
pub(crate) struct Tracker {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Tracker {
    pub(crate) fn new(initial: Phase) -> Tracker {
        Tracker {
            phase: Mutex::new(initial),
            changed: Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) -> Phase {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let old = *phase;
        *phase = f(old);
        if *phase != old {
            self.changed.notify_one();
        }
        *phase
    }

    fn get(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: an idle connection now has a request in progress.
    fn bytes_read(&self) {
        self.update(|p| match p {
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    /// hyper parsed a head; returns when the request began. A pipelined request whose bytes
    /// were already buffered begins now.
    fn head_parsed(&self) -> Instant {
        match self.update(|p| match p {
            Phase::Head(t) => Phase::Body(t),
            _ => Phase::Body(Instant::now()),
        }) {
            Phase::Body(t) => t,
            _ => Instant::now(),
        }
    }

    /// The body was read to its end.
    fn body_complete(&self) {
        self.update(|p| match p {
            Phase::Body(_) => Phase::Handling,
            other => other,
        });
    }

    /// The handler answered; returns whether the connection may be kept alive (its body was
    /// read to the end). If not, the request deadline keeps running until hyper has closed.
    fn reply_ready(&self) -> bool {
        matches!(
            self.update(|p| match p {
                Phase::Handling => Phase::Idle(Instant::now()),
                other => other,
            }),
            Phase::Idle(_)
        )
    }

    /// When the current phase ends the connection, and the name of that phase for the log.
    fn deadline(&self, t: &Timeouts) -> Option<(Instant, &'static str)> {
        match self.get() {
            Phase::Idle(since) => Some((since + t.idle, "idle")),
            Phase::Head(started) => Some((started + t.request, "request head")),
            Phase::Body(started) => Some((started + t.request + t.reply_grace, "request body")),
            Phase::Handling => None,
        }
    }
}

/// The socket, noting the first byte of each request.
pub(crate) struct Tracked<T> {
    inner: T,
    tracker: Arc<Tracker>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.tracker.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request body did not arrive within the whole-request deadline.
///
/// The body handed to handlers fails with this error (find it in the error's source chain)
/// so that the timestamp handler can answer 408 with a DER rejection.
#[derive(Debug, thiserror::Error)]
#[error("the request was not received within {} ms of its first byte", .deadline.as_millis())]
pub struct RequestTimedOut {
    /// The deadline that passed.
    pub deadline: Duration,
}

/// A request body that fails with [`RequestTimedOut`] once the request deadline has passed,
/// and tells the [`Tracker`] when it has been read to its end.
pub(crate) struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    tracker: Arc<Tracker>,
    done: bool,
}

impl DeadlineBody {
    fn new(inner: Incoming, started: Instant, timeout: Duration, tracker: Arc<Tracker>) -> Self {
        let done = inner.is_end_stream();
        if done {
            tracker.body_complete();
        }
        DeadlineBody {
            inner,
            deadline: started + timeout,
            timeout,
            sleep: None,
            tracker,
            done,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.done = true;
                this.tracker.body_complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.done = true;
                    this.tracker.body_complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        Poll::Ready(Some(Err(Box::new(RequestTimedOut {
                            deadline: this.timeout,
                        }))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router, seen by hyper, for one connection.
#[derive(Clone)]
pub(crate) struct ConnService {
    router: Router,
    peer: SocketAddr,
    client_cert: Option<Arc<Vec<u8>>>,
    tracker: Arc<Tracker>,
    request_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let started = self.tracker.head_parsed();
        let tracker = Arc::clone(&self.tracker);
        let timeout = self.request_timeout;
        let mut req =
            req.map(|body| DeadlineBody::new(body, started, timeout, Arc::clone(&tracker)));
        req.extensions_mut()
            .insert(crate::ca::http::ClientAddr(self.peer.ip().to_canonical()));
        if let Some(cert) = &self.client_cert {
            req.extensions_mut()
                .insert(crate::admin::ClientCert(Arc::clone(cert)));
        }
        let mut router = self.router.clone();
        Box::pin(async move {
            // Router is always ready (axum documents that poll_ready may be skipped).
            let mut resp = tower::Service::call(&mut router, req).await?;
            if !tracker.reply_ready() {
                // The body was not read to its end (refused early, failed, or timed out):
                // the connection cannot carry another request.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp)
        })
    }
}

/// Waits until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves HTTP/1.1 on `io` until the client closes, a deadline passes, or the drain deadline
/// that `shutdown` announces passes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<I>(
    io: I,
    peer: SocketAddr,
    client_cert: Option<Arc<Vec<u8>>>,
    initial: Phase,
    router: Router,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<Option<Instant>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = Arc::new(Tracker::new(initial));
    let service = ConnService {
        router,
        peer,
        client_cert,
        tracker: Arc::clone(&tracker),
        request_timeout: timeouts.request,
    };
    let io = TokioIo::new(Tracked {
        inner: io,
        tracker: Arc::clone(&tracker),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // Our deadlines replace it (see the module docs); None also means no timer is needed.
        .header_read_timeout(None)
        .max_buf_size(crate::limits::MAX_CONNECTION_BUFFER)
        // A client that sends its whole request and then half-closes (`shutdown(SHUT_WR)`,
        // `nc -N`) still gets its reply: without this hyper reads during the handler, finds
        // the end of file and cancels the handler (the token committed, the reply never sent).
        .half_close(true)
        .keep_alive(true);
    let mut conn = builder.serve_connection(io, service);
    let mut hard_stop = *shutdown.borrow_and_update();
    if hard_stop.is_some() {
        Pin::new(&mut conn).graceful_shutdown();
    }
    loop {
        let due = tracker.deadline(&timeouts);
        let wake = match (due.map(|d| d.0), hard_stop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                match result {
                    Ok(()) => {
                        let io = conn.into_parts().io.into_inner().inner;
                        linger(io, hard_stop).await;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                        // hyper may have written its own error reply (400, 431): linger as after
                        // any last reply, so that unread bytes do not reset it away.
                        let io = conn.into_parts().io.into_inner().inner;
                        linger(io, hard_stop).await;
                    }
                }
                return;
            }
            () = tracker.changed.notified() => {}
            () = sleep_until(wake) => {
                let now = Instant::now();
                if hard_stop.is_some_and(|h| now >= h) {
                    metrics::counter!("tsa_connections_closed_total", "reason" => "drain deadline").increment(1);
                    tracing::info!(%peer, phase = ?tracker.get(), "drain deadline: aborting the connection");
                    return;
                }
                if let Some((at, phase)) = tracker.deadline(&timeouts)
                    && now >= at
                {
                    metrics::counter!("tsa_connections_closed_total", "reason" => phase).increment(1);
                    tracing::debug!(%peer, phase, "deadline passed: closing the connection");
                    return;
                }
            }
            changed = shutdown.changed(), if hard_stop.is_none() => {
                hard_stop = match changed {
                    Ok(()) => *shutdown.borrow_and_update(),
                    // The server is gone: stop now.
                    Err(_) => Some(Instant::now()),
                };
                // Idle connections close now, busy ones after their reply.
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    }
}

/// Closes a connection whose last reply is written: half-close, then read (and drop) what the
/// client still sends until it closes, for at most [`crate::limits::LINGER_MS`] (and not past
/// the drain deadline). Closing at once with unread bytes (the rest of a refused body, bytes a
/// client sent before it saw its 408) makes the kernel answer with a reset, which can destroy
/// the reply before the client has read it.
pub(crate) async fn linger<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    hard_stop: Option<Instant>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut until = Instant::now() + Duration::from_millis(crate::limits::LINGER_MS);
    if let Some(h) = hard_stop {
        until = until.min(h);
    }
    let _ = tokio::time::timeout_at(until, async {
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        while io.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        request: Duration::from_secs(5),
        idle: Duration::from_secs(30),
        reply_grace: Duration::from_secs(1),
    };

    #[test]
    fn the_request_deadline_runs_from_the_first_byte_through_the_body() {
        let opened = Instant::now();
        let t = Tracker::new(Phase::Idle(opened));
        assert_eq!(t.deadline(&T), Some((opened + T.idle, "idle")));
        t.bytes_read();
        let Phase::Head(started) = t.get() else {
            panic!("{:?}", t.get())
        };
        // More bytes do not move the deadline: it is for the whole request.
        t.bytes_read();
        assert_eq!(t.get(), Phase::Head(started));
        assert_eq!(t.head_parsed(), started);
        assert_eq!(
            t.deadline(&T),
            Some((started + T.request + T.reply_grace, "request body"))
        );
        // A reply before the body was read: not reusable, the deadline keeps running.
        assert!(!t.reply_ready());
        t.body_complete();
        assert_eq!(t.get(), Phase::Handling);
        assert_eq!(t.deadline(&T), None);
        assert!(t.reply_ready());
        assert!(matches!(t.get(), Phase::Idle(_)));
    }
}
