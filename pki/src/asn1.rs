//! ASN.1 structures no crate on the `der` 0.7 line provides, or provides in a form we can't use.
//!
//! * ESS signing-certificate attributes (RFC 2634, RFC 5035): in no crate.
//! * `TstInfo`: x509-tsp's version uses der's `GeneralizedTime`, which refuses the fractional
//!   seconds RFC 3161 allows, so ours carries a [`GenTime`].
//! * `PkiStatusInfo`: cmpv2 0.2's `PkiFailureInfo` declares bit *positions* as flag *masks*
//!   (badAlg = 0, badRequest = badTime = 2), so its failInfo encoding is wrong; ours is a plain
//!   BIT STRING with [`FailureInfo`] positions.
//!
//! Request, imprint and accuracy types come from x509-tsp unchanged.

use crate::gentime::GenTime;
use der::asn1::{BitString, Int, OctetString, SetOfVec, Utf8StringRef};
use der::{Any, Enumerated, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::serial_number::SerialNumber;

pub use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TspVersion};

/// ESSCertIDv2 (RFC 5035 §4).
///
/// ```text
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm   AlgorithmIdentifier DEFAULT {algorithm id-sha256},
///     certHash        Hash,
///     issuerSerial    IssuerSerial OPTIONAL }
/// ```
/// `hash_algorithm` is `None` when it is SHA-256, the DEFAULT, which DER leaves out.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    /// The certificate hash algorithm; `None` means SHA-256.
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// Hash of the whole certificate DER.
    pub cert_hash: OctetString,
    /// Issuer and serial of the certificate.
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// ESSCertID (RFC 2634 §5.4.1): the SHA-1 form of [`EssCertIdV2`].
///
/// ```text
/// ESSCertID ::= SEQUENCE {
///     certHash        Hash,   -- SHA-1 of the certificate
///     issuerSerial    IssuerSerial OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertId {
    /// SHA-1 hash of the whole certificate DER.
    pub cert_hash: OctetString,
    /// Issuer and serial of the certificate.
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// IssuerSerial (RFC 5035 §4).
///
/// ```text
/// IssuerSerial ::= SEQUENCE {
///     issuer          GeneralNames,
///     serialNumber    CertificateSerialNumber }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    /// The issuer as a directoryName.
    pub issuer: GeneralNames,
    /// The certificate serial number.
    pub serial_number: SerialNumber,
}

/// SigningCertificateV2 (RFC 5035 §3).
///
/// ```text
/// SigningCertificateV2 ::= SEQUENCE {
///     certs        SEQUENCE OF ESSCertIDv2,
///     policies     SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    /// The signer's certificate first, then optionally others.
    pub certs: Vec<EssCertIdV2>,
    /// Policies; never written by us, kept when read.
    #[asn1(optional = "true")]
    pub policies: Option<Vec<Any>>,
}

/// SigningCertificate (RFC 2634 §5.4).
///
/// ```text
/// SigningCertificate ::= SEQUENCE {
///     certs        SEQUENCE OF ESSCertID,
///     policies     SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificate {
    /// The signer's certificate first.
    pub certs: Vec<EssCertId>,
    /// Policies; kept when read.
    #[asn1(optional = "true")]
    pub policies: Option<Vec<Any>>,
}

/// TSTInfo (RFC 3161 §2.4.2), with a `genTime` that admits fractional seconds.
///
/// ```text
/// TSTInfo ::= SEQUENCE  {
///    version                      INTEGER  { v1(1) },
///    policy                       TSAPolicyId,
///    messageImprint               MessageImprint,
///    serialNumber                 INTEGER,
///    genTime                      GeneralizedTime,
///    accuracy                     Accuracy                 OPTIONAL,
///    ordering                     BOOLEAN             DEFAULT FALSE,
///    nonce                        INTEGER                  OPTIONAL,
///    tsa                          [0] GeneralName          OPTIONAL,
///    extensions                   [1] IMPLICIT Extensions  OPTIONAL  }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TstInfo {
    /// Always v1.
    pub version: TspVersion,
    /// The policy under which the token was issued.
    pub policy: der::asn1::ObjectIdentifier,
    /// The hash of the stamped data.
    pub message_imprint: MessageImprint,
    /// Serial number, unique per authority (up to 160 bits).
    pub serial_number: Int,
    /// The time the token was created.
    pub gen_time: GenTime,
    /// Accuracy around `gen_time`.
    #[asn1(optional = "true")]
    pub accuracy: Option<Accuracy>,
    /// Ordering; we always leave it out (FALSE).
    #[asn1(default = "Default::default")]
    pub ordering: bool,
    /// The request's nonce, echoed.
    #[asn1(optional = "true")]
    pub nonce: Option<Int>,
    /// The authority's name.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    /// Extensions.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// PKIStatus (RFC 3161 §2.4.2).
