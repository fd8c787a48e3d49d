//! The ASN.1 of CMS encryption that the `cms` crate (0.2) does not model: AuthEnvelopedData
//! (RFC 5083), GCMParameters (RFC 5084), RSAES-OAEP-params (RFC 4055) and ECC-CMS-SharedInfo
//! (RFC 5753), with the algorithm identifiers they use.

use cms::content_info::CmsVersion;
use cms::enveloped_data::{EncryptedContentInfo, OriginatorInfo, RecipientInfos};
use der::Sequence;
use der::asn1::{ObjectIdentifier as Oid, OctetString};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attributes;

/// id-RSAES-OAEP (RFC 4055 §4.1).
pub const ID_RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
/// id-pSpecified (RFC 4055 §4.1): the label source; only the empty label is accepted.
pub const ID_P_SPECIFIED: Oid = Oid::new_unwrap("1.2.840.113549.1.1.9");

/// dhSinglePass-stdDH-sha1kdf-scheme (RFC 5753 §7.1.4; SEC 1): OpenSSL's default.
pub const STD_DH_SHA1_KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.2");
/// dhSinglePass-cofactorDH-sha1kdf-scheme.
pub const COFACTOR_DH_SHA1_KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.3");
/// dhSinglePass-stdDH-sha224kdf-scheme .. sha512kdf-scheme: 1.3.132.1.11.{0,1,2,3}.
pub const STD_DH_SHA2_KDF: [Oid; 4] = [
    Oid::new_unwrap("1.3.132.1.11.0"),
    Oid::new_unwrap("1.3.132.1.11.1"),
    Oid::new_unwrap("1.3.132.1.11.2"),
    Oid::new_unwrap("1.3.132.1.11.3"),
];
/// dhSinglePass-cofactorDH-sha224kdf-scheme .. sha512kdf-scheme: 1.3.132.1.14.{0,1,2,3}.
/// On the prime curves we support (cofactor 1) they compute the same secret as stdDH.
pub const COFACTOR_DH_SHA2_KDF: [Oid; 4] = [
    Oid::new_unwrap("1.3.132.1.14.0"),
    Oid::new_unwrap("1.3.132.1.14.1"),
    Oid::new_unwrap("1.3.132.1.14.2"),
    Oid::new_unwrap("1.3.132.1.14.3"),
];

/// id-aes128-wrap (RFC 3565).
pub const AES128_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.5");
/// id-aes256-wrap.
pub const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");
/// id-aes192-CBC.
pub const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
/// id-aes192-GCM.
pub const AES192_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.26");

/// AuthEnvelopedData (RFC 5083 §2.1).
///
/// ```text
/// AuthEnvelopedData ::= SEQUENCE {
///   version CMSVersion,
///   originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
///   recipientInfos RecipientInfos,
///   authEncryptedContentInfo EncryptedContentInfo,
///   authAttrs [1] IMPLICIT AuthAttributes OPTIONAL,
///   mac MessageAuthenticationCode,
///   unauthAttrs [2] IMPLICIT UnauthAttributes OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct AuthEnvelopedData {
    pub version: CmsVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<OriginatorInfo>,
    pub recip_infos: RecipientInfos,
    pub auth_encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub auth_attrs: Option<Attributes>,
    pub mac: OctetString,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub unauth_attrs: Option<Attributes>,
}

/// GCMParameters (RFC 5084 §3.2): `aes-ICVlen` defaults to 12; we write 16 and read only 16.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct GcmParameters {
    pub nonce: OctetString,
    #[asn1(default = "default_icv_len")]
    pub icv_len: u8,
}

fn default_icv_len() -> u8 {
    12
}

/// RSAES-OAEP-params (RFC 4055 §4.1); the defaults are SHA-1, MGF1 with SHA-1, and the empty
/// label.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RsaesOaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash_func: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen_func: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub p_source_func: Option<AlgorithmIdentifierOwned>,
}

/// ECC-CMS-SharedInfo (RFC 5753 §7.2): the KDF's SharedInfo.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EccCmsSharedInfo {
    pub key_info: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub entity_u_info: Option<OctetString>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    pub supp_pub_info: OctetString,
}
