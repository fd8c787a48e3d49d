//! A [`Signer`] whose private key lives in a PKCS#11 token (an HSM; SoftHSM2 in tests), through
//! cryptoki. The key never leaves the token: we send it a digest (ECDSA) or the message
//! (RSA PKCS#1 v1.5 with SHA-256 inside the token) and get a signature back.
//!
//! The algorithm and public key come from the key's certificate; at open the token signs a
//! probe that is verified against that certificate's key, so a certificate for another key is
//! refused before the first token, as with file keys.
//!
//! Sessions: PKCS#11 lets several sessions of one application share the login, so signing
//! threads take a session from a pool and put it back; the pool grows up to the token's own
//! session limit (`ulMaxSessionCount`) and waits when it is reached (the authority's signing
//! threads, one per core, are fewer on small machines). A session whose signature failed is
//! dropped, and new sessions log in again with the kept PIN, so a token reset heals.

use super::{SignatureAlgorithm, Signer};
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};
use cryptoki::types::AuthPin;
use der::Decode;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use zeroize::Zeroizing;

/// Sessions opened when the token sets no limit.
const DEFAULT_MAX_SESSIONS: usize = 16;

/// Where the key is.
pub struct Pkcs11Key<'a> {
    /// The PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`).
    pub module: &'a Path,
    /// The token's label.
    pub token_label: &'a str,
    /// The private key's label (CKA_LABEL).
    pub key_label: &'a str,
    /// The user PIN.
    pub pin: &'a Zeroizing<String>,
}

struct Pool {
    idle: Vec<Session>,
    open: usize,
}

/// A private key found in a token, and the pool of sessions its operations share.
struct TokenKey {
    ctx: Pkcs11,
    slot: Slot,
    key: ObjectHandle,
    pool: Mutex<Pool>,
    freed: Condvar,
    max_sessions: usize,
    /// Kept to log in again after the token forgot the login (a reset, a failover).
    pin: Zeroizing<String>,
}

/// A signing key in a PKCS#11 token.
pub struct Pkcs11Signer {
    token: TokenKey,
    algorithm: SignatureAlgorithm,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("algorithm", &self.algorithm)
            .field("max_sessions", &self.token.max_sessions)
            .finish_non_exhaustive()
    }
}

/// The module's context: PKCS#11 allows one C_Initialize per process and library, so every
/// key of one module (the TSA's and the CA's, say) shares it; it is never finalised.
fn context(module: &Path) -> Result<Pkcs11> {
    static CONTEXTS: Mutex<Vec<(std::path::PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
    let mut all = CONTEXTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, ctx)) = all.iter().find(|(m, _)| m == module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module)
        .map_err(|e| Error::Key(format!("PKCS#11 module {}: {e}", module.display())))?;
    ctx.initialize(CInitializeArgs::OsThreads)
        .map_err(hsm("initialize"))?;
    all.push((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

/// The module's context, the slot of the token labelled `k.token_label`, and a session on it
/// (read-write when `rw`) logged in as the user. The login is the application's: a second key
/// of the same token finds it done.
fn logged_in(k: &Pkcs11Key<'_>, rw: bool) -> Result<(Pkcs11, Slot, Session)> {
    let ctx = context(k.module)?;
    let slot = ctx
        .get_slots_with_initialized_token()
        .map_err(hsm("listing slots"))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == k.token_label)
        })
        .ok_or_else(|| {
            Error::Key(format!(
                "PKCS#11: no initialised token labelled {:?}",
                k.token_label
            ))
        })?;
    let session = if rw {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(hsm("opening a session"))?;
    match session.login(UserType::User, Some(&AuthPin::new(k.pin.as_str().into()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
            Ok((ctx, slot, session))
        }
        Err(e) => Err(hsm("login (is the PIN right?)")(e)),
    }
}

fn hsm(what: &str) -> impl FnOnce(cryptoki::error::Error) -> Error + '_ {
    move |e| Error::Key(format!("PKCS#11: {what}: {e}"))
}

