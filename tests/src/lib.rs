//! Shared helpers for the cross-crate tests in `tests/tests/`: find the built binaries, run a
//! real `tsa serve` on a free loopback port, run commands, speak HTTP, and write the odd DER
//! request that no well-behaved client would send.
//!
//! The tests drive the binaries that `cargo build --bins` leaves in the target directory
//! (scripts/test.sh builds them first); they never build anything themselves.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod der;
pub mod load;
pub mod mail;
pub mod openssl_ca;
pub mod pdf;
pub mod softhsm;

/// How long a server may take to answer `/healthz` after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding the built binaries (`target/debug`, or `$CARGO_TARGET_DIR/debug`).
///
/// A test executable lives in `<target>/<profile>/deps/`, so its grandparent is where cargo puts
/// the binaries of the same build; `CARGO_TARGET_DIR` and the workspace `target/` are fallbacks.
pub fn bin_dir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug"));
    }
    candidates.push(workspace_root().join("target").join("debug"));
    candidates
        .iter()
        .find(|d| d.join("tsa").is_file())
        .cloned()
        .unwrap_or_else(|| candidates[candidates.len() - 1].clone())
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The path of a built binary of the workspace; panics with the command that builds it.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// `target/debug/tsa`.
pub fn tsa_bin() -> PathBuf {
    bin("tsa")
}

/// `target/debug/stamp`.
pub fn stamp_bin() -> PathBuf {
    bin("stamp")
}

