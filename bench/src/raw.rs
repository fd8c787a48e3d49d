//! The ceiling: how fast ring signs with the same key, in this process, on every core.

use anyhow::{Context, Result};
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

/// Loads `key_file` as the server does and signs in a loop on `threads` threads.
pub fn signing_rate(key_file: &Path, threads: usize, time: Duration) -> Result<RawRate> {
    let bytes =
        std::fs::read(key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
    let signer = Arc::new(
        RingSigner::from_pkcs8_file_bytes(&bytes, RsaPadding::Pkcs1)
            .with_context(|| format!("cannot load {}", key_file.display()))?,
    );
    // About the size of a timestamp token's signed attributes (contentType, signingTime-free
    // messageDigest, signingCertificateV2), which is what the server signs.
    let message: Vec<u8> = (0..200u8).collect();
    let before = (
        crate::server::machine_busy_ticks(),
        crate::server::cpu_ticks("/proc/self/stat"),
    );
    let start = Instant::now();
    let deadline = start + time;
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let signer = Arc::clone(&signer);
            let message = message.clone();
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    std::hint::black_box(signer.sign(std::hint::black_box(&message))?);
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
            .map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
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
