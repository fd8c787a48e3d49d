//! SignerInfo (RFC 5652 §5.3) read as raw TLVs: a view of what verification and display need.
//!
//! `cms::signed_data::SignerInfo` decodes signedAttrs and unsignedAttrs as `der` SET OFs, whose
//! decoder sorts in quadratic time (see [`crate::limits`]); unsigned attributes are not signed
//! and anyone may append them. So only the small fields (version, sid, digestAlgorithm,
//! signatureAlgorithm, signature) are decoded with `der`; signed attributes are walked raw
//! ([`attributes`]) and hashed exactly as received; unsigned attributes are only counted and
//! their first OIDs listed.
//!
//! ```text
//! SignerInfo ::= SEQUENCE {
//!   version CMSVersion,
//!   sid SignerIdentifier,
//!   digestAlgorithm DigestAlgorithmIdentifier,
//!   signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
//!   signatureAlgorithm SignatureAlgorithmIdentifier,
//!   signature SignatureValue,
//!   unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
//! SignerIdentifier ::= CHOICE {
//!   issuerAndSerialNumber IssuerAndSerialNumber,
//!   subjectKeyIdentifier [0] SubjectKeyIdentifier }
//! Attribute ::= SEQUENCE {
//!   attrType OBJECT IDENTIFIER,
//!   attrValues SET OF AttributeValue }
//! ```

use crate::cert_raw::RawCert;
use crate::error::{Error, Result};
use crate::limits::MAX_LISTED_UNSIGNED_ATTRS;
use crate::raw::{RawTlv, context};
use der::asn1::ObjectIdentifier;
use der::{Decode, Tag};
use spki::AlgorithmIdentifierOwned;

/// Whom a SignerInfo names as its signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerId {
    /// issuerAndSerialNumber: the issuer Name's DER and the serial's value octets.
    IssuerAndSerial {
        /// The issuer Name, DER (tag and length included).
        issuer: Vec<u8>,
        /// The serial number's value octets.
        serial: Vec<u8>,
    },
    /// subjectKeyIdentifier's octets.
    SubjectKeyId(Vec<u8>),
}

impl SignerId {
    /// Whether `cert` is the certificate this identifier names (names compared as DER bytes).
    pub fn matches(&self, cert: &RawCert<'_>) -> bool {
        match self {
            SignerId::IssuerAndSerial { issuer, serial } => {
                cert.issuer == issuer.as_slice() && cert.serial == serial.as_slice()
            }
            SignerId::SubjectKeyId(ski) => cert.subject_key_id == Some(ski.as_slice()),
        }
    }

    /// The SignerInfo version RFC 5652 §5.3 requires for this form of sid.
    pub fn required_version(&self) -> u8 {
        match self {
            SignerId::IssuerAndSerial { .. } => 1,
            SignerId::SubjectKeyId(_) => 3,
        }
    }
}

impl std::fmt::Display for SignerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerId::IssuerAndSerial { issuer, serial } => write!(
                f,
                "issuer {}, serial 0x{}",
                crate::cert::name_string(issuer),
                hex::encode(serial)
            ),
            SignerId::SubjectKeyId(ski) => write!(f, "subjectKeyIdentifier {}", hex::encode(ski)),
        }
    }
}

/// What a SignerInfo holds, for verification and display.
#[derive(Clone, Debug)]
pub struct SignerInfoView {
    /// CMSVersion.
    pub version: u8,
    /// The signer's identifier.
    pub sid: SignerId,
    /// digestAlgorithm.
    pub digest_algorithm: AlgorithmIdentifierOwned,
    /// The OIDs of the signed attributes, in received order (empty when there are none).
    pub signed_attr_oids: Vec<ObjectIdentifier>,
    /// signedAttrs exactly as received, re-tagged as the SET (0x31) that was signed
    /// (RFC 5652 §5.4); `None` when absent.
    pub signed_attrs_der: Option<Vec<u8>>,
    /// signatureAlgorithm.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature value.
    pub signature: Vec<u8>,
    /// The first [`MAX_LISTED_UNSIGNED_ATTRS`] unsigned attribute OIDs (`None` for one that
    /// does not decode).
    pub unsigned_attr_oids: Vec<Option<ObjectIdentifier>>,
    /// How many unsigned attributes there are.
    pub unsigned_attr_count: usize,
    /// The values of the id-aa-signatureTimeStampToken unsigned attributes (RFC 3161 Appendix
    /// A), each a whole TimeStampToken TLV as received; at most
    /// [`crate::limits::MAX_SIGNATURE_TIMESTAMPS`].
    pub signature_timestamps: Vec<Vec<u8>>,
}

