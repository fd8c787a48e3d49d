//! Round trips and refusals in process; `openssl cms` and Python's `cryptography` check the same
//! in tests/tests/email_encrypt.rs.

use super::*;
use aws_lc_rs::encoding::AsDer;

/// A recipient: its PKCS#8 key and a self-signed certificate for `email`.
struct Party {
    pkcs8: Vec<u8>,
    cert: Vec<u8>,
}

fn party(kind: KeyKind, email: &str, usage: rcgen::KeyUsagePurpose, days: (i64, i64)) -> Party {
    let (pkcs8, alg) = match kind {
        KeyKind::Rsa => {
            let key =
                aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("rsa key");
            (
                key.as_der().expect("pkcs8").as_ref().to_vec(),
                &rcgen::PKCS_RSA_SHA256,
            )
        }
        KeyKind::EcP256 => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
            (key.serialize_der(), &rcgen::PKCS_ECDSA_P256_SHA256)
        }
        KeyKind::EcP384 => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
            (key.serialize_der(), &rcgen::PKCS_ECDSA_P384_SHA384)
        }
    };
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.clone()),
        alg,
    )
    .expect("rcgen key");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, email.to_owned());
    params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
        email.to_owned().try_into().expect("ia5"),
    )];
    params.key_usages = vec![usage];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::EmailProtection];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(days.0);
    params.not_after = now + time::Duration::days(days.1);
    let cert = params.self_signed(&key_pair).expect("certificate");
    Party {
        pkcs8,
        cert: cert.der().to_vec(),
    }
}

fn encryption_party(kind: KeyKind, email: &str) -> Party {
    let usage = match kind {
        KeyKind::Rsa => rcgen::KeyUsagePurpose::KeyEncipherment,
        _ => rcgen::KeyUsagePurpose::KeyAgreement,
    };
    party(kind, email, usage, (-1, 30))
}

fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

const MESSAGE: &[u8] = b"Content-Type: text/plain\r\n\r\nYour statement for November.\r\n";

fn decrypts(der: &[u8], p: &Party, with_cert: bool) -> Result<Vec<u8>> {
    let key = SoftwareDecrypter::from_pkcs8_der(&p.pkcs8)?;
    decrypt(der, &key, with_cert.then_some(p.cert.as_slice())).map(|(c, _)| c)
}

#[test]
fn every_recipient_of_every_kind_reads_both_content_types() {
    let parties = [
        encryption_party(KeyKind::Rsa, "rsa@example.org"),
        encryption_party(KeyKind::EcP256, "p256@example.org"),
        encryption_party(KeyKind::EcP384, "p384@example.org"),
    ];
    let recipients: Vec<Recipient> = parties
        .iter()
        .map(|p| Recipient::from_certificate(&p.cert).expect("recipient"))
        .collect();
    for enc in [ContentEncryption::Aes256Gcm, ContentEncryption::Aes256Cbc] {
        let der = encrypt(MESSAGE, &recipients, enc).expect("encrypt");
        let info = describe(&der).expect("describe");
        assert_eq!(info.recipients.len(), 3, "{info:?}");
        assert_eq!(
            info.kind,
            match enc {
                ContentEncryption::Aes256Gcm => EnvelopeKind::AuthEnveloped,
                ContentEncryption::Aes256Cbc => EnvelopeKind::Enveloped,
            }
        );
        for p in &parties {
            assert_eq!(decrypts(&der, p, true).expect("with cert"), MESSAGE);
        }
        // Without the certificate a key that is the only one of its kind still finds itself.
        assert_eq!(
            decrypts(&der, &parties[0], false).expect("rsa alone"),
            MESSAGE
        );
    }
}

#[test]
fn a_key_that_is_not_a_recipient_is_told_so_with_the_recipients() {
    let alice = encryption_party(KeyKind::EcP256, "alice@example.org");
    let mallory = encryption_party(KeyKind::EcP256, "mallory@example.org");
    let der = encrypt(
        MESSAGE,
        &[Recipient::from_certificate(&alice.cert).expect("recipient")],
        ContentEncryption::Aes256Gcm,
    )
    .expect("encrypt");
    match decrypts(&der, &mallory, true) {
        Err(Error::NotARecipient { recipients, .. }) => {
            assert_eq!(recipients.len(), 1);
            assert!(
                recipients[0].contains("alice@example.org"),
                "{recipients:?}"
            );
        }
        other => panic!("expected NotARecipient, got {other:?}"),
    }
    // Mallory's key with Alice's certificate: the pair does not match.
    let key = SoftwareDecrypter::from_pkcs8_der(&mallory.pkcs8).expect("key");
    assert!(matches!(
        decrypt(&der, &key, Some(&alice.cert)),
        Err(Error::Certificate(_))
    ));
    // Without a certificate Mallory's key is the only EC recipient's kind: it is tried, and the
    // failure is the one opaque error.
    assert!(matches!(
        decrypts(&der, &mallory, false),
        Err(Error::NotDecryptable)
    ));
}

