//! CMP message protection against `openssl cmp`: the ir and cr it sends with `-secret` (RFC
//! 4210 PasswordBasedMac) parse, and their MAC verifies with the secret and not with another
//! or over a changed byte; PBMAC1 (RFC 9481 §6.1.1) on the same message agrees with Python's
//! hashlib (PBKDF2 and HMAC computed independently). Malformed messages are errors.

use der::Encode;
use der::asn1::{ObjectIdentifier, OctetString};
use pki::raw::{RawTlv, context, tlv};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A request as `openssl cmp` sends it (the server is unreachable: `-reqout` keeps the bytes).
fn openssl_request(dir: &Path, cmd: &str) -> Vec<u8> {
    let out = openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
    );
    assert!(dir.join("k.pem").is_file(), "{out}");
    let req = format!("{cmd}.der");
    let out = openssl(
        dir,
        &[
            "cmp",
            "-cmd",
            cmd,
            "-server",
            "127.0.0.1:9",
            "-path",
            "/.well-known/cmp",
            "-ref",
            "12345",
            "-secret",
            "pass:sesame",
            "-newkey",
            "k.pem",
            "-subject",
            "/CN=alice@bank.example",
            "-certout",
            "new.pem",
            "-reqout",
            &req,
            "-msg_timeout",
            "1",
            "-total_timeout",
            "2",
        ],
    );
    std::fs::read(dir.join(&req)).unwrap_or_else(|e| panic!("{req}: {e}\n{out}"))
}

#[test]
fn openssl_password_based_mac_requests_verify_with_the_secret_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (cmd, body_type) in [("ir", 0u8), ("cr", 2)] {
        let der = openssl_request(dir.path(), cmd);
        let m = pki::cmp::parse(&der).expect("parse");
        assert_eq!(m.pvno, 2, "{cmd}");
        assert_eq!(m.body_type, body_type, "{cmd}");
        assert_eq!(m.sender_kid.as_deref(), Some(&b"12345"[..]), "{cmd}");
        assert_eq!(m.transaction_id.as_ref().map(Vec::len), Some(16), "{cmd}");
        assert_eq!(m.sender_nonce.as_ref().map(Vec::len), Some(16), "{cmd}");
        assert_eq!(
            m.protection_alg.as_ref().map(|a| a.oid),
            Some(pki::pbmac::ID_PASSWORD_BASED_MAC),
            "{cmd}"
        );
        assert!(m.verify_mac(b"sesame").expect("verify"), "{cmd}");
        assert!(!m.verify_mac(b"Sesame").expect("verify"), "{cmd}");

        // A changed byte inside the body (the proof-of-possession signature's value, just
        // before the protection) is still DER, but breaks the MAC.
        let mut changed = der.clone();
        let at = changed.len() - 40;
        changed[at] ^= 1;
        let m = pki::cmp::parse(&changed).expect("still DER");
        assert!(!m.verify_mac(b"sesame").expect("verify"), "{cmd}");
    }
}

/// AlgorithmIdentifier DER.
fn alg(oid: &str, params: Option<&[u8]>) -> Vec<u8> {
    let oid = ObjectIdentifier::new(oid)
        .expect("oid")
        .to_der()
        .expect("der");
    match params {
        Some(p) => tlv(der::Tag::Sequence, &[&oid, p]).expect("der"),
        None => tlv(der::Tag::Sequence, &[&oid]).expect("der"),
    }
}

/// `original`'s header with protectionAlg replaced by `protection_alg` (DER), and the body and
/// what follows it, as received.
fn with_protection_alg(original: &[u8], protection_alg: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let msg = RawTlv::parse(original, "msg").expect("msg");
    let parts = msg.children("msg").expect("parts");
    let new_alg = tlv(context(1, true), &[protection_alg]).expect("der");
    let fields = parts[0].children("header").expect("fields");
    let header_fields: Vec<&[u8]> = fields
        .iter()
        .map(|f| {
            if f.tag == context(1, true) {
                new_alg.as_slice()
            } else {
                f.full
            }
        })
        .collect();
    let header = tlv(der::Tag::Sequence, &header_fields).expect("der");
    (header, parts[1..].iter().map(|p| p.full.to_vec()).collect())
}