impl TokenKey {
    /// Opens the token, logs in, and finds the private key labelled `k.key_label`, which must
    /// be of type `wanted` (the certificate's, named `cert_kind` in the error).
    fn open(k: &Pkcs11Key<'_>, wanted: KeyType, cert_kind: &str) -> Result<TokenKey> {
        let (ctx, slot, session) = logged_in(k, false)?;
        let max_sessions = match ctx
            .get_token_info(slot)
            .map_err(hsm("token info"))?
            .max_session_count()
        {
            Limit::Max(n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_SESSIONS).max(1),
            Limit::Unavailable | Limit::Infinite => DEFAULT_MAX_SESSIONS,
        };
        let keys = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(k.key_label.as_bytes().to_vec()),
            ])
            .map_err(hsm("finding the key"))?;
        let key = match keys.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::Key(format!(
                    "PKCS#11: no private key labelled {:?} in token {:?}",
                    k.key_label, k.token_label
                )));
            }
            more => {
                return Err(Error::Key(format!(
                    "PKCS#11: {} private keys labelled {:?}: make the label unique",
                    more.len(),
                    k.key_label
                )));
            }
        };
        // The token's key type must be the certificate's: a mechanism for another key type is
        // an obscure token error at the first operation, not a clear one here.
        let types = session
            .get_attributes(key, &[AttributeType::KeyType])
            .map_err(hsm("reading the key type"))?;
        match types.first() {
            Some(Attribute::KeyType(t)) if *t == wanted => {}
            Some(Attribute::KeyType(t)) => {
                return Err(Error::Certificate(format!(
                    "the certificate is for an {cert_kind} key, the PKCS#11 key {:?} is {}",
                    k.key_label, t
                )));
            }
            _ => return Err(Error::Key("PKCS#11: the key has no CKA_KEY_TYPE".into())),
        }
        Ok(TokenKey {
            ctx,
            slot,
            key,
            pool: Mutex::new(Pool {
                idle: vec![session],
                open: 1,
            }),
            freed: Condvar::new(),
            max_sessions,
            pin: k.pin.clone(),
        })
    }

    /// Runs `f` on a pooled session; `what` names the operation in an error. A session is
    /// dropped only when the error says the session or the token is gone (a reset, a removed
    /// device, a lost login): an operation error (bad arguments, a padding failure) leaves it
    /// usable, and closing the application's last session would log it out and invalidate the
    /// key's handle.
    fn with_session<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Session, ObjectHandle) -> std::result::Result<T, cryptoki::error::Error>,
    ) -> Result<T> {
        use cryptoki::error::{Error as Ck, RvError};
        let session = self.take()?;
        let result = f(&session, self.key);
        let session_gone = matches!(
            &result,
            Err(Ck::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::TokenNotPresent
                    | RvError::UserNotLoggedIn
                    | RvError::CryptokiNotInitialized,
                _
            ))
        );
        if session_gone {
            drop(session);
            self.forget_session();
        } else {
            self.give_back(session);
        }
        result.map_err(hsm(what))
    }

    fn take(&self) -> Result<Session> {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(s) = pool.idle.pop() {
                return Ok(s);
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                return self.open_session().inspect_err(|_| self.forget_session());
            }
            pool = self
                .freed
                .wait(pool)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// A new session, logged in: a new session of a logged-in application is logged in
    /// already; after a token reset the login is made again with the kept PIN.
    fn open_session(&self) -> Result<Session> {
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(hsm("opening a session"))?;
        match session.login(
            UserType::User,
            Some(&AuthPin::new(self.pin.as_str().into())),
        ) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => Ok(session),
            Err(e) => Err(hsm("login again")(e)),
        }
    }

    fn give_back(&self, s: Session) {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.idle.push(s);
        self.freed.notify_one();
    }

    /// A session that failed is not reused (it may be invalid after a token reset): its slot
    /// frees for a new one, and a waiting caller is woken to open it.
    fn forget_session(&self) {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.open = pool.open.saturating_sub(1);
        self.freed.notify_one();
    }
}

impl Pkcs11Signer {
    /// Opens the token, logs in, finds the private key by label, and checks with a probe
    /// signature that it belongs to `certificate` (DER), whose key fixes the algorithm.
    pub fn open(k: &Pkcs11Key<'_>, certificate: &[u8]) -> Result<Pkcs11Signer> {
        let cert = crate::cert::parse(certificate)?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let algorithm = algorithm_for(spki)?;
        let (wanted, cert_kind) = match algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 | SignatureAlgorithm::EcdsaP384Sha384 => {
                (KeyType::EC, "EC")
            }
            _ => (KeyType::RSA, "RSA"),
        };
        let signer = Pkcs11Signer {
            token: TokenKey::open(k, wanted, cert_kind)?,
            algorithm,
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
        };
        // The probe: the token's key must verify under the certificate's.
        let probe = b"sigillum: does this token key belong to the certificate?";
        let sig = signer.sign(probe)?;
        crate::verify::verify_signature(
            spki,
            &algorithm.algorithm_identifier()?,
            algorithm.digest(),
            probe,
            &sig,
        )
        .map_err(|_| {
            Error::Certificate(format!(
                "the certificate does not belong to the PKCS#11 key {:?}",
                k.key_label
            ))
        })?;
        Ok(signer)
    }

    /// Most sessions this signer opens (the token's limit).
    pub fn max_sessions(&self) -> usize {
        self.token.max_sessions
    }
}

