//! Keys behind a [`Signer`] trait, and the ring backend for PKCS#8 key files.
//!
//! Signing is the middle step of three (build the bytes, sign, assemble), so that an HSM
//! (PKCS#11), a remote signer or a PDF placeholder fit without special cases. Secret key bytes
//! are read into [`Zeroizing`] buffers, handed to ring, and never logged.

#[cfg(feature = "pkcs11")]
pub mod pkcs11;

use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::oid;
use der::asn1::{BitString, OctetString};
use der::{Any, Decode, Encode, Sequence};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

/// A signature algorithm as it appears in a SignerInfo, with the digest CMS uses beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// ECDSA on P-256 with SHA-256, DER-encoded signature (RFC 5758).
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384, DER-encoded signature (RFC 5758).
    EcdsaP384Sha384,
    /// RSASSA-PKCS1-v1_5 with the given hash (RFC 8017).
    RsaPkcs1(HashAlg),
    /// RSASSA-PSS with the given hash, MGF1 with the same hash, salt as long as the hash.
    RsaPss(HashAlg),
    /// Ed25519 (RFC 8410, RFC 8419); CMS digests with SHA-512.
    Ed25519,
}

/// RSASSA-PSS-params (RFC 8017 Appendix A.2.3).
///
/// ```text
/// RSASSA-PSS-params ::= SEQUENCE {
///     hashAlgorithm      [0] HashAlgorithm      DEFAULT sha1,
///     maskGenAlgorithm   [1] MaskGenAlgorithm   DEFAULT mgf1SHA1,
///     saltLength         [2] INTEGER            DEFAULT 20,
///     trailerField       [3] TrailerField       DEFAULT trailerFieldBC }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RsaPssParams {
    /// hashAlgorithm; absent means SHA-1.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// maskGenAlgorithm; absent means MGF1 with SHA-1.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen_algorithm: Option<AlgorithmIdentifierOwned>,
    /// saltLength; absent means 20.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub salt_length: Option<u32>,
    /// trailerField; absent means 1 (0xBC).
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub trailer_field: Option<u32>,
}

impl SignatureAlgorithm {
    /// The digest algorithm CMS pairs with this signature (SignerInfo.digestAlgorithm).
    pub fn digest(self) -> HashAlg {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => HashAlg::Sha256,
            SignatureAlgorithm::EcdsaP384Sha384 => HashAlg::Sha384,
            SignatureAlgorithm::RsaPkcs1(h) | SignatureAlgorithm::RsaPss(h) => h,
            SignatureAlgorithm::Ed25519 => HashAlg::Sha512,
        }
    }

    /// A short human name, for reports.
    pub fn name(self) -> String {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256".into(),
            SignatureAlgorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384".into(),
            SignatureAlgorithm::RsaPkcs1(h) => format!("rsa-pkcs1-{h}"),
            SignatureAlgorithm::RsaPss(h) => format!("rsa-pss-{h}"),
            SignatureAlgorithm::Ed25519 => "ed25519".into(),
        }
    }

    /// The AlgorithmIdentifier written into SignerInfo.signatureAlgorithm.
    pub fn algorithm_identifier(self) -> Result<AlgorithmIdentifierOwned> {
        let plain = |oid| AlgorithmIdentifierOwned {
            oid,
            parameters: None,
        };
        Ok(match self {
            SignatureAlgorithm::EcdsaP256Sha256 => plain(oid::ECDSA_WITH_SHA256),
            SignatureAlgorithm::EcdsaP384Sha384 => plain(oid::ECDSA_WITH_SHA384),
            // RFC 4055 §5: the parameters of the PKCS#1 v1.5 identifiers are NULL.
            SignatureAlgorithm::RsaPkcs1(h) => AlgorithmIdentifierOwned {
                oid: match h {
                    HashAlg::Sha1 => oid::SHA1_WITH_RSA,
                    HashAlg::Sha256 => oid::SHA256_WITH_RSA,
                    HashAlg::Sha384 => oid::SHA384_WITH_RSA,
                    HashAlg::Sha512 => oid::SHA512_WITH_RSA,
                },
                parameters: Some(Any::null()),
            },
            SignatureAlgorithm::RsaPss(h) => {
                let params = RsaPssParams {
                    hash_algorithm: Some(h.algorithm_identifier()),
                    mask_gen_algorithm: Some(AlgorithmIdentifierOwned {
                        oid: oid::ID_MGF1,
                        parameters: Some(
                            Any::encode_from(&h.algorithm_identifier()).map_err(Error::Encode)?,
                        ),
                    }),
                    salt_length: Some(
                        u32::try_from(h.len())
                            .map_err(|_| Error::invalid("pss salt", "too long"))?,
                    ),
                    trailer_field: None,
                };
                AlgorithmIdentifierOwned {
                    oid: oid::RSASSA_PSS,
                    parameters: Some(Any::encode_from(&params).map_err(Error::Encode)?),
                }
            }
            SignatureAlgorithm::Ed25519 => plain(oid::ID_ED25519),
        })
    }
}

