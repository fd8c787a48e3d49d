//! The key loader (`pki::keyfile`) against real files made by the `openssl` command line at test
//! time: PKCS#12 as OpenSSL 3 writes it by default and with other schemes, PKCS#8 PEM and DER,
//! clear and encrypted. Every loaded key signs, and ring checks the signature with the public
//! key of the certificate. Damaged files and wrong passwords must give errors, never panics.
//!
//! Without `openssl` on the PATH each test prints a notice and passes without checking.

use der::{Decode, Encode, Tag};
use pki::Error;
use pki::keyfile::{LoadedKey, is_pkcs12, load_signing_key};
use pki::raw::{RawTlv, tlv};
use pki::signer::{RsaPadding, SignatureAlgorithm, Signer};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "sigillum-keyfile-{}-{name}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("read file openssl wrote")
    }

    /// Runs `openssl` in this directory; panics with its stderr on failure.
    fn openssl(&self, args: &[&str]) {
        let out = self.try_openssl(args);
        assert!(
            out.status.success(),
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn try_openssl(&self, args: &[&str]) -> std::process::Output {
        Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("run openssl")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `openssl` runs; prints the notice the tests skip with when it does not.
fn have_openssl(test: &str) -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTICE: `openssl` not found; {test} skipped");
    }
    ok
}

/// The key types the tests make, as `openssl req -newkey` arguments.
#[derive(Clone, Copy, Debug)]
enum KeyType {
    P256,
    P384,
    Rsa2048,
    Ed25519,
}

impl KeyType {
    fn newkey(self) -> &'static [&'static str] {
        match self {
            KeyType::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyType::P384 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyType::Rsa2048 => &["-newkey", "rsa:2048"],
            KeyType::Ed25519 => &["-newkey", "ed25519"],
        }
    }
}

/// Makes `<stem>.key` (PKCS#8 PEM, unencrypted) and `<stem>.pem` (self-signed certificate).
fn make_key_and_cert(dir: &Scratch, key_type: KeyType, stem: &str) {
    let key = format!("{stem}.key");
    let cert = format!("{stem}.pem");
    let subject = format!("/CN=Sigillum keyfile test {stem}");
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(key_type.newkey());
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        &subject,
        "-days",
        "2",
        "-set_serial",
        "1",
    ]);
    dir.openssl(&args);
}

/// `openssl pkcs12 -export` of `<stem>.key` and `<stem>.pem` into `out`, with `extra` options.
fn export(dir: &Scratch, stem: &str, out: &str, password: &str, extra: &[&str]) {
    let (key, cert) = (format!("{stem}.key"), format!("{stem}.pem"));
    let pass = format!("pass:{password}");
    let mut args = vec![
        "pkcs12", "-export", "-inkey", &key, "-in", &cert, "-out", out, "-passout", &pass,
    ];
    args.extend_from_slice(extra);
    dir.openssl(&args);
}

fn cert_der(dir: &Scratch, file: &str) -> Vec<u8> {
    let mut certs = pki::cert::load_certificates(&dir.read(file)).expect("certificate PEM");
    certs.remove(0)
}

/// A password callback that must not be called.
fn no_password() -> std::io::Result<Zeroizing<String>> {
    panic!("the password callback was called for a file that needs no password")
}

/// Loads `bytes` with `password`, counting the callback's calls (at most one is allowed).
fn load_with(bytes: &[u8], padding: RsaPadding, password: &str) -> pki::Result<LoadedKey> {
    let mut calls = 0;
    let result = load_signing_key(bytes, padding, &mut || {
        calls += 1;
        Ok(Zeroizing::new(password.to_owned()))
    });
    assert!(calls <= 1, "the password was asked for {calls} times");
    result
}

/// Signs with the loaded key and checks the signature with ring against `cert`'s public key.
fn assert_signs_for(loaded: &LoadedKey, cert: &[u8]) {
    use ring::signature as sig;
    let message = b"Sigillum key file test: the bytes to sign";
    let signature = loaded.signer.sign(message).expect("sign");
    let cert = x509_cert::Certificate::from_der(cert).expect("certificate");
    let public_key = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let algorithm: &dyn sig::VerificationAlgorithm = match loaded.signer.algorithm() {
        SignatureAlgorithm::EcdsaP256Sha256 => &sig::ECDSA_P256_SHA256_ASN1,
        SignatureAlgorithm::EcdsaP384Sha384 => &sig::ECDSA_P384_SHA384_ASN1,
        SignatureAlgorithm::RsaPkcs1(_) => &sig::RSA_PKCS1_2048_8192_SHA256,
        SignatureAlgorithm::RsaPss(_) => &sig::RSA_PSS_2048_8192_SHA256,
        SignatureAlgorithm::Ed25519 => &sig::ED25519,
        other => panic!("unexpected algorithm {other}"),
    };
    sig::UnparsedPublicKey::new(algorithm, public_key)
        .verify(message, &signature)
        .expect("the signature verifies with the certificate's public key");
}

