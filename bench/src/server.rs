//! The server under test: the release `tsa` binary on free loopback ports, in a fresh data
//! directory, stopped after each run; one process, or N nodes sharing the data directory and
//! one PostgreSQL database. Also reads the archive and the nodes' metrics afterwards.

use crate::Settings;
use crate::keys::{DEV_FILES, KeySet, POLICY, PrivateKey};
use crate::load::{self, LoadPlan, LoadResult, Work};
use crate::postgres::{self, Database};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer `GET /healthz` with 200 after start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which archive backend a run used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the data directory (or under --archive-dir).
    Sqlite,
    /// A fresh PostgreSQL database on the --database-url server.
    Postgres,
}

impl Backend {
    /// The name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What a server run is made of.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Where its archive is.
    pub backend: Backend,
    /// The load generator's connections.
    pub connections: usize,
    /// `tsa serve` processes sharing the archive (PostgreSQL only above 1).
    pub nodes: usize,
}

/// Where a run's archive is.
#[derive(Debug, Clone, Copy)]
pub enum Archive<'a> {
    /// A SQLite file.
    Sqlite(&'a Path),
    /// A PostgreSQL database of this run.
    Postgres(&'a Database),
}

impl Archive<'_> {
    fn url(&self) -> String {
        match self {
            Archive::Sqlite(path) => format!("sqlite://{}", path.display()),
            Archive::Postgres(db) => db.url.clone(),
        }
    }
}

/// One server run: the load it took, and what its archive and metrics say afterwards.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What the load generator saw.
    pub load: LoadResult,
    /// `tsa serve` processes that took the load.
    pub nodes: usize,
    /// The archive they shared.
    pub backend: Backend,
    /// Tokens in the archive, counted with the sqlite3 CLI (if installed) or psql.
    pub archive_rows: Option<u64>,
    /// `tsa_archive_tokens_total` from `GET /metrics`, summed over the nodes.
    pub metrics_tokens: Option<u64>,
    /// Server-side figures from `GET /metrics`.
    pub internals: Internals,
    /// CPU the nodes used during the load run, in cores (utime + stime over wall time, summed).
    pub server_cpu: Option<f64>,
    /// Of `server_cpu`, what the nodes' SQLite threads used (sqlx's worker thread of each
    /// connection: the writer's commits, checkpoints, serial reservations; threads that ended
    /// in the window count here, see [`named_ticks_between`]), in cores; `None` on PostgreSQL.
    pub sqlite_cpu: Option<f64>,
    /// The same server and connections doing `GET /livez` after the window (see [`HttpFloor`]).
    pub http_floor: Option<HttpFloor>,
    /// CPU the PostgreSQL backends serving the run's database used meanwhile, in cores (not its
    /// WAL writer or checkpointer, which count under `other_cpu`).
    pub db_cpu: Option<f64>,
    /// CPU this process (the load generator) used during the load run, in cores.
    pub client_cpu: Option<f64>,
    /// CPU every other process on the machine used meanwhile (other builds, daemons), in cores:
    /// a busy neighbour makes the figures lower than the machine can do.
    pub other_cpu: Option<f64>,
    /// `stamp file` runs against this run's first node after the load (first run per key only).
    pub bulk_stamp: Vec<crate::stamp_file::BulkStamp>,
}

impl RunResult {
    /// Every granted reply the load generator counted, warm-up included.
    pub fn granted_total(&self) -> u64 {
        self.load.granted + self.load.warmup_granted
    }
}

/// The HTTP floor: the server answering `GET /livez` (no work but HTTP: the connection, hyper,
/// the router and middleware, the kernel's TCP) on the same connections after the token window.
/// Its CPU per request (the server's CPU less its SQLite threads', which meanwhile checkpoint
/// the window's WAL) is the part of a token's CPU that no change to issuing or archiving can
/// remove.
#[derive(Debug, Clone, Copy)]
pub struct HttpFloor {
    /// 200 replies per second.
    pub per_sec: f64,
    /// Server CPU per request, in microseconds.
    pub cpu_us: f64,
}

