//! Sigillum's PKI core: everything that knows ASN.1 and cryptography, and nothing that knows
//! the network or a database.
//!
//! * [`signer`]: the [`signer::Signer`] trait and the ring backend (PKCS#8 key files).
//! * [`keyfile`]: the one key loader: PKCS#8 (PEM or DER, clear or encrypted) or PKCS#12.
//! * [`ca`]: the CA's issuing core: email certificates and CRLs signed through `Signer`.
//! * [`cades`]: the one CAdES signing path (signature timestamp included) and SignerInfo check
//!   sequence that the email and PDF signers share.
//! * [`cmp`]: CMP messages as received, and their MAC protection (the CA's server builds on it).
//! * [`cms`]: CMS SignedData in three steps (build, sign, assemble), detached or
//!   encapsulated, and adding a timestamp token as an unsigned attribute.
//! * [`tsp`]: RFC 3161 requests, responses and token issuing.
//! * [`signer_check`]: the one SignerInfo verifier (contentType, messageDigest, signer by sid
//!   and ESSCertID, signingCertificate, signature) that tokens, emails and PDFs share.
//! * [`token`]: verification of tokens from any authority; [`verify`]: the signature and
//!   certificate-path checks under every verifier.
//! * [`report`]: the one report type every verifier fills.
//! * [`smime`]: S/MIME signing (multipart/signed, opaque) with signature timestamps, and the
//!   email verifier (layers, From binding, partial-signing and ambiguity checks).
//! * [`envelope`]: CMS encryption (EnvelopedData, AuthEnvelopedData) to recipients'
//!   certificates, and decryption through the [`envelope::Decrypter`] trait.
//! * [`timestamper`]: the trait through which email and PDF signers obtain tokens.
//! * [`signer_info`], [`cert_raw`], [`path`]: raw views of SignerInfo and certificates, and
//!   the choice of signer and path candidates from an untrusted certificate bag.
//! * [`pbmac`]: password-based MACs (PBMAC1, CMP's PasswordBasedMac), shared by PKCS#12 and
//!   CMP.
//! * [`ocsp`]: asking a responder about a certificate, and checking its answer.
//! * [`limits`]: every limit on untrusted input, and the SET guard run before `der` decodes.
//! * [`ber`], [`gentime`], [`asn1`], [`raw`]: the encoding details the RustCrypto crates leave
//!   to us.

pub mod asn1;
pub mod ber;
pub mod ca;
pub mod cades;
pub mod cert;
pub mod cert_raw;
pub mod cmp;
pub mod cms;
#[cfg(feature = "devpki")]
pub mod devpki;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod gentime;
#[cfg(feature = "hostile")]
pub mod hostile;
pub mod keyfile;
pub mod limits;
pub mod ocsp;
pub mod oid;
pub mod path;
pub mod pbmac;
pub mod rand;
pub mod raw;
pub mod report;
pub mod signer;
pub mod signer_check;
pub mod signer_info;
pub mod smime;
pub mod timestamper;
pub mod token;
pub mod tsp;
pub mod verify;

pub use digest::HashAlg;
pub use error::{Error, Result};
