//! The asking side of OCSP ([`pki::ocsp`]) against two responders: `openssl ocsp` as a
//! responder (an index file, our request in, its answer out), and our CA's own responder core,
//! for the answers openssl will not make (stale, another signer, another certificate).

use pki::ca::{Ca, EmailCertificate, Usage};
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::ocsp::{Revocation, check_response, request};
use pki::signer::{RingSigner, RsaPadding};
use std::path::Path;
use std::process::Command;

struct Authority {
    signer: RingSigner,
    cert: SignerCert,
    der: Vec<u8>,
    key: Vec<u8>,
}

fn authority() -> Authority {
    let dev = DevPki::generate(DevKeyType::EcdsaP256).expect("dev pki");
    Authority {
        signer: RingSigner::from_pkcs8_der(&dev.root_key, RsaPadding::Pkcs1).expect("key"),
        cert: SignerCert::from_der(dev.root_cert.clone()).expect("root"),
        der: dev.root_cert,
        key: dev.root_key.to_vec(),
    }
}

impl Authority {
    fn ca(&self) -> Ca<'_> {
        Ca {
            signer: &self.signer,
            cert: &self.cert,
            ocsp_url: Some("http://127.0.0.1:9/ocsp".into()),
            ca_issuers_url: None,
            crl_url: None,
        }
    }

    fn issue(&self, serial: &[u8]) -> Vec<u8> {
        let (user, _) = RingSigner::generate_p256().expect("user key");
        let spki = pki::signer::subject_public_key_info(&user).expect("spki");
        self.ca()
            .issue(&EmailCertificate {
                public_key_info: &spki,
                email: "bob@example.org",
                common_name: None,
                usage: Usage::Encryption,
                serial,
                validity: (now() - 60, now() + 86_400),
            })
            .expect("issue")
    }

    /// Our responder's answer to `req` (DER), `status` for every serial, valid from `from` to
    /// `until`.
    fn answer(&self, req: &[u8], status: pki::ca::Status, from: i64, until: i64) -> Vec<u8> {
        let q = pki::ca::parse_request(req).expect("our request parses");
        self.ca()
            .ocsp_response(&q, &|_| status, from, until, None)
            .expect("response")
    }
}

fn now() -> i64 {
    pki::gentime::unix_now()
}

fn unow() -> u64 {
    u64::try_from(now()).expect("after 1970")
}

#[test]
fn the_url_comes_from_the_certificate() {
    let a = authority();
    let cert = a.issue(&[0x31]);
    assert_eq!(
        pki::ocsp::responder_url(&cert).as_deref(),
        Some("http://127.0.0.1:9/ocsp")
    );
    assert_eq!(pki::ocsp::responder_url(&a.der), None);
}

#[test]
fn good_revoked_and_unknown_from_our_responder() {
    let a = authority();
    let cert = a.issue(&[0x41]);
    let q = request(&cert, &a.der).expect("request");
    let good = a.answer(&q.der, pki::ca::Status::Good, now(), now() + 3600);
    assert_eq!(
        check_response(&q, &good, &a.der, unow()).expect("good"),
        Revocation::Good
    );
    let revoked = a.answer(
        &q.der,
        pki::ca::Status::Revoked {
            at: now() - 100,
            reason: Some(x509_cert::ext::pkix::CrlReason::KeyCompromise),
        },
        now(),
        now() + 3600,
    );
    match check_response(&q, &revoked, &a.der, unow()).expect("revoked") {
        Revocation::Revoked { reason, .. } => {
            assert_eq!(reason.as_deref(), Some("KeyCompromise"));
        }
        other => panic!("expected revoked, got {other:?}"),
    }
    let unknown = a.answer(&q.der, pki::ca::Status::Unknown, now(), now() + 3600);
    assert_eq!(
        check_response(&q, &unknown, &a.der, unow()).expect("unknown"),
        Revocation::Unknown
    );
}

fn refused(result: pki::Result<Revocation>, needle: &str) {
    match result {
        Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle:?}"),
        Ok(r) => panic!("accepted ({r:?}); expected a refusal naming {needle:?}"),
    }
}

