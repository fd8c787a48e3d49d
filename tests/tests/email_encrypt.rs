//! Encrypted statements against tools that are not ours, on a mail CA made with the openssl
//! CLI:
//!
//! - `openssl cms -decrypt` reads what `stamp email encrypt` writes (AuthEnvelopedData with
//!   AES-256-GCM and EnvelopedData with AES-256-CBC; RSA-2048, EC P-256 and EC P-384
//!   recipients, several at once) and gives back the signed, timestamped message inside its
//!   message/rfc822 wrapper, which `openssl cms -verify` then accepts;
//! - `stamp email decrypt` reads what `openssl cms -encrypt` writes (AES-256-CBC and
//!   AES-256-GCM; RSA with PKCS#1 v1.5 and with OAEP-SHA-256, EC with OpenSSL's default KDF;
//!   `-stream` BER) and what Python `cryptography`'s PKCS7EnvelopeBuilder writes;
//! - refusals give clear errors and no plaintext: a key that is not a recipient (exit 1, the
//!   recipients named), a flipped bit in the ciphertext or tag (exit 1, one error), a truncated
//!   message and an unknown content cipher (exit 2, named), and certificates that may not be
//!   encrypted to (a signing certificate, another address);
//! - `stamp verify` on an encrypted message says "decrypt first" and names the recipients.

use base64::Engine;
use sigillum_tests::mail::{MailPki, Person, statement};
use sigillum_tests::openssl_ca::path_str as p;
use sigillum_tests::{Run, TsaServer, openssl, read_file, run, stamp, workspace_root, write_file};
use std::path::{Path, PathBuf};
use std::process::Command;

const ALICE: &str = "alice@bank.example";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";

struct World {
    dir: tempfile::TempDir,
    pki: MailPki,
    alice: Person,
    bob_rsa: Person,
    carol_ec: Person,
    dave_p384: Person,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = MailPki::new(dir.path(), "encrypt");
    World {
        alice: pki.person(ALICE, "ec"),
        bob_rsa: pki.encryption_person(BOB, "rsa"),
        carol_ec: pki.encryption_person(CAROL, "ec"),
        dave_p384: pki.encryption_person("dave@example.org", "p384"),
        pki,
        dir,
    }
}

impl World {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A statement from Alice, signed and timestamped by `stamp email sign`.
    fn signed_statement(&self, server: &TsaServer) -> PathBuf {
        let input = write_file(self.path(), "statement.eml", &statement(ALICE, 1));
        let url = server.url();
        let run = stamp(
            self.path(),
            &[
                "email",
                "sign",
                p(&input),
                "--key",
                p(&self.alice.key),
                "--cert",
                p(&self.alice.cert),
                "--tsa",
                &url,
                "-o",
                "signed.eml",
            ],
        );
        assert!(run.ok(), "stamp email sign: {run}");
        self.path().join("signed.eml")
    }

    fn encrypt(&self, input: &Path, out: &str, extra: &[&str]) -> Run {
        let mut args = vec!["email", "encrypt", p(input), "-o", out];
        args.extend_from_slice(extra);
        stamp(self.path(), &args)
    }

    /// `stamp verify FILE --trust CA --tsa-trust ROOT` must exit 0.
    fn verify_ok(&self, file: &str, server: &TsaServer, what: &str) {
        let verify = stamp(
            self.path(),
            &[
                "verify",
                file,
                "--trust",
                p(&self.pki.ca),
                "--tsa-trust",
                p(&server.root_pem()),
            ],
        );
        assert_eq!(verify.code, Some(0), "stamp verify of {what}: {verify}");
    }

    fn decrypt(&self, input: &str, person: &Person, out: &str, with_cert: bool) -> Run {
        let mut args = vec![
            "email",
            "decrypt",
            input,
            "--key",
            p(&person.key),
            "-o",
            out,
        ];
        if with_cert {
            args.extend_from_slice(&["--cert", p(&person.cert)]);
        }
        stamp(self.path(), &args)
    }
}

