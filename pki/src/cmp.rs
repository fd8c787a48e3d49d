//! CMP (RFC 9810, lightweight profile RFC 9483) for the CA, read from the bytes as received:
//! the header fields the server keys its checks on, and the message protection over
//! ProtectedPart (`SEQUENCE { header, body }` from the received bytes, never a re-encoding).
//!
//! MAC protection (PasswordBasedMac, what `openssl cmp -secret` sends, and PBMAC1, RFC 9481
//! §6.1.1) goes through [`crate::pbmac`]; signature protection (cr, kur, rr with the
//! requester's certificate first in extraCerts) through the one signature verifier. The body
//! is read into our own types in [`body`] (with `cmpv2`/`crmf` decoding, and the proof of
//! possession verified over the certReq bytes as received); replies are built and protected in
//! [`reply`], with our complete failInfo (cmpv2 0.2's is wrong).
//!
//! ```text
//! PKIMessage ::= SEQUENCE {
//!     header           PKIHeader,
//!     body             PKIBody,
//!     protection   [0] PKIProtection OPTIONAL,
//!     extraCerts   [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL }
//! PKIHeader ::= SEQUENCE {
//!     pvno                INTEGER     { cmp1999(1), cmp2000(2), cmp2021(3) },
//!     sender              GeneralName,
//!     recipient           GeneralName,
//!     messageTime     [0] GeneralizedTime         OPTIONAL,
//!     protectionAlg   [1] AlgorithmIdentifier{ALGORITHM, {...}} OPTIONAL,
//!     senderKID       [2] KeyIdentifier           OPTIONAL,
//!     recipKID        [3] KeyIdentifier           OPTIONAL,
//!     transactionID   [4] OCTET STRING            OPTIONAL,
//!     senderNonce     [5] OCTET STRING            OPTIONAL,
//!     recipNonce      [6] OCTET STRING            OPTIONAL,
//!     freeText        [7] PKIFreeText             OPTIONAL,
//!     generalInfo     [8] SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue OPTIONAL }
//! ```

pub mod body;
pub mod client;
pub mod reply;

pub use body::{CertKind, CertRequest, Confirmation, InfoType, Pop, Request, Revocation};
pub use reply::{GeneralAnswer, Protection, Reply, ReplyBody, fresh_nonce};

use crate::error::{Error, Result};
use crate::raw::{RawTlv, context, tlv};
use der::Tag;
use der::asn1::{BitString, OctetString};
use spki::AlgorithmIdentifierOwned;

/// Largest CMP message read (a certificate request with its key and a few certificates).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A PKIMessage split into the parts its checks need, borrowed from the received bytes.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// pvno: 2 (cmp2000) or 3 (cmp2021), the versions `openssl cmp` sends.
    pub pvno: u8,
    /// The PKIBody's CHOICE tag number (0 ir, 2 cr, 4 p10cr, 7 kur, 11 rr, 21 genm, 24
    /// certConf, ...).
    pub body_type: u8,
    /// protectionAlg, when present.
    pub protection_alg: Option<AlgorithmIdentifierOwned>,
    /// senderKID: for MAC protection, the reference of the shared secret.
    pub sender_kid: Option<Vec<u8>>,
    /// transactionID.
    pub transaction_id: Option<Vec<u8>>,
    /// senderNonce.
    pub sender_nonce: Option<Vec<u8>>,
    /// recipNonce (the senderNonce of the reply this message answers).
    pub recip_nonce: Option<Vec<u8>>,
    /// The protection BIT STRING's bytes, when present.
    pub protection: Option<Vec<u8>>,
    /// The sender GeneralName, DER as received (the reply's recipient).
    pub sender: &'a [u8],
    /// Whether generalInfo asks for implicit confirmation (id-it-implicitConfirm).
    pub implicit_confirm: bool,
    /// extraCerts, DER as received (for signature protection, the signer's certificate
    /// first, RFC 9483 §3.3).
    pub extra_certs: Vec<&'a [u8]>,
    header: RawTlv<'a>,
    body: RawTlv<'a>,
}

/// id-it-implicitConfirm (RFC 9810 §5.1.1.1).
pub const ID_IT_IMPLICIT_CONFIRM: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.13");

fn explicit_octets(t: &RawTlv<'_>, what: &'static str) -> Result<Vec<u8>> {
    // [n] EXPLICIT OCTET STRING (the header's tagged fields are EXPLICIT: RFC 9810 Appendix B
    // has `DEFINITIONS EXPLICIT TAGS`).
    let inner = RawTlv::parse(t.value, what)?;
    Ok(inner.decode::<OctetString>(what)?.as_bytes().to_vec())
}

