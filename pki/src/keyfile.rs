//! The one key loader: a signing key, and the certificate and chain when the file holds them,
//! from PKCS#8 (PEM `PRIVATE KEY` or DER, clear or encrypted) or PKCS#12 (`.p12`, `.pfx`).
//!
//! ring signs but has no password-based decryption, so the RustCrypto crates of our `der` 0.7
//! line open the files and ring does the rest: `pkcs12` gives the RFC 7292 key derivation and
//! bag types, `pkcs5` decrypts PBES2, `des`/`rc2` in `cbc` mode decrypt the legacy PKCS#12
//! schemes, and ring computes the MACs (HMAC, PBKDF2) and loads the decrypted PKCS#8 through
//! [`RingSigner::from_pkcs8_der`], the same path as a PKCS#8 file. No primitive is written here.
//!
//! What opens (RFC 7292, RFC 8018, RFC 9579):
//!
//! | part | accepted |
//! | --- | --- |
//! | integrity | HMAC-SHA-1/256/384/512 keyed by the PKCS#12 KDF (OpenSSL 3 writes SHA-256, 1.x SHA-1); PBMAC1 with PBKDF2 (OpenSSL 3.4+ `-pbmac1_pbkdf2`); no MAC at all (`-nomac`) |
//! | encryption | PBES2 with PBKDF2 (HMAC-SHA-1/224/256/384/512) and AES-128/192/256-CBC or 3DES-CBC (OpenSSL 3's default is AES-256-CBC); pbeWithSHAAnd3-KeyTripleDES-CBC, 2-KeyTripleDES-CBC, 128-bit and 40-bit RC2-CBC (`-legacy`, OpenSSL 1.x, older Windows exports) |
//! | not accepted | public-key integrity or privacy modes (SignedData, EnvelopedData), RC4, scrypt, a file with several private keys |
//!
//! The password is asked for only when the file is encrypted (the caller's callback), used as
//! UTF-8 for PBES2 and PBMAC1 and as UTF-16 with a terminating zero for the PKCS#12 KDF, as
//! OpenSSL does. Decrypted key material lives in [`Zeroizing`] buffers only. A MAC that does
//! not verify, or contents that do not decrypt, give [`Error::WrongPassword`]: the two causes
//! cannot be told apart.
//!
//! Key files are the operator's own, but a damaged or hostile one must still give an error, not
//! a panic or an endless computation: iteration counts are capped at [`MAX_ITERATIONS`] and
//! nested bags at [`MAX_BAG_DEPTH`]; every certificate is decoded by [`crate::cert::parse`]
//! behind the SET guard. BER input (indefinite lengths, chunked OCTET STRINGs, as streaming
//! encoders write) is normalised to DER first, and the MAC covers the joined content.

mod export;
mod pbe;

pub use export::pkcs12 as write_pkcs12;

use crate::ber;
use crate::cert_raw::RawCert;
use crate::error::{Error, Result};
use crate::raw::{RawTlv, context};
use crate::signer::{RingSigner, RsaPadding};
use der::Tag;
use der::asn1::ObjectIdentifier as Oid;
use pbe::{Passwords, decrypt, verify_mac};
use std::borrow::Cow;
use zeroize::Zeroizing;

/// Most iterations of a key derivation (PKCS#12 KDF or PBKDF2) a key file may ask for.
///
/// OpenSSL writes 2048, Java's keytool 10 000, Windows 2000; RFC 8018 §4.2 calls 10 000 000
/// suitable "for especially critical keys". Above that a damaged or hostile file could keep the
/// loader busy for minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Deepest nesting of safeContentsBags (a SafeContents inside a SafeBag) followed. Writers nest
/// none; the bound keeps the recursion small.
pub const MAX_BAG_DEPTH: usize = 4;

const PKCS12: &str = "PKCS#12 file";

/// Decrypted key material (PKCS#8 DER).
type Secret = Zeroizing<Vec<u8>>;
/// Certificates, DER.
type Ders = Vec<Vec<u8>>;
const ENCRYPTED_KEY: &str = "encrypted private key";

/// id-data (RFC 5652 §4), DER with tag and length.
const ID_DATA_DER: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];
/// id-signedData (RFC 5652 §5.1), DER with tag and length.
const ID_SIGNED_DATA_DER: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
/// id-encryptedData (RFC 5652 §8).
const ID_ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");

