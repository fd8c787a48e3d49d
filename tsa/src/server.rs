//! Our own accept loop, for plain HTTP and the optional HTTPS listener alike.
//!
//! `axum::serve` has no read deadline, no connection cap and a graceful shutdown that waits
//! for every connection for ever, so a few hundred clients that dribble a header byte a
//! second held the server's file descriptors indefinitely, and one half-sent request kept a
//! SIGTERMed server alive until systemd killed it (losing queued tokens). This module serves
//! the same [`crate::routes::app`] router over hyper's HTTP/1.1 connection, with:
//!
//! * **a whole-request deadline** (`server.request_timeout_ms`, 5 s): headers *and* body
//!   within that time of the request's first byte, or the connection is closed; a body still
//!   incomplete then is answered 408 with a DER rejection (`server/connection.rs` says why
//!   hyper's own `header_read_timeout` cannot do this). For HTTPS the deadline runs from the
//!   TCP accept, so the handshake counts against it, and a fresh HTTPS connection must bring
//!   its first request within it too (TLS connections opened ahead of use are cut after 5 s).
//!   A pipelined request whose first bytes came with the previous one is timed from that reply.
//! * **an idle timeout** (`server.idle_timeout_ms`, 30 s) for connections with no request in
//!   progress, fresh plain ones included.
//! * **a connection cap** (`server.max_connections`, 1024) checked against `RLIMIT_NOFILE` at
//!   start ([`connection_budget`]), shared by both listeners. Over the cap a plain connection
//!   is accepted and answered at once `503`, `Retry-After: 1`, with a DER rejection
//!   (systemFailure), then closed. We chose that over not accepting because a connection left
//!   in the kernel's backlog looks to the client and to a load balancer like a dead node (it
//!   hangs until a connect timeout, and the backlog fills with clients that already gave up),
//!   while a 503 tells them in one round trip to retry or go to another node. Answering costs
//!   a descriptor for at most twice [`limits::LINGER_MS`] and at most
//!   [`limits::SHED_CONCURRENCY`] of them, which the budget reserves; beyond that, and for
//!   HTTPS (whose answer would need the very handshake the cap is there to refuse), the
//!   connection is closed at once.
//! * **accept errors** (EMFILE, ENFILE, ENOBUFS…) back off from 10 ms to 1 s instead of
//!   spinning, and the loop keeps accepting once descriptors are free again.
//! * **a bounded drain** (`server.drain_timeout_ms`, 10 s): on SIGTERM or Ctrl-C the
//!   listeners close, idle connections close, in-flight requests finish (with
//!   `Connection: close`), and whatever remains at the deadline is aborted; then
//!   [`Server::run`] returns and `main` closes the archive.

mod connection;

pub use connection::RequestTimedOut;

use crate::config::ServerConfig;
use crate::limits;
use axum::Router;
use axum::body::Bytes;
use connection::{Phase, Timeouts};
use pki::asn1::FailureInfo;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// First and longest pause after an accept error that is not the client's doing (out of
/// file descriptors or memory): long enough not to spin, short enough to resume at once.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// After the drain deadline, how long to wait for the connection tasks (which abort
/// themselves at the deadline) to be scheduled and gone.
const DRAIN_SLACK: Duration = Duration::from_secs(1);

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The file-descriptor limit cannot hold the configured connection cap.
    #[error(
        "server.max_connections = {max_connections} needs {needed} file descriptors ({overhead} of them for the database, logs, key files and shedding) but RLIMIT_NOFILE allows {limit} (hard limit {hard}); raise LimitNOFILE= in the systemd unit (or `ulimit -n`), or lower server.max_connections"
    )]
    FileDescriptors {
        /// The cap asked for.
        max_connections: usize,
        /// Descriptors it needs with the overhead.
        needed: u64,
        /// Descriptors kept for everything but client connections.
        overhead: u64,
        /// The soft limit, after trying to raise it to the hard one.
        limit: u64,
        /// The hard limit.
        hard: String,
    },
    /// The prebuilt 503 reply cannot be encoded (a bug).
    #[error("cannot encode the over-capacity reply")]
    Reply(#[source] pki::Error),
}

/// How the connection cap fits the file-descriptor limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdPlan {
    /// Raise the soft RLIMIT_NOFILE to this (never above the hard limit) before serving.
    pub raise_soft_to: Option<u64>,
    /// The cap to run with.
    pub max_connections: usize,
    /// Whether the default cap was lowered to fit the limit.
    pub clamped: bool,
}

