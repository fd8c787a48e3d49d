//! The one error type of the `pki` crate.
//!
//! Three families are kept apart, as the house style asks: the input is bad (`Decode`,
//! `Invalid`, `Ber`, `Unsupported`), a key or certificate cannot be used (`Key`, `Certificate`),
//! and we misused an API or something that cannot happen did (`Encode`). Verification
//! *failures* are not errors: they are findings in a [`crate::report::Report`].

/// Errors of the `pki` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that should hold `what` are not valid DER for it.
    #[error("malformed {what}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: der::Error,
    },
    /// The structure decoded but breaks a rule of its standard.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being checked.
        what: &'static str,
        /// Which rule it breaks.
        detail: String,
    },
    /// BER input could not be normalised to DER.
    #[error("cannot normalise BER input")]
    Ber(#[from] crate::ber::BerError),
    /// An algorithm we recognise but do not support, or do not know.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// Which kind of algorithm.
        what: &'static str,
        /// Its name or OID.
        detail: String,
    },
    /// A private key cannot be loaded or used.
    #[error("key error: {0}")]
    Key(String),
    /// A password-protected key file did not open: its MAC did not verify, or its contents did
    /// not decrypt. A wrong password and a damaged file cannot be told apart.
    #[error("wrong password or corrupted {what}")]
    WrongPassword {
        /// What was being opened ("PKCS#12 file", "encrypted private key").
        what: &'static str,
    },
    /// The password for a key file could not be read (no terminal, closed input, ...).
    #[error("cannot read the password")]
    Password(#[source] std::io::Error),
    /// The operating system's random generator failed (what it was asked for).
    #[error("no randomness available for {0}")]
    Randomness(&'static str),
    /// A certificate cannot be used for the job.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The signer failed (an HSM session dropped, a remote signer timed out, ...).
    #[error("signing failed: {0}")]
    Signing(String),
    /// No signature timestamp could be had from the timestamper (HTTP, the authority's reply).
    #[error("cannot obtain a signature timestamp")]
    Timestamp(#[source] crate::timestamper::TimestampError),
    /// An encrypted message did not decrypt with the key: a wrong key, or a ciphertext, tag or
    /// wrapped key that was altered. One error for every cause, on purpose (see
    /// [`crate::envelope`]).
    #[error(
        "the message does not decrypt with this key: the key is not the recipient's, or the \
         message was altered; no content is released"
    )]
    NotDecryptable,
    /// An encrypted message names none of the key's identities among its recipients.
    #[error("not a recipient: {hint}; the message is encrypted to: {}", recipients.join("; "))]
    NotARecipient {
        /// The recipients the message names.
        recipients: Vec<String>,
        /// What to do.
        hint: String,
    },
    /// Encoding our own structures failed: a bug or a misuse of the `der` API.
    #[error("internal encoding error")]
    Encode(#[source] der::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Helper for a decode error of `what`.
    pub(crate) fn decode(what: &'static str) -> impl FnOnce(der::Error) -> Error {
        move |source| Error::Decode { what, source }
    }

    /// Helper for an `Invalid` error.
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Error {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// An error and its causes on one line (`a: b: c`), for reports.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
