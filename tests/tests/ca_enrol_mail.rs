//! Enrolment through a real SMTP server on loopback (aiosmtpd from PyPI, writing a Maildir):
//! `stamp enroll` asks the CA to mail a one-time code, the code arrives by mail, the user
//! pastes it, the CMP exchange issues a signing and an encryption certificate, and the
//! signing certificate signs a timestamped email that `stamp verify` accepts. The mailed code
//! works once; `POST /enroll/start` is rate-limited per address and per client with a 429 and
//! Retry-After.

use sigillum_tests::{TsaOptions, TsaServer, free_port, stamp};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// aiosmtpd on a free port, delivering into a Maildir; killed when dropped.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        let maildir = dir.join("maildir");
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 -m aiosmtpd (installed by scripts/test.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    /// The messages delivered so far.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// Waits for the `n`th message.
    fn wait_for(&self, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let msgs = self.messages();
            if msgs.len() >= n {
                return msgs.into_iter().last().unwrap_or_default();
            }
            assert!(Instant::now() < deadline, "no mail arrived in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn line<'a>(mail: &'a str, key: &str) -> &'a str {
    mail.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} line in the mail:\n{mail}"))
}

fn server_with_mail(smtp: &Smtp) -> TsaServer {
    server_with_mail_and(smtp, "codes_per_address = 3")
}

/// A server mailing through `smtp`, with `ca_settings` (lines of `[ca]`).
fn server_with_mail_and(smtp: &Smtp, ca_settings: &str) -> TsaServer {
    TsaServer::start_with(TsaOptions {
        config: Some(format!(
            "allow_unsynced_clock = true\n\n[ca]\n{ca_settings}\n\n[ca.smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"ca@sigillum.example\"\nsecurity = \"none\"\n",
            smtp.port
        )),
        ..Default::default()
    })
}

/// `POST /enroll/start` with the JSON `body`: status, Retry-After and the body.
fn enroll_start(server: &TsaServer, body: &str) -> (u16, Option<String>, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut r = agent
        .post(format!("{}enroll/start", server.url()))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .expect("POST /enroll/start");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn stamp_enroll_gets_its_code_by_mail_and_the_certificate_signs_a_verified_email() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = Smtp::start(dir.path());
    let server = server_with_mail(&smtp);
    let base = server.url().trim_end_matches('/').to_owned();
    let out = dir.path().join("keys");
    let pw = dir.path().join("p12-password");
    std::fs::write(&pw, "correct horse\n").expect("password file");
    let mut child = Command::new(sigillum_tests::stamp_bin())
        .args([
            "enroll",
            "--server",
            &base,
            "--email",
            "Alice@Bank.Example",
            "--out",
        ])
        .arg(&out)
        .arg("--pass-file")
        .arg(&pw)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stamp enroll");
    let mail = smtp.wait_for(1);
    assert!(
        mail.contains("To: alice@bank.example")
            && mail.contains("Subject: Your Sigillum enrolment code"),
        "{mail}"
    );
    let reference = line(&mail, "reference:").to_owned();
    let secret = line(&mail, "secret:").to_owned();
    {
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "reference: {reference}\nsecret: {secret}\n").expect("paste the code");
    }
    let done = child.wait_with_output().expect("stamp enroll ends");
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        done.status.success(),
        "stamp enroll failed:\n{stdout}\n{stderr}\n{}",
        server.log()
    );
    let key = out.join("alice@bank.example.key");
    let cert = out.join("alice@bank.example.pem");
    let ca = out.join("ca.pem");
    let p12 = out.join("alice@bank.example.p12");
    for f in [
        &key,
        &out.join("alice@bank.example-encryption.key"),
        &p12,
        &out.join("alice@bank.example-encryption.p12"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).expect("key file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    // The certificate binds the proven address, and openssl agrees it is an S/MIME signer.
    let text = sigillum_tests::openssl(
        dir.path(),
        &[
            "x509",
            "-in",
            cert.to_str().unwrap_or_default(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(
        text.stdout.contains("email:alice@bank.example"),
        "{}",
        text.stdout
    );
    sigillum_tests::openssl(
        dir.path(),
        &[
            "verify",
            "-CAfile",
            ca.to_str().unwrap_or_default(),
            "-purpose",
            "smimesign",
            cert.to_str().unwrap_or_default(),
        ],
    )
    .assert_ok();

    // openssl reads the PKCS#12 (MAC, PBES2 key bag, certificates), and its key is the PEM one.
    let pass_arg = format!("file:{}", pw.display());
    let p12_out = sigillum_tests::openssl(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            p12.to_str().unwrap_or_default(),
            "-passin",
            &pass_arg,
            "-nodes",
        ],
    );
    p12_out.assert_ok();
    let pem_key = sigillum_tests::openssl(
        dir.path(),
        &["pkey", "-in", key.to_str().unwrap_or_default()],
    );
    assert!(
        p12_out.stdout.contains(pem_key.stdout.trim())
            && p12_out.stdout.matches("BEGIN CERTIFICATE").count() == 2,
        "{}",
        p12_out.stdout
    );
    assert!(
        p12_out
            .stdout
            .contains("friendlyName: alice@bank.example (signing)"),
        "{}",
        p12_out.stdout
    );
    let wrong = sigillum_tests::openssl(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            p12.to_str().unwrap_or_default(),
            "-passin",
            "pass:wrong",
            "-noout",
        ],
    );
    assert!(!wrong.ok(), "a wrong password opened the PKCS#12");

    // The certificate signs a timestamped statement that stamp verify accepts (the key read
    // from the PKCS#12 by stamp's own loader).
    let eml = dir.path().join("statement.eml");
    std::fs::write(
        &eml,
        "From: alice@bank.example\r\nTo: bob@example.com\r\nSubject: Statement\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBalance: 100 EUR\r\n",
    )
    .expect("write eml");
    let signed = dir.path().join("signed.eml");
    stamp(
        dir.path(),
        &[
            "email",
            "sign",
            eml.to_str().unwrap_or_default(),
            "--key",
            p12.to_str().unwrap_or_default(),
            "--pass-file",
            pw.to_str().unwrap_or_default(),
            "--tsa",
            &server.url(),
            "-o",
            signed.to_str().unwrap_or_default(),
        ],
    )
    .assert_ok();
    stamp(
        dir.path(),
        &[
            "verify",
            signed.to_str().unwrap_or_default(),
            "--trust",
            ca.to_str().unwrap_or_default(),
            "--tsa-trust",
            server.root_pem().to_str().unwrap_or_default(),
        ],
    )
    .assert_ok();

    // The mailed code worked once: a second enrolment with it is refused by the CA (exit 1),
    // and no key is left behind.
    let code = dir.path().join("code.txt");
    std::fs::write(&code, format!("reference: {reference}\nsecret: {secret}\n"))
        .expect("code file");
    let again = dir.path().join("again");
    let r = stamp(
        dir.path(),
        &[
            "enroll",
            "--server",
            &base,
            "--email",
            "alice@bank.example",
            "--out",
            again.to_str().unwrap_or_default(),
            "--code-file",
            code.to_str().unwrap_or_default(),
        ],
    );
    r.assert_code(1);
    assert!(
        r.stderr.contains("already used") && r.stderr.contains("notAuthorized"),
        "{}",
        r.stderr
    );
    assert!(!again.join("alice@bank.example.key").exists());

    // The directory serves both certificates to anyone.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = agent
        .get(format!("{base}/directory/alice@bank.example"))
        .call()
        .expect("directory");
    assert_eq!(resp.status().as_u16(), 200);
    let pem = resp.body_mut().read_to_string().expect("body");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "{pem}");
}

#[test]
fn enrolment_codes_are_rate_limited_per_address_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = Smtp::start(dir.path());
    let server = server_with_mail(&smtp);
    let post = |body: &str| enroll_start(&server, body);
    for n in 1..=3 {
        let (status, _, body) = post(r#"{"email": "carol@bank.example"}"#);
        assert_eq!(status, 202, "code {n}: {body}");
        smtp.wait_for(n);
    }
    let (status, retry, body) = post(r#"{"email": "carol@bank.example"}"#);
    assert_eq!(status, 429, "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=3600).contains(&retry), "{retry}");
    assert!(
        body.contains("request_id") && body.contains("address"),
        "{body}"
    );
    assert_eq!(smtp.messages().len(), 3, "the refused request sent no mail");
    // Another address is not held back by carol's limit; a bad address is a 400.
    assert_eq!(post(r#"{"email": "dave@bank.example"}"#).0, 202);
    let (status, _, body) = post(r#"{"email": "dave@bank.example\r\nBcc: x@evil.example"}"#);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn enrolment_codes_are_rate_limited_per_client_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = Smtp::start(dir.path());
    // Two codes per client in half an hour; no address comes near its own limit of 3.
    let server = server_with_mail_and(&smtp, "codes_per_client = 2\ncode_window_secs = 1800");
    let post = |email: &str| enroll_start(&server, &format!(r#"{{"email": "{email}"}}"#));
    let started = Instant::now();
    for (n, email) in ["erin@bank.example", "frank@bank.example"]
        .into_iter()
        .enumerate()
    {
        let (status, _, body) = post(email);
        assert_eq!(status, 202, "{email}: {body}");
        smtp.wait_for(n + 1);
    }
    // A third address from the same client, and an address with one code of its own.
    for email in ["grace@bank.example", "erin@bank.example"] {
        let (status, retry, body) = post(email);
        let elapsed = started.elapsed().as_secs() + 1;
        assert_eq!(status, 429, "{email}: {body}");
        let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
        // The client's first code leaves the window 1800 s after it was made, at most
        // `elapsed` s ago.
        assert!(
            (1800 - elapsed..=1800).contains(&retry),
            "{email}: Retry-After {retry} after {elapsed} s"
        );
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            json["error"].as_str(),
            Some(
                format!("too many enrolment codes for this client; try again in {retry} s")
                    .as_str()
            ),
            "{email}: {json}"
        );
        assert!(
            json["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{email}: {json}"
        );
    }
    assert_eq!(
        smtp.messages().len(),
        2,
        "the refused requests sent no mail"
    );
}

#[test]
fn stamp_renew_replaces_the_key_and_stamp_revoke_revokes_the_certificate() {
    let server = TsaServer::start();
    let base = server.url().trim_end_matches('/').to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let code = sigillum_tests::run(
        Command::new(sigillum_tests::tsa_bin())
            .arg("enroll-code")
            .arg("--data-dir")
            .arg(server.data_dir())
            .args(["--email", "zoe@example.org"])
            .env_remove("TSA_CONFIG"),
    );
    code.assert_ok();
    std::fs::write(d.join("code.txt"), &code.stdout).expect("code file");
    stamp(
        d,
        &[
            "enroll",
            "--server",
            &base,
            "--email",
            "zoe@example.org",
            "--out",
            "keys",
            "--code-file",
            "code.txt",
            "--no-pkcs12",
        ],
    )
    .assert_ok();
    let keys = d.join("keys");
    let (key, cert, ca) = (
        keys.join("zoe@example.org.key"),
        keys.join("zoe@example.org.pem"),
        keys.join("ca.pem"),
    );
    let serial = |p: &Path| {
        let r = sigillum_tests::openssl(
            d,
            &[
                "x509",
                "-in",
                p.to_str().unwrap_or_default(),
                "-noout",
                "-serial",
            ],
        );
        r.stdout.trim().to_owned()
    };
    let old_serial = serial(&cert);
    let old_key = std::fs::read(&key).expect("key");
    let current = |extra: &[&str]| {
        let mut args = vec![
            "--server",
            &base,
            "--key",
            key.to_str().unwrap_or_default(),
            "--cert",
            cert.to_str().unwrap_or_default(),
            "--ca",
            ca.to_str().unwrap_or_default(),
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |cmd: &str, extra: &[&str]| {
        let mut args = vec![cmd.to_owned()];
        args.extend(current(extra));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        stamp(d, &refs)
    };
    // renew: a new key (0600) and certificate; the old ones kept as .old.
    run("renew", &[]).assert_ok();
    assert_ne!(serial(&cert), old_serial);
    assert_ne!(std::fs::read(&key).expect("key"), old_key);
    assert_eq!(
        std::fs::read(keys.join("zoe@example.org.key.old")).expect("old key"),
        old_key
    );
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
            0o600
        );
    }
    sigillum_tests::openssl(
        d,
        &[
            "verify",
            "-CAfile",
            ca.to_str().unwrap_or_default(),
            cert.to_str().unwrap_or_default(),
        ],
    )
    .assert_ok();
    // A second renewal keeps both earlier keys and certificates: `.old` is never overwritten.
    let renewed_key = std::fs::read(&key).expect("key");
    let renewed_serial = serial(&cert);
    run("renew", &[]).assert_ok();
    let kept = |name: &str| std::fs::read(keys.join(name)).expect("kept key");
    assert_eq!(kept("zoe@example.org.key.old"), old_key);
    assert_eq!(kept("zoe@example.org.key.old.1"), renewed_key);
    assert_eq!(serial(&keys.join("zoe@example.org.pem.old")), old_serial);
    assert_eq!(
        serial(&keys.join("zoe@example.org.pem.old.1")),
        renewed_serial
    );
    assert_ne!(serial(&cert), renewed_serial);
    // revoke: OCSP says revoked, with the reason; a second revoke is refused (exit 1).
    run("revoke", &["--reason", "superseded"]).assert_ok();
    let url = format!("{base}/ocsp");
    let o = sigillum_tests::openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap_or_default(),
            "-cert",
            cert.to_str().unwrap_or_default(),
            "-url",
            &url,
            "-CAfile",
            ca.to_str().unwrap_or_default(),
        ],
    );
    assert!(
        o.stdout.contains(": revoked") && o.stdout.contains("superseded"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    let again = run("revoke", &[]);
    again.assert_code(1);
    assert!(again.stderr.contains("certRevoked"), "{}", again.stderr);
    let bad = run("revoke", &["--reason", "onHold"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("keyCompromise"), "{}", bad.stderr);
}