/// What key [`generate`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256.
    EcdsaP256,
    /// RSA, 2048 bits.
    Rsa2048,
}

/// Makes a key pair inside the token (private half sensitive and not extractable, both halves
/// stored on the token under `k.key_label`) and returns its SubjectPublicKeyInfo DER. Refuses
/// a label that is taken.
pub fn generate(k: &Pkcs11Key<'_>, kind: KeyKind) -> Result<Vec<u8>> {
    let (_, _, session) = logged_in(k, true)?;
    let label = k.key_label.as_bytes().to_vec();
    let taken = session
        .find_objects(&[Attribute::Label(label.clone())])
        .map_err(hsm("looking for the label"))?;
    if !taken.is_empty() {
        return Err(Error::Key(format!(
            "PKCS#11: token {:?} already holds objects labelled {:?}",
            k.token_label, k.key_label
        )));
    }
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.clone()),
    ];
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::Label(label),
    ];
    let mechanism = match kind {
        KeyKind::EcdsaP256 => {
            public.push(Attribute::EcParams(crate::signer::to_der(
                &crate::oid::SECP256R1,
            )?));
            Mechanism::EccKeyPairGen
        }
        KeyKind::Rsa2048 => {
            public.push(Attribute::ModulusBits(2048.into()));
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    let (pub_handle, _) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(hsm("generating the key pair"))?;
    let (algorithm, bits) = match kind {
        KeyKind::EcdsaP256 => {
            let attrs = session
                .get_attributes(pub_handle, &[AttributeType::EcPoint])
                .map_err(hsm("reading the public key"))?;
            let Some(Attribute::EcPoint(point)) = attrs.first() else {
                return Err(Error::Key(
                    "PKCS#11: the new key has no CKA_EC_POINT".into(),
                ));
            };
            // CKA_EC_POINT is the DER OCTET STRING around the point.
            let point = der::asn1::OctetString::from_der(point)
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_else(|_| point.clone());
            (
                spki::AlgorithmIdentifierOwned {
                    oid: crate::oid::ID_EC_PUBLIC_KEY,
                    parameters: Some(der::Any::from(crate::oid::SECP256R1)),
                },
                point,
            )
        }
        KeyKind::Rsa2048 => {
            let attrs = session
                .get_attributes(
                    pub_handle,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(hsm("reading the public key"))?;
            let (mut n, mut e) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => n = Some(m),
                    Attribute::PublicExponent(x) => e = Some(x),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err(Error::Key(
                    "PKCS#11: the new key has no modulus or exponent".into(),
                ));
            };
            let rsa_public_key =
                crate::raw::tlv(der::Tag::Sequence, &[&uint_der(&n)?, &uint_der(&e)?])?;
            (
                spki::AlgorithmIdentifierOwned {
                    oid: crate::oid::RSA_ENCRYPTION,
                    parameters: Some(der::Any::from(der::asn1::Null)),
                },
                rsa_public_key,
            )
        }
    };
    crate::signer::to_der(&spki::SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: der::asn1::BitString::from_bytes(&bits).map_err(Error::Encode)?,
    })
}

/// The signature algorithm for a certificate's key: ECDSA with the curve's hash, RSA PKCS#1
/// v1.5 with SHA-256.
fn algorithm_for(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<SignatureAlgorithm> {
    if spki.algorithm.oid == crate::oid::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == crate::oid::SECP256R1 => Ok(SignatureAlgorithm::EcdsaP256Sha256),
            Some(c) if c == crate::oid::SECP384R1 => Ok(SignatureAlgorithm::EcdsaP384Sha384),
            other => Err(Error::Unsupported {
                what: "PKCS#11 EC curve",
                detail: format!("{other:?}"),
            }),
        };
    }
    if spki.algorithm.oid == crate::oid::RSA_ENCRYPTION {
        return Ok(SignatureAlgorithm::RsaPkcs1(HashAlg::Sha256));
    }
    Err(Error::Unsupported {
        what: "PKCS#11 key type",
        detail: crate::oid::display_name(&spki.algorithm.oid),
    })
}

/// A big-endian magnitude as a DER INTEGER (leading zeros dropped, a sign octet added).
fn uint_der(magnitude: &[u8]) -> Result<Vec<u8>> {
    crate::signer::to_der(&der::asn1::UintRef::new(magnitude).map_err(Error::Encode)?)
}

