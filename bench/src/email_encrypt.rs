//! `tsa-bench --email-encrypt`: signed, timestamped and encrypted statements per second, and
//! decrypted ones, in one run against one authority:
//!
//! 1. the `--email` setup (a release `tsa` with the ECDSA P-256 development PKI and a durable
//!    SQLite archive on loopback, an openssl-made mail CA and ECDSA P-256 signer, statements of
//!    about 10 KB), plus two encryption certificates from the same CA: RSA-2048 for bob
//!    (keyEncipherment) and P-256 for carol (keyAgreement), emailProtection, address in the SAN;
//! 2. `stamp email sign --in-dir --out-dir --encrypt` to both (AuthEnvelopedData, AES-256-GCM:
//!    one RSA key transport and one ECDH agreement per message), wall clock including process
//!    start, with the CPU of `stamp`, of the authority and of everything else on the machine
//!    (after an unmeasured warm-up over 200 statements); then, to see where the time goes, the
//!    same without `--encrypt`, and with `--encrypt --no-timestamp`;
//! 3. the Python peer (bench/py/email_encrypt_peer.py): cryptography's PKCS7SignatureBuilder,
//!    rfc3161-client, PKCS7EnvelopeBuilder to the RSA recipient only (cryptography has no key
//!    agreement), then `pkcs7_decrypt_smime` of each, on one thread;
//! 4. `pki::smime::decrypt_message` over every encrypted output on every core, once with the
//!    RSA key and once with the P-256 key. Every message must decrypt, both keys must give the
//!    same bytes, each must carry its statement's Subject again (outside it reads "[...]"), and
//!    each must verify (signature, token, both paths, From binding); then `stamp email decrypt`
//!    of one message, process start included;
//! 5. one table with the ratios, and the issue's targets printed, not asserted.

use crate::Settings;
use crate::email::{
    MailFiles, Signing, crate_dir, openssl, start_signing, verify_messages, write_statements,
};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The issue's target: statements signed, timestamped and encrypted per second on this machine.
const TARGET_RATE: f64 = 2000.0;
/// The issue's target: times the Python peer.
const TARGET_RATIO: f64 = 10.0;
/// Statements of the unmeasured warm-up run.
const WARM_UP: usize = 200;
/// Least time of in-process decryption per key (whole passes over the messages).
const MIN_DECRYPT: std::time::Duration = std::time::Duration::from_secs(1);
/// Runs of `stamp email decrypt` on one message; the median is printed.
const SINGLE_DECRYPT_RUNS: usize = 5;

/// What the encrypted-email benchmark is told.
pub struct EncryptPlan {
    /// Statements to sign and encrypt.
    pub count: usize,
    /// The `stamp` binary.
    pub stamp_bin: PathBuf,
    /// The Python interpreter of the peer.
    pub python: String,
    /// `--jobs` of `stamp email sign` (`None`: its default).
    pub jobs: Option<usize>,
}

/// An encryption recipient made by openssl.
struct RecipientFiles {
    /// Its address (the certificate's SAN, and `--to`).
    address: &'static str,
    /// What its key is, for the table.
    label: &'static str,
    /// The key (PKCS#8 PEM).
    key: PathBuf,
    /// The certificate (PEM).
    cert: PathBuf,
}

/// One `stamp email sign` run.
struct SignRun {
    /// Wall clock, process start included.
    secs: f64,
    /// CPU seconds of `stamp`.
    stamp_cpu: Option<f64>,
    /// CPU seconds of the authority.
    tsa_cpu: Option<f64>,
    /// Cores busy with everything else on the machine (concurrent builds, say).
    others: Option<f64>,
}

