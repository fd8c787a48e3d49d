//! `tsa-bench --email`: signed, timestamped statements per second, in one run against one
//! authority:
//!
//! 1. a release `tsa` (ECDSA P-256 development PKI, durable SQLite archive) on a loopback port,
//!    and a mail CA with an ECDSA P-256 signer made by openssl;
//! 2. `--email-count` statements of about 10 KB;
//! 3. `stamp email sign --in-dir/--out-dir` (the CLI as a bank runs it: worker pool, keep-alive
//!    TSA client, atomic writes), wall-clock time including process start;
//! 4. the Python peer (bench/py/email_peer.py: cryptography's PKCS7SignatureBuilder plus
//!    rfc3161-client, one keep-alive connection) over the same statements;
//! 5. verification: `stamp verify` over every signed message (one process, as an auditor runs
//!    it) and `pki::smime::verify_message` in this process on every core;
//! 6. one table with the ratios.

use crate::Settings;
use crate::keys::{KeyKind, KeySet};
use crate::server::Server;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What the email benchmark is told.
pub struct EmailPlan {
    /// Statements to sign.
    pub count: usize,
    /// The `stamp` binary.
    pub stamp_bin: PathBuf,
    /// The Python interpreter of the peer.
    pub python: String,
    /// `--jobs` of `stamp email sign` (`None`: its default).
    pub jobs: Option<usize>,
}

