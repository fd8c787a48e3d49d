//! OCSP, the asking side (RFC 6960): a request for one certificate, and the checked answer.
//! The CA's responder is [`crate::ca::ocsp`]; HTTP is the caller's.
//!
//! [`check_response`] accepts an answer only when it is signed by the certificate's issuer, or
//! by a responder certificate that the issuer signed and gave id-kp-OCSPSigning (RFC 6960
//! §4.2.2.2), valid at the time; when it holds a SingleResponse for exactly the CertID asked
//! about; when it is current (thisUpdate not in the future, nextUpdate, if any, not past, with
//! five minutes of clock skew); and when its nonce, if it echoes one, is ours, or, if it echoes
//! none, when it has a nextUpdate and is at most seven days old (a replayed answer fetched
//! before a revocation is then bounded by the responder's own validity). The signature is
//! checked over tbsResponseData exactly as received.

use crate::cert_raw::RawCert;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::raw::RawTlv;
use der::asn1::{Null, ObjectIdentifier as Oid, OctetString};
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};

/// Largest OCSP response read.
pub const MAX_OCSP_RESPONSE: usize = 64 * 1024;

/// Clock skew allowed against thisUpdate and nextUpdate, seconds.
const SKEW: u64 = 300;

/// Oldest thisUpdate accepted from an answer that does not echo our nonce, seconds.
const MAX_AGE_WITHOUT_NONCE: u64 = 7 * 86_400;

const ID_PKIX_OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");

/// A request, and what is needed to check its answer.
#[derive(Debug, Clone)]
pub struct Query {
    /// The request, DER, to POST as application/ocsp-request.
    pub der: Vec<u8>,
    cert_id: CertId,
    nonce: Vec<u8>,
}

