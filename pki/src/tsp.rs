//! RFC 3161 requests, responses and token issuing: the protocol half of the authority and of
//! the client. No network here: the `tsa` and `stamp` crates carry the bytes.

use crate::asn1::{
    FailureInfo, MessageImprint, PkiStatus, PkiStatusInfo, TimeStampReq, TimeStampResp, TspVersion,
    TstInfo,
};
use crate::cms::{SignedDataBuilder, SignerCert};
use crate::digest::{HashAlg, params_absent_or_null};
use crate::error::{Error, Result};
use crate::gentime::GenTime;
use crate::oid;
use crate::raw::{RawTlv, tlv};
use crate::signer::{Signer, to_der};
use der::asn1::{Int, ObjectIdentifier, OctetString, Utf8StringRef};
use der::{Any, Decode, Tag};
use std::sync::Arc;
use x509_cert::ext::pkix::name::GeneralName;

pub use crate::asn1::Accuracy;

/// Why a request is refused: the failInfo bit and a short text for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The PKIFailureInfo bit answered.
    pub fail_info: FailureInfo,
    /// What was wrong, for the log (never sent in granted replies).
    pub reason: String,
}

impl Rejection {
    /// A rejection with `fail_info` and `reason`.
    pub fn new(fail_info: FailureInfo, reason: impl Into<String>) -> Rejection {
        Rejection {
            fail_info,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.fail_info, self.reason)
    }
}

/// What the authority accepts: hash allowlist and policies. Loaded once from configuration.
#[derive(Clone, Debug)]
pub struct RequestPolicy {
    /// Imprint hash algorithms accepted. SHA-1 may be listed only through
    /// [`RequestPolicy::dangerous_allow_sha1`].
    pub hash_algorithms: Vec<HashAlg>,
    /// The policy used when the request names none.
    pub default_policy: ObjectIdentifier,
    /// Further policies a request may ask for (the default is always accepted).
    pub accepted_policies: Vec<ObjectIdentifier>,
}

impl RequestPolicy {
    /// SHA-256/384/512 and the given default policy.
    pub fn new(default_policy: ObjectIdentifier) -> RequestPolicy {
        RequestPolicy {
            hash_algorithms: vec![HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512],
            default_policy,
            accepted_policies: Vec::new(),
        }
    }

    /// Also accepts SHA-1 imprints. CA/B Forum code-signing rules forbid it; only for legacy
    /// clients that cannot be changed.
    pub fn dangerous_allow_sha1(mut self) -> RequestPolicy {
        if !self.hash_algorithms.contains(&HashAlg::Sha1) {
            self.hash_algorithms.push(HashAlg::Sha1);
        }
        self
    }

    fn accepts_policy(&self, p: &ObjectIdentifier) -> bool {
        *p == self.default_policy || self.accepted_policies.contains(p)
    }
}

/// A request that passed every check, with the values the token needs.
#[derive(Clone, Debug)]
pub struct CheckedRequest {
    /// The imprint's hash algorithm.
    pub hash_alg: HashAlg,
    /// The imprint as received (algorithm identifier kept byte-equal for the token).
    pub message_imprint: MessageImprint,
    /// The nonce to echo.
    pub nonce: Option<Int>,
    /// Whether certificates must be included.
    pub cert_req: bool,
    /// The policy the token will carry.
    pub policy: ObjectIdentifier,
}

