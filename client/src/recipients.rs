//! The recipients of encrypted mail: certificates from files (`--recipient-cert`) or from a
//! Sigillum directory (`--directory URL`, `GET /directory/{email}?usage=encryption`), checked
//! by [`pki::envelope::Recipient::check`] (validity, key usage, the address) and, when the
//! certificate names an OCSP responder, by asking it ([`pki::ocsp`]), before use. The issuer
//! certificate OCSP needs comes from the files given (a chain after the leaf) or from the
//! certificate's caIssuers URL. Answers, refusals included, are kept for [`RECHECK_AFTER`]
//! seconds (and never past the certificate's notAfter), so a bulk run asks about an address
//! about once per that time, and a long run still sees a revocation.

use anyhow::{Context, anyhow, bail};
use pki::envelope::{ContentEncryption, Recipient};
use pki::smime::{EncryptOptions, encrypt_message};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Largest directory answer read (a PEM bundle of a handful of certificates).
const MAX_DIRECTORY_REPLY: u64 = 1 << 20;

/// Where recipient certificates come from.
pub struct Recipients {
    files: Vec<Recipient>,
    /// Every certificate of the files, issuers included, for OCSP.
    file_certs: Vec<Vec<u8>>,
    agent: ureq::Agent,
    directory: Option<String>,
    /// The CAs a recipient certificate must chain to (`--trust`); empty: not checked.
    anchors: Vec<Vec<u8>>,
    check_revocation: bool,
    /// Per address (lower case): when it was looked up, and the certificate or the refusal.
    cache: Mutex<HashMap<String, LookUp>>,
}

/// A look-up's time (Unix seconds) and its answer.
type LookUp = (u64, Result<Recipient, String>);

/// How long a look-up (certificate, path, OCSP answer, or refusal) is reused, seconds.
pub const RECHECK_AFTER: u64 = 300;

