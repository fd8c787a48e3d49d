//! The recipient's side of key management: the [`Decrypter`] trait (beside [`crate::signer::Signer`],
//! so that a key in an HSM can decrypt without the rest changing) and its software backend over
//! aws-lc-rs.

use crate::error::{Error, Result};
use crate::oid;
use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey,
};
use der::Decode;
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

/// The kind of a recipient key, as far as encryption cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA: key transport (RSAES-OAEP, or PKCS#1 v1.5 to read older writers).
    Rsa,
    /// ECDH on NIST P-256.
    EcP256,
    /// ECDH on NIST P-384.
    EcP384,
}

impl KeyKind {
    /// The kind of the key in a SubjectPublicKeyInfo, or why it cannot take encrypted mail.
    pub fn of_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<KeyKind> {
        let alg = &spki.algorithm;
        if alg.oid == oid::RSA_ENCRYPTION {
            return Ok(KeyKind::Rsa);
        }
        if alg.oid == oid::ID_EC_PUBLIC_KEY {
            let curve = alg
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
            return match curve {
                Some(c) if c == oid::SECP256R1 => Ok(KeyKind::EcP256),
                Some(c) if c == oid::SECP384R1 => Ok(KeyKind::EcP384),
                Some(c) => Err(Error::Unsupported {
                    what: "recipient key curve",
                    detail: oid::display_name(&c),
                }),
                None => Err(Error::Unsupported {
                    what: "recipient key curve",
                    detail: "EC key without a named curve".into(),
                }),
            };
        }
        Err(Error::Unsupported {
            what: "recipient key algorithm",
            detail: format!(
                "{} (encryption needs an RSA or EC P-256/P-384 key)",
                oid::display_name(&alg.oid)
            ),
        })
    }

    pub(crate) fn agreement(self) -> Option<&'static agreement::Algorithm> {
        match self {
            KeyKind::Rsa => None,
            KeyKind::EcP256 => Some(&agreement::ECDH_P256),
            KeyKind::EcP384 => Some(&agreement::ECDH_P384),
        }
    }

    /// The name a person reads.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
        }
    }
}

/// RSA key transport schemes a recipient may be asked to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaTransport {
    /// rsaEncryption: RSAES-PKCS1-v1_5 (what `openssl cms -encrypt` and Python's
    /// `cryptography` write by default).
    Pkcs1v15,
    /// RSAES-OAEP with the same hash for the label and MGF1: SHA-1 (the parameters'
    /// default), -256, -384 or -512; the empty label.
    Oaep(crate::HashAlg),
}

impl std::fmt::Display for RsaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaTransport::Pkcs1v15 => f.write_str("RSAES-PKCS1-v1_5"),
            RsaTransport::Oaep(h) => write!(f, "RSAES-OAEP with {}", h.name()),
        }
    }
}

/// Opaque failure of a private-key operation. It carries nothing on purpose: a decryption
/// oracle must learn one bit at most, and not even that (see [`super::decrypt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

