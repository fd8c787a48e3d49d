//! The `/admin/` routes behind HTTPS client certificates: with `[tls] client_ca` the listener
//! asks for an optional client certificate; an allowlisted one (by subject, or by issuer) may
//! fetch enrolment codes and list a signing certificate's tokens; no certificate, plain HTTP,
//! a certificate not listed, or one from another CA (refused in the handshake) may not. The
//! public routes need no certificate.

use sigillum_tests::openssl_ca::path_str as p;
use sigillum_tests::{TsaOptions, TsaServer, free_port, openssl, run};
use std::path::Path;
use std::process::Command;

/// A server certificate for 127.0.0.1, a client CA with two clients (`branch-7`, listed by
/// subject, and `auditor`, not listed), and a stranger's certificate from another CA.
fn pki(dir: &Path) {
    let ok = |args: &[&str]| {
        openssl(dir, args).assert_ok();
    };
    sigillum_tests::openssl_ca::https_server_cert(dir);
    for ca in ["clients", "strangers"] {
        sigillum_tests::openssl_ca::self_signed_p256(
            dir,
            &format!("{ca}-ca.key"),
            &format!("{ca}-ca.pem"),
            &format!("/O=Bank/CN={ca} CA"),
            "2",
            &[],
        );
    }
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").expect("ext");
    for (name, ca) in [
        ("branch-7", "clients"),
        ("auditor", "clients"),
        ("stranger", "strangers"),
    ] {
        ok(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/O=Bank/CN={name}"),
        ]);
        ok(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}

fn start(dir: &Path, port: u16, allow: &str) -> TsaServer {
    start_with_ca(dir, port, "clients-ca.pem", allow)
}

/// An HTTPS listener on `port` whose client CAs are in `client_ca` (a file in `dir`), with the
/// `[tls]` lines `more`.
fn start_with_ca(dir: &Path, port: u16, client_ca: &str, more: &str) -> TsaServer {
    TsaServer::start_with(TsaOptions {
        config: Some(format!(
            "allow_unsynced_clock = true\n\n[tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\n\
             key = \"{}\"\nclient_ca = \"{}\"\n{more}\n",
            dir.join("https.pem").display(),
            dir.join("https.key").display(),
            dir.join(client_ca).display(),
        )),
        ..Default::default()
    })
}

/// curl with an optional client certificate: (exit code, HTTP status, body).
fn curl(
    dir: &Path,
    url: &str,
    client: Option<&str>,
    data: Option<&str>,
) -> (Option<i32>, String, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir).args([
        "-sS",
        "--cacert",
        "https.pem",
        "-o",
        "body.txt",
        "-w",
        "%{http_code}",
    ]);
    if let Some(c) = client {
        cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
    }
    if let Some(d) = data {
        cmd.args(["-H", "Content-Type: application/json", "--data", d]);
    }
    cmd.arg(url);
    let r = run(&mut cmd);
    let body = std::fs::read_to_string(dir.join("body.txt")).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join("body.txt"));
    (r.code, r.stdout.trim().to_owned(), body)
}