/// A key and, when the file held them (PKCS#12), its certificate and chain.
#[derive(Debug)]
pub struct LoadedKey {
    /// The key, ready to sign.
    pub signer: RingSigner,
    /// The certificate of the key (DER), when the file holds one; it is known to match the key.
    pub certificate: Option<Vec<u8>>,
    /// The file's other certificates (DER), the issuer of `certificate` first and up the chain
    /// as far as the file allows, then any that do not chain; a root is kept if the file has it.
    pub chain: Vec<Vec<u8>>,
}

/// Loads PKCS#8 (PEM `PRIVATE KEY` or DER, as [`RingSigner::from_pkcs8_file_bytes`] reads, or
/// PEM `ENCRYPTED PRIVATE KEY` / DER EncryptedPrivateKeyInfo) or PKCS#12.
///
/// `password` is called only when the file is PKCS#12 or an encrypted PKCS#8 key, and at most
/// once, so that a prompt is shown only when needed. RSA keys sign with `padding`.
///
/// A PKCS#12 file must hold exactly one private key. Its certificates are sorted out by public
/// key: the key's own becomes [`LoadedKey::certificate`], the rest [`LoadedKey::chain`]; when the
/// file holds certificates but none for the key, that is an error.
pub fn load_signing_key(
    bytes: &[u8],
    padding: RsaPadding,
    password: &mut dyn FnMut() -> std::io::Result<Zeroizing<String>>,
) -> Result<LoadedKey> {
    load_signing_key_for(bytes, padding, password, None)
}

/// [`load_signing_key`], for a key whose certificate the caller has: an EC PKCS#8 key that
/// carries no public key (Java's keytool writes them so) is completed with `certificate`'s,
/// through [`RingSigner::from_pkcs8_der_with_public_key`].
pub fn load_signing_key_for(
    bytes: &[u8],
    padding: RsaPadding,
    password: &mut dyn FnMut() -> std::io::Result<Zeroizing<String>>,
    certificate: Option<&crate::cms::SignerCert>,
) -> Result<LoadedKey> {
    let (key, file_certs) = private_key(bytes, password)?;
    if let Some(certs) = file_certs {
        let signer = RingSigner::from_pkcs8_der(&key, padding)?;
        let (certificate, chain) =
            split_certificates(crate::signer::Signer::public_key(&signer), certs)?;
        return Ok(LoadedKey {
            signer,
            certificate,
            chain,
        });
    }
    let public_key = certificate.map(|c| {
        c.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    });
    Ok(LoadedKey {
        signer: RingSigner::from_pkcs8_der_with_public_key(&key, padding, public_key)?,
        certificate: None,
        chain: Vec::new(),
    })
}

/// A decryption key and, when the file held them (PKCS#12), its certificate and chain.
#[derive(Debug)]
pub struct LoadedDecrypter {
    /// The key, ready to decrypt.
    pub decrypter: crate::envelope::SoftwareDecrypter,
    /// The key's certificate (DER), when the file holds one.
    pub certificate: Option<Vec<u8>>,
    /// The file's other certificates, as in [`LoadedKey::chain`].
    pub chain: Vec<Vec<u8>>,
}

/// Loads a decryption key from the same files as [`load_signing_key`] (PKCS#8, clear or
/// encrypted, PEM or DER, or PKCS#12), with the same password rules: RSA, or EC on P-256 or
/// P-384.
pub fn load_decryption_key(
    bytes: &[u8],
    password: &mut dyn FnMut() -> std::io::Result<Zeroizing<String>>,
) -> Result<LoadedDecrypter> {
    let (key, file_certs) = private_key(bytes, password)?;
    let decrypter = crate::envelope::SoftwareDecrypter::from_pkcs8_der(&key)?;
    let (certificate, chain) = match file_certs {
        Some(certs) => {
            split_certificates(crate::envelope::Decrypter::public_key(&decrypter), certs)?
        }
        None => (None, Vec::new()),
    };
    Ok(LoadedDecrypter {
        decrypter,
        certificate,
        chain,
    })
}