/// Group-commit figures the server exports (over all nodes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Internals {
    /// Archive transactions committed.
    pub commits: Option<f64>,
    /// Mean tokens per commit.
    pub mean_batch: Option<f64>,
    /// Mean commit time, in milliseconds.
    pub mean_commit_ms: Option<f64>,
    /// Commit time quantiles 0.99 and 1 (the exporter's rolling summary; with several nodes the
    /// largest node's), in milliseconds.
    pub commit_ms: [Option<f64>; 2],
    /// Rounds of the SQLite checkpointer (`tsa_archive_checkpoints_total`; none on PostgreSQL).
    pub checkpoints: Option<f64>,
}

/// A running release `tsa serve`; stopped (SIGINT, then SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

/// Starts `nodes` servers with `key` in `run_dir` (a fresh PostgreSQL database for them with
/// --database-url), drives them with `connections` connections, checks the archive, with
/// `bulk_stamps` runs `stamp file` against the first node ([`crate::stamp_file`]), stops them.
pub fn measure(
    settings: &Settings,
    key: &KeySet,
    run_dir: &Path,
    shape: Shape,
    request: &[u8],
    bulk_stamps: bool,
) -> Result<RunResult> {
    let Shape {
        backend,
        connections,
        nodes,
    } = shape;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    // With --archive-dir the archive lives elsewhere (tmpfs, for profiling); it is removed after.
    let archive_tmp = match &settings.archive_dir {
        Some(dir) => Some(
            tempfile::Builder::new()
                .prefix("tsa-bench-archive-")
                .tempdir_in(dir)
                .with_context(|| format!("cannot create a directory in {}", dir.display()))?,
        ),
        None => None,
    };
    let archive_path = archive_tmp.as_ref().map_or_else(
        || run_dir.join("archive.db"),
        |d| d.path().join("archive.db"),
    );
    // Declared before the servers, so dropped (DROP DATABASE ... WITH (FORCE)) after they are
    // stopped, on every path out of here.
    let database = match (backend, &settings.database_url) {
        (Backend::Postgres, Some(url)) => Some(Database::create(url)?),
        (Backend::Postgres, None) => bail!("a PostgreSQL run needs --database-url"),
        (Backend::Sqlite, _) => None,
    };
    let archive = match &database {
        Some(db) => Archive::Postgres(db),
        None => Archive::Sqlite(&archive_path),
    };

    // One after another: the first creates the schema, the others find it.
    let mut servers = Vec::with_capacity(nodes);
    for n in 0..nodes {
        let log = if nodes == 1 {
            "server.log".to_owned()
        } else {
            format!("server-{n}.log")
        };
        servers.push(Server::start_node(settings, key, run_dir, archive, &log)?);
    }
    let plan = LoadPlan {
        addrs: servers.iter().map(|s| s.addr).collect(),
        connections,
        warmup: settings.warmup,
        duration: settings.duration,
        max_requests: settings.max_requests,
        threads: settings.client_threads,
        rate: settings.rate,
    };
    let servers_ticks = |servers: &[Server]| -> Option<u64> {
        servers
            .iter()
            .map(|s| cpu_ticks(&format!("/proc/{}/stat", s.child.id())))
            .sum()
    };
    let backend_ticks = || database.as_ref().and_then(Database::backend_ticks);
    // Per node: its total and its threads, to split off the SQLite threads' part.
    let node_threads = |servers: &[Server]| -> Option<Vec<(u64, Threads)>> {
        match backend {
            Backend::Sqlite => servers
                .iter()
                .map(|s| {
                    Some((
                        cpu_ticks(&format!("/proc/{}/stat", s.pid()))?,
                        threads(s.pid())?,
                    ))
                })
                .collect(),
            Backend::Postgres => None,
        }
    };
    let cpu_before = (
        servers_ticks(&servers),
        cpu_ticks("/proc/self/stat"),
        machine_busy_ticks(),
        backend_ticks(),
        node_threads(&servers),
    );
    let wall = Instant::now();
    let load = load::run(&plan, Work::Timestamp(Bytes::copy_from_slice(request)))?;
    let wall = wall.elapsed().as_secs_f64();
    let cpu_after = (
        servers_ticks(&servers),
        cpu_ticks("/proc/self/stat"),
        machine_busy_ticks(),
        backend_ticks(),
        node_threads(&servers),
    );
    let cores = |ticks: u64| ticks as f64 / CLOCK_TICKS_PER_SEC / wall;
    let server_ticks = cpu_after.0.zip(cpu_before.0).map(|(a, b)| a - b);
    let sqlite_cpu = cpu_before
        .4
        .as_ref()
        .zip(cpu_after.4.as_ref())
        .map(|(before, after)| cores(sqlite_ticks(before, after)));
    let client_ticks = cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b);
    let db_ticks = match (&cpu_before.3, &cpu_after.3) {
        (Some(before), Some(after)) => Some(postgres::ticks_between(before, after)),
        _ => None,
    };

    // Every granted reply left only after its token was committed, so the archive must hold
    // them all now, while the servers are still running.
    let archive_rows = match archive {
        Archive::Sqlite(path) => count_rows(path),
        Archive::Postgres(db) => db.count_rows(),
    };
    let metrics: Vec<Option<String>> = servers
        .iter()
        .map(|s| {
            http_get(s.addr, "/metrics")
                .ok()
                .filter(|(status, _)| *status == 200)
                .map(|(_, body)| body)
        })
        .collect();
    let (metrics_tokens, internals) = read_metrics(&metrics);
    let http_floor = match settings.http_floor {
        Some(window) => {
            let floor = LoadPlan {
                warmup: Duration::from_millis(500),
                duration: window,
                // As fast as the server answers: the floor is a CPU figure.
                rate: None,
                ..plan.clone()
            };
            let before = (servers_ticks(&servers), node_threads(&servers));
            let load = load::run(&floor, Work::Get("/livez"))?;
            let after = (servers_ticks(&servers), node_threads(&servers));
            // The server's CPU less its SQLite threads' (the checkpoint of the token window's
            // WAL runs meanwhile, and is no part of HTTP).
            let sqlite = match (&before.1, &after.1) {
                (Some(b), Some(a)) => sqlite_ticks(b, a),
                _ => 0,
            };
            let ticks = after
                .0
                .zip(before.0)
                .map(|(a, b)| (a - b).saturating_sub(sqlite));
            if load.errors > 0 {
                bail!(
                    "GET /livez failed {} times: {}",
                    load.errors,
                    load.first_error.unwrap_or_default()
                );
            }
            ticks.map(|t| HttpFloor {
                per_sec: load.tokens_per_sec(),
                // Over warm-up and window, as for the tokens.
                cpu_us: t as f64 / CLOCK_TICKS_PER_SEC * 1e6
                    / (load.granted + load.warmup_granted).max(1) as f64,
            })
        }
        None => None,
    };
    // Bulk stamping after the figures above, so it changes none of them.
    let mut bulk_stamp = Vec::new();
    if bulk_stamps && settings.bulk_stamp > 0 {
        for (i, &jobs) in settings.bulk_stamp_jobs.iter().enumerate() {
            eprintln!(
                "tsa-bench: stamp file of {} files, --jobs {}",
                settings.bulk_stamp,
                jobs.map_or_else(|| "default".to_owned(), |j| j.to_string())
            );
            let dir = run_dir.join(format!("bulk-stamp-{i}"));
            match crate::stamp_file::measure(
                settings,
                servers[0].addr,
                &dir,
                settings.bulk_stamp,
                jobs,
            ) {
                Ok(b) => bulk_stamp.push(b),
                Err(e) => eprintln!("tsa-bench: bulk stamping failed: {e:#}"),
            }
        }
    }
    for s in &mut servers {
        s.stop();
    }
    drop(servers);
    drop(database);
    Ok(RunResult {
        load,
        nodes,
        backend,
        archive_rows,
        metrics_tokens,
        internals,
        server_cpu: server_ticks.map(cores),
        sqlite_cpu,
        http_floor,
        db_cpu: db_ticks.map(cores),
        client_cpu: client_ticks.map(cores),
        other_cpu: (|| {
            let busy = cpu_after.2? - cpu_before.2?;
            let ours = server_ticks? + client_ticks? + db_ticks.unwrap_or(0);
            Some(cores(busy.saturating_sub(ours)))
        })(),
        bulk_stamp,
    })
}

