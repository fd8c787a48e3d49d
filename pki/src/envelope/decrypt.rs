//! Reading: parsing a message as received (DER or BER), naming its recipients, and
//! decrypting it with one opaque failure.

use super::*;

/// Which CMS type an encrypted message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// EnvelopedData: confidentiality only.
    Enveloped,
    /// AuthEnvelopedData: authenticated encryption.
    AuthEnveloped,
}

/// One recipient named in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRef {
    /// How the content key reaches it: "key transport", "key agreement", or another kind that we
    /// cannot use ("KEK", "password", "other").
    pub method: &'static str,
    /// The recipient's identifier as a person reads it: the issuer and serial number, or the
    /// subjectKeyIdentifier in hex.
    pub id: String,
    issuer_serial: Option<Vec<u8>>,
    ski: Option<Vec<u8>>,
}

impl std::fmt::Display for RecipientRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.id, self.method)
    }
}

/// What a message says of itself before any key is used.
#[derive(Debug, Clone)]
pub struct EnvelopeInfo {
    /// EnvelopedData or AuthEnvelopedData.
    pub kind: EnvelopeKind,
    /// The content-encryption algorithm's name.
    pub content_algorithm: String,
    /// The recipients, in the message's order.
    pub recipients: Vec<RecipientRef>,
}

/// The content-encryption algorithms we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentAlg {
    Gcm(usize),
    Cbc(usize),
}

impl ContentAlg {
    fn from_oid(oid: &Oid) -> Option<ContentAlg> {
        Some(match *oid {
            o if o == oid::AES128_GCM => ContentAlg::Gcm(16),
            o if o == asn1::AES192_GCM => ContentAlg::Gcm(24),
            o if o == oid::AES256_GCM => ContentAlg::Gcm(32),
            o if o == oid::AES128_CBC => ContentAlg::Cbc(16),
            o if o == asn1::AES192_CBC => ContentAlg::Cbc(24),
            o if o == oid::AES256_CBC => ContentAlg::Cbc(32),
            _ => return None,
        })
    }

    fn name(self) -> String {
        match self {
            ContentAlg::Gcm(n) => format!("AES-{}-GCM", n * 8),
            ContentAlg::Cbc(n) => format!("AES-{}-CBC", n * 8),
        }
    }

    fn key_len(self) -> usize {
        match self {
            ContentAlg::Gcm(n) | ContentAlg::Cbc(n) => n,
        }
    }
}

/// A parsed message, its byte slices borrowed from the normalised input.
pub(super) struct Parsed {
    kind: EnvelopeKind,
    alg: ContentAlg,
    alg_params: Option<Any>,
    ciphertext: Vec<u8>,
    /// AuthEnvelopedData: the tag, and the AAD (authAttrs re-tagged as SET, as received).
    mac: Vec<u8>,
    aad: Vec<u8>,
    pub(super) infos: Vec<RecipientInfo>,
}

const WHAT: &str = "encrypted message";