/// Descriptors that are not client connections: the reserve, the database and shedding.
pub fn fd_overhead(database_connections: u32) -> u64 {
    limits::RESERVED_FDS
        + limits::FDS_PER_DATABASE_CONNECTION * u64::from(database_connections)
        + limits::SHED_CONCURRENCY as u64
}

/// Fits the cap to the soft and hard `RLIMIT_NOFILE` (`None` is unlimited): raise the soft
/// limit as far as needed (any process may, up to the hard one); if that is not enough,
/// refuse a cap the configuration set, and clamp the default one with a warning (a
/// development machine with `ulimit -n 1024`), never below [`limits::MIN_CONNECTIONS`].
pub fn plan_fds(
    cfg: &ServerConfig,
    database_connections: u32,
    soft: Option<u64>,
    hard: Option<u64>,
) -> Result<FdPlan, ServerError> {
    let overhead = fd_overhead(database_connections);
    let needed = cfg.max_connections as u64 + overhead;
    let soft = soft.unwrap_or(u64::MAX);
    let hard_limit = hard.unwrap_or(u64::MAX);
    let raised = needed.min(hard_limit).max(soft);
    let raise_soft_to = (raised > soft).then_some(raised);
    if raised >= needed {
        return Ok(FdPlan {
            raise_soft_to,
            max_connections: cfg.max_connections,
            clamped: false,
        });
    }
    let fits = usize::try_from(raised.saturating_sub(overhead)).unwrap_or(usize::MAX);
    if cfg.max_connections_configured || fits < limits::MIN_CONNECTIONS {
        return Err(ServerError::FileDescriptors {
            max_connections: cfg.max_connections,
            needed,
            overhead,
            limit: raised,
            hard: hard.map_or_else(|| "unlimited".into(), |h| h.to_string()),
        });
    }
    Ok(FdPlan {
        raise_soft_to,
        max_connections: fits,
        clamped: true,
    })
}

/// Reads `RLIMIT_NOFILE`, raises the soft limit if the cap needs it, and returns the cap to
/// serve with (see [`plan_fds`]). Call once at start, before the archive opens its files.
pub fn connection_budget(
    cfg: &ServerConfig,
    database_connections: u32,
) -> Result<usize, ServerError> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let mut plan = plan_fds(cfg, database_connections, current.current, current.maximum)?;
    if let Some(soft) = plan.raise_soft_to {
        let new = rustix::process::Rlimit {
            current: Some(soft),
            maximum: current.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => tracing::info!(
                from = ?current.current,
                to = soft,
                "raised the soft open-file limit for server.max_connections"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the soft open-file limit");
                plan = plan_fds(cfg, database_connections, current.current, current.current)?;
            }
        }
    }
    if plan.clamped {
        tracing::warn!(
            default = cfg.max_connections,
            max_connections = plan.max_connections,
            limit = ?current.maximum,
            "the open-file limit cannot hold the default connection cap: serving with a lower one (set LimitNOFILE= or server.max_connections)"
        );
    }
    Ok(plan.max_connections)
}

/// The HTTP server: the router, its deadlines and its connection cap.
pub struct Server {
    shared: Arc<Shared>,
    max_connections: usize,
    drain: Duration,
    shutdown: watch::Sender<Option<Instant>>,
}

/// What every accept loop and connection task shares.
struct Shared {
    router: Router,
    /// The cap, for the log.
    max_connections: usize,
    timeouts: Timeouts,
    /// One permit per open client connection (HTTP and HTTPS): the cap.
    permits: Arc<Semaphore>,
    /// One permit per over-capacity connection being answered 503.
    shed_permits: Arc<Semaphore>,
    /// The whole HTTP/1.1 503 reply, encoded once.
    shed_reply: Bytes,
    /// Whether the last connection was shed (to log the start and end of shedding once).
    shedding: AtomicBool,
    /// `Some(drain deadline)` once shutdown has begun.
    shutdown: watch::Receiver<Option<Instant>>,
}

