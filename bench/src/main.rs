//! `tsa-bench`: throughput and latency of the `tsa` server, printed next to the ceilings and
//! peers measured in the same run (STYLE.md: benchmarks print ratios, never assert wall-clock
//! limits).
//!
//! For every key type asked for, one run:
//! 1. creates the keys (the development PKI via `tsa init`, an openssl-made RSA key and
//!    certificate served through a config file, or a key made by `tsa init --pkcs11-*` inside a
//!    SoftHSM2 token of the run's own);
//! 2. measures the raw in-process signing rate of that key on every core (the ceiling): ring
//!    for key files, `Pkcs11Signer` through the token for HSM keys;
//! 3. measures `openssl ts -reply` with the same key and certificate (a CLI peer: one process
//!    per token; not for HSM keys);
//! 4. for each connection count and node count, starts the release `tsa` server (or N of them
//!    sharing one PostgreSQL database) on free loopback ports in a fresh data directory and
//!    drives it with an HTTP/1.1 keep-alive load generator in this process, then checks that
//!    the archive holds every granted token;
//! 5. prints one table with the ratios.

mod email;
mod email_encrypt;
mod hostile;
mod keys;
mod load;
mod pdf;
mod peer;
mod postgres;
mod raw;
mod report;
mod server;
mod softhsm;
mod stamp_file;
mod verify;

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Most nodes per run (`--nodes`): each is a full server on this machine.
const MAX_NODES: usize = 8;

