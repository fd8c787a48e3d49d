//! Password-based MACs, one implementation each, for every place that meets them: PBMAC1
//! (RFC 8018 §7.1; PKCS#12 by RFC 9579, CMP by RFC 9481 §6.1.1) and CMP's PasswordBasedMac
//! (RFC 4210 §5.1.3.1, what `openssl cmp -secret` sends). ring derives the keys (PBKDF2, the
//! iterated one-way function) and computes and compares the HMACs in constant time. Every call
//! names its cap on the iteration count: a key file the user chose may take long
//! ([`crate::keyfile::MAX_ITERATIONS`]); a message from the network may not
//! ([`NETWORK_MAX_ITERATIONS`]), or one request could buy seconds of the server's CPU.

use crate::error::{Error, Result};
use der::asn1::{ObjectIdentifier as Oid, OctetString};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use zeroize::Zeroizing;

/// id-PBMAC1 (RFC 8018 Appendix A.5).
pub const ID_PBMAC1: Oid = Oid::new_unwrap("1.2.840.113549.1.5.14");

/// id-PasswordBasedMac (RFC 4210 §5.1.3.1, Entrust's arc).
pub const ID_PASSWORD_BASED_MAC: Oid = Oid::new_unwrap("1.2.840.113533.7.66.13");

/// Most key-derivation iterations a MAC on a network message may ask for: `openssl cmp` uses
/// 500 (PasswordBasedMac), RFC 9481 §6.1.1 recommends PBKDF2 with at least 10,000; 100,000
/// costs a few milliseconds of SHA-256.
pub const NETWORK_MAX_ITERATIONS: u32 = 100_000;

fn check_iterations(iterations: u32, max: u32, what: &'static str) -> Result<()> {
    if iterations == 0 || iterations > max {
        return Err(Error::invalid(
            what,
            format!("{iterations} key-derivation iterations (1 to {max} are accepted)"),
        ));
    }
    Ok(())
}

/// Longest PBMAC1 key (PBKDF2 keyLength) accepted: an HMAC key longer than the hash's block
/// (128 bytes for SHA-512) is hashed down anyway, so nothing honest asks for more.
const MAX_MAC_KEY_LEN: usize = 128;

/// PBMAC1-params (RFC 8018 Appendix A.5).
///
/// ```text
/// PBMAC1-params ::= SEQUENCE {
///     keyDerivationFunc AlgorithmIdentifier {{PBMAC1-KDFs}},
///     messageAuthScheme AlgorithmIdentifier {{PBMAC1-MACs}} }
/// ```
#[derive(Sequence)]
struct Pbmac1Params<'a> {
    key_derivation_func: pkcs5::pbes2::Kdf<'a>,
    message_auth_scheme: AlgorithmIdentifierRef<'a>,
}

/// PBMParameter (RFC 4210 §5.1.3.1).
///
/// ```text
/// PBMParameter ::= SEQUENCE {
///     salt                OCTET STRING,
///     owf                 AlgorithmIdentifier,
///     iterationCount      INTEGER,
///     mac                 AlgorithmIdentifier }
/// ```
#[derive(Clone, Debug, Sequence)]
pub struct PbmParameter {
    /// The salt.
    pub salt: OctetString,
    /// The one-way function iterated over password and salt (SHA-256, ...).
    pub owf: AlgorithmIdentifierOwned,
    /// How often it is applied.
    pub iteration_count: u32,
    /// The MAC keyed with the result (HMAC-SHA1, HMAC-SHA256, ...).
    pub mac: AlgorithmIdentifierOwned,
}