/// Parses and checks a DER TimeStampReq against `policy` (RFC 3161 §2.4.1).
pub fn check_request(
    der: &[u8],
    policy: &RequestPolicy,
) -> std::result::Result<CheckedRequest, Rejection> {
    let req = TimeStampReq::from_der(der).map_err(|e| {
        Rejection::new(
            FailureInfo::BadDataFormat,
            format!("request is not a DER TimeStampReq: {e}"),
        )
    })?;
    let TspVersion::V1 = req.version;
    let alg = &req.message_imprint.hash_algorithm;
    let hash_alg = match HashAlg::from_oid(&alg.oid) {
        Some(h) if policy.hash_algorithms.contains(&h) => h,
        Some(h) => {
            return Err(Rejection::new(
                FailureInfo::BadAlg,
                format!("hash algorithm {h} is not accepted"),
            ));
        }
        None if oid::hash_strength(&alg.oid) == oid::HashStrength::Broken => {
            return Err(Rejection::new(FailureInfo::BadAlg, "MD5 is not accepted"));
        }
        None => {
            return Err(Rejection::new(
                FailureInfo::BadAlg,
                format!("unknown hash algorithm {}", alg.oid),
            ));
        }
    };
    if !params_absent_or_null(alg.parameters.as_ref()) {
        return Err(Rejection::new(
            FailureInfo::BadAlg,
            "hash algorithm parameters must be absent or NULL",
        ));
    }
    let got = req.message_imprint.hashed_message.as_bytes().len();
    if got != hash_alg.len() {
        return Err(Rejection::new(
            FailureInfo::BadDataFormat,
            format!(
                "imprint is {got} bytes, {hash_alg} makes {}",
                hash_alg.len()
            ),
        ));
    }
    let token_policy = match req.req_policy {
        Some(p) if policy.accepts_policy(&p) => p,
        Some(p) => {
            return Err(Rejection::new(
                FailureInfo::UnacceptedPolicy,
                format!("policy {p} is not accepted"),
            ));
        }
        None => policy.default_policy,
    };
    // RFC 3161 §2.4.1: an extension the server does not recognise, critical or not, must be
    // refused. We recognise none.
    if let Some(ext) = req.extensions.as_ref().and_then(|e| e.first()) {
        let kind = if ext.critical {
            "critical"
        } else {
            "non-critical"
        };
        return Err(Rejection::new(
            FailureInfo::UnacceptedExtension,
            format!("{kind} extension {} is not supported", ext.extn_id),
        ));
    }
    Ok(CheckedRequest {
        hash_alg,
        message_imprint: req.message_imprint,
        nonce: req.nonce,
        cert_req: req.cert_req,
        policy: token_policy,
    })
}

/// Builds a DER TimeStampReq for `digest` (client side).
pub fn build_request(
    hash_alg: HashAlg,
    digest: &[u8],
    nonce: Option<&[u8]>,
    cert_req: bool,
    policy: Option<ObjectIdentifier>,
) -> Result<Vec<u8>> {
    if digest.len() != hash_alg.len() {
        return Err(Error::invalid(
            "digest",
            format!("{} bytes for {hash_alg}", digest.len()),
        ));
    }
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: hash_alg.oid(),
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(digest).map_err(Error::Encode)?,
        },
        req_policy: policy,
        nonce: nonce.map(positive_int).transpose()?,
        cert_req,
        extensions: None,
    };
    to_der(&req)
}

/// A positive INTEGER from big-endian magnitude bytes (leading zeros dropped, 0x00 added when
/// the top bit is set), as serials and nonces need.
pub fn positive_int(magnitude: &[u8]) -> Result<Int> {
    let start = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let trimmed = &magnitude[start..];
    let mut bytes = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() || trimmed[0] & 0x80 != 0 {
        bytes.push(0);
    }
    bytes.extend_from_slice(trimmed);
    Int::new(&bytes).map_err(Error::Encode)
}

mod template;

/// What every token of an issuer says about it: signer, certificates, accuracy, name,
/// extensions.
struct Profile {
    signer: Arc<dyn Signer>,
    cert: SignerCert,
    /// Certificates after the signer's, up to but not including the root.
    chain: Vec<Vec<u8>>,
    signing_certificate_v2: crate::asn1::Attribute,
    accuracy: Option<crate::asn1::Accuracy>,
    tsa_name: Option<GeneralName>,
    extensions: Option<x509_cert::ext::Extensions>,
}

