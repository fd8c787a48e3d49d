//! Slow and hostile clients, over real TCP against a real `tsa serve` configured with short
//! deadlines: dribbled requests are cut at the whole-request deadline, idle connections at the
//! idle timeout, connections over the cap are shed with a 503 and the server recovers, and
//! SIGTERM ends the server within the drain deadline whatever the clients do.
//!
//! Times printed here are for the reader; the only timing assertions are lower bounds that
//! follow from the configuration (a connection is never cut before its deadline) and hang
//! guards far above the deadlines.

use pki::asn1::{FailureInfo, PkiStatus};
use sigillum_tests::der::ReqSpec;
use sigillum_tests::{HttpReply, TsaOptions, TsaServer, read_reply};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Far above every deadline configured here: a test that waits this long has found a hang.
const HANG_GUARD: Duration = Duration::from_secs(15);

/// A server with the development PKI and these `[server]` keys.
fn start(server_keys: &str) -> TsaServer {
    TsaServer::start_with(TsaOptions {
        config: Some(format!(
            "allow_unsynced_clock = true\n[server]\n{server_keys}\n"
        )),
        ..TsaOptions::default()
    })
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(HANG_GUARD))
        .expect("read timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

const QUERY_HEAD: &str =
    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/timestamp-query\r\n";

/// Asserts a DER rejection with `fail_info` and HTTP `status`, in the reply media type.
fn assert_der_rejection(what: &str, reply: &HttpReply, status: u16, fail_info: FailureInfo) {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.text());
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/timestamp-reply"),
        "{what}"
    );
    let parsed = pki::tsp::parse_response(&reply.body).expect("a DER TimeStampResp");
    assert_eq!(parsed.status, PkiStatus::Rejection, "{what}: {parsed:?}");
    assert_eq!(parsed.fail_info, vec![fail_info], "{what}: {parsed:?}");
}

/// What became of a connection the server was expected to end.
#[derive(Debug)]
enum End {
    /// The server answered (then closed).
    Reply(HttpReply),
    /// The server closed (FIN or reset) without a reply.
    Closed,
}