fn expected_algorithm(key_type: KeyType, padding: RsaPadding) -> SignatureAlgorithm {
    match (key_type, padding) {
        (KeyType::P256, _) => SignatureAlgorithm::EcdsaP256Sha256,
        (KeyType::P384, _) => SignatureAlgorithm::EcdsaP384Sha384,
        (KeyType::Rsa2048, RsaPadding::Pkcs1) => SignatureAlgorithm::RsaPkcs1(pki::HashAlg::Sha256),
        (KeyType::Rsa2048, RsaPadding::Pss) => SignatureAlgorithm::RsaPss(pki::HashAlg::Sha256),
        (KeyType::Ed25519, _) => SignatureAlgorithm::Ed25519,
    }
}

/// Exports a fresh key of `key_type` with `extra` options and checks that it loads and signs
/// for its certificate.
fn roundtrip(key_type: KeyType, padding: RsaPadding, extra: &[&str]) -> Vec<u8> {
    let dir = Scratch::new("roundtrip");
    make_key_and_cert(&dir, key_type, "k");
    export(&dir, "k", "k.p12", PASSWORD, extra);
    let p12 = dir.read("k.p12");
    assert!(
        is_pkcs12(&p12),
        "{key_type:?} {extra:?}: recognised as PKCS#12"
    );
    let loaded = load_with(&p12, padding, PASSWORD)
        .unwrap_or_else(|e| panic!("{key_type:?} {extra:?}: {}", pki::error::error_text(&e)));
    let cert = cert_der(&dir, "k.pem");
    assert_eq!(
        loaded.certificate.as_deref(),
        Some(&cert[..]),
        "{key_type:?} {extra:?}"
    );
    assert!(loaded.chain.is_empty());
    assert_eq!(
        loaded.signer.algorithm(),
        expected_algorithm(key_type, padding)
    );
    assert_signs_for(&loaded, &cert);
    p12
}

/// Why: OpenSSL 3's default export (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC, HMAC-SHA256 MAC)
/// is what users hand us; every key type we sign with must load from it.
#[test]
fn openssl3_default_pkcs12_loads_and_signs() {
    if !have_openssl("openssl3_default_pkcs12_loads_and_signs") {
        return;
    }
    roundtrip(KeyType::P256, RsaPadding::Pkcs1, &[]);
    roundtrip(KeyType::P384, RsaPadding::Pkcs1, &[]);
    roundtrip(KeyType::Rsa2048, RsaPadding::Pkcs1, &[]);
    roundtrip(KeyType::Rsa2048, RsaPadding::Pss, &[]);
    roundtrip(KeyType::Ed25519, RsaPadding::Pkcs1, &[]);
}

/// Why: the schemes named explicitly, other MAC hashes, keys in the clear and files without a
/// MAC are all written by real tools.
#[test]
fn pkcs12_scheme_variants_load() {
    if !have_openssl("pkcs12_scheme_variants_load") {
        return;
    }
    let aes = ["-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC"];
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &[&aes[..], &["-macalg", "sha256"]].concat(),
    );
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &[&aes[..], &["-macalg", "sha512"]].concat(),
    );
    roundtrip(
        KeyType::P384,
        RsaPadding::Pkcs1,
        &[&aes[..], &["-macalg", "sha384"]].concat(),
    );
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &[&aes[..], &["-macalg", "sha1"]].concat(),
    );
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &[
            "-keypbe",
            "AES-128-CBC",
            "-certpbe",
            "AES-128-CBC",
            "-iter",
            "1",
        ],
    );
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &["-keypbe", "NONE", "-certpbe", "NONE"],
    );
    roundtrip(KeyType::Rsa2048, RsaPadding::Pkcs1, &["-nomac"]);
    // PBES2 with 3DES-CBC rather than AES.
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &["-keypbe", "DES-EDE3-CBC", "-certpbe", "DES-EDE3-CBC"],
    );
    // 3DES with the PKCS#12 KDF: OpenSSL 1.x's key encryption, in OpenSSL 3's default provider.
    roundtrip(
        KeyType::P256,
        RsaPadding::Pkcs1,
        &[
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ],
    );
}

