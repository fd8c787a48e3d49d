//! The PKIBody of a request, read into what the CA decides on: certificate requests (ir, cr,
//! kur, p10cr) with their proof of possession checked, revocation requests, certificate
//! confirmations and general messages.
//!
//! The proof of possession is verified here, over the bytes as received: for CRMF (RFC 4211
//! §4.1) the signature in POPOSigningKey covers the DER of `certReq` when `poposkInput` is
//! absent; for PKCS#10 the self-signature covers `certificationRequestInfo`. A POP that is
//! absent, raVerified (we are no RA's CA), by another method or that does not verify is
//! reported as [`Pop`] for the caller to answer badPOP.

use super::Message;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::raw::RawTlv;
use der::asn1::{Int, ObjectIdentifier};
use der::{Decode, Encode, Tag};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{CrlReason, SubjectAltName};
use x509_cert::name::Name;

/// id-emailAddress (PKCS#9), the legacy address attribute in subject names.
const ID_EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");
/// extensionRequest (PKCS#9), where a PKCS#10 request carries its extensions.
const ID_EXTENSION_REQUEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");

/// id-it-caCerts (RFC 9810 §5.3.19.19).
pub(super) const ID_IT_CA_CERTS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");
/// id-it-rootCaCert (RFC 9810 §5.3.19.20), answered by id-it-rootCaKeyUpdate.
pub(super) const ID_IT_ROOT_CA_CERT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.20");
pub(super) const ID_IT_ROOT_CA_KEY_UPDATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.18");

/// Most CertReqMsgs read from one message.
const MAX_REQUESTS: usize = 4;

/// What a genm asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoType {
    /// The CA's certificates (id-it-caCerts).
    CaCerts,
    /// A root CA update (id-it-rootCaCert).
    RootCaCert,
    /// Anything else (its OID): not answered.
    Other(String),
}

/// Which request a certificate request came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// Initialization request (first certificate, MAC-protected).
    Ir,
    /// Certification request (another certificate for a known entity).
    Cr,
    /// PKCS#10 certification request.
    P10cr,
    /// Key update request (a new key for an existing certificate).
    Kur,
}

impl CertKind {
    /// The message name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            CertKind::Ir => "ir",
            CertKind::Cr => "cr",
            CertKind::P10cr => "p10cr",
            CertKind::Kur => "kur",
        }
    }
}

/// How the proof of possession of the private key came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pop {
    /// A signature by the requested key over the request, verified.
    Verified,
    /// No usable proof: why.
    Failed(String),
}

/// One certificate request.
#[derive(Clone, Debug)]
pub struct CertRequest {
    /// certReqId (PKCS#10 has none: 0, RFC 9483 §4.1.4), echoed in the reply.
    pub cert_req_id: Int,
    /// The subject's public key, SubjectPublicKeyInfo DER.
    pub public_key_info: Vec<u8>,
    /// The subject's common name, when the template names one.
    pub common_name: Option<String>,
    /// Every address the request asks for: rfc822Name SANs and emailAddress attributes.
    pub emails: Vec<String>,
    /// subjectAltNames of other kinds the request asks for (DNS names, URIs, ...), named.
    pub other_names: Vec<String>,
    /// The proof of possession.
    pub pop: Pop,
}

/// One revocation request (RevDetails).
#[derive(Clone, Debug)]
pub struct Revocation {
    /// The certificate's serial, big-endian magnitude.
    pub serial: Vec<u8>,
    /// Its issuer, Name DER, when given.
    pub issuer: Option<Vec<u8>>,
    /// The CRLReason code asked for, when given (6 certificateHold and 8 removeFromCRL
    /// included: the caller refuses them).
    pub reason: Option<i64>,
}

/// One CertStatus of a certConf.
#[derive(Clone, Debug)]
pub struct Confirmation {
    /// The hash of the certificate being confirmed.
    pub cert_hash: Vec<u8>,
    /// certReqId.
    pub cert_req_id: Int,
    /// Whether the requester accepts the certificate (status absent or accepted).
    pub accepted: bool,
}

