//! CMS SignedData (RFC 5652 §5): building in three steps, and adding unsigned attributes.
//!
//! 1. [`SignedDataBuilder::to_be_signed`] builds the signed attributes (contentType,
//!    messageDigest, then the caller's) and returns the DER of the SET that is signed.
//! 2. The caller signs those bytes with any [`crate::signer::Signer`] (a key file, an HSM,
//!    a remote service; possibly later, as a PDF signature placeholder does).
//! 3. [`ToBeSigned::assemble`] writes the SignerInfo and the SignedData ContentInfo.
//!
//! The content may be encapsulated (a timestamp token's TSTInfo) or detached (S/MIME, PDF):
//! either way the caller passes the content's digest, so a PDF byte range or a MIME part never
//! has to be held in memory. Certificates are written in the order given, signer first (some
//! clients assume it), which is why SignedData is assembled from pre-encoded parts here rather
//! than through `cms::SignedData`, whose SET OF would re-sort them.

use crate::asn1::{
    Attribute, EssCertIdV2, IssuerSerial, SigningCertificateV2, SmimeCapability, attribute,
};
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::oid;
use crate::raw::{RawTlv, context, tlv};
use crate::signer::{SignatureAlgorithm, to_der};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Tag};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;

/// The signer's certificate, parsed once and kept with its DER.
#[derive(Clone, Debug)]
pub struct SignerCert {
    /// The certificate DER exactly as loaded.
    pub der: Vec<u8>,
    /// The parsed certificate.
    pub cert: Certificate,
}

impl SignerCert {
    /// Parses a certificate from DER.
    pub fn from_der(der: Vec<u8>) -> Result<SignerCert> {
        let cert = Certificate::from_der(&der).map_err(Error::decode("certificate"))?;
        Ok(SignerCert { der, cert })
    }

    /// Whether this certificate's public key is `signer`'s: the one key/certificate match
    /// check, for the authority, the email and PDF signers and the key loader.
    pub fn matches(&self, signer: &dyn crate::signer::Signer) -> bool {
        crate::cert::has_public_key(&self.cert, signer.public_key())
    }

    /// The name a person reads for this signer: the subject's commonName, else the whole
    /// subject (RFC 4514 form).
    pub fn display_name(&self) -> String {
        crate::cert::common_name(&self.cert)
            .unwrap_or_else(|| self.cert.tbs_certificate.subject.to_string())
    }

    /// issuerAndSerialNumber identifying this certificate (RFC 5652 §5.3).
    pub fn signer_identifier(&self) -> SignerIdentifier {
        SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.cert.tbs_certificate.issuer.clone(),
            serial_number: self.cert.tbs_certificate.serial_number.clone(),
        })
    }
}

/// What to sign: content type, content digest, extra signed attributes, certificates.
#[derive(Clone, Debug)]
pub struct SignedDataBuilder {
    content_type: ObjectIdentifier,
    econtent: Option<Vec<u8>>,
    digest: Vec<u8>,
    signature_algorithm: SignatureAlgorithm,
    extra_signed: Vec<Attribute>,
    sid: SignerIdentifier,
    certificates: Vec<Vec<u8>>,
}

impl SignedDataBuilder {
    /// Starts a SignedData over detached content whose digest (with
    /// `signature_algorithm.digest()`) the caller computed.
    pub fn detached(
        content_type: ObjectIdentifier,
        content_digest: Vec<u8>,
        signature_algorithm: SignatureAlgorithm,
        signer: &SignerCert,
    ) -> Result<SignedDataBuilder> {
        if content_digest.len() != signature_algorithm.digest().len() {
            return Err(Error::invalid(
                "content digest",
                format!(
                    "{} bytes, {} wants {}",
                    content_digest.len(),
                    signature_algorithm.digest(),
                    signature_algorithm.digest().len()
                ),
            ));
        }
        Ok(SignedDataBuilder {
            content_type,
            econtent: None,
            digest: content_digest,
            signature_algorithm,
            extra_signed: Vec::new(),
            sid: signer.signer_identifier(),
            certificates: Vec::new(),
        })
    }

    /// Starts a SignedData that encapsulates `content` (the octets inside eContent).
    pub fn encapsulated(
        content_type: ObjectIdentifier,
        content: Vec<u8>,
        signature_algorithm: SignatureAlgorithm,
        signer: &SignerCert,
    ) -> Result<SignedDataBuilder> {
        let digest = signature_algorithm.digest().digest(&content);
        let mut b = Self::detached(content_type, digest, signature_algorithm, signer)?;
        b.econtent = Some(content);
        Ok(b)
    }

