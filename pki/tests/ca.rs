//! The CA's issuing core against openssl: email certificates for signing and encryption (EC and
//! RSA keys) that `openssl verify -purpose smimesign/smimeencrypt` accepts under the development
//! root, with the extensions the issue names; a CRL that `openssl crl` verifies and that makes
//! `openssl verify -crl_check` refuse the revoked certificate and accept the other; and the
//! refusals (bad address, zero serial, a CA key that is not the certificate's).

use pki::ca::{Ca, EmailCertificate, Revoked, Usage};
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::signer::{RingSigner, RsaPadding};
use std::path::{Path, PathBuf};
use std::process::Command;
use x509_cert::ext::pkix::CrlReason;

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A key made by openssl; returns its SubjectPublicKeyInfo DER.
fn public_key(dir: &Path, name: &str, algorithm: &[&str]) -> Vec<u8> {
    let key = format!("{name}.key");
    let mut args = vec!["genpkey", "-out", key.as_str()];
    args.extend_from_slice(algorithm);
    let (ok, out) = openssl(dir, &args);
    assert!(ok, "{out}");
    let der = format!("{name}.spki.der");
    let (ok, out) = openssl(
        dir,
        &[
            "pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", &der,
        ],
    );
    assert!(ok, "{out}");
    std::fs::read(dir.join(der)).expect("spki")
}

fn write_pem(dir: &Path, name: &str, der: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pki::cert::to_pem(&[der.to_vec()]).expect("pem")).expect("write");
    path
}

const EC: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];

struct Setup {
    dir: tempfile::TempDir,
    dev: DevPki,
    signer: RingSigner,
    cert: SignerCert,
}

fn setup() -> Setup {
    let dev = DevPki::generate(DevKeyType::EcdsaP256).expect("dev pki");
    let signer = RingSigner::from_pkcs8_der(&dev.root_key, RsaPadding::Pkcs1).expect("root key");
    let cert = SignerCert::from_der(dev.root_cert.clone()).expect("root");
    let dir = tempfile::tempdir().expect("tempdir");
    write_pem(dir.path(), "root.pem", &dev.root_cert);

    Setup {
        dir,
        dev,
        signer,
        cert,
    }
}

fn ca(s: &Setup) -> Ca<'_> {
    Ca {
        signer: &s.signer,
        cert: &s.cert,
        ocsp_url: Some("http://127.0.0.1:3161/ocsp".into()),
        ca_issuers_url: Some("http://127.0.0.1:3161/ca.crt".into()),
        crl_url: Some("http://127.0.0.1:3161/ca.crl".into()),
    }
}

fn now() -> i64 {
    pki::gentime::unix_now()
}

fn issue(s: &Setup, spki: &[u8], email: &str, usage: Usage, serial: &[u8]) -> Vec<u8> {
    ca(s)
        .issue(&EmailCertificate {
            public_key_info: spki,
            email,
            common_name: None,
            usage,
            serial,
            validity: (now() - 60, now() + 365 * 86_400),
        })
        .expect("issue")
}

