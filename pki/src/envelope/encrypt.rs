//! Writing: recipients from their certificates, and the encryption of a new message.

use super::*;

/// The content encryption of a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentEncryption {
    /// AES-256-GCM in AuthEnvelopedData (smime-type=authEnveloped-data): the default.
    #[default]
    Aes256Gcm,
    /// AES-256-CBC in EnvelopedData (smime-type=enveloped-data), for clients without
    /// AuthEnvelopedData. No integrity of its own: only the signature inside protects it.
    Aes256Cbc,
}

impl ContentEncryption {
    /// The S/MIME smime-type parameter of this content (RFC 8551 §3.2.2).
    pub fn smime_type(self) -> &'static str {
        match self {
            ContentEncryption::Aes256Gcm => "authEnveloped-data",
            ContentEncryption::Aes256Cbc => "enveloped-data",
        }
    }
}

/// A recipient of a new message: the certificate its key is taken from.
#[derive(Debug, Clone)]
pub struct Recipient {
    der: Vec<u8>,
    kind: KeyKind,
    public_key: Vec<u8>,
    rid: IssuerAndSerialNumber,
    emails: Vec<String>,
    name: String,
    key_usage: Option<x509_cert::ext::pkix::KeyUsage>,
    eku: Option<Vec<Oid>>,
    not_before: u64,
    not_after: u64,
}

impl Recipient {
    /// Reads a recipient certificate (DER). Only the key type is checked here; [`Recipient::check`]
    /// checks that it may be used.
    pub fn from_certificate(der: &[u8]) -> Result<Recipient> {
        let cert = crate::cert::parse(der)?;
        let tbs = &cert.tbs_certificate;
        let spki_der = tbs
            .subject_public_key_info
            .to_der()
            .map_err(Error::Encode)?;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&spki_der)
            .map_err(Error::decode("recipient public key"))?;
        let kind = KeyKind::of_spki(&spki)?;
        // Present but unreadable is refused, not taken as absent (which would allow anything).
        let malformed =
            |what: &str| Error::Certificate(format!("its {what} extension is malformed"));
        let key_usage = match crate::cert::extension(&cert, &oid::ID_CE_KEY_USAGE) {
            None => None,
            Some((_, v)) => Some(
                x509_cert::ext::pkix::KeyUsage::from_der(v).map_err(|_| malformed("keyUsage"))?,
            ),
        };
        let eku = match crate::cert::extension(&cert, &oid::ID_CE_EXT_KEY_USAGE) {
            None => None,
            Some((_, v)) => Some(
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(v)
                    .map_err(|_| malformed("extendedKeyUsage"))?
                    .0,
            ),
        };
        let v = &tbs.validity;
        Ok(Recipient {
            kind,
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
            rid: IssuerAndSerialNumber {
                issuer: tbs.issuer.clone(),
                serial_number: tbs.serial_number.clone(),
            },
            emails: crate::cert::emails(&cert),
            name: crate::cert::common_name(&cert).unwrap_or_else(|| tbs.subject.to_string()),
            key_usage,
            eku,
            not_before: v.not_before.to_unix_duration().as_secs(),
            not_after: v.not_after.to_unix_duration().as_secs(),
            der: der.to_vec(),
        })
    }

    /// The certificate, DER.
    pub fn certificate(&self) -> &[u8] {
        &self.der
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The certificate's rfc822Name subjectAltNames.
    pub fn emails(&self) -> &[String] {
        &self.emails
    }

    /// The end of its validity, Unix seconds.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The subject's common name (or whole subject).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether mail to `address` (when given) may be encrypted to this certificate at
    /// `at_unix`: within its validity, a key usage that allows the key's operation
    /// (keyEncipherment for RSA, keyAgreement for EC), an extendedKeyUsage (when present) that
    /// allows emailProtection, and the address among its rfc822Names (compared without regard
    /// to case). Revocation is the caller's (it needs the network). The error is a sentence
    /// naming the reason.
    pub fn check(&self, address: Option<&str>, at_unix: u64) -> std::result::Result<(), String> {
        let who = match address {
            Some(a) => format!("the certificate for {a} ({})", self.name),
            None => format!("the certificate of {}", self.name),
        };
        if at_unix < self.not_before {
            return Err(format!("{who} is not valid yet"));
        }
        if at_unix > self.not_after {
            return Err(format!("{who} has expired"));
        }
        if let Some(ku) = &self.key_usage {
            let (ok, needed) = match self.kind {
                KeyKind::Rsa => (ku.key_encipherment(), "keyEncipherment"),
                KeyKind::EcP256 | KeyKind::EcP384 => (ku.key_agreement(), "keyAgreement"),
            };
            if !ok {
                return Err(format!(
                    "{who} does not allow encryption: its keyUsage lacks {needed} (is it a \
                     signing certificate? ask the directory for ?usage=encryption)"
                ));
            }
        }
        if let Some(eku) = &self.eku {
            let any = Oid::new_unwrap("2.5.29.37.0");
            if !eku
                .iter()
                .any(|p| *p == oid::ID_KP_EMAIL_PROTECTION || *p == any)
            {
                return Err(format!(
                    "{who} is not for email: its extendedKeyUsage lacks emailProtection"
                ));
            }
        }
        if let Some(address) = address
            && !self.emails.iter().any(|e| e.eq_ignore_ascii_case(address))
        {
            return Err(format!(
                "{who} is not bound to {address}: it names {}",
                if self.emails.is_empty() {
                    "no email address".to_owned()
                } else {
                    self.emails.join(", ")
                }
            ));
        }
        Ok(())
    }
}

