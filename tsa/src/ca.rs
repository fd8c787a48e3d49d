//! The email-certificate CA: CMP enrolment (RFC 9810, lightweight profile RFC 9483), one-time
//! enrolment codes as proof of control of an address, the directory, OCSP and the CRL.
//!
//! All state lives in the archive database ([`crate::archive`], migration `0002_ca.sql`), so
//! several nodes serve one CA. The ASN.1 is `pki`'s ([`pki::cmp`], [`pki::ca`]); this module
//! decides: who may ask for what, which address a certificate binds, when a transaction is
//! replayed.
//!
//! **Enrolment codes.** A code is a reference (public, the CMP senderKID) and a secret (the
//! MAC password). The secret is never stored: it is HMAC-SHA256 of the reference and the
//! address under the enrolment key (a file only the CA's nodes read), so a copy of the
//! database alone cannot enrol anyone; only the secret's SHA-256 is kept, compared in constant
//! time, which also retires every code when the key changes. A code is valid for
//! `code_ttl_secs` (15 minutes by default), for one ir; its certConf is authorised by the same
//! code within the same transaction.
//!
//! **Who may ask for what.** ir: an enrolment code (MAC). cr and p10cr: a code or a signature
//! by an active certificate of this CA (a second key, e.g. the encryption certificate on
//! `/.well-known/cmp/p/encryption`). kur and rr: a signature by the certificate concerned
//! (rr revokes only the signer's own certificate). genm: anyone (the CA's certificates are
//! public). Every certificate binds exactly the address that was proven, whatever the template
//! asks; a template that asks for another address is refused (badCertTemplate).
//!
//! **Replays.** Every transactionID opens one transaction and every senderNonce is recorded,
//! so a replayed message is refused before anything is issued: a replayed ir first on its
//! spent code (notAuthorized, checked before the nonce), a replayed cr, kur, rr or certConf on
//! its senderNonce (badSenderNonce), a new message reusing a transactionID on that
//! (transactionIdInUse).

pub mod http;
mod mail;

pub use mail::Mailer;

use crate::archive::{
    Archive, ArchiveError, CaCertificate, CertState, CodeLimits, CodeProblem, EnrolmentCode,
    Transaction,
};
use crate::config::Config;
use crate::keys::{self, Identity, KeyError};
use pki::asn1::FailureInfo;
use pki::ca::{Ca, EmailCertificate, Usage};
use pki::cmp::{self, CertKind, Message, Protection, Reply, ReplyBody, Request};
use zeroize::Zeroizing;

/// id-it-caCerts (RFC 9810 §5.3.19.19).
const ID_IT_CA_CERTS: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");
/// id-it-rootCaCert (RFC 9810 §5.3.19.20), answered by id-it-rootCaKeyUpdate.
const ID_IT_ROOT_CA_CERT: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.20");
const ID_IT_ROOT_CA_KEY_UPDATE: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.18");

/// How long a CRL is valid; it is regenerated once less than half of it is left.
const CRL_PERIOD: i64 = 7 * 86_400;
/// How long an OCSP response is valid.
const OCSP_PERIOD: i64 = 3_600;
/// Bytes of secret in an enrolment code (hex: 30 characters, 120 bits).
const SECRET_BYTES: usize = 15;

/// The CA as the server runs it.
pub struct CaService {
    identity: Identity,
    ocsp: Option<Identity>,
    base_url: String,
    validity_days: u32,
    code_ttl: i64,
    limits: CodeLimits,
    enrolment_key: Zeroizing<Vec<u8>>,
    mailer: Option<Mailer>,
}

/// A refusal: the failInfo bit and what to tell the requester.
type Refusal = (FailureInfo, String);

fn refuse<T>(fail: FailureInfo, text: impl Into<String>) -> Result<T, Refusal> {
    Err((fail, text.into()))
}

/// Who a request comes from, once its protection verified.
enum Auth {
    /// Unprotected (genm only).
    Anyone,
    /// MAC with an enrolment code.
    Code {
        code: EnrolmentCode,
        secret: Zeroizing<Vec<u8>>,
    },
    /// Signed by an issued certificate.
    Cert(CaCertificate),
}

