//! Every key type the authority signs with, on keys and certificates made by openssl (not by
//! us): each server's tokens are checked by openssl and by `stamp verify`. Keys that cannot be
//! used are refused at start with a message naming the problem.
//!
//! OpenSSL 3.0's `ts -verify` goes through its PKCS#7 code, which knows neither RSASSA-PSS nor
//! Ed25519; for PSS the token is checked with `openssl cms -verify` instead (CMS code, which
//! does know PSS). OpenSSL 3.0 has no Ed25519 in CMS at all ("no default digest"). So every
//! token is also checked by `tests/py/cms_signature_check.py`: pyasn1-modules decodes it, the
//! signed attributes are re-encoded as DER (so non-canonical DER would fail) and Python's
//! `cryptography` verifies the signature, Ed25519 included.

use sigillum_tests::{TsaOptions, TsaServer, openssl, run, stamp, tsa_bin, workspace_root};
use std::path::Path;
use std::process::Command;

const EXTENSIONS: &str = "\
[x_tsa]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=critical,timeStamping
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[x_tsa_noncritical_eku]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=timeStamping
[x_root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
";

/// A root CA made by openssl in `dir` (root.pem, root.key).
fn make_root(dir: &Path) {
    std::fs::write(dir.join("ext.cnf"), EXTENSIONS).expect("ext");
    let base = std::fs::read_to_string("/usr/lib/ssl/openssl.cnf").unwrap_or_default();
    std::fs::write(dir.join("req.cnf"), format!("{base}\n{EXTENSIONS}")).expect("cnf");
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
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/C=XX/O=Interop/CN=Interop Root",
            "-days",
            "30",
            "-extensions",
            "x_root",
            "-config",
            "req.cnf",
        ],
    )
    .assert_ok();
}

/// A TSA key (`genpkey` arguments) and a certificate for it signed by the root.
fn make_tsa(dir: &Path, name: &str, genpkey: &[&str], extensions: &str) {
    let key = format!("{name}.key");
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", &key]);
    openssl(dir, &args).assert_ok();
    let csr = format!("{name}.csr");
    let subj = format!("/C=XX/O=Interop/CN=TSA {name}");
    openssl(
        dir,
        &["req", "-new", "-key", &key, "-subj", &subj, "-out", &csr],
    )
    .assert_ok();
    let pem = format!("{name}.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "ext.cnf",
            "-extensions",
            extensions,
            "-out",
            &pem,
        ],
    )
    .assert_ok();
}

fn config(dir: &Path, name: &str, key_file: &str, padding: &str) -> String {
    format!(
        "allow_unsynced_clock = true\n[key]\nfile = \"{}\"\ncertificate = \"{}\"\nchain = \"{}\"\nrsa_padding = \"{padding}\"\n[policy]\ndefault = \"1.3.6.1.4.1.55555.9.1\"\n",
        dir.join(key_file).display(),
        dir.join(format!("{name}.pem")).display(),
        dir.join("root.pem").display()
    )
}

/// Stamps `data.txt` with `stamp file` against the server and checks the token with the tools
/// that can read it.
fn check_server(
    dir: &Path,
    server: &TsaServer,
    name: &str,
    cert: &str,
    openssl_ts: bool,
    openssl_cms: bool,
) {
    let data = format!("data-{name}.txt");
    std::fs::write(dir.join(&data), format!("statement for {name}\n")).expect("data");
    stamp(
        dir,
        &["file", &data, "--tsa", &server.url(), "--trust", "root.pem"],
    )
    .assert_ok();
    let tsr = format!("{data}.tsr");
    let verified = stamp(dir, &["verify", &data, "--trust", "root.pem", "--json"]);
    verified.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&verified.stdout).expect("json report");
    assert_eq!(report["verified"], true, "{name}: {}", verified.stdout);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let check = run(Command::new(python)
        .current_dir(dir)
        .arg(workspace_root().join("tests/py/cms_signature_check.py"))
        .arg(&tsr)
        .arg(cert));
    assert!(
        check.ok() && check.stdout.starts_with("OK "),
        "{name}: {check}"
    );
    if openssl_ts {
        let out = openssl(
            dir,
            &[
                "ts", "-verify", "-data", &data, "-in", &tsr, "-CAfile", "root.pem",
            ],
        );
        assert!(out.stdout.contains("Verification: OK"), "{name}: {out}");
    }
    if openssl_cms {
        let token = format!("{name}.token");
        openssl(
            dir,
            &["ts", "-reply", "-in", &tsr, "-token_out", "-out", &token],
        )
        .assert_ok();
        let out = openssl(
            dir,
            &[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                &token,
                "-CAfile",
                "root.pem",
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        );
        assert!(
            out.stderr.contains("Verification successful"),
            "{name}: {out}"
        );
    }
}