/// The private key as PKCS#8 DER, and, for a PKCS#12 file, the file's certificates.
fn private_key(
    bytes: &[u8],
    password: &mut dyn FnMut() -> std::io::Result<Zeroizing<String>>,
) -> Result<(Secret, Option<Ders>)> {
    if is_pkcs12(bytes) {
        let password = password().map_err(Error::Password)?;
        let (key, certs) = read_pkcs12(bytes, &password)?;
        return Ok((key, Some(certs)));
    }
    let key = match encrypted_pkcs8(bytes)? {
        Some(encrypted) => {
            let password = password().map_err(Error::Password)?;
            decrypt_private_key(&encrypted, &Passwords::new(&password), ENCRYPTED_KEY)?
        }
        None => Zeroizing::new(crate::signer::pem_or_der(bytes)?),
    };
    Ok((key, None))
}

/// Whether `bytes` start like a PKCS#12 PFX (RFC 7292 §4):
///
/// ```text
/// PFX ::= SEQUENCE {
///     version     INTEGER {v3(3)}(v3,...),
///     authSafe    ContentInfo,
///     macData     MacData OPTIONAL }
/// ```
///
/// Only the headers up to the authSafe's contentType (id-data or id-signedData) are read, not
/// the lengths' promises, so a truncated file is still recognised (and then reported as
/// truncated). PKCS#8 and PKCS#1 keys start with version 0 or 1, never 3.
pub fn is_pkcs12(bytes: &[u8]) -> bool {
    let Some(rest) = enter(bytes, 0x30) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(&[0x02, 0x01, 0x03]) else {
        return false;
    };
    let Some(rest) = enter(rest, 0x30) else {
        return false;
    };
    rest.starts_with(ID_DATA_DER) || rest.starts_with(ID_SIGNED_DATA_DER)
}

/// Skips the identifier and length octets of a value tagged `tag` (a definite length of up to
/// four octets, or BER's indefinite form), returning what follows them.
fn enter(input: &[u8], tag: u8) -> Option<&[u8]> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    match len {
        0x00..=0x80 => Some(rest),
        0x81..=0x84 => rest.get(usize::from(len & 0x7f)..),
        _ => None,
    }
}

/// PEM `ENCRYPTED PRIVATE KEY`, or DER shaped like EncryptedPrivateKeyInfo (RFC 5958 §3):
/// its DER, or `None` for anything else.
fn encrypted_pkcs8(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let (_, der) = der::pem::decode_vec(text).map_err(|e| Error::Decode {
            what: "PEM encrypted private key",
            source: e.into(),
        })?;
        return Ok(Some(der));
    }
    let Ok(tlv) = RawTlv::parse(bytes, ENCRYPTED_KEY) else {
        return Ok(None);
    };
    let shaped = tlv.tag == Tag::Sequence
        && matches!(tlv.children(ENCRYPTED_KEY).as_deref(),
            Ok([alg, data]) if alg.tag == Tag::Sequence && data.tag == Tag::OctetString);
    Ok(shaped.then(|| bytes.to_vec()))
}

/// Runs `f` on the DER form of `input` (BER normalised; a normalised copy of secret bytes is
/// zeroised after use).
fn with_der<T>(input: &[u8], f: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    match ber::normalize(input)? {
        Cow::Borrowed(der) => f(der),
        Cow::Owned(copy) => {
            let copy = Zeroizing::new(copy);
            f(&copy)
        }
    }
}

/// What a PKCS#12 file held.
#[derive(Default)]
struct Contents {
    keys: Vec<Zeroizing<Vec<u8>>>,
    certs: Vec<Vec<u8>>,
}

/// The one private key of a PKCS#12 file and its certificates.
fn read_pkcs12(bytes: &[u8], password: &str) -> Result<(Secret, Ders)> {
    // A definite-length file that ends early is named as such; BER (indefinite lengths) is
    // checked by the normaliser.
    if let Err(e @ Error::Invalid { .. }) = RawTlv::parse(bytes, PKCS12) {
        return Err(e);
    }
    let passwords = Passwords::new(password);
    let contents = with_der(bytes, |der| read_pfx(der, &passwords))?;
    let mut keys = contents.keys;
    let key = match (keys.pop(), keys.len()) {
        (Some(key), 0) => key,
        (None, _) => {
            return Err(Error::Key(
                "the PKCS#12 file holds no private key (was it made with -nokeys?)".into(),
            ));
        }
        (Some(_), more) => {
            return Err(Error::Key(format!(
                "the PKCS#12 file holds {} private keys; export one key alone",
                more + 1
            )));
        }
    };
    Ok((key, contents.certs))
}