/// Benchmark the Sigillum time-stamp authority against raw signing and `openssl ts -reply`.
#[derive(Parser, Debug)]
#[command(name = "tsa-bench", version, about)]
struct Opts {
    /// The `tsa` binary to benchmark (build it with `cargo build --release -p tsa`).
    #[arg(long, default_value = "target/release/tsa")]
    tsa_bin: PathBuf,
    /// Keep-alive connections of the load generator; a comma list runs one fresh server per value.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    connections: Vec<usize>,
    /// Measured window of the load generator, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before the measured window, in seconds (its requests are not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Most requests sent in one measured window (the window also ends after --duration).
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Key types: ecdsa-p256, rsa2048 (also accepted: ecdsa-p384, ed25519), and keys in a
    /// SoftHSM2 token of the run's own, signed with through PKCS#11: softhsm-p256,
    /// softhsm-rsa2048.
    #[arg(long, value_delimiter = ',', default_value = "ecdsa-p256,rsa2048")]
    keys: Vec<String>,
    /// Archive in PostgreSQL instead of SQLite: an admin URL on a server where this user may
    /// CREATE DATABASE (postgres://postgres@127.0.0.1:5432/test). Every server run gets a fresh
    /// database there, dropped after the run.
    #[arg(long)]
    database_url: Option<String>,
    /// Nodes per server run, a comma list (one run per value and connection count): N `tsa
    /// serve` processes on their own ports sharing the data directory and the database, the
    /// load generator's connections spread over them round-robin. More than 1 needs
    /// --database-url.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    nodes: Vec<usize>,
    /// With --database-url: before the PostgreSQL runs of each connection count, one server on
    /// a SQLite archive in its data directory, and the report prints PostgreSQL ÷ SQLite at the
    /// same key and connections (both from this invocation).
    #[arg(long)]
    versus_sqlite: bool,
    /// Smoke check: 2 s windows, 0.5 s warm-up, 1 s raw signing and openssl runs.
    #[arg(long)]
    quick: bool,
    /// Seconds of raw signing per key.
    #[arg(long, default_value_t = 3.0)]
    raw_secs: f64,
    /// Seconds of `openssl ts -reply` per key.
    #[arg(long, default_value_t = 3.0)]
    openssl_secs: f64,
    /// Parallel `openssl ts -reply` processes.
    #[arg(long, default_value_t = 2)]
    openssl_jobs: usize,
    /// The openssl binary.
    #[arg(long, default_value = "openssl")]
    openssl: PathBuf,
    /// Skip the `openssl ts -reply` and `openssl ts -verify` peers.
    #[arg(long)]
    no_openssl: bool,
    /// Tokens of the first SQLite run per key verified afterwards with one `stamp verify` of as
    /// many files (and with `openssl ts -verify`, one process per token); 0 skips it. Needs
    /// the sqlite3 CLI and --stamp-bin.
    #[arg(long, default_value_t = 2000)]
    bulk_verify: usize,
    /// Small files stamped with one `stamp file` against the first run's server per key, while
    /// it is up, once per --bulk-stamp-jobs value; 0 skips it. Needs --stamp-bin.
    #[arg(long, default_value_t = 4000)]
    bulk_stamp: usize,
    /// `--jobs` values for the bulk stamping (0: stamp's default, 4 per core).
    #[arg(long, value_delimiter = ',', default_value = "0,32")]
    bulk_stamp_jobs: Vec<usize>,
    /// Worker threads of the load generator's runtime (1: a current-thread runtime, which
    /// leaves the most CPU to the server on a small machine).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Seconds of `GET /livez` on each run's server after its window, with the same
    /// connections: the server's CPU per request when it does no work but HTTP (the floor under
    /// the CPU per token); 0 skips it.
    #[arg(long, default_value_t = 2.0)]
    http_floor_secs: f64,
    /// Put each run's SQLite archive in a fresh directory under this one instead of the data
    /// directory (e.g. /dev/shm, to take fsync cost out of the figures). Not durable: for
    /// profiling only.
    #[arg(long)]
    archive_dir: Option<PathBuf>,
    /// Experiment: serials the server reserves per database trip (`[archive] serial_block`;
    /// the server's default is 1000). Serves every key through a config file.
    #[arg(long)]
    serial_block: Option<u64>,
    /// Experiment: most tokens per archive commit (`[archive] max_batch`; default 512).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Open loop: requests per second offered in total, spread evenly over the connections.
    /// Each request is due at a fixed time; one whose connection was still waiting for the
    /// previous reply then counts its latency from when it fell due, so a stall of the server
    /// shows in the percentiles as it would to clients arriving at this rate (a closed loop
    /// stops sending during a stall and hides it). 0: closed loop, each connection sends again
    /// as soon as it has its reply.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Experiment: tokio worker threads of the server (sets TOKIO_WORKER_THREADS for it; the
    /// default is one per core).
    #[arg(long)]
    server_workers: Option<usize>,
    /// Leave the temporary directories (keys, data, logs) in place and print where they are.
    #[arg(long)]
    keep: bool,
    /// Instead of the server benchmark: time token verification of hostile tokens (appended
    /// unsigned attributes, a huge-RDN bag certificate) of --hostile-mb sizes, in ms and ms/MB.
    #[arg(long)]
    hostile_verify: bool,
    /// Sizes of the hostile tokens, in MB.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    hostile_mb: Vec<f64>,
    /// Instead of the server benchmark: sign and timestamp --email-count statements of about
    /// 10 KB with `stamp email sign`, against the Python peer, then verify them.
    #[arg(long)]
    email: bool,
    /// Instead of the server benchmark: sign, timestamp and encrypt --email-count statements
    /// (to an RSA-2048 and a P-256 recipient) with `stamp email sign --encrypt`, decrypt them in
    /// process with each key, against the Python peer (bench/py/email_encrypt_peer.py).
    #[arg(long, conflicts_with = "email")]
    email_encrypt: bool,
    /// Statements for --email and --email-encrypt.
    #[arg(long, default_value_t = 2000)]
    email_count: usize,
    /// `--jobs` of `stamp email sign` for --email and --email-encrypt (default: its own, 4 per
    /// core).
    #[arg(long)]
    email_jobs: Option<usize>,
    /// The `stamp` binary for --email, --email-encrypt, --pdf and the bulk verification (build
    /// it with `cargo build --release -p stamp`).
    #[arg(long, default_value = "target/release/stamp")]
    stamp_bin: PathBuf,
    /// The Python interpreter of the --email and --email-encrypt peers (needs cryptography,
    /// rfc3161-client, pyasn1-modules: scripts/test.sh installs them).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Instead of the server benchmark: sign (PAdES B-T) and verify PDFs of --pdf-mb sizes with
    /// `stamp` and with pyHanko (bench/py/pdf_peer.py), with peak memory and the floor (hashing
    /// the file plus one TSA round trip).
    #[arg(long)]
    pdf: bool,
    /// File sizes for --pdf, MB.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    pdf_mb: Vec<usize>,
    /// Also write the hostile tokens (and root.der, data.txt) into this directory.
    #[arg(long)]
    hostile_out: Option<PathBuf>,
    /// Internal: the raw PKCS#11 signing ceiling of the key in this directory, run in a child
    /// process (it needs SOFTHSM2_CONF in its environment before the module loads); prints one
    /// line for the parent.
    #[arg(long, hide = true)]
    pkcs11_raw_worker: Option<PathBuf>,
}

