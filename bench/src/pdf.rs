//! `tsa-bench --pdf`: signing and verifying large PDFs with `stamp` and with pyHanko, in one run
//! against one authority:
//!
//! 1. a release `tsa` (ECDSA P-256 development PKI, durable SQLite archive) on a loopback port,
//!    and a CA with an ECDSA P-256 signer made by openssl;
//! 2. for each size (`--pdf-mb`, default 10 and 100): a PDF of scanned-statement pages (one
//!    incompressible 1 MB image each, written here), and for the largest size also a PDF whose
//!    bytes are one single image stream (the worst case for the signer's memory: lopdf copies
//!    a stream while parsing it);
//! 3. the floor: SHA-256 of the file alone (read from the page cache, as the signer reads it),
//!    and one TSA round trip (the median of 20 requests over HTTP/1.1);
//! 4. `stamp pdf sign` (PAdES B-T) and pyHanko (bench/py/pdf_peer.py) on the same file, wall time
//!    and peak RSS of each process (GNU time's `%M`); then `stamp verify` and pyHanko's
//!    validation of both outputs;
//! 5. one table with the ratios.

use crate::Settings;
use crate::email::{Signing, crate_dir, start_signing};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What the PDF benchmark is told.
pub struct PdfPlan {
    /// File sizes, MB.
    pub sizes_mb: Vec<usize>,
    /// The `stamp` binary.
    pub stamp_bin: PathBuf,
    /// The Python interpreter of the peer (with pyHanko).
    pub python: String,
}

/// Wall seconds and peak RSS (KB) of a finished child process.
struct Measured {
    secs: f64,
    rss_kb: u64,
    /// The peer's own figure (its work only), when it printed one.
    inner_secs: Option<f64>,
}

/// Runs `cmd` under GNU time (`%e %M`), failing with its output when it fails.
fn measure(cmd: &mut Command, what: &str) -> Result<Measured> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        bail!("GNU time is missing: `apt-get install time` (the peak RSS comes from it)");
    }
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let started = Instant::now();
    let out = Command::new(time)
        .args(["-f", "@@%e %M"])
        .arg(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr
        );
    }
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@"))
        .context("GNU time printed nothing")?;
    let mut parts = line.split_whitespace();
    let _elapsed: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(wall);
    let rss_kb = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let inner_secs = String::from_utf8_lossy(&out.stdout)
        .split("\"seconds\": ")
        .nth(1)
        .and_then(|s| s.trim().trim_end_matches('}').parse::<f64>().ok());
    Ok(Measured {
        secs: wall,
        rss_kb,
        inner_secs,
    })
}

/// Writes a PDF of `mb` MB: `images` pages with one incompressible RGB image each (one page
/// with one image when `images` is 1).
fn make_pdf(path: &Path, mb: usize, images: usize) -> Result<()> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut at = 0usize;
    let mut offsets: Vec<usize> = Vec::new();
    let put = |f: &mut std::io::BufWriter<std::fs::File>, b: &[u8], at: &mut usize| {
        f.write_all(b).map(|()| *at += b.len())
    };
    put(&mut f, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", &mut at)?;
    // 1 catalog, 2 pages, 3 font, then per page: page, content, image.
    let kids: Vec<String> = (0..images).map(|i| format!("{} 0 R", 4 + 3 * i)).collect();
    let objects_head = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {images} >>",
            kids.join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    for (i, o) in objects_head.iter().enumerate() {
        offsets.push(at);
        put(
            &mut f,
            format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes(),
            &mut at,
        )?;
    }
    let per_image = mb * 1024 * 1024 / images;
    // The largest square RGB image that fits (an integer square root).
    let side = (1..)
        .take_while(|s| s * s * 3 <= per_image)
        .last()
        .unwrap_or(1);
    let image_len = side * side * 3;
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..images {
        let (page, content, image) = (4 + 3 * i, 5 + 3 * i, 6 + 3 * i);
        offsets.push(at);
        put(
            &mut f,
            format!(
                "{page} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R \
                 /Resources << /Font << /F1 3 0 R >> /XObject << /Im1 {image} 0 R >> >> >>\nendobj\n"
            )
            .as_bytes(),
            &mut at,
        )?;
        let text = format!(
            "BT /F1 14 Tf 72 740 Td (Scanned statement, page {}) Tj ET q 468 0 0 600 72 100 cm /Im1 Do Q",
            i + 1
        );
        offsets.push(at);
        put(
            &mut f,
            format!(
                "{content} 0 obj\n<< /Length {} >>\nstream\n{text}\nendstream\nendobj\n",
                text.len()
            )
            .as_bytes(),
            &mut at,
        )?;
        offsets.push(at);
        put(
            &mut f,
            format!(
                "{image} 0 obj\n<< /Type /XObject /Subtype /Image /Width {side} /Height {side} \
                 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {image_len} >>\nstream\n"
            )
            .as_bytes(),
            &mut at,
        )?;
        let mut left = image_len;
        while left > 0 {
            let n = left.min(chunk.len());
            rng.fill(&mut chunk[..n])
                .map_err(|_| anyhow::anyhow!("no randomness"))?;
            put(&mut f, &chunk[..n], &mut at)?;
            left -= n;
        }
        put(&mut f, b"\nendstream\nendobj\n", &mut at)?;
    }
    let xref = at;
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f\r\n", offsets.len() + 1);
    for o in &offsets {
        tail.push_str(&format!("{o:010} 00000 n\r\n"));
    }
    tail.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        offsets.len() + 1
    ));
    put(&mut f, tail.as_bytes(), &mut at)?;
    f.flush()?;
    Ok(())
}

