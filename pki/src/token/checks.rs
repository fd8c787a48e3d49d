//! The checks of a parsed token, in the order the report lists them: the ones every CMS
//! signature shares come from [`crate::signer_check`], the token's own follow.

use super::{
    GEN_TIME_TOLERANCE_SECS, MAX_ACCURACY_CREDIT_SECS, ParsedToken, VerifyOptions,
    general_name_string,
};
use crate::digest::HashAlg;
use crate::oid::{self, HashStrength};
use crate::report::{Outcome, SignatureReport};
use crate::signer_check::{
    SignedKind, SignerFound, SignerInput, check_hash_algorithms, check_signer,
};
use crate::verify::check_path;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// How the shared SignerInfo verifier names a token's parts.
const TOKEN_KIND: SignedKind = SignedKind {
    content_type: oid::ID_CT_TST_INFO,
    content_type_name: "id-ct-TSTInfo",
    content: "the TSTInfo",
    whole: "the token",
    holder: "the token",
    signer: "the TSA certificate",
};

/// Verifies `token`. `data_digest` is the hash of the stamped data with the token's imprint
/// algorithm (see [`ParsedToken::hash_alg`]); `None` leaves the imprint unchecked, which makes
/// the report unverified.
pub fn verify(
    token: &ParsedToken,
    data_digest: Option<&[u8]>,
    opts: &VerifyOptions,
) -> SignatureReport {
    let mut r = SignatureReport::new("timestamp token");
    r.timestamp = Some(token.info());
    // The checks every CMS signature shares: contentType, messageDigest over the TSTInfo
    // octets as received, the signer's certificate by sid and ESSCertID, signingCertificate(V2)
    // (required: RFC 3161 §2.4.1), the signature over the signed attributes as received.
    let bag: Vec<&[u8]> = token
        .certificates
        .iter()
        .chain(opts.extra_certs.iter())
        .map(Vec::as_slice)
        .collect();
    let tst_digest = |h: HashAlg| Some(h.digest(&token.tst_der));
    let input = SignerInput {
        signer_info: &token.signer_info,
        kind: TOKEN_KIND,
        content_digest: &tst_digest,
        certificates: &bag,
        carries_certificates: !token.certificates.is_empty(),
        require_signing_certificate: true,
    };
    let Some(SignerFound {
        der: signer_der,
        cert: signer_cert,
    }) = check_signer(&input, &mut r)
    else {
        r.finish();
        return r;
    };

    // RFC 3161 §2.3: critical timeStamping EKU, and the other TSA certificate rules.
    let problems = crate::cert::tsa_certificate_problems(&signer_cert);
    if problems.is_empty() {
        r.pass(
            "tsa-certificate",
            "extendedKeyUsage is timeStamping only, critical; not a CA",
        );
    } else {
        r.fail(
            "tsa-certificate",
            format!("not a valid TSA certificate: {}", problems.join("; ")),
        );
    }
    check_tsa_name(&mut r, token, &signer_cert);

    // The path to a trust anchor at genTime.
    let gen_time = token.gen_time();
    let (at, when) = match opts.at {
        Some(t) => (
            t,
            format!(
                "at {} given with --at (not proven)",
                crate::gentime::unix_rfc3339(t)
            ),
        ),
        None => (gen_time.unix_seconds(), format!("at genTime {gen_time}")),
    };
    check_path(
        &mut r,
        signer_der,
        &bag,
        &opts.trust,
        at,
        &[(oid::ID_KP_TIME_STAMPING_BYTES, "timeStamping")],
        &when,
    );
    check_gen_time(&mut r, token, opts);

    // The imprint against the data.
    let imprint_oid = token.tst_info.message_imprint.hash_algorithm.oid;
    match (token.hash_alg(), data_digest) {
        (None, _) if oid::hash_strength(&imprint_oid) == HashStrength::Broken => r.fail(
            "imprint",
            "the imprint is an MD5 hash: broken, never accepted",
        ),
        (None, _) => r.fail(
            "imprint",
            format!("unknown imprint hash algorithm {imprint_oid}"),
        ),
        (Some(_), None) => r.check(
            "imprint",
            Outcome::NotChecked,
            "no data given to compare the imprint with",
        ),
        (Some(h), Some(d)) if d == token.imprint() => {
            r.pass("imprint", format!("the {h} imprint matches the data"))
        }
        (Some(h), Some(_)) => r.fail(
            "imprint",
            format!("the {h} imprint does not match the data: it was changed or is another file"),
        ),
    }
    check_algorithms(&mut r, token, opts.strict);
    if token.structure_warnings.is_empty() {
        r.pass("structure", "SignedData and SignerInfo follow RFC 5652 §5");
    } else if opts.strict {
        r.fail(
            "structure",
            format!("{} (--strict)", token.structure_warnings.join("; ")),
        );
    } else {
        r.check(
            "structure",
            Outcome::Warning,
            token.structure_warnings.join("; "),
        );
    }

    if let Some(expected) = &opts.expected_nonce {
        match &token.tst_info.nonce {
            Some(n) if strip_zeros(n.as_bytes()) == strip_zeros(expected) => {
                r.pass("nonce", "nonce matches the request")
            }
            Some(_) => r.fail(
                "nonce",
                "nonce differs from the request: a replayed or foreign reply",
            ),
            None => r.fail(
                "nonce",
                "the request carried a nonce but the token has none",
            ),
        }
    }
    r.finish();
    r
}