/// What a finished command left: exit code and output as text.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for messages.
    pub cmd: String,
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Run {
    /// Whether the command exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the command exited 0; returns `self` for chaining.
    pub fn assert_ok(&self) -> &Run {
        assert!(self.ok(), "command failed: {self}");
        self
    }

    /// Panics with the whole output unless the command exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion (standard input closed) and returns its exit code and output.
/// Panics only when the program cannot be started at all, naming it.
pub fn run(cmd: &mut Command) -> Run {
    let text = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot start {text}: {e} (is the program installed? scripts/test.sh installs it)")
    });
    Run {
        cmd: text,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Run {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// Runs `stamp ARGS` in `dir`.
pub fn stamp(dir: &Path, args: &[&str]) -> Run {
    run(Command::new(stamp_bin()).current_dir(dir).args(args))
}

/// A free TCP port on 127.0.0.1 (free when asked; the server start retries if it is taken).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// How to start a [`TsaServer`].
#[derive(Debug, Clone, Default)]
pub struct TsaOptions {
    /// TOML written to `tsa.toml` beside the data directory and passed with `--config`.
    pub config: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// Use this data directory instead of a fresh one (it outlives the server).
    pub data_dir: Option<PathBuf>,
    /// Accept a `/healthz` that answers 503 (a server that cannot issue, on purpose).
    pub allow_unhealthy: bool,
    /// Extra environment variables for the server process (LD_PRELOAD for libfaketime, say).
    pub env: Vec<(String, String)>,
}

/// A running `tsa serve` on a free 127.0.0.1 port; killed when dropped.
pub struct TsaServer {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    work: PathBuf,
    opts: TsaOptions,
    healthz_status: u16,
    starts: u32,
    _tmp: tempfile::TempDir,
}

impl TsaServer {
    /// Starts a server with the development defaults (no config file) in a fresh data dir.
    pub fn start() -> TsaServer {
        TsaServer::start_with(TsaOptions::default())
    }

    /// Starts a server with `opts` and waits until `/healthz` answers.
    pub fn start_with(opts: TsaOptions) -> TsaServer {
        let tmp = tempfile::Builder::new()
            .prefix("sigillum-tsa-")
            .tempdir()
            .expect("temp dir");
        let work = tmp.path().to_path_buf();
        let data_dir = opts.data_dir.clone().unwrap_or_else(|| work.join("data"));
        let mut server = TsaServer {
            child: None,
            port: 0,
            data_dir,
            work,
            opts,
            healthz_status: 0,
            starts: 0,
            _tmp: tmp,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let tsa = tsa_bin();
        let mut last_log = String::new();
        // A port found free can be taken by another test before the server binds it: retry.
        for _attempt in 0..5 {
            self.starts += 1;
            self.port = free_port();
            let log_path = self.log_path();
            let log = std::fs::File::create(&log_path).expect("server log file");
            let mut cmd = Command::new(&tsa);
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{}", self.port))
                .env("RUST_LOG", "info,sqlx=warn")
                .env("NO_COLOR", "1")
                .env_remove("TSA_CONFIG")
                .env_remove("TSA_LISTEN")
                .env_remove("TSA_DATA_DIR")
                .env_remove("TSA_DATABASE_URL")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log);
            if let Some(config) = &self.opts.config {
                let path = self.work.join("tsa.toml");
                std::fs::write(&path, config).expect("write tsa.toml");
                cmd.arg("--config").arg(path);
            }
            cmd.envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            if let Some(url) = &self.opts.database_url {
                cmd.arg("--database-url").arg(url);
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", tsa.display()));
            self.child = Some(child);
            match self.wait_ready() {
                Ok(status) => {
                    self.healthz_status = status;
                    assert!(
                        status == 200 || self.opts.allow_unhealthy,
                        "tsa serve started but /healthz answered {status}:\n{}",
                        self.log()
                    );
                    return;
                }
                Err(why) => {
                    self.kill();
                    last_log = format!("{why}\n{}", self.log());
                    if !last_log.contains("cannot listen") {
                        break;
                    }
                }
            }
        }
        panic!("tsa serve did not come up:\n{last_log}");
    }

    /// Polls `/healthz` until it answers (any status) or the child exits.
    fn wait_ready(&mut self) -> Result<u16, String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let agent = agent(Duration::from_secs(2));
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "tsa serve exited with {status} before answering /healthz"
                ));
            }
            if let Ok(resp) = agent.get(format!("{}healthz", self.url())).call() {
                return Ok(resp.status().as_u16());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "/healthz did not answer within {STARTUP_TIMEOUT:?}"
        ))
    }

    /// The base URL, ending in `/` (the RFC 3161 endpoint itself).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (development PKI, SQLite archive).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory that lives as long as the server guard.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The development root certificate, `DATA_DIR/root.pem`.
    pub fn root_pem(&self) -> PathBuf {
        self.data_dir.join("root.pem")
    }

    /// The development TSA certificate, `DATA_DIR/tsa.pem`.
    pub fn tsa_pem(&self) -> PathBuf {
        self.data_dir.join("tsa.pem")
    }

    /// The HTTP status `/healthz` gave at the last start.
    pub fn healthz_status_at_start(&self) -> u16 {
        self.healthz_status
    }

    /// How many processes were spawned so far (restarts and port retries included).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    fn log_path(&self) -> PathBuf {
        self.work.join("server.log")
    }

    /// The server's log (stdout and stderr) since its last start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server (SIGKILL: no graceful shutdown, as in a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (at most 20 s) for the process to exit; returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit(Duration::from_secs(20))
    }

    /// The options the next [`TsaServer::restart`] uses; change them between runs.
    pub fn options_mut(&mut self) -> &mut TsaOptions {
        &mut self.opts
    }

    /// Kills the server and starts a new one on the same data directory and options (on a
    /// new port: see [`TsaServer::url`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// POSTs a DER request to the RFC 3161 endpoint with the right media type.
    pub fn post_query(&self, der: &[u8]) -> HttpReply {
        post(&self.url(), "application/timestamp-query", der)
    }

    /// `GET /healthz` status.
    pub fn healthz(&self) -> u16 {
        get(&format!("{}healthz", self.url())).status
    }

    /// Panics (with the log) unless `/healthz` says 200 and a fresh request is granted.
    pub fn assert_healthy(&self) {
        let health = get(&format!("{}healthz", self.url()));
        assert_eq!(
            health.status,
            200,
            "server unhealthy: {}\n{}",
            health.text(),
            self.log()
        );
        let req = der::ReqSpec::sha256(b"still alive").encode();
        let reply = self.post_query(&req);
        assert_eq!(
            reply.status,
            200,
            "server no longer grants:\n{}",
            self.log()
        );
        let parsed = pki::tsp::parse_response(&reply.body).expect("reply parses");
        assert_eq!(parsed.status, pki::asn1::PkiStatus::Granted, "{parsed:?}");
    }
}

impl Drop for TsaServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of the tsa log ({}) ---", self.url());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill();
    }
}

/// An HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    /// The Retry-After header, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A ureq agent that reports every HTTP status as a response, not an error.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn into_reply(mut resp: ureq::http::Response<ureq::Body>) -> HttpReply {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let retry_after = header("retry-after");
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    resp.body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .unwrap_or_else(|e| panic!("reading the HTTP {status} body: {e}"));
    HttpReply {
        status,
        content_type,
        retry_after,
        body,
    }
}

/// POSTs `body` with `content_type` over real HTTP; panics on a transport error.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> HttpReply {
    try_post(url, content_type, body).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// POSTs `body` with `content_type`; a transport error is returned.
pub fn try_post(url: &str, content_type: &str, body: &[u8]) -> Result<HttpReply, ureq::Error> {
    agent(Duration::from_secs(30))
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .map(into_reply)
}

