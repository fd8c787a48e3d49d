//! CAdES signatures (ETSI EN 319 122-1 baseline) that carry their signature timestamp: the one
//! signing path and the one SignerInfo check sequence of the email and PDF signers.
//!
//! Signing ([`sign`]): a SignedData through the three steps of [`crate::cms`] (so any
//! [`Signer`], an HSM included, works unchanged), with signingCertificateV2 always, signingTime
//! and smimeCapabilities when asked (an email has both; a PAdES signature has neither: its
//! claimed time is the signature dictionary's /M), then a signature timestamp over the
//! SignerInfo's signature value (CAdES-T, RFC 3161 Appendix A) through a [`Timestamper`],
//! checked against that value before it is embedded ([`obtain_token`]).
//!
//! Verifying ([`verify_signer_info`]): the shared SignerInfo verifier
//! ([`crate::signer_check::check_signer`]), the signature timestamp by the token verifier
//! ([`crate::token::check_signature_timestamp`]), the times side by side, weak algorithms, and
//! the certificate path at the proven time (or a later one the caller proves, or the time the
//! user asks for). What is particular to a kind (the From binding of an email, the byte ranges
//! and later revisions of a PDF) is the caller's.

use crate::cms::{SignedDataBuilder, SignerCert, add_signature_timestamp};
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::oid;
use crate::report::{SignatureReport, SigningTimes, TimeBasis, TimestampInfo};
use crate::signer::Signer;
use crate::signer_check::{SignedKind, SignerFound, SignerInput, check_hash_algorithms};
use crate::signer_info::{SignerInfoView, attributes};
use crate::timestamper::Timestamper;
use crate::token::{ParsedToken, VerifyOptions};

/// What is signed.
#[derive(Clone, Debug)]
pub enum Content {
    /// Detached content, by its digest with the signer's digest algorithm (a MIME part, a PDF
    /// byte range: the caller hashes it as a stream).
    Detached(Vec<u8>),
    /// Content carried inside the SignedData (opaque S/MIME).
    Encapsulated(Vec<u8>),
}

/// How to sign.
pub struct SignRequest<'a> {
    /// The key (a file, an HSM).
    pub signer: &'a dyn Signer,
    /// Its certificate.
    pub cert: &'a SignerCert,
    /// Certificates above it to include (intermediates; a root may be left out).
    pub chain: &'a [Vec<u8>],
    /// Where the signature timestamp comes from; `None` signs without one.
    pub timestamper: Option<&'a dyn Timestamper>,
    /// The signingTime attribute to write, Unix seconds; `None` writes none (PAdES).
    pub signing_time: Option<u64>,
    /// Whether to write smimeCapabilities (RFC 8551 §2.5.2).
    pub smime_capabilities: bool,
}

/// A signature, ready to embed.
#[derive(Clone, Debug)]
pub struct CadesSignature {
    /// The SignedData ContentInfo, DER.
    pub der: Vec<u8>,
    /// The signature timestamp embedded, when one was.
    pub timestamp: Option<TimestampInfo>,
    /// The certificates that token carries (for a PDF's /DSS).
    pub timestamp_certificates: Vec<Vec<u8>>,
}

/// The signer's digest algorithm: what a caller hashes detached content with.
pub fn digest_algorithm(signer: &dyn Signer) -> HashAlg {
    signer.algorithm().digest()
}