pub(super) fn parse(input: &[u8]) -> Result<Parsed> {
    let normalised = crate::ber::normalize(input)?;
    let ci = RawTlv::parse(&normalised, WHAT)?;
    let fields = ci.children(WHAT)?;
    let [content_type, explicit] = fields.as_slice() else {
        return Err(Error::invalid(WHAT, "ContentInfo is not two fields"));
    };
    let content_type: Oid = content_type.decode("contentType")?;
    let kind = if content_type == oid::ID_ENVELOPED_DATA {
        EnvelopeKind::Enveloped
    } else if content_type == oid::ID_CT_AUTH_ENVELOPED_DATA {
        EnvelopeKind::AuthEnveloped
    } else {
        return Err(Error::Unsupported {
            what: "content type",
            detail: format!(
                "{} (not EnvelopedData or AuthEnvelopedData)",
                oid::display_name(&content_type)
            ),
        });
    };
    if explicit.tag != crate::raw::context(0, true) {
        return Err(Error::invalid(WHAT, "ContentInfo content is not [0]"));
    }
    let body = RawTlv::parse(explicit.value, WHAT)?;
    let mut fields = body.children(WHAT)?.into_iter().peekable();
    let _version = fields
        .next()
        .filter(|t| t.tag == Tag::Integer)
        .ok_or_else(|| Error::invalid(WHAT, "no version"))?;
    if fields
        .peek()
        .is_some_and(|t| t.tag == crate::raw::context(0, true))
    {
        fields.next(); // originatorInfo: certificates for the reader, not needed to decrypt
    }
    let set = fields
        .next()
        .filter(|t| t.tag == Tag::Set)
        .ok_or_else(|| Error::invalid(WHAT, "no recipientInfos"))?;
    let elements = set.children("recipientInfos")?;
    if elements.is_empty() {
        return Err(Error::invalid(WHAT, "no recipient"));
    }
    if elements.len() > MAX_RECIPIENTS {
        return Err(Error::invalid(
            WHAT,
            format!("{} recipients, more than {MAX_RECIPIENTS}", elements.len()),
        ));
    }
    let infos = elements
        .iter()
        .map(|e| {
            crate::limits::check_sets(e.full, "RecipientInfo")?;
            e.decode::<RecipientInfo>("RecipientInfo")
        })
        .collect::<Result<Vec<_>>>()?;
    let eci = fields
        .next()
        .filter(|t| t.tag == Tag::Sequence)
        .ok_or_else(|| Error::invalid(WHAT, "no EncryptedContentInfo"))?;
    let eci_fields = eci.children("EncryptedContentInfo")?;
    let (enc_alg, encrypted) = match eci_fields.as_slice() {
        [_, alg, enc] => (alg, enc),
        [_, _] => {
            return Err(Error::Unsupported {
                what: "encrypted content",
                detail: "detached (the message carries no encryptedContent)".into(),
            });
        }
        _ => {
            return Err(Error::invalid(
                WHAT,
                "EncryptedContentInfo is not three fields",
            ));
        }
    };
    let enc_alg: AlgorithmIdentifierOwned = enc_alg.decode("contentEncryptionAlgorithm")?;
    let alg = ContentAlg::from_oid(&enc_alg.oid).ok_or_else(|| Error::Unsupported {
        what: "content encryption",
        detail: oid::display_name(&enc_alg.oid),
    })?;
    // [0] IMPLICIT OCTET STRING: primitive, or (BER, `-stream`) constructed of chunks, which
    // the normaliser leaves constructed because it cannot tell an implicit tag without the
    // schema.
    let ciphertext = if encrypted.tag == crate::raw::context(0, false) {
        encrypted.value.to_vec()
    } else if encrypted.tag == crate::raw::context(0, true) {
        let mut joined = Vec::with_capacity(encrypted.value.len());
        for chunk in encrypted.children("encryptedContent")? {
            if chunk.tag != Tag::OctetString {
                return Err(Error::invalid(
                    WHAT,
                    "encryptedContent chunk is not an OCTET STRING",
                ));
            }
            joined.extend_from_slice(chunk.value);
        }
        joined
    } else {
        return Err(Error::invalid(WHAT, "encryptedContent is not [0]"));
    };
    let (mut mac, mut aad) = (Vec::new(), Vec::new());
    if kind == EnvelopeKind::AuthEnveloped {
        let mut next = fields.next();
        if let Some(attrs) = next.filter(|t| t.tag == crate::raw::context(1, true)) {
            // RFC 5083 §2.2: the AAD is the DER of authAttrs with the SET OF tag.
            aad = crate::raw::tlv(Tag::Set, &[attrs.value])?;
            next = fields.next();
        }
        let tag = next
            .filter(|t| t.tag == Tag::OctetString)
            .ok_or_else(|| Error::invalid(WHAT, "AuthEnvelopedData has no mac"))?;
        mac = tag.value.to_vec();
        if matches!(alg, ContentAlg::Cbc(_)) {
            return Err(Error::Unsupported {
                what: "content encryption",
                detail: format!("{} in AuthEnvelopedData (not authenticated)", alg.name()),
            });
        }
    } else if matches!(alg, ContentAlg::Gcm(_)) {
        return Err(Error::invalid(
            WHAT,
            "AES-GCM in EnvelopedData, which has no place for its tag",
        ));
    }
    Ok(Parsed {
        kind,
        alg,
        alg_params: enc_alg.parameters,
        ciphertext,
        mac,
        aad,
        infos,
    })
}

