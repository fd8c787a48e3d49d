//! Every limit on untrusted input, in one place, each with the reason for its value.

/// Largest request body read, in bytes.
///
/// The largest sensible TimeStampReq (SHA-512 imprint, a long policy OID, a 64-byte nonce,
/// certReq) is under 250 bytes; 8 KiB leaves room for extensions (which we refuse with a proper
/// failInfo, so the client learns why) while keeping a flood of large bodies from costing more
/// than 8 KiB of memory per connection. A larger body is answered 413 without being read whole.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The only media type accepted on the timestamp routes (RFC 3161 §3.4).
pub const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";

/// The media type of every reply, granted or rejected (RFC 3161 §3.4).
pub const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";

/// Longest nonce echoed, in bytes. RFC 3161 sets none; 64 bytes is far beyond the 8 to 20
/// that clients send, and bounds what a request can make us sign and archive.
pub const MAX_NONCE_BYTES: usize = 64;

// ---- Connections: slow and hostile clients (see [`crate::server`]) ----
//
// The defaults below are what `[server]` in the configuration falls back to; the bounds are
// what `Config::load` accepts. An honest client sends a TimeStampReq of under 250 bytes in one
// segment, so every one of these is far from what it needs and close to what an attacker wants.

/// Default whole-request deadline: headers and body, from the request's first byte.
///
/// A request is at most [`MAX_REQUEST_BYTES`] of body plus a few hundred bytes of headers:
/// even at a 56 kbit/s modem's 7 KB/s it arrives in under 2 s, so 5 s loses no real client,
/// while a connection that dribbles a byte a second (slowloris) is cut after 5 s, not never.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Longest request deadline a configuration may set: beyond a minute a slow client holds a
/// connection slot for as long as an idle one, and the deadline no longer protects anything.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 60_000;

/// Default idle keep-alive timeout: a connection with no request in progress (fresh, or
/// between two requests) is closed after 30 s.
///
/// Bulk clients (banks stamping statements, `stamp` over many files) send their next request
/// within milliseconds, so 30 s keeps their connection while it is useful; an idle connection
/// costs a file descriptor and a cap slot, so it must not be kept for ever. Behind a load
/// balancer, set it above the balancer's own idle timeout (AWS ALB: 60 s) so that the balancer
/// never sends a request on a connection we are closing.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;

/// Longest idle timeout a configuration may set (one hour).
pub const MAX_IDLE_TIMEOUT_MS: u64 = 3_600_000;

/// Default cap on open client connections (HTTP and HTTPS together).
///
/// A request takes milliseconds, so 1024 connections carry thousands of requests a second
/// (BENCHMARKS.md); the cap exists so that connections can never take the file descriptors
/// the archive, the logs and the key files need. `deploy/sigillum-tsa.service` sets
/// `LimitNOFILE=2048`, which leaves room for it and for [`RESERVED_FDS`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Smallest cap the server runs with, configured or clamped: below it a handful of idle
/// clients could keep everyone else out.
pub const MIN_CONNECTIONS: usize = 16;

/// Largest cap a configuration may set: Linux's default ceiling on open files per process
/// (`fs.nr_open`, 1 048 576); a larger cap could never be backed by descriptors.
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// Default drain deadline after SIGTERM or Ctrl-C: in-flight requests get 10 s to finish,
/// then whatever remains is aborted. A request needs milliseconds; 10 s leaves room for a
/// slow archive commit. The whole stop then takes at most the drain deadline, one second of
/// slack, the archive's commit timeout (5 s by default), one second for its connections and
/// one for the runtime's blocking threads: 18 s by default, under [`SUPERVISOR_STOP_TIMEOUT`].
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;

/// The shipped systemd unit's `TimeoutStopSec` (deploy/sigillum-tsa.service), after which the
/// unit is SIGKILLed: `tsa serve` warns at start when its configured stop could take longer
/// ([`crate::config::Config::stop_budget`]). Only a warning: a unit of one's own may allow more.
pub const SUPERVISOR_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest drain deadline a configuration may set (it must stay under the supervisor's own
/// stop timeout, which we cannot see; five minutes is beyond any sensible one).
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 300_000;

/// How long, after the request deadline, a 408 answer may take to be written before the
/// connection is closed regardless: a client that does not read its replies gets nothing
/// rather than a slot held for ever.
pub const TIMEOUT_REPLY_GRACE_MS: u64 = 1_000;

/// Connections over the cap that may be answered 503 at the same time; beyond that they are
/// closed at once. Answering needs a file descriptor for up to twice [`LINGER_MS`], so this
/// bounds the descriptors that shedding itself can take.
pub const SHED_CONCURRENCY: usize = 64;

/// Longest a connection is kept after its last reply (a 408, a 413 before the body, a 503 over
/// the cap) to read what the client still sends until it closes: closing with unread bytes makes
/// the kernel send a reset, which can destroy the reply before the client reads it. One second
/// covers a client that needs a round trip to notice; the bytes read are thrown away.
pub const LINGER_MS: u64 = 1_000;

/// File descriptors kept out of the connection budget for everything else: listeners,
/// stdio and logs, the key and certificate files read at start, the tokio runtime (epoll,
/// eventfd, signal pipe), the clock guard's timers, SQLite's journal and temporary files.
pub const RESERVED_FDS: u64 = 64;

/// File descriptors per database connection (SQLite in WAL mode: database, WAL and
/// shared-memory files, plus one for a journal or a temporary file; a PostgreSQL connection
/// takes one socket).
pub const FDS_PER_DATABASE_CONNECTION: u64 = 4;

/// Per-connection read buffer, in bytes, which bounds the request head too: a head larger than
/// this is refused by hyper (a bare 431, then close). 16 KiB is hyper's floor of 8 KiB doubled, far
/// beyond the few hundred bytes real clients send, and keeps [`DEFAULT_MAX_CONNECTIONS`]
/// dribbling connections under 16 MiB of buffers.
pub const MAX_CONNECTION_BUFFER: usize = 16 * 1024;