#[test]
fn every_supported_key_type_issues_tokens_the_tools_accept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    make_root(dir);
    // (name, genpkey args, padding, openssl ts -verify can check it, openssl cms can check it)
    let cases: &[(&str, &[&str], &str, bool, bool)] = &[
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "pkcs1",
            true,
            true,
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "pkcs1",
            true,
            true,
        ),
        (
            "rsa2048",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "pkcs1",
            true,
            true,
        ),
        (
            "rsa4096",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
            "pkcs1",
            true,
            true,
        ),
        (
            "rsa3072pss",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            "pss",
            false,
            true,
        ),
        ("ed25519", &["-algorithm", "ED25519"], "pkcs1", false, false),
    ];
    for (name, genpkey, padding, ts, cms) in cases {
        make_tsa(dir, name, genpkey, "x_tsa");
        let server = TsaServer::start_with(TsaOptions {
            config: Some(config(dir, name, &format!("{name}.key"), padding)),
            ..Default::default()
        });
        check_server(dir, &server, name, &format!("{name}.pem"), *ts, *cms);
    }
}

#[test]
fn der_and_pkcs1_key_files_are_read_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    make_root(dir);
    make_tsa(
        dir,
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "x_tsa",
    );
    openssl(
        dir,
        &[
            "pkey", "-in", "rsa.key", "-outform", "DER", "-out", "rsa.der",
        ],
    )
    .assert_ok();
    openssl(
        dir,
        &[
            "rsa",
            "-in",
            "rsa.key",
            "-traditional",
            "-out",
            "rsa-pkcs1.pem",
        ],
    )
    .assert_ok();
    assert!(
        std::fs::read_to_string(dir.join("rsa-pkcs1.pem"))
            .expect("pem")
            .contains("BEGIN RSA PRIVATE KEY")
    );
    for key in ["rsa.der", "rsa-pkcs1.pem"] {
        let server = TsaServer::start_with(TsaOptions {
            config: Some(config(dir, "rsa", key, "pkcs1")),
            ..Default::default()
        });
        check_server(dir, &server, &key.replace('.', "-"), "rsa.pem", true, true);
    }
}

/// Runs `tsa serve` with a configuration that must be refused, returning its stderr.
fn refused(dir: &Path, cfg: &str) -> String {
    let path = dir.join("refused.toml");
    std::fs::write(&path, cfg).expect("cfg");
    let out = run(Command::new(tsa_bin())
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--listen")
        .arg("127.0.0.1:1")
        .arg("--data-dir")
        .arg(dir.join("refused-data")));
    assert_eq!(out.code, Some(2), "{out}");
    out.stderr
}

#[test]
fn unusable_keys_and_certificates_are_refused_at_start_by_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    make_root(dir);
    make_tsa(
        dir,
        "good",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "x_tsa",
    );
    make_tsa(
        dir,
        "weak",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "x_tsa_noncritical_eku",
    );
    make_tsa(
        dir,
        "small",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "x_tsa",
    );
    openssl(dir, &["ec", "-in", "good.key", "-out", "good-sec1.pem"]).assert_ok();

    let err = refused(dir, &config(dir, "weak", "weak.key", "pkcs1"));
    assert!(err.contains("not marked critical"), "{err}");
    // The root certificate with the TSA's key: wrong key, CA certificate, no timeStamping EKU.
    let err = refused(dir, &config(dir, "root", "good.key", "pkcs1"));
    assert!(
        err.contains("CA certificate") && err.contains("extendedKeyUsage"),
        "{err}"
    );
    let err = refused(dir, &config(dir, "small", "small.key", "pkcs1"));
    assert!(
        err.contains("small.key") && err.contains("smaller than 2048 bits"),
        "{err}"
    );
    let err = refused(dir, &config(dir, "good", "good-sec1.pem", "pkcs1"));
    assert!(
        err.contains("good-sec1.pem") && err.contains("openssl pkcs8 -topk8"),
        "{err}"
    );
    let err = refused(dir, &config(dir, "good", "weak.key", "pkcs1"));
    assert!(err.contains("does not match the key"), "{err}");
}