/// RFC 3161 §2.4.2: a `tsa` name, when present, must be one of the signing certificate's
/// names (its subject or a subjectAltName entry); a mismatch is a warning naming both.
fn check_tsa_name(r: &mut SignatureReport, token: &ParsedToken, cert: &Certificate) {
    let Some(tsa) = &token.tst_info.tsa else {
        return;
    };
    let subject = &cert.tbs_certificate.subject;
    if matches!(tsa, GeneralName::DirectoryName(n) if n == subject) {
        r.pass(
            "tsa-name",
            "the TSTInfo tsa name is the certificate's subject",
        );
        return;
    }
    let sans: Vec<GeneralName> = crate::cert::extension(cert, &oid::ID_CE_SUBJECT_ALT_NAME)
        .filter(|(_, v)| crate::limits::check_sets(v, "subjectAltName").is_ok())
        .and_then(|(_, v)| <SubjectAltName as der::Decode>::from_der(v).ok())
        .map(|s| s.0)
        .unwrap_or_default();
    if sans.iter().any(|g| g == tsa) {
        r.pass(
            "tsa-name",
            "the TSTInfo tsa name is in the certificate's subjectAltName",
        );
        return;
    }
    let mut names = vec![format!("subject {subject}")];
    names.extend(sans.iter().map(general_name_string));
    r.check(
        "tsa-name",
        Outcome::Warning,
        format!(
            "the TSTInfo names the TSA {}, but the signing certificate is {}",
            general_name_string(tsa),
            names.join(", ")
        ),
    );
}

/// genTime must not lie in the future of the verifier's clock beyond the tolerance and the
/// token's own accuracy.
fn check_gen_time(r: &mut SignatureReport, token: &ParsedToken, opts: &VerifyOptions) {
    let now = opts.now.unwrap_or_else(crate::gentime::unix_now);
    let accuracy = token.tst_info.accuracy.as_ref().map_or(0, |a| {
        let sub = i64::from(a.millis.unwrap_or(0).max(0)) * 1000
            + i64::from(a.micros.unwrap_or(0).max(0));
        let secs = a
            .seconds
            .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX));
        secs.saturating_add((sub + 999_999) / 1_000_000)
    });
    // The token's own accuracy widens the tolerance, but only so far: a token claiming an
    // accuracy of 10^12 s would otherwise switch this check off.
    let credit = accuracy.min(MAX_ACCURACY_CREDIT_SECS);
    let limit = now
        .saturating_add(GEN_TIME_TOLERANCE_SECS)
        .saturating_add(credit);
    let generated = token.gen_time().unix_seconds();
    if generated > limit {
        r.fail(
            "gen-time",
            format!(
                "genTime {} is {} s ahead of this verifier's clock (tolerance {} s plus the \
                 token's accuracy, counted up to {} s)",
                token.gen_time(),
                generated.saturating_sub(now),
                GEN_TIME_TOLERANCE_SECS,
                MAX_ACCURACY_CREDIT_SECS
            ),
        );
    } else {
        r.pass("gen-time", "genTime is not in the future");
    }
}

/// Weak and broken algorithms anywhere in the token: SHA-1 is a warning with the word "weak"
/// (a failure with `strict`), MD5 always fails.
fn check_algorithms(r: &mut SignatureReport, token: &ParsedToken, strict: bool) {
    let si = &token.signer_info;
    let uses = [
        (
            token.tst_info.message_imprint.hash_algorithm.oid,
            "the imprint",
        ),
        (si.digest_algorithm.oid, "the SignerInfo digestAlgorithm"),
        (si.signature_algorithm.oid, "the signature algorithm"),
    ];
    if check_hash_algorithms(r, &uses, strict) {
        match token.hash_alg() {
            Some(h) => r.pass("hash-algorithm", format!("{h} imprint, no weak algorithm")),
            None => r.pass("hash-algorithm", "no weak algorithm"),
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}
