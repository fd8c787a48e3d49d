//! RFC 3161 over HTTPS beside plain HTTP: the `[tls]` listener serves the same routes, a
//! token fetched by curl over TLS passes `openssl ts -verify`, and a handshake that never
//! completes is cut at the request deadline.

use sigillum_tests::{TsaOptions, TsaServer, free_port, openssl, run};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A self-signed certificate for 127.0.0.1 in `dir`, and a configuration serving HTTPS on
/// `port` with it, plus `extra` TOML.
fn https_config(dir: &Path, port: u16, extra: &str) -> String {
    sigillum_tests::openssl_ca::https_server_cert(dir);
    format!(
        "allow_unsynced_clock = true\n{extra}\n[tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        dir.join("https.pem").display(),
        dir.join("https.key").display()
    )
}

#[test]
fn the_https_listener_serves_tokens_openssl_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = free_port();
    let config = https_config(dir, port, "");
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

#[test]
fn tls_handshakes_that_never_complete_are_cut_at_the_request_deadline() {
    // Why: a stalled handshake holds a descriptor; it counts against the request deadline
    // (and the connection cap), so a crowd of them cannot starve real HTTPS clients.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = free_port();
    let config = https_config(dir, port, "[server]\nrequest_timeout_ms = 1000");
    let server = TsaServer::start_with(TsaOptions {
        config: Some(config),
        ..Default::default()
    });
    let guard = Duration::from_secs(15);
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(guard)).expect("timeout");
            if i % 2 == 0 {
                // The first bytes of a TLS record holding a ClientHello, then nothing.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                    .expect("write");
            }
            s
        })
        .collect();
    // A real HTTPS client is served meanwhile.
    let curl = run(Command::new("curl").current_dir(dir).args([
        "-sS",
        "--fail",
        "--cacert",
        "https.pem",
        &format!("https://127.0.0.1:{port}/healthz"),
    ]));
    curl.assert_ok();
    for s in &mut stalled {
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("a stalled handshake got {:02x?}", &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("a stalled handshake was still open after {guard:?}")
            }
            Err(_) => {}
        }
    }
    let cut = opened.elapsed();
    assert!(cut >= Duration::from_millis(1000), "cut after {cut:?}");
    eprintln!("100 stalled TLS handshakes all cut within {cut:?} (deadline 1 s)");
    server.assert_healthy();
}
