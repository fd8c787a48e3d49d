//! The fields of a certificate that signer selection and path pre-filtering compare, read as raw
//! DER slices without decoding (no `x509-cert`, no `der` SET OF), so that a bag of thousands of
//! certificates costs one linear walk and one hash each.
//!
//! Names are compared as bytes, as rustls-webpki compares them when it chains certificates.

use crate::error::{Error, Result};
use crate::raw::{RawTlv, context};
use der::Tag;

/// id-ce-subjectKeyIdentifier (RFC 5280 §4.2.1.2), DER value bytes.
const SKI_OID: &[u8] = &[0x55, 0x1d, 0x0e];
/// id-ce-authorityKeyIdentifier (RFC 5280 §4.2.1.1), DER value bytes.
const AKI_OID: &[u8] = &[0x55, 0x1d, 0x23];

/// A certificate's fields as slices of its DER (RFC 5280 §4.1).
///
/// ```text
/// Certificate  ::=  SEQUENCE  {
///      tbsCertificate       TBSCertificate,
///      signatureAlgorithm   AlgorithmIdentifier,
///      signatureValue       BIT STRING  }
/// TBSCertificate  ::=  SEQUENCE  {
///      version         [0]  EXPLICIT Version DEFAULT v1,
///      serialNumber         CertificateSerialNumber,
///      signature            AlgorithmIdentifier,
///      issuer               Name,
///      validity             Validity,
///      subject              Name,
///      subjectPublicKeyInfo SubjectPublicKeyInfo,
///      issuerUniqueID  [1]  IMPLICIT UniqueIdentifier OPTIONAL,
///      subjectUniqueID [2]  IMPLICIT UniqueIdentifier OPTIONAL,
///      extensions      [3]  EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RawCert<'a> {
    /// The whole certificate.
    pub der: &'a [u8],
    /// TBSCertificate, tag and length included: what the issuer signed.
    pub tbs: &'a [u8],
    /// The serial number's value octets.
    pub serial: &'a [u8],
    /// The issuer Name, tag and length included.
    pub issuer: &'a [u8],
    /// The subject Name, tag and length included.
    pub subject: &'a [u8],
    /// The subjectPublicKeyInfo's algorithm: the AlgorithmIdentifier's value octets.
    pub spki_algorithm: &'a [u8],
    /// The subjectPublicKey bits (the BIT STRING without its unused-bits octet).
    pub public_key: &'a [u8],
    /// The outer signatureAlgorithm's value octets.
    pub signature_algorithm: &'a [u8],
    /// The signature bits (without the unused-bits octet).
    pub signature: &'a [u8],
    /// subjectKeyIdentifier, when present.
    pub subject_key_id: Option<&'a [u8]>,
    /// authorityKeyIdentifier's keyIdentifier, when present.
    pub authority_key_id: Option<&'a [u8]>,
}

fn bit_string_bytes<'a>(tlv: &RawTlv<'a>, what: &'static str) -> Result<&'a [u8]> {
    if tlv.tag != Tag::BitString {
        return Err(Error::invalid(what, "not a BIT STRING"));
    }
    match tlv.value.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(Error::invalid(what, "BIT STRING with unused bits")),
    }
}