/// `tsa_archive_tokens_total` summed over the nodes (unknown if one node's is), and the
/// group-commit figures over all of them.
fn read_metrics(per_node: &[Option<String>]) -> (Option<u64>, Internals) {
    let value = |m: &Option<String>, name: &str| m.as_deref().and_then(|m| metric_value(m, name));
    let sum = |name: &str| -> Option<f64> { per_node.iter().map(|m| value(m, name)).sum() };
    // Prometheus renders counters as floats; token counts are far below 2^53, so exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let tokens = sum("tsa_archive_tokens_total").map(|v| v as u64);
    let batch_sum = sum("tsa_archive_batch_size_sum");
    let commits = sum("tsa_archive_batch_size_count");
    let commit_sum = sum("tsa_archive_commit_seconds_sum");
    // Quantiles of separate summaries do not add up: the largest node's is shown.
    let quantile_ms = |q: &str| {
        let name = format!("tsa_archive_commit_seconds{{quantile=\"{q}\"}}");
        per_node
            .iter()
            .filter_map(|m| value(m, &name))
            .reduce(f64::max)
            .map(|s| s * 1000.0)
    };
    let internals = Internals {
        commits,
        mean_batch: batch_sum
            .zip(commits)
            .filter(|(_, c)| *c > 0.0)
            .map(|(s, c)| s / c),
        mean_commit_ms: commit_sum
            .zip(commits)
            .filter(|(_, c)| *c > 0.0)
            .map(|(s, c)| s * 1000.0 / c),
        commit_ms: ["0.99", "1"].map(quantile_ms),
        checkpoints: sum("tsa_archive_checkpoints_total"),
    };
    (tokens, internals)
}