/// Encrypts `content` (a MIME entity, as the S/MIME layer gives it) to every recipient and
/// returns the ContentInfo DER. The recipients must have been checked ([`Recipient::check`]).
pub fn encrypt(
    content: &[u8],
    recipients: &[Recipient],
    encryption: ContentEncryption,
) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error::invalid("recipients", "no recipient to encrypt to"));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Error::invalid(
            "recipients",
            format!("more than {MAX_RECIPIENTS} recipients"),
        ));
    }
    let cek = random(32)?;
    let infos = recipients
        .iter()
        .map(|r| recipient_info(r, &cek))
        .collect::<Result<Vec<_>>>()?;
    let any_kari = infos.iter().any(|i| matches!(i, RecipientInfo::Kari(_)));
    let recip_infos = RecipientInfos(SetOfVec::try_from(infos).map_err(Error::Encode)?);
    let (content_type, inner) = match encryption {
        ContentEncryption::Aes256Gcm => {
            let nonce = random(12)?;
            let key = LessSafeKey::new(
                UnboundKey::new(&aead::AES_256_GCM, &cek)
                    .map_err(|_| Error::Key("bad content key".into()))?,
            );
            let mut sealed = content.to_vec();
            let nonce_arr: [u8; 12] = nonce
                .as_slice()
                .try_into()
                .map_err(|_| Error::Key("nonce".into()))?;
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce_arr),
                    Aad::empty(),
                    &mut sealed,
                )
                .map_err(|_| Error::Key("AES-GCM encryption failed".into()))?;
            let params = GcmParameters {
                nonce: OctetString::new(nonce.to_vec()).map_err(Error::Encode)?,
                icv_len: 16,
            };
            let data = AuthEnvelopedData {
                version: CmsVersion::V0,
                originator_info: None,
                recip_infos,
                auth_encrypted_content: EncryptedContentInfo {
                    content_type: oid::ID_DATA,
                    content_enc_alg: alg(oid::AES256_GCM, Some(any_of(&params)?)),
                    encrypted_content: Some(OctetString::new(sealed).map_err(Error::Encode)?),
                },
                auth_attrs: None,
                mac: OctetString::new(tag.as_ref()).map_err(Error::Encode)?,
                unauth_attrs: None,
            };
            (oid::ID_CT_AUTH_ENVELOPED_DATA, any_of(&data)?)
        }
        ContentEncryption::Aes256Cbc => {
            let iv = random(16)?;
            let iv_arr: [u8; 16] = iv
                .as_slice()
                .try_into()
                .map_err(|_| Error::Key("iv".into()))?;
            let key = PaddedBlockEncryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(&cipher::AES_256, &cek)
                    .map_err(|_| Error::Key("bad content key".into()))?,
            )
            .map_err(|_| Error::Key("AES-CBC is unavailable".into()))?;
            let mut sealed = content.to_vec();
            key.less_safe_encrypt(
                &mut sealed,
                EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv_arr)),
            )
            .map_err(|_| Error::Key("AES-CBC encryption failed".into()))?;
            let iv_param = OctetString::new(iv.to_vec()).map_err(Error::Encode)?;
            let data = EnvelopedData {
                // RFC 5652 §6.1: 0 when every RecipientInfo is version 0 (key transport by
                // issuerAndSerialNumber), else 2 (a kari is version 3).
                version: if any_kari {
                    CmsVersion::V2
                } else {
                    CmsVersion::V0
                },
                originator_info: None,
                recip_infos,
                encrypted_content: EncryptedContentInfo {
                    content_type: oid::ID_DATA,
                    content_enc_alg: alg(oid::AES256_CBC, Some(any_of(&iv_param)?)),
                    encrypted_content: Some(OctetString::new(sealed).map_err(Error::Encode)?),
                },
                unprotected_attrs: None,
            };
            (oid::ID_ENVELOPED_DATA, any_of(&data)?)
        }
    };
    ContentInfo {
        content_type,
        content: inner,
    }
    .to_der()
    .map_err(Error::Encode)
}