/// Signs `content` (see the module docs).
pub fn sign(content: Content, o: &SignRequest<'_>) -> Result<CadesSignature> {
    if !o.cert.matches(o.signer) {
        return Err(Error::Certificate(
            "the certificate does not belong to the signing key".into(),
        ));
    }
    let alg = o.signer.algorithm();
    let mut builder = match content {
        Content::Detached(digest) => {
            SignedDataBuilder::detached(oid::ID_DATA, digest, alg, o.cert)?
        }
        Content::Encapsulated(bytes) => {
            SignedDataBuilder::encapsulated(oid::ID_DATA, bytes, alg, o.cert)?
        }
    };
    if let Some(t) = o.signing_time {
        builder = builder.signed_attribute(crate::cms::signing_time(t)?)?;
    }
    builder = builder.signed_attribute(crate::cms::signing_certificate_v2(o.cert)?)?;
    if o.smime_capabilities {
        builder = builder.signed_attribute(crate::cms::smime_capabilities()?)?;
    }
    let mut certs = vec![o.cert.der.clone()];
    certs.extend(o.chain.iter().filter(|c| **c != o.cert.der).cloned());
    let tbs = builder.certificates(certs).to_be_signed()?;
    let signature = o.signer.sign(tbs.bytes())?;
    let der = tbs.assemble(signature.clone())?;
    let Some(ts) = o.timestamper else {
        return Ok(CadesSignature {
            der,
            timestamp: None,
            timestamp_certificates: Vec::new(),
        });
    };
    let h = ts.hash_alg();
    let token = obtain_token(ts, h, &h.digest(&signature))?;
    Ok(CadesSignature {
        der: add_signature_timestamp(&der, 0, &token)?,
        timestamp: Some(token.info()),
        timestamp_certificates: token.certificates,
    })
}

/// Obtains a token over `digest` (made with `hash`) and checks that its imprint is that
/// digest: a token over other bytes must never be embedded, whoever implements the trait.
pub fn obtain_token(ts: &dyn Timestamper, hash: HashAlg, digest: &[u8]) -> Result<ParsedToken> {
    let token = ts.timestamp(hash, digest).map_err(Error::Timestamp)?;
    if token.hash_alg() != Some(hash) || token.imprint() != digest {
        return Err(Error::invalid(
            "timestamp token",
            "the token's imprint is not the digest that was sent",
        ));
    }
    Ok(token)
}

/// The moment the signer's certificate path is checked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckTime {
    /// The time a timestamp proves, else now (the default).
    #[default]
    Proven,
    /// A given moment, Unix seconds (`--at TIME`): reported as unproven.
    At(i64),
    /// The signer's claimed time (`--at claimed`): reported as unproven.
    Claimed,
}

/// What one SignerInfo is checked against, beyond its content.
pub struct SignerChecks<'a> {
    /// How the report names what was signed.
    pub kind: SignedKind,
    /// Anchors for the signer's certificate.
    pub trust: &'a [Vec<u8>],
    /// The token verifier's options for the signature timestamp (the TSA anchors).
    pub tsa_opts: &'a VerifyOptions,
    /// When to check the path.
    pub check_time: CheckTime,
    /// The verifier's clock, Unix seconds (`None`: the system clock).
    pub now: Option<i64>,
    /// Weak algorithms fail instead of warning.
    pub strict: bool,
    /// Extended key usages the path may allow, tried in order (DER value bytes of each OID,
    /// with its name for the report); a certificate without an EKU allows any.
    pub ekus: &'a [(&'static [u8], &'static str)],
    /// The claimed time when the SignerInfo has no signingTime (a PDF's /M), Unix seconds.
    pub claimed_elsewhere: Option<i64>,
    /// A time proven by something other than the signature timestamp (a later PDF document
    /// timestamp), with its description for the report.
    pub later_proof: Option<(i64, &'a str)>,
    /// Whether signingCertificate(V2) must be present (CAdES, PAdES).
    pub require_signing_certificate: bool,
}

/// What [`verify_signer_info`] found.
#[derive(Clone, Debug)]
pub struct SignerOutcome<'a> {
    /// The signer's certificate, when one was found.
    pub signer: Option<SignerFound<'a>>,
    /// The time the signature timestamp proves, Unix seconds.
    pub proven: Option<i64>,
    /// The time the signer claims (signingTime, else the caller's), Unix seconds.
    pub claimed: Option<i64>,
}

