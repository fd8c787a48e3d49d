//! The printed table: server figures, ceiling, peer, ratios and the issue's targets.

use crate::Settings;
use crate::keys::KeyKind;
use crate::peer::PeerRate;
use crate::raw::RawRate;
use crate::server::{Backend, RunResult};

/// ECDSA P-256 targets of issue 10, every token durably archived: (connections at least,
/// tokens per second at least, p99 latency in milliseconds at most), the highest row whose
/// connection count the run reaches applies.
const P256_TARGETS: [(usize, f64, f64); 2] = [(16, 10_000.0, 3.0), (64, 20_000.0, 5.0)];
/// ECDSA P-256 target: server CPU per token, microseconds.
const P256_TARGET_CPU_US: f64 = 50.0;
/// RSA-2048 target: server rate at least this fraction of the raw signing rate.
const RSA_TARGET_RATIO: f64 = 0.90;
/// The issue's PostgreSQL targets hold at this connection count.
const PG_TARGET_CONNECTIONS: usize = 64;
/// One PostgreSQL node ÷ one SQLite server, at least.
const PG_TARGET_VERSUS_SQLITE: f64 = 0.7;
/// Two PostgreSQL nodes ÷ one node, at least, when the machine's cores allow it.
const PG_TARGET_TWO_NODES: f64 = 1.6;

/// The machine the run is on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// A 4 KB write + fdatasync in the work directory, p50 and p99 in milliseconds: the
    /// floor under every durable commit (measured by `main` before the runs).
    pub fsync_ms: Option<(f64, f64)>,
}

impl Machine {
    /// Reads the core count and /proc/cpuinfo.
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Machine {
            cores,
            cpu,
            fsync_ms: None,
        }
    }
}

/// Everything measured for one key.
#[derive(Debug, Clone)]
pub struct KeyResult {
    /// Which key.
    pub kind: KeyKind,
    /// The ceiling.
    pub raw: RawRate,
    /// Raw verification of the same key's signature (key files only).
    pub raw_verify: Option<RawRate>,
    /// The peer, if it ran.
    pub openssl: Option<PeerRate>,
    /// One server run per connection count and node count.
    pub runs: Vec<RunResult>,
    /// `stamp verify` of the first run's tokens, with its openssl peer, when it ran.
    pub bulk_verify: Option<crate::verify::BulkVerify>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

fn cpu(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |c| format!("{c:.2}"))
}