impl std::fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Something that signs: a key file, an HSM, a remote service.
///
/// `sign` receives the exact bytes to sign (for CMS: the DER of the signed attributes as a SET)
/// and hashes them itself, as every backend here does. It may block (an HSM round trip); callers
/// on an async runtime that use slow backends run it on a blocking thread.
pub trait Signer: Send + Sync {
    /// The algorithm this key signs with.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// The public key as it appears in the certificate's subjectPublicKey BIT STRING.
    fn public_key(&self) -> &[u8];
    /// Signs `message`, returning the signature in the form CMS carries (DER for ECDSA).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// Whether a signature takes long enough (RSA, an HSM round trip) that an async server
    /// should run it on a thread of its own rather than inline on a runtime worker.
    fn is_slow(&self) -> bool {
        true
    }
}

/// Which RSA padding a ring RSA key signs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5 (the most widely accepted).
    #[default]
    Pkcs1,
    /// RSASSA-PSS.
    Pss,
}

enum RingKey {
    Ecdsa(signature::EcdsaKeyPair),
    Rsa(signature::RsaKeyPair, RsaPadding),
    Ed25519(signature::Ed25519KeyPair),
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM block.
pub fn private_key_pem(der: &[u8]) -> Result<Zeroizing<String>> {
    der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, der)
        .map(Zeroizing::new)
        .map_err(|e| Error::Encode(e.into()))
}

/// The SubjectPublicKeyInfo (DER) of an ECDSA or Ed25519 key, for a certificate request.
pub fn subject_public_key_info(signer: &dyn Signer) -> Result<Vec<u8>> {
    let (oid_alg, params) = match signer.algorithm() {
        SignatureAlgorithm::EcdsaP256Sha256 => (oid::ID_EC_PUBLIC_KEY, Some(oid::SECP256R1)),
        SignatureAlgorithm::EcdsaP384Sha384 => (oid::ID_EC_PUBLIC_KEY, Some(oid::SECP384R1)),
        SignatureAlgorithm::Ed25519 => (oid::ID_ED25519, None),
        other => {
            return Err(Error::Unsupported {
                what: "key type for a certificate request",
                detail: other.name(),
            });
        }
    };
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oid_alg,
            parameters: params.map(Any::from),
        },
        subject_public_key: BitString::from_bytes(signer.public_key()).map_err(Error::Encode)?,
    };
    to_der(&spki)
}

/// A key held in memory by ring, loaded from PKCS#8 (PEM or DER).
pub struct RingSigner {
    key: RingKey,
    algorithm: SignatureAlgorithm,
    rng: SystemRandom,
}