/// The authority's signing identity and token profile, prepared once at start, and its tokens'
/// constant parts encoded once ([`template`]).
pub struct TokenIssuer {
    profile: Profile,
    template: template::Template,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("algorithm", &self.profile.signer.algorithm())
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Prepares an issuer. `chain` holds the certificates above the TSA's, in order; a
    /// self-signed root among them is left out of tokens (clients hold it as their anchor).
    /// The certificate must belong to the signer's key.
    pub fn new(
        signer: Arc<dyn Signer>,
        cert: SignerCert,
        chain: Vec<Vec<u8>>,
        accuracy: Option<crate::asn1::Accuracy>,
        include_tsa_name: bool,
    ) -> Result<TokenIssuer> {
        if !cert.matches(signer.as_ref()) {
            return Err(Error::Certificate(
                "the TSA certificate does not match the signing key".into(),
            ));
        }
        let chain = chain
            .into_iter()
            .filter(|der| match x509_cert::Certificate::from_der(der) {
                Ok(c) => c.tbs_certificate.subject != c.tbs_certificate.issuer,
                Err(_) => true,
            })
            .collect();
        let signing_certificate_v2 = crate::cms::signing_certificate_v2(&cert)?;
        let tsa_name = include_tsa_name
            .then(|| GeneralName::DirectoryName(cert.cert.tbs_certificate.subject.clone()));
        Self::with_profile(Profile {
            signer,
            cert,
            chain,
            signing_certificate_v2,
            accuracy,
            tsa_name,
            extensions: None,
        })
    }

    /// Encodes `profile`'s template and checks it against the generic encoder: the same
    /// request, with and without certificates, must give the same bytes, or the issuer is
    /// refused (never a token the generic path would not have written).
    fn with_profile(profile: Profile) -> Result<TokenIssuer> {
        let issuer = TokenIssuer {
            template: template::Template::build(&profile)?,
            profile,
        };
        let der = build_request(
            HashAlg::Sha256,
            &[0x5a; 32],
            Some(&[0x80, 1, 2, 3, 4, 5, 6, 7]),
            true,
            None,
        )?;
        let mut req = check_request(&der, &RequestPolicy::new(oid::DEV_POLICY))
            .map_err(|r| Error::invalid("token template check", r.to_string()))?;
        let gen_time = GenTime::from_unix_millis(1_700_000_000_123)
            .map_err(|e| Error::invalid("token template check", e.to_string()))?;
        let serial = [0x80, 0, 0, 0, 0, 0, 0, 1];
        let signature = vec![0x42; 72];
        for cert_req in [true, false] {
            req.cert_req = cert_req;
            let generic = issuer.prepare(&req, &serial, gen_time)?;
            let fast = issuer.template.unsigned(&req, &serial, gen_time)?;
            let same = generic.bytes() == fast.bytes()
                && generic.assemble(signature.clone())?
                    == issuer.template.assemble(&fast, &signature, cert_req)?;
            if !same {
                return Err(Error::invalid(
                    "token template",
                    "its tokens differ from the generic encoder's",
                ));
            }
        }
        Ok(issuer)
    }

    /// Marks tokens as qualified electronic time stamps (ETSI EN 319 422 §9.1): a non-critical
    /// qcStatements extension with esi4-qtstStatement-1 in every TSTInfo. Only for an
    /// authority that is qualified under eIDAS.
    pub fn qualified(self) -> Result<TokenIssuer> {
        let statements = vec![crate::asn1::QcStatement {
            statement_id: oid::ESI4_QTST_STATEMENT_1,
            statement_info: None,
        }];
        let ext = x509_cert::ext::Extension {
            extn_id: oid::ID_PE_QC_STATEMENTS,
            critical: false,
            extn_value: OctetString::new(to_der(&statements)?).map_err(Error::Encode)?,
        };
        let mut profile = self.profile;
        profile.extensions = Some(vec![ext]);
        Self::with_profile(profile)
    }

    /// Names the authority in every TSTInfo's `tsa` field as `name` instead of the certificate's
    /// subject (RFC 3161 §2.4.2 wants one of the certificate's names; tests use others).
    pub fn with_tsa_name(self, name: GeneralName) -> Result<TokenIssuer> {
        let mut profile = self.profile;
        profile.tsa_name = Some(name);
        Self::with_profile(profile)
    }

    /// Declares `accuracy` in every TSTInfo instead of the one given at [`TokenIssuer::new`].
    pub fn with_accuracy(self, accuracy: Option<crate::asn1::Accuracy>) -> Result<TokenIssuer> {
        let mut profile = self.profile;
        profile.accuracy = accuracy;
        Self::with_profile(profile)
    }

