//! Signing a message (RFC 8551 §3.5): the canonical entity ([`super::canon`]) is signed by a
//! CMS SignedData built in three steps through the [`Signer`] trait, a signature timestamp is
//! obtained over the SignerInfo's signature value through the [`Timestamper`] trait and checked
//! before it is embedded (CAdES-T), and the result is wrapped as multipart/signed (clear-signed,
//! readable without S/MIME support) or application/pkcs7-mime signed-data (opaque).

use super::canon::{self, Prepared};
use crate::cades;
use crate::cms::SignerCert;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::report::TimestampInfo;
use crate::signer::Signer;
use crate::timestamper::Timestamper;

/// How to sign.
pub struct SignOptions<'a> {
    /// The key (a file, an HSM).
    pub signer: &'a dyn Signer,
    /// Its certificate.
    pub cert: &'a SignerCert,
    /// Certificates above it to include (intermediates; a root may be left out).
    pub chain: &'a [Vec<u8>],
    /// Where the signature timestamp comes from; `None` signs without one (the verifier then
    /// reports the time as not proven).
    pub timestamper: Option<&'a dyn Timestamper>,
    /// application/pkcs7-mime signed-data instead of multipart/signed.
    pub opaque: bool,
    /// The signingTime to claim, Unix seconds (`None`: now).
    pub signing_time: Option<u64>,
}

/// A signed message.
#[derive(Clone, Debug)]
pub struct SignedMessage {
    /// The whole message, CRLF line ends, 7-bit safe.
    pub bytes: Vec<u8>,
    /// The signature timestamp embedded, when one was.
    pub timestamp: Option<TimestampInfo>,
}

/// The micalg parameter value for a digest (RFC 8551 §3.5.3.2).
pub fn micalg(h: HashAlg) -> &'static str {
    match h {
        HashAlg::Sha1 => "sha-1",
        HashAlg::Sha256 => "sha-256",
        HashAlg::Sha384 => "sha-384",
        HashAlg::Sha512 => "sha-512",
    }
}

/// Signs `message` (RFC 5322 bytes, CRLF or LF line ends).
pub fn sign_message(message: &[u8], o: &SignOptions<'_>) -> Result<SignedMessage> {
    let Prepared {
        outer_fields,
        entity,
    } = canon::prepare(message)?;
    let (content_info, timestamp) = sign_entity(&entity, o)?;
    let bytes = if o.opaque {
        wrap_opaque(&outer_fields, &content_info)
    } else {
        wrap_detached(
            &outer_fields,
            &entity,
            &content_info,
            o.signer.algorithm().digest(),
        )?
    };
    Ok(SignedMessage { bytes, timestamp })
}

/// The SignedData ContentInfo over `entity` (detached unless `o.opaque`), with its signature
/// timestamp when a timestamper is given.
fn sign_entity(entity: &[u8], o: &SignOptions<'_>) -> Result<(Vec<u8>, Option<TimestampInfo>)> {
    let content = if o.opaque {
        cades::Content::Encapsulated(entity.to_vec())
    } else {
        cades::Content::Detached(cades::digest_algorithm(o.signer).digest(entity))
    };
    let now = o
        .signing_time
        .unwrap_or_else(|| u64::try_from(crate::gentime::unix_now()).unwrap_or(0));
    let signed = cades::sign(
        content,
        &cades::SignRequest {
            signer: o.signer,
            cert: o.cert,
            chain: o.chain,
            timestamper: o.timestamper,
            signing_time: Some(now),
            smime_capabilities: true,
        },
    )?;
    Ok((signed.der, signed.timestamp))
}

/// The outer header block: `outer_fields` (without line ends), then MIME-Version.
pub(super) fn header_block(outer_fields: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in outer_fields {
        out.extend_from_slice(f);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out
}

/// multipart/signed (RFC 1847 §2.1, RFC 8551 §3.5.3).
fn wrap_detached(
    outer_fields: &[Vec<u8>],
    entity: &[u8],
    content_info: &[u8],
    digest: HashAlg,
) -> Result<Vec<u8>> {
    let boundary = boundary(entity)?;
    let mut out = header_block(outer_fields);
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n \
             micalg={}; boundary=\"{boundary}\"\r\n\r\n\
             This is an S/MIME signed message.\r\n\r\n--{boundary}\r\n",
            micalg(digest)
        )
        .as_bytes(),
    );
    out.extend_from_slice(entity);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\n\
             Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\
             Content-Description: S/MIME Cryptographic Signature\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&canon::base64_lines(content_info));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(out)
}

/// application/pkcs7-mime; smime-type=signed-data (RFC 8551 §3.5.2).
fn wrap_opaque(outer_fields: &[Vec<u8>], content_info: &[u8]) -> Vec<u8> {
    let mut out = header_block(outer_fields);
    out.extend_from_slice(
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"\r\n\
          Content-Transfer-Encoding: base64\r\n\
          Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n",
    );
    out.extend_from_slice(&canon::base64_lines(content_info));
    out
}

/// A random boundary that occurs nowhere in `entity` (RFC 2046 §5.1.1).
fn boundary(entity: &[u8]) -> Result<String> {
    for _ in 0..4 {
        let r = crate::rand::array::<12>("a MIME boundary")?;
        let b = format!("----sigillum-{}", hex::encode(r));
        if memchr::memmem::find(entity, b.as_bytes()).is_none() {
            return Ok(b);
        }
    }
    Err(Error::Signing(
        "could not find a MIME boundary absent from the message".into(),
    ))
}
