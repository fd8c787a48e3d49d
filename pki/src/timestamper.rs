//! How a signature gets its timestamp: the small trait the email signer and the PDF signer
//! call, and that the client implements over HTTP (RFC 3161 §3.4) or an authority could
//! implement in-process. `pki` itself never speaks HTTP.

use crate::digest::HashAlg;
use crate::token::ParsedToken;

/// Why no token could be had, from whatever the implementation uses (HTTP, an in-process
/// authority); kept whole so that the caller's error printer shows the cause chain.
pub type TimestampError = Box<dyn std::error::Error + Send + Sync>;

/// A source of RFC 3161 tokens.
pub trait Timestamper: Send + Sync {
    /// The imprint algorithm the caller should hash with.
    fn hash_alg(&self) -> HashAlg {
        HashAlg::Sha256
    }

    /// Obtains a token whose imprint is `digest` (made with `hash`). The implementation checks
    /// what it can (status, nonce, imprint, the TSA's signature and certificate); callers in
    /// `pki` check the imprint again before they embed the token.
    fn timestamp(&self, hash: HashAlg, digest: &[u8]) -> Result<ParsedToken, TimestampError>;
}