/// Why: `-legacy` (RC2-40 certificates, 3DES key, SHA-1 MAC) is what OpenSSL 1.x wrote by
/// default and what many existing .p12/.pfx files are.
#[test]
fn pkcs12_legacy_loads() {
    if !have_openssl("pkcs12_legacy_loads") {
        return;
    }
    let dir = Scratch::new("legacy-probe");
    make_key_and_cert(&dir, KeyType::P256, "k");
    let probe = dir.try_openssl(&[
        "pkcs12", "-export", "-legacy", "-inkey", "k.key", "-in", "k.pem", "-out", "k.p12",
        "-passout", "pass:x",
    ]);
    if !probe.status.success() {
        eprintln!(
            "NOTICE: openssl cannot write -legacy PKCS#12 here (legacy provider missing?): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }
    roundtrip(KeyType::P256, RsaPadding::Pkcs1, &["-legacy"]);
    roundtrip(KeyType::Rsa2048, RsaPadding::Pkcs1, &["-legacy"]);
    // 128-bit RC2 for the certificates, as some Windows exports have.
    roundtrip(
        KeyType::P384,
        RsaPadding::Pkcs1,
        &["-legacy", "-certpbe", "PBE-SHA1-RC2-128"],
    );
}

/// Why: an empty password is a password (OpenSSL MACs it as a lone UTF-16 terminator).
#[test]
fn pkcs12_with_empty_password_loads() {
    if !have_openssl("pkcs12_with_empty_password_loads") {
        return;
    }
    for extra in [&[][..], &["-legacy"][..]] {
        let dir = Scratch::new("empty");
        make_key_and_cert(&dir, KeyType::P256, "k");
        let pass = "pass:";
        let mut args = vec![
            "pkcs12", "-export", "-inkey", "k.key", "-in", "k.pem", "-out", "k.p12", "-passout",
            pass,
        ];
        args.extend_from_slice(extra);
        if !dir.try_openssl(&args).status.success() {
            eprintln!("NOTICE: openssl pkcs12 {extra:?} unavailable; case skipped");
            continue;
        }
        let loaded = load_with(&dir.read("k.p12"), RsaPadding::Pkcs1, "")
            .unwrap_or_else(|e| panic!("{extra:?}: {}", pki::error::error_text(&e)));
        assert_signs_for(&loaded, &cert_der(&dir, "k.pem"));
    }
}

/// Why: the certificate is the one whose public key is the key's, whatever the file's order,
/// and the chain starts at its issuer.
#[test]
fn pkcs12_with_chain_sorts_certificates() {
    if !have_openssl("pkcs12_with_chain_sorts_certificates") {
        return;
    }
    let dir = Scratch::new("chain");
    make_key_and_cert(&dir, KeyType::P256, "ca");
    dir.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=Sigillum keyfile leaf",
    ]);
    dir.openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-set_serial",
        "2",
    ]);
    dir.openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.key",
        "-in",
        "leaf.pem",
        "-certfile",
        "ca.pem",
        "-out",
        "leaf.p12",
        "-passout",
        "pass:chain",
    ]);
    let loaded = load_with(&dir.read("leaf.p12"), RsaPadding::Pkcs1, "chain").expect("load");
    let leaf = cert_der(&dir, "leaf.pem");
    assert_eq!(loaded.certificate.as_deref(), Some(&leaf[..]));
    assert_eq!(loaded.chain, vec![cert_der(&dir, "ca.pem")]);
    assert_signs_for(&loaded, &leaf);
}

/// Why: a key-only PKCS#12 (`-nocerts`) is valid; the certificate then comes from `--cert`.
#[test]
fn pkcs12_without_certificates_gives_the_key_alone() {
    if !have_openssl("pkcs12_without_certificates_gives_the_key_alone") {
        return;
    }
    let dir = Scratch::new("nocerts");
    make_key_and_cert(&dir, KeyType::P384, "k");
    dir.openssl(&[
        "pkcs12",
        "-export",
        "-nocerts",
        "-inkey",
        "k.key",
        "-out",
        "k.p12",
        "-passout",
        "pass:nocerts",
    ]);
    let loaded = load_with(&dir.read("k.p12"), RsaPadding::Pkcs1, "nocerts").expect("load");
    assert!(loaded.certificate.is_none() && loaded.chain.is_empty());
    assert_signs_for(&loaded, &cert_der(&dir, "k.pem"));
}

