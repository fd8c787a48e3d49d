//! OpenSSL as the authority, `stamp verify` as the verifier: tokens made by `openssl ts -reply`
//! (RSA and ECDSA keys, `clock_precision_digits = 3`, ESSCertID with SHA-1 and ESSCertIDv2 with
//! SHA-256, with and without certificates, DER and BER) are verified by `stamp verify`, and
//! refused for the wrong data or the wrong trust anchor.
//!
//! Keys and certificates are made fresh in a temporary directory on every run, with the
//! commands recorded in tests/vectors/README.md.

use sigillum_tests::openssl_ca::{CERT_CONFIG, ok, path_str as p, stamp_verify, ts_verify_ok};
use sigillum_tests::{read_file, write_file};
use std::path::{Path, PathBuf};

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
    /// `ess_cert_id_chain = yes`: ESSCertIDs for the chain too, not only the signer.
    ess_chain: bool,
}

const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];

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
             ess_cert_id_chain = {}\n\
             ess_cert_id_alg = {}\n",
            v.signer_digest,
            if v.ess_chain { "yes" } else { "no" },
            v.ess_cert_id_alg
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
        ts_verify_ok(
            d,
            p(&q),
            p(&r),
            "root.pem",
            &["-untrusted", p(&untrusted)],
            "",
        );
        (r, t)
    }
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
        ess_chain: false,
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
        ess_chain: false,
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
        ess_chain: false,
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
        ess_chain: false,
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
        ess_chain: false,
    });
}

#[test]
fn stamp_verifies_openssl_tokens_with_ess_cert_ids_for_the_whole_chain() {
    check_variant(&Variant {
        name: "RSA-2048 ESSCertIDv2 chain",
        keygen: RSA,
        signer_digest: "sha256",
        ess_cert_id_alg: "sha256",
        include_root: true,
        ess_chain: true,
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
        ess_chain: false,
    });
}

#[test]
fn stamp_verifies_a_ber_encoded_openssl_token() {
    // Streaming encoders write indefinite lengths and chunked OCTET STRINGs; the verifier must
    // normalise them and hash the joined eContent.
    let v = Variant {
        name: "P-256 BER",
        keygen: P256,
        signer_digest: "sha256",
        ess_cert_id_alg: "sha256",
        include_root: false,
        ess_chain: false,
    };
    let tsa = OpensslTsa::new(&v);
    let d = tsa.dir.path();
    let data = write_file(d, "ber.txt", b"a token in BER");
    let (_, token) = tsa.stamp(&data, "-sha256", true, "ber");
    let ber = sigillum_tests::der::token_to_ber(&read_file(&token));
    let ber_path = write_file(d, "converted-ber.token", &ber);
    assert_ne!(read_file(&token), ber, "the token was re-encoded");
    // openssl reads the BER token too: the conversion is valid BER.
    let v = ok(
        d,
        &[
            "ts",
            "-verify",
            "-data",
            p(&data),
            "-in",
            p(&ber_path),
            "-token_in",
            "-CAfile",
            "root.pem",
        ],
    );
    assert!(v.stdout.contains("Verification: OK"), "{v}");
    stamp_verify(
        d,
        &[
            p(&data),
            "--trust",
            p(&tsa.path("root.pem")),
            "--token",
            p(&ber_path),
        ],
        0,
        "BER token",
    );
    let other = write_file(d, "other.txt", b"not it");
    stamp_verify(
        d,
        &[
            p(&other),
            "--trust",
            p(&tsa.path("root.pem")),
            "--token",
            p(&ber_path),
        ],
        1,
        "BER token, wrong data",
    );
}
