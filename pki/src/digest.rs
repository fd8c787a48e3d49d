//! Hash algorithms of message imprints and CMS digests.

use crate::oid;
use const_oid::ObjectIdentifier;
use der::asn1::AnyRef;
use spki::AlgorithmIdentifierOwned;

/// A hash algorithm Sigillum can compute with ring.
///
/// SHA-1 exists only so that the verifier can check and report old tokens; the authority refuses
/// it (see `tsa` request limits) and reports name it weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// SHA-1: weak, verification only.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Every algorithm, strongest last.
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => oid::ID_SHA1,
            HashAlg::Sha256 => oid::ID_SHA256,
            HashAlg::Sha384 => oid::ID_SHA384,
            HashAlg::Sha512 => oid::ID_SHA512,
        }
    }

    /// Looks an algorithm up by OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|h| h.oid() == *oid)
    }

    /// Looks an algorithm up by its lowercase name (`sha256`, `sha-256`, `SHA256`).
    pub fn from_name(name: &str) -> Option<HashAlg> {
        match name.to_ascii_lowercase().replace('-', "").as_str() {
            "sha1" => Some(HashAlg::Sha1),
            "sha256" => Some(HashAlg::Sha256),
            "sha384" => Some(HashAlg::Sha384),
            "sha512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// Lowercase name, as in configuration files and reports.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Output length in bytes.
    pub fn len(self) -> usize {
        self.ring().output_len()
    }

    /// Always false: a digest is never empty (here for clippy's `len_without_is_empty`).
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether the algorithm is too weak to trust for new evidence ([`oid::hash_strength`]).
    pub fn is_weak(self) -> bool {
        oid::hash_strength(&self.oid()) != oid::HashStrength::Sound
    }

    /// The ring algorithm.
    pub fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            HashAlg::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &ring::digest::SHA256,
            HashAlg::Sha384 => &ring::digest::SHA384,
            HashAlg::Sha512 => &ring::digest::SHA512,
        }
    }

    /// Hashes `data` in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.ring(), data).as_ref().to_vec()
    }

    /// A streaming hasher, for files.
    pub fn hasher(self) -> ring::digest::Context {
        ring::digest::Context::new(self.ring())
    }

    /// AlgorithmIdentifier with absent parameters, as RFC 5754 §2 prefers for SHA-2.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }
}

impl std::fmt::Display for HashAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether AlgorithmIdentifier parameters are absent or NULL: the two forms RFC 5754 allows
/// for hash algorithms (openssl writes NULL).
pub fn params_absent_or_null(params: Option<&der::Any>) -> bool {
    match params {
        None => true,
        Some(any) => AnyRef::from(any).is_null(),
    }
}