/// SHA-256 of the file, read whole as the signer reads it; seconds.
fn hash_alone(path: &Path) -> Result<f64> {
    let started = Instant::now();
    let bytes = std::fs::read(path)?;
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    std::hint::black_box(d);
    Ok(started.elapsed().as_secs_f64())
}

/// The median of 20 TSA round trips (a TimeStampReq over a fresh HTTP/1.1 connection each,
/// as `stamp` makes one per file), seconds.
fn tsa_round_trip(addr: std::net::SocketAddr) -> Result<f64> {
    let digest = ring::digest::digest(&ring::digest::SHA256, b"round trip");
    let req = pki::tsp::build_request(pki::HashAlg::Sha256, digest.as_ref(), None, true, None)?;
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/timestamp-query\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            req.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(&req)?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        if !reply.starts_with(b"HTTP/1.1 200") {
            bail!(
                "the TSA did not grant: {}",
                String::from_utf8_lossy(&reply[..reply.len().min(80)])
            );
        }
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Runs the PDF benchmark and prints its table.
pub fn run(settings: &Settings, plan: &PdfPlan, work: &Path) -> Result<()> {
    let Signing {
        keys,
        mut server,
        url,
        mail: ca,
    } = start_signing(settings, &plan.stamp_bin, work)?;
    let rtt = tsa_round_trip(server.addr)?;
    let peer = crate_dir().join("py/pdf_peer.py");

    let mut inputs: Vec<(String, PathBuf, usize)> = Vec::new();
    let largest = plan.sizes_mb.iter().copied().max().unwrap_or(0);
    for &mb in &plan.sizes_mb {
        let path = work.join(format!("pages-{mb}mb.pdf"));
        make_pdf(&path, mb, mb.max(1))?;
        inputs.push((format!("{mb} MB, {mb} image pages"), path, mb));
        if mb == largest {
            let path = work.join(format!("one-stream-{mb}mb.pdf"));
            make_pdf(&path, mb, 1)?;
            inputs.push((format!("{mb} MB, one image stream"), path, mb));
        }
    }

    println!();
    println!(
        "pdf: PAdES B-T, ECDSA P-256 signer and TSA, durable SQLite archive; TSA round trip {:.1} ms (median of 20)",
        rtt * 1000.0
    );
    println!(
        "| file | SHA-256 alone s | stamp sign s | peak RSS MB (x size) | pyHanko sign s (its work) | peak RSS MB | sign ratio | stamp / (hash + RTT) | stamp verify s | pyHanko verify s (its work) | verify ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, input, mb) in &inputs {
        let size = std::fs::metadata(input)?.len() as f64 / 1e6;
        let hash = (0..3)
            .map(|_| hash_alone(input))
            .collect::<Result<Vec<f64>>>()?
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        let ours_out = input.with_extension("stamp.pdf");
        let ours = measure(
            Command::new(&plan.stamp_bin)
                .args(["pdf", "sign"])
                .arg(input)
                .arg("--key")
                .arg(&ca.key)
                .arg("--cert")
                .arg(&ca.cert)
                .args(["--tsa", &url, "--force", "-o"])
                .arg(&ours_out),
            "stamp pdf sign",
        )?;
        let theirs_out = input.with_extension("pyhanko.pdf");
        let theirs = measure(
            Command::new(&plan.python)
                .arg(&peer)
                .arg("sign")
                .arg(input)
                .arg(&theirs_out)
                .arg(&ca.key)
                .arg(&ca.cert)
                .arg(&url),
            "pyHanko sign",
        )?;
        // Each verifier on both outputs: ours must accept pyHanko's and pyHanko ours.
        let mut our_verify = 0.0;
        let mut their_verify = 0.0;
        let mut their_verify_inner = 0.0;
        for out in [&ours_out, &theirs_out] {
            let v = measure(
                Command::new(&plan.stamp_bin)
                    .arg("verify")
                    .arg(out)
                    .arg("--trust")
                    .arg(&ca.ca)
                    .arg("--tsa-trust")
                    .arg(&keys.chain_file),
                "stamp verify",
            )?;
            our_verify += v.secs / 2.0;
            let p = measure(
                Command::new(&plan.python)
                    .arg(&peer)
                    .arg("verify")
                    .arg(out)
                    .arg(&ca.ca)
                    .arg(&keys.chain_file),
                "pyHanko verify",
            )?;
            their_verify += p.secs / 2.0;
            their_verify_inner += p.inner_secs.unwrap_or(p.secs) / 2.0;
        }
        let mb_of = |kb: u64| kb as f64 / 1024.0;
        println!(
            "| {label} ({size:.1} MB) | {hash:.3} | {:.3} | {:.0} ({:.2}) | {:.2} ({:.2}) | {:.0} | {:.1} | {:.2} | {our_verify:.3} | {their_verify:.2} ({their_verify_inner:.2}) | {:.1} |",
            ours.secs,
            mb_of(ours.rss_kb),
            mb_of(ours.rss_kb) / (*mb as f64 * 1.048_576),
            theirs.secs,
            theirs.inner_secs.unwrap_or(theirs.secs),
            mb_of(theirs.rss_kb),
            theirs.secs / ours.secs,
            ours.secs / (hash + rtt),
            their_verify / our_verify,
        );
    }
    server.stop();
    Ok(())
}