/// Runs the checks every CAdES SignerInfo shares (see the module docs), recording them in `r`
/// and setting [`SignatureReport::times`]. `content_digest` digests the signed content as
/// received; `bag` is every certificate at hand, untrusted.
pub fn verify_signer_info<'a>(
    r: &mut SignatureReport,
    si: &'a SignerInfoView,
    content_digest: &'a dyn Fn(HashAlg) -> Option<Vec<u8>>,
    bag: &'a [&'a [u8]],
    carries_certificates: bool,
    o: &SignerChecks<'_>,
) -> SignerOutcome<'a> {
    let input = SignerInput {
        signer_info: si,
        kind: o.kind,
        content_digest,
        certificates: bag,
        carries_certificates,
        require_signing_certificate: o.require_signing_certificate,
    };
    let found = crate::signer_check::check_signer(&input, r);
    let proven =
        crate::token::check_signature_timestamp(r, si, o.tsa_opts).map(|p| p.unix_seconds());
    let claimed = signing_time(si).or(o.claimed_elsewhere);
    let now = o.now.unwrap_or_else(crate::gentime::unix_now);
    let (at, basis, when) = match o.check_time {
        CheckTime::At(t) => (
            Some(t),
            TimeBasis::Given,
            "at the time given with --at (not proven)".to_owned(),
        ),
        CheckTime::Claimed => (
            claimed,
            TimeBasis::Claimed,
            "at the signer's claimed time (not proven)".to_owned(),
        ),
        CheckTime::Proven => match (proven, o.later_proof) {
            (Some(p), _) => (
                Some(p),
                TimeBasis::Proven,
                "at the time the signature timestamp proves".to_owned(),
            ),
            (None, Some((t, what))) => (Some(t), TimeBasis::Proven, format!("at the time {what}")),
            (None, None) => (
                Some(now),
                TimeBasis::Now,
                "now (no proven time: the path is checked at the current time)".to_owned(),
            ),
        },
    };
    let fmt = crate::gentime::unix_rfc3339;
    r.times = Some(SigningTimes {
        proven: proven.or(o.later_proof.map(|(t, _)| t)).map(fmt),
        claimed: claimed.map(fmt),
        date_header: None,
        checked_at: at.map(fmt).unwrap_or_default(),
        checked_at_basis: basis,
    });
    let uses = [
        (si.digest_algorithm.oid, "the digest algorithm"),
        (si.signature_algorithm.oid, "the signature algorithm"),
    ];
    if check_hash_algorithms(r, &uses, o.strict) {
        r.pass("hash-algorithm", "no weak algorithm");
    }
    if let Some(signer) = &found {
        match at {
            None => r.fail(
                "certificate-path",
                "--at claimed, but the signature claims no time",
            ),
            Some(t) => crate::verify::check_path(r, signer.der, bag, o.trust, t, o.ekus, &when),
        }
    }
    SignerOutcome {
        signer: found,
        proven,
        claimed,
    }
}

/// The signingTime signed attribute, Unix seconds.
pub fn signing_time(si: &SignerInfoView) -> Option<i64> {
    let attrs = attributes(si.signed_attrs_der.as_deref()?).ok()?;
    let a = attrs.iter().find(|a| a.oid == oid::ID_SIGNING_TIME)?;
    let [v] = a.values.as_slice() else {
        return None;
    };
    let t = v
        .decode::<der::asn1::UtcTime>("signingTime")
        .map(|u| u.to_unix_duration())
        .or_else(|_| {
            v.decode::<der::asn1::GeneralizedTime>("signingTime")
                .map(|g| g.to_unix_duration())
        })
        .ok()?;
    i64::try_from(t.as_secs()).ok()
}

/// What [`verify_detached`] found, owned.
#[derive(Clone, Debug, Default)]
pub struct DetachedOutcome {
    /// The signer's certificate DER, when one was found.
    pub signer_der: Option<Vec<u8>>,
    /// The time the signature timestamp proves, Unix seconds.
    pub proven: Option<i64>,
    /// The time the signer claims, Unix seconds.
    pub claimed: Option<i64>,
    /// Whether the SignerInfo carries a signingTime attribute.
    pub has_signing_time: bool,
}