/// The body of an entity after its header block (CRLF CRLF).
fn after_headers(entity: &[u8]) -> &[u8] {
    let at = entity
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {:?}", String::from_utf8_lossy(entity)));
    &entity[at + 4..]
}

fn openssl_decrypt(w: &World, input: &str, person: &Person, out: &str) -> Vec<u8> {
    let run = openssl(
        w.path(),
        &[
            "cms",
            "-decrypt",
            "-in",
            input,
            "-recip",
            p(&person.cert),
            "-inkey",
            p(&person.key),
            "-out",
            out,
        ],
    );
    assert!(
        run.ok(),
        "openssl cms -decrypt {input} as {}: {run}",
        p(&person.cert)
    );
    read_file(&w.path().join(out))
}

#[test]
fn openssl_decrypts_what_we_encrypt_and_verifies_the_signed_message_inside() {
    let w = world();
    let server = TsaServer::start();
    let signed = w.signed_statement(&server);
    let signed_bytes = read_file(&signed);
    for (mode, flag) in [
        ("authEnveloped-data", None),
        ("enveloped-data", Some("--cbc")),
    ] {
        let out = format!("enc-{mode}.eml");
        let mut extra = vec![
            "--to",
            BOB,
            "--to",
            CAROL,
            "--recipient-cert",
            p(&w.bob_rsa.cert),
            "--recipient-cert",
            p(&w.carol_ec.cert),
            "--self-cert",
            p(&w.dave_p384.cert),
            "--outer-subject",
            "Your statement",
            "--trust",
            p(&w.pki.ca),
        ];
        extra.extend(flag);
        let run = w.encrypt(&signed, &out, &extra);
        assert!(run.ok(), "stamp email encrypt ({mode}): {run}");
        let encrypted = String::from_utf8_lossy(&read_file(&w.path().join(&out))).into_owned();
        assert!(
            encrypted.contains(&format!("smime-type={mode}")),
            "{encrypted}"
        );
        assert!(
            encrypted.contains("Subject: Your statement\r\n"),
            "{encrypted}"
        );
        assert!(
            !encrypted.contains("Statement 1"),
            "the real subject leaked: {encrypted}"
        );
        for (who, person) in [
            ("bob (RSA)", &w.bob_rsa),
            ("carol (P-256)", &w.carol_ec),
            ("dave (P-384, self)", &w.dave_p384),
        ] {
            let plain = openssl_decrypt(&w, &out, person, &format!("dec-{mode}-{}.eml", who.len()));
            assert!(
                plain.starts_with(b"Content-Type: message/rfc822\r\n"),
                "{mode}, {who}: {:?}",
                String::from_utf8_lossy(&plain[..plain.len().min(200)])
            );
            let inner = after_headers(&plain);
            assert_eq!(
                inner,
                signed_bytes.as_slice(),
                "{mode}, {who}: the message inside differs"
            );
            let inner_file = write_file(w.path(), "inner.eml", inner);
            let verify = openssl(
                w.path(),
                &[
                    "cms",
                    "-verify",
                    "-in",
                    p(&inner_file),
                    "-CAfile",
                    p(&w.pki.ca),
                    "-out",
                    "verified.txt",
                ],
            );
            assert!(
                verify.ok(),
                "openssl cms -verify of the decrypted message ({mode}, {who}): {verify}"
            );
        }
        // Ours gives back the signed message byte for byte, and stamp verify accepts it.
        let run = w.decrypt(&out, &w.carol_ec, "ours.eml", true);
        assert!(run.ok(), "stamp email decrypt ({mode}): {run}");
        assert_eq!(read_file(&w.path().join("ours.eml")), signed_bytes);
        w.verify_ok("ours.eml", &server, "the decrypted message");
        std::fs::remove_file(w.path().join("ours.eml")).expect("rm");
    }
}

/// A plain MIME entity for the peers to encrypt.
fn entity(w: &World) -> PathBuf {
    write_file(
        w.path(),
        "entity.txt",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nStatement for November: 1,234.56 EUR.\r\n",
    )
}