/// Checks the MAC and collects the keys and certificates of a PFX in DER.
fn read_pfx(der: &[u8], passwords: &Passwords) -> Result<Contents> {
    let pfx = sequence(der, PKCS12)?;
    let parts = pfx.children(PKCS12)?;
    let (version, auth_safe, mac_data) = match parts.as_slice() {
        [version, auth_safe] => (version, auth_safe, None),
        [version, auth_safe, mac_data] => (version, auth_safe, Some(mac_data)),
        _ => return Err(Error::invalid(PKCS12, "a PFX has two or three fields")),
    };
    if version.full != [0x02, 0x01, 0x03] {
        return Err(Error::invalid(PKCS12, "version is not 3"));
    }
    let (content_type, content) = content_info(auth_safe, PKCS12)?;
    if content_type != crate::oid::ID_DATA {
        return Err(Error::Unsupported {
            what: "PKCS#12 integrity mode",
            detail: format!(
                "authSafe of type {} (public-key integrity mode)",
                crate::oid::display_name(&content_type)
            ),
        });
    }
    let auth_safe_octets = octet_string(&content, PKCS12)?;
    // With a MAC, a failure after this point means a damaged file, not a wrong password.
    let pkcs12_password = match mac_data {
        Some(mac_data) => Some(verify_mac(mac_data, auth_safe_octets, passwords)?),
        None => None,
    };
    let keys = Keys {
        passwords,
        pkcs12_password,
        mac_verified: mac_data.is_some(),
    };
    let mut out = Contents::default();
    with_der(auth_safe_octets, |safe| {
        // AuthenticatedSafe ::= SEQUENCE OF ContentInfo
        let safe = sequence(safe, "PKCS#12 AuthenticatedSafe")?;
        for info in safe.children("PKCS#12 AuthenticatedSafe")? {
            let (content_type, content) = content_info(&info, "PKCS#12 AuthenticatedSafe")?;
            if content_type == crate::oid::ID_DATA {
                let octets = octet_string(&content, "PKCS#12 SafeContents")?;
                with_der(octets, |der| read_safe_contents(der, &keys, &mut out, 0))?;
            } else if content_type == ID_ENCRYPTED_DATA {
                let plain = decrypt_encrypted_data(&content, &keys)?;
                keys.guard(with_der(&plain, |der| {
                    read_safe_contents(der, &keys, &mut out, 0)
                }))?;
            } else {
                return Err(Error::Unsupported {
                    what: "PKCS#12 privacy mode",
                    detail: format!(
                        "SafeContents in {} (public-key privacy mode)",
                        crate::oid::display_name(&content_type)
                    ),
                });
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// ContentInfo (RFC 5652 §3): contentType and the value inside `[0] EXPLICIT`.
fn content_info<'a>(tlv: &RawTlv<'a>, what: &'static str) -> Result<(Oid, RawTlv<'a>)> {
    if tlv.tag != Tag::Sequence {
        return Err(Error::invalid(what, "ContentInfo is not a SEQUENCE"));
    }
    let fields = tlv.children(what)?;
    let [content_type, explicit] = fields.as_slice() else {
        return Err(Error::invalid(what, "a ContentInfo without content"));
    };
    if explicit.tag != context(0, true) {
        return Err(Error::invalid(what, "ContentInfo content is not [0]"));
    }
    let content_type: Oid = content_type.decode(what)?;
    Ok((content_type, RawTlv::parse(explicit.value, what)?))
}

/// The single SEQUENCE that fills `der`.
fn sequence<'a>(der: &'a [u8], what: &'static str) -> Result<RawTlv<'a>> {
    let tlv = RawTlv::parse(der, what)?;
    if tlv.tag != Tag::Sequence {
        return Err(Error::invalid(what, "not a SEQUENCE"));
    }
    Ok(tlv)
}

fn octet_string<'a>(tlv: &RawTlv<'a>, what: &'static str) -> Result<&'a [u8]> {
    if tlv.tag != Tag::OctetString {
        return Err(Error::invalid(what, "expected an OCTET STRING"));
    }
    Ok(tlv.value)
}

/// The passwords and what the MAC check learnt, for the decryptions inside the file.
struct Keys<'p> {
    passwords: &'p Passwords,
    /// The PKCS#12-KDF password form the MAC verified with, if a classic MAC was checked.
    pkcs12_password: Option<&'p [u8]>,
    /// Whether a MAC vouched for the password: then a later failure is corruption.
    mac_verified: bool,
}

impl Keys<'_> {
    /// Without a MAC, a wrong password shows only as garbage after decryption: any failure to
    /// read decrypted bytes (`result` of reading them, never of reading clear ones) is then
    /// reported as a wrong password.
    fn guard<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::Decode { .. } | Error::Invalid { .. } | Error::Ber(_))
                if !self.mac_verified =>
            {
                Err(Error::WrongPassword { what: PKCS12 })
            }
            other => other,
        }
    }
}