fn issuer_serial_der(ias: &IssuerAndSerialNumber) -> Option<Vec<u8>> {
    ias.to_der().ok()
}

fn describe_ias(ias: &IssuerAndSerialNumber) -> String {
    format!(
        "serial {} issued by {}",
        hex::encode(ias.serial_number.as_bytes()),
        ias.issuer
    )
}

fn refs(info: &RecipientInfo) -> Vec<RecipientRef> {
    let ias = |method, ias: &IssuerAndSerialNumber| RecipientRef {
        method,
        id: describe_ias(ias),
        issuer_serial: issuer_serial_der(ias),
        ski: None,
    };
    let ski = |method, ski: &[u8]| RecipientRef {
        method,
        id: format!("subjectKeyIdentifier {}", hex::encode(ski)),
        issuer_serial: None,
        ski: Some(ski.to_vec()),
    };
    let other = |method| RecipientRef {
        method,
        id: "-".into(),
        issuer_serial: None,
        ski: None,
    };
    match info {
        RecipientInfo::Ktri(k) => vec![match &k.rid {
            RecipientIdentifier::IssuerAndSerialNumber(i) => ias("key transport", i),
            RecipientIdentifier::SubjectKeyIdentifier(s) => ski("key transport", s.0.as_bytes()),
        }],
        RecipientInfo::Kari(k) => k
            .recipient_enc_keys
            .iter()
            .map(|r| match &r.rid {
                KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => ias("key agreement", i),
                KeyAgreeRecipientIdentifier::RKeyId(id) => {
                    ski("key agreement", id.subject_key_identifier.0.as_bytes())
                }
            })
            .collect(),
        RecipientInfo::Kekri(_) => vec![other("KEK")],
        RecipientInfo::Pwri(_) => vec![other("password")],
        RecipientInfo::Ori(_) => vec![other("other")],
    }
}

/// Reads what an encrypted message (ContentInfo, DER or BER) says of itself, without a key.
pub fn describe(input: &[u8]) -> Result<EnvelopeInfo> {
    let parsed = parse(input)?;
    Ok(EnvelopeInfo {
        kind: parsed.kind,
        content_algorithm: parsed.alg.name(),
        recipients: parsed.infos.iter().flat_map(refs).collect(),
    })
}

/// What identifies the decrypting key among the recipients.
struct Me {
    issuer_serial: Option<Vec<u8>>,
    /// SHA-1 of the public key (RFC 5280 §4.2.1.2 method 1), and the certificate's own
    /// subjectKeyIdentifier when it has one (`openssl cms -keyid` writes that value, which may
    /// come from another method).
    skis: Vec<Vec<u8>>,
}

impl Me {
    fn is(&self, r: &RecipientRef) -> bool {
        (r.issuer_serial.is_some() && r.issuer_serial == self.issuer_serial)
            || r.ski.as_ref().is_some_and(|s| self.skis.contains(s))
    }
}

