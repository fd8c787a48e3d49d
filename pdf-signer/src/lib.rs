//! PAdES signatures (ETSI EN 319 142-1 baseline B-B, B-T, B-LT, B-LTA), document timestamps
//! and their verification, over lopdf.
//!
//! * [`sign`]: appends an incremental update with a signature field and widget and a signature
//!   dictionary (ETSI.CAdES.detached) whose CMS comes from [`pki::cades`] through the
//!   [`pki::signer::Signer`] trait, with a signature timestamp from a
//!   [`pki::timestamper::Timestamper`]; B-LT adds a /DSS update, B-LTA a document timestamp
//!   (ETSI.RFC3161) over it. The original bytes are never touched; the /Contents hole is sized
//!   from the real signature and, should it still be too small, the revision is built again
//!   with the exact size.
//! * [`verify`]: every signature and document timestamp in file order: /ByteRange coverage,
//!   the CMS through pki's one SignerInfo verifier, the token through pki's token verifier,
//!   the certificate path, and what each later revision changed ([`verify::changes`]).
//!
//! Only `pki` knows ASN.1 and cryptography: this crate handles PDF objects and bytes. It never
//! speaks HTTP: timestamps arrive through the `Timestamper` trait.

pub mod appearance;
pub mod document;
pub mod object;
pub mod sign;
#[cfg(feature = "testing")]
pub mod testing;
pub mod update;
pub mod verify;

pub use sign::{Details, Level, SignOptions, Signed, Visible, sign, timestamp};
pub use verify::{PdfVerifyOptions, looks_like_pdf, verify_pdf};

/// What went wrong while signing a PDF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a PDF.
    #[error("not a PDF: {0}")]
    NotPdf(String),
    /// The input is encrypted.
    #[error(
        "the PDF is encrypted: decrypt it first (`qpdf --decrypt --password=... in.pdf out.pdf`), then sign"
    )]
    Encrypted(#[source] Option<Box<lopdf::Error>>),
    /// The input is damaged or does not read as written.
    #[error("the PDF is damaged: {0}")]
    Damaged(String),
    /// The input uses something this signer cannot update safely.
    #[error("cannot sign this PDF safely: {0}")]
    Unsupported(String),
    /// The signature field asked for cannot be used.
    #[error("signature field: {0}")]
    Field(String),
    /// The options do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The signature did not fit the /Contents hole even when sized from the real signature
    /// (cannot happen unless the signer or TSA changes its output size between two calls).
    #[error("the signature ({needed} bytes) does not fit the {reserved} bytes reserved for it")]
    HoleTooSmall {
        /// Bytes of DER to embed.
        needed: usize,
        /// Bytes reserved.
        reserved: usize,
    },
    /// Signing, timestamping or encoding failed in `pki`.
    #[error(transparent)]
    Pki(#[from] pki::Error),
}
