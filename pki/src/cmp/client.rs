//! The requester's side of CMP (RFC 9483 profile), for `stamp enroll`, `renew` and `revoke`:
//! an ir, cr or kur with a signature proof of possession by the new key, an rr, a certConf,
//! each protected by the enrolment code (PBMAC1, RFC 9481 §6.1.1) or by a signature of the
//! current certificate's key through the [`Signer`] trait; and the reply read back with its
//! transactionID, recipNonce and protection checked before anything in it is believed.

use super::{CertKind, Message};
use crate::asn1::{FailureInfo, PkiStatusInfo};
use crate::cms::SignerCert;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::raw::{RawTlv, context, tlv};
use crate::signer::{Signer, to_der};
use der::asn1::{BitString, Int, OctetString};
use der::{Decode, Tag};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// PBKDF2 iterations of our PBMAC1 protection (RFC 9481 §6.1.1 recommends at least 10,000).
pub const PBMAC1_ITERATIONS: u32 = 10_000;

/// How a request is protected.
#[derive(Clone, Copy)]
pub enum ClientProtection<'a> {
    /// The enrolment code: reference (senderKID) and secret.
    Mac {
        /// The reference.
        reference: &'a [u8],
        /// The secret.
        secret: &'a [u8],
    },
    /// A signature by the current certificate's key.
    Signature {
        /// The key.
        signer: &'a dyn Signer,
        /// Its certificate (sent first in extraCerts).
        cert: &'a SignerCert,
    },
}

/// A request on its way, with what its reply must repeat.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The PKIMessage, DER.
    pub der: Vec<u8>,
    /// Its transactionID.
    pub transaction_id: Vec<u8>,
    /// Its senderNonce (the reply's recipNonce).
    pub sender_nonce: Vec<u8>,
}

/// How a reply's protection is checked.
#[derive(Clone, Copy)]
pub enum ReplyCheck<'a> {
    /// MAC with the enrolment secret (replies to MAC-protected requests).
    Mac(&'a [u8]),
    /// A signature by this CA certificate (DER), which must lead extraCerts.
    Ca(&'a [u8]),
}

/// What a reply said.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The PKIBody type (1 ip, 3 cp, 8 kup, 12 rp, 19 pkiConf, 23 error, ...).
    pub body_type: u8,
    /// The issued certificate (ip, cp, kup).
    pub certificate: Option<Vec<u8>>,
    /// caPubs (trust anchors sent with a first enrolment).
    pub ca_pubs: Vec<Vec<u8>>,
    /// Whether the CA granted implicit confirmation (no certConf needed).
    pub implicit_confirm: bool,
    /// The reply's senderNonce (a certConf's recipNonce).
    pub sender_nonce: Vec<u8>,
    /// A refusal: failInfo bits and the CA's text.
    pub refusal: Option<Refusal>,
    /// Whether the reply's protection verified (false only for an error message whose
    /// protection we cannot check: its text is the CA's word, unproven).
    pub authenticated: bool,
}

/// A refusal: failInfo bits and the CA's text.
pub type Refusal = (Vec<FailureInfo>, String);

use super::octets;

fn common_name_rdn(cn: &str) -> Result<Name> {
    let s = format!(
        "CN={}",
        cn.replace(['\\', ',', '+', '"', '<', '>', ';', '='], "_")
    );
    s.parse::<Name>()
        .map_err(|e| Error::invalid("subject", format!("{cn:?}: {e}")))
}

