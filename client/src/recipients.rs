//! The recipients of encrypted mail: certificates from files (`--recipient-cert`) or from a
//! Sigillum directory (`--directory URL`, `GET /directory/{email}?usage=encryption`), checked
//! by [`pki::envelope::Recipient::check`] (validity, key usage, the address) before use.
//! Directory answers are cached for the run, so a bulk run asks once per address.

use anyhow::{Context, anyhow, bail};
use pki::envelope::Recipient;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Largest directory answer read (a PEM bundle of a handful of certificates).
const MAX_DIRECTORY_REPLY: u64 = 1 << 20;

/// Where recipient certificates come from.
pub struct Recipients {
    files: Vec<Recipient>,
    directory: Option<(ureq::Agent, String)>,
    cache: Mutex<HashMap<String, Recipient>>,
}

/// Seconds since the epoch, now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Recipients {
    /// Certificates from `cert_files` (PEM bundles or DER), and a directory at `directory`
    /// (the authority's base URL), if given.
    pub fn new(directory: Option<&str>, cert_files: &[PathBuf]) -> anyhow::Result<Recipients> {
        let mut files = Vec::new();
        for path in cert_files {
            for der in crate::keys::load_certs(path)? {
                files.push(
                    Recipient::from_certificate(&der)
                        .with_context(|| format!("{} cannot be a recipient", path.display()))?,
                );
            }
        }
        let directory = directory.map(|url| {
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(false)
                .user_agent(concat!("sigillum-stamp/", env!("CARGO_PKG_VERSION")))
                .build()
                .into();
            (agent, url.trim_end_matches('/').to_owned())
        });
        Ok(Recipients {
            files,
            directory,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The certificate to encrypt to for `address`: among those given for it, one that passes
    /// every check (the one valid longest); else an error naming each candidate's reason.
    pub fn for_address(&self, address: &str) -> anyhow::Result<Recipient> {
        let key = address.to_ascii_lowercase();
        if let Some(r) = self
            .cache
            .lock()
            .map_err(|_| anyhow!("cache poisoned"))?
            .get(&key)
        {
            return Ok(r.clone());
        }
        let now = now();
        let mut candidates: Vec<Recipient> = self
            .files
            .iter()
            .filter(|r| r.emails().iter().any(|e| e.eq_ignore_ascii_case(address)))
            .cloned()
            .collect();
        let mut source = String::from("the --recipient-cert files");
        if candidates.is_empty() {
            if let Some((agent, url)) = &self.directory {
                candidates = self.fetch(agent, url, address)?;
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
            match c.check(Some(address), now) {
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
        self.cache
            .lock()
            .map_err(|_| anyhow!("cache poisoned"))?
            .insert(key, best.clone());
        Ok(best)
    }

    fn fetch(
        &self,
        agent: &ureq::Agent,
        url: &str,
        address: &str,
    ) -> anyhow::Result<Vec<Recipient>> {
        let target = format!(
            "{url}/directory/{}?usage=encryption",
            percent_encode(address)
        );
        let mut resp = agent
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