/// SafeContents ::= SEQUENCE OF SafeBag (RFC 7292 §4.2)
///
/// ```text
/// SafeBag ::= SEQUENCE {
///     bagId          BAG-TYPE.&id ({PKCS12BagSet}),
///     bagValue       [0] EXPLICIT BAG-TYPE.&Type({PKCS12BagSet}{@bagId}),
///     bagAttributes  SET OF PKCS12Attribute OPTIONAL }
/// ```
///
/// Bag attributes (friendlyName, localKeyId) are not read: keys and certificates are paired by
/// public key. CRL and secret bags are skipped.
fn read_safe_contents(der: &[u8], keys: &Keys<'_>, out: &mut Contents, depth: usize) -> Result<()> {
    const W: &str = "PKCS#12 SafeContents";
    if depth > MAX_BAG_DEPTH {
        return Err(Error::invalid(
            W,
            format!("safeContentsBags nested deeper than {MAX_BAG_DEPTH}"),
        ));
    }
    for bag in sequence(der, W)?.children(W)? {
        if bag.tag != Tag::Sequence {
            return Err(Error::invalid(W, "a SafeBag is not a SEQUENCE"));
        }
        let fields = bag.children(W)?;
        let (bag_id, explicit) = match fields.as_slice() {
            [id, value] | [id, value, _] => (id, value),
            _ => return Err(Error::invalid(W, "a SafeBag has two or three fields")),
        };
        if explicit.tag != context(0, true) {
            return Err(Error::invalid(W, "bagValue is not [0]"));
        }
        let bag_id: Oid = bag_id.decode(W)?;
        let value = RawTlv::parse(explicit.value, W)?;
        if bag_id == pkcs12::PKCS_12_KEY_BAG_OID {
            // A PrivateKeyInfo in the clear (`-keypbe NONE`).
            out.keys.push(Zeroizing::new(value.full.to_vec()));
        } else if bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
            // Its plaintext is checked inside: garbage there is a wrong password.
            out.keys
                .push(decrypt_private_key(value.full, keys.passwords, PKCS12)?);
        } else if bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
            let cert_bag: pkcs12::cert_type::CertBag = value.decode("PKCS#12 CertBag")?;
            if cert_bag.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                let der = cert_bag.cert_value.into_bytes();
                crate::cert::parse(&der)?;
                if !out.certs.contains(&der) {
                    out.certs.push(der);
                }
            }
        } else if bag_id == pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID {
            read_safe_contents(value.full, keys, out, depth + 1)?;
        }
    }
    Ok(())
}

