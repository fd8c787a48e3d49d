//! The certificate authority's issuing core: email certificates and CRLs (RFC 5280, RFC 8550)
//! built as x509-cert structures and signed in three steps through the [`Signer`] trait, like
//! every other signature here: the DER of the TBSCertificate or TBSCertList, then
//! [`Signer::sign`], then the assembled Certificate or CertificateList. An HSM key or the
//! development root signs the same way; there is no second key path.
//!
//! What a certificate carries is fixed by its [`Usage`]: a signing certificate has keyUsage
//! digitalSignature and nonRepudiation, an encryption certificate keyEncipherment (RSA) or
//! keyAgreement (EC); both extendedKeyUsage emailProtection, the address as their only
//! rfc822Name, subject and authority key identifiers, and, when the CA has the URLs, AIA (OCSP,
//! CA issuers) and a CRL distribution point. The CMP server, the directory and the OCSP
//! responder's signing ([`ocsp`]) is here too.

pub mod enrolment;
mod ocsp;

pub use ocsp::{MAX_OCSP_REQUEST, Query, Status, error_response, parse_request};
pub use x509_ocsp::OcspResponseStatus;

use crate::cms::SignerCert;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::signer::{Signer, to_der};
use der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, Tag};
use spki::SubjectPublicKeyInfoOwned;
use std::time::Duration;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, CrlNumber, CrlReason, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// id-ecPublicKey (RFC 5480): an EC key, whose encryption certificate says keyAgreement.
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// rsaEncryption (RFC 8017): an RSA key, whose encryption certificate says keyEncipherment.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-pe-authorityInfoAccess access methods (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
/// id-ce-cRLReasons, the CRL entry extension (RFC 5280 §5.3.1).
const ID_CE_CRL_REASONS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");

/// The CA: its key (any [`Signer`]) and certificate.
pub struct Ca<'a> {
    /// The key that signs certificates and CRLs.
    pub signer: &'a dyn Signer,
    /// Its certificate (issuer name, key identifier).
    pub cert: &'a SignerCert,
    /// Where relying parties ask for status (AIA id-ad-ocsp), when the CA runs a responder.
    pub ocsp_url: Option<String>,
    /// Where the CA's certificate is served (AIA id-ad-caIssuers).
    pub ca_issuers_url: Option<String>,
    /// Where the CRL is served (CRL distribution point).
    pub crl_url: Option<String>,
}

/// What an email certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// Signing mail and documents: digitalSignature, nonRepudiation.
    Signing,
    /// Receiving encrypted mail: keyEncipherment (RSA keys) or keyAgreement (EC keys).
    Encryption,
}

/// One certificate to issue.
#[derive(Clone, Debug)]
pub struct EmailCertificate<'a> {
    /// The subject's public key (SubjectPublicKeyInfo DER, from the request).
    pub public_key_info: &'a [u8],
    /// The one address the certificate binds (the proven one, whatever the request asked).
    pub email: &'a str,
    /// The subject's common name; the address when `None`.
    pub common_name: Option<&'a str>,
    /// Signing or encryption.
    pub usage: Usage,
    /// The serial, big-endian magnitude (made positive and minimal here).
    pub serial: &'a [u8],
    /// notBefore and notAfter, Unix seconds.
    pub validity: (i64, i64),
}

/// A revoked certificate, for the CRL.
#[derive(Clone, Debug)]
pub struct Revoked {
    /// Its serial, big-endian magnitude.
    pub serial: Vec<u8>,
    /// When it was revoked, Unix seconds.
    pub at: i64,
    /// Why, when known (RFC 5280 §5.3.1).
    pub reason: Option<CrlReason>,
}

/// The CRLReason codes (RFC 5280 §5.3.1) by number, name and type: the one table.
const REASONS: [(i64, &str, CrlReason); 9] = [
    (0, "unspecified", CrlReason::Unspecified),
    (1, "keyCompromise", CrlReason::KeyCompromise),
    (2, "cACompromise", CrlReason::CaCompromise),
    (3, "affiliationChanged", CrlReason::AffiliationChanged),
    (4, "superseded", CrlReason::Superseded),
    (5, "cessationOfOperation", CrlReason::CessationOfOperation),
    (6, "certificateHold", CrlReason::CertificateHold),
    (9, "privilegeWithdrawn", CrlReason::PrivilegeWithdrawn),
    (10, "aACompromise", CrlReason::AaCompromise),
];

/// The reason with this code.
pub fn crl_reason(code: i64) -> Option<CrlReason> {
    REASONS.iter().find(|r| r.0 == code).map(|r| r.2)
}

/// The code of this reason (removeFromCRL, 8, belongs only in delta CRLs and is not here).
pub fn crl_reason_code(reason: CrlReason) -> Option<i64> {
    REASONS.iter().find(|r| r.2 == reason).map(|r| r.0)
}