/// Splits a signature container (a PDF's /Contents) into the signature (one BER or DER value)
/// and what follows it, which must be zero padding.
pub fn strip_padding(contents: &[u8]) -> std::result::Result<&[u8], String> {
    let len = crate::ber::value_len(contents)
        .map_err(|e| format!("the signature is not a readable CMS structure: {e}"))?;
    if contents[len..].iter().any(|&b| b != 0) {
        return Err(format!(
            "{} bytes after the signature are not zero padding",
            contents.len() - len
        ));
    }
    Ok(&contents[..len])
}

/// Verifies a detached SignedData with exactly one SignerInfo (a PDF signature: ISO 32000-2
/// §12.8.3.3 allows one signer) over content whose digest `content_digest` computes. Records
/// `structure` failures (not SignedData, eContent present, not id-data, several signers) and
/// everything [`verify_signer_info`] checks; `extra_certs` are the caller's certificates (a
/// PDF's /DSS, `--certs`).
pub fn verify_detached(
    r: &mut SignatureReport,
    cms: &[u8],
    content_digest: &dyn Fn(HashAlg) -> Option<Vec<u8>>,
    extra_certs: &[Vec<u8>],
    o: &SignerChecks<'_>,
) -> DetachedOutcome {
    let der = match crate::ber::normalize(cms) {
        Ok(d) => d,
        Err(e) => {
            r.fail(
                "structure",
                format!(
                    "the signature is malformed: {}",
                    crate::error::error_text(&e)
                ),
            );
            return DetachedOutcome::default();
        }
    };
    let raw = match crate::cms::RawSignedData::parse(&der) {
        Ok(raw) => raw,
        Err(e) => {
            r.fail(
                "structure",
                format!(
                    "the signature is not a CMS SignedData: {}",
                    crate::error::error_text(&e)
                ),
            );
            return DetachedOutcome::default();
        }
    };
    let encap: std::result::Result<cms::signed_data::EncapsulatedContentInfo, _> =
        raw.fields[2].decode("encapContentInfo");
    match encap {
        Err(e) => {
            r.fail(
                "structure",
                format!(
                    "encapContentInfo is malformed: {}",
                    crate::error::error_text(&e)
                ),
            );
            return DetachedOutcome::default();
        }
        Ok(e) if e.econtent.is_some() => r.fail(
            "structure",
            "the signature encapsulates content of its own: a detached signature over the \
             document must not (what is signed would not be what is shown)",
        ),
        Ok(e) if e.econtent_type != oid::ID_DATA => r.fail(
            "structure",
            format!(
                "the signed content type is {}, not id-data",
                e.econtent_type
            ),
        ),
        Ok(_) => {}
    }
    let [si_raw] = raw.signer_infos.as_slice() else {
        r.fail(
            "structure",
            format!(
                "the signature has {} SignerInfos; a PDF signature has exactly one",
                raw.signer_infos.len()
            ),
        );
        return DetachedOutcome::default();
    };
    let view = match SignerInfoView::parse(si_raw.full) {
        Ok(v) => v,
        Err(e) => {
            r.fail(
                "signed-attributes",
                format!(
                    "the SignerInfo is malformed: {}",
                    crate::error::error_text(&e)
                ),
            );
            return DetachedOutcome::default();
        }
    };
    let carried = raw.certificates().unwrap_or_default();
    let carries = !carried.is_empty();
    let bag: Vec<&[u8]> = carried
        .iter()
        .copied()
        .chain(extra_certs.iter().map(Vec::as_slice))
        .collect();
    let has_signing_time = signing_time(&view).is_some();
    let out = verify_signer_info(r, &view, content_digest, &bag, carries, o);
    DetachedOutcome {
        signer_der: out.signer.map(|s| s.der.to_vec()),
        proven: out.proven,
        claimed: out.claimed,
        has_signing_time,
    }
}