/// What the responder said of the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Not revoked.
    Good,
    /// Revoked at this time (RFC 3339), for this reason if given.
    Revoked {
        /// When.
        at: String,
        /// Why.
        reason: Option<String>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// The URIs of an authorityInfoAccess method in a certificate.
fn aia_uris(cert: &[u8], method: Oid) -> Vec<String> {
    use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(cert) = crate::cert::parse(cert) else {
        return Vec::new();
    };
    crate::cert::extension(&cert, &const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS)
        .and_then(|(_, v)| AuthorityInfoAccessSyntax::from_der(v).ok())
        .map(|aia| {
            aia.0
                .into_iter()
                .filter(|a| a.access_method == method)
                .filter_map(|a| match a.access_location {
                    GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The OCSP responder the certificate names (authorityInfoAccess id-ad-ocsp), if any.
pub fn responder_url(cert: &[u8]) -> Option<String> {
    aia_uris(cert, ID_AD_OCSP).into_iter().next()
}

/// Where the certificate's issuer certificate is published (id-ad-caIssuers), if anywhere.
pub fn issuer_url(cert: &[u8]) -> Option<String> {
    aia_uris(cert, ID_AD_CA_ISSUERS).into_iter().next()
}

/// A request about `cert` (DER), issued by `issuer` (DER): SHA-1 CertID (what every responder
/// reads, RFC 5019 §2.1.1) and a random nonce (RFC 8954, 32 bytes).
pub fn request(cert: &[u8], issuer: &[u8]) -> Result<Query> {
    if !crate::cert::issued_by(cert, issuer) {
        return Err(Error::Certificate(
            "the issuer certificate given did not sign the certificate".into(),
        ));
    }
    let cert = RawCert::parse(cert)?;
    let issuer = RawCert::parse(issuer)?;
    if cert.issuer != issuer.subject {
        return Err(Error::Certificate(
            "the issuer certificate given is not the certificate's issuer".into(),
        ));
    }
    let cert_id = CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: crate::oid::ID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(HashAlg::Sha1.digest(issuer.subject))
            .map_err(Error::Encode)?,
        issuer_key_hash: OctetString::new(HashAlg::Sha1.digest(issuer.public_key))
            .map_err(Error::Encode)?,
        serial_number: x509_cert::serial_number::SerialNumber::new(cert.serial)
            .map_err(Error::Encode)?,
    };
    let nonce = crate::rand::bytes(32, "an OCSP nonce")?;
    let nonce_ext = Extension {
        extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(
            OctetString::new(nonce.clone())
                .map_err(Error::Encode)?
                .to_der()
                .map_err(Error::Encode)?,
        )
        .map_err(Error::Encode)?,
    };
    let der = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![nonce_ext]),
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(Error::Encode)?;
    Ok(Query {
        der,
        cert_id,
        nonce,
    })
}

const WHAT: &str = "OCSP response";

/// Checks `response` (DER) to `q` about a certificate of `issuer` (DER) at `now` (Unix
/// seconds); returns the certificate's status, or why the answer cannot be trusted.
pub fn check_response(q: &Query, response: &[u8], issuer: &[u8], now: u64) -> Result<Revocation> {
    if response.len() > MAX_OCSP_RESPONSE {
        return Err(Error::invalid(WHAT, "too large"));
    }
    crate::limits::check_sets(response, WHAT)?;
    let outer = OcspResponse::from_der(response).map_err(Error::decode(WHAT))?;
    if outer.response_status != OcspResponseStatus::Successful {
        return Err(Error::invalid(
            WHAT,
            format!("the responder answered {:?}", outer.response_status),
        ));
    }
    let bytes = outer
        .response_bytes
        .ok_or_else(|| Error::invalid(WHAT, "no responseBytes"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(Error::Unsupported {
            what: "OCSP response type",
            detail: crate::oid::display_name(&bytes.response_type),
        });
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der).map_err(Error::decode(WHAT))?;
    // What was signed, as received.
    let raw = RawTlv::parse(basic_der, WHAT)?;
    let fields = raw.children(WHAT)?;
    let (tbs, sig_alg) = match fields.as_slice() {
        [tbs, alg, ..] => (tbs.full, alg.value),
        _ => return Err(Error::invalid(WHAT, "BasicOCSPResponse is too short")),
    };
    let signature = basic.signature.raw_bytes();

    let issuer_raw = RawCert::parse(issuer)?;
    let by_issuer = crate::path::signature_by(&issuer_raw, tbs, sig_alg, signature);
    if !by_issuer {
        let delegated = basic.certs.iter().flatten().any(|c| {
            let Ok(der) = c.to_der() else { return false };
            let Ok(responder) = RawCert::parse(&der) else {
                return false;
            };
            crate::path::signed_by(&issuer_raw, &responder)
                && crate::cert::has_eku(c, &crate::oid::ID_KP_OCSP_SIGNING)
                && crate::cert::valid_at(c, now)
                && crate::path::signature_by(&responder, tbs, sig_alg, signature)
        });
        if !delegated {
            return Err(Error::invalid(
                WHAT,
                "it is signed neither by the certificate's issuer nor by a responder the issuer \
                 delegated (id-kp-OCSPSigning)",
            ));
        }
    }
    let data = &basic.tbs_response_data;
    let nonce = data.response_extensions.as_ref().and_then(|exts| {
        exts.iter()
            .find(|e| e.extn_id == const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE)
    });
    let fresh_by_nonce = match nonce {
        Some(n) => {
            let echoed = OctetString::from_der(n.extn_value.as_bytes())
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_else(|_| n.extn_value.as_bytes().to_vec());
            if echoed != q.nonce {
                return Err(Error::invalid(
                    WHAT,
                    "its nonce is not ours (a replayed answer?)",
                ));
            }
            true
        }
        None => false,
    };
    let single = data
        .responses
        .iter()
        .find(|r| r.cert_id == q.cert_id)
        .ok_or_else(|| Error::invalid(WHAT, "it says nothing of the certificate asked about"))?;
    let this_update = single.this_update.0.to_unix_duration().as_secs();
    if this_update > now + SKEW {
        return Err(Error::invalid(WHAT, "its thisUpdate is in the future"));
    }
    // Without our nonce echoed, an answer could be one fetched before a revocation and
    // replayed: it must then say when it expires, and be young (RFC 5019 responders
    // pre-produce answers for days, not longer).
    if !fresh_by_nonce {
        if single.next_update.is_none() {
            return Err(Error::invalid(
                WHAT,
                "it echoes no nonce and gives no nextUpdate: it could be a replay of any age",
            ));
        }
        if now.saturating_sub(this_update) > MAX_AGE_WITHOUT_NONCE {
            return Err(Error::invalid(
                WHAT,
                "it echoes no nonce and is more than 7 days old",
            ));
        }
    }
    if let Some(next) = &single.next_update
        && next.0.to_unix_duration().as_secs() + SKEW < now
    {
        return Err(Error::invalid(
            WHAT,
            "it is out of date (nextUpdate has passed)",
        ));
    }
    Ok(match &single.cert_status {
        CertStatus::Good(_) => Revocation::Good,
        CertStatus::Unknown(_) => Revocation::Unknown,
        CertStatus::Revoked(info) => Revocation::Revoked {
            at: crate::gentime::unix_rfc3339(
                i64::try_from(info.revocation_time.0.to_unix_duration().as_secs())
                    .unwrap_or(i64::MAX),
            ),
            reason: info.revocation_reason.map(|r| format!("{r:?}")),
        },
    })
}