/// The run's settings, after `--quick` and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Key types, by name.
    pub keys: Vec<String>,
    /// The `tsa` binary.
    pub tsa_bin: PathBuf,
    /// Load generator connection counts, one server run each.
    pub connections: Vec<usize>,
    /// Measured window.
    pub duration: Duration,
    /// Warm-up.
    pub warmup: Duration,
    /// Request cap per measured window.
    pub max_requests: u64,
    /// Raw signing time per key.
    pub raw: Duration,
    /// openssl peer time per key; `None` skips it.
    pub openssl: Option<Duration>,
    /// Parallel openssl processes.
    pub openssl_jobs: usize,
    /// The openssl binary.
    pub openssl_bin: PathBuf,
    /// Load generator runtime threads.
    pub client_threads: usize,
    /// The `GET /livez` window after each run (`None`: skipped).
    pub http_floor: Option<Duration>,
    /// Where archives go instead of the data directory.
    pub archive_dir: Option<PathBuf>,
    /// `[archive] serial_block` for the server, if set.
    pub serial_block: Option<u64>,
    /// `[archive] max_batch` for the server, if set.
    pub max_batch: Option<usize>,
    /// TOKIO_WORKER_THREADS for the server, if set.
    pub server_workers: Option<usize>,
    /// Open loop at this many requests per second (`None`: closed loop).
    pub rate: Option<f64>,
    /// The PostgreSQL admin URL (fresh database per run), or `None` for SQLite.
    pub database_url: Option<String>,
    /// Nodes per server run, one run per value.
    pub nodes: Vec<usize>,
    /// With `database_url`: a SQLite run before the PostgreSQL runs of each connection count.
    pub versus_sqlite: bool,
    /// Tokens to verify in bulk after the first run per key (0: none).
    pub bulk_verify: usize,
    /// Files to stamp in bulk against the first run's server per key (0: none).
    pub bulk_stamp: usize,
    /// `--jobs` of each bulk stamping run (`None`: stamp's default).
    pub bulk_stamp_jobs: Vec<Option<usize>>,
    /// The `stamp` binary.
    pub stamp_bin: PathBuf,
}

impl Settings {
    /// The server runs at each connection count, in order: (archive backend, nodes).
    fn server_runs(&self) -> Vec<(server::Backend, usize)> {
        let backend = match self.database_url {
            Some(_) => server::Backend::Postgres,
            None => server::Backend::Sqlite,
        };
        let sqlite = self.versus_sqlite.then_some((server::Backend::Sqlite, 1));
        sqlite
            .into_iter()
            .chain(self.nodes.iter().map(|&n| (backend, n)))
            .collect()
    }
}

impl Opts {
    fn settings(self) -> Result<Settings> {
        let secs = |name: &str, v: f64| -> Result<Duration> {
            if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
                bail!("--{name} must be between 0 and 3600 seconds, not {v}");
            }
            Ok(Duration::from_secs_f64(v))
        };
        let (duration, warmup, raw, openssl) = if self.quick {
            (
                Duration::from_secs(2),
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(1),
            )
        } else {
            (
                secs("duration", self.duration)?,
                secs("warmup", self.warmup)?,
                secs("raw-secs", self.raw_secs)?,
                secs("openssl-secs", self.openssl_secs)?,
            )
        };
        if self.connections.is_empty() || self.connections.iter().any(|&c| c == 0 || c > 10_000) {
            bail!("--connections must be between 1 and 10000");
        }
        if !(self.rate.is_finite() && (0.0..=10_000_000.0).contains(&self.rate)) {
            bail!(
                "--rate must be between 0 (closed loop) and 10000000 requests/s, not {}",
                self.rate
            );
        }
        if self.client_threads == 0 || self.openssl_jobs == 0 {
            bail!("--client-threads and --openssl-jobs must be at least 1");
        }
        if self.nodes.is_empty() || self.nodes.iter().any(|&n| n == 0 || n > MAX_NODES) {
            bail!("--nodes must be between 1 and {MAX_NODES}");
        }
        match &self.database_url {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!(
                        "--database-url must be a postgres:// URL (SQLite is the default without it)"
                    );
                }
                if self.archive_dir.is_some() {
                    bail!(
                        "--archive-dir places a SQLite archive; it does not go with --database-url"
                    );
                }
            }
            None => {
                if self.versus_sqlite {
                    bail!("--versus-sqlite compares with PostgreSQL: it needs --database-url");
                }
                if self.nodes.iter().any(|&n| n > 1) {
                    bail!(
                        "--nodes above 1 needs --database-url: nodes share one archive, and only \
                         PostgreSQL is shared between processes (e.g. --database-url \
                         postgres://postgres@127.0.0.1:5432/test)"
                    );
                }
            }
        }
        Ok(Settings {
            keys: self.keys,
            tsa_bin: find_tsa_bin(&self.tsa_bin)?,
            connections: self.connections,
            duration,
            warmup,
            max_requests: self.max_requests.max(1),
            raw,
            openssl: (!self.no_openssl).then_some(openssl),
            openssl_jobs: self.openssl_jobs,
            openssl_bin: self.openssl,
            client_threads: self.client_threads,
            http_floor: if self.http_floor_secs == 0.0 {
                None
            } else {
                let d = secs("http-floor-secs", self.http_floor_secs)?;
                Some(if self.quick {
                    d.min(Duration::from_secs(1))
                } else {
                    d
                })
            },
            archive_dir: self.archive_dir,
            serial_block: self.serial_block,
            max_batch: self.max_batch,
            server_workers: self.server_workers,
            rate: (self.rate > 0.0).then_some(self.rate),
            database_url: self.database_url,
            nodes: self.nodes,
            versus_sqlite: self.versus_sqlite,
            bulk_verify: self.bulk_verify,
            bulk_stamp: self.bulk_stamp,
            bulk_stamp_jobs: self
                .bulk_stamp_jobs
                .iter()
                .map(|&j| (j > 0).then_some(j))
                .collect(),
            stamp_bin: self.stamp_bin,
        })
    }
}