/// Runs the benchmark and prints its table.
pub fn run(settings: &Settings, plan: &EncryptPlan, work: &Path) -> Result<()> {
    if plan.count == 0 {
        bail!("--email-count must be at least 1 for --email-encrypt");
    }
    let Signing {
        keys,
        mut server,
        url,
        mail,
    } = start_signing(settings, &plan.stamp_bin, work)?;
    let [bob, carol] = recipients(&mail, &settings.openssl_bin)?;
    let inbox = write_statements(work, plan.count)?;
    let encrypt_args: Vec<String> = [
        "--encrypt",
        "--recipient-cert",
        &bob.cert.to_string_lossy(),
        "--recipient-cert",
        &carol.cert.to_string_lossy(),
        "--to",
        bob.address,
        "--to",
        carol.address,
    ]
    .map(str::to_owned)
    .to_vec();
    let sign = |out: &str, extra: &[String]| {
        eprintln!("tsa-bench: stamp email sign {}", extra.join(" "));
        sign_run(
            plan,
            &inbox,
            &work.join(out),
            &mail,
            &url,
            extra,
            server.pid(),
        )
    };

    // Warm-up, not measured: the authority's first tokens (archive, caches) and the page cache
    // (binaries, statements) would otherwise count against whichever run comes first.
    let warm_inbox = work.join("warm-in");
    std::fs::create_dir_all(&warm_inbox)?;
    for n in 0..plan.count.min(WARM_UP) {
        let name = format!("{n:06}.eml");
        std::fs::copy(inbox.join(&name), warm_inbox.join(&name))?;
    }
    eprintln!("tsa-bench: warm-up, {} statements", plan.count.min(WARM_UP));
    sign_run(
        plan,
        &warm_inbox,
        &work.join("warm-out"),
        &mail,
        &url,
        &encrypt_args,
        server.pid(),
    )?;
    let encrypted_run = sign("out-encrypted", &encrypt_args)?;
    let signed_run = sign("out-signed", &[])?;
    let mut no_tsa_args = encrypt_args.clone();
    no_tsa_args.push("--no-timestamp".to_owned());
    let no_tsa_run = sign("out-no-timestamp", &no_tsa_args)?;

    eprintln!("tsa-bench: the Python peer");
    let started = Instant::now();
    let peer = Command::new(&plan.python)
        .arg(crate_dir().join("py/email_encrypt_peer.py"))
        .arg(&inbox)
        .arg(&mail.key)
        .arg(&mail.cert)
        .arg(&url)
        .arg(&keys.chain_file)
        .arg(&bob.cert)
        .arg(&bob.key)
        .output()
        .context("cannot run the Python peer")?;
    let peer_wall = started.elapsed().as_secs_f64();
    if !peer.status.success() {
        bail!(
            "the Python peer failed: {}",
            String::from_utf8_lossy(&peer.stderr)
        );
    }
    let peer_out = String::from_utf8_lossy(&peer.stdout);
    let (Some(peer_encrypt), Some(peer_decrypt)) = (
        json_number(&peer_out, "encrypt_seconds"),
        json_number(&peer_out, "decrypt_seconds"),
    ) else {
        bail!("the Python peer printed no times: {peer_out}");
    };
    server.stop();

    // Decryption in process, every core, each key in turn.
    let encrypted_dir = work.join("out-encrypted");
    let encrypted: Vec<Vec<u8>> = (0..plan.count)
        .map(|n| {
            let path = encrypted_dir.join(format!("{n:06}.eml"));
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        })
        .collect::<Result<_>>()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("tsa-bench: decrypt_message on {threads} threads, RSA-2048 then P-256");
    let rsa = decrypt_all(&encrypted, &bob, threads)?;
    let ec = decrypt_all(&encrypted, &carol, threads)?;
    check_decrypted(&rsa.plain, &ec.plain)?;
    let (verify_secs, _) = verify_messages(&rsa.plain, &mail.ca, &keys.chain_file)?;
    eprintln!(
        "tsa-bench: every decrypted message verified ({:.0} messages/s)",
        rsa.plain.len() as f64 / verify_secs
    );
    let sample = encrypted_dir.join(format!("{:06}.eml", 0));
    let rsa_once = stamp_decrypt_ms(&plan.stamp_bin, &sample, &bob, work)?;
    let ec_once = stamp_decrypt_ms(&plan.stamp_bin, &sample, &carol, work)?;

    let n = plan.count as f64;
    let ours = n / encrypted_run.secs;
    let peer_rate = n / (peer_wall - peer_decrypt);
    let peer_loop = n / peer_encrypt;
    let peer_decrypt_rate = n / peer_decrypt;
    let threads_f = threads as f64;
    println!();
    println!(
        "email-encrypt: {} statements of ~10 KB; ECDSA P-256 signer; ECDSA P-256 TSA, durable \
         SQLite archive; recipients {} and {}; AES-256-GCM; {threads} cores",
        plan.count, bob.label, carol.label
    );
    println!("| what | messages/s | seconds | ours ÷ peer |");
    println!("|---|---|---|---|");
    println!(
        "| `stamp email sign --encrypt` (sign + timestamp + encrypt to RSA-2048 and P-256, wall \
         incl. process start) | {ours:.0} | {:.2} | 1.00 |",
        encrypted_run.secs
    );
    println!(
        "| Python peer: sign + timestamp + encrypt to RSA-2048 only (wall incl. interpreter \
         start) | {peer_rate:.0} | {:.2} | {:.1} |",
        peer_wall - peer_decrypt,
        ours / peer_rate
    );
    println!(
        "| Python peer, its loop only | {peer_loop:.0} | {peer_encrypt:.2} | {:.1} |",
        ours / peer_loop
    );
    let rate = |d: &Decrypted| (d.passes * plan.count) as f64 / d.secs;
    let pass_secs = |d: &Decrypted| d.secs / d.passes as f64;
    println!(
        "| `decrypt_message`, RSA-2048 key, {threads} threads in process (seconds: one pass of \
         {}) | {:.0} | {:.2} | {:.1} ({:.1} per thread) |",
        rsa.passes,
        rate(&rsa),
        pass_secs(&rsa),
        rate(&rsa) / peer_decrypt_rate,
        rate(&rsa) / threads_f / peer_decrypt_rate
    );
    println!(
        "| `decrypt_message`, P-256 key, {threads} threads in process (seconds: one pass of {}) \
         | {:.0} | {:.2} | (the peer cannot) |",
        ec.passes,
        rate(&ec),
        pass_secs(&ec)
    );
    println!(
        "| Python peer: `pkcs7_decrypt_smime`, RSA-2048 key, 1 thread | {peer_decrypt_rate:.0} | \
         {peer_decrypt:.2} | |"
    );
    println!(
        "| for comparison: `stamp email sign` without --encrypt (sign + timestamp) | {:.0} | \
         {:.2} | |",
        n / signed_run.secs,
        signed_run.secs
    );
    println!(
        "| for comparison: `stamp email sign --encrypt --no-timestamp` (sign + encrypt) | {:.0} \
         | {:.2} | |",
        n / no_tsa_run.secs,
        no_tsa_run.secs
    );
    for (label, ms) in [("RSA-2048", rsa_once), ("P-256", ec_once)] {
        println!(
            "| `stamp email decrypt` of one message, {label} key (median of \
             {SINGLE_DECRYPT_RUNS}, incl. process start) | {:.0} | {:.4} | |",
            1000.0 / ms,
            ms / 1000.0
        );
    }
    println!();
    println!("CPU of the `stamp email sign` runs (others: every other process on the machine)");
    println!("| run | stamp µs/msg | tsa µs/msg | others, cores |");
    println!("|---|---|---|---|");
    let per_msg = |cpu: Option<f64>| cpu.map_or("?".to_owned(), |c| format!("{:.0}", c / n * 1e6));
    for (label, r) in [
        ("--encrypt", &encrypted_run),
        ("without --encrypt", &signed_run),
        ("--encrypt --no-timestamp", &no_tsa_run),
    ] {
        println!(
            "| {label} | {} | {} | {} |",
            per_msg(r.stamp_cpu),
            per_msg(r.tsa_cpu),
            r.others.map_or("?".to_owned(), |o| format!("{o:.2}"))
        );
    }
    println!();
    println!("Targets (printed, not asserted):");
    println!(
        "- at least {TARGET_RATE:.0} statements/s signed + timestamped + encrypted: {ours:.0}/s, {}",
        if ours >= TARGET_RATE {
            "met".to_owned()
        } else {
            format!("missed by {:.0}%", (1.0 - ours / TARGET_RATE) * 100.0)
        }
    );
    println!(
        "- at least {TARGET_RATIO:.0}x the Python peer: {:.1}x its wall time, {:.1}x its loop \
         (the peer encrypts to one RSA recipient, embeds no token and writes nothing)",
        ours / peer_rate,
        ours / peer_loop
    );
    Ok(())
}