/// Why: plain PKCS#8 files keep loading as before, and never prompt for a password.
#[test]
fn pkcs8_pem_and_der_load_without_a_password() {
    if !have_openssl("pkcs8_pem_and_der_load_without_a_password") {
        return;
    }
    for key_type in [
        KeyType::P256,
        KeyType::P384,
        KeyType::Rsa2048,
        KeyType::Ed25519,
    ] {
        let dir = Scratch::new("pkcs8");
        make_key_and_cert(&dir, key_type, "k");
        dir.openssl(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", "k.key", "-outform", "DER", "-out", "k.der",
        ]);
        let cert = cert_der(&dir, "k.pem");
        for file in ["k.key", "k.der"] {
            let bytes = dir.read(file);
            assert!(!is_pkcs12(&bytes), "{file} is not PKCS#12");
            let loaded = load_signing_key(&bytes, RsaPadding::Pkcs1, &mut no_password)
                .unwrap_or_else(|e| panic!("{key_type:?} {file}: {}", pki::error::error_text(&e)));
            assert!(loaded.certificate.is_none());
            assert_signs_for(&loaded, &cert);
        }
    }
}

/// Why: `openssl pkcs8 -topk8` and `genpkey -aes256` write encrypted PKCS#8; it opens with the
/// same PBES2 code as PKCS#12 key bags, and a wrong password says so.
#[test]
fn encrypted_pkcs8_loads_with_its_password() {
    if !have_openssl("encrypted_pkcs8_loads_with_its_password") {
        return;
    }
    let dir = Scratch::new("enc-pkcs8");
    make_key_and_cert(&dir, KeyType::P256, "k");
    let pass = format!("pass:{PASSWORD}");
    dir.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        "k.key",
        "-out",
        "enc.pem",
        "-passout",
        &pass,
    ]);
    dir.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-128-cbc",
        "-in",
        "k.key",
        "-outform",
        "DER",
        "-out",
        "enc.der",
        "-passout",
        &pass,
    ]);
    // PBKDF2 with HMAC-SHA1 (the RFC 8018 default PRF), and PKCS#12's own 3DES scheme.
    dir.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA1",
        "-in",
        "k.key",
        "-out",
        "sha1prf.pem",
        "-passout",
        &pass,
    ]);
    dir.openssl(&[
        "pkcs8",
        "-topk8",
        "-v1",
        "PBE-SHA1-3DES",
        "-in",
        "k.key",
        "-out",
        "pbe3des.pem",
        "-passout",
        &pass,
    ]);
    let cert = cert_der(&dir, "k.pem");
    for file in ["enc.pem", "enc.der", "sha1prf.pem", "pbe3des.pem"] {
        let bytes = dir.read(file);
        let loaded = load_with(&bytes, RsaPadding::Pkcs1, PASSWORD)
            .unwrap_or_else(|e| panic!("{file}: {}", pki::error::error_text(&e)));
        assert_signs_for(&loaded, &cert);
        let err = load_with(&bytes, RsaPadding::Pkcs1, "wrong").expect_err("wrong password");
        assert_eq!(
            err.to_string(),
            "wrong password or corrupted encrypted private key"
        );
    }
}

/// Why: a wrong password must be named as such (the MAC check), not surface as a decoding
/// error or a panic; without a MAC the decryption's padding tells.
#[test]
fn wrong_password_is_reported_as_such() {
    if !have_openssl("wrong_password_is_reported_as_such") {
        return;
    }
    for extra in [&[][..], &["-nomac"][..], &["-macalg", "sha1"][..]] {
        let dir = Scratch::new("wrong");
        make_key_and_cert(&dir, KeyType::P256, "k");
        export(&dir, "k", "k.p12", PASSWORD, extra);
        let err = load_with(&dir.read("k.p12"), RsaPadding::Pkcs1, "not the password")
            .expect_err("wrong password");
        assert!(
            matches!(err, Error::WrongPassword { .. }),
            "{extra:?}: {err:?}"
        );
        assert_eq!(err.to_string(), "wrong password or corrupted PKCS#12 file");
    }
}

