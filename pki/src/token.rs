//! Timestamp token verification (RFC 3161 §2.4.2, RFC 5816, RFC 5652 §5.6) for tokens from
//! any authority.
//!
//! Parsing ([`ParsedToken::parse`]) accepts BER (normalised first), a bare token or a whole
//! TimeStampResp. Verification ([`verify`]) hashes everything exactly as received: the eContent
//! octets for messageDigest and the received signed-attribute bytes for the signature.
//!
//! Parsing is linear in the input whatever it holds (see [`crate::limits`]): SignerInfo is read
//! raw ([`SignerInfoView`]), unsigned attributes are only counted, and every structure that
//! holds a Name passes [`crate::limits::check_sets`] before `der` decodes it. The structure
//! rules RFC 5652 and RFC 3161 state are checked here, so that a token that breaks one does not
//! parse: ContentInfo of type id-signedData, SignedData version as §5.1 computes it, exactly one
//! SignerInfo whose version fits its sid (§5.3) and whose digestAlgorithm is listed in
//! digestAlgorithms, and, in a TimeStampResp, a token only with status granted or
//! grantedWithMods (RFC 3161 §2.4.2).

use crate::asn1::TstInfo;
use crate::cms::RawSignedData;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::gentime::GenTime;
use crate::oid;
use crate::raw::{RawTlv, context};
use crate::report::TimestampInfo;
use crate::signer_info::SignerInfoView;
use crate::tsp;
use cms::signed_data::EncapsulatedContentInfo;
use der::Decode;
use der::Tag;
use der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::ext::pkix::name::GeneralName;

mod checks;

pub use checks::verify;

/// A decoded token, kept with the bytes its checks hash.
#[derive(Clone, Debug)]
pub struct ParsedToken {
    /// The token (ContentInfo) DER, after BER normalisation.
    pub der: Vec<u8>,
    /// The decoded TSTInfo.
    pub tst_info: TstInfo,
    /// The TSTInfo octets exactly as carried in eContent.
    pub tst_der: Vec<u8>,
    /// The single SignerInfo, read raw.
    pub signer_info: SignerInfoView,
    /// The signed attributes exactly as received, re-tagged as SET for verification.
    pub signed_attrs_der: Vec<u8>,
    /// Certificates carried in the token.
    pub certificates: Vec<Vec<u8>>,
    /// Structure rules the token breaks in a way deployed authorities do and that is tolerated
    /// (reported by the `structure` check as warnings, failures with `strict`).
    pub structure_warnings: Vec<String>,
}

impl ParsedToken {
    /// Parses a token from a `.tsr` file's bytes: a bare token or a granted TimeStampResp,
    /// DER or BER.
    pub fn parse(bytes: &[u8]) -> Result<ParsedToken> {
        let normal = crate::ber::normalize(bytes)?;
        let token = if tsp::is_response_der(&normal) {
            let resp = tsp::parse_response_der(&normal)?;
            let granted = matches!(
                resp.status,
                crate::asn1::PkiStatus::Granted | crate::asn1::PkiStatus::GrantedWithMods
            );
            match resp.token {
                Some(_) if !granted => {
                    return Err(Error::invalid(
                        "TimeStampResp",
                        format!(
                            "status {:?} with a token: RFC 3161 §2.4.2 allows a token only when \
                             the status is granted or grantedWithMods (statusString: \"{}\")",
                            resp.status,
                            resp.status_text.join("; ")
                        ),
                    ));
                }
                Some(t) => t,
                None => {
                    let why: Vec<String> = resp.fail_info.iter().map(|f| f.to_string()).collect();
                    return Err(Error::invalid(
                        "TimeStampResp",
                        format!(
                            "it holds no token (status {:?} {} {})",
                            resp.status,
                            why.join(","),
                            resp.status_text.join("; ")
                        ),
                    ));
                }
            }
        } else {
            normal.into_owned()
        };
        Self::parse_token_der(token)
    }

    fn parse_token_der(der: Vec<u8>) -> Result<ParsedToken> {
        let raw = RawSignedData::parse(&der)?;
        let encap: EncapsulatedContentInfo = raw.fields[2].decode("encapContentInfo")?;
        if encap.econtent_type != oid::ID_CT_TST_INFO {
            return Err(Error::invalid(
                "timestamp token",
                format!("eContentType is {}, not id-ct-TSTInfo", encap.econtent_type),
            ));
        }
        let econtent = encap
            .econtent
            .ok_or_else(|| Error::invalid("timestamp token", "no eContent"))?;
        let tst_der = econtent
            .decode_as::<OctetString>()
            .map_err(Error::decode("eContent"))?
            .as_bytes()
            .to_vec();
        crate::limits::check_sets(&tst_der, "TSTInfo")?;
        let tst_info = TstInfo::from_der(&tst_der).map_err(Error::decode("TSTInfo"))?;
        if raw.signer_infos.len() != 1 {
            return Err(Error::invalid(
                "timestamp token",
                format!(
                    "{} SignerInfos; RFC 3161 wants exactly one",
                    raw.signer_infos.len()
                ),
            ));
        }
        let signer_info = SignerInfoView::parse(raw.signer_infos[0].full)?;
        let structure_warnings = check_structure(&raw, &signer_info)?;
        let signed_attrs_der = signer_info.signed_attrs_der.clone().ok_or_else(|| {
            Error::invalid("timestamp token", "SignerInfo has no signed attributes")
        })?;
        let certificates = raw
            .certificates()?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        Ok(ParsedToken {
            tst_info,
            tst_der,
            signer_info,
            signed_attrs_der,
            certificates,
            structure_warnings,
            der,
        })
    }