/// Two encryption certificates from the mail CA: bob's RSA-2048 and carol's P-256.
fn recipients(mail: &MailFiles, openssl_bin: &Path) -> Result<[RecipientFiles; 2]> {
    let make = |name: &str,
                address: &'static str,
                label: &'static str,
                newkey: &[&str],
                usage: &str,
                serial: &str|
     -> Result<RecipientFiles> {
        std::fs::write(
            mail.dir.join(format!("{name}.ext")),
            format!(
                "subjectAltName=email:{address}\nextendedKeyUsage=emailProtection\n\
                 keyUsage=critical,{usage}\nbasicConstraints=CA:FALSE\n"
            ),
        )?;
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={address}");
        let mut req = vec!["req"];
        req.extend(newkey);
        req.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
        openssl(openssl_bin, &mail.dir, &req)?;
        let ext = format!("{name}.ext");
        openssl(
            openssl_bin,
            &mail.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &mail.ca.to_string_lossy(),
                "-CAkey",
                &mail.ca_key.to_string_lossy(),
                "-set_serial",
                serial,
                "-days",
                "30",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        )?;
        Ok(RecipientFiles {
            address,
            label,
            key: mail.dir.join(key),
            cert: mail.dir.join(cert),
        })
    };
    Ok([
        make(
            "bob",
            "bob@example.org",
            "RSA-2048 (bob)",
            &["-newkey", "rsa:2048"],
            "keyEncipherment",
            "4343",
        )?,
        make(
            "carol",
            "carol@example.org",
            "P-256 (carol)",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "keyAgreement",
            "4444",
        )?,
    ])
}