#[derive(Clone, Copy, Debug, Enumerated, Eq, PartialEq, serde::Serialize)]
#[asn1(type = "INTEGER")]
#[repr(u8)]
#[allow(missing_docs)]
pub enum PkiStatus {
    Granted = 0,
    GrantedWithMods = 1,
    Rejection = 2,
    Waiting = 3,
    RevocationWarning = 4,
    RevocationNotification = 5,
}

/// PKIFailureInfo bits (RFC 9810 §5.2.3; the RFC 3161 §2.4.2 subset for timestamps): the
/// *bit positions* in the BIT STRING, all 27 of them (cmpv2 0.2 declares them as masks, which
/// is wrong, so CMP uses this type too).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[repr(u8)]
pub enum FailureInfo {
    /// Unrecognized or unsupported algorithm identifier.
    BadAlg = 0,
    /// Integrity check failed (the protection does not verify).
    BadMessageCheck = 1,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// messageTime was not sufficiently close to the system time.
    BadTime = 3,
    /// No certificate could be found matching the criteria.
    BadCertId = 4,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The authority named in the request is not this one.
    WrongAuthority = 6,
    /// The requester's data is incorrect.
    IncorrectData = 7,
    /// A timestamp was required but is missing.
    MissingTimeStamp = 8,
    /// The proof-of-possession failed.
    #[serde(rename = "badPOP")]
    BadPop = 9,
    /// The certificate has already been revoked.
    CertRevoked = 10,
    /// The certificate has already been confirmed.
    CertConfirmed = 11,
    /// Not the integrity protection expected (MAC or signature).
    WrongIntegrity = 12,
    /// recipNonce is not the one expected.
    BadRecipientNonce = 13,
    /// The TSA's time source is not available.
    TimeNotAvailable = 14,
    /// The requested policy is not supported.
    UnacceptedPolicy = 15,
    /// The requested extension is not supported.
    UnacceptedExtension = 16,
    /// The additional information requested could not be understood or is not available.
    AddInfoNotAvailable = 17,
    /// senderNonce is missing or too short.
    BadSenderNonce = 18,
    /// The certificate template is invalid or unacceptable.
    BadCertTemplate = 19,
    /// The signer of the message is unknown or not trusted.
    SignerNotTrusted = 20,
    /// The transactionID is already in use.
    TransactionIdInUse = 21,
    /// The protocol version is not supported.
    UnsupportedVersion = 22,
    /// The sender is not authorized to make the request.
    NotAuthorized = 23,
    /// The request cannot be handled now; try later.
    SystemUnavail = 24,
    /// The request cannot be handled due to system failure.
    SystemFailure = 25,
    /// The certificate requested is already issued.
    DuplicateCertReq = 26,
}

impl FailureInfo {
    /// Every defined bit.
    pub const ALL: [FailureInfo; 27] = [
        FailureInfo::BadAlg,
        FailureInfo::BadMessageCheck,
        FailureInfo::BadRequest,
        FailureInfo::BadTime,
        FailureInfo::BadCertId,
        FailureInfo::BadDataFormat,
        FailureInfo::WrongAuthority,
        FailureInfo::IncorrectData,
        FailureInfo::MissingTimeStamp,
        FailureInfo::BadPop,
        FailureInfo::CertRevoked,
        FailureInfo::CertConfirmed,
        FailureInfo::WrongIntegrity,
        FailureInfo::BadRecipientNonce,
        FailureInfo::TimeNotAvailable,
        FailureInfo::UnacceptedPolicy,
        FailureInfo::UnacceptedExtension,
        FailureInfo::AddInfoNotAvailable,
        FailureInfo::BadSenderNonce,
        FailureInfo::BadCertTemplate,
        FailureInfo::SignerNotTrusted,
        FailureInfo::TransactionIdInUse,
        FailureInfo::UnsupportedVersion,
        FailureInfo::NotAuthorized,
        FailureInfo::SystemUnavail,
        FailureInfo::SystemFailure,
        FailureInfo::DuplicateCertReq,
    ];