#[test]
fn pbmac1_protection_agrees_with_python_hashlib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let original = openssl_request(d, "ir");
    // PBMAC1-params: PBKDF2 (salt, 10000 iterations, keyLength 32, hmacWithSHA256),
    // messageAuthScheme hmacWithSHA256.
    let salt = b"sigillum-salt-16";
    let hmac256 = alg(
        "1.2.840.113549.2.9",
        Some(&der::asn1::Null.to_der().expect("null")),
    );
    let pbkdf2_params = tlv(
        der::Tag::Sequence,
        &[
            &OctetString::new(&salt[..])
                .expect("salt")
                .to_der()
                .expect("der"),
            &10_000u32.to_der().expect("der"),
            &32u32.to_der().expect("der"),
            &hmac256,
        ],
    )
    .expect("der");
    let kdf = alg("1.2.840.113549.1.5.12", Some(&pbkdf2_params));
    let pbmac1_params = tlv(der::Tag::Sequence, &[&kdf, &hmac256]).expect("der");
    let protection_alg = alg("1.2.840.113549.1.5.14", Some(&pbmac1_params));

    // The same header with protectionAlg replaced, the same body.
    let (header, rest) = with_protection_alg(&original, &protection_alg);
    let protected_part = tlv(der::Tag::Sequence, &[&header, &rest[0]]).expect("der");
    let algorithm = spki::AlgorithmIdentifierOwned {
        oid: pki::pbmac::ID_PBMAC1,
        parameters: Some(der::Decode::from_der(&pbmac1_params).expect("params")),
    };
    let mac = pki::pbmac::mac(&algorithm, &protected_part, b"sesame").expect("mac");

    // Python computes the same MAC from the same bytes with hashlib and hmac.
    std::fs::write(d.join("part.der"), &protected_part).expect("write");
    let py = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg("-c")
        .arg(
            "import hashlib,hmac,sys;p=open(sys.argv[1],'rb').read();\
             k=hashlib.pbkdf2_hmac('sha256',b'sesame',sys.argv[2].encode(),10000,32);\
             print(hmac.new(k,p,'sha256').hexdigest())",
        )
        .arg(d.join("part.der"))
        .arg(std::str::from_utf8(salt).expect("ascii"))
        .output()
        .expect("python runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        hex::encode(&mac),
        "PBMAC1 disagrees with hashlib"
    );

    let bits = der::asn1::BitString::from_bytes(&mac)
        .expect("bits")
        .to_der()
        .expect("der");
    let protection = tlv(context(0, true), &[&bits]).expect("der");
    let message = tlv(der::Tag::Sequence, &[&header, &rest[0], &protection]).expect("der");
    let m = pki::cmp::parse(&message).expect("parse");
    assert_eq!(
        m.protection_alg.as_ref().map(|a| a.oid),
        Some(pki::pbmac::ID_PBMAC1)
    );
    assert!(m.verify_mac(b"sesame").expect("verify"));
    assert!(!m.verify_mac(b"sesam").expect("verify"));
}

#[test]
fn malformed_messages_are_errors_not_panics() {
    for bad in [
        &b""[..],
        b"not der",
        &[0x30, 0x00],
        &[0x30, 0x03, 0x02, 0x01, 0x02],
        &[0x30, 0x80, 0x00, 0x00],
    ] {
        assert!(pki::cmp::parse(bad).is_err(), "{bad:?}");
    }
    let huge = vec![0u8; pki::cmp::MAX_MESSAGE + 1];
    assert!(pki::cmp::parse(&huge).is_err());
}

/// A MAC asking for more key-derivation work than a network message may buy is refused before
/// any hashing (one request must not cost the server seconds of CPU).
#[test]
fn excessive_iteration_counts_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = openssl_request(dir.path(), "ir");
    let sha256 = alg("2.16.840.1.101.3.4.2.1", None);
    let hmac_sha1 = alg("1.3.6.1.5.5.8.1.2", None);
    let pbm = tlv(
        der::Tag::Sequence,
        &[
            &OctetString::new(&b"salt"[..])
                .expect("salt")
                .to_der()
                .expect("der"),
            &sha256,
            &10_000_000u32.to_der().expect("der"),
            &hmac_sha1,
        ],
    )
    .expect("der");
    let protection_alg = alg("1.2.840.113533.7.66.13", Some(&pbm));
    let (header, rest) = with_protection_alg(&original, &protection_alg);
    let mut all: Vec<&[u8]> = vec![header.as_slice()];
    all.extend(rest.iter().map(Vec::as_slice));
    let message = tlv(der::Tag::Sequence, &all).expect("der");
    let m = pki::cmp::parse(&message).expect("parse");
    let e = m.verify_mac(b"sesame").expect_err("too many iterations");
    assert!(format!("{e}").contains("iterations"), "{e}");
}