    /// Adds a signed attribute beside contentType and messageDigest (which are always added and
    /// must not be passed here).
    pub fn signed_attribute(mut self, attr: Attribute) -> Result<SignedDataBuilder> {
        if attr.oid == oid::ID_CONTENT_TYPE || attr.oid == oid::ID_MESSAGE_DIGEST {
            return Err(Error::invalid(
                "signed attribute",
                "contentType and messageDigest are added by the builder",
            ));
        }
        self.extra_signed.push(attr);
        Ok(self)
    }

    /// Adds certificates (DER) to include, in this order; put the signer's first.
    pub fn certificates(mut self, certs: impl IntoIterator<Item = Vec<u8>>) -> SignedDataBuilder {
        self.certificates.extend(certs);
        self
    }

    /// Step 1: builds the signed attributes; the returned value holds the bytes to sign.
    pub fn to_be_signed(self) -> Result<ToBeSigned> {
        let mut attrs: SetOfVec<Attribute> = SetOfVec::new();
        attrs
            .insert(attribute(
                oid::ID_CONTENT_TYPE,
                Any::encode_from(&self.content_type).map_err(Error::Encode)?,
            )?)
            .map_err(Error::Encode)?;
        let md = OctetString::new(self.digest.clone()).map_err(Error::Encode)?;
        attrs
            .insert(attribute(
                oid::ID_MESSAGE_DIGEST,
                Any::encode_from(&md).map_err(Error::Encode)?,
            )?)
            .map_err(Error::Encode)?;
        for a in &self.extra_signed {
            attrs.insert(a.clone()).map_err(|e| match e.kind() {
                der::ErrorKind::SetDuplicate => {
                    Error::invalid("signed attribute", format!("{} given twice", a.oid))
                }
                _ => Error::Encode(e),
            })?;
        }
        let signed_attrs_der = to_der(&attrs)?;
        Ok(ToBeSigned {
            builder: self,
            signed_attrs: attrs,
            signed_attrs_der,
        })
    }
}

/// The signed attributes, ready to be signed.
#[derive(Clone, Debug)]
pub struct ToBeSigned {
    builder: SignedDataBuilder,
    signed_attrs: SetOfVec<Attribute>,
    signed_attrs_der: Vec<u8>,
}

impl ToBeSigned {
    /// Step 2's input: the DER of the signed attributes as a SET (tag 0x31), RFC 5652 §5.4.
    pub fn bytes(&self) -> &[u8] {
        &self.signed_attrs_der
    }

    /// Step 3: assembles the SignedData ContentInfo around `signature`.
    pub fn assemble(self, signature: Vec<u8>) -> Result<Vec<u8>> {
        let b = self.builder;
        let digest_alg = b.signature_algorithm.digest().algorithm_identifier();
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: b.sid,
            digest_alg: digest_alg.clone(),
            signed_attrs: Some(self.signed_attrs),
            signature_algorithm: b.signature_algorithm.algorithm_identifier()?,
            signature: OctetString::new(signature).map_err(Error::Encode)?,
            unsigned_attrs: None,
        };
        let signer_info_der = to_der(&signer_info)?;
        assemble_signed_data(
            &b.content_type,
            b.econtent.as_deref(),
            &[digest_alg],
            &b.certificates,
            &[&signer_info_der],
        )
    }
}

/// SignedData version per RFC 5652 §5.1 for the cases we write (no attribute certificates,
/// no "other" certificate or CRL formats, SignerInfos of version 1).
fn signed_data_version(content_type: &ObjectIdentifier) -> u8 {
    if *content_type == oid::ID_DATA { 1 } else { 3 }
}

/// Writes `ContentInfo { signedData, SignedData {...} }` from pre-encoded parts.
fn assemble_signed_data(
    content_type: &ObjectIdentifier,
    econtent: Option<&[u8]>,
    digest_algs: &[spki::AlgorithmIdentifierOwned],
    certificates: &[Vec<u8>],
    signer_infos: &[&[u8]],
) -> Result<Vec<u8>> {
    let version = to_der(&signed_data_version(content_type))?;
    let mut algs: SetOfVec<spki::AlgorithmIdentifierOwned> = SetOfVec::new();
    for a in digest_algs {
        if !algs.iter().any(|x| x == a) {
            algs.insert(a.clone()).map_err(Error::Encode)?;
        }
    }
    let algs = to_der(&algs)?;
    let ct = to_der(content_type)?;
    let encap = match econtent {
        Some(content) => {
            let octets = to_der(&OctetString::new(content).map_err(Error::Encode)?)?;
            let explicit = tlv(context(0, true), &[&octets])?;
            tlv(Tag::Sequence, &[&ct, &explicit])?
        }
        None => tlv(Tag::Sequence, &[&ct])?,
    };
    let certs = if certificates.is_empty() {
        Vec::new()
    } else {
        let parts: Vec<&[u8]> = certificates.iter().map(Vec::as_slice).collect();
        tlv(context(0, true), &parts)?
    };
    let signer_infos = tlv(Tag::Set, signer_infos)?;
    let sd = tlv(
        Tag::Sequence,
        &[&version, &algs, &encap, &certs, &signer_infos],
    )?;
    content_info(&sd)
}