/// `stamp email sign --in-dir INBOX --out-dir OUT` with `extra` arguments, timed, with the
/// CPU of each party.
fn sign_run(
    plan: &EncryptPlan,
    inbox: &Path,
    out: &Path,
    mail: &MailFiles,
    url: &str,
    extra: &[String],
    server_pid: u32,
) -> Result<SignRun> {
    let mut sign = Command::new(&plan.stamp_bin);
    sign.args(["email", "sign", "--in-dir"])
        .arg(inbox)
        .arg("--out-dir")
        .arg(out)
        .arg("--key")
        .arg(&mail.key)
        .arg("--cert")
        .arg(&mail.cert)
        .args(["--tsa", url, "--json"])
        .args(extra);
    if let Some(j) = plan.jobs {
        sign.args(["--jobs", &j.to_string()]);
    }
    let server_stat = format!("/proc/{server_pid}/stat");
    let ticks = || {
        (
            crate::server::machine_busy_ticks(),
            self_and_children_ticks(),
            crate::server::cpu_ticks(&server_stat),
        )
    };
    let before = ticks();
    let started = Instant::now();
    let result = sign.output().context("cannot run stamp")?;
    let secs = started.elapsed().as_secs_f64();
    let after = ticks();
    if !result.status.success() {
        bail!(
            "stamp email sign {} failed: {}{}",
            extra.join(" "),
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let delta = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
    let seconds = |t: u64| t as f64 / crate::server::CLOCK_TICKS_PER_SEC;
    let stamp = delta(after.1, before.1);
    let tsa = delta(after.2, before.2);
    let others = (|| {
        let busy = delta(after.0, before.0)?;
        Some(seconds(busy.saturating_sub(stamp? + tsa?)) / secs)
    })();
    Ok(SignRun {
        secs,
        stamp_cpu: stamp.map(seconds),
        tsa_cpu: tsa.map(seconds),
        others,
    })
}

/// utime + stime + cutime + cstime of this process (its children once waited for).
fn self_and_children_ticks() -> Option<u64> {
    crate::server::stat_ticks("/proc/self/stat", 14..18)
}

/// Decryption of every message with one key.
struct Decrypted {
    /// Whole passes over the messages, at least [`MIN_DECRYPT`] of them in all.
    passes: usize,
    /// Their time.
    secs: f64,
    /// The first pass's messages, in order.
    plain: Vec<Vec<u8>>,
}

/// Decrypts every message with `recipient`'s key on `threads` threads, in whole passes for at
/// least [`MIN_DECRYPT`]; an error when any does not decrypt.
fn decrypt_all(
    messages: &[Vec<u8>],
    recipient: &RecipientFiles,
    threads: usize,
) -> Result<Decrypted> {
    let mut no_password = || -> std::io::Result<zeroize::Zeroizing<String>> {
        Err(std::io::ErrorKind::Unsupported.into())
    };
    let key_bytes = zeroize::Zeroizing::new(
        std::fs::read(&recipient.key)
            .with_context(|| format!("cannot read {}", recipient.key.display()))?,
    );
    let loaded = pki::keyfile::load_decryption_key(&key_bytes, &mut no_password)
        .with_context(|| format!("cannot load {}", recipient.key.display()))?;
    let cert = pki::cert::load_certificates(&std::fs::read(&recipient.cert)?)?
        .into_iter()
        .next()
        .with_context(|| format!("no certificate in {}", recipient.cert.display()))?;
    let pass = || {
        decrypt_pass(messages, &loaded.decrypter, &cert, threads)
            .with_context(|| format!("a message did not decrypt with {}'s key", recipient.address))
    };
    let started = Instant::now();
    let plain = pass()?;
    let mut passes = 1;
    while started.elapsed() < MIN_DECRYPT {
        pass()?;
        passes += 1;
    }
    Ok(Decrypted {
        passes,
        secs: started.elapsed().as_secs_f64(),
        plain,
    })
}

/// One pass of [`decrypt_all`]: every message once, on `threads` threads.
fn decrypt_pass(
    messages: &[Vec<u8>],
    key: &dyn pki::envelope::Decrypter,
    cert: &[u8],
    threads: usize,
) -> Result<Vec<Vec<u8>>> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, pki::Result<Vec<u8>>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(m) = messages.get(i) else { break };
                    let plain = pki::smime::decrypt_message(m, key, Some(cert));
                    mine.push((i, plain.map(|d| d.message)));
                }
                done.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(mine);
            });
        }
    });
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_unstable_by_key(|(i, _)| *i);
    let failed = done.iter().filter(|(_, r)| r.is_err()).count();
    let mut plain = Vec::with_capacity(done.len());
    for (i, r) in done {
        match r {
            Ok(m) => plain.push(m),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{failed} of {} messages did not decrypt; the first, {i:06}.eml",
                        messages.len()
                    )
                });
            }
        }
    }
    Ok(plain)
}

