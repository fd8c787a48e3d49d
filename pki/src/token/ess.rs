//! The signing-certificate attribute of a token: ESSCertIDv2 (RFC 5816, RFC 5035) or ESSCertID
//! (RFC 2634), which names the signer's certificate by hash.
//!
//! ESSCertID (v1) hashes the certificate with SHA-1 and stays accepted without a warning:
//! openssl's TSA writes it, and it identifies the certificate among those at hand rather than
//! standing against collisions (the signature over the attributes is what binds them).

use crate::asn1::{IssuerSerial, SigningCertificate, SigningCertificateV2};
use crate::digest::HashAlg;
use crate::oid;
use crate::raw::RawTlv;
use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;

/// The first ESSCertID(v2) of the attribute: the signer's certificate.
#[derive(Clone, Debug)]
pub struct EssCertRef {
    /// `v2` for ESSCertIDv2.
    pub v2: bool,
    /// The hash algorithm, or the OID of one we do not know (or refuse: MD5).
    pub hash: Result<HashAlg, der::asn1::ObjectIdentifier>,
    /// certHash.
    pub cert_hash: Vec<u8>,
    /// issuerSerial, when present.
    pub issuer_serial: Option<IssuerSerial>,
}

impl EssCertRef {
    /// Decodes the attribute value of signingCertificateV2 (`v2`) or signingCertificate.
    pub fn decode(value: &RawTlv<'_>, v2: bool) -> Result<EssCertRef, String> {
        crate::limits::check_sets(value.full, "signing certificate attribute")
            .map_err(|e| crate::error::error_text(&e))?;
        if v2 {
            let sc = SigningCertificateV2::from_der(value.full)
                .map_err(|e| format!("SigningCertificateV2 is malformed: {e}"))?;
            let id = sc
                .certs
                .into_iter()
                .next()
                .ok_or("SigningCertificateV2 lists no certificate")?;
            let hash = match &id.hash_algorithm {
                None => Ok(HashAlg::Sha256),
                Some(a) => HashAlg::from_oid(&a.oid).ok_or(a.oid),
            };
            Ok(EssCertRef {
                v2,
                hash,
                cert_hash: id.cert_hash.as_bytes().to_vec(),
                issuer_serial: id.issuer_serial,
            })
        } else {
            let sc = SigningCertificate::from_der(value.full)
                .map_err(|e| format!("SigningCertificate is malformed: {e}"))?;
            let id = sc
                .certs
                .into_iter()
                .next()
                .ok_or("SigningCertificate lists no certificate")?;
            Ok(EssCertRef {
                v2,
                hash: Ok(HashAlg::Sha1),
                cert_hash: id.cert_hash.as_bytes().to_vec(),
                issuer_serial: id.issuer_serial,
            })
        }
    }

    /// Whether this names `cert` (its DER and decoded form).
    pub fn names(&self, der: &[u8], cert: &x509_cert::Certificate) -> bool {
        let Ok(h) = self.hash else {
            return false;
        };
        let tbs = &cert.tbs_certificate;
        h.digest(der) == self.cert_hash
            && self.issuer_serial.as_ref().is_none_or(|is| {
                is.serial_number == tbs.serial_number
                    && is
                        .issuer
                        .iter()
                        .any(|g| matches!(g, GeneralName::DirectoryName(n) if *n == tbs.issuer))
            })
    }

    /// The check's finding for the signer `cert`: `Ok(detail)` or `Err(detail)`.
    pub fn check(&self, der: &[u8], cert: &x509_cert::Certificate) -> Result<String, String> {
        let form = if self.v2 { "ESSCertIDv2" } else { "ESSCertID" };
        match self.hash {
            Err(o) if o == oid::ID_MD5 => {
                Err(format!("{form} hashes with MD5: broken, never accepted"))
            }
            Err(o) => Err(format!("{form} uses an unknown hash algorithm {o}")),
            Ok(h) if self.names(der, cert) => {
                Ok(format!("{form} ({h}) names the signer's certificate"))
            }
            Ok(_) => Err(format!(
                "{form} names another certificate than the signer's"
            )),
        }
    }
}
