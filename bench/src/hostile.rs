//! `tsa-bench --hostile-verify`: how verification time grows with hostile input.
//!
//! A genuine token from a three-level test chain, grown to 1, 2, 4, 8 MB in the two ways anyone
//! can grow a token without the TSA's key: appended unsigned attributes (about 15 bytes each,
//! distinct, in descending order: the worst case for `der`'s insertion sort) and a prepended
//! bag certificate whose one RDN holds 10-byte AVAs. Each size is parsed and verified (every
//! check, path included) three times after a warm-up; the best time is printed with ms/MB, so
//! linearity shows as a flat ms/MB column. No limit is asserted (STYLE.md).

use anyhow::{Result, bail};
use pki::HashAlg;
use pki::hostile::{self, Chain, ChainSpec};
use pki::token::{ParsedToken, VerifyOptions, verify};
use std::path::Path;
use std::time::{Duration, Instant};

const DATA: &[u8] = b"hostile benchmark data";

fn time_verify(bytes: &[u8], opts: &VerifyOptions) -> Result<Duration> {
    let digest = HashAlg::Sha256.digest(DATA);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let token = ParsedToken::parse(bytes)?;
        let report = verify(&token, Some(&digest), opts);
        let took = start.elapsed();
        if !report.verified {
            bail!("the hostile token did not verify: {:?}", report.failures());
        }
        best = best.min(took);
    }
    Ok(best)
}

/// Builds and times the hostile tokens; writes each to `write_dir` when given.
pub fn run(sizes_mb: &[f64], write_dir: Option<&Path>) -> Result<()> {
    let chain = Chain::generate(&ChainSpec::default())?;
    let genuine = chain.token(DATA)?;
    let opts = VerifyOptions {
        trust: vec![chain.root.clone()],
        ..Default::default()
    };
    time_verify(&genuine, &opts)?;
    println!("hostile-token verification (parse + every check, best of 3)");
    println!(
        "{:<22} {:>5} {:>10} {:>10} {:>9} {:>8}",
        "kind", "MB", "elements", "bytes", "ms", "ms/MB"
    );
    for &mb in sizes_mb {
        if !(mb > 0.0 && mb <= 64.0) {
            bail!("--hostile-mb sizes must be above 0 and at most 64, not {mb}");
        }
        // Bounded above: the casts cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (attrs, avas) = ((mb * 1e6 / 15.0) as u32, (mb * 1e6 / 16.0) as u32);
        let cases = [
            (
                "unsigned attributes",
                attrs,
                hostile::with_unsigned_attributes(&genuine, attrs)?,
            ),
            (
                "huge-RDN bag cert",
                avas,
                hostile::with_prepended_certificates(
                    &genuine,
                    &[hostile::with_huge_rdn(&chain.intermediate, avas)?],
                )?,
            ),
        ];
        for (kind, n, bytes) in cases {
            if let Some(dir) = write_dir {
                let name = format!("{}-{mb}mb.tsr", kind.split(' ').next().unwrap_or("x"));
                std::fs::write(dir.join(name), &bytes)?;
            }
            let took = time_verify(&bytes, &opts)?;
            let ms = took.as_secs_f64() * 1000.0;
            #[allow(clippy::cast_precision_loss)] // sizes are far below 2^52
            let per_mb = ms / (bytes.len() as f64 / 1_000_000.0);
            println!(
                "{kind:<22} {mb:>5} {n:>10} {:>10} {ms:>9.1} {per_mb:>8.1}",
                bytes.len()
            );
        }
    }
    if let Some(dir) = write_dir {
        std::fs::write(dir.join("root.der"), &chain.root)?;
        std::fs::write(dir.join("data.txt"), DATA)?;
    }
    Ok(())
}
