//! Interoperability with OpenSSL in both directions.
//!
//! 1. `openssl ts -query` → our server over real HTTP → `openssl ts -verify` says
//!    "Verification: OK", for SHA-256/384/512, with and without certReq, with and without a
//!    nonce (all 12 combinations), and `openssl ts -reply -text` shows our token profile.
//! 2. Tokens made by `openssl ts -reply` (RSA and ECDSA keys, `clock_precision_digits = 3`,
//!    ESSCertID with SHA-1 and ESSCertIDv2 with SHA-256, with and without certificates) are
//!    verified by `stamp verify`, and refused for the wrong data or the wrong trust anchor.
//!
//! The keys and certificates are made fresh in a temporary directory on every run, with the
//! commands recorded in tests/vectors/README.md.

use sigillum_tests::{Run, TsaServer, openssl, read_file, stamp, write_file};
use std::path::{Path, PathBuf};

fn ok(dir: &Path, args: &[&str]) -> Run {
    let run = openssl(dir, args);
    run.assert_ok();
    run
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The value after `label` on the line of `openssl ts -text` output that starts with it.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} in openssl output:\n{text}"))
}

#[test]
fn openssl_ts_verifies_every_query_combination() {
    let server = TsaServer::start();
    let dir = server.work_dir().join("interop");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let data = write_file(
        &dir,
        "data.txt",
        b"Sigillum interop: openssl ts -query against tsa serve\n",
    );
    let root = server.root_pem();
    let tsa = server.tsa_pem();
    let mut serials = std::collections::HashSet::new();
    for alg in ["sha256", "sha384", "sha512"] {
        for cert in [true, false] {
            for nonce in [true, false] {
                let name = format!(
                    "{alg}-{}-{}",
                    if cert { "cert" } else { "nocert" },
                    if nonce { "nonce" } else { "nononce" }
                );
                let q = dir.join(format!("{name}.tsq"));
                let r = dir.join(format!("{name}.tsr"));
                let mut args = vec!["ts", "-query", "-data", p(&data), &format!("-{alg}")]
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>();
                if cert {
                    args.push("-cert".into());
                }
                if !nonce {
                    args.push("-no_nonce".into());
                }
                args.extend(["-out".into(), p(&q).into()]);
                ok(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());

                let reply = server.post_query(&read_file(&q));
                assert_eq!(reply.status, 200, "{name}: HTTP status");
                assert_eq!(
                    reply.content_type.as_deref(),
                    Some("application/timestamp-reply"),
                    "{name}"
                );
                std::fs::write(&r, &reply.body).expect("write reply");

                // The query file ties the reply to the request: imprint, nonce, policy.
                let mut verify = vec![
                    "ts",
                    "-verify",
                    "-queryfile",
                    p(&q),
                    "-in",
                    p(&r),
                    "-CAfile",
                    p(&root),
                ];
                if !cert {
                    verify.extend(["-untrusted", p(&tsa)]);
                }
                let v = ok(&dir, &verify);
                assert!(v.stdout.contains("Verification: OK"), "{name}: {v}");
                // And the data itself, not only the request.
                let mut verify_data = vec![
                    "ts",
                    "-verify",
                    "-data",
                    p(&data),
                    "-in",
                    p(&r),
                    "-CAfile",
                    p(&root),
                ];
                if !cert {
                    verify_data.extend(["-untrusted", p(&tsa)]);
                }
                let v = ok(&dir, &verify_data);
                assert!(
                    v.stdout.contains("Verification: OK"),
                    "{name} with -data: {v}"
                );

                let token = sigillum_tests::granted_token(&reply);
                assert!(
                    serials.insert(token.info().serial_hex),
                    "{name}: serial repeated"
                );
                if cert {
                    // The whole chain up to, not including, the root; the signer first.
                    let tsa_der = pki_cert_der(&tsa);
                    assert_eq!(
                        token.certificates.first(),
                        Some(&tsa_der),
                        "{name}: signer certificate first"
                    );
                    assert!(
                        !token.certificates.contains(&pki_cert_der(&root)),
                        "{name}: the root is left out"
                    );
                } else {
                    assert!(
                        token.certificates.is_empty(),
                        "{name}: certificates without certReq"
                    );
                    // Without -untrusted openssl has no signer certificate: proves none is embedded.
                    let v = openssl(
                        &dir,
                        &[
                            "ts",
                            "-verify",
                            "-queryfile",
                            p(&q),
                            "-in",
                            p(&r),
                            "-CAfile",
                            p(&root),
                        ],
                    );
                    assert!(
                        !v.stdout.contains("Verification: OK"),
                        "{name}: verified without any certificate? {v}"
                    );
                }

                // The token profile as openssl reads it.
                let text = ok(&dir, &["ts", "-reply", "-in", p(&r), "-text"]).stdout;
                let query = ok(&dir, &["ts", "-query", "-in", p(&q), "-text"]).stdout;
                assert_eq!(field(&text, "Status:"), "Granted.", "{name}");
                assert_eq!(
                    field(&text, "Status description:"),
                    "unspecified",
                    "{name}: no statusString when granted"
                );
                assert_eq!(field(&text, "Failure info:"), "unspecified", "{name}");
                assert_eq!(field(&text, "Version:"), "1", "{name}");
                assert_eq!(
                    field(&text, "Policy OID:"),
                    "1.3.6.1.4.1.55555.1.1",
                    "{name}"
                );
                assert_eq!(field(&text, "Hash Algorithm:"), alg, "{name}");
                assert_eq!(
                    field(&text, "Accuracy:"),
                    "0x01 seconds, unspecified millis, unspecified micros",
                    "{name}"
                );
                assert_eq!(field(&text, "Ordering:"), "no", "{name}");
                assert_eq!(
                    field(&text, "Nonce:"),
                    field(&query, "Nonce:"),
                    "{name}: nonce echoed"
                );
                if !nonce {
                    assert_eq!(field(&text, "Nonce:"), "unspecified", "{name}");
                }
                assert!(
                    field(&text, "TSA:").starts_with("DirName:/C="),
                    "{name}: tsa name {text}"
                );
                // genTime with millisecond precision: "Nov 25 01:35:33.794 2026 GMT".
                let time = field(&text, "Time stamp:");
                assert!(time.ends_with(" GMT"), "{name}: {time}");

                // The bare token form: -token_out, then -token_in.
                let t = dir.join(format!("{name}.token"));
                ok(
                    &dir,
                    &["ts", "-reply", "-in", p(&r), "-token_out", "-out", p(&t)],
                );
                let mut verify_token = vec![
                    "ts",
                    "-verify",
                    "-queryfile",
                    p(&q),
                    "-in",
                    p(&t),
                    "-token_in",
                    "-CAfile",
                    p(&root),
                ];
                if !cert {
                    verify_token.extend(["-untrusted", p(&tsa)]);
                }
                let v = ok(&dir, &verify_token);
                assert!(v.stdout.contains("Verification: OK"), "{name} token: {v}");
            }
        }
    }
}