/// Why: the password prompt can fail (no terminal); that is an error with its cause.
#[test]
fn password_prompt_failure_is_an_error() {
    if !have_openssl("password_prompt_failure_is_an_error") {
        return;
    }
    let dir = Scratch::new("prompt");
    make_key_and_cert(&dir, KeyType::P256, "k");
    export(&dir, "k", "k.p12", PASSWORD, &[]);
    let err = load_signing_key(&dir.read("k.p12"), RsaPadding::Pkcs1, &mut || {
        Err(std::io::Error::other("no terminal"))
    })
    .expect_err("no password");
    assert!(matches!(err, Error::Password(_)), "{err:?}");
    assert_eq!(
        pki::error::error_text(&err),
        "cannot read the password: no terminal"
    );
}

/// Why: a PKCS#12 whose certificate belongs to another key must not be used to sign in that
/// certificate's name.
#[test]
fn pkcs12_certificate_of_another_key_is_rejected() {
    if !have_openssl("pkcs12_certificate_of_another_key_is_rejected") {
        return;
    }
    let dir = Scratch::new("mismatch");
    // Same subject, serial and key size: the two certificates have the same length, so one can
    // replace the other inside a file whose certificates are in the clear and that has no MAC.
    make_key_and_cert(&dir, KeyType::Rsa2048, "a");
    make_key_and_cert(&dir, KeyType::Rsa2048, "b");
    export(
        &dir,
        "a",
        "a.p12",
        PASSWORD,
        &["-certpbe", "NONE", "-nomac"],
    );
    let (cert_a, cert_b) = (cert_der(&dir, "a.pem"), cert_der(&dir, "b.pem"));
    assert_eq!(cert_a.len(), cert_b.len(), "same-length certificates");
    let mut p12 = dir.read("a.p12");
    let at = p12
        .windows(cert_a.len())
        .position(|w| w == cert_a)
        .expect("certificate A in the clear");
    p12[at..at + cert_b.len()].copy_from_slice(&cert_b);
    let err = load_with(&p12, RsaPadding::Pkcs1, PASSWORD).expect_err("mismatched certificate");
    assert!(matches!(err, Error::Certificate(_)), "{err:?}");
    assert!(
        err.to_string().contains("none for its private key"),
        "{err}"
    );
}

/// Why: RFC 9579 PBMAC1 (OpenSSL 3.4+ `-pbmac1_pbkdf2`). OpenSSL here may be older, so the MAC
/// of an OpenSSL-made file is also replaced by a PBMAC1 one computed with ring, as RFC 9579 §3
/// describes (PBKDF2-HMAC-SHA256 over the UTF-8 password, HMAC-SHA256 over the authSafe).
#[test]
fn pkcs12_with_pbmac1_loads() {
    if !have_openssl("pkcs12_with_pbmac1_loads") {
        return;
    }
    let dir = Scratch::new("pbmac1");
    make_key_and_cert(&dir, KeyType::P256, "k");
    let pass = format!("pass:{PASSWORD}");
    let native = dir.try_openssl(&[
        "pkcs12",
        "-export",
        "-pbmac1_pbkdf2",
        "-inkey",
        "k.key",
        "-in",
        "k.pem",
        "-out",
        "native.p12",
        "-passout",
        &pass,
    ]);
    let cert = cert_der(&dir, "k.pem");
    if native.status.success() {
        let loaded = load_with(&dir.read("native.p12"), RsaPadding::Pkcs1, PASSWORD)
            .expect("OpenSSL's PBMAC1 file");
        assert_signs_for(&loaded, &cert);
    } else {
        eprintln!(
            "NOTICE: this openssl has no -pbmac1_pbkdf2; only the ring-made PBMAC1 is checked"
        );
    }
    export(&dir, "k", "k.p12", PASSWORD, &[]);
    let p12 = with_pbmac1(&dir.read("k.p12"), PASSWORD);
    let loaded = load_with(&p12, RsaPadding::Pkcs1, PASSWORD).expect("PBMAC1 file");
    assert_signs_for(&loaded, &cert);
    let err = load_with(&p12, RsaPadding::Pkcs1, "wrong").expect_err("wrong password");
    assert_eq!(err.to_string(), "wrong password or corrupted PKCS#12 file");
}