/// POSTs with no Content-Type header at all.
pub fn post_without_content_type(url: &str, body: &[u8]) -> HttpReply {
    agent(Duration::from_secs(30))
        .post(url)
        .send(body)
        .map(into_reply)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// GETs `url`; panics on a transport error.
pub fn get(url: &str) -> HttpReply {
    agent(Duration::from_secs(30))
        .get(url)
        .call()
        .map(into_reply)
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A granted reply's token, parsed; panics with the status when the reply is not granted.
pub fn granted_token(reply: &HttpReply) -> pki::token::ParsedToken {
    assert_eq!(reply.status, 200, "HTTP status");
    let parsed = pki::tsp::parse_response(&reply.body).expect("TimeStampResp parses");
    assert_eq!(parsed.status, pki::asn1::PkiStatus::Granted, "{parsed:?}");
    pki::token::ParsedToken::parse(&reply.body).expect("token parses")
}

/// Random bytes from the system generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("system random");
    buf
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Reads a file whole, naming it on failure.
pub fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// POSTs over a raw TCP connection, writing the body from another thread while the reply is
/// read: a server may answer (413, say) before the body is all sent, and a client that writes
/// everything first would see a reset instead of the answer. `chunked` sends the body with
/// `Transfer-Encoding: chunked` (in 64 KiB chunks) instead of a `Content-Length`.
pub fn raw_post(
    port: u16,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    chunked: bool,
) -> HttpReply {
    use std::io::Write;
    use std::net::TcpStream;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .expect("write request head");
    let mut writer = stream.try_clone().expect("clone stream");
    let sender = std::thread::spawn(move || {
        // Errors are expected once the server has answered and closed.
        if chunked {
            for chunk in body.chunks(64 * 1024) {
                if writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .is_err()
                    || writer.write_all(chunk).is_err()
                    || writer.write_all(b"\r\n").is_err()
                {
                    return;
                }
            }
            let _ = writer.write_all(b"0\r\n\r\n");
        } else {
            let _ = writer.write_all(&body);
        }
    });
    let reply = read_reply(&mut stream).unwrap_or_else(|e| panic!("{e}"));
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    reply
}

/// A fake authority: answers every POST with the same canned reply, so a test can hand a
/// client a reply that a real server would never send (someone else's token, a wrong nonce).
/// Serves `connections` connections, then its thread ends.
pub struct CannedServer {
    /// The port it listens on.
    pub port: u16,
    handle: Option<std::thread::JoinHandle<usize>>,
}

impl CannedServer {
    /// Listens on a free 127.0.0.1 port and answers up to `connections` requests with
    /// `status`, `content_type` and `body`.
    pub fn start(
        status: u16,
        content_type: &str,
        body: Vec<u8>,
        connections: usize,
    ) -> CannedServer {
        use std::io::Write;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let head = format!(
            "HTTP/1.1 {status} Canned\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for stream in listener.incoming().take(connections) {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                // Read the request head and its body, then answer.
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head_text = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                        let want = head_text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if raw.len() >= end + 4 + want {
                            break;
                        }
                    }
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                served += 1;
            }
            served
        });
        CannedServer {
            port,
            handle: Some(handle),
        }
    }

    /// The URL to give a client.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for CannedServer {
    fn drop(&mut self) {
        // Unblock a thread still waiting in accept() so that it can end.
        if let Some(handle) = self.handle.take() {
            while !handle.is_finished() {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Reads one HTTP/1.1 reply (head, and a body of its Content-Length) from `stream`. `Err` says
/// what went wrong and what had arrived: the connection closed or failed before a whole reply.
pub fn read_reply(stream: &mut std::net::TcpStream) -> Result<HttpReply, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "connection closed before a reply head: {:?}",
                    String::from_utf8_lossy(&raw)
                ));
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(format!(
                    "reading the reply head: {e}; got {:?}",
                    String::from_utf8_lossy(&raw)
                ));
            }
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut content_type = None;
    let mut retry_after = None;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(value),
                "retry-after" => retry_after = Some(value),
                "content-length" => length = value.parse::<usize>().ok(),
                _ => {}
            }
        }
    }
    let length = length.ok_or_else(|| format!("reply without Content-Length: {head:?}"))?;
    let mut body = raw[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the reply body: {e}")),
        }
    }
    body.truncate(length);
    Ok(HttpReply {
        status,
        content_type,
        retry_after,
        body,
    })
}

impl TsaServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Sends SIGTERM and returns at once; [`TsaServer::wait_exit`] then waits for the exit.
    pub fn send_sigterm(&self) {
        self.send_signal("TERM");
    }

    /// Sends the signal `name` (`kill -NAME`: `TERM`, `HUP`, ...).
    pub fn send_signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the server is running");
        run(Command::new("kill").args([&format!("-{name}"), &child.id().to_string()])).assert_ok();
    }

    /// Waits at most `guard` for the process to exit and returns its status; past `guard` it
    /// kills the process and panics with the log (a hang guard, not a performance figure).
    pub fn wait_exit(&mut self, guard: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let deadline = Instant::now() + guard;
        loop {
            if let Some(status) = child.try_wait().expect("wait for tsa") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tsa did not exit within {guard:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