/// Runs the email benchmark and prints its table.
pub fn run(settings: &Settings, plan: &EmailPlan, work: &Path) -> Result<()> {
    let Signing {
        keys,
        mut server,
        url,
        mail,
    } = start_signing(settings, &plan.stamp_bin, work)?;
    let inbox = write_statements(work, plan.count)?;

    // stamp email sign, the whole directory.
    let outbox = work.join("out");
    let mut sign = Command::new(&plan.stamp_bin);
    sign.args(["email", "sign", "--in-dir"])
        .arg(&inbox)
        .arg("--out-dir")
        .arg(&outbox)
        .arg("--key")
        .arg(&mail.key)
        .arg("--cert")
        .arg(&mail.cert)
        .args(["--tsa", &url, "--json"]);
    if let Some(j) = plan.jobs {
        sign.args(["--jobs", &j.to_string()]);
    }
    let started = Instant::now();
    let out = sign.output().context("cannot run stamp")?;
    let sign_secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "stamp email sign failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The Python peer over the same statements.
    let started = Instant::now();
    let peer = Command::new(&plan.python)
        .arg(crate_dir().join("py/email_peer.py"))
        .arg(&inbox)
        .arg(&mail.key)
        .arg(&mail.cert)
        .arg(&url)
        .arg(&keys.chain_file)
        .output()
        .context("cannot run the Python peer")?;
    let peer_wall = started.elapsed().as_secs_f64();
    if !peer.status.success() {
        bail!(
            "the Python peer failed: {}",
            String::from_utf8_lossy(&peer.stderr)
        );
    }
    let peer_loop = String::from_utf8_lossy(&peer.stdout)
        .split("\"seconds\": ")
        .nth(1)
        .and_then(|s| s.trim().trim_end_matches('}').parse::<f64>().ok())
        .context("the Python peer printed no time")?;
    server.stop();

    // Verification: the CLI over every message, then the library on every core.
    let signed: Vec<PathBuf> = (0..plan.count)
        .map(|n| outbox.join(format!("{n:06}.eml")))
        .collect();
    let started = Instant::now();
    let verify = Command::new(&plan.stamp_bin)
        .arg("verify")
        .args(&signed)
        .arg("--trust")
        .arg(&mail.ca)
        .arg("--tsa-trust")
        .arg(&keys.chain_file)
        .output()
        .context("cannot run stamp verify")?;
    let verify_secs = started.elapsed().as_secs_f64();
    if !verify.status.success() {
        bail!(
            "stamp verify did not verify every message: {}",
            String::from_utf8_lossy(&verify.stdout)
                .lines()
                .filter(|l| l.contains("NOT VERIFIED") || l.contains("reason"))
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let (lib_secs, threads) = verify_in_process(&signed, &mail.ca, &keys.chain_file)?;

    let n = plan.count as f64;
    let ours = n / sign_secs;
    let peer_rate = n / peer_wall;
    println!();
    println!(
        "email: {} statements of ~10 KB, ECDSA P-256 signer, ECDSA P-256 TSA, durable SQLite archive",
        plan.count
    );
    println!("| what | messages/s | seconds | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| `stamp email sign --in-dir` (sign + timestamp + embed, wall incl. process start) | {ours:.0} | {sign_secs:.2} | 1.00 |"
    );
    println!(
        "| Python peer: cryptography PKCS7SignatureBuilder + rfc3161-client (wall) | {peer_rate:.0} | {peer_wall:.2} | ours / peer = {:.1} |",
        ours / peer_rate
    );
    println!(
        "| Python peer, its loop only | {:.0} | {peer_loop:.2} | ours / peer = {:.1} |",
        n / peer_loop,
        ours / (n / peer_loop)
    );
    println!(
        "| `stamp verify` of every message (one process, wall) | {:.0} | {verify_secs:.2} | |",
        n / verify_secs
    );
    println!(
        "| `pki::smime::verify_message`, {threads} threads in process | {:.0} | {lib_secs:.2} | |",
        n / lib_secs
    );
    Ok(())
}

/// Verifies every message with the library on every core; returns (seconds, threads).
fn verify_in_process(files: &[PathBuf], ca: &Path, tsa_root: &Path) -> Result<(f64, usize)> {
    let messages: Vec<Vec<u8>> = files
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<_>>()?;
    verify_messages(&messages, ca, tsa_root)
}

/// Verifies `messages` (signer path to `ca`, tokens to `tsa_root`) on every core; returns
/// (seconds, threads), or an error when any does not verify.
pub(crate) fn verify_messages(
    messages: &[Vec<u8>],
    ca: &Path,
    tsa_root: &Path,
) -> Result<(f64, usize)> {
    let opts = pki::smime::EmailVerifyOptions {
        trust: pki::cert::load_certificates(&std::fs::read(ca)?)?,
        tsa_trust: Some(pki::cert::load_certificates(&std::fs::read(tsa_root)?)?),
        ..Default::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(m) = messages.get(i) else { break };
                    if !pki::smime::verify_message("bench", m, &opts).verified {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let failed = failed.into_inner();
    if failed > 0 {
        bail!("{failed} messages did not verify in process");
    }
    Ok((secs, threads))
}

/// What a signing benchmark runs against: a release `tsa` (ECDSA P-256 development PKI, durable
/// SQLite archive) and an openssl-made signer.
pub(crate) struct Signing {
    pub(crate) keys: KeySet,
    pub(crate) server: Server,
    pub(crate) url: String,
    pub(crate) mail: MailFiles,
}

/// Checks that `stamp_bin` exists, then starts the authority and makes the signer.
pub(crate) fn start_signing(settings: &Settings, stamp_bin: &Path, work: &Path) -> Result<Signing> {
    if !stamp_bin.is_file() {
        bail!(
            "no stamp binary at {}; build it with `cargo build --release -p stamp` or pass \
             --stamp-bin",
            stamp_bin.display()
        );
    }
    let keys = KeySet::create(KeyKind::EcdsaP256, &work.join("tsa-keys"), settings)?;
    let run_dir = work.join("tsa-run");
    std::fs::create_dir_all(&run_dir)?;
    let server = Server::start(settings, &keys, &run_dir, &run_dir.join("archive.db"))?;
    let url = format!("http://{}/", server.addr);
    let mail = mail_pki(work, &settings.openssl_bin)?;
    Ok(Signing {
        keys,
        server,
        url,
        mail,
    })
}

/// The bench crate's directory (for its Python peers).
pub(crate) fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The openssl-made mail PKI: the CA and the signer.
pub(crate) struct MailFiles {
    /// Where the files are.
    pub(crate) dir: PathBuf,
    /// The CA's certificate (PEM), the trust anchor of verification.
    pub(crate) ca: PathBuf,
    /// The CA's key (PEM), to issue more certificates.
    pub(crate) ca_key: PathBuf,
    /// The signer's key (PKCS#8 PEM).
    pub(crate) key: PathBuf,
    /// The signer's certificate (PEM).
    pub(crate) cert: PathBuf,
}

/// Runs `openssl ARGS` in `dir`; an error carries openssl's message.
pub(crate) fn openssl(openssl: &Path, dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .context("cannot run openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A mail CA and an ECDSA P-256 signer for bank@example.com (emailProtection), by openssl.
pub(crate) fn mail_pki(work: &Path, openssl: &Path) -> Result<MailFiles> {
    let dir = work.join("mail");
    std::fs::create_dir_all(&dir)?;
    let run = |args: &[&str]| self::openssl(openssl, &dir, args);
    std::fs::write(
        dir.join("ee.ext"),
        "subjectAltName=email:bank@example.com\nextendedKeyUsage=emailProtection\n\
         keyUsage=critical,digitalSignature,nonRepudiation\nbasicConstraints=CA:FALSE\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(ec);
    ca_args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Bench Mail CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca_args)?;
    let mut ee_args = vec!["req"];
    ee_args.extend(ec);
    ee_args.extend([
        "-keyout",
        "bank.key",
        "-out",
        "bank.csr",
        "-subj",
        "/CN=bank@example.com",
    ]);
    run(&ee_args)?;
    run(&[
        "x509",
        "-req",
        "-in",
        "bank.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "4242",
        "-days",
        "30",
        "-extfile",
        "ee.ext",
        "-out",
        "bank.pem",
    ])?;
    Ok(MailFiles {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        key: dir.join("bank.key"),
        cert: dir.join("bank.pem"),
        dir,
    })
}

/// Writes `count` statements into `work/in` (000000.eml, ...); returns the directory.
pub(crate) fn write_statements(work: &Path, count: usize) -> Result<PathBuf> {
    let inbox = work.join("in");
    std::fs::create_dir_all(&inbox)?;
    let mut bytes = 0usize;
    for n in 0..count {
        let s = statement(n);
        bytes += s.len();
        std::fs::write(inbox.join(format!("{n:06}.eml")), s)?;
    }
    eprintln!(
        "tsa-bench: {count} statements, {:.1} KB on average",
        bytes as f64 / count.max(1) as f64 / 1024.0
    );
    Ok(inbox)
}

/// A bank statement of about 10 KB: headers, a greeting, 120 transaction lines, 8-bit text.
fn statement(n: usize) -> Vec<u8> {
    let mut s = format!(
        "From: Example Bank <bank@example.com>\nTo: customer{n}@example.org\n\
         Subject: Statement {n}, November 2026\nDate: Thu, 03 Dec 2026 10:00:00 +0000\n\
         Message-ID: <statement-{n}@bank.example.com>\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
         Dear customer {n},\n\nyour statement for account CH93 0076 2011 6238 {n:05}:\n\n"
    );
    for day in 0..120 {
        s.push_str(&format!(
            "2026-11-{:02}  Überweisung Referenz {n:06}-{day:03}  Müller & Söhne GmbH   {:>9}.{:02} EUR\n",
            day % 30 + 1,
            (n * 37 + day * 101) % 10_000,
            day % 100
        ));
    }
    s.push_str("\nKind regards,\nExample Bank\n");
    s.into_bytes()
}