#[test]
fn openssl_verifies_against_the_chain_served_at_certs() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let certs = sigillum_tests::get(&format!("{}certs", server.url()));
    assert_eq!(certs.status, 200);
    let chain = write_file(dir, "certs.pem", &certs.body);
    assert!(
        certs.text().starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        certs.text()
    );
    // The TSA certificate comes first and chains to the root.
    let first = ok(
        dir,
        &[
            "x509",
            "-in",
            p(&chain),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    )
    .stdout;
    let tsa = ok(
        dir,
        &[
            "x509",
            "-in",
            p(&server.tsa_pem()),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    )
    .stdout;
    assert_eq!(first, tsa, "/certs starts with the TSA certificate");
    let v = ok(
        dir,
        &[
            "verify",
            "-CAfile",
            p(&server.root_pem()),
            "-purpose",
            "timestampsign",
            p(&server.tsa_pem()),
        ],
    );
    assert!(v.stdout.contains(": OK"), "{v}");
    // A token without certificates verifies with /certs as the untrusted set.
    let data = write_file(dir, "d.txt", b"certs route");
    let q = dir.join("q.tsq");
    ok(
        dir,
        &["ts", "-query", "-data", p(&data), "-sha256", "-out", p(&q)],
    );
    let r = write_file(dir, "r.tsr", &server.post_query(&read_file(&q)).body);
    let v = ok(
        dir,
        &[
            "ts",
            "-verify",
            "-queryfile",
            p(&q),
            "-in",
            p(&r),
            "-CAfile",
            p(&server.root_pem()),
            "-untrusted",
            p(&chain),
        ],
    );
    assert!(v.stdout.contains("Verification: OK"), "{v}");
}

// ---------------------------------------------------------------------------------------------
// Tokens made by `openssl ts -reply`, verified by `stamp verify`.

/// One openssl authority set-up.
struct Variant {
    name: &'static str,
    /// `openssl genpkey` arguments for both keys.
    keygen: &'static [&'static str],
    signer_digest: &'static str,
    /// `sha1` makes SigningCertificate (ESSCertID), `sha256` SigningCertificateV2.
    ess_cert_id_alg: &'static str,
    /// Whether `certs = root.pem` adds the root to tokens that carry certificates.
    include_root: bool,
}

