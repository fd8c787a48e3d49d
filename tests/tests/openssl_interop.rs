//! OpenSSL as the client of our server: `openssl ts -query` → `tsa serve` over real HTTP →
//! `openssl ts -verify` says "Verification: OK", for SHA-256/384/512, with and without certReq,
//! with and without a nonce (all 12 combinations); `openssl ts -reply -text` shows our token
//! profile; requests openssl never makes but other clients do; configured accuracy; a chain
//! with an intermediate CA. The other direction (openssl as the authority) is in
//! openssl_tokens.rs.
//!
//! Keys and certificates are made fresh in a temporary directory on every run, with the
//! commands recorded in tests/vectors/README.md.

use sigillum_tests::openssl_ca::{
    CERT_CONFIG, field, ok, path_str as p, pem_cert_der as pki_cert_der, stamp_verify, ts_verify_ok,
};
use sigillum_tests::{TsaServer, openssl, read_file, write_file};

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
                let untrusted: &[&str] = if cert { &[] } else { &["-untrusted", p(&tsa)] };
                ts_verify_ok(&dir, p(&q), p(&r), p(&root), untrusted, &name);
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
                let untrusted: &[&str] = if cert { &[] } else { &["-untrusted", p(&tsa)] };
                let mut extra = vec!["-token_in"];
                extra.extend_from_slice(untrusted);
                ts_verify_ok(
                    &dir,
                    p(&q),
                    p(&t),
                    p(&root),
                    &extra,
                    &format!("{name} token"),
                );
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
    ts_verify_ok(
        dir,
        p(&q),
        p(&r),
        p(&server.root_pem()),
        &["-untrusted", p(&chain)],
        "",
    );
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
        ts_verify_ok(
            dir,
            p(&q),
            p(&r),
            p(&server.root_pem()),
            &["-untrusted", p(&server.tsa_pem())],
            what,
        );
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

#[test]
fn configured_accuracy_policy_and_no_tsa_name_as_openssl_reads_them() {
    // Accuracy millis and micros are [0] and [1] IMPLICIT INTEGERs (RFC 3161 §2.4.2): a tagging
    // mistake there would show up as an openssl parse failure.
    let server = TsaServer::start_with(sigillum_tests::TsaOptions {
        config: Some(
            "allow_unsynced_clock = true\n[policy]\ndefault = \"1.2.3.4.1\"\naccuracy_millis = 500\n\
             accuracy_micros = 250\ninclude_tsa_name = false\n"
                .into(),
        ),
        ..sigillum_tests::TsaOptions::default()
    });
    let dir = server.work_dir();
    let data = write_file(dir, "acc.txt", b"accuracy");
    let q = dir.join("q.tsq");
    ok(
        dir,
        &[
            "ts",
            "-query",
            "-data",
            p(&data),
            "-sha256",
            "-cert",
            "-out",
            p(&q),
        ],
    );
    let r = write_file(dir, "r.tsr", &server.post_query(&read_file(&q)).body);
    ts_verify_ok(dir, p(&q), p(&r), p(&server.root_pem()), &[], "");
    let text = ok(dir, &["ts", "-reply", "-in", p(&r), "-text"]).stdout;
    assert_eq!(
        field(&text, "Accuracy:"),
        "unspecified seconds, 0x01F4 millis, 0xFA micros",
        "{text}"
    );
    assert_eq!(field(&text, "TSA:"), "unspecified", "{text}");
    // openssl names 1.2.3.4.1 "tsa_policy1" from its own OID table.
    let policy = field(&text, "Policy OID:");
    assert!(policy == "1.2.3.4.1" || policy == "tsa_policy1", "{text}");
    let token = pki::token::ParsedToken::parse(&read_file(&r)).expect("token");
    assert_eq!(token.info().policy, "1.2.3.4.1");
}