fn content_info(signed_data: &[u8]) -> Result<Vec<u8>> {
    let ct = to_der(&oid::ID_SIGNED_DATA)?;
    let explicit = tlv(context(0, true), &[signed_data])?;
    tlv(Tag::Sequence, &[&ct, &explicit])
}

/// A SignedData ContentInfo split into raw parts, exactly as received (DER expected: run
/// [`crate::ber::normalize`] first on input that may be BER).
#[derive(Clone, Debug)]
pub struct RawSignedData<'a> {
    /// The SignedData SEQUENCE.
    pub signed_data: RawTlv<'a>,
    /// version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos.
    pub fields: Vec<RawTlv<'a>>,
    /// Index of the certificates field in `fields`, when present.
    pub certificates: Option<usize>,
    /// The SignerInfo elements, in received order.
    pub signer_infos: Vec<RawTlv<'a>>,
}

impl<'a> RawSignedData<'a> {
    /// Splits a ContentInfo holding SignedData.
    pub fn parse(content_info: &'a [u8]) -> Result<RawSignedData<'a>> {
        let ci = RawTlv::parse(content_info, "ContentInfo")?;
        let ci_fields = ci.children("ContentInfo")?;
        let [ct, explicit] = ci_fields.as_slice() else {
            return Err(Error::invalid(
                "ContentInfo",
                "expected contentType and content",
            ));
        };
        let ct: ObjectIdentifier = ct.decode("ContentInfo contentType")?;
        if ct != oid::ID_SIGNED_DATA {
            return Err(Error::invalid(
                "ContentInfo",
                format!("content type {ct} is not signedData"),
            ));
        }
        if explicit.tag != context(0, true) {
            return Err(Error::invalid("ContentInfo", "content is not [0] EXPLICIT"));
        }
        let signed_data = RawTlv::parse(explicit.value, "SignedData")?;
        if signed_data.tag != Tag::Sequence {
            return Err(Error::invalid("SignedData", "not a SEQUENCE"));
        }
        let fields = signed_data.children("SignedData")?;
        if fields.len() < 4 {
            return Err(Error::invalid("SignedData", "too few fields"));
        }
        let certificates = fields.iter().position(|f| f.tag == context(0, true));
        let last = fields
            .last()
            .ok_or_else(|| Error::invalid("SignedData", "empty"))?;
        if last.tag != Tag::Set {
            return Err(Error::invalid("SignedData", "signerInfos is not a SET"));
        }
        let signer_infos = last.children("SignerInfos")?;
        Ok(RawSignedData {
            signed_data,
            fields,
            certificates,
            signer_infos,
        })
    }

    /// The certificate DERs carried in the SignedData (certificates of other formats skipped).
    pub fn certificates(&self) -> Result<Vec<&'a [u8]>> {
        let Some(i) = self.certificates else {
            return Ok(Vec::new());
        };
        Ok(self.fields[i]
            .children("certificates")?
            .into_iter()
            .filter(|c| c.tag == Tag::Sequence)
            .map(|c| c.full)
            .collect())
    }

    /// Returns a new ContentInfo in which SignerInfo `index` carries `attr` among its unsigned
    /// attributes (RFC 5652 §11: unsignedAttrs), everything else kept byte for byte.
    pub fn with_unsigned_attribute(&self, index: usize, attr: &Attribute) -> Result<Vec<u8>> {
        let si = self
            .signer_infos
            .get(index)
            .ok_or_else(|| Error::invalid("SignedData", "no such SignerInfo"))?;
        let si_fields = si.children("SignerInfo")?;
        let mut unsigned: Vec<Vec<u8>> = Vec::new();
        let mut kept: Vec<&[u8]> = Vec::new();
        for f in &si_fields {
            if f.tag == context(1, true) {
                unsigned.extend(
                    f.children("unsignedAttrs")?
                        .into_iter()
                        .map(|a| a.full.to_vec()),
                );
            } else {
                kept.push(f.full);
            }
        }
        unsigned.push(to_der(attr)?);
        // DER SET OF: elements sorted by their encodings (X.690 §11.6).
        unsigned.sort();
        let parts: Vec<&[u8]> = unsigned.iter().map(Vec::as_slice).collect();
        let unsigned_field = tlv(context(1, true), &parts)?;
        kept.push(&unsigned_field);
        let new_si = tlv(Tag::Sequence, &kept)?;
        let sis: Vec<&[u8]> = self
            .signer_infos
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == index {
                    new_si.as_slice()
                } else {
                    s.full
                }
            })
            .collect();
        let sis = tlv(Tag::Set, &sis)?;
        let mut fields: Vec<&[u8]> = self.fields.iter().map(|f| f.full).collect();
        let last = fields.len() - 1;
        fields[last] = &sis;
        let sd = tlv(Tag::Sequence, &fields)?;
        content_info(&sd)
    }
}