fn system(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "CA: internal failure");
    (
        FailureInfo::SystemFailure,
        "internal failure; try again later".to_owned(),
    )
}

fn archive_err(e: ArchiveError) -> Refusal {
    system(e)
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An address as the CA keys it: trimmed, lower case, and plausible (one `@`, no spaces or
/// control characters, at most 254 characters).
pub fn normalise_email(email: &str) -> Option<String> {
    let e = email.trim().to_ascii_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !domain.contains('@')
        && e.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | ',' | ';' | '\\'));
    ok.then_some(e)
}

fn random_bytes(bytes: usize) -> Result<Vec<u8>, Refusal> {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| system("no randomness"))?;
    Ok(b)
}

impl CaService {
    /// Loads the CA's key and certificate, the delegated OCSP responder and the enrolment key,
    /// and the mail relay settings.
    pub fn load(cfg: &Config) -> Result<CaService, KeyError> {
        let identity = keys::load_ca_identity(cfg)?;
        let signs = identity
            .cert
            .cert
            .tbs_certificate
            .get::<x509_cert::ext::pkix::KeyUsage>()
            .ok()
            .flatten()
            .is_none_or(|(_, ku)| ku.digital_signature());
        if !signs {
            tracing::warn!(
                "the CA certificate's keyUsage lacks digitalSignature: openssl cmp refuses its \
                 signed CMP replies, and OCSP clients its responses (configure ca.ocsp_key)"
            );
        }
        let ocsp = keys::load_ocsp_identity(cfg)?;
        let key_path = cfg
            .ca
            .enrolment_key
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join("enrolment.key"));
        let enrolment_key = keys::enrolment_key(&key_path)?;
        let mailer = cfg
            .ca
            .smtp
            .as_ref()
            .map(Mailer::new)
            .transpose()
            .map_err(|e| KeyError::Unusable {
                path: "[ca.smtp]".into(),
                detail: e.to_string(),
            })?;
        Ok(CaService {
            identity,
            ocsp,
            base_url: cfg.ca_public_url(),
            validity_days: cfg.ca.validity_days,
            code_ttl: i64::from(cfg.ca.code_ttl_secs),
            limits: CodeLimits {
                per_email: i64::from(cfg.ca.codes_per_address),
                per_client: i64::from(cfg.ca.codes_per_client),
                window: i64::from(cfg.ca.code_window_secs),
            },
            enrolment_key,
            mailer,
        })
    }

    fn ca(&self) -> Ca<'_> {
        Ca {
            signer: self.identity.signer.as_ref(),
            cert: &self.identity.cert,
            ocsp_url: Some(format!("{}/ocsp", self.base_url)),
            ca_issuers_url: Some(format!("{}/ca.cer", self.base_url)),
            crl_url: Some(format!("{}/crl", self.base_url)),
        }
    }

    /// The CA certificate, DER.
    pub fn certificate(&self) -> &[u8] {
        &self.identity.cert.der
    }

    /// The mail relay, when configured.
    pub fn mailer(&self) -> Option<&Mailer> {
        self.mailer.as_ref()
    }

    /// The secret of the code `reference` for `email` (hex).
    fn secret_for(&self, reference: &str, email: &str) -> Zeroizing<Vec<u8>> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.enrolment_key);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(b"sigillum enrolment code v1\0");
        ctx.update(reference.as_bytes());
        ctx.update(b"\0");
        ctx.update(email.as_bytes());
        let tag = ctx.sign();
        Zeroizing::new(hex::encode(&tag.as_ref()[..SECRET_BYTES]).into_bytes())
    }

    /// Creates a one-time code for `email` on behalf of `client`, within the rate limits:
    /// `(reference, secret, expires_at)`.
    pub async fn new_code(
        &self,
        archive: &Archive,
        email: &str,
        client: &str,
    ) -> Result<Result<(String, Zeroizing<String>, i64), CodeProblem>, ArchiveError> {
        let now = now();
        let reference = hex::encode(random_bytes(6).map_err(|(_, t)| ArchiveError::CorruptCa(t))?);
        let secret = self.secret_for(&reference, email);
        let code = EnrolmentCode {
            reference: reference.clone(),
            email: email.to_owned(),
            secret_hash: ring::digest::digest(&ring::digest::SHA256, &secret)
                .as_ref()
                .to_vec(),
            client: client.to_owned(),
            created_at: now,
            expires_at: now + self.code_ttl,
            used_at: None,
        };
        Ok(archive
            .insert_enrolment_code(&code, self.limits)
            .await?
            .map(|()| {
                (
                    reference,
                    Zeroizing::new(String::from_utf8_lossy(&secret).into_owned()),
                    code.expires_at,
                )
            }))
    }

    /// Answers one CMP message (DER in, DER out): always a PKIMessage, an error message when
    /// the request is refused. `profile` is the `/p/<profile>` path segment.
    pub async fn cmp(&self, archive: &Archive, profile: Option<&str>, der: &[u8]) -> Vec<u8> {
        let now = now();
        let ca = self.ca();
        let reply = Reply {
            ca: &ca,
            chain: &self.identity.chain,
        };
        let nonce = match cmp::fresh_nonce() {
            Ok(n) => n,
            Err(e) => return self.fallback(&reply, None, system(e), now),
        };
        let msg = match cmp::parse(der) {
            Ok(m) => m,
            Err(e) => {
                return self.fallback(
                    &reply,
                    None,
                    (
                        FailureInfo::BadDataFormat,
                        format!("the message does not parse: {e}"),
                    ),
                    now,
                );
            }
        };
        let auth = match self.authenticate(archive, &msg, now).await {
            Ok(a) => a,
            Err(r) => return self.fallback(&reply, Some(&msg), r, now),
        };
        let protection = match &auth {
            Auth::Code { secret, .. } => match &msg.protection_alg {
                Some(algorithm) => Protection::Mac { algorithm, secret },
                None => Protection::Signature,
            },
            _ => Protection::Signature,
        };
        let outcome = self
            .decide(archive, &msg, &auth, profile, &nonce, now)
            .await;
        let (body, implicit) = match outcome {
            Ok(x) => x,
            Err((fail, text)) => {
                tracing::info!(fail = fail.name(), %text, body = msg.body_type, "CMP request refused");
                metrics::counter!("ca_cmp_refused_total", "fail" => fail.name()).increment(1);
                (ReplyBody::Error { fail, text }, false)
            }
        };
        match reply.build(Some(&msg), &body, protection, implicit, &nonce, now) {
            Ok(der) => der,
            Err(e) => self.fallback(&reply, Some(&msg), system(e), now),
        }
    }

    /// A signed error message; if even that fails, an unprotected one (never a panic, never
    /// an empty reply).
    fn fallback(
        &self,
        reply: &Reply<'_>,
        msg: Option<&Message<'_>>,
        r: Refusal,
        now: i64,
    ) -> Vec<u8> {
        let (fail, text) = r;
        tracing::info!(fail = fail.name(), %text, "CMP request refused");
        metrics::counter!("ca_cmp_refused_total", "fail" => fail.name()).increment(1);
        let body = ReplyBody::Error { fail, text };
        let nonce = cmp::fresh_nonce().unwrap_or_else(|_| vec![0; 16]);
        reply
            .build(msg, &body, Protection::Signature, false, &nonce, now)
            .unwrap_or_default()
    }

    async fn authenticate(
        &self,
        archive: &Archive,
        msg: &Message<'_>,
        now: i64,
    ) -> Result<Auth, Refusal> {
        if msg.protection.is_none() || msg.protection_alg.is_none() {
            return if msg.body_type == 21 {
                Ok(Auth::Anyone)
            } else {
                refuse(
                    FailureInfo::BadMessageCheck,
                    "the message is not protected (only genm may be)",
                )
            };
        }
        if msg.is_mac_protected() {
            let Some(reference) = msg
                .sender_kid
                .as_deref()
                .and_then(|k| std::str::from_utf8(k).ok())
            else {
                return refuse(
                    FailureInfo::BadMessageCheck,
                    "MAC protection without the enrolment code's reference in senderKID",
                );
            };
            let Some(code) = archive
                .enrolment_code(reference)
                .await
                .map_err(archive_err)?
            else {
                return refuse(FailureInfo::BadMessageCheck, "unknown enrolment reference");
            };
            let secret = self.secret_for(&code.reference, &code.email);
            let hash = ring::digest::digest(&ring::digest::SHA256, &secret);
            #[allow(deprecated)]
            let same =
                ring::constant_time::verify_slices_are_equal(hash.as_ref(), &code.secret_hash)
                    .is_ok();
            if !same {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "the enrolment code is no longer valid (the CA's enrolment key changed)",
                );
            }
            match msg.verify_mac(&secret) {
                Ok(true) => {}
                Ok(false) => {
                    return refuse(
                        FailureInfo::BadMessageCheck,
                        "the MAC does not verify with the enrolment secret",
                    );
                }
                Err(e) => return refuse(FailureInfo::BadAlg, format!("MAC protection: {e}")),
            }
            // Whether the code is still unused and unexpired is decided with the body (a
            // certConf continues the transaction the code opened), and that refusal is
            // MACed with the secret the requester has proved it knows.
            return Ok(Auth::Code { code, secret });
        }
        let cert = match msg.verify_signature() {
            Ok(Ok(cert)) => cert,
            Ok(Err(why)) => return refuse(FailureInfo::BadMessageCheck, why),
            Err(e) => return refuse(FailureInfo::BadMessageCheck, e.to_string()),
        };
        let ca_raw = pki::cert_raw::RawCert::parse(&self.identity.cert.der).map_err(system)?;
        let raw = pki::cert_raw::RawCert::parse(cert)
            .map_err(|e| (FailureInfo::BadDataFormat, e.to_string()))?;
        if !pki::path::signed_by(&ca_raw, &raw) {
            return refuse(
                FailureInfo::SignerNotTrusted,
                "the protecting certificate was not issued by this CA",
            );
        }
        let serial = raw.serial.strip_prefix(&[0]).unwrap_or(raw.serial);
        let Some(row) = archive.certificate(serial).await.map_err(archive_err)? else {
            return refuse(
                FailureInfo::SignerNotTrusted,
                "the protecting certificate is unknown",
            );
        };
        if row.revoked_at.is_some() {
            return refuse(
                FailureInfo::CertRevoked,
                "the protecting certificate is revoked",
            );
        }
        if row.not_after <= now || row.not_before > now {
            return refuse(
                FailureInfo::SignerNotTrusted,
                "the protecting certificate is not valid now",
            );
        }
        if row.state != CertState::Active {
            return refuse(
                FailureInfo::NotAuthorized,
                "the protecting certificate is not confirmed",
            );
        }
        Ok(Auth::Cert(row))
    }

    /// What to answer, once the sender is known: the body and whether implicit confirmation
    /// is granted.
    async fn decide(
        &self,
        archive: &Archive,
        msg: &Message<'_>,
        auth: &Auth,
        profile: Option<&str>,
        nonce: &[u8],
        now: i64,
    ) -> Result<(ReplyBody, bool), Refusal> {
        let (Some(tid), Some(sender_nonce)) = (&msg.transaction_id, &msg.sender_nonce) else {
            return refuse(
                FailureInfo::BadRequest,
                "transactionID and senderNonce are required (RFC 9483 §3.1)",
            );
        };
        if tid.len() < 8 || sender_nonce.len() < 8 {
            return refuse(
                FailureInfo::BadRequest,
                "transactionID and senderNonce need at least 8 octets (RFC 9483 §3.1)",
            );
        }
        if let Auth::Code { code, .. } = auth
            && msg.body_type != 24
        {
            if code.used_at.is_some() {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "the enrolment code was already used",
                );
            }
            if code.expires_at <= now {
                return refuse(FailureInfo::NotAuthorized, "the enrolment code expired");
            }
        }
        if !archive
            .record_nonce(sender_nonce, now)
            .await
            .map_err(archive_err)?
        {
            return refuse(FailureInfo::BadSenderNonce, "senderNonce replayed");
        }
        let request = Request::read(msg).map_err(|e| {
            (
                FailureInfo::BadDataFormat,
                format!("the body does not parse: {e}"),
            )
        })?;
        match request {
            Request::Certificates(kind, reqs) => {
                self.certify(archive, msg, auth, kind, reqs, profile, nonce, now)
                    .await
            }
            Request::Confirm(confs) => {
                self.confirm(archive, msg, auth, &confs, tid).await?;
                Ok((ReplyBody::Confirmed, false))
            }
            Request::Revoke(revs) => {
                let body = self.revoke(archive, auth, &revs, tid, now).await?;
                Ok((body, false))
            }
            Request::General(types) => {
                self.open(archive, tid, now, false, auth).await?;
                let mut answers = Vec::new();
                for t in types {
                    if t == ID_IT_CA_CERTS {
                        let mut certs = vec![self.identity.cert.der.clone()];
                        certs.extend(self.identity.chain.iter().cloned());
                        let seq = pki::raw::tlv(
                            der::Tag::Sequence,
                            &certs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                        )
                        .map_err(system)?;
                        let any = <der::Any as der::Decode>::from_der(&seq).map_err(system)?;
                        answers.push((ID_IT_CA_CERTS, Some(any)));
                    } else if t == ID_IT_ROOT_CA_CERT {
                        // One root, never rolled over: no update (RFC 9483 §4.3.2, value
                        // absent).
                        answers.push((ID_IT_ROOT_CA_KEY_UPDATE, None));
                    }
                }
                Ok((ReplyBody::General(answers), false))
            }
            Request::Unsupported(n) => refuse(
                FailureInfo::BadRequest,
                format!("PKIBody type {n} is not served by this CA"),
            ),
        }
    }

    /// Opens the transaction `tid` (refused when it was used before).
    async fn open(
        &self,
        archive: &Archive,
        tid: &[u8],
        now: i64,
        open: bool,
        auth: &Auth,
    ) -> Result<(), Refusal> {
        let t = Transaction {
            transaction_id: tid.to_vec(),
            created_at: now,
            open,
            reference: match auth {
                Auth::Code { code, .. } => Some(code.reference.clone()),
                _ => None,
            },
            signer_serial: match auth {
                Auth::Cert(row) => Some(row.serial.clone()),
                _ => None,
            },
            ..Default::default()
        };
        if archive.open_transaction(&t).await.map_err(archive_err)? {
            Ok(())
        } else {
            refuse(
                FailureInfo::TransactionIdInUse,
                "transactionID already used",
            )
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn certify(
        &self,
        archive: &Archive,
        msg: &Message<'_>,
        auth: &Auth,
        kind: CertKind,
        mut reqs: Vec<cmp::CertRequest>,
        profile: Option<&str>,
        nonce: &[u8],
        now: i64,
    ) -> Result<(ReplyBody, bool), Refusal> {
        let usage = match profile {
            None | Some("signing") => Usage::Signing,
            Some("encryption") => Usage::Encryption,
            Some(other) => {
                return refuse(
                    FailureInfo::BadRequest,
                    format!("unknown certificate profile {other:?} (signing, encryption)"),
                );
            }
        };
        if reqs.len() != 1 {
            return refuse(
                FailureInfo::BadRequest,
                "exactly one certificate request per message (RFC 9483 §4.1.1)",
            );
        }
        let req = reqs.remove(0);
        let (email, usage) = match (kind, auth) {
            (CertKind::Ir | CertKind::Cr | CertKind::P10cr, Auth::Code { code, .. }) => {
                (code.email.clone(), usage)
            }
            (CertKind::Cr | CertKind::P10cr, Auth::Cert(row)) => (row.email.clone(), usage),
            (CertKind::Kur, Auth::Cert(row)) => (
                row.email.clone(),
                if row.usage == "encryption" {
                    Usage::Encryption
                } else {
                    Usage::Signing
                },
            ),
            (CertKind::Ir, _) => {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "an ir needs an enrolment code (MAC protection); with a certificate use cr",
                );
            }
            (CertKind::Kur, _) => {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "a kur must be signed with the certificate it updates",
                );
            }
            _ => {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "a certificate request needs an enrolment code or a certificate of this CA",
                );
            }
        };
        if let cmp::Pop::Failed(why) = &req.pop {
            return refuse(FailureInfo::BadPop, why.clone());
        }
        if let Some(other) = req.other_names.first() {
            return refuse(
                FailureInfo::BadCertTemplate,
                format!(
                    "the request asks for {other}; an email certificate binds only the proven \
                     address"
                ),
            );
        }
        if let Some(other) = req.emails.iter().find(|e| !e.eq_ignore_ascii_case(&email)) {
            return refuse(
                FailureInfo::BadCertTemplate,
                format!("the request asks for {other}, but the proven address is {email}"),
            );
        }
        if let (CertKind::Kur, Auth::Cert(row)) = (kind, auth) {
            let old = pki::cert::parse(&row.cert).map_err(system)?;
            let old_spki = der::Encode::to_der(&old.tbs_certificate.subject_public_key_info)
                .map_err(system)?;
            if old_spki == req.public_key_info {
                return refuse(
                    FailureInfo::BadCertTemplate,
                    "a key update needs a new key (the request repeats the old one)",
                );
            }
        }
        let tid = msg.transaction_id.as_deref().unwrap_or_default();
        self.open(archive, tid, now, true, auth).await?;
        if let Auth::Code { code, .. } = auth
            && !archive
                .consume_enrolment_code(&code.reference, now)
                .await
                .map_err(archive_err)?
        {
            return refuse(
                FailureInfo::NotAuthorized,
                "the enrolment code was already used",
            );
        }
        let mut serial = random_bytes(16)?;
        serial[0] = (serial[0] & 0x7f) | 0x01;
        let not_after = now + i64::from(self.validity_days) * 86_400;
        let cert = self
            .ca()
            .issue(&EmailCertificate {
                public_key_info: &req.public_key_info,
                email: &email,
                common_name: req.common_name.as_deref(),
                usage,
                serial: &serial,
                validity: (now - 60, not_after),
            })
            .map_err(|e| (FailureInfo::BadCertTemplate, format!("cannot issue: {e}")))?;
        let implicit = msg.implicit_confirm;
        archive
            .insert_certificate(&CaCertificate {
                serial: serial.clone(),
                email: email.clone(),
                usage: match usage {
                    Usage::Signing => "signing",
                    Usage::Encryption => "encryption",
                }
                .into(),
                not_before: now - 60,
                not_after,
                cert: cert.clone(),
                state: if implicit {
                    CertState::Active
                } else {
                    CertState::Pending
                },
                issued_at: now,
                revoked_at: None,
                revocation_reason: None,
            })
            .await
            .map_err(archive_err)?;
        archive
            .update_transaction(&Transaction {
                transaction_id: tid.to_vec(),
                open: !implicit,
                cert_serial: Some(serial.clone()),
                reply_nonce: Some(nonce.to_vec()),
                ..Default::default()
            })
            .await
            .map_err(archive_err)?;
        tracing::info!(%email, kind = kind.name(), serial = %hex::encode(&serial), implicit, "CA issued a certificate");
        metrics::counter!("ca_certificates_issued_total", "kind" => kind.name()).increment(1);
        let ca_pubs = match auth {
            Auth::Code { .. } => vec![self.identity.cert.der.clone()],
            _ => Vec::new(),
        };
        Ok((
            ReplyBody::Certified {
                kind,
                cert_req_id: req.cert_req_id,
                cert,
                ca_pubs,
            },
            implicit,
        ))
    }

    async fn confirm(
        &self,
        archive: &Archive,
        msg: &Message<'_>,
        auth: &Auth,
        confs: &[cmp::Confirmation],
        tid: &[u8],
    ) -> Result<(), Refusal> {
        let Some(t) = archive.transaction(tid).await.map_err(archive_err)? else {
            return refuse(
                FailureInfo::BadRequest,
                "certConf for an unknown transaction",
            );
        };
        if !t.open {
            return refuse(
                FailureInfo::BadRequest,
                "the transaction is not awaiting a certConf",
            );
        }
        let same_sender = match auth {
            Auth::Code { code, .. } => t.reference.as_deref() == Some(code.reference.as_str()),
            Auth::Cert(row) => t.signer_serial.as_deref() == Some(row.serial.as_slice()),
            Auth::Anyone => false,
        };
        if !same_sender {
            return refuse(
                FailureInfo::NotAuthorized,
                "the certConf is not protected like the request it confirms",
            );
        }
        if msg.recip_nonce.is_none() || msg.recip_nonce != t.reply_nonce {
            return refuse(
                FailureInfo::BadRecipientNonce,
                "recipNonce is not the senderNonce of our reply",
            );
        }
        let (Some(serial), [conf]) = (&t.cert_serial, confs) else {
            return refuse(
                FailureInfo::BadRequest,
                "exactly one CertStatus is expected",
            );
        };
        let Some(row) = archive.certificate(serial).await.map_err(archive_err)? else {
            return Err(system(
                "a transaction names a certificate that is not stored",
            ));
        };
        let alg = cmp::cert_hash_alg(&row.cert).map_err(system)?;
        if alg.digest(&row.cert) != conf.cert_hash {
            return refuse(
                FailureInfo::BadCertId,
                "certHash is not the hash of the issued certificate",
            );
        }
        if !archive.close_transaction(tid).await.map_err(archive_err)? {
            return refuse(
                FailureInfo::BadRequest,
                "the transaction was already confirmed",
            );
        }
        if conf.accepted {
            archive
                .confirm_certificate(serial, CertState::Active)
                .await
                .map_err(archive_err)?;
        } else {
            archive
                .confirm_certificate(serial, CertState::Rejected)
                .await
                .map_err(archive_err)?;
            // cessationOfOperation: the certificate was never put to use.
            archive
                .revoke_certificate(serial, now(), Some(5))
                .await
                .map_err(archive_err)?;
            tracing::info!(serial = %hex::encode(serial), "certificate rejected by its requester");
        }
        Ok(())
    }

    async fn revoke(
        &self,
        archive: &Archive,
        auth: &Auth,
        revs: &[cmp::Revocation],
        tid: &[u8],
        now: i64,
    ) -> Result<ReplyBody, Refusal> {
        let Auth::Cert(row) = auth else {
            return refuse(
                FailureInfo::NotAuthorized,
                "an rr must be signed with the certificate to revoke",
            );
        };
        let [rev] = revs else {
            return refuse(FailureInfo::BadRequest, "exactly one RevDetails per rr");
        };
        if rev.serial != row.serial {
            return refuse(
                FailureInfo::NotAuthorized,
                "a certificate may revoke only itself",
            );
        }
        let ca_subject = der::Encode::to_der(&self.identity.cert.cert.tbs_certificate.subject)
            .map_err(system)?;
        if rev.issuer.as_ref().is_some_and(|i| *i != ca_subject) {
            return refuse(FailureInfo::BadCertId, "the issuer is not this CA");
        }
        self.open(archive, tid, now, false, auth).await?;
        let reason = rev.reason.map(|r| r as i64);
        if !archive
            .revoke_certificate(&row.serial, now, reason)
            .await
            .map_err(archive_err)?
        {
            return refuse(FailureInfo::CertRevoked, "already revoked");
        }
        tracing::info!(email = %row.email, serial = %hex::encode(&row.serial), "certificate revoked");
        metrics::counter!("ca_certificates_revoked_total").increment(1);
        // The CRL follows at once (the next GET /crl sees the new revision anyway).
        if let Err(e) = self.crl(archive).await {
            tracing::warn!(error = %e, "CRL regeneration after a revocation failed");
        }
        Ok(ReplyBody::Revoked(vec![None]))
    }

    /// The current CRL (DER): the stored one while it reflects every revocation and has more
    /// than half its period left, else a new one (a new number), stored for every node.
    pub async fn crl(&self, archive: &Archive) -> Result<Vec<u8>, ArchiveError> {
        let now = now();
        let state = archive.crl_state().await?;
        if let Some(crl) = state.crl
            && state.crl_revision == state.revision
            && state.next_update - now > CRL_PERIOD / 2
        {
            return Ok(crl);
        }
        let number = archive.next_crl_number().await?;
        let revoked = archive
            .revoked_certificates()
            .await?
            .into_iter()
            .map(|(serial, at, reason)| pki::ca::Revoked {
                serial,
                at,
                reason: reason.and_then(crl_reason),
            })
            .collect::<Vec<_>>();
        let crl = self
            .ca()
            .crl(
                &revoked,
                now,
                now + CRL_PERIOD,
                u64::try_from(number).unwrap_or(0),
            )
            .map_err(|e| ArchiveError::CorruptCa(format!("CRL: {e}")))?;
        archive
            .store_crl(state.revision, now + CRL_PERIOD, &crl)
            .await?;
        Ok(crl)
    }

    /// The OCSP response to `der` (never an error: a malformed request gets malformedRequest,
    /// a database failure tryLater).
    pub async fn ocsp(&self, archive: &Archive, der: &[u8]) -> Vec<u8> {
        use pki::ca::{OcspResponseStatus, Status};
        let q = match pki::ca::parse_request(der) {
            Ok(q) => q,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return pki::ca::error_response(OcspResponseStatus::MalformedRequest)
                    .unwrap_or_default();
            }
        };
        let mut statuses = std::collections::HashMap::new();
        for serial in q.serials() {
            let st = match archive.certificate(&serial).await {
                Ok(None) => Status::Unknown,
                Ok(Some(row)) => match row.revoked_at {
                    Some(at) => Status::Revoked {
                        at,
                        reason: row.revocation_reason.and_then(crl_reason),
                    },
                    None if row.state == CertState::Active => Status::Good,
                    None => Status::Unknown,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "OCSP: archive unavailable");
                    return pki::ca::error_response(OcspResponseStatus::TryLater)
                        .unwrap_or_default();
                }
            };
            statuses.insert(serial, st);
        }
        let now = now();
        let ca = self.ca();
        let delegate = self.ocsp.as_ref().map(|d| Ca {
            signer: d.signer.as_ref(),
            cert: &d.cert,
            ocsp_url: None,
            ca_issuers_url: None,
            crl_url: None,
        });
        let lookup = |s: &[u8]| statuses.get(s).copied().unwrap_or(Status::Unknown);
        match ca.ocsp_response(&q, &lookup, now, now + OCSP_PERIOD, delegate.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "OCSP: cannot sign");
                pki::ca::error_response(OcspResponseStatus::InternalError).unwrap_or_default()
            }
        }
    }
}

fn crl_reason(code: i64) -> Option<x509_cert::ext::pkix::CrlReason> {
    use x509_cert::ext::pkix::CrlReason as R;
    Some(match code {
        0 => R::Unspecified,
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        8 => R::RemoveFromCRL,
        9 => R::PrivilegeWithdrawn,
        10 => R::AaCompromise,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::normalise_email;

    #[test]
    fn addresses_are_normalised_and_implausible_ones_refused() {
        assert_eq!(
            normalise_email(" Alice@Bank.Example ").as_deref(),
            Some("alice@bank.example")
        );
        for bad in [
            "",
            "alice",
            "@bank.example",
            "alice@",
            "alice@localhost",
            "a b@bank.example",
            "alice@bank.example\r\nBcc: x@y.z",
            "a@b@bank.example",
            "<alice@bank.example>",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
    }
}