/// PKCS#11 ECDSA gives r‖s; CMS wants `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
fn ecdsa_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(Error::Key(format!(
            "PKCS#11: an ECDSA signature of {} bytes",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    crate::raw::tlv(der::Tag::Sequence, &[&uint_der(r)?, &uint_der(s)?])
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 | SignatureAlgorithm::EcdsaP384Sha384 => {
                let digest = self.algorithm.digest().digest(message);
                let raw = self.token.with_session("signing", |session, key| {
                    session.sign(&Mechanism::Ecdsa, key, &digest)
                })?;
                ecdsa_der(&raw)
            }
            _ => self.token.with_session("signing", |session, key| {
                session.sign(&Mechanism::Sha256RsaPkcs, key, message)
            }),
        }
    }

    fn is_slow(&self) -> bool {
        true
    }
}

/// A decryption key in a PKCS#11 token, for [`crate::envelope::decrypt`]: RSA key transport
/// inside the token (CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS), or ECDH (CKM_ECDH1_DERIVE into a session
/// secret that is read once and destroyed: the X9.63 KDF and key unwrap then run in software,
/// as RFC 5753 asks for a KDF PKCS#11 does not name). The private key never leaves the token.
/// The key needs CKA_DECRYPT (RSA) or CKA_DERIVE (EC).
pub struct Pkcs11Decrypter {
    token: TokenKey,
    kind: crate::envelope::KeyKind,
    public_key: Vec<u8>,
    /// The RSA schemes the token was seen to decrypt with at open.
    schemes: Vec<crate::envelope::RsaTransport>,
}

impl std::fmt::Debug for Pkcs11Decrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Decrypter")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Decrypter {
    /// Opens the token, logs in, finds the private key by label, and checks with a probe (an
    /// OAEP decryption, or an ECDH agreement compared with one made in software) that it
    /// belongs to `certificate` (DER).
    pub fn open(k: &Pkcs11Key<'_>, certificate: &[u8]) -> Result<Pkcs11Decrypter> {
        use crate::envelope::{Decrypter, KeyKind};
        let cert = crate::cert::parse(certificate)?;
        let spki_der = der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info)
            .map_err(Error::Encode)?;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&spki_der)
            .map_err(Error::decode("certificate public key"))?;
        let kind = KeyKind::of_spki(&spki)?;
        let (wanted, name) = match kind {
            KeyKind::Rsa => (KeyType::RSA, "RSA"),
            KeyKind::EcP256 | KeyKind::EcP384 => (KeyType::EC, "EC"),
        };
        let mut d = Pkcs11Decrypter {
            token: TokenKey::open(k, wanted, name)?,
            kind,
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
            schemes: Vec::new(),
        };
        let not_ours = || {
            Error::Certificate(format!(
                "the certificate does not belong to the PKCS#11 key {:?} (or the key may not \
                 decrypt or derive: CKA_DECRYPT / CKA_DERIVE)",
                k.key_label
            ))
        };
        let probe = b"sigillum: does this token key decrypt for the certificate?";
        match kind.agreement() {
            None => {
                // Each scheme is tried once: one that opens the probe proves the key is the
                // certificate's, and the ones that work are recorded, so that a message the
                // token cannot open gets a plain "unsupported" rather than the opaque failure
                // (a FIPS-mode token may refuse PKCS#1 v1.5, SoftHSM2 OAEP with SHA-2).
                use crate::envelope::RsaTransport;
                let public = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki_der)
                    .map_err(|e| Error::Certificate(format!("the RSA key: {e}")))?;
                let mut sealed = vec![0u8; public.key_size_bytes()];
                let v15 = aws_lc_rs::rsa::Pkcs1PublicEncryptingKey::new(public.clone())
                    .map_err(|_| Error::Certificate("the RSA key".into()))?;
                let oaep = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(public)
                    .map_err(|_| Error::Certificate("the RSA key".into()))?;
                for (scheme, alg) in [
                    (RsaTransport::Pkcs1v15, None),
                    (
                        RsaTransport::Oaep(HashAlg::Sha1),
                        Some(&aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1),
                    ),
                    (
                        RsaTransport::Oaep(HashAlg::Sha256),
                        Some(&aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256),
                    ),
                    (
                        RsaTransport::Oaep(HashAlg::Sha384),
                        Some(&aws_lc_rs::rsa::OAEP_SHA384_MGF1SHA384),
                    ),
                    (
                        RsaTransport::Oaep(HashAlg::Sha512),
                        Some(&aws_lc_rs::rsa::OAEP_SHA512_MGF1SHA512),
                    ),
                ] {
                    let n = match alg {
                        None => v15.encrypt(probe, &mut sealed),
                        Some(alg) => oaep.encrypt(alg, probe, &mut sealed, None),
                    }
                    .map_err(|_| Error::Key("RSA encryption failed".into()))?
                    .len();
                    if d.rsa_decrypt(scheme, &sealed[..n])
                        .is_ok_and(|o| o.as_slice() == probe)
                    {
                        d.schemes.push(scheme);
                    }
                }
                if d.schemes.is_empty() {
                    return Err(not_ours());
                }
            }
            Some(curve) => {
                let ephemeral = aws_lc_rs::agreement::PrivateKey::generate(curve)
                    .map_err(|_| Error::Key("cannot generate an EC key".into()))?;
                let ephemeral_public = ephemeral
                    .compute_public_key()
                    .map_err(|_| Error::Key("cannot compute an EC public key".into()))?;
                let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(curve, &d.public_key);
                let ours = aws_lc_rs::agreement::agree(&ephemeral, peer, (), |z| Ok(z.to_vec()))
                    .map_err(|()| not_ours())?;
                let theirs = d.ecdh(ephemeral_public.as_ref()).map_err(|_| not_ours())?;
                if theirs.as_slice() != ours.as_slice() {
                    return Err(not_ours());
                }
            }
        }
        Ok(d)
    }
}