#[test]
fn we_decrypt_what_openssl_and_python_encrypt() {
    let w = world();
    let entity = entity(&w);
    let cases: Vec<(&str, &Person, Vec<&str>)> = vec![
        ("rsa-cbc", &w.bob_rsa, vec!["-aes256"]),
        ("rsa-gcm", &w.bob_rsa, vec!["-aes-256-gcm"]),
        (
            "rsa-oaep",
            &w.bob_rsa,
            vec![
                "-aes256",
                "-keyopt",
                "rsa_padding_mode:oaep",
                "-keyopt",
                "rsa_oaep_md:sha256",
            ],
        ),
        ("rsa-stream", &w.bob_rsa, vec!["-aes256", "-stream"]),
        ("ec-cbc", &w.carol_ec, vec!["-aes256"]),
        (
            "ec-gcm-stream",
            &w.carol_ec,
            vec!["-aes-256-gcm", "-stream"],
        ),
        ("ec-aes128", &w.carol_ec, vec!["-aes128"]),
        ("p384-gcm", &w.dave_p384, vec!["-aes-256-gcm"]),
    ];
    for (name, person, opts) in cases {
        let out = format!("openssl-{name}.eml");
        let mut args = vec![
            "cms",
            "-encrypt",
            "-in",
            p(&entity),
            "-out",
            &out,
            "-recip",
            p(&person.cert),
        ];
        args.extend(opts.iter().copied());
        args.extend(["-from", ALICE, "-to", "someone", "-subject", "Statement"]);
        let enc = openssl(w.path(), &args);
        assert!(enc.ok(), "openssl cms -encrypt ({name}): {enc}");
        let dec_name = format!("dec-{name}.eml");
        let run = w.decrypt(&out, person, &dec_name, true);
        assert!(run.ok(), "stamp email decrypt of openssl's {name}: {run}");
        let text = String::from_utf8_lossy(&read_file(&w.path().join(&dec_name))).into_owned();
        assert!(
            text.contains("Statement for November: 1,234.56 EUR."),
            "{name}: {text}"
        );
        assert!(
            text.contains("Subject: Statement"),
            "{name}: the outer fields are kept: {text}"
        );
    }
    // Python cryptography: EnvelopedData, RSA PKCS#1 v1.5, AES-128-CBC and AES-256-CBC.
    for cipher in ["aes128", "aes256"] {
        let out = format!("python-{cipher}.eml");
        let script = workspace_root().join("tests/py/smime_encrypt.py");
        let py = run(Command::new(sigillum_tests::pdf::python())
            .arg(&script)
            .arg(&w.bob_rsa.cert)
            .arg(&entity)
            .arg(w.path().join(&out))
            .arg(cipher));
        assert!(py.ok(), "python cryptography encrypt ({cipher}): {py}");
        let dec_name = format!("dec-python-{cipher}.eml");
        let run = w.decrypt(&out, &w.bob_rsa, &dec_name, false);
        assert!(
            run.ok(),
            "stamp email decrypt of cryptography's {cipher}: {run}"
        );
        let text = String::from_utf8_lossy(&read_file(&w.path().join(&dec_name))).into_owned();
        assert!(text.contains("Statement for November"), "{cipher}: {text}");
    }
}

