//! CMS encryption: EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083), for S/MIME
//! encrypted mail (RFC 8551).
//!
//! What we write ([`encrypt`]):
//!
//! | part | choice |
//! | --- | --- |
//! | content | AES-256-GCM in AuthEnvelopedData (RFC 5084; 12-byte nonce, 16-byte tag), or AES-256-CBC in EnvelopedData for older clients |
//! | RSA recipient | RSAES-OAEP, SHA-256 and MGF1-SHA-256, empty label (RFC 4055, RFC 8017) |
//! | EC recipient | ephemeral-static ECDH, dhSinglePass-stdDH-sha256kdf-scheme (P-256) or -sha384kdf (P-384), AES-256 key wrap (RFC 5753, RFC 3394) |
//! | recipient id | issuerAndSerialNumber, as every client reads |
//!
//! What we read ([`decrypt`]), besides that: AES-128/192/256 in CBC or GCM (16-byte tags only),
//! RSAES-PKCS1-v1_5 key transport (what `openssl cms -encrypt` and Python's `cryptography`
//! write by default), OAEP with SHA-1/256/384/512, the SHA-1 to SHA-512 X9.63 KDFs of RFC 5753
//! in their standard and cofactor forms (`openssl cms` defaults to SHA-1), AES-128/256 key
//! wrap, subjectKeyIdentifier recipients, and BER (indefinite lengths, a chunked
//! encryptedContent, as `openssl cms -stream` writes).
//!
//! Decryption failures after parsing are one error, [`Error::NotDecryptable`], whatever the
//! cause (wrong key, altered ciphertext or tag, bad padding, a key-wrap integrity failure): a
//! key transport that fails yields a random content-encryption key and the work goes on, so
//! neither the error nor the path taken tells a PKCS#1 v1.5 padding failure from a bad content
//! (RFC 3218 §2.3.2; the Bleichenbacher and Marvin attacks). No plaintext is returned unless
//! the GCM tag verified; CBC has no tag, which is why GCM is the default.
//!
//! The primitives are aws-lc-rs's (RSA, ECDH, AES-GCM, AES-CBC, AES key wrap) and RustCrypto's
//! X9.63 KDF; none is written here. Recipient keys are used through [`Decrypter`], so a key in
//! an HSM decrypts through the same code.

mod asn1;
mod decrypt;
mod encrypt;
mod keys;

pub use decrypt::{EnvelopeInfo, EnvelopeKind, RecipientRef, decrypt, describe};
pub use encrypt::{ContentEncryption, Recipient, encrypt};
pub use keys::{Decrypter, Failed, KeyKind, RsaTransport, SoftwareDecrypter};

use crate::error::{Error, Result};
use crate::oid;
use crate::raw::RawTlv;
use asn1::{AuthEnvelopedData, EccCmsSharedInfo, GcmParameters, RsaesOaepParams};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::key_wrap::{self, KeyEncryptionKey, KeyWrap};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo,
    KeyTransRecipientInfo, OriginatorIdentifierOrKey, OriginatorPublicKey, RecipientEncryptedKey,
    RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use der::asn1::{BitString, ObjectIdentifier as Oid, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

/// Most RecipientInfos a message may carry: each costs a decode, and the SET's sort in `der` is
/// quadratic (see [`crate::limits`]). Mailing lists of thousands encrypt per recipient.
pub const MAX_RECIPIENTS: usize = 1024;

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    crate::rand::fill(&mut out, "a content key, IV or nonce")?;
    Ok(out)
}

fn alg(oid: Oid, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

fn any_of<T: der::EncodeValue + der::Tagged>(value: &T) -> Result<Any> {
    Any::encode_from(value).map_err(Error::Encode)
}

/// The hash of an X9.63 KDF (RFC 5753 names SHA-1 and the SHA-2 family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KdfHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The key-encryption key of RFC 5753 §3.1.2: X9.63 KDF over Z with ECC-CMS-SharedInfo.
fn derive_kek(
    hash: KdfHash,
    z: &[u8],
    wrap: &AlgorithmIdentifierOwned,
    ukm: Option<&OctetString>,
    kek_len: usize,
) -> std::result::Result<Zeroizing<Vec<u8>>, Failed> {
    use ansi_x963_kdf::derive_key_into as kdf;
    let bits = u32::try_from(kek_len * 8).map_err(|_| Failed)?;
    let shared_info = EccCmsSharedInfo {
        key_info: wrap.clone(),
        entity_u_info: ukm.cloned(),
        supp_pub_info: OctetString::new(bits.to_be_bytes().to_vec()).map_err(|_| Failed)?,
    }
    .to_der()
    .map_err(|_| Failed)?;
    let mut kek = Zeroizing::new(vec![0u8; kek_len]);
    let derived = match hash {
        KdfHash::Sha1 => kdf::<sha1_kdf::Sha1>(z, &shared_info, &mut kek),
        KdfHash::Sha224 => kdf::<sha2_kdf::Sha224>(z, &shared_info, &mut kek),
        KdfHash::Sha256 => kdf::<sha2_kdf::Sha256>(z, &shared_info, &mut kek),
        KdfHash::Sha384 => kdf::<sha2_kdf::Sha384>(z, &shared_info, &mut kek),
        KdfHash::Sha512 => kdf::<sha2_kdf::Sha512>(z, &shared_info, &mut kek),
    };
    derived.map_err(|_| Failed)?;
    Ok(kek)
}

#[cfg(test)]
mod tests;