#[test]
fn admin_routes_need_an_allowlisted_client_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    pki(d);
    let port = free_port();
    let server = start(d, port, "admin_subjects = [\"CN=branch-7,O=Bank\"]");
    let https = format!("https://127.0.0.1:{port}");
    let code_req = Some(r#"{"email": "walk-in@example.org"}"#);
    // The listed client gets a code, with reference and secret.
    let (_, status, body) = curl(
        d,
        &format!("{https}/admin/enroll-code"),
        Some("branch-7"),
        code_req,
    );
    assert_eq!(status, "200", "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["email"], "walk-in@example.org");
    assert_eq!(json["secret"].as_str().map(str::len), Some(30), "{json}");
    // ...and lists the tokens of the TSA certificate.
    let tsa_sha = {
        let der = sigillum_tests::openssl_ca::pem_cert_der(&server.tsa_pem());
        let d = ring::digest::digest(&ring::digest::SHA256, &der);
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    // More tokens than one page of the archive's listing (1024): the body streams in pages,
    // each continuing after the last serial of the one before.
    let tokens = 1030;
    let request = sigillum_tests::der::ReqSpec::sha256(b"admin").encode();
    for _ in 0..tokens {
        sigillum_tests::post(&server.url(), "application/timestamp-query", &request);
    }
    let (exit, status, body) = curl(
        d,
        &format!("{https}/admin/archive/list?signer_cert_sha256={tsa_sha}"),
        Some("branch-7"),
        None,
    );
    assert_eq!(status, "200", "{body}");
    assert_eq!(exit, Some(0), "curl read the whole body");
    let serials: Vec<u64> = body
        .lines()
        .map(|l| {
            let hex = l.split(' ').next().expect("a serial");
            u64::from_str_radix(hex, 16).expect("hex serial")
        })
        .collect();
    assert_eq!(serials.len(), tokens, "{body}");
    assert!(
        serials.windows(2).all(|w| w[0] < w[1]),
        "in serial order, each once"
    );
    // Not listed, no certificate, plain HTTP: 403 with the reason and a request id.
    for (client, url, why) in [
        (
            Some("auditor"),
            format!("{https}/admin/enroll-code"),
            "is not in tls.admin_subjects",
        ),
        (
            None,
            format!("{https}/admin/enroll-code"),
            "need an HTTPS client certificate",
        ),
        (
            None,
            format!("{}admin/enroll-code", server.url()),
            "need an HTTPS client certificate",
        ),
    ] {
        let (_, status, body) = curl(d, &url, client, code_req);
        assert_eq!(status, "403", "{client:?} {url}: {body}");
        assert!(body.contains(why) && body.contains("request_id"), "{body}");
    }
    // A sub-CA under the client CA minting the allowlisted name: the handshake accepts the
    // path, the admin check does not (not issued directly by a client_ca certificate).
    let ok = |args: &[&str]| {
        openssl(d, args).assert_ok();
    };
    std::fs::write(
        d.join("subca.ext"),
        "basicConstraints = critical, CA:TRUE
keyUsage = keyCertSign
",
    )
    .expect("ext");
    ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "sub.key",
        "-out",
        "sub.csr",
        "-subj",
        "/O=Bank/CN=sub CA",
    ]);
    ok(&[
        "x509",
        "-req",
        "-in",
        "sub.csr",
        "-CA",
        "clients-ca.pem",
        "-CAkey",
        "clients-ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "subca.ext",
        "-out",
        "sub.pem",
    ]);
    ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "fake.key",
        "-out",
        "fake.csr",
        "-subj",
        "/O=Bank/CN=branch-7",
    ]);
    ok(&[
        "x509",
        "-req",
        "-in",
        "fake.csr",
        "-CA",
        "sub.pem",
        "-CAkey",
        "sub.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "client.ext",
        "-out",
        "fake-leaf.pem",
    ]);
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(d.join("fake-leaf.pem")).expect("leaf"),
        std::fs::read_to_string(d.join("sub.pem")).expect("sub")
    );
    std::fs::write(d.join("fake.pem"), chain).expect("chain");
    let (_, status, body) = curl(
        d,
        &format!("{https}/admin/enroll-code"),
        Some("fake"),
        code_req,
    );
    assert_eq!(status, "403", "{body}");
    assert!(
        body.contains("not issued directly by a tls.client_ca"),
        "{body}"
    );
    // A form post (what a cross-site page could send) is refused.
    let r = run(Command::new("curl")
        .current_dir(d)
        .args([
            "-sS",
            "--cacert",
            "https.pem",
            "--cert",
            "branch-7.pem",
            "--key",
            "branch-7.key",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data",
            "email=x@example.org",
        ])
        .arg(format!("{https}/admin/enroll-code")));
    assert_eq!(r.stdout.trim(), "415", "{r}");
    // A certificate from another CA fails the handshake itself.
    let (code, status, _) = curl(
        d,
        &format!("{https}/admin/enroll-code"),
        Some("stranger"),
        code_req,
    );
    assert!(code != Some(0) || status == "000", "{code:?} {status}");
    // The public routes need no certificate over HTTPS.
    let (_, status, _) = curl(d, &format!("{https}/healthz"), None, None);
    assert_eq!(status, "200");
}