const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];

const CERT_CONFIG: &str = "\
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

/// An openssl TSA in a temporary directory: root CA, TSA certificate, `ts.cnf`.
struct OpensslTsa {
    dir: tempfile::TempDir,
}

impl OpensslTsa {
    fn new(v: &Variant) -> OpensslTsa {
        let tmp = tempfile::Builder::new()
            .prefix("sigillum-openssl-tsa-")
            .tempdir()
            .expect("tempdir");
        let d = tmp.path();
        write_file(d, "certs.cnf", CERT_CONFIG.as_bytes());
        let genpkey = |out: &str| {
            let mut args = vec!["genpkey"];
            args.extend_from_slice(v.keygen);
            args.extend(["-out", out]);
            ok(d, &args);
        };
        genpkey("root.key");
        genpkey("tsa.key");
        genpkey("impostor-root.key");
        let root_subj = format!("/C=XX/O=Sigillum interop tests/CN=OpenSSL {} Root", v.name);
        let tsa_subj = format!("/C=XX/O=Sigillum interop tests/CN=OpenSSL {} TSA", v.name);
        ok(
            d,
            &[
                "req",
                "-config",
                "certs.cnf",
                "-new",
                "-x509",
                "-key",
                "root.key",
                "-subj",
                &root_subj,
                "-days",
                "3650",
                "-extensions",
                "v3_root",
                "-out",
                "root.pem",
            ],
        );
        // A root with the same name and another key: a verifier that matches names only
        // would accept it.
        ok(
            d,
            &[
                "req",
                "-config",
                "certs.cnf",
                "-new",
                "-x509",
                "-key",
                "impostor-root.key",
                "-subj",
                &root_subj,
                "-days",
                "3650",
                "-extensions",
                "v3_root",
                "-out",
                "impostor-root.pem",
            ],
        );
        ok(
            d,
            &[
                "req",
                "-config",
                "certs.cnf",
                "-new",
                "-key",
                "tsa.key",
                "-subj",
                &tsa_subj,
                "-out",
                "tsa.csr",
            ],
        );
        ok(
            d,
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
                "0x5151",
                "-days",
                "365",
                "-extfile",
                "certs.cnf",
                "-extensions",
                "v3_tsa",
                "-out",
                "tsa.pem",
            ],
        );
        write_file(d, "serial", b"01\n");
        let certs = if v.include_root {
            "certs = ./root.pem\n"
        } else {
            ""
        };
        let ts_cnf = format!(
            "[tsa]\n\
             default_tsa = tsa_config1\n\
             [tsa_config1]\n\
             serial = ./serial\n\
             crypto_device = builtin\n\
             signer_cert = ./tsa.pem\n\
             {certs}\
             signer_key = ./tsa.key\n\
             signer_digest = {}\n\
             default_policy = 1.2.3.4.1\n\
             other_policies = 1.2.3.4.5\n\
             digests = sha256, sha384, sha512\n\
             accuracy = secs:1, millisecs:500, microsecs:100\n\
             clock_precision_digits = 3\n\
             ordering = yes\n\
             tsa_name = yes\n\
             ess_cert_id_chain = no\n\
             ess_cert_id_alg = {}\n",
            v.signer_digest, v.ess_cert_id_alg
        );
        write_file(d, "ts.cnf", ts_cnf.as_bytes());
        OpensslTsa { dir: tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stamps `data` with `openssl ts -reply`; returns (TimeStampResp file, bare token file).
    fn stamp(&self, data: &Path, alg: &str, cert: bool, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let q = self.path(&format!("{name}.tsq"));
        let r = self.path(&format!("{name}.tsr"));
        let t = self.path(&format!("{name}.token"));
        let mut query = vec!["ts", "-query", "-data", p(data), alg, "-out", p(&q)];
        if cert {
            query.push("-cert");
        }
        ok(d, &query);
        ok(
            d,
            &[
                "ts",
                "-reply",
                "-config",
                "ts.cnf",
                "-queryfile",
                p(&q),
                "-out",
                p(&r),
            ],
        );
        ok(
            d,
            &[
                "ts",
                "-reply",
                "-config",
                "ts.cnf",
                "-queryfile",
                p(&q),
                "-token_out",
                "-out",
                p(&t),
            ],
        );
        // openssl itself accepts what it made.
        let untrusted = self.path("tsa.pem");
        let v = ok(
            d,
            &[
                "ts",
                "-verify",
                "-queryfile",
                p(&q),
                "-in",
                p(&r),
                "-CAfile",
                "root.pem",
                "-untrusted",
                p(&untrusted),
            ],
        );
        assert!(v.stdout.contains("Verification: OK"), "{v}");
        (r, t)
    }
}

fn pki_cert_der(pem_path: &Path) -> Vec<u8> {
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

/// `stamp verify` with `args`, in `dir`, expecting exit `code`.
fn stamp_verify(dir: &Path, args: &[&str], code: i32, why: &str) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let run = stamp(dir, &all);
    assert_eq!(run.code, Some(code), "{why}: {run}");
    run
}

fn check_variant(v: &Variant) {
    let tsa = OpensslTsa::new(v);
    let d = tsa.dir.path();
    let root = tsa.path("root.pem");
    let tsa_cert = tsa.path("tsa.pem");
    let data = write_file(
        d,
        "report.txt",
        format!("a report stamped by openssl ({})\n", v.name).as_bytes(),
    );
    let other = write_file(d, "other.txt", b"not the stamped data\n");
    let mut saw_fraction = false;
    for (i, alg) in ["-sha256", "-sha384", "-sha512"].iter().enumerate() {
        for cert in [true, false] {
            let what = format!(
                "{} {alg} {}",
                v.name,
                if cert {
                    "with certificates"
                } else {
                    "without certificates"
                }
            );
            let name = format!("t{i}{}", if cert { "c" } else { "n" });
            let (resp, token) = tsa.stamp(&data, alg, cert, &name);
            let parsed =
                pki::token::ParsedToken::parse(&read_file(&resp)).expect("openssl token parses");
            saw_fraction |= parsed.info().gen_time.contains('.');
            assert_eq!(
                parsed.certificates.is_empty(),
                !cert,
                "{what}: certificates as asked"
            );
            let certs: Vec<&str> = if cert {
                vec![]
            } else {
                vec!["--certs", p(&tsa_cert)]
            };
            for (form, file) in [("TimeStampResp", &resp), ("bare token", &token)] {
                let what = format!("{what}, {form}");
                let mut args = vec![p(&data), "--trust", p(&root), "--token", p(file)];
                args.extend(&certs);
                stamp_verify(d, &args, 0, &what);
                let mut args = vec![p(&other), "--trust", p(&root), "--token", p(file)];
                args.extend(&certs);
                stamp_verify(d, &args, 1, &format!("{what}, wrong data"));
            }
            if !cert {
                // No certificate anywhere: the signature cannot be checked, so not verified.
                stamp_verify(
                    d,
                    &[p(&data), "--trust", p(&root), "--token", p(&resp)],
                    1,
                    &format!("{what}, no --certs"),
                );
            }
            // The wrong trust anchor: same name as the root, another key.
            let impostor = tsa.path("impostor-root.pem");
            let mut args = vec![p(&data), "--trust", p(&impostor), "--token", p(&resp)];
            args.extend(&certs);
            stamp_verify(d, &args, 1, &format!("{what}, wrong trust anchor"));
            // --json: the same verdict and what the token says.
            let mut args = vec![p(&data), "--trust", p(&root), "--token", p(&resp), "--json"];
            args.extend(&certs);
            let run = stamp_verify(d, &args, 0, &format!("{what}, --json"));
            let json: serde_json::Value = serde_json::from_str(&run.stdout)
                .unwrap_or_else(|e| panic!("{what}: JSON: {e}: {run}"));
            assert_eq!(
                json["verified"],
                serde_json::Value::Bool(true),
                "{what}: {json}"
            );
            assert!(
                run.stdout.contains("1.2.3.4.1"),
                "{what}: the policy is reported: {json}"
            );
        }
    }
    assert!(
        saw_fraction,
        "{}: clock_precision_digits = 3 gave no fractional genTime in 6 tokens",
        v.name
    );
    // The token beside the file: report.txt.tsr.
    let (resp, _) = tsa.stamp(&data, "-sha256", true, "beside");
    std::fs::copy(&resp, d.join("report.txt.tsr")).expect("copy");
    stamp_verify(
        d,
        &[p(&data), "--trust", p(&root)],
        0,
        &format!("{}: token found beside the file", v.name),
    );
    stamp_verify(
        d,
        &[
            p(&data),
            "--trust",
            p(&root),
            "--token",
            p(&d.join("missing.tsr")),
        ],
        2,
        "missing token file",
    );
}

#[test]
fn stamp_verifies_openssl_rsa_tokens_with_ess_cert_id_sha1() {
    check_variant(&Variant {
        name: "RSA-2048 ESSCertID",
        keygen: RSA,
        signer_digest: "sha256",
        ess_cert_id_alg: "sha1",
        include_root: false,
    });
}

#[test]
fn stamp_verifies_openssl_rsa_tokens_with_ess_cert_id_v2() {
    check_variant(&Variant {
        name: "RSA-2048 ESSCertIDv2",
        keygen: RSA,
        signer_digest: "sha256",
        ess_cert_id_alg: "sha256",
        include_root: true,
    });
}

#[test]
fn stamp_verifies_openssl_p256_tokens_with_ess_cert_id_sha1() {
    check_variant(&Variant {
        name: "P-256 ESSCertID",
        keygen: P256,
        signer_digest: "sha256",
        ess_cert_id_alg: "sha1",
        include_root: true,
    });
}

#[test]
fn stamp_verifies_openssl_p256_tokens_with_ess_cert_id_v2() {
    check_variant(&Variant {
        name: "P-256 ESSCertIDv2",
        keygen: P256,
        signer_digest: "sha256",
        ess_cert_id_alg: "sha256",
        include_root: false,
    });
}

#[test]
fn stamp_verifies_openssl_p384_tokens_signed_with_sha384() {
    check_variant(&Variant {
        name: "P-384 ESSCertIDv2",
        keygen: P384,
        signer_digest: "sha384",
        ess_cert_id_alg: "sha256",
        include_root: false,
    });
}

#[test]
fn stamp_verifies_openssl_rsa_tokens_signed_with_sha512() {
    check_variant(&Variant {
        name: "RSA-2048 SHA-512",
        keygen: RSA,
        signer_digest: "sha512",
        ess_cert_id_alg: "sha256",
        include_root: false,
    });
}

#[test]
fn unusual_but_valid_requests_verify_with_openssl() {
    // Requests openssl never builds but other clients do; each must be granted and the reply
    // must satisfy `openssl ts -verify -queryfile` (nonce echoed byte for byte, imprint
    // algorithm kept as sent).
    use sigillum_tests::der::{self, ReqSpec};
    let server = TsaServer::start();
    let dir = server.work_dir();
    let data = write_file(dir, "unusual.txt", b"unusual requests");
    let base = || ReqSpec {
        imprint: pki::HashAlg::Sha256.digest(b"unusual requests"),
        ..ReqSpec::sha256(b"")
    };
    let cases = [
        (
            "negative nonce",
            ReqSpec {
                nonce_content: Some(vec![0x80, 0x01]),
                ..base()
            },
        ),
        (
            "zero nonce",
            ReqSpec {
                nonce_content: Some(vec![0x00]),
                ..base()
            },
        ),
        (
            "64-byte nonce",
            ReqSpec {
                nonce: Some(vec![0x7f; 64]),
                ..base()
            },
        ),
        (
            "no nonce, no certReq",
            ReqSpec {
                nonce: None,
                cert_req: false,
                ..base()
            },
        ),
        (
            "absent hash parameters",
            ReqSpec {
                hash_params: None,
                ..base()
            },
        ),
        (
            "the default policy asked for",
            ReqSpec {
                policy: Some(der::DEV_POLICY.into()),
                ..base()
            },
        ),
    ];
    for (i, (what, spec)) in cases.into_iter().enumerate() {
        let q = write_file(dir, &format!("u{i}.tsq"), &spec.encode());
        let reply = server.post_query(&spec.encode());
        let token = sigillum_tests::granted_token(&reply);
        let r = write_file(dir, &format!("u{i}.tsr"), &reply.body);
        let v = ok(
            dir,
            &[
                "ts",
                "-verify",
                "-queryfile",
                p(&q),
                "-in",
                p(&r),
                "-CAfile",
                p(&server.root_pem()),
                "-untrusted",
                p(&server.tsa_pem()),
            ],
        );
        assert!(v.stdout.contains("Verification: OK"), "{what}: {v}");
        let v = ok(
            dir,
            &[
                "ts",
                "-verify",
                "-data",
                p(&data),
                "-in",
                p(&r),
                "-CAfile",
                p(&server.root_pem()),
                "-untrusted",
                p(&server.tsa_pem()),
            ],
        );
        assert!(v.stdout.contains("Verification: OK"), "{what} (-data): {v}");
        assert_eq!(
            token
                .tst_info
                .message_imprint
                .hash_algorithm
                .parameters
                .is_some(),
            spec.hash_params.is_some(),
            "{what}: imprint algorithm kept as sent"
        );
    }
}