/// What a request asks for.
#[derive(Clone, Debug)]
pub enum Request {
    /// ir, cr, kur (CRMF) or p10cr (PKCS#10).
    Certificates(CertKind, Vec<CertRequest>),
    /// rr.
    Revoke(Vec<Revocation>),
    /// certConf.
    Confirm(Vec<Confirmation>),
    /// genm: the infoTypes asked for.
    General(Vec<InfoType>),
    /// A body type the CA does not serve (its CHOICE number).
    Unsupported(u8),
}

impl Request {
    /// Reads the body of `msg`. Errors are malformed bodies (badDataFormat).
    pub fn read(msg: &Message<'_>) -> Result<Request> {
        let content = msg.body_content();
        Ok(match msg.body_type {
            0 => Request::Certificates(CertKind::Ir, crmf_requests(content)?),
            2 => Request::Certificates(CertKind::Cr, crmf_requests(content)?),
            7 => Request::Certificates(CertKind::Kur, crmf_requests(content)?),
            4 => Request::Certificates(CertKind::P10cr, vec![pkcs10_request(content)?]),
            11 => Request::Revoke(revocations(content)?),
            24 => Request::Confirm(confirmations(content)?),
            21 => {
                let infos: Vec<cmpv2::r#gen::InfoTypeAndValue> =
                    Vec::from_der(content).map_err(Error::decode("GenMsgContent"))?;
                Request::General(
                    infos
                        .into_iter()
                        .map(|i| match i.oid {
                            ID_IT_CA_CERTS => InfoType::CaCerts,
                            ID_IT_ROOT_CA_CERT => InfoType::RootCaCert,
                            other => InfoType::Other(other.to_string()),
                        })
                        .collect(),
                )
            }
            other => Request::Unsupported(other),
        })
    }
}

fn name_fields(name: Option<&Name>, common_name: &mut Option<String>, emails: &mut Vec<String>) {
    let Some(name) = name else { return };
    for atv in name.0.iter().flat_map(|rdn| rdn.0.iter()) {
        if atv.oid == const_oid::db::rfc4519::CN {
            *common_name = crate::cert::attribute_text(&atv.value);
        } else if atv.oid == ID_EMAIL_ADDRESS
            && let Some(t) = crate::cert::attribute_text(&atv.value)
        {
            emails.push(t);
        }
    }
}

/// The rfc822Names of a subjectAltName extension into `emails`, every other name kind into
/// `others` (by kind: a certificate binds one address and nothing else).
fn san_emails(
    extensions: &[x509_cert::ext::Extension],
    emails: &mut Vec<String>,
    others: &mut Vec<String>,
) -> Result<()> {
    for ext in extensions {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                .map_err(Error::decode("subjectAltName"))?;
            for n in san.0 {
                match n {
                    GeneralName::Rfc822Name(a) => emails.push(a.to_string()),
                    GeneralName::DnsName(d) => others.push(format!("DNS name {d}")),
                    GeneralName::UniformResourceIdentifier(u) => others.push(format!("URI {u}")),
                    GeneralName::IpAddress(_) => others.push("an IP address".into()),
                    GeneralName::DirectoryName(_) => others.push("a directory name".into()),
                    _ => others.push("another name form".into()),
                }
            }
        }
    }
    Ok(())
}

fn verify_pop(
    spki_der: &[u8],
    alg: &spki::AlgorithmIdentifierOwned,
    signed: &[u8],
    sig: &[u8],
) -> Pop {
    let spki = match SubjectPublicKeyInfoOwned::from_der(spki_der) {
        Ok(s) => s,
        Err(e) => return Pop::Failed(format!("the public key does not parse: {e}")),
    };
    match crate::verify::verify_signature(&spki, alg, HashAlg::Sha256, signed, sig) {
        Ok(_) => Pop::Verified,
        Err(e) => Pop::Failed(format!("proof of possession: {e}")),
    }
}