/// A private key that can undo key transport or key agreement for one recipient.
///
/// Implemented in software by [`SoftwareDecrypter`]; an HSM backend implements the same two
/// operations (CKM_RSA_PKCS_OAEP / CKM_RSA_PKCS, CKM_ECDH1_DERIVE) and nothing else changes.
pub trait Decrypter: Send + Sync {
    /// The key's kind.
    fn kind(&self) -> KeyKind;
    /// The public key as it sits in a certificate's subjectPublicKey BIT STRING (RSAPublicKey
    /// DER, or the uncompressed EC point), to match certificates and recipients.
    fn public_key(&self) -> &[u8];
    /// Whether the key can undo `scheme` at all (a token may lack a mechanism or its
    /// parameters: SoftHSM2 does OAEP only with SHA-1); the reason when not. Asked before
    /// [`Decrypter::rsa_decrypt`], it depends on nothing secret.
    fn supports(&self, scheme: RsaTransport) -> std::result::Result<(), String> {
        let _ = scheme;
        Ok(())
    }
    /// RSA: decrypts an encryptedKey.
    fn rsa_decrypt(
        &self,
        scheme: RsaTransport,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Failed>;
    /// EC: the raw ECDH shared secret (the x-coordinate) with the originator's public point.
    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failed>;
}

enum Inner {
    Rsa(PrivateDecryptingKey),
    Ec(agreement::PrivateKey),
}

/// A [`Decrypter`] over a PKCS#8 key in memory (aws-lc-rs, constant-time RSA).
pub struct SoftwareDecrypter {
    kind: KeyKind,
    public_key: Vec<u8>,
    inner: Inner,
}

impl std::fmt::Debug for SoftwareDecrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareDecrypter")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl SoftwareDecrypter {
    /// Loads a PKCS#8 PrivateKeyInfo (DER): RSA, or EC on P-256 or P-384.
    pub fn from_pkcs8_der(pkcs8: &[u8]) -> Result<SoftwareDecrypter> {
        let info = crate::raw::RawTlv::parse(pkcs8, "private key")?;
        let fields = info.children("private key")?;
        let alg: spki::AlgorithmIdentifierRef<'_> = fields
            .get(1)
            .ok_or_else(|| Error::invalid("private key", "no algorithm"))?
            .decode("private key algorithm")?;
        let spki_like = SubjectPublicKeyInfoRef {
            algorithm: alg,
            subject_public_key: der::asn1::BitStringRef::from_bytes(&[])
                .map_err(Error::decode("private key"))?,
        };
        let kind = KeyKind::of_spki(&spki_like)?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            Error::Key(format!("the {} key does not load: {e}", kind.name()))
        };
        let (public_key, inner) = match kind.agreement() {
            None => {
                let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(rejected)?;
                let spki = key
                    .public_key()
                    .as_der()
                    .map_err(|_| Error::Key("cannot encode the RSA public key".into()))?;
                (subject_public_key_bits(spki.as_ref())?, Inner::Rsa(key))
            }
            Some(alg) => {
                let key =
                    agreement::PrivateKey::from_private_key_der(alg, pkcs8).map_err(rejected)?;
                let public = key
                    .compute_public_key()
                    .map_err(|_| Error::Key("cannot compute the EC public key".into()))?;
                (public.as_ref().to_vec(), Inner::Ec(key))
            }
        };
        Ok(SoftwareDecrypter {
            kind,
            public_key,
            inner,
        })
    }
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo DER.
pub(crate) fn subject_public_key_bits(spki: &[u8]) -> Result<Vec<u8>> {
    let info = SubjectPublicKeyInfoRef::from_der(spki).map_err(Error::decode("public key"))?;
    Ok(info.subject_public_key.raw_bytes().to_vec())
}

impl Decrypter for SoftwareDecrypter {
    fn kind(&self) -> KeyKind {
        self.kind
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn rsa_decrypt(
        &self,
        scheme: RsaTransport,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Failed> {
        let Inner::Rsa(key) = &self.inner else {
            return Err(Failed);
        };
        let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
        let n = match scheme {
            RsaTransport::Pkcs1v15 => {
                let key = Pkcs1PrivateDecryptingKey::new(key.clone()).map_err(|_| Failed)?;
                key.decrypt(ciphertext, &mut out).map_err(|_| Failed)?.len()
            }
            RsaTransport::Oaep(hash) => {
                let alg = match hash {
                    crate::HashAlg::Sha1 => &OAEP_SHA1_MGF1SHA1,
                    crate::HashAlg::Sha256 => &OAEP_SHA256_MGF1SHA256,
                    crate::HashAlg::Sha384 => &OAEP_SHA384_MGF1SHA384,
                    crate::HashAlg::Sha512 => &OAEP_SHA512_MGF1SHA512,
                };
                let key = OaepPrivateDecryptingKey::new(key.clone()).map_err(|_| Failed)?;
                key.decrypt(alg, ciphertext, &mut out, None)
                    .map_err(|_| Failed)?
                    .len()
            }
        };
        out.truncate(n);
        Ok(out)
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failed> {
        let Inner::Ec(key) = &self.inner else {
            return Err(Failed);
        };
        let peer = agreement::UnparsedPublicKey::new(key.algorithm(), peer_point);
        agreement::agree(key, peer, Failed, |z| Ok(Zeroizing::new(z.to_vec())))
    }
}