#[test]
fn an_issuer_on_the_allowlist_admits_every_client_it_certified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    pki(d);
    let port = free_port();
    let _server = start(d, port, "admin_issuers = [\"CN=clients CA,O=Bank\"]");
    let url = format!("https://127.0.0.1:{port}/admin/enroll-code");
    for client in ["branch-7", "auditor"] {
        let (_, status, body) = curl(d, &url, Some(client), Some(r#"{"email": "x@example.org"}"#));
        assert_eq!(status, "200", "{client}: {body}");
    }
    // An allowlist without client_ca is a configuration error, and so are CRLs without it.
    let bad = d.join("bad.toml");
    for (line, names) in [
        ("admin_subjects = [\"CN=x\"]", &["tls.client_ca"][..]),
        (
            "client_crl = \"x.crl\"",
            &["tls.client_crl", "tls.client_ca"][..],
        ),
        ("reload_check_secs = 100000", &["tls.reload_check_secs"][..]),
    ] {
        std::fs::write(
            &bad,
            format!(
                "[tls]\nlisten = \"127.0.0.1:1\"\ncertificate = \"{}\"\nkey = \"{}\"\n{line}\n",
                p(&d.join("https.pem")),
                p(&d.join("https.key"))
            ),
        )
        .expect("config");
        let r = run(Command::new(sigillum_tests::tsa_bin())
            .args(["serve", "--config"])
            .arg(&bad)
            .env_remove("TSA_CONFIG"));
        assert_eq!(r.code, Some(2), "{line}: {r}");
        assert!(
            names.iter().all(|n| r.stderr.contains(n)),
            "{line}: {}",
            r.stderr
        );
    }
}

/// Revokes `revoke` (client names) with the clients CA (openssl ca's database, made on first
/// use) and publishes its CRL as `clients.crl`, replacing the old one at once (a rename).
fn clients_crl(d: &Path, revoke: &[&str]) {
    if !d.join("ca.cnf").exists() {
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca = clients\n[clients]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 2\n",
        )
        .expect("ca.cnf");
        std::fs::write(d.join("index.txt"), "").expect("index");
        std::fs::write(d.join("crlnumber"), "01\n").expect("crlnumber");
    }
    let ca = [
        "-config",
        "ca.cnf",
        "-keyfile",
        "clients-ca.key",
        "-cert",
        "clients-ca.pem",
    ];
    for name in revoke {
        let cert = format!("{name}.pem");
        openssl(d, &[&["ca"], &ca[..], &["-revoke", &cert]].concat()).assert_ok();
    }
    openssl(
        d,
        &[&["ca"], &ca[..], &["-gencrl", "-out", "new.crl"]].concat(),
    )
    .assert_ok();
    std::fs::rename(d.join("new.crl"), d.join("clients.crl")).expect("publish the CRL");
}

/// Whether `client` gets past the handshake (any HTTP status) on `url`; false only when the TLS
/// handshake refused it (curl 35 or 56), anything else (a server gone: 7) fails the test.
fn handshakes(d: &Path, url: &str, client: &str) -> bool {
    let (code, status, body) = curl(d, url, Some(client), Some(r#"{"email": "x@example.org"}"#));
    if status != "000" {
        return true;
    }
    assert!(
        matches!(code, Some(35 | 56)),
        "{client}: not refused by the TLS handshake but curl exit {code:?} {body}"
    );
    false
}

/// Waits (at most 20 s, a hang guard) until `done`; panics with the server's log past it.
fn wait_until(server: &TsaServer, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 20 s\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A node whose admin clients are the clients CA's, under a CRL that revokes none of them yet,
/// checking its files on disk every `check_secs` (0: never); and its admin URL.
fn crl_server(d: &Path, check_secs: u64) -> (TsaServer, String) {
    pki(d);
    clients_crl(d, &[]);
    let port = free_port();
    let server = start_with_ca(
        d,
        port,
        "clients-ca.pem",
        &format!(
            "client_crl = \"{}\"\nadmin_issuers = [\"CN=clients CA,O=Bank\"]\n\
             reload_check_secs = {check_secs}",
            p(&d.join("clients.crl"))
        ),
    );
    let url = format!("https://127.0.0.1:{port}/admin/enroll-code");
    assert!(handshakes(d, &url, "auditor"), "not revoked yet");
    (server, url)
}

#[test]
fn a_new_crl_takes_effect_on_sighup_and_one_that_does_not_load_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    // No checks on disk: only the SIGHUP reloads.
    let (server, url) = crl_server(d, 0);
    // A new CRL revoking `auditor`: in force once the node has read it on SIGHUP.
    clients_crl(d, &["auditor"]);
    assert!(
        handshakes(d, &url, "auditor"),
        "read at start, not before SIGHUP"
    );
    server.send_signal("HUP");
    wait_until(&server, "the new CRL applied", || {
        !handshakes(d, &url, "auditor")
    });
    assert!(
        server.log().contains("client CRLs reloaded"),
        "{}",
        server.log()
    );
    assert!(handshakes(d, &url, "branch-7"));
    // A CRL file that does not load: the node says so and keeps the CRLs it had.
    std::fs::write(d.join("clients.crl"), "not a CRL\n").expect("write");
    server.send_signal("HUP");
    wait_until(&server, "the failed reload logged", || {
        server.log().contains("HTTPS files not reloaded")
    });
    let log = server.log();
    let failure = log
        .lines()
        .find(|l| l.contains("HTTPS files not reloaded"))
        .unwrap_or_default();
    assert!(failure.contains("clients.crl"), "{log}");
    assert!(!handshakes(d, &url, "auditor"), "still revoked");
    assert!(handshakes(d, &url, "branch-7"), "still served");
}

#[test]
fn a_crl_replaced_on_disk_is_read_without_a_signal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let (server, url) = crl_server(d, 1);
    // A half-written publication first: refused, said once, tried again at every check.
    std::fs::write(d.join("partial.crl"), "-----BEGIN X509 CRL-----\n").expect("write");
    std::fs::rename(d.join("partial.crl"), d.join("clients.crl")).expect("rename");
    let failures = || server.log().matches("HTTPS files not reloaded").count();
    wait_until(&server, "the failed load logged", || failures() > 0);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        failures(),
        1,
        "logged once, not at every check:\n{}",
        server.log()
    );
    assert!(handshakes(d, &url, "auditor"), "the CRLs in force are kept");
    // Published whole, as a Kubernetes Secret or a cron job would: a new file renamed over the
    // old one.
    clients_crl(d, &["auditor"]);
    wait_until(&server, "the new CRL applied", || {
        !handshakes(d, &url, "auditor")
    });
    assert!(server.log().contains("changed on disk"), "{}", server.log());
    assert!(handshakes(d, &url, "branch-7"));
}

