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

/// An authority in the same process: tokens from a [`crate::tsp::TokenIssuer`] without a
/// network round trip (tests, and a signer running beside the authority). Serials are random
/// 127-bit numbers; there is no archive, so this is not an RFC 3161 service of its own.
pub struct LocalTimestamper {
    issuer: crate::tsp::TokenIssuer,
    policy: crate::tsp::RequestPolicy,
}

impl LocalTimestamper {
    /// Issues with `issuer`, under `policy` (its default policy OID goes in every token).
    pub fn new(issuer: crate::tsp::TokenIssuer, policy: crate::tsp::RequestPolicy) -> Self {
        LocalTimestamper { issuer, policy }
    }
}

impl Timestamper for LocalTimestamper {
    fn timestamp(&self, hash: HashAlg, digest: &[u8]) -> Result<ParsedToken, TimestampError> {
        let req = crate::tsp::build_request(hash, digest, None, true, None)?;
        let checked = crate::tsp::check_request(&req, &self.policy)
            .map_err(|r| format!("request refused: {}", r.reason))?;
        let mut serial = crate::rand::array::<16>("a serial number")?;
        serial[0] = (serial[0] & 0x7f) | 0x01;
        let now = crate::gentime::GenTime::now_millis()?;
        let token = self.issuer.issue(&checked, &serial, now)?;
        Ok(ParsedToken::parse(&token)?)
    }
}