/// The proof of possession of one CertReqMsg (`popo`, raw): only a signature over certReq
/// without poposkInput is accepted (RFC 9483 §4.1.1). The other methods are named, not
/// decoded (crmf 0.2 declares keyEncipherment and keyAgreement EXPLICIT, so their valid
/// IMPLICIT encodings would not decode).
fn pop(popo: Option<&RawTlv<'_>>, spki: &[u8], cert_req_raw: &[u8]) -> Pop {
    let Some(popo) = popo else {
        return Pop::Failed("no proof of possession".into());
    };
    match popo.tag {
        t if t == crate::raw::context(1, true) => {
            match crmf::pop::ProofOfPossession::from_der(popo.full) {
                Ok(crmf::pop::ProofOfPossession::Signature(s)) if s.poposk_input.is_none() => {
                    match s.signature.as_bytes() {
                        Some(sig) => verify_pop(spki, &s.alg_id, cert_req_raw, sig),
                        None => Pop::Failed("the POP signature has unused bits".into()),
                    }
                }
                Ok(_) => Pop::Failed(
                    "a POP with poposkInput (for templates without subject) is not accepted".into(),
                ),
                Err(e) => Pop::Failed(format!("the POP signature does not parse: {e}")),
            }
        }
        t if t == crate::raw::context(0, false) => {
            Pop::Failed("raVerified: this CA is not behind a registration authority".into())
        }
        _ => {
            Pop::Failed("only signature proofs of possession are accepted (RFC 9483 §4.1.1)".into())
        }
    }
}

