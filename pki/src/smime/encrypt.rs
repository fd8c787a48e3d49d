//! Encrypted mail (RFC 8551 §3.3): a message, signed or not, becomes application/pkcs7-mime
//! with smime-type authEnveloped-data (AES-256-GCM, the default) or enveloped-data
//! (AES-256-CBC), made by [`crate::envelope`].
//!
//! Header protection (RFC 8551 §3.1): the whole original message (every header field, the
//! real Subject among them, and its body, signature included) is wrapped as message/rfc822 and
//! encrypted. Outside stay only the fields transport and mailbox listing need (From, Sender,
//! To, Cc, Date, Message-ID) and a neutral Subject. [`decrypt_message`] gives back the original
//! message byte for byte, so `stamp verify` checks its signature and From binding as if it had
//! never been encrypted. A message encrypted by another client without the wrapper is rebuilt
//! from the outer fields and the decrypted entity, as clients do.

use super::mime::{self, split_entity};
use crate::envelope::{self, ContentEncryption, Decrypter, EnvelopeInfo, Recipient};
use crate::error::{Error, Result};

/// The Subject written outside when the caller names none ("[...]" as RFC 9788 suggests).
pub const DEFAULT_OUTER_SUBJECT: &str = "[...]";

/// Header fields kept on the outside of an encrypted message.
const OUTER_FIELDS: &[&str] = &["From", "Sender", "To", "Cc", "Date", "Message-ID"];

/// How to encrypt.
#[derive(Debug, Clone, Copy)]
pub struct EncryptOptions<'a> {
    /// Everyone who may read it (the sender's own certificate among them, to read its copy).
    pub recipients: &'a [Recipient],
    /// GCM (default) or CBC.
    pub encryption: ContentEncryption,
    /// The Subject shown outside.
    pub outer_subject: &'a str,
}

