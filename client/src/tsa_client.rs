//! RFC 3161 over HTTP (RFC 3161 §3.4): send a digest, get a token, check it at once.
//!
//! The digest may be of anything: a file, a SignerInfo's signature value (signature
//! timestamps), a PDF byte range. The reply is checked before it is returned: status granted,
//! nonce echoed, imprint equal to the digest, signature and ESSCertID valid, TSA certificate
//! fit for timestamping, and, when trust anchors are given, the path to one of them.

use pki::HashAlg;
use pki::asn1::PkiStatus;
use pki::report::SignatureReport;
use pki::token::{ParsedToken, VerifyOptions, verify};
use std::time::Duration;

/// Largest reply read, in bytes: a token with a long chain is a few KiB; 1 MiB bounds a
/// misbehaving server.
pub const MAX_REPLY_BYTES: u64 = 1 << 20;

/// What went wrong obtaining a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The request could not be built (a digest of the wrong length, say).
    #[error("cannot build the request")]
    Request(#[source] pki::Error),
    /// The HTTP exchange failed.
    #[error("cannot reach the authority at {url}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: ureq::Error,
    },
    /// The server answered something that is not a TimeStampResp.
    #[error(
        "the authority at {url} answered HTTP {status} with {content_type:?}, not a timestamp reply"
    )]
    NotAReply {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Its media type.
        content_type: String,
    },
    /// The reply could not be decoded.
    #[error("the reply is not a valid TimeStampResp")]
    Malformed(#[source] pki::Error),
    /// The authority refused.
    #[error("the authority rejected the request: {fail_info}{text}")]
    Rejected {
        /// failInfo names.
        fail_info: String,
        /// statusString, prefixed with ": " when present.
        text: String,
    },
    /// The operating system gave no randomness for the nonce.
    #[error("no randomness available for the nonce")]
    Randomness,
    /// The token does not check out.
    #[error("the reply failed its checks: {0}")]
    BadToken(String),
}

/// A token obtained and checked.
#[derive(Debug)]
pub struct Stamped {
    /// The whole TimeStampResp as received (what `.tsr` files hold, as openssl writes them).
    pub response: Vec<u8>,
    /// The token within.
    pub token: ParsedToken,
    /// The checks made on it.
    pub report: SignatureReport,
}

/// A TSA client with a keep-alive connection pool.
pub struct TsaClient {
    url: String,
    agent: ureq::Agent,
    /// Ask for the TSA's certificates in the token.
    pub cert_req: bool,
    /// Send a nonce (and check it is echoed).
    pub nonce: bool,
    /// Request this policy.
    pub policy: Option<pki::oid::ObjectIdentifier>,
    /// Anchors to check the TSA's chain against; empty: the chain is not checked.
    pub trust: Vec<Vec<u8>>,
    /// The TSA's certificates, for tokens requested without them (`cert_req = false`).
    pub extra_certs: Vec<Vec<u8>>,
}

impl TsaClient {
    /// A client for `url` with a request timeout.
    pub fn new(url: &str, timeout: Duration) -> TsaClient {
        let agent = crate::http::agent(timeout);
        TsaClient {
            url: url.to_owned(),
            agent,
            cert_req: true,
            nonce: true,
            policy: None,
            trust: Vec::new(),
            extra_certs: Vec::new(),
        }
    }

    /// Obtains a token over `digest` (made with `hash_alg`) and checks it.
    pub fn stamp(&self, hash_alg: HashAlg, digest: &[u8]) -> Result<Stamped, StampError> {
        let nonce = if self.nonce {
            Some(random_nonce()?)
        } else {
            None
        };
        let req = pki::tsp::build_request(
            hash_alg,
            digest,
            nonce.as_ref().map(|n| &n[..]),
            self.cert_req,
            self.policy,
        )
        .map_err(StampError::Request)?;
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .send(&req[..])
            .map_err(|source| StampError::Http {
                url: self.url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("application/timestamp-reply")
            && !content_type.starts_with("application/timestamp-response")
        {
            return Err(StampError::NotAReply {
                url: self.url.clone(),
                status,
                content_type,
            });
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .map_err(|source| StampError::Http {
                url: self.url.clone(),
                source,
            })?;
        let parsed = pki::tsp::parse_response(&body).map_err(StampError::Malformed)?;
        if !matches!(
            parsed.status,
            PkiStatus::Granted | PkiStatus::GrantedWithMods
        ) {
            let names: Vec<&str> = parsed.fail_info.iter().map(|f| f.name()).collect();
            let fail_info = if names.is_empty() {
                format!("{:?}", parsed.status)
            } else {
                names.join(", ")
            };
            let text = if parsed.status_text.is_empty() {
                String::new()
            } else {
                format!(": {}", parsed.status_text.join("; "))
            };
            return Err(StampError::Rejected { fail_info, text });
        }
        let token = ParsedToken::parse(&body).map_err(StampError::Malformed)?;
        if token.hash_alg() != Some(hash_alg) {
            return Err(StampError::BadToken(format!(
                "the token's imprint uses {:?}, the request {hash_alg}",
                token.hash_alg()
            )));
        }
        let opts = VerifyOptions {
            trust: self.trust.clone(),
            extra_certs: self.extra_certs.clone(),
            expected_nonce: nonce.map(|n| n.to_vec()),
            ..Default::default()
        };
        let report = verify(&token, Some(digest), &opts);
        let failures: Vec<String> = report
            .failures()
            .into_iter()
            // Without anchors the chain cannot be checked; everything else must pass.
            .filter(|c| !(self.trust.is_empty() && c.name == "certificate-path"))
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        if !failures.is_empty() {
            return Err(StampError::BadToken(failures.join("; ")));
        }
        Ok(Stamped {
            response: body,
            token,
            report,
        })
    }
}

fn random_nonce() -> Result<[u8; 8], StampError> {
    pki::rand::array("a nonce").map_err(|_| StampError::Randomness)
}

/// The email and PDF signers obtain their signature timestamps through this.
impl pki::timestamper::Timestamper for TsaClient {
    fn timestamp(
        &self,
        hash: HashAlg,
        digest: &[u8],
    ) -> Result<ParsedToken, pki::timestamper::TimestampError> {
        self.stamp(hash, digest)
            .map(|s| s.token)
            .map_err(|e| Box::new(e) as pki::timestamper::TimestampError)
    }
}
