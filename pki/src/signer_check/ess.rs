//! The signing-certificate attribute of a signature: ESSCertIDv2 (RFC 5816, RFC 5035) or ESSCertID
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

/// Why a signed attribute cannot be used: a finding for the report, with its cause kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// The attribute occurs more than once (RFC 5652 §11, RFC 5035 §3: once).
    #[error("the {name} attribute occurs {count} times; it must occur once")]
    Repeated {
        /// The attribute's name.
        name: &'static str,
        /// How often it occurs.
        count: usize,
    },
    /// The attribute does not hold exactly one value.
    #[error("the {name} attribute holds {count} values; it must hold one")]
    Values {
        /// The attribute's name.
        name: &'static str,
        /// How many values it holds.
        count: usize,
    },
    /// The value does not decode (or breaks a limit on untrusted input).
    #[error("{what} is malformed")]
    Malformed {
        /// What was decoded.
        what: &'static str,
        /// Why it does not decode.
        #[source]
        source: crate::Error,
    },
    /// SigningCertificate(V2) lists no certificate.
    #[error("{what} lists no certificate")]
    Empty {
        /// Which attribute.
        what: &'static str,
    },
}

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
    pub fn decode(value: &RawTlv<'_>, v2: bool) -> Result<EssCertRef, AttributeError> {
        let what = if v2 {
            "SigningCertificateV2"
        } else {
            "SigningCertificate"
        };
        let malformed = |source| AttributeError::Malformed { what, source };
        crate::limits::check_sets(value.full, "signing certificate attribute")
            .map_err(malformed)?;
        if v2 {
            let sc = SigningCertificateV2::from_der(value.full)
                .map_err(|e| malformed(crate::Error::Decode { what, source: e }))?;
            let id = sc
                .certs
                .into_iter()
                .next()
                .ok_or(AttributeError::Empty { what })?;
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
                .map_err(|e| malformed(crate::Error::Decode { what, source: e }))?;
            let id = sc
                .certs
                .into_iter()
                .next()
                .ok_or(AttributeError::Empty { what })?;
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

    /// The check's finding for the signer `cert`: whether it passed, and the sentence saying so.
    pub fn check(&self, der: &[u8], cert: &x509_cert::Certificate) -> (bool, String) {
        let form = if self.v2 { "ESSCertIDv2" } else { "ESSCertID" };
        match self.hash {
            Err(o) if oid::hash_strength(&o) == oid::HashStrength::Broken => (
                false,
                format!("{form} hashes with MD5: broken, never accepted"),
            ),
            Err(o) => (false, format!("{form} uses an unknown hash algorithm {o}")),
            Ok(h) if self.names(der, cert) => {
                (true, format!("{form} ({h}) names the signer's certificate"))
            }
            Ok(_) => (
                false,
                format!("{form} names another certificate than the signer's"),
            ),
        }
    }
}
