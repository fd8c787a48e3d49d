//! Helpers for the tests that make their own PKI with openssl and check tokens with openssl and
//! `stamp`. The commands are recorded in tests/vectors/README.md.

use crate::{Run, openssl, read_file, stamp};
use std::path::Path;

/// An openssl `req`/`x509` configuration with the extension sections the tests use: `v3_root`
/// (a self-signed CA) and `v3_tsa` (a TSA certificate: critical timeStamping EKU,
/// digitalSignature, not a CA).
pub const CERT_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_tsa]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";
/// Runs `openssl ARGS` in `dir` and panics with its output unless it exits 0.
pub fn ok(dir: &Path, args: &[&str]) -> Run {
    let run = openssl(dir, args);
    run.assert_ok();
    run
}

/// A self-signed certificate on a new P-256 key made by `openssl req -x509` in `dir`: the key
/// at `key`, the certificate at `cert` (paths relative to `dir`, or absolute), for `subject`
/// (openssl's `/K=V/...` form), valid `days`, with `extra` arguments (`-addext ...`,
/// `-config ...`); panics with openssl's output unless it succeeds.
pub fn self_signed_p256(
    dir: &Path,
    key: &str,
    cert: &str,
    subject: &str,
    days: &str,
    extra: &[&str],
) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-subj",
        subject,
        "-days",
        days,
    ];
    args.extend_from_slice(extra);
    ok(dir, &args);
}

/// A self-signed P-256 certificate for 127.0.0.1 (subjectAltName IP) in `dir/https.pem`, its
/// key in `dir/https.key`: the HTTPS listener's in tests.
pub fn https_server_cert(dir: &Path) {
    self_signed_p256(
        dir,
        "https.key",
        "https.pem",
        "/CN=127.0.0.1",
        "2",
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    );
}

/// A fresh key made by `openssl genpkey` in `dir/name`: `ec` (P-256) or `rsa` (2048 bits).
pub fn new_key(dir: &Path, kind: &str, name: &str) -> std::path::PathBuf {
    let opt = match kind {
        "rsa" => ["RSA", "rsa_keygen_bits:2048"],
        _ => ["EC", "ec_paramgen_curve:P-256"],
    };
    ok(
        dir,
        &[
            "genpkey",
            "-algorithm",
            opt[0],
            "-pkeyopt",
            opt[1],
            "-out",
            name,
        ],
    );
    dir.join(name)
}

/// `openssl cms` encrypts `text` to `recipient` (a certificate in `dir`) and decrypts it with
/// `key`; the round trip must give the text back.
pub fn cms_round_trip(dir: &Path, recipient: &str, key: &Path, text: &str) {
    std::fs::write(dir.join("msg.txt"), text).expect("write msg.txt");
    ok(
        dir,
        &[
            "cms", "-encrypt", "-binary", "-in", "msg.txt", "-recip", recipient, "-aes256", "-out",
            "msg.p7",
        ],
    );
    let d = ok(
        dir,
        &[
            "cms",
            "-decrypt",
            "-in",
            "msg.p7",
            "-recip",
            recipient,
            "-inkey",
            path_str(key),
        ],
    );
    assert_eq!(d.stdout, text, "{d}");
}

/// A path as `&str`, for argument lists.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The value after `label` on the line of `openssl ts -text` output that starts with it.
pub fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} in openssl output:\n{text}"))
}

/// The DER of the first certificate in a PEM file.
pub fn pem_cert_der(pem_path: &Path) -> Vec<u8> {
    use base64::Engine;
    let pem = String::from_utf8(read_file(pem_path)).expect("PEM text");
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// `stamp verify ARGS` in `dir`, asserting exit `code` (0 verified, 1 not, 2 usage or I/O).
pub fn stamp_verify(dir: &Path, args: &[&str], code: i32, why: &str) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let run = stamp(dir, &all);
    assert_eq!(run.code, Some(code), "{why}: {run}");
    run
}

/// `openssl ts -verify -queryfile QUERY -in REPLY -CAfile CA EXTRA...` in `dir`; panics with
/// openssl's output (and `what`) unless it prints "Verification: OK".
pub fn ts_verify_ok(dir: &Path, query: &str, reply: &str, ca: &str, extra: &[&str], what: &str) {
    let mut args = vec![
        "ts",
        "-verify",
        "-queryfile",
        query,
        "-in",
        reply,
        "-CAfile",
        ca,
    ];
    args.extend_from_slice(extra);
    let v = ok(dir, &args);
    assert!(v.stdout.contains("Verification: OK"), "{what}: {v}");
}