/// Waits (at most [`HANG_GUARD`]) for the server to answer or close `stream`.
fn wait_end(stream: &mut TcpStream) -> End {
    let mut first = [0u8; 1];
    match stream.peek(&mut first) {
        Ok(0) => End::Closed,
        Ok(_) => match read_reply(stream) {
            Ok(reply) => End::Reply(reply),
            Err(why) => panic!("a partial reply: {why}"),
        },
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the server neither answered nor closed the connection within {HANG_GUARD:?}")
        }
        Err(_) => End::Closed,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dribble {
    /// The head never ends: one more header byte at a time.
    Head,
    /// The head is whole, the body (Content-Length 200) comes a byte at a time.
    Body,
}

struct Dribbler {
    kind: Dribble,
    stream: TcpStream,
    opened: Instant,
    ended: Option<(Duration, End)>,
}

/// Sends one more byte every 100 ms on every connection still open, until the server has
/// answered or closed each of them (or the hang guard passes). A connection stops sending as
/// soon as something arrives, as a client does once it has its answer.
fn dribble(mut all: Vec<Dribbler>) -> Vec<Dribbler> {
    let start = Instant::now();
    while all.iter().any(|d| d.ended.is_none()) && start.elapsed() < HANG_GUARD {
        for d in all.iter_mut().filter(|d| d.ended.is_none()) {
            d.stream.set_nonblocking(true).expect("nonblocking");
            let mut first = [0u8; 1];
            let readable = !matches!(
                d.stream.peek(&mut first),
                Err(e) if e.kind() == ErrorKind::WouldBlock
            );
            if !readable {
                let byte: &[u8] = if d.kind == Dribble::Head { b"a" } else { b"0" };
                // A write error means the server is gone; the next round sees it.
                let _ = d.stream.write(byte);
                continue;
            }
            d.stream.set_nonblocking(false).expect("blocking");
            let at = d.opened.elapsed();
            d.ended = Some((at, wait_end(&mut d.stream)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    all
}

#[test]
fn hundreds_of_dribbling_connections_are_cut_at_the_deadline_while_real_requests_are_granted() {
    // Why: without a whole-request deadline a client sending a byte every 100 ms kept its
    // connection (and a file descriptor) for ever; a few hundred of them starved real clients.
    const EACH: usize = 200;
    let request_timeout = Duration::from_millis(1000);
    let server = start("request_timeout_ms = 1000\nidle_timeout_ms = 60000\n");
    let mut all = Vec::new();
    for _ in 0..EACH {
        let mut head = connect(server.port());
        let opened = Instant::now();
        head.write_all(format!("{QUERY_HEAD}X-Slow: ").as_bytes())
            .expect("head");
        all.push(Dribbler {
            kind: Dribble::Head,
            stream: head,
            opened,
            ended: None,
        });
        let mut body = connect(server.port());
        let opened = Instant::now();
        body.write_all(format!("{QUERY_HEAD}Content-Length: 200\r\n\r\n0").as_bytes())
            .expect("body");
        all.push(Dribbler {
            kind: Dribble::Body,
            stream: body,
            opened,
            ended: None,
        });
    }
    let dribbler = std::thread::spawn(move || dribble(all));
    // Real requests are served while the dribblers hold their connections.
    let mut granted = 0;
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t = Instant::now();
        let reply = server.post_query(&ReqSpec::sha256(format!("real {i}").as_bytes()).encode());
        slowest = slowest.max(t.elapsed());
        sigillum_tests::granted_token(&reply);
        granted += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = dribbler.join().expect("dribbler thread");
    let mut cut_at = Vec::new();
    for d in &all {
        let Some((at, end)) = &d.ended else {
            panic!(
                "a {:?} dribbler was still open after {HANG_GUARD:?}:\n{}",
                d.kind,
                server.log()
            );
        };
        // The deadline runs from the first byte, which the server read after we wrote it.
        assert!(
            *at >= request_timeout,
            "a {:?} dribbler was cut after {at:?}, before the {request_timeout:?} deadline",
            d.kind
        );
        cut_at.push(*at);
        match (d.kind, end) {
            // Headers incomplete: there is no request to answer; the connection is closed.
            (Dribble::Head, End::Closed) => {}
            // Body incomplete: the socket still takes a reply, so a 408 with a DER rejection.
            (Dribble::Body, End::Reply(reply)) => {
                assert_der_rejection("body at the deadline", reply, 408, FailureInfo::BadRequest);
            }
            (kind, end) => panic!("a {kind:?} dribbler ended with {end:?}"),
        }
    }
    cut_at.sort();
    eprintln!(
        "{} dribblers cut between {:?} and {:?} after their first byte (deadline {request_timeout:?}); {granted} real requests granted meanwhile, the slowest in {slowest:?}",
        all.len(),
        cut_at[0],
        cut_at[cut_at.len() - 1]
    );
    server.assert_healthy();
}

fn get_healthz(stream: &mut TcpStream) -> HttpReply {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    read_reply(stream).unwrap_or_else(|e| panic!("GET /healthz: {e}"))
}

/// Blocks until the server closes `stream` (EOF or reset); panics if it sends anything.
fn wait_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the server did not close the connection within {HANG_GUARD:?}")
        }
        Err(_) => {}
    }
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    // Why: an idle connection costs a descriptor and a cap slot; it must not be kept for ever,
    // and the (shorter) request deadline must not cut a keep-alive connection between requests.
    let server = start("request_timeout_ms = 1000\nidle_timeout_ms = 2500\n");
    let mut conn = connect(server.port());
    assert_eq!(get_healthz(&mut conn).status, 200);
    // Longer than the request deadline, shorter than the idle timeout: still served.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get_healthz(&mut conn).status, 200, "keep-alive reuse");
    let idle_from = Instant::now();
    wait_closed(&mut conn);
    let waited = idle_from.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "closed after {waited:?} of idleness, before the 2.5 s idle timeout"
    );
    // A connection that never sends a byte has no request in progress either.
    let mut silent = connect(server.port());
    let opened = Instant::now();
    wait_closed(&mut silent);
    // A fresh connection is idle (2.5 s), not in a request (1 s).
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "a silent connection was closed after {:?}, before the idle timeout",
        opened.elapsed()
    );
    eprintln!(
        "idle keep-alive connection closed after {waited:?}, silent one after {:?} (idle timeout 2.5 s)",
        opened.elapsed()
    );
    server.assert_healthy();
}