fn crmf_requests(content: &[u8]) -> Result<Vec<CertRequest>> {
    const W: &str = "CertReqMessages";
    let outer = RawTlv::parse(content, W)?;
    if outer.tag != Tag::Sequence {
        return Err(Error::invalid(W, "not a SEQUENCE"));
    }
    let raw = outer.children(W)?;
    if raw.is_empty() {
        return Err(Error::invalid(W, "empty"));
    }
    // The profile allows one; a few more are read (and refused by the caller), never
    // hundreds of proof-of-possession signatures to check.
    if raw.len() > MAX_REQUESTS {
        return Err(Error::invalid(
            W,
            format!("{} requests, more than {MAX_REQUESTS}", raw.len()),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for msg in &raw {
        // CertReqMsg ::= SEQUENCE { certReq CertRequest, popo ProofOfPossession OPTIONAL,
        //                           regInfo SEQUENCE OF AttributeTypeAndValue OPTIONAL }
        let fields = msg.children("CertReqMsg")?;
        let cert_req_raw = fields
            .first()
            .map(|t| t.full)
            .ok_or_else(|| Error::invalid("CertReqMsg", "empty"))?;
        let cert_req = crmf::request::CertRequest::from_der(cert_req_raw)
            .map_err(Error::decode("CertRequest"))?;
        let popo = fields.get(1).filter(|t| t.tag != Tag::Sequence);
        let t = &cert_req.cert_template;
        let spki = t
            .subject_public_key_info
            .as_ref()
            .ok_or_else(|| {
                Error::invalid(
                    "CertTemplate",
                    "no publicKey (central key generation is not offered)",
                )
            })?
            .to_der()
            .map_err(Error::Encode)?;
        let mut common_name = None;
        let mut emails = Vec::new();
        let mut other_names = Vec::new();
        name_fields(t.subject.as_ref(), &mut common_name, &mut emails);
        san_emails(
            t.extensions.as_deref().unwrap_or_default(),
            &mut emails,
            &mut other_names,
        )?;
        out.push(CertRequest {
            cert_req_id: cert_req.cert_req_id.clone(),
            pop: pop(popo, &spki, cert_req_raw),
            public_key_info: spki,
            common_name,
            emails,
            other_names,
        });
    }
    Ok(out)
}

fn pkcs10_request(content: &[u8]) -> Result<CertRequest> {
    const W: &str = "PKCS#10 request";
    let csr = x509_cert::request::CertReq::from_der(content).map_err(Error::decode(W))?;
    let info_raw = RawTlv::parse(content, W)?
        .children(W)?
        .first()
        .map(|t| t.full)
        .ok_or_else(|| Error::invalid(W, "empty"))?;
    let spki = csr.info.public_key.to_der().map_err(Error::Encode)?;
    let mut common_name = None;
    let mut emails = Vec::new();
    let mut other_names = Vec::new();
    name_fields(Some(&csr.info.subject), &mut common_name, &mut emails);
    for attr in csr.info.attributes.iter() {
        if attr.oid == ID_EXTENSION_REQUEST {
            for v in attr.values.iter() {
                let exts: Vec<x509_cert::ext::Extension> =
                    v.decode_as().map_err(Error::decode("extensionRequest"))?;
                san_emails(&exts, &mut emails, &mut other_names)?;
            }
        }
    }
    let pop = match csr.signature.as_bytes() {
        Some(sig) => verify_pop(&spki, &csr.algorithm, info_raw, sig),
        None => Pop::Failed("the request's signature has unused bits".into()),
    };
    Ok(CertRequest {
        cert_req_id: Int::new(&[0]).map_err(Error::Encode)?,
        public_key_info: spki,
        common_name,
        emails,
        other_names,
        pop,
    })
}

fn revocations(content: &[u8]) -> Result<Vec<Revocation>> {
    const W: &str = "RevReqContent";
    let details = cmpv2::rev::RevReqContent::from_der(content).map_err(Error::decode(W))?;
    if details.is_empty() {
        return Err(Error::invalid(W, "empty"));
    }
    details
        .into_iter()
        .map(|d| {
            let t = d.cert_details;
            let serial = t
                .serial_number
                .ok_or_else(|| Error::invalid("RevDetails", "no serialNumber"))?;
            let magnitude = serial.as_bytes();
            let magnitude = magnitude.strip_prefix(&[0]).unwrap_or(magnitude).to_vec();
            let issuer = t
                .issuer
                .map(|n| n.to_der())
                .transpose()
                .map_err(Error::Encode)?;
            let mut reason = None;
            for ext in d.crl_entry_details.unwrap_or_default() {
                if ext.extn_id == const_oid::db::rfc5280::ID_CE_CRL_REASONS {
                    reason = Some(
                        CrlReason::from_der(ext.extn_value.as_bytes())
                            .map_err(Error::decode("CRLReason"))? as i64,
                    );
                }
            }
            Ok(Revocation {
                serial: magnitude,
                issuer,
                reason,
            })
        })
        .collect()
}

/// CertConfirmContent, walked raw: cmpv2 0.2 decodes failInfo with its wrong bit masks, and a
/// rejecting client's failInfo must not make the confirmation unreadable.
///
/// ```text
/// CertStatus ::= SEQUENCE {
///     certHash    OCTET STRING,
///     certReqId   INTEGER,
///     statusInfo  PKIStatusInfo OPTIONAL,
///     hashAlg [0] AlgorithmIdentifier{DIGEST-ALGORITHM, {...}} OPTIONAL }
/// ```
fn confirmations(content: &[u8]) -> Result<Vec<Confirmation>> {
    const W: &str = "CertConfirmContent";
    let seq = RawTlv::parse(content, W)?;
    if seq.tag != Tag::Sequence {
        return Err(Error::invalid(W, "not a SEQUENCE"));
    }
    seq.children(W)?
        .iter()
        .map(|st| {
            let f = st.children("CertStatus")?;
            let (Some(hash), Some(id)) = (f.first(), f.get(1)) else {
                return Err(Error::invalid("CertStatus", "no certHash and certReqId"));
            };
            let cert_hash = hash
                .decode::<der::asn1::OctetString>("certHash")?
                .as_bytes()
                .to_vec();
            let cert_req_id = id.decode::<Int>("certReqId")?;
            let accepted = match f.get(2) {
                Some(info) if info.tag == Tag::Sequence => {
                    let status = info
                        .children("PKIStatusInfo")?
                        .first()
                        .ok_or_else(|| Error::invalid("PKIStatusInfo", "empty"))?
                        .decode::<u8>("PKIStatus")?;
                    status == 0
                }
                _ => true,
            };
            Ok(Confirmation {
                cert_hash,
                cert_req_id,
                accepted,
            })
        })
        .collect()
}
