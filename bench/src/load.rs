//! The load generator: N HTTP/1.1 keep-alive connections to 127.0.0.1 (spread round-robin over
//! the nodes' addresses), each a loop of sequential POSTs of one pre-made TimeStampReq (or, to
//! measure the HTTP stack alone, GETs of one path); a warm-up, then a measured window bounded in
//! time and in request count. Every measured request's latency is recorded.
//!
//! In a closed loop (the default) each connection sends again as soon as it has its reply, so a
//! stall of the server also stops the senders: only the requests in flight see it, and the
//! percentiles hide it (coordinated omission). With a rate ([`LoadPlan::rate`]) the loop is
//! open: each connection's requests are due at fixed times, and a request whose connection was
//! still waiting for the previous reply when it fell due counts its latency from that time, as
//! a client arriving then would have waited.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A request that takes longer than this counts as an error (and its connection is replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The DER TimeStampReq sent by every POST: SHA-256 imprint, a nonce, certReq true.
pub fn request_der() -> Result<Vec<u8>> {
    let digest = ring::digest::digest(&ring::digest::SHA256, b"sigillum tsa-bench");
    let nonce = 0x5349_4749_4c4c_554d_u64.to_be_bytes();
    pki::tsp::build_request(
        pki::HashAlg::Sha256,
        digest.as_ref(),
        Some(&nonce),
        true,
        None,
    )
    .context("cannot build the benchmark request")
}

/// Whether `reply` looks like a granted TimeStampResp: `SEQUENCE` (two length bytes), then
/// PKIStatusInfo `SEQUENCE { INTEGER 0 }` (status granted, no statusString, no failInfo).
pub fn is_granted(reply: &[u8]) -> bool {
    reply.len() > 9
        && reply[0] == 0x30
        && reply[1] == 0x82
        && reply[4..9] == [0x30, 0x03, 0x02, 0x01, 0x00]
}

/// What every request of a run asks for.
#[derive(Debug, Clone)]
pub enum Work {
    /// POST this DER TimeStampReq to `/`; a success is a granted TimeStampResp.
    Timestamp(Bytes),
    /// GET this path; a success is any 200 reply (the HTTP floor: `/livez` does no work).
    Get(&'static str),
}

/// What one load run saw.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Connections used.
    pub connections: usize,
    /// Granted replies (for [`Work::Get`], 200 replies) to requests started in the measured
    /// window.
    pub granted: u64,
    /// Errors in the measured window (non-200, not granted, timeout, connection failure).
    pub errors: u64,
    /// Granted replies during the warm-up (they are archived too).
    pub warmup_granted: u64,
    /// Errors during the warm-up.
    pub warmup_errors: u64,
    /// From the window's start to the last measured reply.
    pub elapsed: Duration,
    /// Latencies of the measured requests that got a reply, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Granted tokens per second in the measured window.
    pub fn tokens_per_sec(&self) -> f64 {
        self.granted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-quantile latency (nearest rank), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        // p is in [0, 1] and n a sample count far below 2^52: the product is exact enough and
        // fits usize; clamp covers p outside [0, 1].
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        Some(f64::from(self.latencies_us[rank - 1]) / 1000.0)
    }

    /// The largest latency, in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        self.latencies_us.last().map(|&us| f64::from(us) / 1000.0)
    }
}

/// Settings of one load run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The nodes; loopback addresses only. Connection `i` goes to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    /// Keep-alive connections.
    pub connections: usize,
    /// Warm-up before the window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Most requests started in the window.
    pub max_requests: u64,
    /// Runtime worker threads (1: current-thread runtime).
    pub threads: usize,
    /// Open loop: requests per second offered in total, spread evenly over the connections
    /// (`None`: closed loop).
    pub rate: Option<f64>,
}

struct Shared {
    work: Work,
    /// Open loop: the time between two requests of one connection.
    interval: Option<Duration>,
    window_start: Instant,
    window_end: Instant,
    max_requests: u64,
    started: AtomicU64,
}