/// Flips one bit of the CMS inside an S/MIME message, `from_end` bytes from its end, and
/// writes the message back with the body re-encoded.
fn flip_in_cms(message: &[u8], from_end: usize) -> Vec<u8> {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    let b64: Vec<u8> = message[at..]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let i = der.len() - from_end;
    der[i] ^= 0x01;
    let mut out = message[..at].to_vec();
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(&der)
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn refusals_are_clear_and_release_no_plaintext() {
    let w = world();
    let entity = entity(&w);
    let run = w.encrypt(
        &entity_message(&w, &entity),
        "to-bob.eml",
        &["--to", BOB, "--recipient-cert", p(&w.bob_rsa.cert)],
    );
    assert!(run.ok(), "{run}");

    // Carol is not a recipient: exit 1, Bob's certificate named (issuer and serial: all the
    // message says of him), no output.
    let serial = openssl(
        w.path(),
        &["x509", "-in", p(&w.bob_rsa.cert), "-noout", "-serial"],
    );
    let serial = serial
        .stdout
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let run = w.decrypt("to-bob.eml", &w.carol_ec, "carol.eml", true);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("not a recipient"), "{run}");
    assert!(
        run.stderr.contains(&serial) && run.stderr.contains("encrypt Mail CA"),
        "Bob's certificate (serial {serial}) is named: {run}"
    );
    assert!(!w.path().join("carol.eml").exists());

    // A flipped bit in the GCM tag (the last bytes) or in the ciphertext before it.
    let original = read_file(&w.path().join("to-bob.eml"));
    for from_end in [1, 40] {
        let bad = write_file(w.path(), "tampered.eml", &flip_in_cms(&original, from_end));
        let run = w.decrypt(p(&bad), &w.bob_rsa, "tampered-out.eml", true);
        assert_eq!(run.code, Some(1), "flip {from_end} from the end: {run}");
        assert!(
            run.stderr.contains("does not decrypt with this key"),
            "{run}"
        );
        assert!(
            !w.path().join("tampered-out.eml").exists(),
            "plaintext written for a tampered message"
        );
    }

    // Truncated: the base64 body cut in half.
    let half = write_file(w.path(), "half.eml", &original[..original.len() / 2]);
    let run = w.decrypt(p(&half), &w.bob_rsa, "half-out.eml", true);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("cannot decrypt"), "{run}");
    assert!(!w.path().join("half-out.eml").exists());

    // A content cipher we do not read (3DES, from openssl): named.
    let des = openssl(
        w.path(),
        &[
            "cms",
            "-encrypt",
            "-in",
            p(&entity),
            "-out",
            "des.eml",
            "-des3",
            "-recip",
            p(&w.bob_rsa.cert),
        ],
    );
    assert!(des.ok(), "{des}");
    let run = w.decrypt("des.eml", &w.bob_rsa, "des-out.eml", true);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("unsupported content encryption"),
        "{run}"
    );

    // Certificates that may not be encrypted to.
    let run = w.encrypt(
        &entity,
        "x.eml",
        &["--to", ALICE, "--recipient-cert", p(&w.alice.cert)],
    );
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("keyAgreement"),
        "a signing certificate: {run}"
    );
    let run = w.encrypt(
        &entity,
        "x.eml",
        &[
            "--to",
            "eve@example.org",
            "--recipient-cert",
            p(&w.bob_rsa.cert),
        ],
    );
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("eve@example.org"),
        "another address: {run}"
    );
    assert!(!w.path().join("x.eml").exists());

    // A certificate for Bob that no trusted CA issued (what a forged directory answer would
    // carry): refused with --trust; without it, used, with a warning saying so.
    let forged = openssl(
        w.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "forged.key",
            "-out",
            "forged.pem",
            "-subj",
            "/CN=bob",
            "-days",
            "2",
            "-addext",
            &format!("subjectAltName=email:{BOB}"),
            "-addext",
            "keyUsage=critical,keyEncipherment",
            "-addext",
            "extendedKeyUsage=emailProtection",
        ],
    );
    assert!(forged.ok(), "{forged}");
    let run = w.encrypt(
        &entity,
        "f.eml",
        &[
            "--to",
            BOB,
            "--recipient-cert",
            "forged.pem",
            "--trust",
            p(&w.pki.ca),
        ],
    );
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("does not chain to a --trust anchor"),
        "{run}"
    );
    assert!(!w.path().join("f.eml").exists());
    let run = w.encrypt(
        &entity,
        "f.eml",
        &["--to", BOB, "--recipient-cert", "forged.pem"],
    );
    assert!(run.ok(), "{run}");
    assert!(run.stderr.contains("warning: no --trust"), "{run}");

    // stamp verify says what it is and who may read it.
    let run = stamp(w.path(), &["verify", "to-bob.eml", "--trust", p(&w.pki.ca)]);
    assert_eq!(run.code, Some(1), "{run}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("decrypt first") && all.contains("AuthEnvelopedData"),
        "{run}"
    );
    assert!(
        all.contains("key transport"),
        "the recipient is named: {run}"
    );
}