impl Server {
    /// Starts a server with `key` in `run_dir`, its SQLite archive at `archive`.
    pub fn start(
        settings: &Settings,
        key: &KeySet,
        run_dir: &Path,
        archive: &Path,
    ) -> Result<Server> {
        Server::start_node(
            settings,
            key,
            run_dir,
            Archive::Sqlite(archive),
            "server.log",
        )
    }

    /// Starts one node with `key` in `run_dir` (shared by every node of a run), on `archive`,
    /// logging to `run_dir/log_name`.
    pub fn start_node(
        settings: &Settings,
        key: &KeySet,
        run_dir: &Path,
        archive: Archive<'_>,
        log_name: &str,
    ) -> Result<Server> {
        let addr = free_loopback_port()?;
        let database_url = archive.url();
        let mut cmd = Command::new(&settings.tsa_bin);
        cmd.arg("serve");
        let tuned = settings.serial_block.is_some() || settings.max_batch.is_some();
        let postgres = matches!(archive, Archive::Postgres(_));
        if key.dev {
            // The development PKI, as `tsa serve --data-dir` finds it on a second start.
            for f in DEV_FILES {
                let to = run_dir.join(f);
                if !to.exists() {
                    std::fs::copy(key.dir.join(f), &to)
                        .with_context(|| format!("cannot copy {f}"))?;
                }
            }
        }
        if key.dev && !tuned && !postgres {
            cmd.arg("--data-dir").arg(run_dir);
            if settings.archive_dir.is_some() {
                cmd.arg("--database-url").arg(&database_url);
            }
        } else {
            let file = write_config(settings, key, run_dir, &database_url, postgres)?;
            cmd.arg("--config").arg(file);
        }
        cmd.arg("--listen").arg(addr.to_string());
        let log = run_dir.join(log_name);
        let log_file = std::fs::File::create(&log).context("cannot create the server log")?;
        let log_err = log_file
            .try_clone()
            .context("cannot share the server log")?;
        for var in [
            "TSA_CONFIG",
            "TSA_LISTEN",
            "TSA_DATA_DIR",
            "TSA_DATABASE_URL",
            "TOKIO_WORKER_THREADS",
        ] {
            cmd.env_remove(var);
        }
        if let Some(n) = settings.server_workers {
            cmd.env("TOKIO_WORKER_THREADS", n.to_string());
        }
        if let PrivateKey::Pkcs11(hsm) = &key.private {
            cmd.env("SOFTHSM2_CONF", &hsm.conf);
        }
        cmd.env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", settings.tsa_bin.display()))?;
        let mut server = Server { child, addr, log };
        server.wait_healthy()?;
        Ok(server)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("cannot wait for the server")?
            {
                bail!(
                    "the server exited ({status}) before it was healthy:\n{}",
                    self.log_tail()
                );
            }
            if let Ok((200, _)) = http_get(self.addr, "/healthz") {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "GET /healthz did not answer 200 within {} s:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The server's process id (for its CPU time in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT (graceful shutdown: the archive closes cleanly), then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("tsa-bench: the server did not stop within 10 s of SIGINT; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `run_dir/tsa.toml` (the same for every node of a run: each gets its own `--listen`)
/// and returns its path.
fn write_config(
    settings: &Settings,
    key: &KeySet,
    run_dir: &Path,
    database_url: &str,
    postgres: bool,
) -> Result<PathBuf> {
    let q = |p: &Path| toml_string(&p.display().to_string());
    let mut config = format!(
        "data_dir = {data}\ndatabase_url = {db}\nallow_unsynced_clock = true\n",
        data = q(run_dir),
        db = toml_string(database_url),
    );
    match &key.private {
        PrivateKey::File(_) if key.dev => {}
        PrivateKey::File(key_file) => {
            config += &format!(
                "\n[key]\nfile = {key}\ncertificate = {cert}\nchain = {chain}\nrsa_padding = \"pkcs1\"\n",
                key = q(key_file),
                cert = q(&key.cert_file),
                chain = q(&key.chain_file),
            );
        }
        PrivateKey::Pkcs11(hsm) => {
            // What `tsa init --pkcs11-module` prints for the key it made.
            config += &format!(
                "\n[key]\ncertificate = {cert}\nchain = {chain}\n\n\
                 [key.pkcs11]\nmodule = {module}\ntoken = {token}\nkey = {label}\npin_file = {pin}\n",
                cert = q(&key.cert_file),
                chain = q(&key.chain_file),
                module = q(&hsm.module),
                token = toml_string(&hsm.token),
                label = toml_string(&hsm.label),
                pin = q(&hsm.pin_file),
            );
        }
    }
    if !key.dev {
        config += &format!("\n[policy]\ndefault = \"{POLICY}\"\n");
    }
    if postgres {
        // A configuration file on a shared database must name the enrolment key every node
        // reads (tsa/src/config.rs refuses it otherwise); the first node to start creates it.
        config += &format!(
            "\n[ca]\nenrolment_key = {}\n",
            q(&run_dir.join("enrolment.key"))
        );
    }
    if settings.serial_block.is_some() || settings.max_batch.is_some() {
        config += "\n[archive]\n";
        if let Some(n) = settings.serial_block {
            config += &format!("serial_block = {n}\n");
        }
        if let Some(n) = settings.max_batch {
            config += &format!("max_batch = {n}\n");
        }
    }
    let file = run_dir.join("tsa.toml");
    std::fs::write(&file, config).context("cannot write the server configuration")?;
    Ok(file)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A free port on 127.0.0.1 (the listener is closed again; the server binds it right after).
fn free_loopback_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    l.local_addr().context("no local address")
}

/// A plain HTTP/1.0 GET (status and body), for health and metrics; not part of the load.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .context("no HTTP status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// The value of an unlabelled Prometheus sample.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Rows in the archive's `tokens` table, via the sqlite3 CLI, if installed.
fn count_rows(db: &Path) -> Option<u64> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT COUNT(*) FROM tokens;")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "tsa-bench: sqlite3 could not count: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Linux USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on every common build).
pub const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// The name (comm, cut to 15 bytes) of sqlx's worker thread of a SQLite connection.
const SQLITE_THREAD: &str = "sqlx-sqlite-wor";

/// The threads of a process: thread id → (name, utime + stime).
type Threads = std::collections::HashMap<u32, (String, u64)>;

/// The threads of `pid` now, from /proc/PID/task (a thread that ends meanwhile is left out).
fn threads(pid: u32) -> Option<Threads> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Threads::new();
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if let Some(ticks) = cpu_ticks(&task.path().join("stat").to_string_lossy()) {
            out.insert(tid, (comm.trim_end().to_owned(), ticks));
        }
    }
    Some(out)
}