#[derive(Default)]
struct ConnStats {
    granted: u64,
    errors: u64,
    warmup_granted: u64,
    warmup_errors: u64,
    last_reply: Option<Instant>,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

impl ConnStats {
    fn error(&mut self, measured: bool, what: impl FnOnce() -> String) {
        if measured {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// Runs the plan against the server and returns what it saw.
pub fn run(plan: &LoadPlan, work: Work) -> Result<LoadResult> {
    if plan.addrs.is_empty() {
        bail!("the load generator needs at least one server address");
    }
    if let Some(addr) = plan.addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!("the load generator only targets loopback addresses, not {addr}");
    }
    let runtime = if plan.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(plan.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the load generator's runtime")?;

    let interval = match plan.rate {
        Some(rate) if !(rate.is_finite() && rate > 0.0) => {
            bail!("the load generator's rate must be positive, not {rate}")
        }
        Some(rate) => Some(Duration::from_secs_f64(plan.connections as f64 / rate)),
        None => None,
    };
    let now = Instant::now();
    let shared = Arc::new(Shared {
        work,
        interval,
        window_start: now + plan.warmup,
        window_end: now + plan.warmup + plan.duration,
        max_requests: plan.max_requests,
        started: AtomicU64::new(0),
    });
    // Open loop: the connections' first requests are spread over one interval.
    let connections = u32::try_from(plan.connections).context("too many connections")?;
    let stats: Vec<ConnStats> = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|i| {
                let addr = plan.addrs[i as usize % plan.addrs.len()];
                let first_due = interval.map(|interval| now + interval / connections * i);
                tokio::spawn(connection(Arc::clone(&shared), addr, first_due))
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| {
                let mut s = ConnStats::default();
                s.error(true, || format!("load task failed: {e}"));
                s
            }));
        }
        out
    });
    runtime.shutdown_timeout(Duration::from_secs(1));

    let mut result = LoadResult {
        connections: plan.connections,
        granted: 0,
        errors: 0,
        warmup_granted: 0,
        warmup_errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        first_error: None,
    };
    let mut last = shared.window_start;
    for s in stats {
        result.granted += s.granted;
        result.errors += s.errors;
        result.warmup_granted += s.warmup_granted;
        result.warmup_errors += s.warmup_errors;
        result.latencies_us.extend(s.latencies_us);
        if let Some(t) = s.last_reply {
            last = last.max(t);
        }
        if result.first_error.is_none() {
            result.first_error = s.first_error;
        }
    }
    result.elapsed = last.saturating_duration_since(shared.window_start);
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// One connection: connect, then send the run's request in a loop until the window ends (in
/// an open loop, each at its due time, the first at `due`); reconnect after a failure.
async fn connection(shared: Arc<Shared>, addr: SocketAddr, mut due: Option<Instant>) -> ConnStats {
    let host = addr.to_string();
    let mut stats = ConnStats {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..ConnStats::default()
    };
    'connect: while Instant::now() < shared.window_end {
        let measured = Instant::now() >= shared.window_start;
        let mut sender = match connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                stats.error(measured, || format!("connect: {e:#}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        loop {
            let now = Instant::now();
            if now >= shared.window_end {
                break 'connect;
            }
            let measured = now >= shared.window_start;
            if measured && shared.started.fetch_add(1, Ordering::Relaxed) >= shared.max_requests {
                break 'connect;
            }
            let builder = Request::builder().header(HOST, host.as_str());
            let req = match match &shared.work {
                Work::Timestamp(der) => builder
                    .method(Method::POST)
                    .uri("/")
                    .header(CONTENT_TYPE, "application/timestamp-query")
                    .body(Full::new(der.clone())),
                Work::Get(path) => builder
                    .method(Method::GET)
                    .uri(*path)
                    .body(Full::new(Bytes::new())),
            } {
                Ok(r) => r,
                Err(e) => {
                    stats.error(measured, || format!("building the request: {e}"));
                    break 'connect;
                }
            };
            // From when the request fell due if the connection was late for it (the server's
            // doing); from its sending if the timer woke us after the due time.
            let mut t0 = Instant::now();
            if let (Some(at), Some(interval)) = (due.as_mut(), shared.interval) {
                if *at > t0 {
                    tokio::time::sleep_until((*at).into()).await;
                    t0 = Instant::now();
                } else {
                    t0 = *at;
                }
                *at += interval;
            }
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, req)).await;
            let done = Instant::now();
            match outcome {
                Ok(Ok((status, body))) => {
                    if measured {
                        let us =
                            u32::try_from(done.duration_since(t0).as_micros()).unwrap_or(u32::MAX);
                        stats.latencies_us.push(us);
                        stats.last_reply = Some(done);
                    }
                    let success = status == StatusCode::OK
                        && match shared.work {
                            Work::Timestamp(_) => is_granted(&body),
                            Work::Get(_) => true,
                        };
                    if success {
                        if measured {
                            stats.granted += 1;
                        } else {
                            stats.warmup_granted += 1;
                        }
                    } else {
                        stats.error(measured, || {
                            let head: Vec<String> =
                                body.iter().take(12).map(|b| format!("{b:02x}")).collect();
                            format!("HTTP {status}, body starts {}", head.join(" "))
                        });
                    }
                }
                Ok(Err(e)) => {
                    stats.error(measured, || format!("request: {e:#}"));
                    continue 'connect;
                }
                Err(_) => {
                    stats.error(measured, || {
                        format!("no reply within {} s", REQUEST_TIMEOUT.as_secs())
                    });
                    continue 'connect;
                }
            }
        }
    }
    stats
}

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("tcp connect")?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .context("http/1.1 handshake")?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it; either way
        // the request loop sees it.
        let _ = conn.await;
    });
    Ok(sender)
}

