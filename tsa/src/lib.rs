//! Sigillum's RFC 3161 / RFC 5816 Time-Stamp Authority.
//!
//! * [`config`]: typed TOML configuration with command-line/environment overrides.
//! * [`keys`]: the development PKI (`tsa init`) and loading the checked signing identity.
//! * [`clock`]: the clock guard, sole source of genTime.
//! * [`serial`] and [`archive`]: serial blocks and the token archive (SQLite or PostgreSQL,
//!   grouped commits).
//! * [`state`], [`routes`], [`timestamp`], [`info`]: the HTTP service.
//! * [`limits`]: every limit on untrusted input.
//! * [`ratelimit`]: per-client rate limits (429 with Retry-After).
//! * [`server`]: the accept loop: request deadline, idle timeout, connection cap, drain.
//! * [`tls`]: the optional HTTPS listener's certificate and key.
//! * [`signing`]: where signatures run (inline, or a thread pool for slow keys).
//! * [`admin`]: the `/admin/` routes, behind allowlisted HTTPS client certificates.
//! * [`ca`]: the email-certificate CA: CMP enrolment, enrolment codes, directory, OCSP, CRL.
//! * [`export`]: `tsa archive export` (a tar of tokens and a manifest) and `tsa archive list`.
//! * [`error`]: the one mapping of the CA routes' failures to HTTP responses, with request ids.

pub mod admin;
pub mod archive;
pub mod ca;
pub mod clock;
pub mod config;
pub mod error;
pub mod export;
pub mod info;
pub mod keys;
pub mod limits;
pub mod proxy;
pub mod ratelimit;
pub mod routes;
pub mod serial;
pub mod server;
pub mod signing;
pub mod state;
pub mod timestamp;
pub mod tls;