    /// The imprint's hash algorithm, when it is one we know.
    pub fn hash_alg(&self) -> Option<HashAlg> {
        HashAlg::from_oid(&self.tst_info.message_imprint.hash_algorithm.oid)
    }

    /// The imprint.
    pub fn imprint(&self) -> &[u8] {
        self.tst_info.message_imprint.hashed_message.as_bytes()
    }

    /// genTime.
    pub fn gen_time(&self) -> GenTime {
        self.tst_info.gen_time
    }

    /// The TSTInfo's extensions for display: name and OID, `(critical)` when marked so.
    pub fn extension_names(&self) -> Vec<String> {
        self.tst_info
            .extensions
            .iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}{}",
                    crate::oid::display_name(&e.extn_id),
                    if e.critical { " (critical)" } else { "" }
                )
            })
            .collect()
    }

    /// What the token says, for reports.
    pub fn info(&self) -> TimestampInfo {
        let t = &self.tst_info;
        let serial = t.serial_number.as_bytes();
        let decimal = (serial.len() <= 16).then(|| {
            let mut v: u128 = 0;
            for b in serial {
                v = (v << 8) | u128::from(*b);
            }
            v.to_string()
        });
        TimestampInfo {
            gen_time: t.gen_time.to_string(),
            gen_time_unix: t.gen_time.unix_seconds(),
            serial_hex: hex::encode(serial),
            serial: decimal,
            policy: t.policy.to_string(),
            hash_algorithm: self
                .hash_alg()
                .map(|h| h.name().to_owned())
                .unwrap_or_else(|| t.message_imprint.hash_algorithm.oid.to_string()),
            imprint: hex::encode(self.imprint()),
            accuracy: t.accuracy.as_ref().map(|a| {
                let mut parts = Vec::new();
                if let Some(s) = a.seconds {
                    parts.push(format!("{s}s"));
                }
                if let Some(m) = a.millis {
                    parts.push(format!("{m}ms"));
                }
                if let Some(u) = a.micros {
                    parts.push(format!("{u}us"));
                }
                parts.join(" ")
            }),
            ordering: t.ordering,
            nonce: t.nonce.as_ref().map(|n| hex::encode(n.as_bytes())),
            tsa_name: t.tsa.as_ref().map(general_name_string),
        }
    }
}

/// A GeneralName for humans.
pub fn general_name_string(name: &GeneralName) -> String {
    match name {
        GeneralName::DirectoryName(n) => crate::cert::name_text(n),
        GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
        GeneralName::Rfc822Name(e) => format!("email:{}", e.as_str()),
        GeneralName::UniformResourceIdentifier(u) => format!("URI:{}", u.as_str()),
        other => format!("{other:?}"),
    }
}

/// The structure rules of RFC 5652 §5.1 and §5.3 a token's SignedData must keep. Returns the
/// deviations tolerated as warnings (see [`ParsedToken::structure_warnings`]).
fn check_structure(raw: &RawSignedData<'_>, si: &SignerInfoView) -> Result<Vec<String>> {
    const W: &str = "SignedData";
    let version: u8 = raw.fields[0].decode("SignedData version")?;
    // RFC 5652 §5.1: the version follows from what the SignedData holds.
    let tags = |field: u8| -> Result<Vec<Tag>> {
        match raw
            .fields
            .iter()
            .position(|f| f.tag == context(field, true))
        {
            Some(i) => Ok(raw.fields[i].children(W)?.iter().map(|c| c.tag).collect()),
            None => Ok(Vec::new()),
        }
    };
    let certs = tags(0)?;
    let crls = tags(1)?;
    let expected = if certs.contains(&context(3, true)) || crls.contains(&context(1, true)) {
        5
    } else if certs.contains(&context(2, true)) {
        4
    } else {
        // eContentType is id-ct-TSTInfo, not id-data, so at least 3.
        3
    };
    let mut warnings = Vec::new();
    if version == 1 && expected == 3 {
        // Deployed authorities built on Go's digitorus/pkcs7 (GitHub's, for one) write version 1
        // around an id-ct-TSTInfo eContent. openssl accepts it; we report it (a failure with
        // `strict`) rather than refuse tokens that are otherwise sound.
        warnings.push(format!(
            "SignedData version 1; RFC 5652 §5.1 requires {expected} for an eContentType other \
             than id-data"
        ));
    } else if version != expected {
        return Err(Error::invalid(
            W,
            format!("version {version}; RFC 5652 §5.1 requires {expected} for what it holds"),
        ));
    }
    let want = si.sid.required_version();
    if si.version != want {
        return Err(Error::invalid(
            "SignerInfo",
            format!(
                "version {} with this sid; RFC 5652 §5.3 requires {want}",
                si.version
            ),
        ));
    }
    // The signer's digestAlgorithm must be among digestAlgorithms (compared by OID).
    let digest_algs = &raw.fields[1];
    if digest_algs.tag != Tag::Set {
        return Err(Error::invalid(W, "digestAlgorithms is not a SET"));
    }
    let listed = digest_algs.children(W)?.iter().any(|a| {
        RawTlv::parse_prefix(a.value, W)
            .ok()
            .and_then(|(o, _)| o.decode::<ObjectIdentifier>("digest OID").ok())
            == Some(si.digest_algorithm.oid)
    });
    if !listed {
        return Err(Error::invalid(
            W,
            format!(
                "the signer's digestAlgorithm {} is not listed in digestAlgorithms",
                si.digest_algorithm.oid
            ),
        ));
    }
    Ok(warnings)
}