/// Whether rows name their backend and node count (a PostgreSQL or multi-node run); plain runs
/// keep the columns they always had.
fn wide(s: &Settings) -> bool {
    s.database_url.is_some() || s.nodes != [1]
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Prints the whole report on stdout.
pub fn print(machine: &Machine, s: &Settings, results: &[KeyResult]) {
    println!(
        "Sigillum tsa-bench  {}  |  {} cores, {}",
        now_utc(),
        machine.cores,
        machine.cpu
    );
    let version = std::process::Command::new(&s.tsa_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("server: {} ({version})", s.tsa_bin.display());
    println!(
        "load: HTTP/1.1 keep-alive to 127.0.0.1, one pre-made TimeStampReq (SHA-256, nonce, certReq), \
         {:.1} s warm-up, {:.1} s window (max {} requests), load generator in-process on {} runtime thread(s), same machine",
        s.warmup.as_secs_f64(),
        s.duration.as_secs_f64(),
        s.max_requests,
        s.client_threads
    );
    match s.rate {
        Some(rate) => println!(
            "loop: open, {rate:.0} requests/s offered over the connections; a request whose connection was late for it counts its latency from when it fell due"
        ),
        None => println!(
            "loop: closed, each connection sends again as soon as it has its reply (a server stall stops the senders too: compare --rate)"
        ),
    }
    match (&s.database_url, &s.archive_dir) {
        (Some(url), _) => {
            println!(
                "archive: PostgreSQL, a fresh database per run on {} (dropped after), shared by the run's nodes; every reply waits for its commit",
                crate::postgres::redacted(url)
            );
            if s.versus_sqlite {
                println!(
                    "         and, first at each connection count, one server on SQLite in its data directory (synchronous=FULL)"
                );
            }
        }
        (None, Some(d)) => println!(
            "archive: SQLite under {} (--archive-dir; NOT the data directory: fsync there may be free)",
            d.display()
        ),
        (None, None) => println!(
            "archive: SQLite in the server's data directory, synchronous=FULL, grouped commits; every reply waits for its commit"
        ),
    }
    if let Some((p50, p99)) = machine.fsync_ms {
        println!(
            "disk: a 4 KB write + fdatasync in the work directory takes {p50:.2} ms (p50), {p99:.2} ms (p99)"
        );
    }
    if let Some(n) = s.server_workers {
        println!("server tuning (experiment): TOKIO_WORKER_THREADS={n}");
    }
    if s.serial_block.is_some() || s.max_batch.is_some() {
        println!(
            "server tuning (experiment, via config file): [archive] serial_block = {}, max_batch = {}",
            s.serial_block
                .map_or_else(|| "default".into(), |n| n.to_string()),
            s.max_batch
                .map_or_else(|| "default".into(), |n| n.to_string())
        );
    }
    println!();

    let kw = results
        .iter()
        .map(|r| r.kind.name().len())
        .max()
        .unwrap_or(0)
        .max(11);
    let wide = wide(s);
    let head = |key: &str, run: Option<&RunResult>| -> String {
        let key = format!("{key:<kw$}");
        match (wide, run) {
            (false, _) => key,
            (true, Some(r)) => format!("{key} {:<8} {:>5}", r.backend.name(), r.nodes),
            (true, None) => format!("{key} {:<8} {:>5}", "backend", "nodes"),
        }
    };
    let hsm = results.iter().any(|r| r.kind.is_pkcs11());

    println!(
        "1. Server (tsa serve{})",
        if s.nodes == [1] {
            ""
        } else {
            "; with N nodes the connections go round-robin to N processes sharing the database"
        }
    );
    println!(
        "{} {:>6} {:>10} {:>7} {:>7} {:>8} {:>7}  {:<44}",
        head("key", None),
        "conns",
        "tokens/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "archive check (granted incl. warm-up)"
    );
    for r in results {
        for run in &r.runs {
            let l = &run.load;
            let counted = run.granted_total();
            let stored = run.archive_rows.or(run.metrics_tokens);
            let verdict = match stored {
                Some(n) if n == counted => "ok",
                Some(_) => "MISMATCH",
                None => "unchecked",
            };
            let counter = match run.backend {
                Backend::Sqlite => "sqlite3",
                Backend::Postgres => "psql",
            };
            println!(
                "{} {:>6} {:>10.0} {:>7} {:>7} {:>8} {:>7}  {verdict}: granted {counted}, {counter} rows {}, metrics {}",
                head(r.kind.name(), Some(run)),
                l.connections,
                l.tokens_per_sec(),
                ms(l.percentile_ms(0.50)),
                ms(l.percentile_ms(0.99)),
                ms(l.max_ms()),
                l.errors + l.warmup_errors,
                opt(run.archive_rows),
                opt(run.metrics_tokens),
            );
            if let Some(e) = &l.first_error {
                println!("{:<kw$} first error: {e}", "");
            }
        }
    }
    println!();

    println!("2. Ceiling: raw ring signing in-process (~200-byte message, one thread per core)");
    if hsm {
        println!(
            "   softhsm-* keys: signed through pki::signer::Pkcs11Signer into the SoftHSM2 token instead (in a child process, which sets SOFTHSM2_CONF)"
        );
    }
    println!(
        "3. Peer: openssl ts -reply (includes process start-up per token, as a CLI peer does)"
    );
    println!(
        "{:<kw$} {:>16} {:>18} {:>26}",
        "key", "raw sign/s", "raw verify/s", "openssl ts -reply tok/s"
    );
    for r in results {
        let peer = match r.openssl {
            _ if r.kind.is_pkcs11() => "n/a (PKCS#11 key)".into(),
            None => "n/a".into(),
            Some(p) => p.describe(),
        };
        let other = r.raw.other_cpu.map_or_else(String::new, |c| {
            format!("   (other processes used {c:.2} cores during raw signing)")
        });
        println!(
            "{:<kw$} {:>16} {:>18} {:>26}{other}",
            r.kind.name(),
            format!("{:.0} ({} thr)", r.raw.per_sec(), r.raw.threads),
            r.raw_verify.map_or_else(
                || "n/a".to_owned(),
                |v| format!("{:.0} ({} thr)", v.per_sec(), v.threads)
            ),
            peer
        );
    }
    println!();

    println!("4. Ratios");
    println!(
        "{} {:>6} {:>12} {:>16}",
        head("key", None),
        "conns",
        "server/raw",
        "server/openssl"
    );
    for r in results {
        for run in &r.runs {
            let tps = run.load.tokens_per_sec();
            let vs_peer = r
                .openssl
                .map_or_else(|| "n/a".into(), |p| format!("{:.1}x", tps / p.per_sec()));
            println!(
                "{} {:>6} {:>12} {:>16}",
                head(r.kind.name(), Some(run)),
                run.load.connections,
                format!("{:.2}", tps / r.raw.per_sec()),
                vs_peer
            );
        }
    }
    println!();

    print_comparisons(results, kw);
    print_bulk_verify(results, kw);
    print_bulk_stamp(results, kw);

    println!("Targets from the issue (printed, not asserted)");
    for r in results {
        for run in &r.runs {
            let tps = run.load.tokens_per_sec();
            let p99 = run.load.percentile_ms(0.99).unwrap_or(f64::INFINITY);
            let durable = s.archive_dir.is_none()
                && run.archive_rows.or(run.metrics_tokens) == Some(run.granted_total());
            let setup = if wide {
                format!(
                    " ({}, {} node{})",
                    run.backend.name(),
                    run.nodes,
                    plural(run.nodes)
                )
            } else {
                String::new()
            };
            match r.kind {
                KeyKind::EcdsaP256 => {
                    let Some(&(_, want_tps, want_p99)) = P256_TARGETS
                        .iter()
                        .rev()
                        .find(|(c, _, _)| run.load.connections >= *c)
                    else {
                        continue;
                    };
                    let cpu_us = run.server_cpu.map(|c| c * 1e6 / tps.max(1e-9));
                    let met = tps >= want_tps
                        && p99 <= want_p99
                        && cpu_us.is_some_and(|u| u <= P256_TARGET_CPU_US)
                        && durable
                        && run.load.errors == 0;
                    println!(
                        "  ecdsa-p256 c={:<4}{setup} target >= {want_tps:.0} tokens/s, p99 <= {want_p99} ms, server CPU <= {P256_TARGET_CPU_US} µs/token, every token durably archived: \
                         {tps:.0} tokens/s, p99 {p99:.2} ms, {} µs/token, archive {} -> {}",
                        run.load.connections,
                        cpu_us.map_or_else(|| "?".to_owned(), |u| format!("{u:.0}")),
                        if durable {
                            "complete"
                        } else {
                            "not shown durable"
                        },
                        if met { "met" } else { "missed" }
                    );
                }
                KeyKind::Rsa2048 => {
                    let ratio = tps / r.raw.per_sec();
                    println!(
                        "  rsa2048    c={:<4}{setup} target within 10% of raw signing (server/raw >= {RSA_TARGET_RATIO:.2}): {ratio:.2} -> {}",
                        run.load.connections,
                        if ratio >= RSA_TARGET_RATIO {
                            "met"
                        } else {
                            "missed"
                        }
                    );
                }
                _ => {}
            }
        }
    }
    print_postgres_targets(results);
    println!();

    println!("Server internals (GET /metrics after the run; CPU from /proc over warm-up + window)");
    let db_col = |v: String| {
        if wide {
            format!(" {v:>8}")
        } else {
            String::new()
        }
    };
    println!(
        "{} {:>6} {:>8} {:>6} {:>22} {:>6} {:>8}{} {:>8} {:>8}",
        head("key", None),
        "conns",
        "commits",
        "batch",
        "commit ms mean/p99/max",
        "ckpts",
        "srv CPU",
        db_col("db CPU".into()),
        "loadgen",
        "others"
    );
    for r in results {
        for run in &r.runs {
            let i = run.internals;
            let f1 = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
            let f2 = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
            let count = |v: Option<f64>| v.map_or_else(|| "-".into(), |c| format!("{c:.0}"));
            println!(
                "{} {:>6} {:>8} {:>6} {:>22} {:>6} {:>8}{} {:>8} {:>8}",
                head(r.kind.name(), Some(run)),
                run.load.connections,
                count(i.commits),
                f1(i.mean_batch),
                format!(
                    "{}/{}/{}",
                    f2(i.mean_commit_ms),
                    f2(i.commit_ms[0]),
                    f2(i.commit_ms[1])
                ),
                count(i.checkpoints),
                cpu(run.server_cpu),
                db_col(cpu(run.db_cpu)),
                cpu(run.client_cpu),
                cpu(run.other_cpu),
            );
        }
    }
    println!(
        "  (batch: mean tokens per commit; commit p99/max from the server's rolling summary; ckpts: rounds of\n   the SQLite checkpointer (`-` on PostgreSQL); CPU in cores of {}; others: every other process on the\n   machine, e.g. concurrent builds)",
        machine.cores
    );
    if wide {
        println!(
            "  (srv CPU: summed over the nodes; commits and batch over all nodes, commit p99/max the largest node's;\n   db CPU: the PostgreSQL backends connected to the run's database; its WAL writer and checkpointer count under others)"
        );
    }
    print_cpu_split(results, kw, wide);
}

/// Where a token's server CPU goes: the part the signature costs at raw speed, the SQLite
/// threads' part, the HTTP floor (`GET /livez` on the same server and connections), and the
/// rest (parsing and encoding, the hand-off to the archive writer and back, the wake-ups of a
/// runtime waiting for commits). The floors under the issue's CPU target, from the same run.
fn print_cpu_split(results: &[KeyResult], kw: usize, wide: bool) {
    let rows: Vec<_> = results
        .iter()
        .flat_map(|r| r.runs.iter().map(move |run| (r, run)))
        .filter(|(_, run)| run.http_floor.is_some() || run.sqlite_cpu.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "Where a token's server CPU goes (µs per token, /proc per thread; HTTP floor: GET /livez after the window, same connections)"
    );
    // With PostgreSQL or several nodes, each row names its backend and node count.
    let head = |key: &str, backend: &str, nodes: &str| {
        if wide {
            format!("{key:<kw$} {backend:<8} {nodes:>5}")
        } else {
            format!("{key:<kw$}")
        }
    };
    println!(
        "{} {:>6} {:>8} {:>16} {:>15} {:>24} {:>8}",
        head("key", "backend", "nodes"),
        "conns",
        "total",
        "signature (raw)",
        "SQLite threads",
        "HTTP floor (req/s)",
        "rest"
    );
    let us = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    for (r, run) in rows {
        let tps = run.load.tokens_per_sec().max(1e-9);
        let total = run.server_cpu.map(|c| c * 1e6 / tps);
        // One signature on one core, at the raw rate of the same key.
        let sign = (r.raw.per_sec() > 0.0).then(|| 1e6 * r.raw.threads as f64 / r.raw.per_sec());
        let sqlite = run.sqlite_cpu.map(|c| c * 1e6 / tps);
        let floor = run.http_floor.map(|f| f.cpu_us);
        let rest =
            total.map(|t| t - sign.unwrap_or(0.0) - sqlite.unwrap_or(0.0) - floor.unwrap_or(0.0));
        println!(
            "{} {:>6} {:>8} {:>16} {:>15} {:>24} {:>8}",
            head(r.kind.name(), run.backend.name(), &run.nodes.to_string()),
            run.load.connections,
            us(total),
            us(sign),
            us(sqlite),
            run.http_floor.map_or_else(
                || "-".into(),
                |f| format!("{:.1} ({:.0})", f.cpu_us, f.per_sec)
            ),
            us(rest),
        );
    }
}

/// Bulk stamping, when it ran: `stamp file` against the first run's server, beside that
/// server's own rate in the run (its limit on this machine), with the issue's target.
fn print_bulk_stamp(results: &[KeyResult], kw: usize) {
    fn stamped(r: &KeyResult) -> Option<&RunResult> {
        r.runs.first().filter(|run| !run.bulk_stamp.is_empty())
    }
    if results.iter().all(|r| stamped(r).is_none()) {
        return;
    }
    println!(
        "Bulk stamping: one `stamp file` of N new small files against the first run's server, after its window"
    );
    println!(
        "{:<kw$} {:>6} {:>8} {:>10} {:>12} {:>22} {:>13}",
        "key", "files", "--jobs", "files/s", "µs CPU/file", "server tok/s (conns)", "stamp/server"
    );
    for r in results {
        let Some(run) = stamped(r) else { continue };
        let server = run.load.tokens_per_sec();
        for b in &run.bulk_stamp {
            let rate = b.run.per_sec();
            println!(
                "{:<kw$} {:>6} {:>8} {:>10.0} {:>12} {:>22} {:>13.2}",
                r.kind.name(),
                b.run.items,
                b.jobs.map_or_else(|| "default".into(), |j| j.to_string()),
                rate,
                b.run
                    .cpu_us_per_item()
                    .map_or_else(|| "-".into(), |c| format!("{c:.0}")),
                format!("{server:.0} ({})", run.load.connections),
                rate / server,
            );
            println!(
                "  target (issue 10): >= 5000 files/s for small files: {rate:.0} -> {}",
                if rate >= 5_000.0 { "met" } else { "missed" }
            );
        }
    }
    println!(
        "  (wall clock of the one process, including its start, hashing and verifying every reply; the server shares the cores)"
    );
    println!();
}

/// Bulk verification, when it ran: `stamp verify` against raw verification of the same key
/// and `openssl ts -verify` of the same tokens, with the issue's target for P-256.
fn print_bulk_verify(results: &[KeyResult], kw: usize) {
    if results.iter().all(|r| r.bulk_verify.is_none()) {
        return;
    }
    println!(
        "Bulk verification: one `stamp verify` of N files, each with its own token from the first run's archive"
    );
    println!(
        "{:<kw$} {:>7} {:>15} {:>12} {:>14} {:>10} {:>22} {:>15}",
        "key",
        "tokens",
        "stamp tok/s",
        "µs CPU/tok",
        "raw verify/s",
        "stamp/raw",
        "openssl ts -verify/s",
        "stamp/openssl"
    );
    for r in results {
        let Some(v) = r.bulk_verify else { continue };
        let rate = v.run.per_sec();
        let raw = r.raw_verify.map(|x| x.per_sec());
        let peer = v.openssl.map(|p| p.per_sec());
        println!(
            "{:<kw$} {:>7} {:>15.0} {:>12} {:>14} {:>10} {:>22} {:>15}",
            r.kind.name(),
            v.run.items,
            rate,
            v.run
                .cpu_us_per_item()
                .map_or_else(|| "-".into(), |c| format!("{c:.0}")),
            raw.map_or_else(|| "n/a".into(), |x| format!("{x:.0}")),
            raw.map_or_else(|| "n/a".into(), |x| format!("{:.2}", rate / x)),
            v.openssl.map_or_else(|| "n/a".into(), |p| p.describe()),
            peer.map_or_else(|| "n/a".into(), |p| format!("{:.1}x", rate / p)),
        );
        if r.kind == KeyKind::EcdsaP256 {
            println!(
                "  target (issue 10): >= 20000 tokens/s for ECDSA P-256 tokens: {rate:.0} -> {}",
                if rate >= 20_000.0 { "met" } else { "missed" }
            );
        }
    }
    println!(
        "  (wall clock of the one process, including its start and reading the files; CPU from this process's reaped children)"
    );
    println!();
}

/// What a comparison of two runs at the same key and connection count sets side by side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compared {
    /// N nodes against 1 node, same backend.
    Nodes,
    /// PostgreSQL (any node count) against one SQLite server (`--versus-sqlite`).
    PostgresVersusSqlite,
}

/// A pair of runs of one key at the same connection count: (key, what, base, run).
type Comparison<'a> = (&'a str, Compared, &'a RunResult, &'a RunResult);