impl Server {
    /// A server for `router` with `cfg`'s deadlines and `max_connections` (from
    /// [`connection_budget`]).
    pub fn new(
        router: Router,
        cfg: &ServerConfig,
        max_connections: usize,
    ) -> Result<Server, ServerError> {
        let der = pki::tsp::rejection_response(
            FailureInfo::SystemFailure,
            "too many connections; retry later",
        )
        .map_err(ServerError::Reply)?;
        let mut reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            limits::REPLY_MEDIA_TYPE,
            der.len()
        )
        .into_bytes();
        reply.extend_from_slice(&der);
        let (shutdown, shutdown_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            router,
            max_connections,
            timeouts: Timeouts {
                request: cfg.request_timeout,
                idle: cfg.idle_timeout,
                reply_grace: Duration::from_millis(limits::TIMEOUT_REPLY_GRACE_MS),
            },
            permits: Arc::new(Semaphore::new(max_connections)),
            shed_permits: Arc::new(Semaphore::new(limits::SHED_CONCURRENCY)),
            shed_reply: Bytes::from(reply),
            shedding: AtomicBool::new(false),
            shutdown: shutdown_rx,
        });
        Ok(Server {
            shared,
            max_connections,
            drain: cfg.drain_timeout,
            shutdown,
        })
    }

    /// Serves `plain` (and `tls`, with its acceptor: each new connection takes the current one,
    /// which a SIGHUP may replace) until `signal` resolves, then drains:
    /// no new connections, idle ones closed, in-flight requests given the drain deadline,
    /// the rest aborted. Returns once every connection is gone (or the deadline has passed).
    pub async fn run(
        self,
        plain: TcpListener,
        tls: Option<(TcpListener, watch::Receiver<TlsAcceptor>)>,
        signal: impl Future<Output = ()>,
    ) {
        let mut loops = vec![tokio::spawn(accept_loop(
            Arc::clone(&self.shared),
            plain,
            None,
        ))];
        if let Some((listener, acceptor)) = tls {
            loops.push(tokio::spawn(accept_loop(
                Arc::clone(&self.shared),
                listener,
                Some(acceptor),
            )));
        }
        signal.await;
        let deadline = Instant::now() + self.drain;
        let permits = &self.shared.permits;
        tracing::info!(
            open_connections = self.max_connections - permits.available_permits(),
            drain_ms = self.drain.as_millis(),
            "shutting down: no new connections; in-flight requests may finish until the drain deadline"
        );
        self.shutdown.send_replace(Some(deadline));
        for accept in loops {
            if let Err(e) = accept.await {
                tracing::error!(error = %e, "an accept loop failed");
            }
        }
        // Every connection holds a permit: all of them back means every connection is gone.
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout_at(deadline + DRAIN_SLACK, permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                still_open = self.max_connections - permits.available_permits(),
                "connections still open after the drain deadline"
            ),
        }
    }
}

/// Accepts on `listener` until shutdown begins (the listener is then dropped, so the kernel
/// refuses new connections).
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<watch::Receiver<TlsAcceptor>>,
) {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(Option::is_some) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF.0;
                let acceptor = tls.as_ref().map(|current| current.borrow().clone());
                admit(&shared, stream, peer, acceptor.as_ref());
            }
            // The client gave up between SYN and accept: nothing wrong on our side.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays in the
                // backlog; accepting again at once would only spin.
                metrics::counter!("tsa_accept_errors_total").increment(1);
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis(), "accept failed; backing off");
                tokio::select! {
                    _ = shutdown.wait_for(Option::is_some) => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
}

/// Counts an open connection in `tsa_connections_open` while it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        metrics::gauge!("tsa_connections_open").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("tsa_connections_open").decrement(1.0);
    }
}