/// EncryptedData (RFC 5652 §8) holding a SafeContents, decrypted.
///
/// ```text
/// EncryptedData ::= SEQUENCE {
///     version CMSVersion,
///     encryptedContentInfo EncryptedContentInfo,
///     unprotectedAttrs [1] IMPLICIT UnprotectedAttributes OPTIONAL }
/// EncryptedContentInfo ::= SEQUENCE {
///     contentType ContentType,
///     contentEncryptionAlgorithm ContentEncryptionAlgorithmIdentifier,
///     encryptedContent [0] IMPLICIT EncryptedContent OPTIONAL }
/// ```
fn decrypt_encrypted_data(tlv: &RawTlv<'_>, keys: &Keys<'_>) -> Result<Zeroizing<Vec<u8>>> {
    const W: &str = "PKCS#12 EncryptedData";
    if tlv.tag != Tag::Sequence {
        return Err(Error::invalid(W, "not a SEQUENCE"));
    }
    let fields = tlv.children(W)?;
    let Some(info) = fields.get(1) else {
        return Err(Error::invalid(W, "no EncryptedContentInfo"));
    };
    let info = info.children(W)?;
    let [_content_type, algorithm, encrypted] = info.as_slice() else {
        return Err(Error::invalid(W, "no encryptedContent"));
    };
    // The normaliser leaves `[0] IMPLICIT OCTET STRING` in its constructed BER form (it cannot
    // tell it from an explicit tag): join its segments here.
    let ciphertext: Cow<'_, [u8]> = if encrypted.tag == context(0, false) {
        Cow::Borrowed(encrypted.value)
    } else if encrypted.tag == context(0, true) {
        let mut joined = Vec::new();
        for segment in encrypted.children(W)? {
            joined.extend_from_slice(octet_string(&segment, W)?);
        }
        Cow::Owned(joined)
    } else {
        return Err(Error::invalid(W, "encryptedContent is not [0]"));
    };
    decrypt(
        algorithm,
        &ciphertext,
        keys.passwords,
        keys.pkcs12_password,
        PKCS12,
    )
}

/// EncryptedPrivateKeyInfo (RFC 5958 §3) decrypted to the PrivateKeyInfo DER.
///
/// ```text
/// EncryptedPrivateKeyInfo ::= SEQUENCE {
///     encryptionAlgorithm  EncryptionAlgorithmIdentifier,
///     encryptedData        EncryptedData }
/// ```
fn decrypt_private_key(
    der: &[u8],
    passwords: &Passwords,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let fields = sequence(der, what)?.children(what)?;
    let [algorithm, data] = fields.as_slice() else {
        return Err(Error::invalid(
            what,
            "EncryptedPrivateKeyInfo has two fields",
        ));
    };
    let plain = decrypt(algorithm, octet_string(data, what)?, passwords, None, what)?;
    // What decrypted must at least be one DER element: otherwise the password was wrong (or,
    // under a verified MAC, the file is damaged, which the caller tells apart).
    match RawTlv::parse(&plain, what) {
        Ok(_) => Ok(plain),
        Err(_) => Err(Error::WrongPassword { what }),
    }
}

/// Sorts a PKCS#12 file's certificates for the key whose public key (as in a certificate's
/// subjectPublicKey) is `public_key`: the key's own certificate, and the rest ordered from it
/// up (issuer name and key identifiers, [`RawCert::may_issue`]).
fn split_certificates(
    public_key: &[u8],
    mut certs: Vec<Vec<u8>>,
) -> Result<(Option<Vec<u8>>, Ders)> {
    if certs.is_empty() {
        return Ok((None, Vec::new()));
    }
    let mut own = None;
    for (i, der) in certs.iter().enumerate() {
        if crate::cert::has_public_key(&crate::cert::parse(der)?, public_key) {
            own = Some(i);
            break;
        }
    }
    let Some(own) = own else {
        return Err(Error::Certificate(format!(
            "the PKCS#12 file holds {} certificate(s) but none for its private key",
            certs.len()
        )));
    };
    let leaf = certs.remove(own);
    let raws = certs
        .iter()
        .map(|der| RawCert::parse(der))
        .collect::<Result<Vec<_>>>()?;
    let mut used = vec![false; raws.len()];
    let mut order = Vec::with_capacity(raws.len());
    let mut current = RawCert::parse(&leaf)?;
    while !current.is_self_issued() {
        let Some(next) = (0..raws.len()).find(|&i| !used[i] && raws[i].may_issue(&current)) else {
            break;
        };
        used[next] = true;
        order.push(next);
        current = raws[next];
    }
    order.extend((0..raws.len()).filter(|&i| !used[i]));
    let chain = order.into_iter().map(|i| certs[i].clone()).collect();
    Ok((Some(leaf), chain))
}
