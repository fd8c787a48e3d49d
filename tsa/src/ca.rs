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
    Issuance, Transaction,
};
use crate::config::Config;
use crate::keys::{self, Identity, KeyError};
use pki::asn1::FailureInfo;
use pki::ca::enrolment;
use pki::ca::{Ca, EmailCertificate, Usage};
use pki::cmp::{
    self, CertKind, GeneralAnswer, InfoType, Message, Protection, Reply, ReplyBody, Request,
};
use zeroize::Zeroizing;

/// How long a CRL is valid; it is regenerated once less than half of it is left.
const CRL_PERIOD: i64 = 7 * 86_400;
/// How long an OCSP response is valid.
const OCSP_PERIOD: i64 = 3_600;
/// How long an issued certificate waits for its certConf before it counts as rejected
/// (RFC 9483 §4.1.1).
pub const CONFIRM_WINDOW: i64 = 600;
/// How long senderNonces are remembered (replays older than that fail on their spent code,
/// closed transaction or revoked certificate anyway).
const NONCE_MEMORY: i64 = 86_400;
/// transactionID and senderNonce: at least 128 bits (RFC 9483 §3.1), at most this.
const MAX_ID_LEN: usize = 64;
/// The longest commonName (RFC 5280 ub-common-name).
const MAX_COMMON_NAME: usize = 64;

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