/// An RFC 5322 message around `entity` (From, To, Subject), as a file.
fn entity_message(w: &World, entity: &Path) -> PathBuf {
    let mut m = format!("From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: Statement 7\r\n").into_bytes();
    m.extend_from_slice(&read_file(entity));
    write_file(w.path(), "message.eml", &m)
}

/// `tsa enroll-code` then `stamp enroll` for `email` against `server`; returns the directory
/// `stamp enroll` wrote the keys and certificates into.
fn enrol(server: &TsaServer, dir: &Path, email: &str) -> PathBuf {
    let code = run(Command::new(sigillum_tests::tsa_bin())
        .arg("enroll-code")
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["--email", email])
        .env_remove("TSA_CONFIG"));
    code.assert_ok();
    let code_file = write_file(dir, &format!("{email}.code"), code.stdout.as_bytes());
    let base = server.url().trim_end_matches('/').to_owned();
    let out = dir.join(format!("keys-{email}"));
    stamp(
        dir,
        &[
            "enroll",
            "--server",
            &base,
            "--email",
            email,
            "--out",
            p(&out),
            "--code-file",
            p(&code_file),
            "--no-pkcs12",
        ],
    )
    .assert_ok();
    out
}

#[test]
fn enrolled_through_cmp_fetched_from_the_directory_signed_stamped_encrypted_decrypted_verified() {
    let w = world();
    let server = TsaServer::start();
    let base = server.url().trim_end_matches('/').to_owned();
    let keys = enrol(&server, w.path(), BOB);
    let enc_key = keys.join(format!("{BOB}-encryption.key"));
    let enc_cert = keys.join(format!("{BOB}-encryption.pem"));
    let input = write_file(w.path(), "statement.eml", &statement(ALICE, 3));
    let url = server.url();
    let ca = keys.join("ca.pem");
    // One pass: sign, timestamp, fetch Bob's encryption certificate (chained to the CA,
    // OCSP-checked through the responder its AIA names), encrypt.
    let sign = |out: &str| {
        stamp(
            w.path(),
            &[
                "email",
                "sign",
                p(&input),
                "--key",
                p(&w.alice.key),
                "--cert",
                p(&w.alice.cert),
                "--tsa",
                &url,
                "--encrypt",
                "--to",
                BOB,
                "--directory",
                &base,
                "--trust",
                p(&ca),
                "-o",
                out,
            ],
        )
    };
    let run1 = sign("enc.eml");
    assert!(run1.ok(), "stamp email sign --encrypt: {run1}");
    let decrypt = stamp(
        w.path(),
        &[
            "email",
            "decrypt",
            "enc.eml",
            "--key",
            p(&enc_key),
            "--cert",
            p(&enc_cert),
            "-o",
            "dec.eml",
        ],
    );
    assert!(decrypt.ok(), "{decrypt}");
    w.verify_ok("dec.eml", &server, "the decrypted statement");
    // openssl agrees with the encryption certificate the CA issued.
    openssl_decrypt(
        &w,
        "enc.eml",
        &sigillum_tests::mail::Person {
            key: enc_key.clone(),
            cert: enc_cert.clone(),
        },
        "openssl-dec.eml",
    );

    // Revoked: the directory stops serving it, and a copy of it in a file is refused by OCSP.
    let revoke = stamp(
        w.path(),
        &[
            "revoke",
            "--server",
            &base,
            "--key",
            p(&enc_key),
            "--cert",
            p(&enc_cert),
            "--ca",
            p(&ca),
        ],
    );
    assert!(revoke.ok(), "stamp revoke: {revoke}");
    let run2 = sign("enc2.eml");
    assert_eq!(run2.code, Some(2), "{run2}");
    assert!(
        run2.stderr.contains("no valid encryption certificate"),
        "{run2}"
    );
    let from_file = w.encrypt(
        &input,
        "enc3.eml",
        &[
            "--to",
            BOB,
            "--recipient-cert",
            p(&enc_cert),
            "--trust",
            p(&ca),
        ],
    );
    assert_eq!(from_file.code, Some(2), "{from_file}");
    assert!(
        from_file.stderr.contains("revoked"),
        "OCSP must say revoked: {from_file}"
    );
    assert!(!w.path().join("enc3.eml").exists());
}