/// Replaces a PFX's MacData with a PBMAC1 one (RFC 9579 §3) for `password`.
fn with_pbmac1(p12: &[u8], password: &str) -> Vec<u8> {
    let pfx = RawTlv::parse(p12, "pfx").expect("pfx");
    let fields = pfx.children("pfx").expect("fields");
    let (version, auth_safe) = (&fields[0], &fields[1]);
    let explicit = auth_safe.children("authSafe").expect("ContentInfo")[1];
    let octets = RawTlv::parse(explicit.value, "authSafe")
        .expect("OCTET STRING")
        .value;

    let salt = [0x5a_u8; 16];
    let iterations = 2048_u32;
    let mut key = [0_u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).expect("non-zero"),
        &salt,
        password.as_bytes(),
        &mut key,
    );
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key), octets);

    let oid = |s: &str| {
        der::asn1::ObjectIdentifier::new_unwrap(s)
            .to_der()
            .expect("oid")
    };
    let seq = |parts: &[&[u8]]| tlv(Tag::Sequence, parts).expect("sequence");
    let octet_string = |b: &[u8]| tlv(Tag::OctetString, &[b]).expect("octets");
    let null = der::asn1::Null.to_der().expect("null");
    let hmac_sha256 = seq(&[&oid("1.2.840.113549.2.9"), &null]);
    let pbkdf2_params = seq(&[
        &octet_string(&salt),
        &iterations.to_der().expect("int"),
        &32_u32.to_der().expect("int"),
        &hmac_sha256,
    ]);
    let kdf = seq(&[&oid("1.2.840.113549.1.5.12"), &pbkdf2_params]);
    let pbmac1 = seq(&[&oid("1.2.840.113549.1.5.14"), &seq(&[&kdf, &hmac_sha256])]);
    let digest_info = seq(&[&pbmac1, &octet_string(mac.as_ref())]);
    // macSalt and iterations are ignored under PBMAC1; OpenSSL repeats PBKDF2's.
    let mac_data = seq(&[
        &digest_info,
        &octet_string(&salt),
        &iterations.to_der().expect("int"),
    ]);
    seq(&[version.full, auth_safe.full, &mac_data])
}

/// Why: a damaged file (cut short, bits flipped) must give an error, never a panic, and a
/// flipped bit under a MAC must never load.
#[test]
fn damaged_pkcs12_gives_errors_not_panics() {
    if !have_openssl("damaged_pkcs12_gives_errors_not_panics") {
        return;
    }
    let dir = Scratch::new("damaged");
    make_key_and_cert(&dir, KeyType::P256, "k");
    export(&dir, "k", "mac.p12", PASSWORD, &[]);
    export(&dir, "k", "nomac.p12", PASSWORD, &["-nomac"]);
    for file in ["mac.p12", "nomac.p12"] {
        let p12 = dir.read(file);
        for len in 0..p12.len() {
            assert!(
                load_with(&p12[..len], RsaPadding::Pkcs1, PASSWORD).is_err(),
                "{file} cut to {len} bytes loaded"
            );
        }
        let truncated =
            load_with(&p12[..p12.len() - 1], RsaPadding::Pkcs1, PASSWORD).expect_err("truncated");
        assert!(truncated.to_string().contains("PKCS#12"), "{truncated}");
        let mut loaded_after_flip = 0;
        for at in 0..p12.len() {
            let mut damaged = p12.clone();
            damaged[at] ^= 0x01;
            if load_with(&damaged, RsaPadding::Pkcs1, PASSWORD).is_ok() {
                loaded_after_flip += 1;
            }
        }
        if file == "mac.p12" {
            // Bits outside the MAC'd content (version, tags, the MAC's own parameters) can be
            // flipped into another valid file; a flip inside the key or certificate cannot.
            assert!(
                loaded_after_flip < p12.len() / 20,
                "{loaded_after_flip} flips loaded"
            );
        }
        eprintln!(
            "{file}: {} bytes, {loaded_after_flip} single-bit flips still loaded",
            p12.len()
        );
    }
}

/// Why: garbage is no key, and a PKCS#12 header alone is a damaged PKCS#12 file.
#[test]
fn garbage_gives_errors_not_panics() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_be_bytes()[0]
            })
            .collect()
    };
    let pkcs12_header: &[u8] = &[
        0x30, 0x80, 0x02, 0x01, 0x03, 0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
        0x01, 0x07, 0x01,
    ];
    assert!(is_pkcs12(pkcs12_header));
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x30\x80".to_vec(),
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".to_vec(),
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .to_vec(),
        pkcs12_header.to_vec(),
        [
            pkcs12_header,
            &[0xa0, 0x80, 0x04, 0x02, 0x30, 0x00, 0, 0, 0, 0, 0, 0][..],
        ]
        .concat(),
    ];
    for n in [1, 2, 16, 100, 1000] {
        inputs.push(random(n));
        inputs.push([pkcs12_header, &random(n)[..]].concat());
    }
    for input in &inputs {
        assert!(
            load_with(input, RsaPadding::Pkcs1, PASSWORD).is_err(),
            "garbage loaded: {input:02x?}"
        );
    }
}

