//! Object identifiers used across Sigillum, with the document that assigns each.
//!
//! `const-oid` 0.9 has most of these in its database; the ones it lacks (id-ct-TSTInfo, the
//! ESS attributes) are defined here so that every OID the project names lives in one place.

pub use const_oid::ObjectIdentifier;
use const_oid::ObjectIdentifier as Oid;

/// id-ct-TSTInfo (RFC 3161 §2.4.2): the eContentType of a timestamp token.
pub const ID_CT_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-data (RFC 5652 §4).
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// id-envelopedData (RFC 5652 §6.1).
pub const ID_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
/// id-ct-authEnvelopedData (RFC 5083 §2.1).
pub const ID_CT_AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");
/// id-contentType signed attribute (RFC 5652 §11.1).
pub const ID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest signed attribute (RFC 5652 §11.2).
pub const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
/// id-signingTime signed attribute (RFC 5652 §11.3).
pub const ID_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
/// id-aa-signingCertificate (RFC 2634 §5.4): ESSCertID with SHA-1.
pub const ID_AA_SIGNING_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.12");
/// id-aa-signingCertificateV2 (RFC 5035 §3, RFC 5816): ESSCertIDv2.
pub const ID_AA_SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-signatureTimeStampToken (RFC 3161 Appendix A): unsigned attribute carrying a token.
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.14");
/// id-kp-timeStamping (RFC 5280 §4.2.1.12).
pub const ID_KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
/// DER value bytes of id-kp-timeStamping, as rustls-webpki wants them.
pub const ID_KP_TIME_STAMPING_BYTES: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
/// id-kp-OCSPSigning (RFC 5280 §4.2.1.12): a delegated OCSP responder.
pub const ID_KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-kp-emailProtection (RFC 5280 §4.2.1.12): S/MIME signing and encryption certificates.
pub const ID_KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
/// DER value bytes of id-kp-emailProtection, as rustls-webpki wants them.
pub const ID_KP_EMAIL_PROTECTION_BYTES: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04];
/// The extended key usages a PDF signer's certificate may carry, in the order a verifier tries
/// them: id-kp-documentSigning (RFC 9336), emailProtection (most personal certificates), Adobe
/// Authentic Documents Trust (1.2.840.113583.1.1.5), Microsoft document signing
/// (1.3.6.1.4.1.311.10.3.12) and anyExtendedKeyUsage (RFC 5280 §4.2.1.12). A certificate
/// without an extendedKeyUsage allows any.
pub const PDF_SIGNING_EKUS: &[(&[u8], &str)] = &[
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24],
        "documentSigning",
    ),
    (ID_KP_EMAIL_PROTECTION_BYTES, "emailProtection"),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x2f, 0x01, 0x01, 0x05],
        "Adobe Authentic Documents",
    ),
    (
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x03, 0x0c],
        "Microsoft document signing",
    ),
    (&[0x55, 0x1d, 0x25, 0x00], "anyExtendedKeyUsage"),
];
/// pkcs-9 emailAddress (RFC 2985 §5.2.1): the legacy place of an address in a subject DN.
pub const PKCS9_EMAIL_ADDRESS: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
/// smimeCapabilities signed attribute (RFC 8551 §2.5.2).
pub const PKCS9_SMIME_CAPABILITIES: Oid = Oid::new_unwrap("1.2.840.113549.1.9.15");
/// id-aes256-GCM (RFC 5084), advertised in smimeCapabilities.
pub const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
/// id-aes128-GCM (RFC 5084), advertised in smimeCapabilities.
pub const AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
/// id-aes256-CBC (RFC 3565), advertised in smimeCapabilities.
pub const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
/// id-aes128-CBC (RFC 3565), advertised in smimeCapabilities.
pub const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
/// id-ce-extKeyUsage (RFC 5280 §4.2.1.12).
pub const ID_CE_EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
/// id-ce-keyUsage (RFC 5280 §4.2.1.3).
pub const ID_CE_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
/// id-ce-basicConstraints (RFC 5280 §4.2.1.9).
pub const ID_CE_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");

/// SHA-1 (RFC 3279), accepted only when verifying and always reported as weak.
pub const ID_SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
/// SHA-256 (RFC 5754).
pub const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// SHA-384 (RFC 5754).
pub const ID_SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
/// SHA-512 (RFC 5754).
pub const ID_SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
/// MD5 (RFC 1321), recognised only to be refused by name.
pub const ID_MD5: Oid = Oid::new_unwrap("1.2.840.113549.2.5");