impl SignerInfoView {
    /// Reads a SignerInfo's DER. Linear in its length, whatever the attributes hold.
    pub fn parse(der: &[u8]) -> Result<SignerInfoView> {
        const W: &str = "SignerInfo";
        let si = RawTlv::parse(der, W)?;
        if si.tag != Tag::Sequence {
            return Err(Error::invalid(W, "not a SEQUENCE"));
        }
        let fields = si.children(W)?;
        let mut it = fields.iter().peekable();
        let mut take = |want: &dyn Fn(Tag) -> bool, name: &'static str| {
            it.next_if(|f| want(f.tag))
                .copied()
                .ok_or_else(|| Error::invalid(W, format!("{name} missing or misplaced")))
        };
        let version: u8 = take(&|t| t == Tag::Integer, "version")?.decode("SignerInfo version")?;
        let sid = take(&|t| t == Tag::Sequence || t == context(0, false), "sid")?;
        let sid = if sid.tag == Tag::Sequence {
            let parts = sid.children(W)?;
            match parts.as_slice() {
                [issuer, serial] if issuer.tag == Tag::Sequence && serial.tag == Tag::Integer => {
                    SignerId::IssuerAndSerial {
                        issuer: issuer.full.to_vec(),
                        serial: serial.value.to_vec(),
                    }
                }
                _ => return Err(Error::invalid(W, "malformed issuerAndSerialNumber")),
            }
        } else {
            SignerId::SubjectKeyId(sid.value.to_vec())
        };
        let digest_algorithm: AlgorithmIdentifierOwned =
            take(&|t| t == Tag::Sequence, "digestAlgorithm")?.decode("digestAlgorithm")?;
        let signed = take(&|t| t == context(0, true), "signedAttrs").ok();
        let signature_algorithm: AlgorithmIdentifierOwned =
            take(&|t| t == Tag::Sequence, "signatureAlgorithm")?.decode("signatureAlgorithm")?;
        let signature = take(&|t| t == Tag::OctetString, "signature")?
            .value
            .to_vec();
        let unsigned = take(&|t| t == context(1, true), "unsignedAttrs").ok();
        if it.next().is_some() {
            return Err(Error::invalid(W, "unexpected fields after the signature"));
        }
        let (signed_attr_oids, signed_attrs_der) = match signed {
            Some(s) => {
                let mut set = s.full.to_vec();
                set[0] = 0x31;
                let oids = attributes(&set)?.into_iter().map(|a| a.oid).collect();
                (oids, Some(set))
            }
            None => (Vec::new(), None),
        };
        let mut unsigned_attr_oids = Vec::new();
        let mut unsigned_attr_count = 0;
        let mut signature_timestamps = Vec::new();
        if let Some(u) = unsigned {
            let mut rest = u.value;
            while !rest.is_empty() {
                let (attr, next) = RawTlv::parse_prefix(rest, "unsigned attribute")?;
                // Every attribute's type is looked at (a timestamp may sit anywhere), but only
                // a few are listed and only signature timestamps are kept.
                let parts = RawTlv::parse_prefix(attr.value, "unsigned attribute").ok();
                let oid = parts.and_then(|(o, _)| o.decode::<ObjectIdentifier>("attrType").ok());
                if unsigned_attr_oids.len() < MAX_LISTED_UNSIGNED_ATTRS {
                    unsigned_attr_oids.push(oid);
                }
                if oid == Some(crate::oid::ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
                    && let Some((_, values)) = parts
                {
                    let values = RawTlv::parse(values, "signatureTimeStampToken values")?;
                    for v in values.children("signatureTimeStampToken values")? {
                        if signature_timestamps.len() < crate::limits::MAX_SIGNATURE_TIMESTAMPS {
                            signature_timestamps.push(v.full.to_vec());
                        }
                    }
                }
                unsigned_attr_count += 1;
                rest = next;
            }
        }
        Ok(SignerInfoView {
            version,
            sid,
            digest_algorithm,
            signed_attr_oids,
            signed_attrs_der,
            signature_algorithm,
            signature,
            unsigned_attr_oids,
            unsigned_attr_count,
            signature_timestamps,
        })
    }
}

/// One attribute, raw: its type and its values as received.
#[derive(Clone, Debug)]
pub struct RawAttribute<'a> {
    /// attrType.
    pub oid: ObjectIdentifier,
    /// attrValues, each a whole TLV.
    pub values: Vec<RawTlv<'a>>,
}