/// Builds and protects a PKIMessage around `body_number`/`content`.
fn message(
    body_number: u8,
    content: &[u8],
    sender: Name,
    recipient: Name,
    protection: ClientProtection<'_>,
    (transaction_id, recip_nonce): (Vec<u8>, Option<&[u8]>),
    implicit_confirm: bool,
) -> Result<Sent> {
    let sender_nonce = super::fresh_nonce()?;
    let (alg, kid) = match protection {
        ClientProtection::Mac { reference, .. } => (
            crate::pbmac::new_pbmac1(PBMAC1_ITERATIONS)?,
            Some(octets(reference)?),
        ),
        ClientProtection::Signature { signer, cert } => (
            signer.algorithm().algorithm_identifier()?,
            cert.cert
                .tbs_certificate
                .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .map(|(_, ski)| ski.0),
        ),
    };
    let general_info = implicit_confirm.then(super::implicit_confirm_info);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::invalid("clock", "before 1970"))?;
    let header = cmpv2::header::PkiHeader {
        pvno: cmpv2::header::Pvno::Cmp2000,
        sender: GeneralName::DirectoryName(sender),
        recipient: GeneralName::DirectoryName(recipient),
        message_time: Some(
            der::asn1::GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                now.as_secs(),
            ))
            .map_err(Error::Encode)?,
        ),
        protection_alg: Some(alg.clone()),
        sender_kid: kid,
        recip_kid: None,
        trans_id: Some(octets(&transaction_id)?),
        sender_nonce: Some(octets(&sender_nonce)?),
        recip_nonce: recip_nonce.map(octets).transpose()?,
        free_text: None,
        general_info,
    };
    let header = to_der(&header)?;
    let extra: Vec<&[u8]> = match protection {
        ClientProtection::Mac { .. } => Vec::new(),
        ClientProtection::Signature { cert, .. } => vec![cert.der.as_slice()],
    };
    let der = super::assemble(
        &header,
        body_number,
        content,
        &extra,
        |protected| match protection {
            ClientProtection::Mac { secret, .. } => crate::pbmac::mac(&alg, protected, secret),
            ClientProtection::Signature { signer, .. } => signer.sign(protected),
        },
    )?;
    Ok(Sent {
        der,
        transaction_id,
        sender_nonce,
    })
}

/// The recipient name: the CA certificate's subject (DER), or the empty name when the CA is
/// not known yet (a first ir, RFC 9483 §4.1.1).
fn ca_subject(ca_cert: Option<&[u8]>) -> Result<Name> {
    match ca_cert {
        Some(der) => Ok(crate::cert::parse(der)?.tbs_certificate.subject),
        None => Ok(Name::default()),
    }
}

fn sender_name(protection: ClientProtection<'_>, common_name: Option<&str>) -> Result<Name> {
    match (protection, common_name) {
        (ClientProtection::Signature { cert, .. }, _) => {
            Ok(cert.cert.tbs_certificate.subject.clone())
        }
        (_, Some(cn)) => common_name_rdn(cn),
        _ => Ok(Name::default()),
    }
}