/// The code of the reason named `name` (RFC 5280's spelling).
pub fn crl_reason_by_name(name: &str) -> Option<i64> {
    REASONS.iter().find(|r| r.1 == name).map(|r| r.0)
}

/// The RFC 5280 names, for messages.
pub fn crl_reason_names() -> String {
    REASONS.iter().map(|r| r.1).collect::<Vec<_>>().join(", ")
}

/// A positive, minimally encoded serial number (RFC 5280 §4.1.2.2).
fn serial(magnitude: &[u8]) -> Result<SerialNumber> {
    let trimmed: &[u8] = match magnitude.iter().position(|&b| b != 0) {
        Some(i) => &magnitude[i..],
        None => {
            return Err(Error::invalid(
                "serial number",
                "zero is not a serial number",
            ));
        }
    };
    if trimmed.len() > 20 {
        return Err(Error::invalid("serial number", "longer than 20 octets"));
    }
    let mut bytes = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        bytes.push(0);
    }
    bytes.extend_from_slice(trimmed);
    SerialNumber::new(&bytes).map_err(Error::Encode)
}

/// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
fn time(unix: i64) -> Result<Time> {
    let secs = u64::try_from(unix)
        .map_err(|_| Error::invalid("time", "before 1970"))
        .map(Duration::from_secs)?;
    if unix < 2_524_608_000 {
        Ok(Time::UtcTime(
            UtcTime::from_unix_duration(secs).map_err(Error::Encode)?,
        ))
    } else {
        Ok(Time::GeneralTime(time_generalized(unix)?))
    }
}

/// GeneralizedTime, as OCSP wants every time (RFC 6960 §4.2.2.1).
pub(crate) fn time_generalized(unix: i64) -> Result<der::asn1::GeneralizedTime> {
    let secs = u64::try_from(unix).map_err(|_| Error::invalid("time", "before 1970"))?;
    der::asn1::GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).map_err(Error::Encode)
}

/// A name with one commonName (UTF8String).
fn common_name(cn: &str) -> Result<Name> {
    let value = Any::new(Tag::Utf8String, cn.as_bytes()).map_err(Error::Encode)?;
    let atv = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::CN,
        value,
    };
    let rdn = RelativeDistinguishedName(SetOfVec::try_from(vec![atv]).map_err(Error::Encode)?);
    Ok(RdnSequence(vec![rdn]))
}

/// The key identifier of a public key: SHA-1 of the subjectPublicKey bits (RFC 5280
/// §4.2.1.2, method 1). An identifier, not a security function.
fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Result<OctetString> {
    OctetString::new(HashAlg::Sha1.digest(spki.subject_public_key.raw_bytes()))
        .map_err(Error::Encode)
}

fn extension<T: AsExtension>(value: &T, subject: &Name, others: &[Extension]) -> Result<Extension> {
    value.to_extension(subject, others).map_err(Error::Encode)
}

fn uri(url: &str) -> Result<GeneralName> {
    Ia5String::new(url)
        .map(GeneralName::UniformResourceIdentifier)
        .map_err(|e| Error::invalid("URL", format!("{url:?} is not IA5: {e}")))
}