/// The SQLite threads' ticks between two samples of each node ([`named_ticks_between`]).
fn sqlite_ticks(before: &[(u64, Threads)], after: &[(u64, Threads)]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|((t0, th0), (t1, th1))| {
            named_ticks_between(SQLITE_THREAD, t1.saturating_sub(*t0), th0, th1)
        })
        .sum()
}

/// Of the `total` ticks a process used between two samples of its threads, those of the
/// threads named `name` (a prefix), counting the threads that ended between the samples as
/// `name`'s: the process's total less what its threads alive at the end used. In `tsa serve`
/// those are SQLite connections: a serial reservation opens one and closes it, and a
/// checkpoint often gets a new one (so a checkpoint's CPU would otherwise be missed).
fn named_ticks_between(name: &str, total: u64, before: &Threads, after: &Threads) -> u64 {
    let mut named = 0;
    let mut live = 0;
    for (tid, (comm, ticks)) in after {
        // A thread that began after the first sample counts from 0.
        let used = ticks.saturating_sub(before.get(tid).map_or(0, |(_, t)| *t));
        live += used;
        if comm.starts_with(name) {
            named += used;
        }
    }
    named + total.saturating_sub(live)
}

/// utime + stime of a process, from /proc/PID/stat.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    stat_ticks(stat, 14..16)
}

