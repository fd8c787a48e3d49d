//! The ceiling: how fast the same key signs, in-process, on every core. A key file signs with
//! ring; a key in a SoftHSM2 token signs through `pki::signer::pkcs11::Pkcs11Signer`, in a
//! child process of this binary, because SoftHSM2 reads SOFTHSM2_CONF from the environment
//! when it initialises (and this process may not set its own environment: no `unsafe`).

use crate::keys::{KeySet, PrivateKey};
use anyhow::{Context, Result, bail};
use pki::signer::{RingSigner, RsaPadding, Signer};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Signatures per second over `threads` threads signing a ~200-byte message for `time`.
#[derive(Debug, Clone, Copy)]
pub struct RawRate {
    /// Signatures made.
    pub signatures: u64,
    /// Wall-clock time they took.
    pub elapsed: Duration,
    /// Threads used.
    pub threads: usize,
    /// CPU other processes used meanwhile, in cores (a busy neighbour lowers the ceiling).
    pub other_cpu: Option<f64>,
}

impl RawRate {
    /// Signatures per second.
    pub fn per_sec(&self) -> f64 {
        self.signatures as f64 / self.elapsed.as_secs_f64()
    }
}

/// Signs with `key` as the server would, in a loop on `threads` threads (for a PKCS#11 key: on
/// one thread per core of the child process).
pub fn signing_rate(key: &KeySet, threads: usize, time: Duration) -> Result<RawRate> {
    match &key.private {
        PrivateKey::File(key_file) => {
            let bytes = std::fs::read(key_file)
                .with_context(|| format!("cannot read {}", key_file.display()))?;
            let signer = RingSigner::from_pkcs8_file_bytes(&bytes, RsaPadding::Pkcs1)
                .with_context(|| format!("cannot load {}", key_file.display()))?;
            let message: Vec<u8> = MESSAGE.to_vec();
            rate_of(
                Arc::new(move || signer.sign(&message).map(|_| ()).map_err(Into::into)),
                threads,
                time,
            )
        }
        PrivateKey::Pkcs11(hsm) => {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let out = std::process::Command::new(&exe)
                .arg("--pkcs11-raw-worker")
                .arg(&key.dir)
                .arg("--raw-secs")
                .arg(time.as_secs_f64().to_string())
                .env("SOFTHSM2_CONF", &hsm.conf)
                .output()
                .with_context(|| format!("cannot run {}", exe.display()))?;
            if !out.status.success() {
                bail!(
                    "raw PKCS#11 signing failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            parse_worker_line(text.trim())
                .with_context(|| format!("unexpected output of the PKCS#11 worker: {text:?}"))
        }
    }
}

/// The child process behind [`signing_rate`] for a PKCS#11 key: opens the key in `dir`, signs
/// on one thread per core for `secs`, prints one line for the parent.
pub fn pkcs11_worker(dir: &Path, secs: f64) -> Result<()> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        bail!("--raw-secs must be between 0 and 3600 seconds, not {secs}");
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let signer = crate::softhsm::open_signer(dir)?;
    let message: Vec<u8> = MESSAGE.to_vec();
    let rate = rate_of(
        Arc::new(move || signer.sign(&message).map(|_| ()).map_err(Into::into)),
        threads,
        Duration::from_secs_f64(secs),
    )?;
    println!(
        "{} {} {} {}",
        rate.signatures,
        rate.elapsed.as_nanos(),
        rate.threads,
        rate.other_cpu.map_or_else(|| "-".into(), |c| c.to_string())
    );
    Ok(())
}

/// Reads the worker's line: signatures, elapsed nanoseconds, threads, other CPU (or `-`).
fn parse_worker_line(line: &str) -> Option<RawRate> {
    let mut f = line.split_whitespace();
    let signatures = f.next()?.parse().ok()?;
    let elapsed = Duration::from_nanos(f.next()?.parse().ok()?);
    let threads = f.next()?.parse().ok()?;
    let other_cpu = match f.next()? {
        "-" => None,
        c => Some(c.parse().ok()?),
    };
    Some(RawRate {
        signatures,
        elapsed,
        threads,
        other_cpu,
    })
}

/// About the size of a timestamp token's signed attributes (contentType, messageDigest,
/// signingCertificateV2), which is what the server signs and a verifier verifies.
const MESSAGE: [u8; 200] = {
    let mut m = [0u8; 200];
    let mut i: u8 = 0;
    while i < 200 {
        m[i as usize] = i;
        i += 1;
    }
    m
};

/// Verifications per second of one signature by the key in `key` (a key file: the one the
/// server signs with), checked as every verifier checks it (`pki::verify::verify_signature`,
/// the certificate's public key), on `threads` threads for `time`. `None` for a PKCS#11 key
/// (its signature would have to come from the token; verification does not touch it).
pub fn verifying_rate(key: &KeySet, threads: usize, time: Duration) -> Result<Option<RawRate>> {
    let PrivateKey::File(key_file) = &key.private else {
        return Ok(None);
    };
    let bytes =
        std::fs::read(key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
    let signer = RingSigner::from_pkcs8_file_bytes(&bytes, RsaPadding::Pkcs1)
        .with_context(|| format!("cannot load {}", key_file.display()))?;
    let signature = signer.sign(&MESSAGE)?;
    let cert_pem = std::fs::read(&key.cert_file)
        .with_context(|| format!("cannot read {}", key.cert_file.display()))?;
    let cert_der = pki::cert::load_certificates(&cert_pem)?
        .into_iter()
        .next()
        .context("no certificate")?;
    let cert = pki::cert::parse(&cert_der)?;
    let spki = cert.tbs_certificate.subject_public_key_info.clone();
    let algorithm = signer.algorithm();
    let alg_id = algorithm.algorithm_identifier()?;
    let digest = algorithm.digest();
    rate_of(
        Arc::new(move || {
            pki::verify::verify_signature(&spki, &alg_id, digest, &MESSAGE, &signature)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!(e))
        }),
        threads,
        time,
    )
    .map(Some)
}

/// A 4 KB write then `fdatasync` in `dir`, `n` times: p50 and p99 in milliseconds (`None` when
/// the file cannot be written).
pub fn fsync_latency(dir: &Path, n: usize) -> Option<(f64, f64)> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).ok()?;
    let block = [0x5au8; 4096];
    let mut ms: Vec<f64> = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let start = Instant::now();
        file.write_all(&block).ok()?;
        file.sync_data().ok()?;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_file(&path);
    ms.sort_by(f64::total_cmp);
    // Nearest rank over at most a few thousand samples: the product is exact and fits usize.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Some((at(0.5), at(0.99)))
}