#[test]
fn an_intermediate_ca_is_included_and_the_root_is_not() {
    // Windows' WinVerifyTrust fails unless a token carries the whole chain below the root
    // (DESIGN.md): with root -> intermediate -> TSA, certReq must bring TSA and intermediate,
    // signer first, and never the root; openssl then verifies with the root alone.
    let keys = tempfile::Builder::new()
        .prefix("sigillum-chain-")
        .tempdir()
        .expect("tempdir");
    let k = keys.path();
    write_file(
        k,
        "certs.cnf",
        format!("{CERT_CONFIG}[v3_intermediate]\nbasicConstraints = critical,CA:TRUE,pathlen:0\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n").as_bytes(),
    );
    for args in [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "root.key",
        ][..],
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "inter.key",
        ],
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "tsa.key",
        ],
        &[
            "req",
            "-config",
            "certs.cnf",
            "-new",
            "-x509",
            "-key",
            "root.key",
            "-subj",
            "/C=XX/O=Sigillum tests/CN=Chain Root",
            "-days",
            "3650",
            "-extensions",
            "v3_root",
            "-out",
            "root.pem",
        ],
        &[
            "req",
            "-config",
            "certs.cnf",
            "-new",
            "-key",
            "inter.key",
            "-subj",
            "/C=XX/O=Sigillum tests/CN=Chain Intermediate",
            "-out",
            "inter.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "2",
            "-days",
            "1825",
            "-extfile",
            "certs.cnf",
            "-extensions",
            "v3_intermediate",
            "-out",
            "inter.pem",
        ],
        &[
            "req",
            "-config",
            "certs.cnf",
            "-new",
            "-key",
            "tsa.key",
            "-subj",
            "/C=XX/O=Sigillum tests/CN=Chain TSA",
            "-out",
            "tsa.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-set_serial",
            "3",
            "-days",
            "365",
            "-extfile",
            "certs.cnf",
            "-extensions",
            "v3_tsa",
            "-out",
            "tsa.pem",
        ],
    ] {
        ok(k, args);
    }
    let chain = [
        read_file(&k.join("inter.pem")),
        read_file(&k.join("root.pem")),
    ]
    .concat();
    let chain_path = write_file(k, "chain.pem", &chain);
    let config = format!(
        "allow_unsynced_clock = true\n[key]\nfile = \"{}\"\ncertificate = \"{}\"\nchain = \"{}\"\n",
        p(&k.join("tsa.key")),
        p(&k.join("tsa.pem")),
        p(&chain_path)
    );
    let server = TsaServer::start_with(sigillum_tests::TsaOptions {
        config: Some(config),
        ..sigillum_tests::TsaOptions::default()
    });
    let dir = server.work_dir();
    let root = k.join("root.pem");
    let data = write_file(dir, "chain.txt", b"chain");
    let q = dir.join("q.tsq");
    ok(
        dir,
        &[
            "ts",
            "-query",
            "-data",
            p(&data),
            "-sha384",
            "-cert",
            "-out",
            p(&q),
        ],
    );
    let reply = server.post_query(&read_file(&q));
    let token = sigillum_tests::granted_token(&reply);
    assert_eq!(
        token.certificates,
        vec![
            pki_cert_der(&k.join("tsa.pem")),
            pki_cert_der(&k.join("inter.pem"))
        ],
        "TSA certificate, then the intermediate, and not the root"
    );
    let r = write_file(dir, "r.tsr", &reply.body);
    ts_verify_ok(dir, p(&q), p(&r), p(&root), &[], "");
    // /certs serves the same chain: TSA, intermediate, root.
    let certs = sigillum_tests::get(&format!("{}certs", server.url())).text();
    assert_eq!(certs.matches("BEGIN CERTIFICATE").count(), 3, "{certs}");
    // Without certReq: the chain from /certs as the untrusted set.
    let certs_path = write_file(dir, "certs.pem", certs.as_bytes());
    let q2 = dir.join("q2.tsq");
    ok(
        dir,
        &["ts", "-query", "-data", p(&data), "-sha256", "-out", p(&q2)],
    );
    let r2 = write_file(dir, "r2.tsr", &server.post_query(&read_file(&q2)).body);
    ts_verify_ok(
        dir,
        p(&q2),
        p(&r2),
        p(&root),
        &["-untrusted", p(&certs_path)],
        "",
    );
    // Our own verifier, on the same two tokens. The intermediate has no extendedKeyUsage at
    // all, like many timestamping CAs; RFC 5280 puts no EKU requirement on CA certificates.
    stamp_verify(
        dir,
        &[p(&data), "--trust", p(&root), "--token", p(&r)],
        0,
        "three-level chain",
    );
    stamp_verify(
        dir,
        &[
            p(&data),
            "--trust",
            p(&root),
            "--token",
            p(&r2),
            "--certs",
            p(&certs_path),
        ],
        0,
        "no certReq, --certs chain",
    );
}