impl<'a> RawCert<'a> {
    /// Splits a certificate's DER. Checks the shape, not the values.
    pub fn parse(der: &'a [u8]) -> Result<RawCert<'a>> {
        const W: &str = "certificate";
        let cert = RawTlv::parse(der, W)?;
        if cert.tag != Tag::Sequence {
            return Err(Error::invalid(W, "not a SEQUENCE"));
        }
        let outer = cert.children(W)?;
        let [tbs, sig_alg, sig] = outer.as_slice() else {
            return Err(Error::invalid(W, "expected three fields"));
        };
        if tbs.tag != Tag::Sequence || sig_alg.tag != Tag::Sequence {
            return Err(Error::invalid(W, "malformed fields"));
        }
        let signature = bit_string_bytes(sig, W)?;
        let fields = tbs.children(W)?;
        let mut i = usize::from(fields.first().is_some_and(|f| f.tag == context(0, true)));
        let mut next = |tag: Tag| -> Result<RawTlv<'a>> {
            let f = fields
                .get(i)
                .filter(|f| f.tag == tag)
                .ok_or_else(|| Error::invalid(W, "TBSCertificate is malformed"))?;
            i += 1;
            Ok(*f)
        };
        let serial = next(Tag::Integer)?.value;
        next(Tag::Sequence)?;
        let issuer = next(Tag::Sequence)?.full;
        next(Tag::Sequence)?;
        let subject = next(Tag::Sequence)?.full;
        let spki = next(Tag::Sequence)?;
        let spki_fields = spki.children(W)?;
        let [spki_alg, spk] = spki_fields.as_slice() else {
            return Err(Error::invalid(W, "malformed subjectPublicKeyInfo"));
        };
        if spki_alg.tag != Tag::Sequence {
            return Err(Error::invalid(W, "malformed subjectPublicKeyInfo"));
        }
        let public_key = bit_string_bytes(spk, W)?;
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        if let Some(exts) = fields[i..].iter().find(|f| f.tag == context(3, true)) {
            let seq = RawTlv::parse(exts.value, W)?;
            for ext in seq.children(W)? {
                let parts = ext.children(W)?;
                let (Some(id), Some(value)) = (parts.first(), parts.last()) else {
                    return Err(Error::invalid(W, "malformed extension"));
                };
                if value.tag != Tag::OctetString {
                    return Err(Error::invalid(W, "malformed extension"));
                }
                if id.value == SKI_OID {
                    let ski = RawTlv::parse(value.value, W)?;
                    if ski.tag != Tag::OctetString {
                        return Err(Error::invalid(W, "malformed subjectKeyIdentifier"));
                    }
                    subject_key_id = Some(ski.value);
                } else if id.value == AKI_OID {
                    let aki = RawTlv::parse(value.value, W)?;
                    authority_key_id = aki
                        .children(W)?
                        .into_iter()
                        .find(|f| f.tag == context(0, false))
                        .map(|f| f.value);
                }
            }
        }
        Ok(RawCert {
            der,
            tbs: tbs.full,
            serial,
            issuer,
            subject,
            spki_algorithm: spki_alg.value,
            public_key,
            signature_algorithm: sig_alg.value,
            signature,
            subject_key_id,
            authority_key_id,
        })
    }

    /// Whether `self` may have issued `child`: its subject is the child's issuer and, when both
    /// carry them, its subjectKeyIdentifier is the child's authorityKeyIdentifier.
    pub fn may_issue(&self, child: &RawCert<'_>) -> bool {
        self.subject == child.issuer
            && match (self.subject_key_id, child.authority_key_id) {
                (Some(ski), Some(aki)) => ski == aki,
                _ => true,
            }
    }

    /// Whether this certificate is self-issued (subject equals issuer, RFC 5280 §6.1).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpki::{DevKeyType, DevPki};

    /// Why: the raw view must agree with x509-cert on the fields selection compares.
    #[test]
    fn raw_fields_agree_with_x509_cert() {
        use der::{Decode, Encode};
        let pki = DevPki::generate(DevKeyType::EcdsaP256).expect("dev pki");
        let raw = RawCert::parse(&pki.tsa_cert).expect("raw");
        let cert = x509_cert::Certificate::from_der(&pki.tsa_cert).expect("cert");
        let tbs = &cert.tbs_certificate;
        assert_eq!(raw.serial, tbs.serial_number.as_bytes());
        assert_eq!(raw.issuer, tbs.issuer.to_der().expect("issuer"));
        assert_eq!(raw.subject, tbs.subject.to_der().expect("subject"));
        assert_eq!(raw.tbs, tbs.to_der().expect("tbs"));
        assert_eq!(
            raw.public_key,
            tbs.subject_public_key_info.subject_public_key.raw_bytes()
        );
        let root = RawCert::parse(&pki.root_cert).expect("root");
        assert!(root.may_issue(&raw), "the root issued the TSA certificate");
        assert!(!raw.may_issue(&root));
        assert!(root.is_self_issued() && !raw.is_self_issued());
        assert!(raw.authority_key_id.is_some());
    }

    /// Why: a truncated or reshaped certificate is an error, never a panic.
    #[test]
    fn raw_parse_rejects_malformed_certificates() {
        let pki = DevPki::generate(DevKeyType::EcdsaP256).expect("dev pki");
        for cut in [1, 10, pki.tsa_cert.len() / 2, pki.tsa_cert.len() - 1] {
            assert!(
                RawCert::parse(&pki.tsa_cert[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(RawCert::parse(&[0x30, 0x00]).is_err());
    }
}
