//! Password-based encryption and MACs of key files: PBES2 (through `pkcs5`), the PKCS#12 PBE
//! schemes (the `pkcs12` KDF keying `des`/`rc2` in `cbc` mode), and the PFX MAC (the `pkcs12`
//! KDF or PBKDF2 keying ring's HMAC). Iteration counts are capped at [`MAX_ITERATIONS`].

use super::{MAX_ITERATIONS, PKCS12};
use crate::error::{Error, Result};
use crate::raw::RawTlv;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, InnerIvInit, KeyIvInit};
use der::Decode;
use der::asn1::ObjectIdentifier as Oid;
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use zeroize::Zeroizing;

use crate::pbmac::ID_PBMAC1;

/// The password in the two encodings the schemes use. OpenSSL also tries an empty password
/// as no password at all (zero bytes rather than a lone UTF-16 terminator); so do we.
pub(super) struct Passwords {
    /// UTF-8, for PBES2 and PBMAC1 (RFC 8018 leaves the encoding to the application; OpenSSL
    /// passes the bytes typed).
    utf8: Zeroizing<Vec<u8>>,
    /// UTF-16 big-endian with two zero octets at the end, for the PKCS#12 KDF
    /// (RFC 7292 Appendix B.1), as candidates in the order to try.
    pub(super) pkcs12: Vec<Zeroizing<Vec<u8>>>,
}

impl Passwords {
    pub(super) fn new(password: &str) -> Passwords {
        let mut bmp = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
        for unit in password.encode_utf16().chain([0]) {
            bmp.extend_from_slice(&unit.to_be_bytes());
        }
        let mut pkcs12 = vec![bmp];
        if password.is_empty() {
            pkcs12.push(Zeroizing::new(Vec::new()));
        }
        Passwords {
            utf8: Zeroizing::new(password.as_bytes().to_vec()),
            pkcs12,
        }
    }
}

/// The PKCS#12 PBE schemes (RFC 7292 Appendix C), all with SHA-1 in the KDF.
#[derive(Clone, Copy)]
enum LegacyPbe {
    TripleDes3Key,
    TripleDes2Key,
    Rc2_128,
    Rc2_40,
}

impl LegacyPbe {
    fn from_oid(oid: Oid) -> Option<LegacyPbe> {
        Some(match oid {
            pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => LegacyPbe::TripleDes3Key,
            pkcs12::PKCS_12_PBE_WITH_SHAAND2_KEY_TRIPLE_DES_CBC => LegacyPbe::TripleDes2Key,
            pkcs12::PKCS_12_PBE_WITH_SHAAND128_BIT_RC2_CBC => LegacyPbe::Rc2_128,
            pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => LegacyPbe::Rc2_40,
            _ => return None,
        })
    }

    fn key_len(self) -> usize {
        match self {
            LegacyPbe::TripleDes3Key => 24,
            LegacyPbe::TripleDes2Key | LegacyPbe::Rc2_128 => 16,
            LegacyPbe::Rc2_40 => 5,
        }
    }

    /// Decrypts `buf` in place (CBC, PKCS#7 padding), returning the plaintext length.
    fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize> {
        // Key and IV lengths are ours (key_len, 8): a mismatch is a bug here, not bad input.
        let bad_length = |_: cbc::cipher::InvalidLength| {
            Error::invalid("PKCS#12 legacy encryption", "key or IV length")
        };
        let plain = match self {
            LegacyPbe::TripleDes3Key => cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv)
                .map_err(bad_length)?
                .decrypt_padded_mut::<Pkcs7>(buf),
            LegacyPbe::TripleDes2Key => cbc::Decryptor::<des::TdesEde2>::new_from_slices(key, iv)
                .map_err(bad_length)?
                .decrypt_padded_mut::<Pkcs7>(buf),
            LegacyPbe::Rc2_128 | LegacyPbe::Rc2_40 => {
                let bits = key.len() * 8;
                cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(
                    rc2::Rc2::new_with_eff_key_len(key, bits),
                    iv,
                )
                .map_err(bad_length)?
                .decrypt_padded_mut::<Pkcs7>(buf)
            }
        };
        // UnpadError carries nothing: bad padding is what a wrong key gives.
        plain
            .map(<[u8]>::len)
            .map_err(|_| Error::WrongPassword { what: PKCS12 })
    }
}