impl crate::envelope::Decrypter for Pkcs11Decrypter {
    fn kind(&self) -> crate::envelope::KeyKind {
        self.kind
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn supports(&self, scheme: crate::envelope::RsaTransport) -> std::result::Result<(), String> {
        if self.schemes.contains(&scheme) {
            return Ok(());
        }
        let did: Vec<String> = self.schemes.iter().map(ToString::to_string).collect();
        Err(format!(
            "the PKCS#11 token does not decrypt {scheme} (it did: {}; SoftHSM2 2.6 does OAEP \
             only with SHA-1)",
            did.join(", ")
        ))
    }

    fn rsa_decrypt(
        &self,
        scheme: crate::envelope::RsaTransport,
        ciphertext: &[u8],
    ) -> std::result::Result<Zeroizing<Vec<u8>>, crate::envelope::Failed> {
        use cryptoki::mechanism::MechanismType;
        use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
        let mechanism = match scheme {
            crate::envelope::RsaTransport::Pkcs1v15 => Mechanism::RsaPkcs,
            crate::envelope::RsaTransport::Oaep(hash) => {
                let (h, mgf) = match hash {
                    HashAlg::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
                    HashAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
                    HashAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
                    HashAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
                };
                Mechanism::RsaPkcsOaep(PkcsOaepParams::new(h, mgf, PkcsOaepSource::empty()))
            }
        };
        self.token
            .with_session("decrypting", |session, key| {
                session
                    .decrypt(&mechanism, key, ciphertext)
                    .map(Zeroizing::new)
            })
            .map_err(|_| crate::envelope::Failed)
    }

    fn ecdh(
        &self,
        peer_point: &[u8],
    ) -> std::result::Result<Zeroizing<Vec<u8>>, crate::envelope::Failed> {
        use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
        let field: u64 = match self.kind {
            crate::envelope::KeyKind::EcP256 => 32,
            crate::envelope::KeyKind::EcP384 => 48,
            crate::envelope::KeyKind::Rsa => return Err(crate::envelope::Failed),
        };
        // The originator's point comes from the message: it must be a point of the key's curve
        // (aws-lc parses and checks it), whatever the token would do with an invalid one (an
        // invalid-curve point would leak the key a few bits per message).
        let curve = self.kind.agreement().ok_or(crate::envelope::Failed)?;
        let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(curve, peer_point);
        aws_lc_rs::agreement::ParsedPublicKey::try_from(&peer)
            .map_err(|_| crate::envelope::Failed)?;
        let value = self
            .token
            .with_session("ECDH", |session, key| {
                let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point);
                let template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::ValueLen(field.into()),
                ];
                let secret = session.derive_key(&Mechanism::Ecdh1Derive(params), key, &template)?;
                let value = session.get_attributes(secret, &[AttributeType::Value]);
                // The session object goes at once, whatever the read gave.
                let _ = session.destroy_object(secret);
                value
            })
            .map_err(|_| crate::envelope::Failed)?;
        match value.into_iter().next() {
            Some(Attribute::Value(v)) => Ok(Zeroizing::new(v)),
            _ => Err(crate::envelope::Failed),
        }
    }
}