#[test]
fn sighup_without_tls_ends_nothing() {
    let mut server = TsaServer::start();
    server.send_signal("HUP");
    wait_until(&server, "the SIGHUP logged", || {
        server.log().contains("nothing to reload")
    });
    assert!(server.is_running(), "{}", server.log());
    assert_eq!(server.healthz(), 200);
}

#[test]
fn a_revoked_client_certificate_or_one_without_a_crl_fails_the_handshake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    pki(d);
    // The clients CA revokes `auditor`; the strangers CA, also a client_ca here, publishes no
    // CRL.
    clients_crl(d, &["auditor"]);
    let both = format!(
        "{}{}",
        std::fs::read_to_string(d.join("clients-ca.pem")).expect("clients CA"),
        std::fs::read_to_string(d.join("strangers-ca.pem")).expect("strangers CA")
    );
    std::fs::write(d.join("both-ca.pem"), both).expect("both");
    let port = free_port();
    let _server = start_with_ca(
        d,
        port,
        "both-ca.pem",
        &format!(
            "client_crl = \"{}\"\nadmin_issuers = [\"CN=clients CA,O=Bank\", \"CN=strangers CA,O=Bank\"]",
            p(&d.join("clients.crl"))
        ),
    );
    let url = format!("https://127.0.0.1:{port}/admin/enroll-code");
    let code_req = Some(r#"{"email": "x@example.org"}"#);
    // Not revoked: admitted, as every client of an allowlisted issuer.
    let (_, status, body) = curl(d, &url, Some("branch-7"), code_req);
    assert_eq!(status, "200", "{body}");
    // Revoked (admitted by the issuer allowlist without the CRL: the test above), and from a
    // CA with no CRL: both refused by the handshake itself, before any route.
    for client in ["auditor", "stranger"] {
        assert!(!handshakes(d, &url, client), "{client}");
    }
    // Without a certificate the public routes still answer over HTTPS.
    let (_, status, _) = curl(d, &format!("https://127.0.0.1:{port}/healthz"), None, None);
    assert_eq!(status, "200");
}

/// The notAfter of the certificate in `pem`, Unix seconds, as openssl and date(1) read it.
fn not_after(pem: &Path) -> u64 {
    let r = run(Command::new("sh").arg("-c").arg(format!(
        "date -u -d \"$(openssl x509 -enddate -noout -in '{}' | cut -d= -f2)\" +%s",
        p(pem)
    )));
    r.stdout.trim().parse().unwrap_or_else(|_| panic!("{r}"))
}

#[test]
fn certificate_expiries_are_exported_for_alerts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    sigillum_tests::openssl_ca::https_server_cert(d);
    let port = free_port();
    let server = TsaServer::start_with(TsaOptions {
        config: Some(format!(
            "allow_unsynced_clock = true\n\n[tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\n\
             key = \"{}\"\n",
            p(&d.join("https.pem")),
            p(&d.join("https.key")),
        )),
        ..Default::default()
    });
    let metrics = sigillum_tests::get(&format!("{}metrics", server.url()));
    let text = String::from_utf8_lossy(&metrics.body);
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(
        gauge("tsa_tls_certificate_not_after_seconds"),
        not_after(&d.join("https.pem"))
    );
    // The development TSA certificate has no privateKeyUsagePeriod: its notAfter.
    assert_eq!(
        gauge("tsa_signing_key_usage_end_seconds"),
        not_after(&server.tsa_pem())
    );
}
