//! The peer: `openssl ts -reply` with the same key and certificate. It is a CLI, so every token
//! includes starting a process, reading the key and configuration, and writing the reply file.

use crate::Settings;
use crate::keys::{KeySet, POLICY};
use crate::load::is_granted;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Tokens per second of `openssl ts -reply`.
#[derive(Debug, Clone, Copy)]
pub struct PeerRate {
    /// Granted replies written.
    pub tokens: u64,
    /// Runs that failed or wrote something else.
    pub errors: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Processes run in parallel.
    pub jobs: usize,
}

impl PeerRate {
    /// Tokens per second.
    pub fn per_sec(&self) -> f64 {
        self.tokens as f64 / self.elapsed.as_secs_f64()
    }

    /// "RATE (N procs[, E errors])" for the report.
    pub fn describe(&self) -> String {
        let errors = if self.errors > 0 {
            format!(", {} errors", self.errors)
        } else {
            String::new()
        };
        format!("{:.0} ({} procs{errors})", self.per_sec(), self.jobs)
    }
}

/// Runs `openssl ts -reply` repeatedly, `settings.openssl_jobs` at a time, for about `time`.
pub fn openssl_reply_rate(
    settings: &Settings,
    key: &KeySet,
    query: &Path,
    time: Duration,
) -> Result<PeerRate> {
    let jobs = settings.openssl_jobs;
    let key_file = key
        .key_file()
        .context("openssl ts -reply needs a key file; this key is in a PKCS#11 token")?;
    let mut workers = Vec::new();
    for j in 0..jobs {
        // One directory per process: each has its own serial file and reply file.
        let dir = key.dir.join(format!("openssl-ts-{j}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("serial"), "01\n")
            .context("cannot write the openssl serial file")?;
        let config = format!(
            "[ tsa ]\ndefault_tsa = bench\n\n[ bench ]\ndir = {dir}\nserial = {dir}/serial\n\
             crypto_device = builtin\nsigner_digest = sha256\ndefault_policy = {POLICY}\n\
             digests = sha256, sha384, sha512\naccuracy = secs:1\nclock_precision_digits = 0\n\
             ordering = no\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("ts.cnf"), config)
            .context("cannot write the openssl ts configuration")?;
        workers.push(dir);
    }

    let make = |dir: &Path| {
        let mut cmd = Command::new(&settings.openssl_bin);
        cmd.args(["ts", "-reply", "-config"])
            .arg(dir.join("ts.cnf"))
            .arg("-queryfile")
            .arg(query)
            .arg("-signer")
            .arg(&key.cert_file)
            .arg("-inkey")
            .arg(key_file)
            .arg("-out")
            .arg(dir.join("reply.tsr"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };

    // One run first, so that a configuration the peer rejects is reported, not timed.
    let out = make(&workers[0])
        .output()
        .with_context(|| format!("cannot run {}", settings.openssl_bin.display()))?;
    let first = std::fs::read(workers[0].join("reply.tsr")).unwrap_or_default();
    if !out.status.success() || !is_granted(&first) {
        bail!(
            "openssl ts -reply did not grant a token: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    timed_runs(jobs, time, |worker, _, _| {
        let dir = &workers[worker];
        let out = make(dir).output().context("cannot run openssl")?;
        let reply = std::fs::read(dir.join("reply.tsr")).unwrap_or_default();
        let _ = std::fs::remove_file(dir.join("reply.tsr"));
        Ok(out.status.success() && is_granted(&reply))
    })
}

/// Runs `attempt(worker, jobs, round)` on `jobs` threads, each round after round, until `time`
/// has passed: the attempts that succeeded (`Ok(true)`) and failed (`Ok(false)`). An `Err`
/// ends the run with that error (the peer could not be run at all).
pub fn timed_runs(
    jobs: usize,
    time: Duration,
    attempt: impl Fn(usize, usize, usize) -> Result<bool> + Sync,
) -> Result<PeerRate> {
    let start = Instant::now();
    let deadline = start + time;
    let attempt = &attempt;
    let results: Vec<Result<(u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|worker| {
                scope.spawn(move || -> Result<(u64, u64)> {
                    let (mut ok, mut bad) = (0u64, 0u64);
                    let mut round = 0;
                    while Instant::now() < deadline {
                        if attempt(worker, jobs, round)? {
                            ok += 1;
                        } else {
                            bad += 1;
                        }
                        round += 1;
                    }
                    Ok((ok, bad))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a peer worker panicked")))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let (mut tokens, mut errors) = (0, 0);
    for r in results {
        let (ok, bad) = r?;
        tokens += ok;
        errors += bad;
    }
    Ok(PeerRate {
        tokens,
        errors,
        elapsed,
        jobs,
    })
}