/// Seconds since the epoch, now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Recipients {
    /// Certificates from `cert_files` (PEM bundles or DER: the first of each file is a
    /// recipient, the rest may be its chain), a directory at `directory` (the authority's base
    /// URL), the CAs in `anchors` every recipient must chain to (empty: no path check), and
    /// whether to ask OCSP responders.
    pub fn new(
        directory: Option<&str>,
        cert_files: &[PathBuf],
        anchors: Vec<Vec<u8>>,
        check_revocation: bool,
    ) -> anyhow::Result<Recipients> {
        let mut files = Vec::new();
        let mut file_certs = Vec::new();
        for path in cert_files {
            let certs = crate::keys::load_certs(path)?;
            // The first certificate of a file is the recipient's; the rest may be its chain.
            if let Some(first) = certs.first() {
                files.push(
                    Recipient::from_certificate(first)
                        .with_context(|| format!("{} cannot be a recipient", path.display()))?,
                );
            }
            file_certs.extend(certs);
        }
        let agent = crate::http::agent(Duration::from_secs(30));
        Ok(Recipients {
            files,
            file_certs,
            agent,
            directory: directory.map(|u| u.trim_end_matches('/').to_owned()),
            anchors,
            check_revocation,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The certificate to encrypt to for `address`: among those given for it, one that passes
    /// every check (the one valid longest); else an error naming each candidate's reason.
    pub fn for_address(&self, address: &str) -> anyhow::Result<Recipient> {
        let key = address.to_ascii_lowercase();
        let now = now();
        if let Some((at, answer)) = self
            .cache
            .lock()
            .map_err(|_| anyhow!("cache poisoned"))?
            .get(&key)
        {
            let current = now.saturating_sub(*at) < RECHECK_AFTER
                && answer.as_ref().map_or(true, |r| now <= r.not_after());
            if current {
                return answer.clone().map_err(|e| anyhow!("{e}"));
            }
        }
        let answer = self.look_up(address, now).map_err(|e| format!("{e:#}"));
        self.cache
            .lock()
            .map_err(|_| anyhow!("cache poisoned"))?
            .insert(key, (now, answer.clone()));
        answer.map_err(|e| anyhow!("{e}"))
    }

    /// [`Recipients::for_address`] without the cache.
    fn look_up(&self, address: &str, now: u64) -> anyhow::Result<Recipient> {
        let mut candidates: Vec<Recipient> = self
            .files
            .iter()
            .filter(|r| r.emails().iter().any(|e| e.eq_ignore_ascii_case(address)))
            .cloned()
            .collect();
        let mut source = String::from("the --recipient-cert files");
        if candidates.is_empty() {
            if let Some(url) = &self.directory {
                candidates = self.fetch(url, address)?;
                source = format!("the directory at {url}");
            } else if self.files.is_empty() {
                bail!(
                    "no certificate for {address}: give --directory URL or --recipient-cert FILE"
                );
            } else {
                let named: Vec<String> = self.files.iter().map(|r| r.emails().join(",")).collect();
                bail!(
                    "no --recipient-cert is for {address} (they name: {}); add its certificate \
                     or use --directory",
                    named.join("; ")
                );
            }
        }
        let mut reasons = Vec::new();
        let mut usable: Vec<Recipient> = Vec::new();
        for c in candidates {
            match c
                .check(Some(address), now)
                .and_then(|()| self.issuer_on_path(&c, address, now))
                .and_then(|issuer| self.not_revoked(&c, issuer, address, now))
            {
                Ok(()) => usable.push(c),
                Err(reason) => reasons.push(reason),
            }
        }
        let Some(best) = usable.into_iter().max_by_key(Recipient::not_after) else {
            bail!(
                "cannot encrypt to {address} with {source}: {}",
                reasons.join("; ")
            );
        };
        Ok(best)
    }

    /// With `--trust`: the certificate must chain to one of the anchors, for emailProtection,
    /// now; returns its issuer on that path (for OCSP). Without: `None`.
    fn issuer_on_path(
        &self,
        r: &Recipient,
        address: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, String> {
        if self.anchors.is_empty() {
            return Ok(None);
        }
        let bag: Vec<&[u8]> = self.file_certs.iter().map(Vec::as_slice).collect();
        let path = pki::verify::validate_path(
            r.certificate(),
            &bag,
            &self.anchors,
            now,
            pki::oid::ID_KP_EMAIL_PROTECTION_BYTES,
        )
        .map_err(|e| {
            format!("the certificate for {address} does not chain to a --trust anchor: {e}")
        })?;
        Ok(path.get(1).cloned())
    }

    /// Asks the certificate's OCSP responder, when it names one; the reason it may not be used
    /// otherwise. `issuer` is the issuer on the validated path, when there is one.
    fn not_revoked(
        &self,
        r: &Recipient,
        issuer: Option<Vec<u8>>,
        address: &str,
        now: u64,
    ) -> Result<(), String> {
        if !self.check_revocation {
            return Ok(());
        }
        let cert = r.certificate();
        let Some(url) = pki::ocsp::responder_url(cert) else {
            return Ok(());
        };
        let cannot = |why: String| {
            format!(
                "cannot check whether the certificate for {address} is revoked ({why}); \
                 --no-revocation-check skips the check"
            )
        };
        let issuer = match issuer {
            Some(i) => i,
            None => self.issuer_of(cert).map_err(|e| cannot(format!("{e:#}")))?,
        };
        let query = pki::ocsp::request(cert, &issuer).map_err(|e| cannot(e.to_string()))?;
        let body = self
            .exchange(&url, &query.der)
            .map_err(|e| cannot(format!("{e:#}")))?;
        match pki::ocsp::check_response(&query, &body, &issuer, now) {
            Ok(pki::ocsp::Revocation::Good) => Ok(()),
            Ok(pki::ocsp::Revocation::Revoked { at, reason }) => Err(format!(
                "the certificate for {address} was revoked at {at}{} (OCSP, {url})",
                reason.map(|r| format!(", {r}")).unwrap_or_default()
            )),
            Ok(pki::ocsp::Revocation::Unknown) => Err(format!(
                "the OCSP responder at {url} does not know the certificate for {address}"
            )),
            Err(e) => Err(cannot(format!("the answer from {url}: {e}"))),
        }
    }

    /// The issuer certificate of `cert`: among the files' certificates, else from its
    /// caIssuers URL.
    fn issuer_of(&self, cert: &[u8]) -> anyhow::Result<Vec<u8>> {
        if let Some(found) = self
            .file_certs
            .iter()
            .find(|c| pki::cert::issued_by(cert, c))
        {
            return Ok(found.clone());
        }
        let url = pki::ocsp::issuer_url(cert).ok_or_else(|| {
            anyhow!("no issuer certificate: add it after the recipient's in the file")
        })?;
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("cannot fetch the issuer from {url}"))?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_DIRECTORY_REPLY)
            .read_to_vec()
            .with_context(|| format!("reading the issuer from {url}"))?;
        pki::cert::load_certificates(&body)
            .ok()
            .and_then(|certs| certs.into_iter().find(|c| pki::cert::issued_by(cert, c)))
            .ok_or_else(|| anyhow!("{url} does not hold the certificate's issuer"))
    }

    /// POSTs an OCSP request; the response body.
    fn exchange(&self, url: &str, request: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut resp = self
            .agent
            .post(url)
            .header("Content-Type", "application/ocsp-request")
            .send(request)
            .with_context(|| format!("cannot reach the OCSP responder at {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(pki::ocsp::MAX_OCSP_RESPONSE as u64)
            .read_to_vec()
            .with_context(|| format!("reading the OCSP answer from {url}"))?;
        if status != 200 {
            bail!("the OCSP responder at {url} answered HTTP {status}");
        }
        Ok(body)
    }

    fn fetch(&self, url: &str, address: &str) -> anyhow::Result<Vec<Recipient>> {
        let target = format!(
            "{url}/directory/{}?usage=encryption",
            percent_encode(address)
        );
        let mut resp = self
            .agent
            .get(&target)
            .header("Accept", "application/pem-certificate-chain")
            .call()
            .with_context(|| format!("cannot reach the directory at {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_DIRECTORY_REPLY)
            .read_to_vec()
            .with_context(|| format!("reading the directory's answer for {address}"))?;
        match status {
            200 => {}
            404 => bail!(
                "the directory at {url} has no valid encryption certificate for {address} \
                 (not enrolled, or revoked or expired)"
            ),
            _ => bail!(
                "the directory at {url} answered HTTP {status} for {address}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
        }
        pki::cert::load_certificates(&body)
            .with_context(|| format!("the directory's answer for {address} holds no certificate"))?
            .iter()
            .map(|der| {
                Recipient::from_certificate(der)
                    .with_context(|| format!("the directory's certificate for {address}"))
            })
            .collect()
    }
}

/// Percent-encodes everything but unreserved characters and `@` (RFC 3986 §2.3).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Encrypts messages, one after another or from many workers: to fixed addresses, or to each
/// message's own To and Cc, plus the sender's own certificate.
pub struct Encryptor {
    /// Where certificates come from (shared, cached).
    pub recipients: Recipients,
    /// Fixed addresses; empty: each message's To and Cc.
    pub to: Vec<String>,
    /// The sender's own encryption certificate, to read its copy.
    pub self_cert: Option<Recipient>,
    /// GCM or CBC.
    pub encryption: ContentEncryption,
    /// The Subject shown outside.
    pub outer_subject: String,
}

impl Encryptor {
    /// Encrypts `message`; returns it and the recipients it was encrypted to.
    pub fn encrypt(&self, message: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<Recipient>)> {
        let addresses = if self.to.is_empty() {
            pki::smime::mime::recipient_addresses(message)
        } else {
            self.to.clone()
        };
        if addresses.is_empty() {
            bail!("no recipient: the message has no To or Cc address; name them with --to");
        }
        let mut recipients = addresses
            .iter()
            .map(|a| self.recipients.for_address(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        recipients.extend(self.self_cert.clone());
        let bytes = encrypt_message(
            message,
            &EncryptOptions {
                recipients: &recipients,
                encryption: self.encryption,
                outer_subject: &self.outer_subject,
            },
        )?;
        Ok((bytes, recipients))
    }
}