/// Logs and counts a refusal.
fn refused(fail: FailureInfo, text: &str, body_type: u8) {
    tracing::info!(fail = fail.name(), %text, body = body_type, "CMP request refused");
    metrics::counter!("ca_cmp_refused_total", "fail" => fail.name()).increment(1);
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

/// What is wrong with a requested commonName, if anything: too long, another address, or
/// characters that could repaint what a mail client shows.
fn common_name_problem(cn: &str, email: &str) -> Option<String> {
    if cn.chars().count() > MAX_COMMON_NAME {
        return Some(format!(
            "the commonName is longer than {MAX_COMMON_NAME} characters"
        ));
    }
    if cn.contains('@') && !cn.eq_ignore_ascii_case(email) {
        return Some(format!(
            "the commonName {cn:?} looks like another address than the proven {email}"
        ));
    }
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    cn.chars()
        .any(bad)
        .then(|| "the commonName holds control or bidirectional-override characters".to_owned())
}

impl CaService {
    /// Loads the CA's key and certificate, the delegated OCSP responder (checked to be issued
    /// by the CA) and the enrolment key, and the mail relay settings.
    pub fn load(cfg: &Config) -> Result<CaService, KeyError> {
        let identity = keys::load_ca_identity(cfg)?;
        if !pki::cert::allows_digital_signature(&identity.cert.cert) {
            tracing::warn!(
                "the CA certificate's keyUsage lacks digitalSignature: openssl cmp refuses its \
                 signed CMP replies, and OCSP clients its responses (configure ca.ocsp_key)"
            );
        }
        let ocsp = keys::load_ocsp_identity(cfg)?;
        if let (Some(d), Some(path)) = (&ocsp, &cfg.ca.ocsp_certificate)
            && !pki::cert::issued_by(&d.cert.der, &identity.cert.der)
        {
            return Err(KeyError::Unusable {
                path: path.clone(),
                detail: "the OCSP responder certificate was not issued by the CA (RFC 6960 \
                         §4.2.2.2)"
                    .into(),
            });
        }
        if cfg.database_url.starts_with("postgres") && cfg.ca.enrolment_key.is_none() {
            tracing::warn!(
                "the CA runs on a shared database but ca.enrolment_key is not set: each node \
                 makes its own key in its data directory, and codes made on one fail on another"
            );
        }
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

    /// Creates a one-time code for `email` on behalf of `client`, within the rate limits:
    /// `(reference, secret, expires_at)`.
    pub async fn new_code(
        &self,
        archive: &Archive,
        email: &str,
        client: &str,
    ) -> Result<Result<(String, Zeroizing<String>, i64), CodeProblem>, ArchiveError> {
        let now = now();
        let reference =
            hex::encode(enrolment::random(6).map_err(|e| ArchiveError::CorruptCa(e.to_string()))?);
        let secret = enrolment::secret(&self.enrolment_key, &reference, email);
        let code = EnrolmentCode {
            reference: reference.clone(),
            email: email.to_owned(),
            secret_hash: enrolment::stored_hash(&secret),
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

    /// Periodic upkeep: certificates whose certConf never came are rejected (and listed as
    /// revoked), old nonces forgotten.
    pub async fn housekeeping(&self, archive: &Archive) -> Result<(), ArchiveError> {
        let now = now();
        let expired = archive.expire_pending(now - CONFIRM_WINDOW, now).await?;
        if expired > 0 {
            tracing::info!(
                expired,
                "unconfirmed certificates rejected (no certConf in time)"
            );
        }
        archive.prune_nonces(now - NONCE_MEMORY).await
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
        let msg = match cmp::parse(der) {
            Ok(m) => m,
            Err(e) => {
                let r = (
                    FailureInfo::BadDataFormat,
                    format!("the message does not parse: {e}"),
                );
                return self.fallback(&reply, None, r, now);
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
        let nonce = match cmp::fresh_nonce() {
            Ok(n) => n,
            Err(e) => return self.fallback(&reply, Some(&msg), system(e), now),
        };
        let (body, implicit) = match self
            .decide(archive, &msg, &auth, profile, &nonce, now)
            .await
        {
            Ok(x) => x,
            Err((fail, text)) => {
                refused(fail, &text, msg.body_type);
                (ReplyBody::Error { fail, text }, false)
            }
        };
        match reply.build(Some(&msg), &body, protection, implicit, &nonce, now) {
            Ok(der) => der,
            Err(e) => self.fallback(&reply, Some(&msg), system(e), now),
        }
    }

    /// A signed error message: to the request's sender, else (a header we cannot answer, a
    /// sender that is no GeneralName) to nobody; never an empty reply.
    fn fallback(
        &self,
        reply: &Reply<'_>,
        msg: Option<&Message<'_>>,
        (fail, text): Refusal,
        now: i64,
    ) -> Vec<u8> {
        refused(fail, &text, msg.map_or(255, |m| m.body_type));
        let body = ReplyBody::Error { fail, text };
        let nonce = cmp::fresh_nonce().unwrap_or_else(|_| vec![0; 16]);
        reply
            .build(msg, &body, Protection::Signature, false, &nonce, now)
            .or_else(|_| reply.build(None, &body, Protection::Signature, false, &nonce, now))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "CA: cannot sign an error message");
                Vec::new()
            })
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
            return self.authenticate_code(archive, msg, now).await;
        }
        let cert = match msg.verify_signature() {
            Ok(Ok(cert)) => cert,
            Ok(Err(why)) => return refuse(FailureInfo::BadMessageCheck, why),
            Err(e) => return refuse(FailureInfo::BadMessageCheck, e.to_string()),
        };
        if !pki::cert::issued_by(cert, &self.identity.cert.der) {
            return refuse(
                FailureInfo::SignerNotTrusted,
                "the protecting certificate was not issued by this CA",
            );
        }
        let serial = pki::cert::serial_magnitude(cert)
            .map_err(|e| (FailureInfo::BadDataFormat, e.to_string()))?;
        let Some(row) = archive.certificate(&serial).await.map_err(archive_err)? else {
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
        if !row.valid_at(now) {
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

    /// MAC protection with an enrolment code. A spent or expired code is refused before any
    /// key derivation (up to 100,000 iterations a time must not be on offer for free), except
    /// for the certConf that continues the transaction the code opened.
    async fn authenticate_code(
        &self,
        archive: &Archive,
        msg: &Message<'_>,
        now: i64,
    ) -> Result<Auth, Refusal> {
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
        if msg.body_type != 24 {
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
        let secret = enrolment::secret(&self.enrolment_key, &code.reference, &code.email);
        if !enrolment::matches(&secret, &code.secret_hash) {
            return refuse(
                FailureInfo::NotAuthorized,
                "the enrolment code is no longer valid (the CA's enrolment key changed)",
            );
        }
        match msg.verify_mac(&secret) {
            Ok(true) => Ok(Auth::Code { code, secret }),
            Ok(false) => refuse(
                FailureInfo::BadMessageCheck,
                "the MAC does not verify with the enrolment secret",
            ),
            Err(e) => refuse(FailureInfo::BadAlg, format!("MAC protection: {e}")),
        }
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
        let fits = |b: &[u8]| (16..=MAX_ID_LEN).contains(&b.len());
        if !fits(tid) || !fits(sender_nonce) {
            return refuse(
                FailureInfo::BadRequest,
                format!(
                    "transactionID and senderNonce take 16 to {MAX_ID_LEN} octets (RFC 9483 §3.1: \
                     128 bits)"
                ),
            );
        }
        let request = Request::read(msg).map_err(|e| {
            (
                FailureInfo::BadDataFormat,
                format!("the body does not parse: {e}"),
            )
        })?;
        // Nothing is remembered for anonymous general messages: they change nothing, and
        // remembering them would let anyone fill the database.
        if !matches!(auth, Auth::Anyone)
            && !archive
                .record_nonce(sender_nonce, now)
                .await
                .map_err(archive_err)?
        {
            return refuse(FailureInfo::BadSenderNonce, "senderNonce replayed");
        }
        match request {
            Request::Certificates(kind, reqs) => {
                self.certify(archive, msg, auth, kind, reqs, profile, nonce, now)
                    .await
            }
            Request::Confirm(confs) => {
                self.confirm(archive, msg, auth, &confs, tid, now).await?;
                Ok((ReplyBody::Confirmed, false))
            }
            Request::Revoke(revs) => {
                let body = self.revoke(archive, auth, &revs, tid, now).await?;
                Ok((body, false))
            }
            Request::General(types) => {
                let mut answers = Vec::new();
                for t in types {
                    match t {
                        InfoType::CaCerts => {
                            let mut certs = vec![self.identity.cert.der.clone()];
                            certs.extend(self.identity.chain.iter().cloned());
                            answers.push(GeneralAnswer::CaCerts(certs));
                        }
                        // One root, never rolled over: no update.
                        InfoType::RootCaCert => answers.push(GeneralAnswer::NoRootUpdate),
                        InfoType::Other(_) => {}
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

    fn transaction(auth: &Auth, tid: &[u8], now: i64, open: bool) -> Transaction {
        Transaction {
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
        // The address, the usage, the signer (whose key obtains this certificate) and the
        // latest notAfter: a certificate obtained with another's key never outlives it.
        let mut not_after = now + i64::from(self.validity_days) * 86_400;
        let (email, usage, parent) = match (kind, auth) {
            (CertKind::Ir | CertKind::Cr | CertKind::P10cr, Auth::Code { code, .. }) => {
                (code.email.clone(), usage, None)
            }
            (CertKind::Cr | CertKind::P10cr, Auth::Cert(row)) => {
                not_after = not_after.min(row.not_after);
                (row.email.clone(), usage, Some(row.serial.clone()))
            }
            (CertKind::Kur, Auth::Cert(row)) => {
                not_after =
                    not_after.min(row.not_after.max(now) + i64::from(self.validity_days) * 86_400);
                let usage = if row.usage == "encryption" {
                    Usage::Encryption
                } else {
                    Usage::Signing
                };
                (row.email.clone(), usage, Some(row.serial.clone()))
            }
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
        if let Some(why) = req
            .common_name
            .as_deref()
            .and_then(|cn| common_name_problem(cn, &email))
        {
            return refuse(FailureInfo::BadCertTemplate, why);
        }
        if let (CertKind::Kur, Auth::Cert(row)) = (kind, auth)
            && pki::cert::same_public_key(&row.cert, &req.public_key_info)
        {
            return refuse(
                FailureInfo::BadCertTemplate,
                "a key update needs a new key (the request repeats the old one)",
            );
        }
        // Issue first (in memory, through the Signer): nothing is spent on a request the CA
        // cannot fulfil.
        let mut serial = enrolment::random(16).map_err(system)?;
        serial[0] = (serial[0] & 0x7f) | 0x01;
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
        let tid = msg.transaction_id.as_deref().unwrap_or_default();
        let mut t = Self::transaction(auth, tid, now, !implicit);
        t.cert_serial = Some(serial.clone());
        t.reply_nonce = Some(nonce.to_vec());
        let row = CaCertificate {
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
            parent_serial: parent,
        };
        let code = match auth {
            Auth::Code { code, .. } => Some(code.reference.as_str()),
            _ => None,
        };
        match archive
            .record_issuance(&t, code, &row, now)
            .await
            .map_err(archive_err)?
        {
            Issuance::Recorded => {}
            Issuance::TransactionIdInUse => {
                return refuse(
                    FailureInfo::TransactionIdInUse,
                    "transactionID already used",
                );
            }
            Issuance::CodeSpent => {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "the enrolment code was already used",
                );
            }
        }
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
        now: i64,
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
        if now - t.created_at > CONFIRM_WINDOW {
            return refuse(
                FailureInfo::BadTime,
                format!("the certConf came more than {CONFIRM_WINDOW} s after the certificate"),
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
        // RFC 9483 §4.1.1: certReqId 0 (the one request); -1 for a p10cr's CertStatus.
        let id = conf.cert_req_id.as_bytes();
        if id != [0] && id != [0xff] {
            return refuse(FailureInfo::BadRequest, "certReqId is not the request's");
        }
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
                .revoke_certificate(serial, now, Some(5))
                .await
                .map_err(archive_err)?;
            tracing::info!(serial = %hex::encode(serial), "certificate rejected by its requester");
        }
        Ok(())
    }

    /// rr: signed by the certificate to revoke (it revokes itself), or protected by a fresh
    /// enrolment code for its address (the key is lost or stolen: the address's owner revokes
    /// any of its certificates). keyCompromise revokes what the key obtained too.
    async fn revoke(
        &self,
        archive: &Archive,
        auth: &Auth,
        revs: &[cmp::Revocation],
        tid: &[u8],
        now: i64,
    ) -> Result<ReplyBody, Refusal> {
        let [rev] = revs else {
            return refuse(FailureInfo::BadRequest, "exactly one RevDetails per rr");
        };
        let ca_subject = pki::cert::subject_der(&self.identity.cert.der).map_err(system)?;
        if rev.issuer.as_ref().is_some_and(|i| *i != ca_subject) {
            return refuse(FailureInfo::BadCertId, "the issuer is not this CA");
        }
        if matches!(rev.reason, Some(6 | 8)) {
            return refuse(
                FailureInfo::BadRequest,
                "certificateHold and removeFromCRL are not offered: revocation is final",
            );
        }
        let target = match auth {
            Auth::Cert(row) if rev.serial == row.serial => row.clone(),
            Auth::Cert(_) => {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "a certificate may revoke only itself (with an enrolment code for the \
                     address, any of its certificates)",
                );
            }
            Auth::Code { code, .. } => {
                match archive
                    .certificate(&rev.serial)
                    .await
                    .map_err(archive_err)?
                {
                    Some(row) if row.email == code.email => row,
                    _ => {
                        return refuse(
                            FailureInfo::BadCertId,
                            "no certificate with this serial for the proven address",
                        );
                    }
                }
            }
            Auth::Anyone => {
                return refuse(
                    FailureInfo::NotAuthorized,
                    "an rr must be signed by the certificate or protected by an enrolment code",
                );
            }
        };
        if target.revoked_at.is_some() {
            return refuse(FailureInfo::CertRevoked, "already revoked");
        }
        let t = Self::transaction(auth, tid, now, false);
        if !archive.open_transaction(&t).await.map_err(archive_err)? {
            return refuse(
                FailureInfo::TransactionIdInUse,
                "transactionID already used",
            );
        }
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
        let revoked = archive
            .revoke_certificate(&target.serial, now, rev.reason)
            .await
            .map_err(archive_err)?;
        if revoked == 0 {
            return refuse(FailureInfo::CertRevoked, "already revoked");
        }
        tracing::info!(email = %target.email, serial = %hex::encode(&target.serial), revoked, "certificate revoked");
        metrics::counter!("ca_certificates_revoked_total").increment(revoked);
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
                reason: reason.and_then(pki::ca::crl_reason),
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
                        reason: row.revocation_reason.and_then(pki::ca::crl_reason),
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

#[cfg(test)]
mod tests {
    use super::{CRL_PERIOD, CaService, common_name_problem, normalise_email, now};
    use crate::archive::test_support::{open, sqlite_url};
    use crate::archive::{Archive, CodeLimits};
    use crate::keys::Identity;
    use der::Decode;
    use std::sync::Arc;
    use zeroize::Zeroizing;

    /// A CA over a fresh development root: no mail relay, no OCSP delegate.
    fn service() -> CaService {
        let dev = pki::devpki::DevPki::generate(pki::devpki::DevKeyType::EcdsaP256)
            .expect("development PKI");
        let signer =
            pki::signer::RingSigner::from_pkcs8_der(&dev.root_key, pki::signer::RsaPadding::Pkcs1)
                .expect("root key");
        CaService {
            identity: Identity {
                signer: Arc::new(signer),
                cert: pki::cms::SignerCert::from_der(dev.root_cert).expect("root certificate"),
                chain: Vec::new(),
            },
            ocsp: None,
            base_url: "https://ca.example".into(),
            validity_days: 365,
            code_ttl: 900,
            limits: CodeLimits {
                per_email: 3,
                per_client: 10,
                window: 3600,
            },
            enrolment_key: Zeroizing::new(vec![7; 32]),
            mailer: None,
        }
    }

    /// thisUpdate and nextUpdate (Unix seconds) and the cRLNumber of a CRL.
    fn crl_fields(der: &[u8]) -> (u64, u64, u64) {
        let tbs = x509_cert::crl::CertificateList::from_der(der)
            .expect("CRL")
            .tbs_cert_list;
        let number = tbs
            .crl_extensions
            .unwrap_or_default()
            .iter()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)
            .map(|e| u64::from_der(e.extn_value.as_bytes()).expect("cRLNumber"))
            .expect("a cRLNumber");
        (
            tbs.this_update.to_unix_duration().as_secs(),
            tbs.next_update
                .expect("nextUpdate")
                .to_unix_duration()
                .as_secs(),
            number,
        )
    }

    /// Stores a CRL made `age` seconds ago with the next CRL number, valid for the full
    /// period, as a node would have then; returns it.
    async fn store_crl_made_ago(ca: &CaService, archive: &Archive, age: i64) -> Vec<u8> {
        let made = now() - age;
        let revision = archive.crl_state().await.expect("CRL state").revision;
        let number = archive.next_crl_number().await.expect("CRL number");
        let crl = ca
            .ca()
            .crl(
                &[],
                made,
                made + CRL_PERIOD,
                u64::try_from(number).expect("positive"),
            )
            .expect("CRL");
        archive
            .store_crl(revision, made + CRL_PERIOD, &crl)
            .await
            .expect("store CRL");
        crl
    }

    #[tokio::test]
    async fn a_stored_crl_is_served_while_more_than_half_its_period_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = open(&sqlite_url(&dir)).await;
        let ca = service();
        // Ten minutes short of half the period gone.
        let stored = store_crl_made_ago(&ca, &archive, CRL_PERIOD / 2 - 600).await;
        let before = archive.crl_state().await.expect("CRL state");
        for fetch in 1..=2 {
            assert_eq!(
                ca.crl(&archive).await.expect("CRL"),
                stored,
                "fetch {fetch}"
            );
        }
        let after = archive.crl_state().await.expect("CRL state");
        assert_eq!(
            (after.number, after.next_update, after.crl),
            (before.number, before.next_update, Some(stored)),
            "no CRL number taken, nothing stored"
        );
        archive.close().await;
    }

    #[tokio::test]
    async fn a_crl_with_less_than_half_its_period_left_is_made_anew_with_the_next_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = open(&sqlite_url(&dir)).await;
        let ca = service();
        // Ten minutes past half the period gone.
        let old = store_crl_made_ago(&ca, &archive, CRL_PERIOD / 2 + 600).await;
        let (old_this, old_next, old_number) = crl_fields(&old);
        let start = u64::try_from(now()).expect("after 1970");
        let new = ca.crl(&archive).await.expect("CRL");
        let end = u64::try_from(now()).expect("after 1970");
        assert_ne!(new, old);
        let (this, next, number) = crl_fields(&new);
        assert_eq!(number, old_number + 1, "the next CRL number");
        assert!(
            (start..=end).contains(&this) && this > old_this,
            "thisUpdate {this}: made now ({start}..={end}), after the old {old_this}"
        );
        assert_eq!(
            next,
            this + u64::try_from(CRL_PERIOD).expect("positive"),
            "a full period"
        );
        assert!(
            next > old_next,
            "nextUpdate {next} after the old {old_next}"
        );
        // Stored for every node: the next fetch serves it as it is.
        let state = archive.crl_state().await.expect("CRL state");
        assert_eq!(
            (state.number, state.next_update, state.crl.as_deref()),
            (
                i64::try_from(number).expect("small"),
                i64::try_from(next).expect("small"),
                Some(new.as_slice())
            )
        );
        assert_eq!(ca.crl(&archive).await.expect("CRL"), new);
        archive.close().await;
    }

    #[test]
    fn common_names_are_checked_for_length_other_addresses_and_repainting_characters() {
        let me = "quinn@example.org";
        assert_eq!(common_name_problem("Quinn", me), None);
        assert_eq!(common_name_problem("QUINN@example.org", me), None);
        assert_eq!(common_name_problem(&"q".repeat(64), me), None);
        for (bad, why) in [
            ("q".repeat(65), "longer than 64"),
            ("ceo@bank.example".into(), "another address"),
            ("Quinn\u{202e}gpj.exe".into(), "bidirectional"),
            ("Quinn\u{2067}x".into(), "bidirectional"),
            ("Quinn\nBcc".into(), "control"),
        ] {
            let p = common_name_problem(&bad, me).unwrap_or_default();
            assert!(p.contains(why), "{bad:?}: {p:?}");
        }
    }

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