#[test]
fn over_the_cap_new_connections_are_shed_with_503_and_the_server_recovers() {
    // Why: with no cap, connections took every file descriptor and real requests timed out;
    // over the cap a client must learn at once to retry or go elsewhere.
    const CAP: usize = 16;
    let server = start("max_connections = 16\nidle_timeout_ms = 60000\n");
    let mut holders = Vec::new();
    let started = Instant::now();
    while holders.len() < CAP {
        assert!(
            started.elapsed() < HANG_GUARD,
            "cannot open {CAP} connections"
        );
        let mut conn = connect(server.port());
        // The start-up health checks' connections may still be closing: retry a shed one.
        match get_healthz(&mut conn).status {
            200 => holders.push(conn),
            503 => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("GET /healthz answered {other}"),
        }
    }
    let query = ReqSpec::sha256(b"over the cap").encode();
    for i in 0..20 {
        let reply = sigillum_tests::raw_post(
            server.port(),
            "/",
            "application/timestamp-query",
            query.clone(),
            false,
        );
        assert_der_rejection(
            &format!("connection {} over a cap of {CAP}", CAP + i + 1),
            &reply,
            503,
            FailureInfo::SystemFailure,
        );
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    // The holders are still served: shedding does not touch admitted connections.
    assert_eq!(get_healthz(&mut holders[0]).status, 200);
    drop(holders);
    let freed = Instant::now();
    loop {
        assert!(
            freed.elapsed() < HANG_GUARD,
            "no request granted after the connections closed:\n{}",
            server.log()
        );
        let reply = server.post_query(&query);
        if reply.status == 200 {
            sigillum_tests::granted_token(&reply);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "granted again {:?} after the {CAP} holders closed",
        freed.elapsed()
    );
    server.assert_healthy();
    assert!(
        server.log().contains("connection cap reached"),
        "{}",
        server.log()
    );
}

#[test]
fn sigterm_with_half_open_requests_pending_exits_within_the_drain_deadline() {
    // Why: axum's graceful shutdown waited for every connection, so one half-sent request kept
    // a SIGTERMed server alive until systemd killed it, losing the tokens not yet committed.
    let drain = Duration::from_millis(4000);
    let mut server =
        start("request_timeout_ms = 60000\nidle_timeout_ms = 60000\ndrain_timeout_ms = 4000\n");
    let port = server.port();
    let mut pending = Vec::new();
    for _ in 0..50 {
        let mut head = connect(port);
        head.write_all(format!("{QUERY_HEAD}X-Half: ").as_bytes())
            .expect("head");
        pending.push(head);
        let mut body = connect(port);
        body.write_all(format!("{QUERY_HEAD}Content-Length: 200\r\n\r\n0123").as_bytes())
            .expect("body");
        pending.push(body);
    }
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = connect(port);
            assert_eq!(get_healthz(&mut c).status, 200);
            c
        })
        .collect();
    // An in-flight request that completes after the SIGTERM is still answered.
    let query = ReqSpec::sha256(b"finishing during the drain").encode();
    let (first, rest) = query.split_at(query.len() / 2);
    let mut finishing = connect(port);
    finishing
        .write_all(format!("{QUERY_HEAD}Content-Length: {}\r\n\r\n", query.len()).as_bytes())
        .expect("head");
    finishing.write_all(first).expect("first half");
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    server.send_sigterm();
    std::thread::sleep(Duration::from_millis(300));
    finishing.write_all(rest).expect("second half");
    let reply = read_reply(&mut finishing).expect("the in-flight request is answered");
    sigillum_tests::granted_token(&reply);
    // Idle connections are closed at once, not at the drain deadline.
    for c in &mut idle {
        c.set_read_timeout(Some(drain - Duration::from_millis(1000)))
            .expect("timeout");
        wait_closed(c);
    }
    let idle_closed = signalled.elapsed();
    let status = server.wait_exit(Duration::from_secs(20));
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    // The half-open requests were given the drain deadline, not dropped at the signal.
    assert!(
        exited >= drain,
        "exited after {exited:?}, before the drain deadline"
    );
    for c in &mut pending {
        wait_closed(c);
    }
    let log = server.log();
    // The half-sent bodies were aborted by their connections at the deadline, and every
    // connection task was gone before the server gave up waiting for them.
    let aborted = log
        .matches("drain deadline: aborting the connection")
        .count();
    assert!(
        aborted >= 50,
        "{aborted} connections aborted at the deadline:\n{log}"
    );
    assert!(log.contains("all connections closed"), "{log}");
    assert!(
        !log.contains("connections still open after the drain deadline"),
        "{log}"
    );
    eprintln!(
        "SIGTERM with 100 half-open requests: idle connections closed within {idle_closed:?}, exit after {exited:?} (drain deadline {drain:?})"
    );
}

