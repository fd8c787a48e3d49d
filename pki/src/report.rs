//! One verification report for tokens, emails and PDF signatures, for humans and for JSON.
//!
//! A [`Report`] holds one [`SignatureReport`] per signature found (a token has one; an email or
//! PDF may have several), each a list of [`Check`]s. A report is verified when it has at least
//! one signature and no check failed or was left undone where it was required.

use serde::Serialize;

/// What was verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Kind {
    /// A bare timestamp token (with or without the data it covers).
    Token,
    /// Data and a detached timestamp token beside it.
    DetachedData,
    /// A signed email.
    Email,
    /// A signed PDF.
    Pdf,
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The check passed.
    Passed,
    /// The check failed: the signature is not verified.
    Failed,
    /// Passed, with something the reader should know (a weak hash, say).
    Warning,
    /// Could not be done (missing input); counts as failure when the check is required.
    NotChecked,
}

/// One check and what it found.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Short name, stable for scripts (`message-digest`, `signature`, `certificate-path`, ...).
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
    /// A sentence for a human.
    pub detail: String,
}

/// A certificate, summarised.
#[derive(Clone, Debug, Serialize)]
pub struct CertSummary {
    /// Subject DN (RFC 4514 form).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial, hex.
    pub serial: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

/// What a timestamp token says.
#[derive(Clone, Debug, Serialize)]
pub struct TimestampInfo {
    /// genTime, RFC 3339 with the fraction the token carries.
    pub gen_time: String,
    /// genTime as seconds since the Unix epoch, for scripts.
    pub gen_time_unix: i64,
    /// Serial number, hex.
    pub serial_hex: String,
    /// Serial number, decimal (when it fits in 128 bits).
    pub serial: Option<String>,
    /// Policy OID.
    pub policy: String,
    /// Imprint hash algorithm name or OID.
    pub hash_algorithm: String,
    /// Imprint, hex.
    pub imprint: String,
    /// Accuracy, human form (`1s`, `500ms`), when present.
    pub accuracy: Option<String>,
    /// Ordering flag.
    pub ordering: bool,
    /// Nonce, hex, when present.
    pub nonce: Option<String>,
    /// The tsa field, when present.
    pub tsa_name: Option<String>,
}

/// Which moment a signer's certificate path was checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TimeBasis {
    /// The time a verified signature timestamp proves.
    Proven,
    /// The verifier's clock: no proven time.
    Now,
    /// A time the user gave (`--at TIME`): not proven.
    Given,
    /// The signer's own signingTime (`--at claimed`): not proven.
    Claimed,
}

/// The times an email or PDF signature names, side by side (RFC 3339, UTC).
#[derive(Clone, Debug, Serialize)]
pub struct SigningTimes {
    /// What a verified signature timestamp proves.
    pub proven: Option<String>,
    /// The signingTime signed attribute: what the signer claims.
    pub claimed: Option<String>,
    /// The message's Date header: what the sender's software wrote, unsigned.
    pub date_header: Option<String>,
    /// When the certificate path was checked.
    pub checked_at: String,
    /// Why that moment.
    pub checked_at_basis: TimeBasis,
}

/// What a PDF signature or document timestamp is, and what it covers.
#[derive(Clone, Debug, Serialize)]
pub struct PdfSignatureInfo {
    /// The signature field's fully qualified name.
    pub field: String,
    /// `signature` or `document-timestamp`.
    pub kind: String,
    /// /SubFilter (`ETSI.CAdES.detached`, `adbe.pkcs7.detached`, `ETSI.RFC3161`).
    pub sub_filter: String,
    /// The revision signed, from 1 (the file's first revision).
    pub revision: usize,
    /// Bytes of the file after the signed revision.
    pub bytes_after: u64,
    /// What the later revisions changed that is allowed (a /DSS, document timestamps, later
    /// signatures, form filling the signature allows).
    pub allowed_changes: Vec<String>,
    /// What they changed that is not.
    pub disallowed_changes: Vec<String>,
    /// The PAdES baseline level reached (`B-B`, `B-T`, `B-LT`, `B-LTA`), when the signature
    /// verifies and is PAdES.
    pub level: Option<String>,
    /// The claimed signing time (/M), RFC 3339.
    pub claimed_time: Option<String>,
    /// /Reason, /Location, /ContactInfo and /Name as the signer wrote them.
    pub reason: Option<String>,
    /// /Location.
    pub location: Option<String>,
    /// /ContactInfo.
    pub contact: Option<String>,
    /// /Name.
    pub name: Option<String>,
}