/// Runs `op` in a loop on `threads` threads for `time`.
#[allow(clippy::type_complexity)]
fn rate_of(
    op: Arc<dyn Fn() -> Result<()> + Send + Sync>,
    threads: usize,
    time: Duration,
) -> Result<RawRate> {
    let before = (
        crate::server::machine_busy_ticks(),
        crate::server::cpu_ticks("/proc/self/stat"),
    );
    let start = Instant::now();
    let deadline = start + time;
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let op = Arc::clone(&op);
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    std::hint::black_box(op())?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut signatures = 0;
    for h in handles {
        signatures += h
            .join()
            .map_err(|_| anyhow::anyhow!("a measuring thread panicked"))??;
    }
    let elapsed = start.elapsed();
    let after = (
        crate::server::machine_busy_ticks(),
        crate::server::cpu_ticks("/proc/self/stat"),
    );
    let other_cpu = (|| {
        let others = (after.0? - before.0?).saturating_sub(after.1? - before.1?);
        Some(others as f64 / crate::server::CLOCK_TICKS_PER_SEC / elapsed.as_secs_f64())
    })();
    Ok(RawRate {
        signatures,
        elapsed,
        threads: threads.max(1),
        other_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parent reads back exactly what the PKCS#11 worker printed.
    #[test]
    fn worker_line_round_trips() {
        let r = parse_worker_line("1234 2000000000 2 0.05").expect("parses");
        assert_eq!((r.signatures, r.threads), (1234, 2));
        assert_eq!(r.elapsed, Duration::from_secs(2));
        assert_eq!(r.other_cpu, Some(0.05));
        assert!(parse_worker_line("1 2 3 -").is_some_and(|r| r.other_cpu.is_none()));
        assert!(parse_worker_line("garbage").is_none());
    }
}