/// Adds a timestamp token as the unsigned attribute id-aa-signatureTimeStampToken
/// (RFC 3161 Appendix A) of SignerInfo `index` of the SignedData ContentInfo `content_info`.
///
/// It takes a parsed token, not bytes: a whole TimeStampResp, or anything else that is not a
/// token, cannot end up in the attribute (check the token, imprint over
/// [`signature_value`] included, before adding it).
pub fn add_signature_timestamp(
    content_info: &[u8],
    index: usize,
    token: &crate::token::ParsedToken,
) -> Result<Vec<u8>> {
    let raw = RawSignedData::parse(content_info)?;
    let token = Any::from_der(&token.der).map_err(Error::decode("timestamp token"))?;
    raw.with_unsigned_attribute(
        index,
        &attribute(oid::ID_AA_SIGNATURE_TIME_STAMP_TOKEN, token)?,
    )
}

/// The signingCertificateV2 attribute (RFC 5035 §3, RFC 5816) naming `cert`: one ESSCertIDv2
/// with SHA-256 (hashAlgorithm left out as the DEFAULT) and issuerSerial. Tokens, CAdES
/// signatures of emails and PAdES signatures all carry it.
pub fn signing_certificate_v2(cert: &SignerCert) -> Result<Attribute> {
    let tbs = &cert.cert.tbs_certificate;
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(HashAlg::Sha256.digest(&cert.der))
                .map_err(Error::Encode)?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                serial_number: tbs.serial_number.clone(),
            }),
        }],
        policies: None,
    };
    attribute(
        oid::ID_AA_SIGNING_CERTIFICATE_V2,
        Any::encode_from(&ess).map_err(Error::Encode)?,
    )
}

/// The signingTime attribute (RFC 5652 §11.3) for `unix_seconds`: UTCTime for dates from 1950
/// to 2049 and GeneralizedTime otherwise, as the RFC requires. The time the signer claims, not
/// a proven one (that is the signature timestamp's job).
pub fn signing_time(unix_seconds: u64) -> Result<Attribute> {
    let at = der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix_seconds))
        .map_err(Error::Encode)?;
    let value = if (1950..2050).contains(&at.year()) {
        Any::encode_from(&der::asn1::UtcTime::from_date_time(at).map_err(Error::Encode)?)
    } else {
        Any::encode_from(&der::asn1::GeneralizedTime::from_date_time(at))
    }
    .map_err(Error::Encode)?;
    attribute(oid::ID_SIGNING_TIME, value)
}

/// smimeCapabilities (RFC 8551 §2.5.2): what this signer can decrypt, strongest first, so that
/// a correspondent encrypting a reply picks AES-GCM.
pub fn smime_capabilities() -> Result<crate::asn1::Attribute> {
    let caps: Vec<SmimeCapability> = [
        oid::AES256_GCM,
        oid::AES128_GCM,
        oid::AES256_CBC,
        oid::AES128_CBC,
    ]
    .into_iter()
    .map(|capability_id| SmimeCapability {
        capability_id,
        parameters: None,
    })
    .collect();
    attribute(
        oid::PKCS9_SMIME_CAPABILITIES,
        Any::encode_from(&caps).map_err(Error::Encode)?,
    )
}

/// The signature value of SignerInfo `index`: what a signature timestamp's imprint covers.
pub fn signature_value(content_info: &[u8], index: usize) -> Result<Vec<u8>> {
    let raw = RawSignedData::parse(content_info)?;
    let si = raw
        .signer_infos
        .get(index)
        .ok_or_else(|| Error::invalid("SignedData", "no such SignerInfo"))?;
    Ok(crate::signer_info::SignerInfoView::parse(si.full)?.signature)
}