/// One signature (a token's, or one SignerInfo of an email or PDF).
#[derive(Clone, Debug, Serialize)]
pub struct SignatureReport {
    /// What this signature is (`timestamp token`, `signer 1`, `Signature1`).
    pub label: String,
    /// Whether every check passed.
    pub verified: bool,
    /// The signature algorithm.
    pub signature_algorithm: Option<String>,
    /// The signer's certificate.
    pub signer: Option<CertSummary>,
    /// The validated path, signer first, anchor last.
    pub chain: Vec<CertSummary>,
    /// The timestamp this signature is (a token) or carries (a signature timestamp).
    pub timestamp: Option<TimestampInfo>,
    /// The report of the token this signature carries as its signature timestamp (RFC 3161
    /// Appendix A), made by the token verifier; `None` for a token itself or a signature
    /// without one.
    pub signature_timestamp: Option<Box<SignatureReport>>,
    /// For email and PDF signatures: the proven, claimed and header times, and the moment the
    /// path was checked at.
    pub times: Option<SigningTimes>,
    /// For email signatures: the addresses the signer's certificate binds (rfc822Name
    /// subjectAltNames, emailAddress in the subject).
    pub signer_addresses: Vec<String>,
    /// For PDF signatures and document timestamps: the field, coverage and level.
    pub pdf: Option<PdfSignatureInfo>,
    /// Every check made, in order.
    pub checks: Vec<Check>,
}

impl SignatureReport {
    /// An empty report for `label`.
    pub fn new(label: impl Into<String>) -> SignatureReport {
        SignatureReport {
            label: label.into(),
            verified: false,
            signature_algorithm: None,
            signer: None,
            chain: Vec::new(),
            timestamp: None,
            signature_timestamp: None,
            times: None,
            signer_addresses: Vec::new(),
            pdf: None,
            checks: Vec::new(),
        }
    }

    /// Records a check.
    pub fn check(&mut self, name: &str, outcome: Outcome, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            outcome,
            detail: detail.into(),
        });
    }

    /// Records a passed check.
    pub fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.check(name, Outcome::Passed, detail);
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.check(name, Outcome::Failed, detail);
    }

    /// Sets `verified` from the checks: none failed, none required left undone.
    pub fn finish(&mut self) {
        self.verified = !self.checks.is_empty()
            && self
                .checks
                .iter()
                .all(|c| matches!(c.outcome, Outcome::Passed | Outcome::Warning));
    }

    /// The failed checks' details, for a one-line reason.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed | Outcome::NotChecked))
            .collect()
    }
}

/// The report on one input.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What was verified.
    pub kind: Kind,
    /// The input's name (a path, usually).
    pub source: String,
    /// Whether everything verified.
    pub verified: bool,
    /// One entry per signature.
    pub signatures: Vec<SignatureReport>,
    /// Problems with the input as a whole (unreadable, no signature found, ...).
    pub errors: Vec<String>,
}

impl Report {
    /// A report for `source` from its signatures.
    pub fn new(kind: Kind, source: impl Into<String>, signatures: Vec<SignatureReport>) -> Report {
        let verified = !signatures.is_empty() && signatures.iter().all(|s| s.verified);
        Report {
            kind,
            source: source.into(),
            verified,
            signatures,
            errors: Vec::new(),
        }
    }

    /// Records a problem with the input as a whole; the report is then not verified.
    pub fn add_error(&mut self, error: impl Into<String>) {
        self.errors.push(error.into());
        self.verified = false;
    }

    /// A report for an input that could not be examined.
    pub fn error(kind: Kind, source: impl Into<String>, error: impl Into<String>) -> Report {
        Report {
            kind,
            source: source.into(),
            verified: false,
            signatures: Vec::new(),
            errors: vec![error.into()],
        }
    }
}
