//! Sigillum's PKI core: everything that knows ASN.1 and cryptography, and nothing that knows
//! the network or a database.
//!
//! * [`signer`]: the [`signer::Signer`] trait and the ring backend (PKCS#8 key files).
//! * [`cms`]: CMS SignedData in three steps (build, sign, assemble), detached or
//!   encapsulated, and adding a timestamp token as an unsigned attribute.
//! * [`tsp`]: RFC 3161 requests, responses and token issuing.
//! * [`token`]: verification of tokens from any authority; [`verify`]: the signature and
//!   certificate-path checks it shares with future email and PDF verifiers.
//! * [`report`]: the one report type every verifier fills.
//! * [`ber`], [`gentime`], [`asn1`], [`raw`]: the encoding details the RustCrypto crates leave
//!   to us.

pub mod asn1;
pub mod ber;
pub mod cert;
pub mod cms;
#[cfg(feature = "devpki")]
pub mod devpki;
pub mod digest;
pub mod error;
pub mod gentime;
pub mod oid;
pub mod raw;
pub mod report;
pub mod signer;
pub mod token;
pub mod tsp;
pub mod verify;

pub use digest::HashAlg;
pub use error::{Error, Result};
