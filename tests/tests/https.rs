//! RFC 3161 over HTTPS beside plain HTTP: the `[tls]` listener serves the same routes, and a
//! token fetched by curl over TLS passes `openssl ts -verify`.

use sigillum_tests::{TsaOptions, TsaServer, free_port, openssl, run};
use std::process::Command;

#[test]
fn the_https_listener_serves_tokens_openssl_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "https.key",
            "-out",
            "https.pem",
            "-subj",
            "/CN=127.0.0.1",
            "-days",
            "2",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    )
    .assert_ok();
    let port = free_port();
    let config = format!(
        "allow_unsynced_clock = true\n[tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        dir.join("https.pem").display(),
        dir.join("https.key").display()
    );
    let server = TsaServer::start_with(TsaOptions {
        config: Some(config),
        ..Default::default()
    });
    std::fs::write(dir.join("doc.txt"), b"sent over TLS").expect("data");
    openssl(
        dir,
        &[
            "ts", "-query", "-data", "doc.txt", "-sha256", "-cert", "-out", "q.tsq",
        ],
    )
    .assert_ok();
    let url = format!("https://127.0.0.1:{port}/");
    let curl = run(Command::new("curl").current_dir(dir).args([
        "-sS",
        "--fail",
        "--cacert",
        "https.pem",
        "--data-binary",
        "@q.tsq",
        "-H",
        "Content-Type: application/timestamp-query",
        "-o",
        "r.tsr",
        &url,
    ]));
    curl.assert_ok();
    let root = server.root_pem();
    let verify = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-queryfile",
            "q.tsq",
            "-in",
            "r.tsr",
            "-CAfile",
            root.to_str().expect("path"),
        ],
    );
    assert!(verify.stdout.contains("Verification: OK"), "{verify}");
    // A client that does not trust the certificate is refused by TLS, not served in clear.
    let untrusted = run(Command::new("curl").current_dir(dir).args([
        "-sS",
        "--fail",
        &format!("{url}healthz"),
    ]));
    assert!(!untrusted.ok(), "{untrusted}");
    // Plain HTTP keeps working beside it.
    server.assert_healthy();
}