    /// The RFC's name for the bit.
    pub fn name(self) -> &'static str {
        match self {
            FailureInfo::BadAlg => "badAlg",
            FailureInfo::BadMessageCheck => "badMessageCheck",
            FailureInfo::BadRequest => "badRequest",
            FailureInfo::BadTime => "badTime",
            FailureInfo::BadCertId => "badCertId",
            FailureInfo::BadDataFormat => "badDataFormat",
            FailureInfo::WrongAuthority => "wrongAuthority",
            FailureInfo::IncorrectData => "incorrectData",
            FailureInfo::MissingTimeStamp => "missingTimeStamp",
            FailureInfo::BadPop => "badPOP",
            FailureInfo::CertRevoked => "certRevoked",
            FailureInfo::CertConfirmed => "certConfirmed",
            FailureInfo::WrongIntegrity => "wrongIntegrity",
            FailureInfo::BadRecipientNonce => "badRecipientNonce",
            FailureInfo::TimeNotAvailable => "timeNotAvailable",
            FailureInfo::UnacceptedPolicy => "unacceptedPolicy",
            FailureInfo::UnacceptedExtension => "unacceptedExtension",
            FailureInfo::AddInfoNotAvailable => "addInfoNotAvailable",
            FailureInfo::BadSenderNonce => "badSenderNonce",
            FailureInfo::BadCertTemplate => "badCertTemplate",
            FailureInfo::SignerNotTrusted => "signerNotTrusted",
            FailureInfo::TransactionIdInUse => "transactionIdInUse",
            FailureInfo::UnsupportedVersion => "unsupportedVersion",
            FailureInfo::NotAuthorized => "notAuthorized",
            FailureInfo::SystemUnavail => "systemUnavail",
            FailureInfo::SystemFailure => "systemFailure",
            FailureInfo::DuplicateCertReq => "duplicateCertReq",
        }
    }

    /// The DER BIT STRING with just this bit set (trailing zero bits removed, X.690 §11.2.2).
    pub fn to_bit_string(self) -> crate::Result<BitString> {
        let bit = self as usize;
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        let unused = u8::try_from(7 - bit % 8)
            .map_err(|_| crate::Error::invalid("failInfo", "bit out of range"))?;
        BitString::new(unused, bytes).map_err(crate::Error::Encode)
    }

    /// The bits set in a received failInfo.
    pub fn from_bit_string(bits: &BitString) -> Vec<FailureInfo> {
        FailureInfo::ALL
            .into_iter()
            .filter(|f| bits.bits().nth(*f as usize).unwrap_or(false))
            .collect()
    }
}

impl std::fmt::Display for FailureInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// PKIStatusInfo (RFC 3161 §2.4.2, from RFC 2510).
///
/// ```text
/// PKIStatusInfo ::= SEQUENCE {
///     status        PKIStatus,
///     statusString  PKIFreeText     OPTIONAL,
///     failInfo      PKIFailureInfo  OPTIONAL  }
/// PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PkiStatusInfo<'a> {
    /// Status.
    pub status: PkiStatus,
    /// Free text for a human.
    #[asn1(optional = "true")]
    pub status_string: Option<Vec<Utf8StringRef<'a>>>,
    /// Why the request failed.
    #[asn1(optional = "true")]
    pub fail_info: Option<BitString>,
}

/// TimeStampResp (RFC 3161 §2.4.2), with the token kept as raw DER.
///
/// ```text
/// TimeStampResp ::= SEQUENCE  {
///     status                  PKIStatusInfo,
///     timeStampToken          TimeStampToken     OPTIONAL  }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TimeStampResp<'a> {
    /// The status.
    pub status: PkiStatusInfo<'a>,
    /// The token (a ContentInfo), exactly as received.
    #[asn1(optional = "true")]
    pub time_stamp_token: Option<der::asn1::AnyRef<'a>>,
}

/// QCStatement (RFC 3739 §3.2.6).
///
/// ```text
/// QCStatement ::= SEQUENCE {
///     statementId   QC-STATEMENT.&Id({SupportedStatements}),
///     statementInfo QC-STATEMENT.&Type({SupportedStatements}{@statementId}) OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct QcStatement {
    /// The statement's OID.
    pub statement_id: der::asn1::ObjectIdentifier,
    /// Its information, if the statement has any.
    #[asn1(optional = "true")]
    pub statement_info: Option<Any>,
}

/// SMIMECapability (RFC 8551 §2.5.2): one algorithm the signer can decrypt or verify with.
///
/// ```text
/// SMIMECapability ::= SEQUENCE {
///     capabilityID OBJECT IDENTIFIER,
///     parameters ANY DEFINED BY capabilityID OPTIONAL }
/// SMIMECapabilities ::= SEQUENCE OF SMIMECapability
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SmimeCapability {
    /// The algorithm.
    pub capability_id: der::asn1::ObjectIdentifier,
    /// Its parameters, when it has any.
    #[asn1(optional = "true")]
    pub parameters: Option<Any>,
}

/// An Attribute whose values we keep as raw `Any` (RFC 5652 §5.3), re-exported for callers.
pub type Attribute = x509_cert::attr::Attribute;

/// Builds an attribute with one value.
pub fn attribute(oid: der::asn1::ObjectIdentifier, value: Any) -> crate::Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(crate::Error::Encode)?;
    Ok(Attribute { oid, values })
}