/// Flips one bit at `offset` from the end of the DER.
fn flip_from_end(der: &[u8], offset: usize) -> Vec<u8> {
    let mut out = der.to_vec();
    let i = out.len() - offset;
    out[i] ^= 0x01;
    out
}

#[test]
fn altered_tag_ciphertext_or_wrapped_key_release_nothing() {
    for kind in [KeyKind::Rsa, KeyKind::EcP256] {
        let p = encryption_party(kind, "bob@example.org");
        let r = Recipient::from_certificate(&p.cert).expect("recipient");
        let der = encrypt(MESSAGE, &[r], ContentEncryption::Aes256Gcm).expect("encrypt");
        // The mac is the last field: its last byte, then a ciphertext byte before it.
        for offset in [1, 16 + 2 + 5] {
            let bad = flip_from_end(&der, offset);
            assert!(
                matches!(decrypts(&bad, &p, true), Err(Error::NotDecryptable)),
                "{kind:?}: a flipped bit {offset} from the end was not refused"
            );
        }
        // The encrypted key: find it by its value inside the DER and flip a bit in the middle.
        let parsed = decrypt::parse(&der).expect("parse");
        let enc_key = match &parsed.infos[0] {
            RecipientInfo::Ktri(k) => k.enc_key.as_bytes().to_vec(),
            RecipientInfo::Kari(k) => k.recipient_enc_keys[0].enc_key.as_bytes().to_vec(),
            _ => unreachable!(),
        };
        let at = der
            .windows(enc_key.len())
            .position(|w| w == enc_key)
            .expect("encrypted key in the DER");
        let mut bad = der.clone();
        bad[at + enc_key.len() / 2] ^= 0x80;
        assert!(
            matches!(decrypts(&bad, &p, true), Err(Error::NotDecryptable)),
            "{kind:?}: an altered encrypted key was not refused with the one error"
        );
    }
}

#[test]
fn truncated_or_garbled_input_is_a_parse_error_not_a_panic() {
    let p = encryption_party(KeyKind::EcP256, "carol@example.org");
    let r = Recipient::from_certificate(&p.cert).expect("recipient");
    let der = encrypt(MESSAGE, &[r], ContentEncryption::Aes256Cbc).expect("encrypt");
    for cut in [1, 10, der.len() / 2, der.len() - 1] {
        assert!(decrypts(&der[..cut], &p, true).is_err(), "cut at {cut}");
    }
    assert!(describe(b"not DER at all").is_err());
}

#[test]
fn an_unknown_content_cipher_is_named() {
    let p = encryption_party(KeyKind::EcP256, "dave@example.org");
    let r = Recipient::from_certificate(&p.cert).expect("recipient");
    let der = encrypt(MESSAGE, &[r], ContentEncryption::Aes256Cbc).expect("encrypt");
    // id-aes256-CBC ends in .42 (0x2a); make it .43 (an OID we do not know).
    let needle = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    let at = der
        .windows(9)
        .position(|w| w == needle)
        .expect("AES-256-CBC OID");
    let mut bad = der.clone();
    bad[at + 8] = 0x2b;
    match decrypts(&bad, &p, true) {
        Err(Error::Unsupported { what, detail }) => {
            assert_eq!(what, "content encryption");
            assert!(detail.contains("2.16.840.1.101.3.4.1.43"), "{detail}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn recipient_certificates_are_checked_with_a_reason() {
    let ok = encryption_party(KeyKind::Rsa, "erin@example.org");
    let r = Recipient::from_certificate(&ok.cert).expect("recipient");
    assert_eq!(r.check(Some("Erin@Example.org"), now()), Ok(()));
    let wrong_address = r
        .check(Some("eve@example.org"), now())
        .expect_err("refused");
    assert!(
        wrong_address.contains("not bound to eve@example.org"),
        "{wrong_address}"
    );

    let signing = party(
        KeyKind::EcP256,
        "frank@example.org",
        rcgen::KeyUsagePurpose::DigitalSignature,
        (-1, 30),
    );
    let r = Recipient::from_certificate(&signing.cert).expect("recipient");
    let e = r
        .check(Some("frank@example.org"), now())
        .expect_err("refused");
    assert!(e.contains("keyAgreement"), "{e}");

    let expired = party(
        KeyKind::Rsa,
        "grace@example.org",
        rcgen::KeyUsagePurpose::KeyEncipherment,
        (-30, -1),
    );
    let r = Recipient::from_certificate(&expired.cert).expect("recipient");
    let e = r
        .check(Some("grace@example.org"), now())
        .expect_err("refused");
    assert!(e.contains("expired"), "{e}");
}