/// Walks a SET of attributes (signed attributes as re-tagged by [`SignerInfoView`]).
pub fn attributes(set_der: &[u8]) -> Result<Vec<RawAttribute<'_>>> {
    const W: &str = "signed attributes";
    let set = RawTlv::parse(set_der, W)?;
    let mut out = Vec::new();
    for attr in set.children(W)? {
        let parts = attr.children(W)?;
        let [oid, values] = parts.as_slice() else {
            return Err(Error::invalid(W, "an attribute is not type and values"));
        };
        if attr.tag != Tag::Sequence || values.tag != Tag::Set {
            return Err(Error::invalid(W, "malformed attribute"));
        }
        out.push(RawAttribute {
            oid: ObjectIdentifier::from_der(oid.full).map_err(Error::decode("attrType"))?,
            values: values.children(W)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::tlv;

    fn minimal(unsigned: Option<Vec<u8>>) -> Vec<u8> {
        let version = [0x02, 0x01, 0x01];
        let sid = tlv(Tag::Sequence, &[&[0x30, 0x00], &[0x02, 0x01, 0x07]]).expect("sid");
        let alg = tlv(
            Tag::Sequence,
            &[&[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
            ]],
        )
        .expect("alg");
        let ct = tlv(
            Tag::Sequence,
            &[
                &[
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03,
                ],
                &[0x31, 0x02, 0x05, 0x00],
            ],
        )
        .expect("attr");
        let signed = tlv(context(0, true), &[&ct]).expect("signed");
        let sig = [0x04, 0x02, 0xaa, 0xbb];
        let mut parts: Vec<&[u8]> = vec![&version, &sid, &alg, &signed, &alg, &sig];
        if let Some(u) = &unsigned {
            parts.push(u);
        }
        tlv(Tag::Sequence, &parts).expect("si")
    }

    /// Why: the view must read every field a token's checks use.
    #[test]
    fn view_reads_the_fields() {
        let v = SignerInfoView::parse(&minimal(None)).expect("parses");
        assert_eq!(v.version, 1);
        assert_eq!(
            v.sid,
            SignerId::IssuerAndSerial {
                issuer: vec![0x30, 0x00],
                serial: vec![7]
            }
        );
        assert_eq!(v.signature, vec![0xaa, 0xbb]);
        assert_eq!(v.signed_attr_oids, vec![crate::oid::ID_CONTENT_TYPE]);
        assert_eq!(v.signed_attrs_der.as_deref().map(|d| d[0]), Some(0x31));
        assert_eq!(v.unsigned_attr_count, 0);
    }

    /// Why: unsigned attributes are counted in linear time and listed only up to the cap.
    #[test]
    fn unsigned_attributes_are_counted_and_capped() {
        let attr = [0x30, 0x05, 0x06, 0x01, 0x2a, 0x31, 0x00];
        let n = 100_000;
        let parts: Vec<&[u8]> = std::iter::repeat_n(&attr[..], n).collect();
        let unsigned = tlv(context(1, true), &parts).expect("unsigned");
        let v = SignerInfoView::parse(&minimal(Some(unsigned))).expect("parses");
        assert_eq!(v.unsigned_attr_count, n);
        assert_eq!(v.unsigned_attr_oids.len(), MAX_LISTED_UNSIGNED_ATTRS);
    }

    /// Why: a field out of place or an extra field is malformed, not silently skipped.
    #[test]
    fn misplaced_fields_are_rejected() {
        let mut si = minimal(None);
        si.extend_from_slice(&[0x05, 0x00]);
        let fields = RawTlv::parse(&minimal(None), "t")
            .expect("si")
            .children("t")
            .expect("fields")
            .iter()
            .map(|f| f.full.to_vec())
            .collect::<Vec<_>>();
        let mut extra: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        extra.push(&[0x05, 0x00]);
        let bad = tlv(Tag::Sequence, &extra).expect("bad");
        assert!(SignerInfoView::parse(&bad).is_err(), "trailing field");
        let swapped: Vec<&[u8]> = vec![&fields[1], &fields[0], &fields[2], &fields[4], &fields[5]];
        let bad = tlv(Tag::Sequence, &swapped).expect("bad");
        assert!(SignerInfoView::parse(&bad).is_err(), "sid before version");
        assert!(SignerInfoView::parse(&si).is_err(), "trailing bytes");
    }
}