/// An OCTET STRING of `b` (header fields).
pub(crate) fn octets(b: &[u8]) -> Result<OctetString> {
    OctetString::new(b).map_err(Error::Encode)
}

/// generalInfo asking for (request) or granting (reply) implicit confirmation.
pub(crate) fn implicit_confirm_info() -> Vec<cmpv2::r#gen::InfoTypeAndValue> {
    vec![cmpv2::r#gen::InfoTypeAndValue {
        oid: ID_IT_IMPLICIT_CONFIRM,
        value: Some(der::Any::from(der::asn1::Null)),
    }]
}

/// Assembles a PKIMessage `SEQUENCE { header, [n] body, [0] protection, [1] extraCerts }`,
/// the protection computed by `protect` over ProtectedPart (`SEQUENCE { header, body }`), the
/// one way replies and requests are put together.
pub(crate) fn assemble(
    header: &[u8],
    body_number: u8,
    content: &[u8],
    extra_certs: &[&[u8]],
    protect: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let body = tlv(context(body_number, true), &[content])?;
    let protected = tlv(Tag::Sequence, &[header, &body])?;
    let bits = protect(&protected)?;
    let bits = crate::signer::to_der(&BitString::from_bytes(&bits).map_err(Error::Encode)?)?;
    let protection = tlv(context(0, true), &[&bits])?;
    let mut parts: Vec<Vec<u8>> = vec![header.to_vec(), body, protection];
    if !extra_certs.is_empty() {
        let seq = tlv(Tag::Sequence, extra_certs)?;
        parts.push(tlv(context(1, true), &[&seq])?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    tlv(Tag::Sequence, &refs)
}

/// The hash a certConf's certHash uses for `cert` (DER): the hash of the certificate's own
/// signature algorithm (RFC 9810 §5.3.18; SHA-512 for Ed25519, RFC 9481 §2), SHA-256 when
/// it names none.
pub fn cert_hash_alg(cert: &[u8]) -> Result<crate::digest::HashAlg> {
    use crate::digest::HashAlg;
    use const_oid::db::{rfc5912, rfc8410};
    let alg = crate::cert::parse(cert)?.signature_algorithm.oid;
    Ok(
        if [
            rfc5912::ECDSA_WITH_SHA_384,
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
        ]
        .contains(&alg)
        {
            HashAlg::Sha384
        } else if [
            rfc5912::ECDSA_WITH_SHA_512,
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
            rfc8410::ID_ED_25519,
        ]
        .contains(&alg)
        {
            HashAlg::Sha512
        } else {
            HashAlg::Sha256
        },
    )
}

/// Splits a PKIMessage (DER).
pub fn parse(der: &[u8]) -> Result<Message<'_>> {
    const W: &str = "PKIMessage";
    if der.len() > MAX_MESSAGE {
        return Err(Error::invalid(
            W,
            format!("{} bytes, more than {MAX_MESSAGE}", der.len()),
        ));
    }
    crate::limits::check_sets(der, W)?;
    let msg = RawTlv::parse(der, W)?;
    if msg.tag != Tag::Sequence {
        return Err(Error::invalid(W, "not a SEQUENCE"));
    }
    let parts = msg.children(W)?;
    let (Some(header), Some(body)) = (parts.first(), parts.get(1)) else {
        return Err(Error::invalid(W, "no header and body"));
    };
    if header.tag != Tag::Sequence {
        return Err(Error::invalid("PKIHeader", "not a SEQUENCE"));
    }
    let body_type = match body.tag {
        Tag::ContextSpecific {
            constructed: true,
            number,
        } => number.value(),
        _ => return Err(Error::invalid("PKIBody", "not a context-specific CHOICE")),
    };
    let mut protection = None;
    let mut extra_certs = Vec::new();
    for extra in &parts[2..] {
        if extra.tag == context(0, true) && protection.is_none() && extra_certs.is_empty() {
            let bits =
                RawTlv::parse(extra.value, "protection")?.decode::<BitString>("protection")?;
            protection = Some(bits.raw_bytes().to_vec());
        } else if extra.tag == context(1, true) && extra_certs.is_empty() {
            let seq = RawTlv::parse(extra.value, "extraCerts")?;
            if seq.tag != Tag::Sequence {
                return Err(Error::invalid("extraCerts", "not a SEQUENCE"));
            }
            extra_certs = seq.children("extraCerts")?.iter().map(|c| c.full).collect();
            if extra_certs.is_empty() {
                return Err(Error::invalid("extraCerts", "empty (SIZE (1..MAX))"));
            }
        } else {
            return Err(Error::invalid(W, "unexpected field after the body"));
        }
    }
    let fields = header.children("PKIHeader")?;
    let pvno: u8 = fields
        .first()
        .ok_or_else(|| Error::invalid("PKIHeader", "empty"))?
        .decode::<u8>("pvno")?;
    if !(2..=3).contains(&pvno) {
        return Err(Error::invalid(
            "pvno",
            format!("version {pvno} (2 and 3 are spoken)"),
        ));
    }
    let sender = fields
        .get(1)
        .ok_or_else(|| Error::invalid("PKIHeader", "no sender"))?
        .full;
    if fields.len() < 3 {
        return Err(Error::invalid("PKIHeader", "no recipient"));
    }
    let mut m = Message {
        pvno,
        sender,
        implicit_confirm: false,
        extra_certs,
        body_type,
        protection_alg: None,
        sender_kid: None,
        transaction_id: None,
        sender_nonce: None,
        recip_nonce: None,
        protection,
        header: *header,
        body: *body,
    };
    for f in fields.iter().skip(3) {
        match f.tag {
            t if t == context(1, true) => {
                m.protection_alg =
                    Some(RawTlv::parse(f.value, "protectionAlg")?.decode("protectionAlg")?);
            }
            t if t == context(2, true) => m.sender_kid = Some(explicit_octets(f, "senderKID")?),
            t if t == context(4, true) => {
                m.transaction_id = Some(explicit_octets(f, "transactionID")?)
            }
            t if t == context(5, true) => m.sender_nonce = Some(explicit_octets(f, "senderNonce")?),
            t if t == context(6, true) => m.recip_nonce = Some(explicit_octets(f, "recipNonce")?),
            t if t == context(8, true) => {
                let infos: Vec<cmpv2::r#gen::InfoTypeAndValue> =
                    RawTlv::parse(f.value, "generalInfo")?.decode("generalInfo")?;
                m.implicit_confirm = infos.iter().any(|i| i.oid == ID_IT_IMPLICIT_CONFIRM);
            }
            _ => {}
        }
    }
    Ok(m)
}

impl<'a> Message<'a> {
    /// The PKIBody's content (inside its EXPLICIT CHOICE tag), as received.
    pub fn body_content(&self) -> &'a [u8] {
        self.body.value
    }

    /// ProtectedPart: `SEQUENCE { header, body }` from the bytes as received (RFC 9810
    /// §5.1.3).
    pub fn protected_part(&self) -> Result<Vec<u8>> {
        tlv(Tag::Sequence, &[self.header.full, self.body.full])
    }

    /// Whether the message's signature protection verifies with the key of the first
    /// certificate in extraCerts (RFC 9483 §3.3), which is returned. A message without
    /// protection or extraCerts is an error; a signature that does not verify is `Ok(Err(why))`.
    pub fn verify_signature(&self) -> Result<std::result::Result<&'a [u8], String>> {
        let (Some(alg), Some(sig)) = (&self.protection_alg, &self.protection) else {
            return Err(Error::invalid("PKIMessage", "not protected"));
        };
        let Some(cert) = self.extra_certs.first().copied() else {
            return Err(Error::invalid(
                "PKIMessage",
                "signature protection without the signer's certificate in extraCerts",
            ));
        };
        let spki = crate::cert::parse(cert)?
            .tbs_certificate
            .subject_public_key_info;
        Ok(crate::verify::verify_signature(
            &spki,
            alg,
            crate::digest::HashAlg::Sha256,
            &self.protected_part()?,
            sig,
        )
        .map(|_| cert))
    }

    /// Whether the message is protected by a password-based MAC (PBMAC1 or
    /// PasswordBasedMac) rather than a signature.
    pub fn is_mac_protected(&self) -> bool {
        self.protection_alg.as_ref().is_some_and(|a| {
            a.oid == crate::pbmac::ID_PBMAC1 || a.oid == crate::pbmac::ID_PASSWORD_BASED_MAC
        })
    }

    /// Whether the message's MAC protection verifies under `secret`. A message without
    /// protection, or signed rather than MACed, is an error (the caller answers
    /// badMessageCheck or wrongIntegrity); a wrong secret or changed bytes give `Ok(false)`.
    pub fn verify_mac(&self, secret: &[u8]) -> Result<bool> {
        let (Some(alg), Some(mac)) = (&self.protection_alg, &self.protection) else {
            return Err(Error::invalid("PKIMessage", "not protected"));
        };
        crate::pbmac::verify(
            alg,
            &self.protected_part()?,
            mac,
            secret,
            crate::pbmac::NETWORK_MAX_ITERATIONS,
        )
    }
}