/// The `tsa` binary: as given, or, for the relative default, under the workspace root.
fn find_tsa_bin(given: &std::path::Path) -> Result<PathBuf> {
    if given.is_file() {
        return Ok(given.canonicalize().unwrap_or_else(|_| given.to_owned()));
    }
    if given.is_relative() {
        let in_workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(given);
        if in_workspace.is_file() {
            return Ok(in_workspace.canonicalize().unwrap_or(in_workspace));
        }
    }
    bail!(
        "no tsa binary at {}; build it with `cargo build --release -p tsa` or pass --tsa-bin",
        given.display()
    )
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsa-bench: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let opts = Opts::parse();
    if let Some(dir) = &opts.pkcs11_raw_worker {
        return raw::pkcs11_worker(dir, opts.raw_secs);
    }
    if opts.hostile_verify {
        return hostile::run(&opts.hostile_mb, opts.hostile_out.as_deref());
    }
    let keep = opts.keep;
    let email_plan = opts.email.then(|| email::EmailPlan {
        count: opts.email_count,
        stamp_bin: opts.stamp_bin.clone(),
        python: opts.python.clone(),
        jobs: opts.email_jobs,
    });
    let encrypt_plan = opts.email_encrypt.then(|| email_encrypt::EncryptPlan {
        count: opts.email_count,
        stamp_bin: opts.stamp_bin.clone(),
        python: opts.python.clone(),
        jobs: opts.email_jobs,
    });
    let pdf_plan = opts.pdf.then(|| pdf::PdfPlan {
        sizes_mb: opts.pdf_mb.clone(),
        stamp_bin: opts.stamp_bin.clone(),
        python: opts.python.clone(),
    });
    let settings = opts.settings()?;
    let kinds = settings
        .keys
        .iter()
        .map(|n| keys::KeyKind::from_name(n))
        .collect::<Result<Vec<_>>>()?;
    // Before any work: a missing tool is a one-line error, not a kept directory.
    if let Some(url) = &settings.database_url {
        postgres::check(url)?;
    }
    if kinds.iter().any(|k| k.is_pkcs11()) {
        softhsm::check_installed()?;
    }
    let mut machine = report::Machine::detect();
    eprintln!(
        "tsa-bench: {} ({} cores), tsa = {}",
        machine.cpu,
        machine.cores,
        settings.tsa_bin.display()
    );

    let work = tempfile::Builder::new()
        .prefix("tsa-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    machine.fsync_ms = raw::fsync_latency(work.path(), 200);
    if let Some(plan) = &pdf_plan {
        let result = pdf::run(&settings, plan, work.path());
        if keep || result.is_err() {
            eprintln!("tsa-bench: files kept in {}", work.keep().display());
        }
        return result;
    }
    if let Some(plan) = &encrypt_plan {
        let result = email_encrypt::run(&settings, plan, work.path());
        if keep || result.is_err() {
            eprintln!("tsa-bench: files kept in {}", work.keep().display());
        }
        return result;
    }
    if let Some(plan) = &email_plan {
        let result = email::run(&settings, plan, work.path());
        if keep || result.is_err() {
            eprintln!("tsa-bench: files kept in {}", work.keep().display());
        }
        return result;
    }
    let request = load::request_der()?;
    std::fs::write(work.path().join("request.tsq"), &request)
        .context("cannot write request.tsq")?;

    let results = match measure_all(&settings, &machine, kinds, work.path(), &request) {
        Ok(results) => results,
        Err(e) => {
            // Keep the server logs and configurations for the post-mortem.
            let kept = work.keep();
            eprintln!(
                "tsa-bench: kept {} (server logs in */run-*/server*.log)",
                kept.display()
            );
            return Err(e);
        }
    };

    report::print(&machine, &settings, &results);
    if keep {
        let kept = work.keep();
        eprintln!("tsa-bench: kept {}", kept.display());
    }
    Ok(())
}

/// Measures every key: raw signing, the openssl peer, and one server run per connection count
/// and node count.
fn measure_all(
    settings: &Settings,
    machine: &report::Machine,
    kinds: Vec<keys::KeyKind>,
    work: &std::path::Path,
    request: &[u8],
) -> Result<Vec<report::KeyResult>> {
    let mut results = Vec::new();
    for kind in kinds {
        let key_dir = work.join(kind.name());
        eprintln!(
            "tsa-bench: [{}] creating keys in {}",
            kind.name(),
            key_dir.display()
        );
        let key = keys::KeySet::create(kind, &key_dir, settings)?;

        eprintln!(
            "tsa-bench: [{}] raw {} signing on {} threads for {:.1} s",
            kind.name(),
            if key.is_pkcs11() { "PKCS#11" } else { "ring" },
            machine.cores,
            settings.raw.as_secs_f64()
        );
        let raw = raw::signing_rate(&key, machine.cores, settings.raw)?;
        let raw_verify = raw::verifying_rate(&key, machine.cores, settings.raw)?;

        let openssl = match settings.openssl {
            // openssl ts -reply reads -inkey from a file; a PKCS#11 key needs an engine or a
            // provider, which is not the CLI peer this row stands for.
            Some(_) if key.is_pkcs11() => None,
            Some(time) => {
                eprintln!(
                    "tsa-bench: [{}] openssl ts -reply, {} in parallel, for {:.1} s",
                    kind.name(),
                    settings.openssl_jobs,
                    time.as_secs_f64()
                );
                match peer::openssl_reply_rate(settings, &key, &work.join("request.tsq"), time) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        eprintln!(
                            "tsa-bench: [{}] openssl ts -reply failed: {e:#}",
                            kind.name()
                        );
                        None
                    }
                }
            }
            None => None,
        };

        let mut runs = Vec::new();
        // The first run's SQLite archive holds the tokens to verify in bulk (a PostgreSQL
        // database and an --archive-dir copy are gone by now).
        let mut first_archive = None;
        for (i, &connections) in settings.connections.iter().enumerate() {
            for (backend, nodes) in settings.server_runs() {
                let mut name = format!("run-{i}-c{connections}");
                if settings.nodes != [1] {
                    name.push_str(&format!("-n{nodes}"));
                }
                if settings.versus_sqlite {
                    name.push_str(&format!("-{}", backend.name()));
                }
                eprintln!(
                    "tsa-bench: [{}] {}{} with {connections} connections: warm-up {:.1} s, window {:.1} s",
                    kind.name(),
                    if nodes == 1 {
                        "server".to_owned()
                    } else {
                        format!("{nodes} nodes")
                    },
                    if settings.versus_sqlite {
                        format!(" on {}", backend.name())
                    } else {
                        String::new()
                    },
                    settings.warmup.as_secs_f64(),
                    settings.duration.as_secs_f64()
                );
                let run_dir = key_dir.join(name);
                if runs.is_empty() && backend == server::Backend::Sqlite {
                    first_archive = settings
                        .archive_dir
                        .is_none()
                        .then(|| run_dir.join("archive.db"));
                }
                runs.push(server::measure(
                    settings,
                    &key,
                    &run_dir,
                    server::Shape {
                        backend,
                        connections,
                        nodes,
                    },
                    request,
                    runs.is_empty(),
                )?);
            }
        }
        let bulk_verify = match first_archive {
            Some(archive) if settings.bulk_verify > 0 && !runs.is_empty() => {
                eprintln!(
                    "tsa-bench: [{}] stamp verify of {} files with their tokens{}",
                    kind.name(),
                    settings.bulk_verify,
                    if settings.openssl.is_some() {
                        ", then openssl ts -verify"
                    } else {
                        ""
                    }
                );
                let dir = key_dir.join("bulk-verify");
                match verify::measure(settings, &key, &archive, &dir, settings.bulk_verify) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        eprintln!(
                            "tsa-bench: [{}] bulk verification failed: {e:#}",
                            kind.name()
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        results.push(report::KeyResult {
            kind,
            raw,
            raw_verify,
            openssl,
            runs,
            bulk_verify,
        });
    }

    Ok(results)
}