/// Every pair of runs in this invocation that section 5 and the targets compare.
fn comparisons(results: &[KeyResult]) -> Vec<Comparison<'_>> {
    let mut pairs = Vec::new();
    for r in results {
        for base in r.runs.iter().filter(|run| run.nodes == 1) {
            for run in &r.runs {
                if run.load.connections != base.load.connections {
                    continue;
                }
                let what = if run.nodes > 1 && run.backend == base.backend {
                    Compared::Nodes
                } else if base.backend == Backend::Sqlite && run.backend == Backend::Postgres {
                    Compared::PostgresVersusSqlite
                } else {
                    continue;
                };
                pairs.push((r.kind.name(), what, base, run));
            }
        }
    }
    pairs
}

/// `run` ÷ `base` in tokens/s.
fn ratio(base: &RunResult, run: &RunResult) -> Option<f64> {
    let a = base.load.tokens_per_sec();
    (a > 0.0).then(|| run.load.tokens_per_sec() / a)
}

/// Section 5, when a run measured more than one node count or both backends: N nodes ÷ 1 node
/// at the same key, backend and connection count, and PostgreSQL ÷ SQLite (`--versus-sqlite`),
/// each pair measured in this invocation (no figure from elsewhere).
fn print_comparisons(results: &[KeyResult], kw: usize) {
    let pairs = comparisons(results);
    if pairs.is_empty() {
        return;
    }
    println!("5. Comparisons (same key and connections, both runs in this invocation)");
    println!(
        "{:<kw$} {:>6}  {:<24} {:>10} {:>10} {:>7} {:>13} {:>13}",
        "key", "conns", "compared", "base tok/s", "tok/s", "ratio", "srv CPU b/r", "db CPU b/r"
    );
    for (key, what, base, run) in pairs {
        let label = match what {
            Compared::Nodes => format!("{} {} nodes ÷ 1", run.backend.name(), run.nodes),
            Compared::PostgresVersusSqlite => {
                format!("postgres {} node{} ÷ sqlite", run.nodes, plural(run.nodes))
            }
        };
        println!(
            "{key:<kw$} {:>6}  {label:<24} {:>10.0} {:>10.0} {:>7} {:>13} {:>13}",
            base.load.connections,
            base.load.tokens_per_sec(),
            run.load.tokens_per_sec(),
            ratio(base, run).map_or_else(|| "-".into(), |x| format!("{x:.2}")),
            format!("{}/{}", cpu(base.server_cpu), cpu(run.server_cpu)),
            format!("{}/{}", cpu(base.db_cpu), cpu(run.db_cpu)),
        );
    }
    println!();
}

/// The issue's PostgreSQL targets at [`PG_TARGET_CONNECTIONS`] connections, for the pairs this
/// invocation measured.
fn print_postgres_targets(results: &[KeyResult]) {
    for (key, what, base, run) in comparisons(results) {
        if base.load.connections != PG_TARGET_CONNECTIONS {
            continue;
        }
        let (want, text) = match what {
            Compared::PostgresVersusSqlite if run.nodes == 1 => (
                PG_TARGET_VERSUS_SQLITE,
                "postgres 1 node ÷ sqlite".to_owned(),
            ),
            Compared::Nodes if run.backend == Backend::Postgres && run.nodes == 2 => (
                PG_TARGET_TWO_NODES,
                "postgres 2 nodes ÷ 1 node (when the cores allow)".to_owned(),
            ),
            _ => continue,
        };
        let Some(got) = ratio(base, run) else {
            continue;
        };
        println!(
            "  {key:<10} c={:<4} target {text} >= {want:.2}: {got:.2} -> {}",
            base.load.connections,
            if got >= want { "met" } else { "missed" }
        );
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