#[test]
fn signing_and_encryption_certificates_verify_in_openssl_with_their_extensions() {
    let s = setup();
    let d = s.dir.path();
    let cases = [
        (
            "ec-sign",
            EC,
            Usage::Signing,
            "smimesign",
            "Digital Signature, Non Repudiation",
        ),
        // openssl's smimeencrypt purpose demands keyEncipherment of every key type; RFC 8550
        // §4.4.2 (and the issue) want keyAgreement for an EC key: its chain is checked without
        // a purpose.
        ("ec-enc", EC, Usage::Encryption, "", "Key Agreement"),
        (
            "rsa-sign",
            RSA,
            Usage::Signing,
            "smimesign",
            "Digital Signature, Non Repudiation",
        ),
        (
            "rsa-enc",
            RSA,
            Usage::Encryption,
            "smimeencrypt",
            "Key Encipherment",
        ),
    ];
    for (i, (name, alg, usage, purpose, key_usage)) in cases.into_iter().enumerate() {
        let spki = public_key(d, name, alg);
        let serial = [0x80, 0, 0, u8::try_from(i).expect("small") + 1];
        let der = issue(&s, &spki, "alice@bank.example", usage, &serial);
        let pem = write_pem(d, &format!("{name}.pem"), &der);
        let pem = pem.to_str().expect("path");
        let mut args = vec!["verify", "-CAfile", "root.pem"];
        if !purpose.is_empty() {
            args.extend(["-purpose", purpose]);
        }
        args.push(pem);
        let (ok, out) = openssl(d, &args);
        let (text_ok, text) = openssl(d, &["x509", "-in", pem, "-noout", "-text"]);
        assert!(text_ok, "{text}");
        assert!(ok && out.contains(": OK"), "{name}: {out}\n{text}");
        for expected in [
            key_usage,
            "E-mail Protection",
            "email:alice@bank.example",
            "OCSP - URI:http://127.0.0.1:3161/ocsp",
            "CA Issuers - URI:http://127.0.0.1:3161/ca.crt",
            "URI:http://127.0.0.1:3161/ca.crl",
            "CA:FALSE",
            "Subject Key Identifier",
            "Authority Key Identifier",
        ] {
            assert!(
                text.contains(expected),
                "{name}: no {expected:?} in\n{text}"
            );
        }
        // The serial's high bit did not make it negative: a leading zero was added.
        let serial_text = format!("(0x8000000{})", i + 1);
        assert!(
            text.contains(&serial_text),
            "{name}: no {serial_text} in\n{text}"
        );
        // Our own path validation agrees (emailProtection).
        pki::verify::validate_path(
            &der,
            &[],
            std::slice::from_ref(&s.dev.root_cert),
            u64::try_from(now()).expect("now"),
            pki::oid::ID_KP_EMAIL_PROTECTION_BYTES,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_crl_verifies_and_revokes_exactly_the_listed_serial() {
    let s = setup();
    let d = s.dir.path();
    let spki = public_key(d, "user", EC);
    let revoked = issue(&s, &spki, "bob@bank.example", Usage::Signing, &[0x11]);
    let kept = issue(&s, &spki, "bob@bank.example", Usage::Signing, &[0x12]);
    write_pem(d, "revoked.pem", &revoked);
    write_pem(d, "kept.pem", &kept);
    let crl = ca(&s)
        .crl(
            &[Revoked {
                serial: vec![0x11],
                at: now() - 10,
                reason: Some(CrlReason::KeyCompromise),
            }],
            now() - 10,
            now() + 86_400,
            7,
        )
        .expect("crl");
    std::fs::write(d.join("ca.crl"), &crl).expect("write");
    let pem = der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, &crl).expect("pem");
    std::fs::write(d.join("ca.crl.pem"), pem).expect("write");

    let (ok, text) = openssl(
        d,
        &[
            "crl", "-inform", "DER", "-in", "ca.crl", "-CAfile", "root.pem", "-noout", "-text",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
    for expected in [
        "Serial Number: 11",
        "Key Compromise",
        "X509v3 CRL Number",
        "7",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    assert!(!text.contains("Serial Number: 12"), "{text}");

    let check = |cert: &str| {
        openssl(
            d,
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-CRLfile",
                "ca.crl.pem",
                cert,
            ],
        )
    };
    let (ok, out) = check("revoked.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = check("kept.pem");
    assert!(ok && out.contains(": OK"), "{out}");
}

#[test]
fn bad_requests_are_refused_and_nothing_is_issued() {
    let s = setup();
    let d = s.dir.path();
    let spki = public_key(d, "user", EC);
    let attempt = |email: &str, serial: &[u8], validity: (i64, i64), spki: &[u8]| {
        ca(&s).issue(&EmailCertificate {
            public_key_info: spki,
            email,
            common_name: None,
            usage: Usage::Signing,
            serial,
            validity,
        })
    };
    let v = (now(), now() + 100);
    for (email, serial, validity, key, words) in [
        ("no-at-sign", &[1u8][..], v, &spki[..], "no local part"),
        ("zoë@bank.example", &[1], v, &spki, "not ASCII"),
        ("a@b.example", &[0, 0], v, &spki, "zero"),
        ("a@b.example", &[1; 21], v, &spki, "20 octets"),
        ("a@b.example", &[1], (now(), now() - 1), &spki, "notAfter"),
        (
            "a@b.example",
            &[1],
            v,
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            "public key",
        ),
    ] {
        let e = attempt(email, serial, validity, key).expect_err(words);
        assert!(format!("{e}").contains(words), "{words}: {e}");
    }
    // A CA key that is not the CA certificate's signs nothing.
    let other = DevPki::generate(DevKeyType::EcdsaP256).expect("other");
    let wrong = RingSigner::from_pkcs8_der(&other.root_key, RsaPadding::Pkcs1).expect("key");
    let mismatched = Ca {
        signer: &wrong,
        ..ca(&s)
    };
    let e = mismatched
        .crl(&[], now(), now() + 10, 1)
        .expect_err("mismatch");
    assert!(format!("{e}").contains("does not belong"), "{e}");
}

/// The OCSP responder core against `openssl ocsp`: a request openssl makes (two of our
/// certificates, one of another CA, a nonce) is answered good, revoked and unknown, signed by
/// the CA, with the nonce echoed; a malformed request gets malformedRequest.
#[test]
fn ocsp_answers_openssl_good_revoked_and_unknown() {
    let s = setup();
    let d = s.dir.path();
    let spki = public_key(d, "user", EC);
    write_pem(
        d,
        "good.pem",
        &issue(&s, &spki, "carol@bank.example", Usage::Signing, &[0x21]),
    );
    write_pem(
        d,
        "gone.pem",
        &issue(&s, &spki, "carol@bank.example", Usage::Signing, &[0x22]),
    );
    let (ok, out) = openssl(
        d,
        &[
            "ocsp", "-issuer", "root.pem", "-cert", "good.pem", "-cert", "gone.pem", "-nonce",
            "-reqout", "req.der",
        ],
    );
    assert!(ok, "{out}");
    let req = std::fs::read(d.join("req.der")).expect("request");
    let q = pki::ca::parse_request(&req).expect("parse");
    assert_eq!(q.serials(), vec![vec![0x21], vec![0x22]]);
    let revoked_at = now() - 3600;
    let status = |serial: &[u8]| match serial {
        [0x21] => pki::ca::Status::Good,
        [0x22] => pki::ca::Status::Revoked {
            at: revoked_at,
            reason: Some(CrlReason::Superseded),
        },
        _ => pki::ca::Status::Unknown,
    };
    let resp = ca(&s)
        .ocsp_response(&q, &status, now(), now() + 3600, None)
        .expect("response");
    std::fs::write(d.join("resp.der"), &resp).expect("write");
    // The signature and the nonce, against the request openssl made.
    let (ok, out) = openssl(
        d,
        &[
            "ocsp", "-respin", "resp.der", "-reqin", "req.der", "-issuer", "root.pem", "-CAfile",
            "root.pem",
        ],
    );
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(
        !out.contains("WARNING: no nonce"),
        "the nonce is echoed: {out}"
    );
    // Each certificate's status (with -cert, openssl makes a request of its own, without the
    // first one's nonce).
    let (ok, out) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            "root.pem",
            "-CAfile",
            "root.pem",
            "-cert",
            "good.pem",
            "-cert",
            "gone.pem",
            "-no_nonce",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("good.pem: good"), "{out}");
    assert!(out.contains("gone.pem: revoked"), "{out}");
    assert!(out.contains("superseded"), "{out}");

    // A certificate of another CA: this responder does not know it.
    let other = setup();
    write_pem(d, "other-root.pem", &other.dev.root_cert);
    write_pem(
        d,
        "other.pem",
        &issue(
            &other,
            &spki,
            "dave@elsewhere.example",
            Usage::Signing,
            &[0x21],
        ),
    );
    let (ok, out) = openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "other-root.pem",
            "-cert",
            "other.pem",
            "-reqout",
            "other-req.der",
        ],
    );
    assert!(ok, "{out}");
    let q = pki::ca::parse_request(&std::fs::read(d.join("other-req.der")).expect("req"))
        .expect("parse");
    let resp = ca(&s)
        .ocsp_response(&q, &status, now(), now() + 3600, None)
        .expect("response");
    std::fs::write(d.join("other-resp.der"), &resp).expect("write");
    let (_, out) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "other-resp.der",
            "-resp_text",
            "-noverify",
        ],
    );
    assert!(out.contains("Cert Status: unknown"), "{out}");

    // Malformed requests.
    for bad in [&b"not der"[..], &[0x30, 0x00], &[0x30, 0x80, 0x00, 0x00]] {
        assert!(pki::ca::parse_request(bad).is_err());
    }
    let err = pki::ca::error_response(pki::ca::OcspResponseStatus::MalformedRequest).expect("der");
    std::fs::write(d.join("err.der"), &err).expect("write");
    let (_, out) = openssl(
        d,
        &["ocsp", "-respin", "err.der", "-resp_text", "-noverify"],
    );
    assert!(
        out.contains("malformedrequest") || out.contains("malformedRequest"),
        "{out}"
    );
}