/// The sum of the clock-tick fields `fields` (numbered from 1 as in proc(5): utime 14, stime
/// 15, cutime 16, cstime 17) of a `/proc/<pid>/stat` file.
pub fn stat_ticks(stat: &str, fields: std::ops::Range<usize>) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // Fields after the command name (field 2), which is in parentheses and may hold spaces.
    let after = &text[text.rfind(')')? + 2..];
    after
        .split_whitespace()
        .skip(fields.start.checked_sub(3)?)
        .take(fields.len())
        .map(|f| f.parse::<u64>().ok())
        .sum()
}

/// Busy time of the whole machine (user, nice, system, irq, softirq, steal), from /proc/stat.
pub fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_read_with_their_names_and_ticks() {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (spun_tx, spun_rx) = std::sync::mpsc::channel::<()>();
        let pid = std::process::id();
        let spinner_ticks = move || {
            threads(pid)
                .expect("/proc is readable")
                .values()
                .filter(|(name, _)| name == "bench-spinner")
                .map(|(_, t)| *t)
                .sum::<u64>()
        };
        let spinner = std::thread::Builder::new()
            .name("bench-spinner".into())
            .spawn(move || {
                // Until /proc shows 10 clock ticks of this thread (100 ms of CPU), or 30 s.
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_secs(30) && spinner_ticks() < 10 {
                    for _ in 0..100_000 {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                spun_tx.send(()).expect("send");
                done_rx.recv().ok();
            })
            .expect("spawn");
        spun_rx.recv().expect("the spinner spun");
        let spun = spinner_ticks();
        done_tx.send(()).expect("send");
        spinner.join().expect("join");
        assert!(spun >= 10, "the spinner's ticks: {spun}");
    }

    /// Named threads' ticks between two samples: new threads count from 0, a thread that ended
    /// counts through the process's total, other names do not count.
    #[test]
    fn ended_threads_count_as_the_named_ones() {
        let sample = |rows: &[(u32, &str, u64)]| -> Threads {
            rows.iter()
                .map(|&(tid, name, ticks)| (tid, (name.to_owned(), ticks)))
                .collect()
        };
        let before = sample(&[
            (1, "tokio-rt-worker", 100),
            (2, "sqlx-sqlite-worker-0", 50),
            (3, "sqlx-sqlite-worker-1", 7),
        ]);
        // Thread 3 ended after 3 more ticks; thread 4 (a new connection) used 5.
        let after = sample(&[
            (1, "tokio-rt-worker", 160),
            (2, "sqlx-sqlite-worker-0", 70),
            (4, "sqlx-sqlite-worker-2", 5),
        ]);
        let total = 60 + 20 + 3 + 5;
        assert_eq!(
            named_ticks_between("sqlx-sqlite", total, &before, &after),
            28
        );
        assert_eq!(named_ticks_between("tokio-rt", total, &before, &after), 63);
        assert_eq!(named_ticks_between("none", total, &before, &after), 3);
    }
}