impl Ca<'_> {
    /// The CA's key identifier: its certificate's subjectKeyIdentifier, else computed.
    pub(crate) fn key_id(&self) -> Result<OctetString> {
        let tbs = &self.cert.cert.tbs_certificate;
        match tbs.get::<SubjectKeyIdentifier>() {
            Ok(Some((_, ski))) => Ok(ski.0),
            _ => key_identifier(&tbs.subject_public_key_info),
        }
    }

    /// Signs `tbs` (DER) in the three steps; returns the signature algorithm and the BIT STRING.
    pub(crate) fn sign(&self, tbs: &[u8]) -> Result<(spki::AlgorithmIdentifierOwned, BitString)> {
        if !self.cert.matches(self.signer) {
            return Err(Error::Certificate(
                "the CA certificate does not belong to the CA key".into(),
            ));
        }
        let signature = self.signer.sign(tbs)?;
        Ok((
            self.signer.algorithm().algorithm_identifier()?,
            BitString::from_bytes(&signature).map_err(Error::Encode)?,
        ))
    }

    /// Issues an email certificate (DER).
    pub fn issue(&self, c: &EmailCertificate<'_>) -> Result<Vec<u8>> {
        let spki = SubjectPublicKeyInfoOwned::from_der(c.public_key_info)
            .map_err(Error::decode("public key"))?;
        if !c
            .email
            .rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        {
            return Err(Error::invalid(
                "email address",
                format!("{:?} has no local part and domain", c.email),
            ));
        }
        let rfc822 = Ia5String::new(c.email).map_err(|e| {
            Error::invalid("email address", format!("{:?} is not ASCII: {e}", c.email))
        })?;
        if c.validity.1 <= c.validity.0 {
            return Err(Error::invalid("validity", "notAfter must follow notBefore"));
        }
        let subject = common_name(c.common_name.unwrap_or(c.email))?;
        let key_usage = match (c.usage, &spki.algorithm.oid) {
            (Usage::Signing, _) => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            (Usage::Encryption, oid) if *oid == RSA_ENCRYPTION => KeyUsages::KeyEncipherment.into(),
            (Usage::Encryption, oid) if *oid == ID_EC_PUBLIC_KEY => KeyUsages::KeyAgreement.into(),
            (Usage::Encryption, oid) => {
                return Err(Error::invalid(
                    "public key",
                    format!("an encryption certificate needs an RSA or EC key, not {oid}"),
                ));
            }
        };
        let mut exts: Vec<Extension> = Vec::new();
        let bc = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        };
        let e = extension(&bc, &subject, &exts)?;
        exts.push(e);
        let e = extension(&KeyUsage(key_usage), &subject, &exts)?;
        exts.push(e);
        // Non-critical, as S/MIME certificates carry it (x509-cert's default marks it critical,
        // which would make any relying party that does not know the extension refuse the
        // certificate).
        let mut e = extension(
            &ExtendedKeyUsage(vec![crate::oid::ID_KP_EMAIL_PROTECTION]),
            &subject,
            &exts,
        )?;
        e.critical = false;
        exts.push(e);
        let e = extension(
            &SubjectAltName(vec![GeneralName::Rfc822Name(rfc822)]),
            &subject,
            &exts,
        )?;
        exts.push(e);
        let e = extension(
            &SubjectKeyIdentifier(key_identifier(&spki)?),
            &subject,
            &exts,
        )?;
        exts.push(e);
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(self.key_id()?),
            ..AuthorityKeyIdentifier::default()
        };
        let e = extension(&aki, &subject, &exts)?;
        exts.push(e);
        let mut access = Vec::new();
        if let Some(u) = &self.ocsp_url {
            access.push(AccessDescription {
                access_method: ID_AD_OCSP,
                access_location: uri(u)?,
            });
        }
        if let Some(u) = &self.ca_issuers_url {
            access.push(AccessDescription {
                access_method: ID_AD_CA_ISSUERS,
                access_location: uri(u)?,
            });
        }
        if !access.is_empty() {
            let e = extension(&AuthorityInfoAccessSyntax(access), &subject, &exts)?;
            exts.push(e);
        }
        if let Some(u) = &self.crl_url {
            let dp = DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(u)?])),
                reasons: None,
                crl_issuer: None,
            };
            let e = extension(&CrlDistributionPoints(vec![dp]), &subject, &exts)?;
            exts.push(e);
        }
        let signature_algorithm = self.signer.algorithm().algorithm_identifier()?;
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: serial(c.serial)?,
            signature: signature_algorithm,
            issuer: self.cert.cert.tbs_certificate.subject.clone(),
            validity: Validity {
                not_before: time(c.validity.0)?,
                not_after: time(c.validity.1)?,
            },
            subject,
            subject_public_key_info: spki,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(exts),
        };
        let (signature_algorithm, signature) = self.sign(&to_der(&tbs)?)?;
        to_der(&Certificate {
            tbs_certificate: tbs,
            signature_algorithm,
            signature,
        })
    }

    /// A CRL (v2) listing `revoked`, numbered `number`, valid from `this_update` to
    /// `next_update` (Unix seconds).
    pub fn crl(
        &self,
        revoked: &[Revoked],
        this_update: i64,
        next_update: i64,
        number: u64,
    ) -> Result<Vec<u8>> {
        let issuer = self.cert.cert.tbs_certificate.subject.clone();
        let mut entries = Vec::with_capacity(revoked.len());
        for r in revoked {
            let crl_entry_extensions = match r.reason {
                None => None,
                Some(reason) => Some(vec![Extension {
                    extn_id: ID_CE_CRL_REASONS,
                    critical: false,
                    extn_value: OctetString::new(reason.to_der().map_err(Error::Encode)?)
                        .map_err(Error::Encode)?,
                }]),
            };
            entries.push(RevokedCert {
                serial_number: serial(&r.serial)?,
                revocation_date: time(r.at)?,
                crl_entry_extensions,
            });
        }
        let mut exts = Vec::new();
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(self.key_id()?),
            ..AuthorityKeyIdentifier::default()
        };
        let e = extension(&aki, &issuer, &exts)?;
        exts.push(e);
        let number = der::asn1::Uint::new(&number.to_be_bytes()).map_err(Error::Encode)?;
        let e = extension(&CrlNumber(number), &issuer, &exts)?;
        exts.push(e);
        let tbs = TbsCertList {
            version: Version::V2,
            signature: self.signer.algorithm().algorithm_identifier()?,
            issuer,
            this_update: time(this_update)?,
            next_update: Some(time(next_update)?),
            revoked_certificates: (!entries.is_empty()).then_some(entries),
            crl_extensions: Some(exts),
        };
        let (signature_algorithm, signature) = self.sign(&to_der(&tbs)?)?;
        to_der(&CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm,
            signature,
        })
    }
}
