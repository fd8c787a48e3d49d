//! Round trips with RFC 3161 clients from PyPI, in both directions: their requests against our
//! server, their verifiers on our tokens, and `stamp verify` on the tokens they fetched.
//!
//! * `rfc3161-client` (Trail of Bits) builds SHA-256 and SHA-512 requests and verifies the
//!   replies against the root, with and without embedded certificates.
//! * `rfc3161ng` covers what rfc3161-client cannot: SHA-384 requests (rfc3161-client's
//!   `HashAlgorithm` has only SHA-256 and SHA-512), and an independent signature check that
//!   re-encodes our signed attributes with pyasn1's DER encoder (its `check_timestamp` knows only
//!   RSA PKCS#1 v1.5, hence a server with an RSA key for that part).
//!
//! The Python side is tests/py/rfc3161_roundtrip.py. `pip install rfc3161-client rfc3161ng`
//! (scripts/test.sh does) is required: a missing package fails the test, it is never skipped.

use sigillum_tests::{Run, TsaOptions, TsaServer, openssl, run, stamp, write_file};
use std::path::{Path, PathBuf};
use std::process::Command;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    sigillum_tests::workspace_root()
        .join("tests")
        .join("py")
        .join("rfc3161_roundtrip.py")
}

/// Fails with the install command when a Python package is missing.
fn require_module(module: &str, package: &str) {
    let check = run(Command::new(python()).args(["-c", &format!("import {module}")]));
    assert!(
        check.ok(),
        "the Python package {package} is missing: `pip install {package}` (scripts/test.sh installs it)\n{check}"
    );
}

fn roundtrip(args: &[&str]) -> Run {
    let mut cmd = Command::new(python());
    cmd.arg(script()).args(args);
    let out = run(&mut cmd);
    assert!(
        out.ok() && out.stdout.contains("all checks passed"),
        "{out}"
    );
    out
}

/// `stamp verify` on every .tsr in `dir` whose name starts with `prefix`; returns how many.
fn stamp_verify_all(dir: &Path, prefix: &str, data: &Path, root: &Path, tsa: &Path) -> usize {
    let mut n = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".tsr"))
        })
        .collect();
    entries.sort();
    for tsr in entries {
        let mut args = vec!["verify", p(data), "--trust", p(root), "--token", p(&tsr)];
        if p(&tsr).ends_with("-nocert.tsr") {
            args.extend(["--certs", p(tsa)]);
        }
        let v = stamp(dir, &args);
        assert_eq!(v.code, Some(0), "stamp verify on {}: {v}", tsr.display());
        n += 1;
    }
    n
}

#[test]
fn rfc3161_client_round_trip_and_stamp_verifies_its_tokens() {
    require_module("rfc3161_client", "rfc3161-client");
    let server = TsaServer::start();
    let dir = server.work_dir().join("py");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let data = write_file(&dir, "data.bin", b"stamped through rfc3161-client\n");
    roundtrip(&[
        "client",
        &server.url(),
        p(&server.root_pem()),
        p(&server.tsa_pem()),
        p(&data),
        p(&dir),
    ]);
    let n = stamp_verify_all(
        &dir,
        "rfc3161-client-",
        &data,
        &server.root_pem(),
        &server.tsa_pem(),
    );
    assert_eq!(n, 4, "SHA-256 and SHA-512, with and without certificates");
}

#[test]
fn rfc3161ng_sha384_round_trip_and_stamp_verifies_its_tokens() {
    require_module("rfc3161ng", "rfc3161ng");
    let server = TsaServer::start();
    let dir = server.work_dir().join("py");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let data = write_file(&dir, "data.bin", b"stamped through rfc3161ng\n");
    // The development key is ECDSA, which rfc3161ng cannot check: requests and replies only.
    roundtrip(&["ng", &server.url(), p(&server.tsa_pem()), p(&data), p(&dir)]);
    let n = stamp_verify_all(
        &dir,
        "rfc3161ng-",
        &data,
        &server.root_pem(),
        &server.tsa_pem(),
    );
    assert_eq!(n, 6);
}

#[test]
fn rfc3161ng_checks_rsa_signatures_from_our_server() {
    require_module("rfc3161ng", "rfc3161ng");
    require_module("rfc3161_client", "rfc3161_client");
    // An RSA-2048 TSA key and certificate made by openssl.
    let keys = tempfile::Builder::new()
        .prefix("sigillum-rsa-tsa-")
        .tempdir()
        .expect("tempdir");
    let k = keys.path();
    write_file(
        k,
        "ext.cnf",
        b"[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n\
          [tsa]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n\
          subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    for args in [
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "root.key",
        ][..],
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "tsa.key",
        ],
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "root.key",
            "-subj",
            "/C=XX/O=Sigillum tests/CN=RSA Root",
            "-days",
            "3650",
            "-config",
            "ext.cnf",
            "-extensions",
            "root",
            "-out",
            "root.pem",
        ],
        &[
            "req",
            "-new",
            "-key",
            "tsa.key",
            "-subj",
            "/C=XX/O=Sigillum tests/CN=RSA TSA",
            "-config",
            "ext.cnf",
            "-out",
            "tsa.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "7",
            "-days",
            "365",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "tsa",
            "-out",
            "tsa.pem",
        ],
    ] {
        openssl(k, args).assert_ok();
    }
    let config = format!(
        "allow_unsynced_clock = true\n[key]\nfile = \"{}\"\ncertificate = \"{}\"\nchain = \"{}\"\n",
        p(&k.join("tsa.key")),
        p(&k.join("tsa.pem")),
        p(&k.join("root.pem"))
    );
    let server = TsaServer::start_with(TsaOptions {
        config: Some(config),
        ..TsaOptions::default()
    });
    let dir = server.work_dir().join("py");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let data = write_file(&dir, "data.bin", b"stamped with an RSA key\n");
    let root = k.join("root.pem");
    let tsa = k.join("tsa.pem");
    roundtrip(&[
        "ng",
        &server.url(),
        p(&tsa),
        p(&data),
        p(&dir),
        "--verify-signature",
    ]);
    roundtrip(&[
        "client",
        &server.url(),
        p(&root),
        p(&tsa),
        p(&data),
        p(&dir),
    ]);
    assert_eq!(stamp_verify_all(&dir, "rfc3161", &data, &root, &tsa), 10);
}
