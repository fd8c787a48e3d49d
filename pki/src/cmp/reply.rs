//! The CA's replies: ip, cp, kup, rp, pkiConf, genp and error messages, with a header that
//! answers the request's (transactionID, recipNonce = its senderNonce, a fresh senderNonce,
//! the same pvno) and protection by the request's password-based MAC or by the CA's key
//! through the [`crate::signer::Signer`] trait, its certificate first in extraCerts.
//!
//! PKIStatusInfo is ours ([`crate::asn1::PkiStatusInfo`], a plain failInfo BIT STRING), so the
//! bodies that carry one are small derives here rather than cmpv2's.

use super::{CertKind, Message};
use crate::asn1::{FailureInfo, PkiStatus, PkiStatusInfo};
use crate::ca::Ca;
use crate::error::{Error, Result};
use crate::raw::{RawTlv, tlv};
use crate::signer::to_der;
use der::asn1::{Int, Null, OctetString, Utf8StringRef};
use der::{Any, Decode, Sequence, Tag};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// How a reply is protected.
#[derive(Clone, Copy, Debug)]
pub enum Protection<'p> {
    /// The request's password-based MAC algorithm and parameters (RFC 4210 §5.1.3.1: the
    /// reply uses the same shared secret), keyed with `secret`.
    Mac {
        /// PBMAC1 or PasswordBasedMac, with parameters.
        algorithm: &'p AlgorithmIdentifierOwned,
        /// The shared secret.
        secret: &'p [u8],
    },
    /// A signature by the CA's key; its certificate leads extraCerts.
    Signature,
}

/// What a reply says.
#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// ip, cp or kup with one issued certificate.
    Certified {
        /// The request it answers (ir → ip, cr and p10cr → cp, kur → kup).
        kind: CertKind,
        /// The request's certReqId.
        cert_req_id: Int,
        /// The certificate, DER.
        cert: Vec<u8>,
        /// Trust anchors for a first enrolment (caPubs, only under MAC protection, RFC 9483
        /// §4.1.1).
        ca_pubs: Vec<Vec<u8>>,
    },
    /// rp: one status per RevDetails, `None` for accepted.
    Revoked(Vec<Option<(FailureInfo, String)>>),
    /// pkiConf.
    Confirmed,
    /// genp: one answer per infoType served.
    General(Vec<GeneralAnswer>),
    /// An error message (RFC 9810 §5.3.21) with status rejection.
    Error {
        /// The failInfo bit.
        fail: FailureInfo,
        /// What went wrong, for a human.
        text: String,
    },
}

/// One genp answer.
#[derive(Clone, Debug)]
pub enum GeneralAnswer {
    /// id-it-caCerts with these certificates (DER).
    CaCerts(Vec<Vec<u8>>),
    /// id-it-rootCaKeyUpdate without a value: no root update (RFC 9483 §4.3.2).
    NoRootUpdate,
}

/// CertResponse with our PKIStatusInfo.
#[derive(Sequence)]
struct CertResponse<'a> {
    cert_req_id: Int,
    status: PkiStatusInfo<'a>,
    #[asn1(optional = "true")]
    certified_key_pair: Option<cmpv2::certified_key_pair::CertifiedKeyPair>,
}

/// CertRepMessage with our CertResponse.
#[derive(Sequence)]
struct CertRepMessage<'a> {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    ca_pubs: Option<Vec<Certificate>>,
    response: Vec<CertResponse<'a>>,
}

/// RevRepContent without revCerts and crls.
#[derive(Sequence)]
struct RevRepContent<'a> {
    status: Vec<PkiStatusInfo<'a>>,
}

/// ErrorMsgContent (RFC 9810 §5.3.21) without errorCode.
#[derive(Sequence)]
struct ErrorMsgContent<'a> {
    status: PkiStatusInfo<'a>,
    #[asn1(optional = "true")]
    error_code: Option<Int>,
    #[asn1(optional = "true")]
    error_details: Option<Vec<Utf8StringRef<'a>>>,
}

fn accepted<'a>() -> PkiStatusInfo<'a> {
    PkiStatusInfo {
        status: PkiStatus::Granted,
        status_string: None,
        fail_info: None,
    }
}

fn rejection<'a>(fail: FailureInfo, text: &'a str) -> Result<PkiStatusInfo<'a>> {
    Ok(PkiStatusInfo {
        status: PkiStatus::Rejection,
        status_string: Some(vec![Utf8StringRef::new(text).map_err(Error::Encode)?]),
        fail_info: Some(fail.to_bit_string()?),
    })
}