/// Why: detection is by structure, not by file name: certificates, PKCS#8 and PEM are not
/// PKCS#12.
#[test]
fn is_pkcs12_tells_files_apart() {
    if !have_openssl("is_pkcs12_tells_files_apart") {
        return;
    }
    let dir = Scratch::new("detect");
    make_key_and_cert(&dir, KeyType::Rsa2048, "k");
    export(&dir, "k", "k.p12", PASSWORD, &[]);
    dir.openssl(&[
        "rsa",
        "-in",
        "k.key",
        "-traditional",
        "-outform",
        "DER",
        "-out",
        "k.pkcs1",
    ]);
    assert!(is_pkcs12(&dir.read("k.p12")));
    for not in ["k.key", "k.pem", "k.pkcs1"] {
        assert!(!is_pkcs12(&dir.read(not)), "{not}");
    }
    assert!(!is_pkcs12(&cert_der(&dir, "k.pem")));
    // A PKCS#1 DER key still loads through the PKCS#8 path, without a password.
    let loaded = load_signing_key(&dir.read("k.pkcs1"), RsaPadding::Pkcs1, &mut no_password)
        .expect("PKCS#1 key");
    assert_signs_for(&loaded, &cert_der(&dir, "k.pem"));
}

/// Re-encodes a DER PFX in BER as streaming writers do: indefinite lengths on the outer
/// structures and the authSafe content as a constructed OCTET STRING of 100-byte chunks. The
/// MAC covers the joined octets, so it stays valid.
fn ber_outer(p12: &[u8]) -> Vec<u8> {
    let pfx = RawTlv::parse(p12, "pfx").expect("pfx");
    let fields = pfx.children("pfx").expect("fields");
    let info = fields[1].children("authSafe").expect("ContentInfo");
    let octets = RawTlv::parse(info[1].value, "authSafe")
        .expect("OCTET STRING")
        .value;
    let mut out = vec![0x30, 0x80];
    out.extend_from_slice(fields[0].full);
    out.extend_from_slice(&[0x30, 0x80]);
    out.extend_from_slice(info[0].full);
    out.extend_from_slice(&[0xa0, 0x80, 0x24, 0x80]);
    for chunk in octets.chunks(100) {
        out.extend(tlv(Tag::OctetString, &[chunk]).expect("chunk"));
    }
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for mac in &fields[2..] {
        out.extend_from_slice(mac.full);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// Rewrites every EncryptedData's `[0] IMPLICIT OCTET STRING` encryptedContent in its
/// constructed BER form (segments of 64 bytes) inside a PFX without a MAC.
fn ber_encrypted_content(p12: &[u8]) -> Vec<u8> {
    let ctx0 = |constructed| pki::raw::context(0, constructed);
    let seq = |parts: &[&[u8]]| tlv(Tag::Sequence, parts).expect("sequence");
    let pfx = RawTlv::parse(p12, "pfx").expect("pfx");
    let fields = pfx.children("pfx").expect("fields");
    assert_eq!(fields.len(), 2, "a PFX without MAC");
    let info = fields[1].children("authSafe").expect("ContentInfo");
    let octets = RawTlv::parse(info[1].value, "authSafe")
        .expect("OCTET STRING")
        .value;
    let encrypted_data_oid = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6")
        .to_der()
        .expect("oid");
    let mut infos = Vec::new();
    let mut rewritten = 0;
    for inner in RawTlv::parse(octets, "safe")
        .expect("safe")
        .children("safe")
        .expect("infos")
    {
        let parts = inner.children("info").expect("info");
        if parts[0].full != encrypted_data_oid {
            infos.push(inner.full.to_vec());
            continue;
        }
        let ed = RawTlv::parse(parts[1].value, "ed").expect("EncryptedData");
        let ed_fields = ed.children("ed").expect("fields");
        let eci = ed_fields[1].children("eci").expect("EncryptedContentInfo");
        assert_eq!(eci[2].tag, ctx0(false));
        let segments: Vec<Vec<u8>> = eci[2]
            .value
            .chunks(64)
            .map(|c| tlv(Tag::OctetString, &[c]).expect("segment"))
            .collect();
        let segments: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        let content = tlv(ctx0(true), &segments).expect("constructed [0]");
        let eci = seq(&[eci[0].full, eci[1].full, &content]);
        let ed = seq(&[ed_fields[0].full, &eci]);
        let explicit = tlv(ctx0(true), &[&ed]).expect("[0]");
        infos.push(seq(&[parts[0].full, &explicit]));
        rewritten += 1;
    }
    assert!(rewritten > 0, "the file has an EncryptedData");
    let infos: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
    let safe = tlv(Tag::OctetString, &[&seq(&infos)]).expect("octets");
    let auth_safe = seq(&[info[0].full, &tlv(ctx0(true), &[&safe]).expect("[0]")]);
    seq(&[fields[0].full, &auth_safe])
}

/// Why: streaming writers emit BER (indefinite lengths, chunked OCTET STRINGs, constructed
/// `[0] IMPLICIT` contents); the MAC covers the joined octets and must still verify.
#[test]
fn ber_pkcs12_loads() {
    if !have_openssl("ber_pkcs12_loads") {
        return;
    }
    let dir = Scratch::new("ber");
    make_key_and_cert(&dir, KeyType::P256, "k");
    export(&dir, "k", "mac.p12", PASSWORD, &[]);
    // Without a MAC, OpenSSL 3.0 leaves certificates unencrypted unless told otherwise.
    export(
        &dir,
        "k",
        "nomac.p12",
        PASSWORD,
        &["-nomac", "-certpbe", "AES-256-CBC"],
    );
    let cert = cert_der(&dir, "k.pem");
    let mac = ber_outer(&dir.read("mac.p12"));
    let segmented = ber_encrypted_content(&dir.read("nomac.p12"));
    for (name, p12) in [
        ("indefinite lengths, chunked authSafe", mac.clone()),
        ("constructed encryptedContent", segmented.clone()),
        ("both", ber_outer(&segmented)),
    ] {
        assert!(is_pkcs12(&p12), "{name}");
        let loaded = load_with(&p12, RsaPadding::Pkcs1, PASSWORD)
            .unwrap_or_else(|e| panic!("{name}: {}", pki::error::error_text(&e)));
        assert_eq!(loaded.certificate.as_deref(), Some(&cert[..]), "{name}");
        assert_signs_for(&loaded, &cert);
    }
    let err = load_with(&mac, RsaPadding::Pkcs1, "wrong").expect_err("wrong password");
    assert!(matches!(err, Error::WrongPassword { .. }), "{err:?}");
}

/// An EC PKCS#8 key without its public key (RFC 5915 makes it optional; Java's keytool writes
/// them so) loads once its certificate gives the public key, and signs for that certificate;
/// alone it is refused with the way out; with another key's certificate, refused.
#[test]
fn ec_pkcs8_without_public_key_loads_with_its_certificate() {
    if !have_openssl("ec_pkcs8_without_public_key_loads_with_its_certificate") {
        return;
    }
    for (key_type, name) in [(KeyType::P256, "P-256"), (KeyType::P384, "P-384")] {
        let dir = Scratch::new("nopub");
        make_key_and_cert(&dir, key_type, "k");
        make_key_and_cert(&dir, key_type, "other");
        dir.openssl(&["ec", "-in", "k.key", "-no_public", "-out", "k-sec1.pem"]);
        dir.openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "k-sec1.pem",
            "-out",
            "k-nopub.key",
        ]);
        let bytes = dir.read("k-nopub.key");
        let cert = cert_der(&dir, "k.pem");
        let signer_cert = pki::cms::SignerCert::from_der(cert.clone()).expect("certificate");
        let loaded = pki::keyfile::load_signing_key_for(
            &bytes,
            RsaPadding::Pkcs1,
            &mut no_password,
            Some(&signer_cert),
        )
        .expect("loads with the certificate's public key");
        assert_signs_for(&loaded, &cert);
        assert!(signer_cert.matches(&loaded.signer));

        let alone = load_with(&bytes, RsaPadding::Pkcs1, PASSWORD).expect_err("refused alone");
        let text = pki::error::error_text(&alone);
        assert!(
            text.contains(&format!("the {name} key carries no public key"))
                && text.contains("give its certificate"),
            "{text}"
        );

        let other = pki::cms::SignerCert::from_der(cert_der(&dir, "other.pem")).expect("cert");
        let wrong = pki::keyfile::load_signing_key_for(
            &bytes,
            RsaPadding::Pkcs1,
            &mut no_password,
            Some(&other),
        )
        .expect_err("another key's certificate");
        let text = pki::error::error_text(&wrong);
        assert!(text.contains("the certificate is not this key's"), "{text}");
    }
}