fn hash_alg(hash: crate::HashAlg) -> AlgorithmIdentifierOwned {
    let oid = match hash {
        crate::HashAlg::Sha1 => oid::ID_SHA1,
        crate::HashAlg::Sha256 => oid::ID_SHA256,
        crate::HashAlg::Sha384 => oid::ID_SHA384,
        crate::HashAlg::Sha512 => oid::ID_SHA512,
    };
    // RFC 4055 §2.1 and its module: sha256Identifier ::= { id-sha256, NULL } (readers accept
    // absent parameters too).
    alg(oid, Some(Any::null()))
}

fn recipient_info(r: &Recipient, cek: &[u8]) -> Result<RecipientInfo> {
    match r.kind.agreement() {
        None => {
            let spki = spki::SubjectPublicKeyInfoOwned {
                algorithm: alg(oid::RSA_ENCRYPTION, Some(Any::null())),
                subject_public_key: BitString::from_bytes(&r.public_key).map_err(Error::Encode)?,
            }
            .to_der()
            .map_err(Error::Encode)?;
            let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).map_err(|e| {
                Error::Certificate(format!("the RSA key of {} is unusable: {e}", r.name))
            })?;
            let key = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(key).map_err(|_| {
                Error::Certificate(format!("the RSA key of {} is unusable", r.name))
            })?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let n = key
                .encrypt(&aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256, cek, &mut out, None)
                .map_err(|_| Error::Key("RSA-OAEP encryption failed".into()))?
                .len();
            out.truncate(n);
            let params = RsaesOaepParams {
                hash_func: Some(hash_alg(crate::HashAlg::Sha256)),
                mask_gen_func: Some(alg(
                    oid::ID_MGF1,
                    Some(any_of(&hash_alg(crate::HashAlg::Sha256))?),
                )),
                p_source_func: None,
            };
            Ok(RecipientInfo::Ktri(KeyTransRecipientInfo {
                version: CmsVersion::V0,
                rid: RecipientIdentifier::IssuerAndSerialNumber(r.rid.clone()),
                key_enc_alg: alg(asn1::ID_RSAES_OAEP, Some(any_of(&params)?)),
                enc_key: OctetString::new(out).map_err(Error::Encode)?,
            }))
        }
        Some(curve) => {
            let (kdf_hash, scheme) = match r.kind {
                KeyKind::EcP384 => (KdfHash::Sha384, asn1::STD_DH_SHA2_KDF[2]),
                _ => (KdfHash::Sha256, asn1::STD_DH_SHA2_KDF[1]),
            };
            let wrap = alg(asn1::AES256_WRAP, None);
            let ephemeral = aws_lc_rs::agreement::PrivateKey::generate(curve)
                .map_err(|_| Error::Key("cannot generate an ephemeral EC key".into()))?;
            let ephemeral_public = ephemeral
                .compute_public_key()
                .map_err(|_| Error::Key("cannot compute the ephemeral public key".into()))?;
            let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(curve, &r.public_key);
            let z = aws_lc_rs::agreement::agree(&ephemeral, peer, Failed, |z| {
                Ok(Zeroizing::new(z.to_vec()))
            })
            .map_err(|_| {
                Error::Certificate(format!("the EC key of {} is not a valid point", r.name))
            })?;
            let kek = derive_kek(kdf_hash, &z, &wrap, None, 32)
                .map_err(|_| Error::Key("the X9.63 KDF failed".into()))?;
            let wrapped = wrap_key(&kek, cek)?;
            Ok(RecipientInfo::Kari(KeyAgreeRecipientInfo {
                version: CmsVersion::V3,
                originator: OriginatorIdentifierOrKey::OriginatorKey(OriginatorPublicKey {
                    // RFC 5753 §3.1.1: id-ecPublicKey, parameters absent (the recipient's
                    // curve).
                    algorithm: alg(oid::ID_EC_PUBLIC_KEY, None),
                    public_key: BitString::from_bytes(ephemeral_public.as_ref())
                        .map_err(Error::Encode)?,
                }),
                ukm: None,
                key_enc_alg: alg(scheme, Some(any_of(&wrap)?)),
                recipient_enc_keys: vec![RecipientEncryptedKey {
                    rid: KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(r.rid.clone()),
                    enc_key: OctetString::new(wrapped).map_err(Error::Encode)?,
                }],
            }))
        }
    }
}

fn wrap_key(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>> {
    let kek = KeyEncryptionKey::new(&key_wrap::AES_256, kek)
        .map_err(|_| Error::Key("bad key-encryption key".into()))?;
    let mut out = vec![0u8; cek.len() + 8];
    let n = kek
        .wrap(cek, &mut out)
        .map_err(|_| Error::Key("AES key wrap failed".into()))?
        .len();
    out.truncate(n);
    Ok(out)
}