#[test]
fn bulk_sign_and_encrypt_each_statement_to_its_own_to_address_resumably() {
    let w = world();
    let server = TsaServer::start();
    let in_dir = w.path().join("statements");
    std::fs::create_dir(&in_dir).expect("mkdir");
    // Statements to Bob (RSA) and Carol (EC) by their To field; one to nobody we know.
    let to = |n: usize| match n % 3 {
        0 => BOB.to_owned(),
        1 => CAROL.to_owned(),
        _ => "unknown@example.org".to_owned(),
    };
    for n in 0..9 {
        let text = String::from_utf8(statement(ALICE, n))
            .expect("utf-8")
            .replace(&format!("customer{n}@example.org"), &to(n));
        write_file(&in_dir, &format!("s{n}.eml"), text.as_bytes());
    }
    let url = server.url();
    let bulk = || {
        stamp(
            w.path(),
            &[
                "email",
                "sign",
                "--in-dir",
                p(&in_dir),
                "--out-dir",
                "out",
                "--key",
                p(&w.alice.key),
                "--cert",
                p(&w.alice.cert),
                "--tsa",
                &url,
                "--encrypt",
                "--recipient-cert",
                p(&w.bob_rsa.cert),
                "--recipient-cert",
                p(&w.carol_ec.cert),
                "--self-cert",
                p(&w.dave_p384.cert),
                "--trust",
                p(&w.pki.ca),
                "--json",
            ],
        )
    };
    let first = bulk();
    let summary: serde_json::Value =
        serde_json::from_str(&first.stdout).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(summary["signed"], 6, "{first}");
    assert_eq!(
        summary["failed"].as_array().map(Vec::len),
        Some(3),
        "{first}"
    );
    assert!(
        first.stdout.contains("unknown@example.org"),
        "the failure names the address: {first}"
    );
    for n in 0..9 {
        let out = w.path().join("out").join(format!("s{n}.eml"));
        if n % 3 == 2 {
            assert!(!out.exists(), "a statement nobody can read was written");
            continue;
        }
        let reader = if n % 3 == 0 { &w.bob_rsa } else { &w.carol_ec };
        let other = if n % 3 == 0 { &w.carol_ec } else { &w.bob_rsa };
        let name = format!("out/s{n}.eml");
        let dec = w.decrypt(&name, reader, &format!("dec{n}.eml"), true);
        assert!(dec.ok(), "s{n} for its reader: {dec}");
        let not_for = w.decrypt(&name, other, &format!("no{n}.eml"), true);
        assert_eq!(
            not_for.code,
            Some(1),
            "s{n} must not open for the other customer: {not_for}"
        );
        // The bank's own copy opens with its key.
        let own = w.decrypt(&name, &w.dave_p384, &format!("own{n}.eml"), true);
        assert!(own.ok(), "s{n} for the bank's archive: {own}");
        w.verify_ok(
            &format!("dec{n}.eml"),
            &server,
            &format!("s{n} after decryption"),
        );
    }
    // A rerun does only what is left: the six are skipped, the three fail again.
    let second = bulk();
    let summary: serde_json::Value =
        serde_json::from_str(&second.stdout).unwrap_or_else(|e| panic!("{e}: {second}"));
    assert_eq!(summary["skipped"], 6, "{second}");
    assert_eq!(summary["signed"], 0, "{second}");
}

/// A certificate from the mail CA for a public key made elsewhere (`pub_pem`), for `email`,
/// with the keyUsage line `usage`.
fn certify_public_key(w: &World, pub_pem: &Path, email: &str, usage: &str, out: &str) -> PathBuf {
    let ext = write_file(
        w.path(),
        &format!("{out}.ext"),
        format!(
            "subjectAltName=email:{email}\nextendedKeyUsage=emailProtection\n{usage}\n\
             basicConstraints=CA:FALSE\n"
        )
        .as_bytes(),
    );
    let ca_key = w.path().join("encrypt-ca.key");
    let run = openssl(
        w.path(),
        &[
            "x509",
            "-new",
            "-subj",
            &format!("/CN={email}"),
            "-force_pubkey",
            p(pub_pem),
            "-CA",
            p(&w.pki.ca),
            "-CAkey",
            p(&ca_key),
            "-extfile",
            p(&ext),
            "-days",
            "30",
            "-out",
            out,
        ],
    );
    assert!(run.ok(), "{run}");
    w.path().join(out)
}