/// The HMAC an OID names: the PBKDF2 PRF OIDs (hmacWithSHA*, RFC 8018) and, for
/// PasswordBasedMac, hmac-sha1 (RFC 2104 in IPsec's arc, what openssl sends).
fn hmac(oid: &Oid) -> Option<ring::hmac::Algorithm> {
    use pkcs5::pbes2::Pbkdf2Prf;
    const HMAC_SHA1_IPSEC: Oid = Oid::new_unwrap("1.3.6.1.5.5.8.1.2");
    [
        (
            Pbkdf2Prf::HmacWithSha1.oid(),
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        ),
        (HMAC_SHA1_IPSEC, ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        (Pbkdf2Prf::HmacWithSha256.oid(), ring::hmac::HMAC_SHA256),
        (Pbkdf2Prf::HmacWithSha384.oid(), ring::hmac::HMAC_SHA384),
        (Pbkdf2Prf::HmacWithSha512.oid(), ring::hmac::HMAC_SHA512),
    ]
    .into_iter()
    .find_map(|(o, h)| (o == *oid).then_some(h))
}

/// The PBMAC1 key for `password` under `params_der` (PBMAC1-params DER), and its HMAC.
fn pbmac1_key(params_der: &[u8], password: &[u8], max: u32) -> Result<ring::hmac::Key> {
    const W: &str = "PBMAC1 parameters";
    let params = Pbmac1Params::from_der(params_der).map_err(Error::decode(W))?;
    let Some(pbkdf2) = params.key_derivation_func.pbkdf2() else {
        return Err(Error::Unsupported {
            what: "PBMAC1 key derivation",
            detail: params.key_derivation_func.oid().to_string(),
        });
    };
    check_iterations(pbkdf2.iteration_count, max, W)?;
    let iterations = std::num::NonZeroU32::new(pbkdf2.iteration_count)
        .ok_or_else(|| Error::invalid(W, "zero iterations"))?;
    // RFC 9579 §3 and RFC 9481 §6.1.1: keyLength MUST be present.
    let key_len = usize::from(pbkdf2.key_length.unwrap_or(0));
    if key_len == 0 || key_len > MAX_MAC_KEY_LEN {
        return Err(Error::invalid(
            W,
            format!("keyLength {key_len} (1 to {MAX_MAC_KEY_LEN} are accepted)"),
        ));
    }
    use pkcs5::pbes2::Pbkdf2Prf;
    let prf = match pbkdf2.prf {
        Pbkdf2Prf::HmacWithSha1 => ring::pbkdf2::PBKDF2_HMAC_SHA1,
        Pbkdf2Prf::HmacWithSha256 => ring::pbkdf2::PBKDF2_HMAC_SHA256,
        Pbkdf2Prf::HmacWithSha384 => ring::pbkdf2::PBKDF2_HMAC_SHA384,
        Pbkdf2Prf::HmacWithSha512 => ring::pbkdf2::PBKDF2_HMAC_SHA512,
        other => {
            return Err(Error::Unsupported {
                what: "PBMAC1 PRF",
                detail: other.oid().to_string(),
            });
        }
    };
    let mac_oid = params.message_auth_scheme.oid;
    let hmac = hmac(&mac_oid).ok_or_else(|| Error::Unsupported {
        what: "PBMAC1 MAC",
        detail: mac_oid.to_string(),
    })?;
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    ring::pbkdf2::derive(prf, iterations, pbkdf2.salt, password, &mut key);
    Ok(ring::hmac::Key::new(hmac, &key))
}

/// The PasswordBasedMac key: the one-way function over password ‖ salt, applied
/// iterationCount times (RFC 4210 §5.1.3.1), keying the named HMAC.
fn pbm_key(params_der: &[u8], password: &[u8], max: u32) -> Result<ring::hmac::Key> {
    const W: &str = "PBMParameter";
    let p = PbmParameter::from_der(params_der).map_err(Error::decode(W))?;
    check_iterations(p.iteration_count, max, W)?;
    let owf = crate::digest::HashAlg::from_oid(&p.owf.oid).ok_or_else(|| Error::Unsupported {
        what: "PasswordBasedMac one-way function",
        detail: p.owf.oid.to_string(),
    })?;
    let hmac = hmac(&p.mac.oid).ok_or_else(|| Error::Unsupported {
        what: "PasswordBasedMac MAC",
        detail: p.mac.oid.to_string(),
    })?;
    let mut h = owf.hasher();
    h.update(password);
    h.update(p.salt.as_bytes());
    let mut key = Zeroizing::new(h.finish().as_ref().to_vec());
    for _ in 1..p.iteration_count {
        *key = owf.digest(&key);
    }
    Ok(ring::hmac::Key::new(hmac, &key))
}

/// The HMAC key `algorithm` (PBMAC1 or PasswordBasedMac, with its parameters) derives from
/// `password`, with at most `max_iterations`.
fn key(
    algorithm: &AlgorithmIdentifierOwned,
    password: &[u8],
    max_iterations: u32,
) -> Result<ring::hmac::Key> {
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or_else(|| Error::invalid("password-based MAC", "no parameters"))?
        .to_der()
        .map_err(Error::Encode)?;
    match algorithm.oid {
        ID_PBMAC1 => pbmac1_key(&params, password, max_iterations),
        ID_PASSWORD_BASED_MAC => pbm_key(&params, password, max_iterations),
        other => Err(Error::Unsupported {
            what: "password-based MAC",
            detail: crate::oid::display_name(&other),
        }),
    }
}

/// Whether `expected` is the MAC `algorithm` (PBMAC1 or PasswordBasedMac) computes over
/// `content` under `password`, with at most `max_iterations`. Missing, malformed or unsupported
/// parameters are errors; a wrong password or changed content is `Ok(false)`.
pub fn verify(
    algorithm: &AlgorithmIdentifierOwned,
    content: &[u8],
    expected: &[u8],
    password: &[u8],
    max_iterations: u32,
) -> Result<bool> {
    let key = key(algorithm, password, max_iterations)?;
    Ok(ring::hmac::verify(&key, content, expected).is_ok())
}

/// PBMAC1 parameters for a new message (RFC 9481 §6.1.1): PBKDF2 with HMAC-SHA256, a fresh
/// 16-byte salt, `iterations`, a 32-byte key, and HMAC-SHA256 as the MAC.
pub fn new_pbmac1(iterations: u32) -> Result<AlgorithmIdentifierOwned> {
    check_iterations(iterations, NETWORK_MAX_ITERATIONS, "PBMAC1 parameters")?;
    let salt = crate::rand::array::<16>("a PBMAC1 salt")?;
    let hmac_sha256 = AlgorithmIdentifierRef {
        oid: pkcs5::pbes2::Pbkdf2Prf::HmacWithSha256.oid(),
        parameters: Some(der::asn1::AnyRef::NULL),
    };
    let params = Pbmac1Params {
        key_derivation_func: pkcs5::pbes2::Kdf::Pbkdf2(pkcs5::pbes2::Pbkdf2Params {
            salt: &salt,
            iteration_count: iterations,
            key_length: Some(32),
            prf: pkcs5::pbes2::Pbkdf2Prf::HmacWithSha256,
        }),
        message_auth_scheme: hmac_sha256,
    };
    let der = params.to_der().map_err(Error::Encode)?;
    Ok(AlgorithmIdentifierOwned {
        oid: ID_PBMAC1,
        parameters: Some(der::Any::from_der(&der).map_err(Error::decode("PBMAC1 parameters"))?),
    })
}

/// The MAC `algorithm` computes over `content` under `password` (to protect a reply with the
/// request's parameters, RFC 4210 §5.1.3.1; our own parameters stay under
/// [`NETWORK_MAX_ITERATIONS`]).
pub fn mac(
    algorithm: &AlgorithmIdentifierOwned,
    content: &[u8],
    password: &[u8],
) -> Result<Vec<u8>> {
    let key = key(algorithm, password, NETWORK_MAX_ITERATIONS)?;
    Ok(ring::hmac::sign(&key, content).as_ref().to_vec())
}