impl std::fmt::Debug for RingSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material: the algorithm is all a log needs.
        f.debug_struct("RingSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// PrivateKeyInfo / OneAsymmetricKey head (RFC 5958 §2), enough to learn the key's algorithm.
#[derive(Sequence)]
struct PrivateKeyInfo {
    version: u8,
    algorithm: AlgorithmIdentifierOwned,
    private_key: OctetString,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    _attributes: Option<Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    _public_key: Option<BitString>,
}

impl RingSigner {
    /// Generates a new ECDSA P-256 key: the signer and its PKCS#8 DER (to be stored with mode
    /// 0600 by the caller; see [`private_key_pem`]).
    pub fn generate_p256() -> Result<(RingSigner, Zeroizing<Vec<u8>>)> {
        let rng = SystemRandom::new();
        let doc = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .map_err(|_| Error::Key("cannot generate a P-256 key".into()))?;
        let der = Zeroizing::new(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8_der(&der, RsaPadding::Pkcs1)?, der))
    }

    /// Loads a key from the bytes of a PKCS#8 file, PEM (`PRIVATE KEY`, or `RSA PRIVATE KEY`
    /// for PKCS#1) or DER. RSA keys must be 2048 to 4096 bits and sign with SHA-256.
    pub fn from_pkcs8_file_bytes(bytes: &[u8], padding: RsaPadding) -> Result<RingSigner> {
        let der = Zeroizing::new(pem_or_der(bytes)?);
        Self::from_pkcs8_der(&der, padding)
    }

    /// Loads a key from PKCS#8 DER (or PKCS#1 `RSAPrivateKey` DER).
    pub fn from_pkcs8_der(der: &[u8], padding: RsaPadding) -> Result<RingSigner> {
        Self::from_pkcs8_der_with_public_key(der, padding, None)
    }

    /// Loads a key from PKCS#8 DER (or PKCS#1 DER). An EC key whose ECPrivateKey carries no
    /// public key (Java's keytool writes them so; RFC 5915 makes it optional), which ring
    /// cannot load alone, takes `public_key` (its certificate's subjectPublicKey) instead; ring
    /// checks that the two belong together.
    pub fn from_pkcs8_der_with_public_key(
        der: &[u8],
        padding: RsaPadding,
        public_key: Option<&[u8]>,
    ) -> Result<RingSigner> {
        let rng = SystemRandom::new();
        let key_err = |what: &str, e: ring::error::KeyRejected| {
            Error::Key(format!("{what} key rejected: {e}"))
        };
        let info = match PrivateKeyInfo::from_der(der) {
            Ok(info) => info,
            // Not PKCS#8: perhaps a PKCS#1 RSAPrivateKey.
            Err(_) => {
                let pair = signature::RsaKeyPair::from_der(der).map_err(|e| {
                    Error::Key(format!(
                        "not a PKCS#8 or PKCS#1 private key ({e}); convert with `openssl pkcs8 -topk8 -nocrypt`"
                    ))
                })?;
                return Self::rsa(pair, padding, rng);
            }
        };
        let _ = info.version;
        let alg = info.algorithm;
        let (key, algorithm) = if alg.oid == oid::ID_EC_PUBLIC_KEY {
            let curve = alg
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                .ok_or_else(|| Error::Key("EC key without a named curve".into()))?;
            let (signing, algorithm, name) = if curve == oid::SECP256R1 {
                (
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    SignatureAlgorithm::EcdsaP256Sha256,
                    "P-256",
                )
            } else if curve == oid::SECP384R1 {
                (
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    SignatureAlgorithm::EcdsaP384Sha384,
                    "P-384",
                )
            } else {
                return Err(Error::Unsupported {
                    what: "EC curve",
                    detail: curve.to_string(),
                });
            };
            let k = match signature::EcdsaKeyPair::from_pkcs8(signing, der, &rng) {
                Ok(k) => k,
                Err(e) => match (ec_private_key(info.private_key.as_bytes()), public_key) {
                    (Some((scalar, false)), Some(public)) => {
                        signature::EcdsaKeyPair::from_private_key_and_public_key(
                            signing, &scalar, public, &rng,
                        )
                        .map_err(|e| {
                            Error::Key(format!(
                                "{name} key rejected with its certificate's public key: {e} \
                                 (the certificate is not this key's)"
                            ))
                        })?
                    }
                    (Some((_, false)), None) => {
                        return Err(Error::Key(format!(
                            "the {name} key carries no public key (as Java's keytool writes \
                             it): give its certificate too, or add the public key with \
                             `openssl pkey -in KEY -out KEY.pem`"
                        )));
                    }
                    _ => return Err(key_err(name, e)),
                },
            };
            (RingKey::Ecdsa(k), algorithm)
        } else if alg.oid == oid::RSA_ENCRYPTION {
            let pair = signature::RsaKeyPair::from_pkcs8(der).map_err(|e| {
                match e.to_string().as_str() {
                    "TooSmall" => Error::Key(
                        "RSA key smaller than 2048 bits; 2048 to 4096 are accepted".into(),
                    ),
                    "TooLarge" => Error::Key(
                        "RSA key larger than 4096 bits; 2048 to 4096 are accepted".into(),
                    ),
                    _ => key_err("RSA", e),
                }
            })?;
            return Self::rsa(pair, padding, rng);
        } else if alg.oid == oid::ID_ED25519 {
            let k = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|e| key_err("Ed25519", e))?;
            (RingKey::Ed25519(k), SignatureAlgorithm::Ed25519)
        } else {
            return Err(Error::Unsupported {
                what: "key algorithm",
                detail: alg.oid.to_string(),
            });
        };
        Ok(RingSigner {
            key,
            algorithm,
            rng,
        })
    }

    fn rsa(
        pair: signature::RsaKeyPair,
        padding: RsaPadding,
        rng: SystemRandom,
    ) -> Result<RingSigner> {
        let bits = pair.public().modulus_len() * 8;
        if !(2048..=4096).contains(&bits) {
            return Err(Error::Key(format!(
                "RSA key of {bits} bits; 2048 to 4096 are accepted"
            )));
        }
        let algorithm = match padding {
            RsaPadding::Pkcs1 => SignatureAlgorithm::RsaPkcs1(HashAlg::Sha256),
            RsaPadding::Pss => SignatureAlgorithm::RsaPss(HashAlg::Sha256),
        };
        Ok(RingSigner {
            key: RingKey::Rsa(pair, padding),
            algorithm,
            rng,
        })
    }
}

