//! OCSP (RFC 6960) for the CA: reading requests and signing responses through the same
//! [`crate::signer::Signer`] as certificates and CRLs: the CA's own key, or a delegated
//! responder (a certificate with id-kp-OCSPSigning issued by the CA, sent in the response,
//! RFC 6960 §4.2.2.2). The status of each serial comes from the caller (the CA's database).
//!
//! A request for a certificate of another issuer (the CertID's name and key hashes are not this
//! CA's) is answered "unknown" for that entry; a request that does not parse gets
//! malformedRequest; the nonce (RFC 8954) is echoed when present.

use super::{Ca, time_generalized};
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::signer::to_der;
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
    Version,
};

/// Largest OCSP request read (a handful of CertIDs and a nonce; the limit keeps a POST body
/// from costing more).
pub const MAX_OCSP_REQUEST: usize = 16 * 1024;

/// id-pkix-ocsp-basic (RFC 6960 §4.2.1).
const ID_PKIX_OCSP_BASIC: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// A certificate's status, as the CA's records say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at this time (Unix seconds), for this reason.
    Revoked {
        /// When.
        at: i64,
        /// Why, when recorded.
        reason: Option<CrlReason>,
    },
    /// Not issued by this CA (RFC 6960 §2.2).
    Unknown,
}

/// A parsed OCSP request.
#[derive(Clone, Debug)]
pub struct Query {
    requests: Vec<CertId>,
    nonce: Option<Extension>,
}

impl Query {
    /// The serials asked about (big-endian magnitude), in order.
    pub fn serials(&self) -> Vec<Vec<u8>> {
        self.requests
            .iter()
            .map(|c| {
                let b = c.serial_number.as_bytes();
                b.iter()
                    .position(|&x| x != 0)
                    .map_or_else(Vec::new, |i| b[i..].to_vec())
            })
            .collect()
    }
}

/// Reads an OCSP request (DER, as POSTed or base64-decoded from a GET).
pub fn parse_request(der: &[u8]) -> Result<Query> {
    if der.len() > MAX_OCSP_REQUEST {
        return Err(Error::invalid(
            "OCSP request",
            format!("{} bytes, more than {MAX_OCSP_REQUEST}", der.len()),
        ));
    }
    crate::limits::check_sets(der, "OCSP request")?;
    let req = OcspRequest::from_der(der).map_err(Error::decode("OCSP request"))?;
    if req.tbs_request.request_list.is_empty() {
        return Err(Error::invalid(
            "OCSP request",
            "no certificate is asked about",
        ));
    }
    let nonce = req
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id == const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE)
                .cloned()
        });
    Ok(Query {
        requests: req
            .tbs_request
            .request_list
            .into_iter()
            .map(|r| r.req_cert)
            .collect(),
        nonce,
    })
}

/// An unsigned OCSP response with only a status (malformedRequest, internalError, tryLater,
/// unauthorized: RFC 6960 §2.3).
pub fn error_response(status: OcspResponseStatus) -> Result<Vec<u8>> {
    to_der(&OcspResponse {
        response_status: status,
        response_bytes: None,
    })
}

impl Ca<'_> {
    /// Whether `id` names a certificate of this CA (its name and key hashes, with the
    /// request's hash algorithm).
    fn issued_here(&self, id: &CertId) -> bool {
        let Some(h) = HashAlg::from_oid(&id.hash_algorithm.oid) else {
            return false;
        };
        let tbs = &self.cert.cert.tbs_certificate;
        let Ok(name) = tbs.subject.to_der() else {
            return false;
        };
        h.digest(&name) == id.issuer_name_hash.as_bytes()
            && h.digest(tbs.subject_public_key_info.subject_public_key.raw_bytes())
                == id.issuer_key_hash.as_bytes()
    }

    /// The signed response to `q`: `status(serial)` for each CertID of this CA, unknown for
    /// others, valid from `now` until `next_update` (Unix seconds), signed by the CA or by
    /// `delegate` (a responder certificate the CA issued, carried in the response).
    pub fn ocsp_response(
        &self,
        q: &Query,
        status: &dyn Fn(&[u8]) -> Status,
        now: i64,
        next_update: i64,
        delegate: Option<&Ca<'_>>,
    ) -> Result<Vec<u8>> {
        let responder = delegate.unwrap_or(self);
        let serials = q.serials();
        let mut responses = Vec::with_capacity(q.requests.len());
        for (id, serial) in q.requests.iter().zip(&serials) {
            let st = if self.issued_here(id) {
                status(serial)
            } else {
                Status::Unknown
            };
            let cert_status = match st {
                Status::Good => CertStatus::Good(Null),
                Status::Unknown => CertStatus::Unknown(Null),
                Status::Revoked { at, reason } => CertStatus::Revoked(RevokedInfo {
                    revocation_time: OcspGeneralizedTime(time_generalized(at)?),
                    revocation_reason: reason,
                }),
            };
            responses.push(SingleResponse {
                cert_id: id.clone(),
                cert_status,
                this_update: OcspGeneralizedTime(time_generalized(now)?),
                next_update: Some(OcspGeneralizedTime(time_generalized(next_update)?)),
                single_extensions: None,
            });
        }
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(
                    HashAlg::Sha1.digest(
                        responder
                            .cert
                            .cert
                            .tbs_certificate
                            .subject_public_key_info
                            .subject_public_key
                            .raw_bytes(),
                    ),
                )
                .map_err(Error::Encode)?,
            ),
            produced_at: OcspGeneralizedTime(time_generalized(now)?),
            responses,
            response_extensions: q.nonce.clone().map(|n| vec![n]),
        };
        let (signature_algorithm, signature) = responder.sign(&to_der(&tbs)?)?;
        let certs = delegate.map(|d| vec![d.cert.cert.clone()]);
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm,
            signature,
            certs,
        };
        to_der(&OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: ID_PKIX_OCSP_BASIC,
                response: OctetString::new(to_der(&basic)?).map_err(Error::Encode)?,
            }),
        })
    }
}