async fn exchange(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    sender.ready().await.context("connection not ready")?;
    let resp = sender.send_request(req).await.context("send")?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the reply")?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A loopback HTTP/1.1 server that answers every request at once except the `stall_at`-th
    /// (counting from 0), which it holds for `stall`.
    fn stalling_server(stall_at: u64, stall: Duration) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        let served = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let served = Arc::clone(&served);
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        head.extend_from_slice(&buf[..n]);
                        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            head.drain(..end + 4);
                            if served.fetch_add(1, Ordering::Relaxed) == stall_at {
                                std::thread::sleep(stall);
                            }
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(reply).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Replies slower than 100 ms in 0.8 s of GETs on one connection to a server that holds
    /// its 21st reply for 300 ms.
    fn slow_replies(rate: Option<f64>) -> usize {
        let plan = LoadPlan {
            addrs: vec![stalling_server(20, Duration::from_millis(300))],
            connections: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(800),
            max_requests: u64::MAX,
            threads: 1,
            rate,
        };
        let result = run(&plan, Work::Get("/")).expect("load run");
        assert_eq!(result.errors, 0, "{:?}", result.first_error);
        result
            .latencies_us
            .iter()
            .filter(|&&us| us >= 100_000)
            .count()
    }

    #[test]
    fn an_open_loop_counts_a_stall_against_every_request_due_during_it() {
        // 200 requests a second: one due every 5 ms, 40 of them during the stall, the first 40
        // of those more than 100 ms before it ends.
        let open = slow_replies(Some(200.0));
        assert!(
            open >= 25,
            "only {open} requests of the open loop waited 100 ms or more"
        );
        // The closed loop sends nothing while it waits: the stall shows in one reply.
        let closed = slow_replies(None);
        assert!(
            (1..=5).contains(&closed),
            "{closed} requests of the closed loop waited 100 ms or more"
        );
    }

    #[test]
    fn a_rate_must_be_positive() {
        let plan = LoadPlan {
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
            connections: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(10),
            max_requests: 1,
            threads: 1,
            rate: Some(0.0),
        };
        let error = run(&plan, Work::Get("/")).expect_err("a zero rate");
        assert!(
            error.to_string().contains("rate must be positive"),
            "{error}"
        );
    }
}