/// Decrypts `ciphertext` with the password-based scheme in the AlgorithmIdentifier `algorithm`.
/// `pkcs12_password` is the PKCS#12-KDF password form the MAC verified with, if any.
pub(super) fn decrypt(
    algorithm: &RawTlv<'_>,
    ciphertext: &[u8],
    passwords: &Passwords,
    pkcs12_password: Option<&[u8]>,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let oid: Oid = match algorithm.children(what)?.first() {
        Some(oid) => oid.decode(what)?,
        None => return Err(Error::invalid(what, "empty AlgorithmIdentifier")),
    };
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    if oid == pkcs5::pbes2::PBES2_OID {
        let scheme = pkcs5::EncryptionScheme::from_der(algorithm.full)
            .map_err(Error::decode("PBES2 parameters"))?;
        let Some(params) = scheme.pbes2() else {
            return Err(Error::invalid(what, "PBES2 without PBES2 parameters"));
        };
        match params.kdf.pbkdf2() {
            Some(pbkdf2) => check_iterations(pbkdf2.iteration_count, what)?,
            // scrypt's cost parameters can ask for gigabytes; no PKCS#12 writer uses it.
            None => {
                return Err(Error::Unsupported {
                    what: "key derivation",
                    detail: format!("{} (only PBKDF2 is read)", params.kdf.oid()),
                });
            }
        }
        let len = params
            .decrypt_in_place(&passwords.utf8[..], &mut buf)
            .map_err(|e| pkcs5_error(e, what))?
            .len();
        buf.truncate(len);
        return Ok(buf);
    }
    let Some(scheme) = LegacyPbe::from_oid(oid) else {
        return Err(Error::Unsupported {
            what: "key file encryption",
            detail: crate::oid::display_name(&oid),
        });
    };
    let params = match algorithm.children(what)?.get(1) {
        Some(p) => p.decode::<pkcs12::pbe_params::Pkcs12PbeParams>("pkcs-12PbeParams")?,
        None => return Err(Error::invalid(what, "PKCS#12 PBE without parameters")),
    };
    let iterations = positive_iterations(params.iterations, what)?;
    let salt = params.salt.as_bytes();
    let candidates: Vec<&[u8]> = match pkcs12_password {
        Some(verified) => vec![verified],
        None => passwords.pkcs12.iter().map(|p| &p[..]).collect(),
    };
    let mut last = Error::WrongPassword { what };
    for password in candidates {
        let key = Zeroizing::new(derive_key::<sha1::Sha1>(
            password,
            salt,
            Pkcs12KeyType::EncryptionKey,
            iterations,
            scheme.key_len(),
        ));
        let iv = derive_key::<sha1::Sha1>(password, salt, Pkcs12KeyType::Iv, iterations, 8);
        let mut attempt = buf.clone();
        match scheme.decrypt(&key, &iv, &mut attempt) {
            Ok(len) => {
                attempt.truncate(len);
                return Ok(attempt);
            }
            Err(e) => last = e,
        }
    }
    Err(match last {
        Error::WrongPassword { .. } => Error::WrongPassword { what },
        other => other,
    })
}

/// pkcs5's error (no `std::error::Error`, so it cannot be a source): what it names goes into
/// ours.
fn pkcs5_error(e: pkcs5::Error, what: &'static str) -> Error {
    match e {
        // pkcs5 0.7 reports a padding failure on decryption as EncryptFailed.
        pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed => Error::WrongPassword { what },
        pkcs5::Error::UnsupportedAlgorithm { oid } => Error::Unsupported {
            what: "key file encryption",
            detail: crate::oid::display_name(&oid),
        },
        other => Error::invalid(what, other.to_string()),
    }
}

fn check_iterations(iterations: u32, what: &'static str) -> Result<()> {
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(Error::invalid(
            what,
            format!("{iterations} key-derivation iterations (1 to {MAX_ITERATIONS} are accepted)"),
        ));
    }
    Ok(())
}

/// The PKCS#12 types count iterations in an `i32`.
fn positive_iterations(iterations: i32, what: &'static str) -> Result<i32> {
    let checked = u32::try_from(iterations).unwrap_or(0);
    check_iterations(checked, what)?;
    Ok(iterations)
}

/// Verifies the MacData (RFC 7292 §4, RFC 9579 §3) over the authSafe content octets, returning
/// the PKCS#12-KDF password form it verified with (for the legacy decryptions).
///
/// ```text
/// MacData ::= SEQUENCE {
///     mac         DigestInfo,
///     macSalt     OCTET STRING,
///     iterations  INTEGER DEFAULT 1 }
/// ```
pub(super) fn verify_mac<'p>(
    mac_data: &RawTlv<'_>,
    content: &[u8],
    passwords: &'p Passwords,
) -> Result<&'p [u8]> {
    let mac_data: pkcs12::mac_data::MacData = mac_data.decode("PKCS#12 MacData")?;
    let algorithm = &mac_data.mac.algorithm;
    let expected = mac_data.mac.digest.as_bytes();
    let wrong = Error::WrongPassword { what: PKCS12 };
    if algorithm.oid == ID_PBMAC1 {
        // RFC 9579 §3: macSalt and iterations are ignored; PBKDF2's own are used.
        if !crate::pbmac::verify(
            algorithm,
            content,
            expected,
            &passwords.utf8,
            MAX_ITERATIONS,
        )? {
            return Err(wrong);
        }
        return Ok(&passwords.pkcs12[0]);
    }
    let (hmac, len) = match algorithm.oid {
        crate::oid::ID_SHA1 => (ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
        crate::oid::ID_SHA256 => (ring::hmac::HMAC_SHA256, 32),
        crate::oid::ID_SHA384 => (ring::hmac::HMAC_SHA384, 48),
        crate::oid::ID_SHA512 => (ring::hmac::HMAC_SHA512, 64),
        other => {
            return Err(Error::Unsupported {
                what: "PKCS#12 MAC",
                detail: crate::oid::display_name(&other),
            });
        }
    };
    let iterations = positive_iterations(mac_data.iterations, "PKCS#12 MacData")?;
    let salt = mac_data.mac_salt.as_bytes();
    for password in &passwords.pkcs12 {
        let key = Zeroizing::new(match algorithm.oid {
            crate::oid::ID_SHA1 => {
                derive_key::<sha1::Sha1>(password, salt, Pkcs12KeyType::Mac, iterations, len)
            }
            crate::oid::ID_SHA256 => {
                derive_key::<sha2::Sha256>(password, salt, Pkcs12KeyType::Mac, iterations, len)
            }
            crate::oid::ID_SHA384 => {
                derive_key::<sha2::Sha384>(password, salt, Pkcs12KeyType::Mac, iterations, len)
            }
            _ => derive_key::<sha2::Sha512>(password, salt, Pkcs12KeyType::Mac, iterations, len),
        });
        if ring::hmac::verify(&ring::hmac::Key::new(hmac, &key), content, expected).is_ok() {
            return Ok(password);
        }
    }
    Err(wrong)
}