impl Signer for RingSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> &[u8] {
        match &self.key {
            RingKey::Ecdsa(k) => k.public_key().as_ref(),
            RingKey::Rsa(k, _) => k.public_key().as_ref(),
            RingKey::Ed25519(k) => k.public_key().as_ref(),
        }
    }

    fn is_slow(&self) -> bool {
        // ECDSA and Ed25519 sign in tens of microseconds; RSA-2048 takes most of a millisecond.
        matches!(self.key, RingKey::Rsa(..))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let fail = |_: ring::error::Unspecified| Error::Signing("ring refused to sign".into());
        match &self.key {
            RingKey::Ecdsa(k) => Ok(k.sign(&self.rng, message).map_err(fail)?.as_ref().to_vec()),
            RingKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            RingKey::Rsa(k, padding) => {
                let enc: &'static dyn signature::RsaEncoding = match padding {
                    RsaPadding::Pkcs1 => &signature::RSA_PKCS1_SHA256,
                    RsaPadding::Pss => &signature::RSA_PSS_SHA256,
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(enc, &self.rng, message, &mut sig).map_err(fail)?;
                Ok(sig)
            }
        }
    }
}

/// The private scalar of an ECPrivateKey (RFC 5915 §3), kept secret, and whether the
/// structure carries the public key.
///
/// ```text
/// ECPrivateKey ::= SEQUENCE {
///   version        INTEGER { ecPrivkeyVer1(1) },
///   privateKey     OCTET STRING,
///   parameters [0] ECParameters {{ NamedCurve }} OPTIONAL,
///   publicKey  [1] BIT STRING OPTIONAL }
/// ```
fn ec_private_key(der: &[u8]) -> Option<(Zeroizing<Vec<u8>>, bool)> {
    let key = crate::raw::RawTlv::parse(der, "ECPrivateKey").ok()?;
    let fields = key.children("ECPrivateKey").ok()?;
    let scalar = fields.get(1).filter(|f| f.tag == der::Tag::OctetString)?;
    let has_public = fields.iter().any(|f| f.tag == crate::raw::context(1, true));
    Some((Zeroizing::new(scalar.value.to_vec()), has_public))
}

/// Accepts PEM (any label) or DER, returning DER. Used for keys and certificates alike.
pub fn pem_or_der(bytes: &[u8]) -> Result<Vec<u8>> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (_label, der) = der::pem::decode_vec(trimmed).map_err(|e| Error::Decode {
            what: "PEM block",
            source: e.into(),
        })?;
        Ok(der)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Encodes a value to DER, mapping the (internal) failure to [`Error::Encode`].
pub(crate) fn to_der<T: Encode>(value: &T) -> Result<Vec<u8>> {
    value.to_der().map_err(Error::Encode)
}