/// The body's CHOICE number and its content DER.
fn encode_body(body: &ReplyBody) -> Result<(u8, Vec<u8>)> {
    Ok(match body {
        ReplyBody::Certified {
            kind,
            cert_req_id,
            cert,
            ca_pubs,
        } => {
            let number = match kind {
                CertKind::Ir => 1,
                CertKind::Cr | CertKind::P10cr => 3,
                CertKind::Kur => 8,
            };
            let cert = Certificate::from_der(cert).map_err(Error::decode("certificate"))?;
            let ca_pubs = ca_pubs
                .iter()
                .map(|c| Certificate::from_der(c).map_err(Error::decode("CA certificate")))
                .collect::<Result<Vec<_>>>()?;
            let rep = CertRepMessage {
                ca_pubs: (!ca_pubs.is_empty()).then_some(ca_pubs),
                response: vec![CertResponse {
                    cert_req_id: cert_req_id.clone(),
                    status: accepted(),
                    certified_key_pair: Some(cmpv2::certified_key_pair::CertifiedKeyPair {
                        cert_or_enc_cert: cmpv2::certified_key_pair::CertOrEncCert::Certificate(
                            Box::new(cert),
                        ),
                        priv_key: None,
                        publication_info: None,
                    }),
                }],
            };
            (number, to_der(&rep)?)
        }
        ReplyBody::Revoked(statuses) => {
            let status = statuses
                .iter()
                .map(|s| match s {
                    None => Ok(accepted()),
                    Some((fail, text)) => rejection(*fail, text),
                })
                .collect::<Result<Vec<_>>>()?;
            (12, to_der(&RevRepContent { status })?)
        }
        ReplyBody::Confirmed => (19, to_der(&Null)?),
        ReplyBody::General(answers) => {
            let mut infos = Vec::with_capacity(answers.len());
            for a in answers {
                infos.push(match a {
                    GeneralAnswer::CaCerts(certs) => {
                        let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
                        let seq = tlv(Tag::Sequence, &refs)?;
                        cmpv2::r#gen::InfoTypeAndValue {
                            oid: super::body::ID_IT_CA_CERTS,
                            value: Some(Any::from_der(&seq).map_err(Error::decode("caCerts"))?),
                        }
                    }
                    GeneralAnswer::NoRootUpdate => cmpv2::r#gen::InfoTypeAndValue {
                        oid: super::body::ID_IT_ROOT_CA_KEY_UPDATE,
                        value: None,
                    },
                });
            }
            (22, to_der(&infos)?)
        }
        ReplyBody::Error { fail, text } => (
            23,
            to_der(&ErrorMsgContent {
                status: rejection(*fail, text)?,
                error_code: None,
                error_details: None,
            })?,
        ),
    })
}

/// 16 random bytes: a senderNonce, a transactionID.
pub fn fresh_nonce() -> Result<Vec<u8>> {
    crate::rand::bytes(16, "a CMP nonce")
}

fn octets(bytes: Option<&Vec<u8>>) -> Result<Option<OctetString>> {
    bytes.map(|b| super::octets(b)).transpose()
}

/// Builds protected replies for one CA.
pub struct Reply<'a> {
    /// The CA (its name is the sender, its key signs).
    pub ca: &'a Ca<'a>,
    /// Certificates above the CA's (none for a root), sent after it in extraCerts.
    pub chain: &'a [Vec<u8>],
}

impl Reply<'_> {
    /// The reply to `request` (or, when the request did not parse, to nobody: NULL-DN
    /// recipient, no transactionID or nonces), protected as asked, at `now` (Unix seconds).
    /// `implicit_confirm` grants the request's implicit confirmation in generalInfo;
    /// `sender_nonce` is the reply's own (fresh, see [`fresh_nonce`]; a certConf must repeat it).
    pub fn build(
        &self,
        request: Option<&Message<'_>>,
        body: &ReplyBody,
        protection: Protection<'_>,
        implicit_confirm: bool,
        sender_nonce: &[u8],
        now: i64,
    ) -> Result<Vec<u8>> {
        let ca_cert = &self.ca.cert.cert;
        let (protection_alg, sender_kid) = match protection {
            Protection::Mac { algorithm, .. } => (
                algorithm.clone(),
                request.and_then(|r| r.sender_kid.as_ref()),
            ),
            Protection::Signature => (self.ca.signer.algorithm().algorithm_identifier()?, None),
        };
        let ca_kid = match protection {
            Protection::Signature => Some(self.ca.key_id()?),
            Protection::Mac { .. } => octets(sender_kid)?,
        };
        let recipient = match request {
            Some(r) => GeneralName::from_der(r.sender).map_err(Error::decode("sender"))?,
            None => GeneralName::DirectoryName(Name::default()),
        };
        let general_info = implicit_confirm.then(super::implicit_confirm_info);
        let header = cmpv2::header::PkiHeader {
            pvno: cmpv2::header::Pvno::Cmp2000,
            sender: GeneralName::DirectoryName(ca_cert.tbs_certificate.subject.clone()),
            recipient,
            message_time: Some(crate::ca::time_generalized(now)?),
            protection_alg: Some(protection_alg.clone()),
            sender_kid: ca_kid,
            recip_kid: None,
            trans_id: octets(request.and_then(|r| r.transaction_id.as_ref()))?,
            sender_nonce: Some(OctetString::new(sender_nonce).map_err(Error::Encode)?),
            recip_nonce: octets(request.and_then(|r| r.sender_nonce.as_ref()))?,
            free_text: None,
            general_info,
        };
        let mut header = to_der(&header)?;
        if let Some(r) = request
            && r.pvno == 3
        {
            set_pvno_3(&mut header)?;
        }
        let (number, content) = encode_body(body)?;
        let extra: Vec<&[u8]> = match protection {
            Protection::Mac { .. } => Vec::new(),
            Protection::Signature => std::iter::once(self.ca.cert.der.as_slice())
                .chain(self.chain.iter().map(Vec::as_slice))
                .collect(),
        };
        super::assemble(
            &header,
            number,
            &content,
            &extra,
            |protected| match protection {
                Protection::Mac { algorithm, secret } => {
                    crate::pbmac::mac(algorithm, protected, secret)
                }
                Protection::Signature => Ok(self.ca.sign(protected)?.1.raw_bytes().to_vec()),
            },
        )
    }
}

/// cmpv2 0.2 knows pvno 1 and 2 only; a cmp2021 request is answered as cmp2021 (RFC 9810
/// §7) by rewriting the INTEGER's one content octet, which keeps every length.
fn set_pvno_3(header: &mut [u8]) -> Result<()> {
    let outer = RawTlv::parse(header, "PKIHeader")?;
    let offset = outer.full.len() - outer.value.len();
    match header.get(offset..offset + 3) {
        Some([0x02, 0x01, 0x02]) => {
            header[offset + 2] = 3;
            Ok(())
        }
        _ => Err(Error::invalid("PKIHeader", "pvno is not the first field")),
    }
}