/// An ir, cr or kur for `new_key` (its certificate will bind the proven address; the
/// template names `common_name`), with a signature proof of possession by that key.
pub fn certificate_request(
    kind: CertKind,
    new_key: &dyn Signer,
    public_key_info: &[u8],
    common_name: &str,
    ca_cert: Option<&[u8]>,
    protection: ClientProtection<'_>,
    implicit_confirm: bool,
) -> Result<Sent> {
    let number = match kind {
        CertKind::Ir => 0,
        CertKind::Cr => 2,
        CertKind::Kur => 7,
        CertKind::P10cr => {
            return Err(Error::invalid("CMP request", "p10cr is not built here"));
        }
    };
    let spki = SubjectPublicKeyInfoOwned::from_der(public_key_info)
        .map_err(Error::decode("public key"))?;
    let template = crmf::request::CertTemplate {
        version: None,
        serial_number: None,
        signature: None,
        issuer: None,
        validity: None,
        subject: Some(common_name_rdn(common_name)?),
        subject_public_key_info: Some(spki),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let cert_req = crmf::request::CertRequest {
        cert_req_id: Int::new(&[0]).map_err(Error::Encode)?,
        cert_template: template,
        controls: None,
    };
    // RFC 4211 §4.1: without poposkInput the signature covers the DER of certReq.
    let signature = new_key.sign(&to_der(&cert_req)?)?;
    let msg = crmf::request::CertReqMsg {
        cert_req,
        popo: Some(crmf::pop::ProofOfPossession::Signature(Box::new(
            crmf::pop::PopoSigningKey {
                poposk_input: None,
                alg_id: new_key.algorithm().algorithm_identifier()?,
                signature: BitString::from_bytes(&signature).map_err(Error::Encode)?,
            },
        ))),
        reg_info: None,
    };
    let content = to_der(&vec![msg])?;
    message(
        number,
        &content,
        sender_name(protection, Some(common_name))?,
        ca_subject(ca_cert)?,
        protection,
        (super::fresh_nonce()?, None),
        implicit_confirm,
    )
}

/// An rr for the certificate `serial` (magnitude) issued by `ca_cert` (DER), signed by its own
/// key, with an optional reason by its RFC 5280 name ([`crate::ca::crl_reason_names`]).
pub fn revocation_request(
    serial: &[u8],
    ca_cert: &[u8],
    reason: Option<&str>,
    protection: ClientProtection<'_>,
) -> Result<Sent> {
    let reason = reason
        .map(|name| {
            crate::ca::crl_reason_by_name(name)
                .and_then(crate::ca::crl_reason)
                .ok_or_else(|| {
                    Error::invalid(
                        "revocation reason",
                        format!(
                            "{name:?}: expected one of {}",
                            crate::ca::crl_reason_names()
                        ),
                    )
                })
        })
        .transpose()?;
    let ca_subject = ca_subject(Some(ca_cert))?;
    let mut serial_bytes = serial.to_vec();
    if serial_bytes.first().is_some_and(|b| b & 0x80 != 0) {
        serial_bytes.insert(0, 0);
    }
    let template = crmf::request::CertTemplate {
        version: None,
        serial_number: Some(
            x509_cert::serial_number::SerialNumber::new(&serial_bytes).map_err(Error::Encode)?,
        ),
        signature: None,
        issuer: Some(ca_subject.clone()),
        validity: None,
        subject: None,
        subject_public_key_info: None,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let crl_entry_details = reason
        .map(|r| {
            Ok::<_, Error>(vec![x509_cert::ext::Extension {
                extn_id: const_oid::db::rfc5280::ID_CE_CRL_REASONS,
                critical: false,
                extn_value: OctetString::new(to_der(&r)?).map_err(Error::Encode)?,
            }])
        })
        .transpose()?;
    let content = to_der(&vec![cmpv2::rev::RevDetails {
        cert_details: template,
        crl_entry_details,
    }])?;
    message(
        11,
        &content,
        sender_name(protection, None)?,
        ca_subject,
        protection,
        (super::fresh_nonce()?, None),
        false,
    )
}

/// The certConf accepting `cert` (DER), in the transaction of `request`, answering the reply
/// whose senderNonce was `reply_nonce`. `hash` is the CA signature's hash (RFC 9810 §5.3.18).
pub fn cert_conf(
    request: &Sent,
    reply_nonce: &[u8],
    cert: &[u8],
    hash: HashAlg,
    ca_cert: Option<&[u8]>,
    protection: ClientProtection<'_>,
) -> Result<Sent> {
    let status = tlv(
        Tag::Sequence,
        &[&to_der(&octets(&hash.digest(cert))?)?, &[0x02, 0x01, 0x00]],
    )?;
    let content = tlv(Tag::Sequence, &[&status])?;
    message(
        24,
        &content,
        sender_name(protection, None)?,
        ca_subject(ca_cert)?,
        protection,
        (request.transaction_id.clone(), Some(reply_nonce)),
        false,
    )
}

fn status(info: &RawTlv<'_>) -> Result<(u8, Option<Refusal>)> {
    let s: PkiStatusInfo<'_> = info.decode("PKIStatusInfo")?;
    let code = s.status as u8;
    if code <= 1 {
        return Ok((code, None));
    }
    let text = s
        .status_string
        .map(|v| v.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("; "))
        .unwrap_or_default();
    let bits = s
        .fail_info
        .as_ref()
        .map(FailureInfo::from_bit_string)
        .unwrap_or_default();
    Ok((code, Some((bits, text))))
}

/// Reads the reply to `sent`: checks transactionID, recipNonce and protection, then what the
/// body says.
pub fn read_reply(der: &[u8], sent: &Sent, check: ReplyCheck<'_>) -> Result<Answer> {
    let m: Message<'_> = super::parse(der)?;
    if m.transaction_id.as_deref() != Some(sent.transaction_id.as_slice()) {
        return Err(Error::invalid(
            "CMP reply",
            "transactionID is not the request's",
        ));
    }
    if m.recip_nonce.as_deref() != Some(sent.sender_nonce.as_slice()) {
        return Err(Error::invalid(
            "CMP reply",
            "recipNonce is not the request's senderNonce",
        ));
    }
    let problem = match check {
        ReplyCheck::Mac(secret) => (!m.is_mac_protected() || !m.verify_mac(secret)?)
            .then(|| "its MAC does not verify with the enrolment secret".to_owned()),
        ReplyCheck::Ca(ca) => match m.verify_signature()? {
            Ok(signer) if signer == ca => None,
            Ok(_) => Some("it is signed by another key than the CA's".to_owned()),
            Err(why) => Some(why),
        },
    };
    if let Some(problem) = problem {
        // An error message we cannot authenticate (a refusal signed by a CA we do not know
        // yet, on a first ir) is still worth showing, marked as such; nothing else is.
        let said = (m.body_type == 23)
            .then(|| {
                let content = RawTlv::parse(m.body_content(), "PKIBody").ok()?;
                let fields = content.children("ErrorMsgContent").ok()?;
                status(fields.first()?).ok()?.1
            })
            .flatten();
        return match said {
            Some(refusal) => Ok(Answer {
                body_type: 23,
                certificate: None,
                ca_pubs: Vec::new(),
                implicit_confirm: false,
                sender_nonce: Vec::new(),
                refusal: Some(refusal),
                authenticated: false,
            }),
            None => Err(Error::invalid("CMP reply", problem)),
        };
    }
    let mut answer = Answer {
        body_type: m.body_type,
        certificate: None,
        ca_pubs: Vec::new(),
        implicit_confirm: m.implicit_confirm,
        sender_nonce: m.sender_nonce.clone().unwrap_or_default(),
        refusal: None,
        authenticated: true,
    };
    let content = RawTlv::parse(m.body_content(), "PKIBody")?;
    match m.body_type {
        1 | 3 | 8 => {
            for part in content.children("CertRepMessage")? {
                if part.tag == context(1, true) {
                    let seq = RawTlv::parse(part.value, "caPubs")?;
                    answer.ca_pubs = seq
                        .children("caPubs")?
                        .iter()
                        .map(|c| c.full.to_vec())
                        .collect();
                } else if part.tag == Tag::Sequence {
                    let resp = part
                        .children("response")?
                        .first()
                        .copied()
                        .ok_or_else(|| Error::invalid("CertRepMessage", "no response"))?;
                    let fields = resp.children("CertResponse")?;
                    let st = fields
                        .get(1)
                        .ok_or_else(|| Error::invalid("CertResponse", "no status"))?;
                    let (_, refusal) = status(st)?;
                    answer.refusal = refusal;
                    if let Some(ckp) = fields.get(2) {
                        let choice = ckp
                            .children("CertifiedKeyPair")?
                            .first()
                            .copied()
                            .ok_or_else(|| Error::invalid("CertifiedKeyPair", "empty"))?;
                        if choice.tag != context(0, true) {
                            return Err(Error::invalid(
                                "CertifiedKeyPair",
                                "not a plain certificate",
                            ));
                        }
                        answer.certificate =
                            Some(RawTlv::parse(choice.value, "certificate")?.full.to_vec());
                    }
                }
            }
        }
        12 => {
            let statuses = content.children("RevRepContent")?;
            let first = statuses
                .first()
                .ok_or_else(|| Error::invalid("RevRepContent", "empty"))?
                .children("status")?;
            let st = first
                .first()
                .ok_or_else(|| Error::invalid("RevRepContent", "no status"))?;
            answer.refusal = status(st)?.1;
        }
        23 => {
            let fields = content.children("ErrorMsgContent")?;
            let st = fields
                .first()
                .ok_or_else(|| Error::invalid("ErrorMsgContent", "empty"))?;
            answer.refusal = Some(
                status(st)?
                    .1
                    .unwrap_or_else(|| (Vec::new(), "error".into())),
            );
        }
        _ => {}
    }
    Ok(answer)
}