#[test]
fn answers_that_cannot_be_trusted_are_refused() {
    let a = authority();
    let cert = a.issue(&[0x51]);
    let q = request(&cert, &a.der).expect("request");
    // Out of date: nextUpdate an hour ago.
    let stale = a.answer(&q.der, pki::ca::Status::Good, now() - 7200, now() - 3600);
    refused(check_response(&q, &stale, &a.der, unow()), "out of date");
    // Signed by another authority (which answers "good" for anything).
    let other = authority();
    let forged = other.answer(&q.der, pki::ca::Status::Good, now(), now() + 3600);
    refused(
        check_response(&q, &forged, &a.der, unow()),
        "signed neither",
    );
    // A genuine answer to another request: its nonce is not ours.
    let q2 = request(&cert, &a.der).expect("request");
    let replayed = a.answer(&q2.der, pki::ca::Status::Good, now(), now() + 3600);
    refused(check_response(&q, &replayed, &a.der, unow()), "nonce");
    // Not OCSP at all, and an unsigned error status.
    refused(
        check_response(&q, b"not OCSP", &a.der, unow()),
        "OCSP response",
    );
    refused(
        check_response(&q, b"\x30\x03\x0a\x01\x00", &a.der, unow()),
        "no responseBytes",
    );
    let try_later = pki::ca::error_response(x509_ocsp::OcspResponseStatus::TryLater).expect("err");
    refused(check_response(&q, &try_later, &a.der, unow()), "TryLater");
    // A request for a certificate with the wrong issuer is refused before it is sent.
    assert!(request(&cert, &other.der).is_err());
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

fn pem(dir: &Path, name: &str, label: &str, der: &[u8]) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    std::fs::write(
        dir.join(name),
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        ),
    )
    .expect("write");
}

/// openssl's responder (an index file as its database, the CA key signing) answers our
/// requests; we read its answers: good, then revoked.
#[test]
fn openssl_ocsp_as_responder_answers_our_requests() {
    let a = authority();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cert = a.issue(&[0x61]);
    pem(d, "ca.pem", "CERTIFICATE", &a.der);
    pem(d, "ca.key", "PRIVATE KEY", &a.key);
    pem(d, "bob.pem", "CERTIFICATE", &cert);
    let q = request(&cert, &a.der).expect("request");
    std::fs::write(d.join("req.der"), &q.der).expect("write");
    for (line, expected) in [
        ("V\t301231235959Z\t\t61\tunknown\t/CN=bob\n", "good"),
        (
            "R\t301231235959Z\t261201000000Z,keyCompromise\t61\tunknown\t/CN=bob\n",
            "revoked",
        ),
    ] {
        std::fs::write(d.join("index.txt"), line).expect("index");
        openssl(
            d,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-rsigner",
                "ca.pem",
                "-rkey",
                "ca.key",
                "-CA",
                "ca.pem",
                "-reqin",
                "req.der",
                "-respout",
                "resp.der",
                "-ndays",
                "1",
            ],
        );
        let resp = std::fs::read(d.join("resp.der")).expect("response");
        let got = check_response(&q, &resp, &a.der, unow()).expect("openssl's answer");
        match (expected, got) {
            ("good", Revocation::Good) => {}
            ("revoked", Revocation::Revoked { at, reason }) => {
                assert!(at.starts_with("2026-12-01"), "{at}");
                assert_eq!(reason.as_deref(), Some("KeyCompromise"));
            }
            (e, g) => panic!("expected {e}, got {g:?}"),
        }
    }
    // A genuine answer without our nonce and without nextUpdate (openssl's responder without
    // -ndays, to a request without a nonce): it could be a replay of any age.
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "bob.pem",
            "-no_nonce",
            "-reqout",
            "plain.der",
        ],
    );
    openssl(
        d,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            "plain.der",
            "-respout",
            "plain-resp.der",
        ],
    );
    let plain = std::fs::read(d.join("plain-resp.der")).expect("response");
    refused(
        check_response(&q, &plain, &a.der, unow()),
        "replay of any age",
    );
    // A genuine answer about another certificate (asked without a nonce, so that only the
    // CertID differs) says nothing of ours.
    pem(d, "other.pem", "CERTIFICATE", &a.issue(&[0x62]));
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "other.pem",
            "-no_nonce",
            "-reqout",
            "other.der",
        ],
    );
    let other_req = std::fs::read(d.join("other.der")).expect("request");
    let about_other = a.answer(&other_req, pki::ca::Status::Good, now(), now() + 3600);
    refused(
        check_response(&q, &about_other, &a.der, unow()),
        "says nothing",
    );
}