/// Serves a new connection on its own task if the cap allows, else sheds it.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr, tls: Option<&TlsAcceptor>) {
    let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
        shed(shared, stream, peer, tls.is_some());
        return;
    };
    // Logged once per episode, and only once a tenth of the cap is free again: at the cap,
    // every freed slot would otherwise log twice (below again, cap reached).
    if shared.permits.available_permits() >= shared.max_connections / 10
        && shared.shedding.swap(false, Ordering::Relaxed)
    {
        tracing::info!("below the connection cap again: accepting");
    }
    // Replies are small and sent whole: do not wait for Nagle.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let shared = Arc::clone(shared);
    let tls = tls.cloned();
    tokio::spawn(async move {
        let _permit = permit;
        let _open = OpenConnection::new();
        let router = shared.router.clone();
        let shutdown = shared.shutdown.clone();
        let Some(acceptor) = tls else {
            let idle = Phase::Idle(Instant::now());
            connection::serve(stream, peer, None, idle, router, shared.timeouts, shutdown).await;
            return;
        };
        // The handshake is part of the first request: it counts against the request deadline.
        let accepted = Instant::now();
        let mut stop = shutdown.clone();
        let handshake = tokio::select! {
            handshake = tokio::time::timeout_at(accepted + shared.timeouts.request, acceptor.accept(stream)) => handshake,
            // No request has begun yet: nothing to drain.
            _ = stop.wait_for(Option::is_some) => return,
        };
        match handshake {
            Ok(Ok(stream)) => {
                let head = Phase::Head(accepted);
                // A client certificate the handshake verified (under [tls] client_ca).
                let client_cert = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| std::sync::Arc::new(c.as_ref().to_vec()));
                connection::serve(
                    stream,
                    peer,
                    client_cert,
                    head,
                    router,
                    shared.timeouts,
                    shutdown,
                )
                .await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => {
                metrics::counter!("tsa_connections_closed_total", "reason" => "tls handshake")
                    .increment(1);
                tracing::debug!(%peer, "TLS handshake not complete within the request deadline");
            }
        }
    });
}

/// Over the cap: answer 503 (plain HTTP, while few are being answered) or close at once.
fn shed(shared: &Shared, stream: TcpStream, peer: SocketAddr, tls: bool) {
    metrics::counter!("tsa_connections_shed_total").increment(1);
    if !shared.shedding.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            max_connections = shared.max_connections,
            "connection cap reached: answering new connections 503 until some close"
        );
    }
    tracing::debug!(%peer, "over the connection cap: shedding");
    if tls {
        return;
    }
    let Ok(permit) = Arc::clone(&shared.shed_permits).try_acquire_owned() else {
        return;
    };
    let reply = shared.shed_reply.clone();
    let hard_stop = *shared.shutdown.borrow();
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        // The reply fits any socket buffer; the timeout is for a peer that reads nothing.
        let write = Duration::from_millis(limits::LINGER_MS);
        match tokio::time::timeout(write, stream.write_all(&reply)).await {
            Ok(Ok(())) => connection::linger(stream, hard_stop).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cannot answer a shed connection"),
            Err(_) => tracing::debug!(%peer, "a shed connection does not take its answer"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_connections: usize, configured: bool) -> ServerConfig {
        ServerConfig {
            max_connections,
            max_connections_configured: configured,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn the_cap_leaves_room_for_the_database_logs_and_keys() {
        let overhead = fd_overhead(4);
        assert_eq!(overhead, 64 + 16 + 64);
        // Enough already: nothing to change.
        let plan = plan_fds(&cfg(1024, false), 4, Some(1024 + overhead), None).expect("fits");
        assert_eq!(plan.raise_soft_to, None);
        assert_eq!(plan.max_connections, 1024);
        // The soft limit is raised as far as needed, not to the hard limit.
        let plan = plan_fds(&cfg(1024, true), 4, Some(1024), Some(524_288)).expect("raised");
        assert_eq!(plan.raise_soft_to, Some(1024 + overhead));
        assert!(!plan.clamped);
        // The hard limit is too low: a configured cap is refused, the default is clamped.
        let err = plan_fds(&cfg(1024, true), 4, Some(1024), Some(1024)).expect_err("refused");
        assert!(err.to_string().contains("server.max_connections"), "{err}");
        let plan = plan_fds(&cfg(1024, false), 4, Some(512), Some(1024)).expect("clamped");
        assert_eq!(plan.raise_soft_to, Some(1024));
        assert!(plan.clamped);
        assert_eq!(plan.max_connections as u64, 1024 - overhead);
        // Never clamped below the minimum.
        assert!(plan_fds(&cfg(1024, false), 4, Some(100), Some(100)).is_err());
        // The systemd unit's LimitNOFILE holds the default cap with the default database.
        let unit = include_str!("../../deploy/sigillum-tsa.service");
        let limit: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .expect("LimitNOFILE= in the unit")
            .trim()
            .parse()
            .expect("a number");
        let default = ServerConfig::default();
        let plan = plan_fds(&default, 4, Some(limit), Some(limit)).expect("unit fits");
        assert!(!plan.clamped && plan.raise_soft_to.is_none(), "{plan:?}");
    }
}