#[test]
fn keys_in_a_softhsm_token_decrypt_without_leaving_it() {
    use sigillum_tests::softhsm;
    let w = world();
    let hsm_dir = w.path().join("hsm");
    std::fs::create_dir(&hsm_dir).expect("mkdir");
    let conf = softhsm::init_token(&hsm_dir);
    let rsa_pub = softhsm::keypair(&conf, &hsm_dir, "dec-rsa", "rsa:2048", &["--usage-decrypt"]);
    let ec_pub = softhsm::keypair(
        &conf,
        &hsm_dir,
        "dec-ec",
        "EC:prime256v1",
        &["--usage-derive"],
    );
    let rsa_cert = certify_public_key(
        &w,
        &rsa_pub,
        "vault-rsa@bank.example",
        "keyUsage=critical,keyEncipherment",
        "hsm-rsa.pem",
    );
    let ec_cert = certify_public_key(
        &w,
        &ec_pub,
        "vault-ec@bank.example",
        "keyUsage=critical,keyAgreement",
        "hsm-ec.pem",
    );
    let pin = write_file(
        w.path(),
        "pin.txt",
        format!("{}\n", softhsm::PIN).as_bytes(),
    );
    let wrong_pin = write_file(w.path(), "wrong-pin.txt", b"0000\n");
    let message = entity_message(&w, &entity(&w));
    let decrypt = |input: &str, label: &str, cert: &Path, pin_file: &Path, out: &str| {
        run(Command::new(sigillum_tests::stamp_bin())
            .current_dir(w.path())
            .args(["email", "decrypt", input, "-o", out])
            .args([
                "--pkcs11-module",
                softhsm::MODULE,
                "--pkcs11-token",
                softhsm::TOKEN,
            ])
            .args(["--pkcs11-key", label, "--pkcs11-pin-file", p(pin_file)])
            .args(["--cert", p(cert)])
            .env("SOFTHSM2_CONF", &conf))
    };
    for cbc in [false, true] {
        let out = format!("to-vault-{cbc}.eml");
        let mut args = vec![
            "--to",
            "vault-rsa@bank.example",
            "--to",
            "vault-ec@bank.example",
            "--recipient-cert",
            p(&rsa_cert),
            "--recipient-cert",
            p(&ec_cert),
        ];
        if cbc {
            args.push("--cbc");
        }
        let enc = w.encrypt(&message, &out, &args);
        assert!(enc.ok(), "{enc}");
        // EC: ECDH inside the token, our KDF and key unwrap outside.
        let dec_name = format!("vault-ec-{cbc}.eml");
        let ok = decrypt(&out, "dec-ec", &ec_cert, &pin, &dec_name);
        assert!(ok.ok(), "dec-ec, cbc={cbc}: {ok}");
        assert_eq!(read_file(&w.path().join(&dec_name)), read_file(&message));
        let refused = decrypt(&out, "dec-ec", &ec_cert, &wrong_pin, "never.eml");
        assert_eq!(refused.code, Some(2), "{refused}");
        assert!(
            refused.stderr.contains("PIN"),
            "a wrong PIN is named: {refused}"
        );
        // RSA: SoftHSM2 does OAEP only with SHA-1, and we write OAEP with SHA-256: said
        // plainly, not as the opaque decryption failure.
        let rsa = decrypt(&out, "dec-rsa", &rsa_cert, &pin, "never.eml");
        assert_eq!(rsa.code, Some(2), "{rsa}");
        assert!(
            rsa.stderr
                .contains("does not decrypt RSAES-OAEP with sha256"),
            "{rsa}"
        );
        assert!(!w.path().join("never.eml").exists());
    }
    // What the token can do for RSA: openssl's PKCS#1 v1.5 (its default) and OAEP with SHA-1.
    for (name, opts) in [
        ("v15", vec![]),
        ("oaep-sha1", vec!["-keyopt", "rsa_padding_mode:oaep"]),
    ] {
        let out = format!("openssl-vault-{name}.eml");
        let mut args = vec![
            "cms",
            "-encrypt",
            "-in",
            p(&message),
            "-out",
            &out,
            "-aes256",
            "-recip",
            p(&rsa_cert),
        ];
        args.extend(opts.iter().copied());
        let enc = openssl(w.path(), &args);
        assert!(enc.ok(), "{enc}");
        let dec_name = format!("vault-rsa-{name}.eml");
        let ok = decrypt(&out, "dec-rsa", &rsa_cert, &pin, &dec_name);
        assert!(ok.ok(), "dec-rsa, {name}: {ok}");
        let text = String::from_utf8_lossy(&read_file(&w.path().join(&dec_name))).into_owned();
        assert!(text.contains("Statement for November"), "{name}: {text}");
    }
    // The RSA key's certificate with the EC key's label: refused at open, by name.
    let mixed = run(Command::new(sigillum_tests::stamp_bin())
        .current_dir(w.path())
        .args(["email", "decrypt", "to-vault-false.eml", "-o", "mixed.eml"])
        .args([
            "--pkcs11-module",
            softhsm::MODULE,
            "--pkcs11-token",
            softhsm::TOKEN,
        ])
        .args([
            "--pkcs11-key",
            "dec-ec",
            "--pkcs11-pin-file",
            p(&pin),
            "--cert",
            p(&rsa_cert),
        ])
        .env("SOFTHSM2_CONF", &conf));
    assert_eq!(mixed.code, Some(2), "{mixed}");
    assert!(mixed.stderr.contains("RSA key"), "{mixed}");
}