    /// The signer (for callers that sign elsewhere, e.g. on a blocking pool).
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.profile.signer
    }

    /// Steps 1 and 3 around the signer through the generic builders (der's types and
    /// [`SignedDataBuilder`]): the TSTInfo and signed attributes for `req`. [`TokenIssuer::issue`]
    /// writes the same bytes from the template; this is the reference it is checked against.
    pub fn prepare(
        &self,
        req: &CheckedRequest,
        serial: &[u8],
        gen_time: GenTime,
    ) -> Result<crate::cms::ToBeSigned> {
        let p = &self.profile;
        let tst = TstInfo {
            version: TspVersion::V1,
            policy: req.policy,
            message_imprint: req.message_imprint.clone(),
            serial_number: positive_int(serial)?,
            gen_time,
            accuracy: p.accuracy.clone(),
            ordering: false,
            nonce: req.nonce.clone(),
            tsa: p.tsa_name.clone(),
            extensions: p.extensions.clone(),
        };
        let mut builder = SignedDataBuilder::encapsulated(
            oid::ID_CT_TST_INFO,
            to_der(&tst)?,
            p.signer.algorithm(),
            &p.cert,
        )?
        .signed_attribute(p.signing_certificate_v2.clone())?;
        if req.cert_req {
            builder = builder
                .certificates(std::iter::once(p.cert.der.clone()).chain(p.chain.iter().cloned()));
        }
        builder.to_be_signed()
    }

    /// Issues a token (ContentInfo DER) in one call, signing in place, from the template.
    pub fn issue(&self, req: &CheckedRequest, serial: &[u8], gen_time: GenTime) -> Result<Vec<u8>> {
        let unsigned = self.template.unsigned(req, serial, gen_time)?;
        let signature = self.profile.signer.sign(unsigned.bytes())?;
        self.template.assemble(&unsigned, &signature, req.cert_req)
    }
}

/// A granted TimeStampResp around `token` (no statusString: jarsigner breaks on it).
pub fn granted_response(token: &[u8]) -> Result<Vec<u8>> {
    let status = to_der(&PkiStatusInfo {
        status: PkiStatus::Granted,
        status_string: None,
        fail_info: None,
    })?;
    tlv(Tag::Sequence, &[&status, token])
}

/// A rejection TimeStampResp with the failInfo bit and a statusString.
pub fn rejection_response(fail_info: FailureInfo, text: &str) -> Result<Vec<u8>> {
    let text = Utf8StringRef::new(text).map_err(Error::Encode)?;
    to_der(&TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec![text]),
            fail_info: Some(fail_info.to_bit_string()?),
        },
        time_stamp_token: None,
    })
}

/// A decoded TimeStampResp (client side).
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// The status.
    pub status: PkiStatus,
    /// statusString texts.
    pub status_text: Vec<String>,
    /// failInfo bits.
    pub fail_info: Vec<FailureInfo>,
    /// The token DER, exactly as received.
    pub token: Option<Vec<u8>>,
}

/// Parses a TimeStampResp (DER, or BER that normalises to DER).
pub fn parse_response(bytes: &[u8]) -> Result<ParsedResponse> {
    parse_response_der(&crate::ber::normalize(bytes)?)
}

/// [`parse_response`] of bytes already normalised to DER ([`crate::ber::normalize`]).
pub(crate) fn parse_response_der(der: &[u8]) -> Result<ParsedResponse> {
    let resp = TimeStampResp::from_der(der).map_err(Error::decode("TimeStampResp"))?;
    Ok(ParsedResponse {
        status: resp.status.status,
        status_text: resp
            .status
            .status_string
            .unwrap_or_default()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        fail_info: resp
            .status
            .fail_info
            .as_ref()
            .map(FailureInfo::from_bit_string)
            .unwrap_or_default(),
        token: resp.time_stamp_token.map(|t| to_der(&t)).transpose()?,
    })
}

/// Whether `bytes` hold a whole TimeStampResp rather than a bare token (ContentInfo): a
/// response's first element is the PKIStatusInfo SEQUENCE, a token's is an OID.
pub fn is_response(bytes: &[u8]) -> bool {
    crate::ber::normalize(bytes).is_ok_and(|der| is_response_der(&der))
}

/// [`is_response`] of bytes already normalised to DER.
pub(crate) fn is_response_der(der: &[u8]) -> bool {
    let Ok(outer) = RawTlv::parse(der, "input") else {
        return false;
    };
    let Ok((first, _)) = RawTlv::parse_prefix(outer.value, "input") else {
        return false;
    };
    first.tag == Tag::Sequence
}
