//! Writing PKCS#12 (RFC 7292) for mail clients: the key in a PKCS8ShroudedKeyBag encrypted
//! with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC: what OpenSSL 3 writes and Thunderbird, Outlook
//! and Apple Mail read), the certificate and its chain in CertBags (certificates are public;
//! they sit in a plain Data SafeContents, as `openssl pkcs12 -certpbe NONE` writes), the key
//! and its certificate tied by localKeyId and friendlyName, and a MAC over the whole with
//! HMAC-SHA256 keyed by the RFC 7292 Appendix B KDF (the classic MAC every reader knows).
//! pkcs5 encrypts, pkcs12's KDF derives the MAC key, ring computes the MAC and the randomness.

use super::pbe::Passwords;
use crate::error::{Error, Result};
use crate::raw::{context, tlv};
use der::Tag;
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use zeroize::Zeroizing;

/// PBKDF2 iterations for the key's encryption (OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is
/// 600,000; a mail client opens the file once, at import).
const KEY_ITERATIONS: u32 = 600_000;
/// PKCS#12 KDF iterations for the MAC (OpenSSL 3's default).
const MAC_ITERATIONS: u32 = 2048;

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const PKCS8_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const X509_CERTIFICATE: &str = "1.2.840.113549.1.9.22.1";
const FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
const LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";

fn oid(dotted: &str) -> Result<Vec<u8>> {
    let o = der::asn1::ObjectIdentifier::new(dotted)
        .map_err(|e| Error::invalid("OID", e.to_string()))?;
    crate::signer::to_der(&o)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    crate::rand::array("PKCS#12")
}

/// `SET OF Attribute` with friendlyName (BMPString) and localKeyId.
fn bag_attributes(friendly_name: &str, local_key_id: &[u8]) -> Result<Vec<u8>> {
    let bmp: Vec<u8> = friendly_name
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let name = tlv(
        Tag::Sequence,
        &[
            &oid(FRIENDLY_NAME)?,
            &tlv(Tag::Set, &[&tlv(Tag::BmpString, &[&bmp])?])?,
        ],
    )?;
    let id = tlv(
        Tag::Sequence,
        &[
            &oid(LOCAL_KEY_ID)?,
            &tlv(Tag::Set, &[&tlv(Tag::OctetString, &[local_key_id])?])?,
        ],
    )?;
    // DER SET OF: elements in ascending order of their encodings.
    let mut attrs = [name, id];
    attrs.sort();
    tlv(Tag::Set, &[&attrs[0], &attrs[1]])
}

/// SafeBag ::= SEQUENCE { bagId, [0] EXPLICIT bagValue, bagAttributes SET OF OPTIONAL }
fn safe_bag(bag_id: &str, value: &[u8], attributes: Option<&[u8]>) -> Result<Vec<u8>> {
    let id = oid(bag_id)?;
    let value = tlv(context(0, true), &[value])?;
    match attributes {
        Some(a) => tlv(Tag::Sequence, &[&id, &value, a]),
        None => tlv(Tag::Sequence, &[&id, &value]),
    }
}

/// ContentInfo { id-data, [0] EXPLICIT OCTET STRING }.
fn data(content: &[u8]) -> Result<Vec<u8>> {
    tlv(
        Tag::Sequence,
        &[
            &oid(ID_DATA)?,
            &tlv(context(0, true), &[&tlv(Tag::OctetString, &[content])?])?,
        ],
    )
}

/// A PKCS#12 file (DER) holding `key` (PKCS#8 DER), `cert` and `chain` (DER), protected
/// by `password`, with `friendly_name` as the label mail clients show.
pub fn pkcs12(
    key: &[u8],
    cert: &[u8],
    chain: &[Vec<u8>],
    password: &str,
    friendly_name: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    let local_key_id = crate::digest::HashAlg::Sha1.digest(cert);
    let attributes = bag_attributes(friendly_name, &local_key_id)?;

    // The key: EncryptedPrivateKeyInfo under PBES2.
    let salt = random::<16>()?;
    let iv = random::<16>()?;
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(KEY_ITERATIONS, &salt, &iv)
        .map_err(|e| Error::Key(format!("PBES2 parameters: {e}")))?;
    let scheme = pkcs5::EncryptionScheme::from(params);
    let encrypted = scheme
        .encrypt(password.as_bytes(), key)
        .map_err(|e| Error::Key(format!("PBES2 encryption: {e}")))?;
    let epki = tlv(
        Tag::Sequence,
        &[
            &crate::signer::to_der(&scheme)?,
            &tlv(Tag::OctetString, &[&encrypted])?,
        ],
    )?;
    let key_bag = safe_bag(PKCS8_SHROUDED_KEY_BAG, &epki, Some(&attributes))?;

    // The certificates.
    let mut cert_bags = Vec::with_capacity(1 + chain.len());
    for (i, c) in std::iter::once(cert)
        .chain(chain.iter().map(Vec::as_slice))
        .enumerate()
    {
        let bag = tlv(
            Tag::Sequence,
            &[
                &oid(X509_CERTIFICATE)?,
                &tlv(context(0, true), &[&tlv(Tag::OctetString, &[c])?])?,
            ],
        )?;
        cert_bags.push(safe_bag(
            CERT_BAG,
            &bag,
            (i == 0).then_some(&attributes[..]),
        )?);
    }
    let cert_refs: Vec<&[u8]> = cert_bags.iter().map(Vec::as_slice).collect();
    let certs_safe = tlv(Tag::Sequence, &cert_refs)?;
    let key_safe = tlv(Tag::Sequence, &[&key_bag])?;
    let auth_safe = tlv(Tag::Sequence, &[&data(&certs_safe)?, &data(&key_safe)?])?;

    // The MAC over the AuthenticatedSafe's octets.
    let mac_salt = random::<16>()?;
    let passwords = Passwords::new(password);
    let mac_key = Zeroizing::new(derive_key::<sha2::Sha256>(
        &passwords.pkcs12[0],
        &mac_salt,
        Pkcs12KeyType::Mac,
        i32::try_from(MAC_ITERATIONS).unwrap_or(2048),
        32,
    ));
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &mac_key),
        &auth_safe,
    );
    let digest_info = tlv(
        Tag::Sequence,
        &[
            &tlv(Tag::Sequence, &[&oid(SHA256)?, &[0x05, 0x00]])?,
            &tlv(Tag::OctetString, &[mac.as_ref()])?,
        ],
    )?;
    let mac_data = tlv(
        Tag::Sequence,
        &[
            &digest_info,
            &tlv(Tag::OctetString, &[&mac_salt])?,
            &crate::signer::to_der(&MAC_ITERATIONS)?,
        ],
    )?;
    let pfx = tlv(
        Tag::Sequence,
        &[&[0x02, 0x01, 0x03], &data(&auth_safe)?, &mac_data],
    )?;
    Ok(Zeroizing::new(pfx))
}