#[test]
fn an_mbox_of_statements_is_signed_stamped_and_encrypted_message_by_message() {
    let w = world();
    let server = TsaServer::start();
    let mut mbox = Vec::new();
    for n in 0..4 {
        let text = String::from_utf8(statement(ALICE, n))
            .expect("utf-8")
            .replace(&format!("customer{n}@example.org"), BOB);
        pki::smime::mbox::append(
            &mut mbox,
            text.as_bytes(),
            ALICE,
            "Fri Dec  4 10:00:00 2026",
        );
    }
    let input = write_file(w.path(), "in.mbox", &mbox);
    let url = server.url();
    let run = stamp(
        w.path(),
        &[
            "email",
            "sign",
            "--mbox",
            p(&input),
            "--out-mbox",
            "out.mbox",
            "--key",
            p(&w.alice.key),
            "--cert",
            p(&w.alice.cert),
            "--tsa",
            &url,
            "--encrypt",
            "--recipient-cert",
            p(&w.bob_rsa.cert),
        ],
    );
    assert!(run.ok(), "{run}");
    let out = pki::smime::mbox::read(&read_file(&w.path().join("out.mbox")));
    assert_eq!(out.len(), 4, "{run}");
    let key = pki::keyfile::load_decryption_key(&read_file(&w.bob_rsa.key), &mut || {
        Ok(zeroize::Zeroizing::new(String::new()))
    })
    .expect("bob's key");
    let cert = sigillum_tests::openssl_ca::pem_cert_der(&w.bob_rsa.cert);
    for (n, m) in out.iter().enumerate() {
        let text = String::from_utf8_lossy(m);
        assert!(
            text.contains("smime-type=authEnveloped-data"),
            "#{n}: {text}"
        );
        assert!(
            !text.contains(&format!("Statement {n}")),
            "#{n}: the subject leaked"
        );
        let plain = pki::smime::decrypt_message(m, &key.decrypter, Some(&cert)).expect("decrypts");
        let plain = String::from_utf8_lossy(&plain.message).into_owned();
        assert!(
            plain.contains(&format!("Subject: Statement {n}")),
            "#{n}: {plain}"
        );
        assert!(
            plain.contains("multipart/signed"),
            "#{n}: signed inside: {plain}"
        );
    }
}