/// Sets the soft RLIMIT_NOFILE of process `pid` (util-linux `prlimit`; tests run as root).
fn set_soft_nofile(pid: u32, soft: &str) {
    sigillum_tests::run(
        std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(format!("--nofile={soft}:")),
    )
    .assert_ok();
}

#[test]
fn accepting_resumes_after_the_process_runs_out_of_file_descriptors() {
    // Why: an accept() failing with EMFILE must neither spin on the error nor stop the loop:
    // once descriptors are free again, new connections are served.
    let server = start("max_connections = 1000");
    let pid = server.pid();
    let soft = sigillum_tests::run(std::process::Command::new("prlimit").args([
        "--pid",
        &pid.to_string(),
        "--nofile",
        "--output",
        "SOFT",
        "--noheadings",
    ]));
    soft.assert_ok();
    let soft = soft.stdout.trim().to_owned();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count();
    set_soft_nofile(pid, &(open + 4).to_string());
    // A few are accepted, the rest wait in the kernel's backlog while accept() fails.
    let waiting: Vec<TcpStream> = (0..20).map(|_| connect(server.port())).collect();
    let started = Instant::now();
    while !server.log().contains("accept failed; backing off") {
        assert!(
            started.elapsed() < HANG_GUARD,
            "accept never failed:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let failures = server.log().matches("accept failed; backing off").count();
    // A loop that retried at once would have logged thousands of failures by now.
    assert!(
        failures < 50,
        "{failures} accept failures logged in 1.5 s: no back-off"
    );
    set_soft_nofile(pid, &soft);
    drop(waiting);
    let freed = Instant::now();
    let query = ReqSpec::sha256(b"after EMFILE").encode();
    let reply = server.post_query(&query);
    sigillum_tests::granted_token(&reply);
    eprintln!(
        "{failures} accept failures logged while out of descriptors; granted again {:?} after they were freed",
        freed.elapsed()
    );
    server.assert_healthy();
}

/// Why: a client that sends its whole request and then half-closes (`shutdown(SHUT_WR)`, as
/// `nc -N` does) got no reply: hyper saw the end of file while the handler ran and cancelled it.
#[test]
fn a_client_that_half_closes_after_its_request_still_gets_its_token() {
    let server = start("request_timeout_ms = 5000\n");
    let mut conn = connect(server.port());
    let query = ReqSpec::sha256(b"sent, then half-closed").encode();
    conn.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\n\r\n",
            query.len()
        )
        .as_bytes(),
    )
    .expect("head");
    conn.write_all(&query).expect("body");
    conn.shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let reply = read_reply(&mut conn)
        .unwrap_or_else(|e| panic!("no reply after a half-close: {e}\n{}", server.log()));
    assert_eq!(reply.status, 200, "{}", server.log());
    let parsed = pki::tsp::parse_response(&reply.body).expect("DER reply");
    assert_eq!(parsed.status, PkiStatus::Granted, "{parsed:?}");
}