/// Decrypts an encrypted message (ContentInfo, DER or BER) with `key`, whose certificate
/// (DER) names it among the recipients; without `certificate`, the key is matched by its
/// subjectKeyIdentifier (SHA-1 of the public key, RFC 5280 §4.2.1.2), or is the only recipient
/// of its kind. Returns the content and what the message said of itself.
pub fn decrypt(
    input: &[u8],
    key: &dyn Decrypter,
    certificate: Option<&[u8]>,
) -> Result<(Vec<u8>, EnvelopeInfo)> {
    let parsed = parse(input)?;
    let info = EnvelopeInfo {
        kind: parsed.kind,
        content_algorithm: parsed.alg.name(),
        recipients: parsed.infos.iter().flat_map(refs).collect(),
    };
    let mut skis = vec![
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, key.public_key())
            .as_ref()
            .to_vec(),
    ];
    if let Some(own) = certificate
        .and_then(|der| crate::cert_raw::RawCert::parse(der).ok())
        .and_then(|raw| raw.subject_key_id.map(<[u8]>::to_vec))
    {
        skis.push(own);
    }
    let issuer_serial = match certificate {
        Some(der) => {
            let cert = crate::cert::parse(der)?;
            if !crate::cert::has_public_key(&cert, key.public_key()) {
                return Err(Error::Certificate(
                    "the certificate given is not the private key's".into(),
                ));
            }
            issuer_serial_der(&IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            })
        }
        None => None,
    };
    let me = Me {
        issuer_serial,
        skis,
    };
    // The RecipientInfo (and, for kari, the RecipientEncryptedKey) meant for this key.
    let wanted_kind = |i: &RecipientInfo| {
        matches!(
            (i, key.kind()),
            (RecipientInfo::Ktri(_), KeyKind::Rsa)
                | (RecipientInfo::Kari(_), KeyKind::EcP256 | KeyKind::EcP384)
        )
    };
    let mut found = None;
    for (i, ri) in parsed.infos.iter().enumerate() {
        for (j, r) in refs(ri).iter().enumerate() {
            if me.is(r) && wanted_kind(ri) {
                found = Some((i, j));
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    if found.is_none() && certificate.is_none() {
        let of_kind: Vec<(usize, usize)> = parsed
            .infos
            .iter()
            .enumerate()
            .filter(|(_, ri)| wanted_kind(ri))
            .flat_map(|(i, ri)| (0..refs(ri).len()).map(move |j| (i, j)))
            .collect();
        if let [only] = of_kind.as_slice() {
            found = Some(*only);
        } else if of_kind.len() > 1 {
            return Err(Error::NotARecipient {
                recipients: info.recipients.iter().map(ToString::to_string).collect(),
                hint: "several recipients have a key of this kind: give the key's certificate \
                       (--cert) to pick the right one"
                    .into(),
            });
        }
    }
    let Some((i, j)) = found else {
        return Err(Error::NotARecipient {
            recipients: info.recipients.iter().map(ToString::to_string).collect(),
            hint: format!(
                "the message is not encrypted to this {} key{}",
                key.kind().name(),
                if certificate.is_some() {
                    " and certificate"
                } else {
                    ""
                }
            ),
        });
    };
    let cek = content_key(&parsed.infos[i], j, key, parsed.alg.key_len())?;
    let content = decrypt_content(&parsed, &cek)?;
    Ok((content, info))
}

/// The content-encryption key for this recipient, or, when any step fails after parsing, a
/// random key of the right length (RFC 3218 §2.3.2), so that the failure surfaces only as the
/// content's, in the same way and through the same code.
fn content_key(
    ri: &RecipientInfo,
    index: usize,
    key: &dyn Decrypter,
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    // Drawn before the key operation, whatever its outcome, so that a failure costs no more work
    // than a success.
    let mut fallback = random(key_len)?;
    let recovered = match ri {
        RecipientInfo::Ktri(k) => {
            let scheme = rsa_scheme(&k.key_enc_alg)?;
            key.supports(scheme).map_err(|detail| Error::Unsupported {
                what: "key transport for this key",
                detail,
            })?;
            key.rsa_decrypt(scheme, k.enc_key.as_bytes())
        }
        RecipientInfo::Kari(k) => {
            let (kdf, wrap) = kari_algorithms(&k.key_enc_alg)?;
            let OriginatorIdentifierOrKey::OriginatorKey(originator) = &k.originator else {
                return Err(Error::Unsupported {
                    what: "key agreement",
                    detail: "a static originator key (only ephemeral-static ECDH is supported)"
                        .into(),
                });
            };
            if originator.algorithm.oid != oid::ID_EC_PUBLIC_KEY {
                return Err(Error::Unsupported {
                    what: "originator key",
                    detail: oid::display_name(&originator.algorithm.oid),
                });
            }
            let kek_len = match wrap.oid {
                o if o == asn1::AES128_WRAP => 16,
                o if o == asn1::AES256_WRAP => 32,
                o => {
                    return Err(Error::Unsupported {
                        what: "key wrap",
                        detail: oid::display_name(&o),
                    });
                }
            };
            let rek = k
                .recipient_enc_keys
                .get(index)
                .ok_or_else(|| Error::invalid(WHAT, "recipient index"))?;
            key.ecdh(originator.public_key.raw_bytes()).and_then(|z| {
                let kek = derive_kek(kdf, &z, &wrap, k.ukm.as_ref(), kek_len)?;
                unwrap_key(&kek, rek.enc_key.as_bytes())
            })
        }
        _ => {
            return Err(Error::Unsupported {
                what: "recipient",
                detail: "only key transport and key agreement recipients are read".into(),
            });
        }
    };
    // The recovered key when it has the content cipher's length, else the random one, chosen
    // byte by byte without a branch on the outcome (`subtle`).
    let (ok, recovered) = match recovered {
        Ok(cek) if cek.len() == key_len => (subtle::Choice::from(1), cek),
        _ => (subtle::Choice::from(0), Zeroizing::new(vec![0u8; key_len])),
    };
    for (out, got) in fallback.iter_mut().zip(recovered.iter()) {
        subtle::ConditionallySelectable::conditional_assign(out, got, ok);
    }
    Ok(fallback)
}

fn rsa_scheme(alg: &AlgorithmIdentifierOwned) -> Result<RsaTransport> {
    if alg.oid == oid::RSA_ENCRYPTION {
        return Ok(RsaTransport::Pkcs1v15);
    }
    if alg.oid != asn1::ID_RSAES_OAEP {
        return Err(Error::Unsupported {
            what: "key transport",
            detail: oid::display_name(&alg.oid),
        });
    }
    let params: RsaesOaepParams = match &alg.parameters {
        None => RsaesOaepParams {
            hash_func: None,
            mask_gen_func: None,
            p_source_func: None,
        },
        Some(p) => p.decode_as().map_err(Error::decode("RSAES-OAEP-params"))?,
    };
    let hash = match &params.hash_func {
        None => crate::HashAlg::Sha1,
        Some(h) => hash_of(&h.oid).ok_or_else(|| Error::Unsupported {
            what: "OAEP hash",
            detail: oid::display_name(&h.oid),
        })?,
    };
    let mgf_hash = match &params.mask_gen_func {
        None => crate::HashAlg::Sha1,
        Some(m) if m.oid == oid::ID_MGF1 => {
            let inner: AlgorithmIdentifierOwned = m
                .parameters
                .as_ref()
                .ok_or_else(|| Error::invalid("RSAES-OAEP-params", "MGF1 without a hash"))?
                .decode_as()
                .map_err(Error::decode("MGF1 hash"))?;
            hash_of(&inner.oid).ok_or_else(|| Error::Unsupported {
                what: "MGF1 hash",
                detail: oid::display_name(&inner.oid),
            })?
        }
        Some(m) => {
            return Err(Error::Unsupported {
                what: "OAEP mask generation",
                detail: oid::display_name(&m.oid),
            });
        }
    };
    if hash != mgf_hash {
        return Err(Error::Unsupported {
            what: "OAEP parameters",
            detail: format!("{hash:?} with MGF1-{mgf_hash:?}"),
        });
    }
    if let Some(p) = &params.p_source_func {
        let empty = p.oid == asn1::ID_P_SPECIFIED
            && p.parameters.as_ref().is_none_or(|v| {
                v.decode_as::<OctetString>()
                    .is_ok_and(|l| l.as_bytes().is_empty())
            });
        if !empty {
            return Err(Error::Unsupported {
                what: "OAEP label",
                detail: "a non-empty label".into(),
            });
        }
    }
    Ok(RsaTransport::Oaep(hash))
}

fn hash_of(oid: &Oid) -> Option<crate::HashAlg> {
    Some(match *oid {
        o if o == oid::ID_SHA1 => crate::HashAlg::Sha1,
        o if o == oid::ID_SHA256 => crate::HashAlg::Sha256,
        o if o == oid::ID_SHA384 => crate::HashAlg::Sha384,
        o if o == oid::ID_SHA512 => crate::HashAlg::Sha512,
        _ => return None,
    })
}

/// The KDF hash and the key-wrap algorithm of a kari.
fn kari_algorithms(alg: &AlgorithmIdentifierOwned) -> Result<(KdfHash, AlgorithmIdentifierOwned)> {
    let sha2 = [
        KdfHash::Sha224,
        KdfHash::Sha256,
        KdfHash::Sha384,
        KdfHash::Sha512,
    ];
    let kdf = match alg.oid {
        o if o == asn1::STD_DH_SHA1_KDF || o == asn1::COFACTOR_DH_SHA1_KDF => KdfHash::Sha1,
        o => match (0..4)
            .find(|&i| o == asn1::STD_DH_SHA2_KDF[i] || o == asn1::COFACTOR_DH_SHA2_KDF[i])
        {
            Some(i) => sha2[i],
            None => {
                return Err(Error::Unsupported {
                    what: "key agreement",
                    detail: oid::display_name(&o),
                });
            }
        },
    };
    let wrap: AlgorithmIdentifierOwned = alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::invalid("key agreement", "no key-wrap algorithm"))?
        .decode_as()
        .map_err(Error::decode("key-wrap algorithm"))?;
    Ok((kdf, wrap))
}

/// Decrypts the content with `cek`. Every failure here is [`Error::NotDecryptable`].
fn decrypt_content(parsed: &Parsed, cek: &[u8]) -> Result<Vec<u8>> {
    match parsed.alg {
        ContentAlg::Gcm(len) => {
            let params: GcmParameters = parsed
                .alg_params
                .as_ref()
                .ok_or_else(|| Error::invalid("AES-GCM", "no GCMParameters"))?
                .decode_as()
                .map_err(Error::decode("GCMParameters"))?;
            if params.icv_len != 16 || parsed.mac.len() != 16 {
                return Err(Error::Unsupported {
                    what: "AES-GCM tag length",
                    detail: format!("{} bytes (only 16 are read)", params.icv_len),
                });
            }
            let nonce: [u8; 12] =
                params
                    .nonce
                    .as_bytes()
                    .try_into()
                    .map_err(|_| Error::Unsupported {
                        what: "AES-GCM nonce length",
                        detail: format!(
                            "{} bytes (only 12 are read)",
                            params.nonce.as_bytes().len()
                        ),
                    })?;
            let alg = match len {
                16 => &aead::AES_128_GCM,
                24 => &aead::AES_192_GCM,
                _ => &aead::AES_256_GCM,
            };
            let key =
                LessSafeKey::new(UnboundKey::new(alg, cek).map_err(|_| Error::NotDecryptable)?);
            let mut plain = parsed.ciphertext.clone();
            let n = key
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(parsed.aad.as_slice()),
                    &parsed.mac,
                    &mut plain,
                )
                .map_err(|_| Error::NotDecryptable)?
                .len();
            plain.truncate(n);
            Ok(plain)
        }
        ContentAlg::Cbc(len) => {
            let iv: OctetString = parsed
                .alg_params
                .as_ref()
                .ok_or_else(|| Error::invalid("AES-CBC", "no IV"))?
                .decode_as()
                .map_err(Error::decode("AES-CBC IV"))?;
            let iv: [u8; 16] = iv
                .as_bytes()
                .try_into()
                .map_err(|_| Error::invalid("AES-CBC", "the IV is not 16 bytes"))?;
            if parsed.ciphertext.is_empty() || !parsed.ciphertext.len().is_multiple_of(16) {
                return Err(Error::NotDecryptable);
            }
            let alg = match len {
                16 => &cipher::AES_128,
                24 => &cipher::AES_192,
                _ => &cipher::AES_256,
            };
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(alg, cek).map_err(|_| Error::NotDecryptable)?,
            )
            .map_err(|_| Error::NotDecryptable)?;
            let mut plain = parsed.ciphertext.clone();
            let n = key
                .decrypt(
                    &mut plain,
                    DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv)),
                )
                .map_err(|_| Error::NotDecryptable)?
                .len();
            plain.truncate(n);
            Ok(plain)
        }
    }
}

fn unwrap_key(kek: &[u8], wrapped: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, Failed> {
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let n = match kek.len() {
        16 => KeyEncryptionKey::new(&key_wrap::AES_128, kek)
            .map_err(|_| Failed)?
            .unwrap(wrapped, &mut out)
            .map_err(|_| Failed)?
            .len(),
        32 => KeyEncryptionKey::new(&key_wrap::AES_256, kek)
            .map_err(|_| Failed)?
            .unwrap(wrapped, &mut out)
            .map_err(|_| Failed)?
            .len(),
        _ => return Err(Failed),
    };
    out.truncate(n);
    Ok(out)
}
