//! A development PKI: a root CA and a TSA certificate, generated on first run so that a new
//! user has a working authority with no configuration. Never for production: the root's key
//! is created beside the TSA key and the subject says "development".

use crate::error::{Error, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// Key types the development PKI can generate (ring cannot generate RSA keys; bring your own
/// RSA key through configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DevKeyType {
    /// ECDSA P-256 (the default).
    #[default]
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl DevKeyType {
    /// Parses `ecdsa-p256`, `ecdsa-p384` or `ed25519`.
    pub fn from_name(name: &str) -> Option<DevKeyType> {
        match name {
            "ecdsa-p256" | "p256" => Some(DevKeyType::EcdsaP256),
            "ecdsa-p384" | "p384" => Some(DevKeyType::EcdsaP384),
            "ed25519" => Some(DevKeyType::Ed25519),
            _ => None,
        }
    }

    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            DevKeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            DevKeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            DevKeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// The generated material. Keys are PKCS#8 DER in zeroizing buffers.
pub struct DevPki {
    /// Root CA certificate (DER).
    pub root_cert: Vec<u8>,
    /// Root CA key (PKCS#8 DER).
    pub root_key: Zeroizing<Vec<u8>>,
    /// TSA certificate (DER), signed by the root.
    pub tsa_cert: Vec<u8>,
    /// TSA key (PKCS#8 DER).
    pub tsa_key: Zeroizing<Vec<u8>>,
}

/// DER of `ExtKeyUsageSyntax ::= SEQUENCE { id-kp-timeStamping }`.
const EKU_TIME_STAMPING: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
];

fn rc(e: rcgen::Error) -> Error {
    Error::Certificate(format!("development PKI generation failed: {e}"))
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = crate::rand::array::<16>("a serial number")?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and minimal: no leading zero byte
    Ok(SerialNumber::from(bytes.to_vec()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "XX");
    dn.push(
        DnType::OrganizationName,
        "Sigillum development (not for production)",
    );
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The development root's name and CA constraint: what it is made with, and what issuing
/// under it later rebuilds (the issuer name in its children must be the root's own).
fn root_params() -> CertificateParams {
    let mut root = CertificateParams::default();
    root.distinguished_name = name("Sigillum Development Root CA");
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    root
}

/// The development TSA certificate's contents (see [`DevPki::generate`]).
fn tsa_params(now: OffsetDateTime) -> Result<CertificateParams> {
    let mut tsa = CertificateParams::default();
    tsa.distinguished_name = name("Sigillum Development TSA");
    tsa.is_ca = IsCa::ExplicitNoCa;
    tsa.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    tsa.not_before = now;
    tsa.not_after = now + Duration::days(1826);
    tsa.serial_number = Some(random_serial()?);
    tsa.use_authority_key_identifier_extension = true;
    let mut eku = CustomExtension::from_oid_content(&[2, 5, 29, 37], EKU_TIME_STAMPING.to_vec());
    eku.set_criticality(true);
    tsa.custom_extensions = vec![eku];
    Ok(tsa)
}

/// A development TSA certificate (as [`DevPki::generate`] makes) for a public key held
/// elsewhere (an HSM: `spki` is its SubjectPublicKeyInfo DER), issued by the development root
/// (`root_key`: PKCS#8 DER).
pub fn issue_tsa_certificate(root_key: &[u8], spki: &[u8]) -> Result<Vec<u8>> {
    let now = OffsetDateTime::now_utc() - Duration::minutes(5);
    let root_key = KeyPair::try_from(root_key).map_err(rc)?;
    let root = root_params();
    let issuer = Issuer::new(root, &root_key);
    let public = ExternalPublicKey::from_spki(spki)?;
    let cert = tsa_params(now)?.signed_by(&public, &issuer).map_err(rc)?;
    Ok(cert.der().to_vec())
}

/// A public key held elsewhere, as rcgen's [`rcgen::PublicKeyData`]: the subjectPublicKey bits
/// and the algorithm its SubjectPublicKeyInfo names (P-256, P-384 or RSA).
struct ExternalPublicKey {
    bits: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl ExternalPublicKey {
    fn from_spki(spki: &[u8]) -> Result<ExternalPublicKey> {
        use der::Decode;
        let info =
            spki::SubjectPublicKeyInfoOwned::from_der(spki).map_err(Error::decode("public key"))?;
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        let alg: &'static rcgen::SignatureAlgorithm =
            if info.algorithm.oid == crate::oid::RSA_ENCRYPTION {
                &rcgen::PKCS_RSA_SHA256
            } else if curve == Some(crate::oid::SECP256R1) {
                &rcgen::PKCS_ECDSA_P256_SHA256
            } else if curve == Some(crate::oid::SECP384R1) {
                &rcgen::PKCS_ECDSA_P384_SHA384
            } else {
                return Err(Error::Unsupported {
                    what: "public key for a development certificate",
                    detail: crate::oid::display_name(&info.algorithm.oid),
                });
            };
        Ok(ExternalPublicKey {
            bits: info.subject_public_key.raw_bytes().to_vec(),
            alg,
        })
    }
}

impl rcgen::PublicKeyData for ExternalPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

impl DevPki {
    /// Generates a root (10 years) and a TSA certificate (5 years) with keys of `key_type`.
    ///
    /// The TSA certificate has extendedKeyUsage timeStamping only, marked critical (rcgen writes
    /// EKU non-critical, which openssl refuses for TSAs, so it is added as a custom extension),
    /// keyUsage digitalSignature, and subject countryName and organizationName (ETSI EN 319 422).
    pub fn generate(key_type: DevKeyType) -> Result<DevPki> {
        let now = OffsetDateTime::now_utc() - Duration::minutes(5);
        let root_key = KeyPair::generate_for(key_type.rcgen()).map_err(rc)?;
        let mut root = root_params();
        // digitalSignature too: the root is also the email CA, and signs CMP replies and OCSP
        // responses itself (openssl cmp refuses a reply signer without it).
        root.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        root.not_before = now;
        root.not_after = now + Duration::days(3652);
        root.serial_number = Some(random_serial()?);
        let root_cert = root.self_signed(&root_key).map_err(rc)?;

        let tsa_key = KeyPair::generate_for(key_type.rcgen()).map_err(rc)?;
        let issuer = Issuer::new(root, &root_key);
        let tsa_cert = tsa_params(now)?.signed_by(&tsa_key, &issuer).map_err(rc)?;

        Ok(DevPki {
            root_cert: root_cert.der().to_vec(),
            root_key: Zeroizing::new(root_key.serialize_der()),
            tsa_cert: tsa_cert.der().to_vec(),
            tsa_key: Zeroizing::new(tsa_key.serialize_der()),
        })
    }

    /// Issues a document and email signer under the development root: keyUsage
    /// digitalSignature and nonRepudiation, extendedKeyUsage documentSigning and
    /// emailProtection, the address as rfc822Name. Returns the certificate (DER) and key
    /// (PKCS#8 DER). For demonstrations and tests.
    pub fn issue_signer(
        &self,
        common_name: &str,
        email: &str,
        key_type: DevKeyType,
    ) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>)> {
        let now = OffsetDateTime::now_utc() - Duration::minutes(5);
        let root_key = KeyPair::try_from(self.root_key.as_slice()).map_err(rc)?;
        let root = root_params();
        let issuer = Issuer::new(root, &root_key);
        let key = KeyPair::generate_for(key_type.rcgen()).map_err(rc)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = name(common_name);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 36]),
            ExtendedKeyUsagePurpose::EmailProtection,
        ];
        p.subject_alt_names = vec![SanType::Rfc822Name(email.try_into().map_err(rc)?)];
        p.not_before = now;
        p.not_after = now + Duration::days(730);
        p.serial_number = Some(random_serial()?);
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &issuer).map_err(rc)?;
        Ok((cert.der().to_vec(), Zeroizing::new(key.serialize_der())))
    }
}
