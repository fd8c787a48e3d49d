//! `stamp email sign`: one message, a directory of messages, or an mbox, signed and
//! timestamped (and, with `--encrypt`, encrypted) by a bounded pool of workers sharing one
//! keep-alive TSA client and one cache of recipient certificates.
//!
//! Each message stands alone: a failure names the message and its cause and touches no other
//! output; every output is written atomically (temporary file, fsync, rename); a message whose
//! output already exists is skipped, so a rerun after a crash or a failed batch does only what
//! is left.

pub use crate::bulk::{Failure, Summary};
use crate::files::write_atomically;
use crate::tsa_client::TsaClient;
use pki::cms::SignerCert;
use pki::signer::Signer;
use pki::smime::{SignOptions, SignedMessage, sign_message};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Everything needed to sign one message, shared by the workers.
pub struct EmailSigner {
    /// The key.
    pub signer: Box<dyn Signer>,
    /// Its certificate.
    pub cert: SignerCert,
    /// Intermediates to include.
    pub chain: Vec<Vec<u8>>,
    /// The TSA; `None` with `--no-timestamp`.
    pub tsa: Option<TsaClient>,
    /// Opaque signed-data instead of multipart/signed.
    pub opaque: bool,
    /// Encrypt each signed message (`--encrypt`).
    pub encryptor: Option<crate::recipients::Encryptor>,
}

impl EmailSigner {
    /// Signs one message, and encrypts it when asked to.
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<SignedMessage> {
        let opts = SignOptions {
            signer: self.signer.as_ref(),
            cert: &self.cert,
            chain: &self.chain,
            timestamper: self
                .tsa
                .as_ref()
                .map(|t| t as &dyn pki::timestamper::Timestamper),
            opaque: self.opaque,
            signing_time: None,
        };
        let mut signed = sign_message(message, &opts)?;
        if let Some(e) = &self.encryptor {
            signed.bytes = e.encrypt(&signed.bytes)?.0;
        }
        Ok(signed)
    }
}

/// Signs each `(input, output)` pair, skipping pairs whose output exists.
pub fn sign_files(
    signer: &EmailSigner,
    pairs: &[(PathBuf, PathBuf)],
    jobs: usize,
    bar: Option<&indicatif::ProgressBar>,
) -> Summary {
    crate::bulk::run_files(pairs, jobs, bar, |input, output| {
        sign_file(signer, input, output)
    })
}

fn sign_file(signer: &EmailSigner, input: &Path, output: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let signed = signer.sign(&bytes)?;
    write_atomically(output, &signed.bytes)
}

/// Signs every message of an mbox and writes them, in input order, to `output` (atomically).
/// Messages already in `output` (by Message-ID) are kept and skipped.
pub fn sign_mbox(
    signer: &EmailSigner,
    input: &Path,
    output: &Path,
    jobs: usize,
    bar_for: impl FnOnce(usize) -> Option<indicatif::ProgressBar>,
) -> anyhow::Result<Summary> {
    use anyhow::Context;
    let started = std::time::Instant::now();
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let messages = pki::smime::mbox::read(&bytes);
    let (mut out, done) = match std::fs::read(output) {
        Ok(existing) => {
            let ids: std::collections::HashSet<String> = pki::smime::mbox::read(&existing)
                .iter()
                .filter_map(|m| pki::smime::mime::message_id(m))
                .collect();
            (existing, ids)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), Default::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", output.display())),
    };
    let bar = bar_for(messages.len());
    let skipped = AtomicUsize::new(0);
    // Per message: `None` skipped, else the signed bytes or the error text.
    let results: Vec<Option<Result<Vec<u8>, String>>> =
        crate::pool::map(messages.len(), jobs, |i| {
            let m = &messages[i];
            let result = if pki::smime::mime::message_id(m).is_some_and(|id| done.contains(&id)) {
                skipped.fetch_add(1, Ordering::Relaxed);
                None
            } else {
                Some(
                    signer
                        .sign(m)
                        .map(|s| s.bytes)
                        .map_err(|e| format!("{e:#}")),
                )
            };
            if let Some(b) = &bar {
                b.inc(1);
            }
            result
        });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let asctime = asctime_now();
    let mut summary = Summary {
        skipped: skipped.into_inner(),
        ..Summary::default()
    };
    for (i, r) in results.into_iter().enumerate() {
        match r {
            None => {}
            Some(Ok(signed)) => {
                pki::smime::mbox::append(&mut out, &signed, "sigillum@localhost", &asctime);
                summary.signed += 1;
            }
            Some(Err(error)) => summary.failed.push(Failure {
                message: format!("{}#{}", input.display(), i + 1),
                error,
            }),
        }
    }
    write_atomically(output, &out)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The mbox separator's date, `Thu Dec  3 17:00:00 2026` (UTC).
fn asctime_now() -> String {
    let now = pki::gentime::GenTime::now_millis()
        .map(|g| g.to_offset_date_time())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    now.format(&fmt).unwrap_or_default()
}