/// rsaEncryption (RFC 8017): some signers put it in SignerInfo.signatureAlgorithm.
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// sha1WithRSAEncryption (RFC 8017).
pub const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
/// sha256WithRSAEncryption (RFC 8017).
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
/// sha384WithRSAEncryption (RFC 8017).
pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
/// sha512WithRSAEncryption (RFC 8017).
pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
/// id-RSASSA-PSS (RFC 8017).
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
/// id-mgf1 (RFC 8017).
pub const ID_MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
/// id-ecPublicKey (RFC 5480).
pub const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 (RFC 5480).
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (RFC 5480).
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
/// ecdsa-with-SHA256 (RFC 5758).
pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758).
pub const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
/// ecdsa-with-SHA512 (RFC 5758).
pub const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
/// ecdsa-with-SHA1 (RFC 3279): weak, and ring cannot verify it.
pub const ECDSA_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
/// md5WithRSAEncryption (RFC 8017), recognised only to be refused by name.
pub const MD5_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.4");

/// How far the hash inside an algorithm can be trusted today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashStrength {
    /// SHA-2 and everything not listed below.
    Sound,
    /// SHA-1: collisions are practical (SHAttered, 2017); reported as weak, a failure under
    /// `strict`.
    Weak,
    /// MD5: never accepted.
    Broken,
}

/// The one place that says which hash and signature algorithms are weak or broken, for every
/// check that reports them (imprint, digestAlgorithm, signatureAlgorithm, ESSCertID, requests).
pub fn hash_strength(alg: &Oid) -> HashStrength {
    if [ID_MD5, MD5_WITH_RSA].contains(alg) {
        HashStrength::Broken
    } else if [ID_SHA1, SHA1_WITH_RSA, ECDSA_WITH_SHA1].contains(alg) {
        HashStrength::Weak
    } else {
        HashStrength::Sound
    }
}
/// id-ce-subjectAltName (RFC 5280 §4.2.1.6).
pub const ID_CE_SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
/// id-Ed25519 (RFC 8410).
pub const ID_ED25519: Oid = Oid::new_unwrap("1.3.101.112");

/// id-pe-qcStatements (RFC 3739 §3.2.6).
pub const ID_PE_QC_STATEMENTS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.3");
/// esi4-qtstStatement-1 (ETSI EN 319 422 §9.1): the token is a qualified electronic time stamp.
pub const ESI4_QTST_STATEMENT_1: Oid = Oid::new_unwrap("0.4.0.19422.1.1");

/// Sigillum's default development policy (under the example arc 1.3.6.1.4.1.55555, private use
/// in development only; production configuration names its own policy OID).
pub const DEV_POLICY: Oid = Oid::new_unwrap("1.3.6.1.4.1.55555.1.1");

/// A name for an OID this project knows, with the dotted form (`sha256 (2.16.840.1.101.3.4.2.1)`),
/// or the dotted form alone.
pub fn display_name(oid: &Oid) -> String {
    let known: &[(Oid, &str)] = &[
        (ID_SHA1, "sha1"),
        (ID_SHA256, "sha256"),
        (ID_SHA384, "sha384"),
        (ID_SHA512, "sha512"),
        (ECDSA_WITH_SHA256, "ecdsa-with-SHA256"),
        (ECDSA_WITH_SHA384, "ecdsa-with-SHA384"),
        (ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
        (RSA_ENCRYPTION, "rsaEncryption"),
        (SHA1_WITH_RSA, "sha1WithRSAEncryption"),
        (SHA256_WITH_RSA, "sha256WithRSAEncryption"),
        (SHA384_WITH_RSA, "sha384WithRSAEncryption"),
        (SHA512_WITH_RSA, "sha512WithRSAEncryption"),
        (RSASSA_PSS, "RSASSA-PSS"),
        (ID_ED25519, "Ed25519"),
        (ECDSA_WITH_SHA1, "ecdsa-with-SHA1"),
        (MD5_WITH_RSA, "md5WithRSAEncryption"),
        (ID_PE_QC_STATEMENTS, "qcStatements"),
        (ID_MD5, "md5"),
        (ID_CONTENT_TYPE, "contentType"),
        (ID_MESSAGE_DIGEST, "messageDigest"),
        (ID_SIGNING_TIME, "signingTime"),
        (ID_AA_SIGNING_CERTIFICATE, "signingCertificate (ESSCertID)"),
        (
            ID_AA_SIGNING_CERTIFICATE_V2,
            "signingCertificateV2 (ESSCertIDv2)",
        ),
        (ID_AA_SIGNATURE_TIME_STAMP_TOKEN, "signatureTimeStampToken"),
        (PKCS9_SMIME_CAPABILITIES, "smimeCapabilities"),
        (ID_KP_EMAIL_PROTECTION, "emailProtection"),
    ];
    known
        .iter()
        .find(|(k, _)| k == oid)
        .map(|(_, n)| format!("{n} ({oid})"))
        .unwrap_or_else(|| oid.to_string())
}