/// Encrypts `message` (RFC 5322, CRLF or LF line ends) to every recipient; returns the whole
/// encrypted message, CRLF line ends.
pub fn encrypt_message(message: &[u8], o: &EncryptOptions<'_>) -> Result<Vec<u8>> {
    let message = mime::crlf(message);
    let (block, _) = split_entity(&message);
    let fields = mime::fields(block).map_err(|e| Error::invalid("message header", e))?;
    if fields.is_empty() {
        return Err(Error::invalid(
            "message",
            "no header fields: not an RFC 5322 message",
        ));
    }
    if o.outer_subject.contains(['\r', '\n']) {
        return Err(Error::invalid("outer subject", "a line break"));
    }
    let eight_bit = message.iter().any(|b| *b >= 0x80);
    let mut inner = format!(
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {}\r\n\r\n",
        if eight_bit { "8bit" } else { "7bit" }
    )
    .into_bytes();
    inner.extend_from_slice(&message);
    let content_info = envelope::encrypt(&inner, o.recipients, o.encryption)?;

    let mut outer: Vec<Vec<u8>> = fields
        .iter()
        .filter(|f| OUTER_FIELDS.iter().any(|n| f.is(n)))
        .map(|f| f.raw.to_vec())
        .collect();
    outer.push(format!("Subject: {}", o.outer_subject).into_bytes());
    let mut out = super::sign::header_block(&outer);
    out.extend_from_slice(
        format!(
            "Content-Type: application/pkcs7-mime; smime-type={}; name=\"smime.p7m\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n",
            o.encryption.smime_type()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&super::canon::base64_lines(&content_info));
    Ok(out)
}

/// A decrypted message.
#[derive(Debug, Clone)]
pub struct DecryptedMessage {
    /// The message as it was before encryption (or, without header protection, the outer
    /// fields around the decrypted entity).
    pub message: Vec<u8>,
    /// What the encrypted message said of itself (kind, cipher, recipients).
    pub info: EnvelopeInfo,
}

/// The CMS of an encrypted message: its top-level entity must be application/pkcs7-mime (or
/// x-pkcs7-mime) holding EnvelopedData or AuthEnvelopedData. `None` when it is not encrypted.
pub fn encrypted_content(message: &[u8]) -> Option<Result<Vec<u8>>> {
    let (block, body) = split_entity(message);
    let fields = mime::fields(block).ok()?;
    let ct = mime::content_type(&fields)?;
    let labelled = matches!(
        ct.mime.as_str(),
        "application/pkcs7-mime" | "application/x-pkcs7-mime"
    );
    if !labelled {
        return None;
    }
    let smime_type = ct.param("smime-type").map(str::to_ascii_lowercase);
    if matches!(
        smime_type.as_deref(),
        Some("signed-data" | "certs-only" | "compressed-data")
    ) {
        return None;
    }
    let der = match mime::decode_transfer(&mime::transfer_encoding(&fields), body) {
        Ok(d) => d.into_owned(),
        Err(e) => return Some(Err(Error::invalid("encrypted message body", e))),
    };
    // Without a (known) smime-type the content type inside decides.
    if smime_type.is_none() && envelope::describe(&der).is_err() {
        return None;
    }
    Some(Ok(der))
}

/// How the verifier names an encrypted entity: its CMS type and cipher, and its recipients
/// (`what` when the CMS cannot be read).
pub(super) fn summary(entity: &[u8], what: &str) -> String {
    match encrypted_content(entity) {
        Some(Ok(der)) => summary_of_cms(&der, what),
        _ => what.to_owned(),
    }
}

/// [`summary`] of the CMS itself.
pub(super) fn summary_of_cms(der: &[u8], what: &str) -> String {
    match envelope::describe(der) {
        Ok(info) => format!(
            "{:?}Data, {}, to: {}",
            info.kind,
            info.content_algorithm,
            info.recipients
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(_) => what.to_owned(),
    }
}

/// Decrypts an encrypted message with `key` (and its certificate, to find it among the
/// recipients).
pub fn decrypt_message(
    message: &[u8],
    key: &dyn Decrypter,
    certificate: Option<&[u8]>,
) -> Result<DecryptedMessage> {
    let message = mime::crlf(message);
    let der = encrypted_content(&message).ok_or_else(|| {
        Error::invalid(
            "message",
            "it is not encrypted (no application/pkcs7-mime enveloped-data or \
             authEnveloped-data at its top)",
        )
    })??;
    let (entity, info) = envelope::decrypt(&der, key, certificate)?;
    let entity = mime::crlf(&entity).into_owned();
    let (inner_block, inner_body) = split_entity(&entity);
    // CBC has no integrity: a wrong key (or the random key a failed key transport continues
    // with) gives garbage whose padding passes about once in 256 tries. Garbage is not a MIME
    // entity; it gets the same one error as every other failure, so that the padding's
    // verdict is not told apart either.
    let inner_fields = mime::fields(inner_block).map_err(|_| Error::NotDecryptable)?;
    let wrapped = mime::content_type(&inner_fields).is_some_and(|ct| ct.mime == "message/rfc822");
    let message = if wrapped {
        inner_body.to_vec()
    } else {
        let (block, _) = split_entity(&message);
        let outer = mime::fields(block).map_err(|e| Error::invalid("message header", e))?;
        let kept: Vec<Vec<u8>> = outer
            .iter()
            .filter(|f| !f.is_content() && !f.is("MIME-Version"))
            .map(|f| f.raw.to_vec())
            .collect();
        let mut out = super::sign::header_block(&kept);
        out.extend_from_slice(&entity);
        out
    };
    Ok(DecryptedMessage { message, info })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_comes_back_and_only_transport_fields_stay_outside() {
        let key = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .expect("key");
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls_pki_types::PrivatePkcs8KeyDer::from(key.as_ref().to_vec()),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .expect("rcgen");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
            "bob@example.org".to_owned().try_into().expect("ia5"),
        )];
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyAgreement];
        let cert = params.self_signed(&pair).expect("cert").der().to_vec();
        let recipient = Recipient::from_certificate(&cert).expect("recipient");
        let original = b"From: Bank <statements@bank.example>\r\nTo: bob@example.org\r\n\
            Subject: Your balance is 1,234.56\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\n\
            Message-ID: <1@bank.example>\r\nX-Internal: secret-routing\r\n\
            Content-Type: text/plain\r\n\r\nBalance: 1,234.56\r\n";
        let encrypted = encrypt_message(
            original,
            &EncryptOptions {
                recipients: &[recipient],
                encryption: ContentEncryption::Aes256Gcm,
                outer_subject: DEFAULT_OUTER_SUBJECT,
            },
        )
        .expect("encrypt");
        let text = String::from_utf8_lossy(&encrypted);
        assert!(text.contains("Subject: [...]\r\n"), "{text}");
        assert!(text.contains("smime-type=authEnveloped-data"), "{text}");
        for leak in ["1,234.56", "secret-routing", "X-Internal", "Balance"] {
            assert!(!text.contains(leak), "{leak} is outside: {text}");
        }
        assert!(text.contains("To: bob@example.org\r\n"));
        let decrypter = envelope::SoftwareDecrypter::from_pkcs8_der(key.as_ref()).expect("key");
        let back = decrypt_message(&encrypted, &decrypter, Some(&cert)).expect("decrypt");
        assert_eq!(back.message, original);
        assert!(decrypt_message(original, &decrypter, Some(&cert)).is_err());
    }
}