/// Both keys gave the same message, and each carries its statement's real Subject again.
fn check_decrypted(rsa: &[Vec<u8>], ec: &[Vec<u8>]) -> Result<()> {
    if rsa.len() != ec.len() {
        bail!(
            "{} messages decrypted with RSA, {} with P-256",
            rsa.len(),
            ec.len()
        );
    }
    for (n, (a, b)) in rsa.iter().zip(ec).enumerate() {
        if a != b {
            bail!("{n:06}.eml: the RSA and the P-256 key decrypt to different messages");
        }
        let subject = format!("\r\nSubject: Statement {n}, ");
        let header_end = a
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(a.len());
        let header = &a[..header_end];
        if !header
            .windows(subject.len())
            .any(|w| w == subject.as_bytes())
        {
            bail!("{n:06}.eml: the decrypted message lacks its Subject (Statement {n})");
        }
    }
    Ok(())
}

/// `stamp email decrypt` of `input` with `recipient`'s key, process start included: the median
/// of [`SINGLE_DECRYPT_RUNS`] runs, in milliseconds.
fn stamp_decrypt_ms(
    stamp: &Path,
    input: &Path,
    recipient: &RecipientFiles,
    work: &Path,
) -> Result<f64> {
    let out = work.join("decrypted-once.eml");
    let mut times = Vec::with_capacity(SINGLE_DECRYPT_RUNS);
    for _ in 0..SINGLE_DECRYPT_RUNS {
        let started = Instant::now();
        let result = Command::new(stamp)
            .args(["email", "decrypt"])
            .arg(input)
            .arg("--output")
            .arg(&out)
            .arg("--key")
            .arg(&recipient.key)
            .arg("--cert")
            .arg(&recipient.cert)
            .arg("--force")
            .output()
            .context("cannot run stamp email decrypt")?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if !result.status.success() {
            bail!(
                "stamp email decrypt with {}'s key failed: {}",
                recipient.address,
                String::from_utf8_lossy(&result.stderr)
            );
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The number after `"key": ` in the peer's one JSON line.
fn json_number(text: &str, key: &str) -> Option<f64> {
    let rest = text.split(&format!("\"{key}\": ")).nth(1)?;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer's line is read back field by field, whatever their order.
    #[test]
    fn peer_times_are_read_back() {
        let line = r#"{"messages": 3, "encrypt_seconds": 1.5, "decrypt_seconds": 0.25}"#;
        assert_eq!(json_number(line, "encrypt_seconds"), Some(1.5));
        assert_eq!(json_number(line, "decrypt_seconds"), Some(0.25));
        assert_eq!(json_number(line, "messages"), Some(3.0));
        assert_eq!(json_number(line, "seconds"), None);
    }
}