/// What to verify a token against.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Trust anchors (certificate DER).
    pub trust: Vec<Vec<u8>>,
    /// Certificates to use beside those in the token (`--certs`).
    pub extra_certs: Vec<Vec<u8>>,
    /// The nonce the request carried, when the caller made the request.
    pub expected_nonce: Option<Vec<u8>>,
    /// The verifier's clock, Unix seconds; `None` reads the system clock. A genTime further in
    /// the future than [`GEN_TIME_TOLERANCE_SECS`] plus the token's accuracy fails.
    pub now: Option<i64>,
    /// Check the TSA's certificate path at this moment (Unix seconds, `--at TIME`) instead of
    /// genTime; the report marks it as not proven.
    pub at: Option<i64>,
    /// Make the weak-algorithm warnings (SHA-1 in the imprint, the SignerInfo's digestAlgorithm
    /// or its signatureAlgorithm; ESSCertID v1's SHA-1 certificate hash is an identifier and is
    /// not flagged) and the structure warnings (SignedData version 1 around TSTInfo) failures
    /// (`--strict`).
    pub strict: bool,
}

/// How far a genTime may lie ahead of the verifier's clock, beyond the token's accuracy:
/// clocks of honest authorities and verifiers drift by seconds, not minutes.
pub const GEN_TIME_TOLERANCE_SECS: i64 = 300;

/// Most of a token's declared accuracy that widens [`GEN_TIME_TOLERANCE_SECS`]: ETSI EN 319 422
/// authorities declare a second or less; an hour is generous, and a token that declares more
/// must not thereby switch the future-genTime check off.
pub const MAX_ACCURACY_CREDIT_SECS: i64 = 3600;

/// Verifies the signature timestamp a signature carries (RFC 3161 Appendix A: a token in the
/// unsigned attribute id-aa-signatureTimeStampToken, over the SignerInfo's signature value)
/// with the token verifier, so that emails and PDFs check tokens exactly as tokens are checked.
///
/// Records the `signature-timestamp` check in `r` and nests the token's own report
/// ([`SignatureReport::signature_timestamp`]); returns the proven time when the token
/// verifies. A token over other bytes (moved from another signature) fails its imprint check;
/// a signature without a token is a warning, "time not proven". `opts` names the TSA anchors
/// (the caller may pass other anchors than the signer's).
pub fn check_signature_timestamp(
    r: &mut crate::report::SignatureReport,
    signer_info: &SignerInfoView,
    opts: &VerifyOptions,
) -> Option<GenTime> {
    use crate::report::Outcome;
    const NAME: &str = "signature-timestamp";
    let Some(first) = signer_info.signature_timestamps.first() else {
        r.check(
            NAME,
            Outcome::Warning,
            "no signature timestamp: the time of signing is not proven",
        );
        return None;
    };
    let token = match ParsedToken::parse(first) {
        Ok(t) => t,
        Err(e) => {
            r.fail(
                NAME,
                format!(
                    "the signature timestamp is not a valid token: {}",
                    crate::error::error_text(&e)
                ),
            );
            return None;
        }
    };
    let digest = token.hash_alg().map(|h| h.digest(&signer_info.signature));
    let report = verify(&token, digest.as_deref(), opts);
    let more = signer_info.signature_timestamps.len() - 1;
    let others = if more > 0 {
        format!(" ({more} more not checked)")
    } else {
        String::new()
    };
    let proven = if report.verified {
        r.pass(
            NAME,
            format!(
                "a token proves the signature existed at {}{others}",
                token.gen_time()
            ),
        );
        Some(token.gen_time())
    } else {
        let why: Vec<String> = report
            .failures()
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        r.fail(
            NAME,
            format!(
                "the signature timestamp does not verify: {}{others}",
                why.join("; ")
            ),
        );
        None
    };
    r.timestamp = Some(token.info());
    r.signature_timestamp = Some(Box::new(report));
    proven
}
