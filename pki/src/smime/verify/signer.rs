//! The checks of one SignerInfo of a message, after the shared SignerInfo verifier: the
//! signature timestamp, the certificate path at the proven (or given) time, the From binding,
//! the times side by side, weak algorithms.

use super::{CheckTime, EMAIL_KIND, LayerContext};
use crate::digest::HashAlg;
use crate::oid;
use crate::report::{Outcome, SignatureReport, SigningTimes, TimeBasis};
use crate::signer_check::{SignerInput, check_hash_algorithms, check_signer};
use crate::signer_info::{SignerInfoView, attributes};
use crate::verify::check_path;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

pub(super) fn verify_signer(
    r: &mut SignatureReport,
    si: &SignerInfoView,
    content: &[u8],
    bag: &[&[u8]],
    carries_certificates: bool,
    ctx: &LayerContext<'_>,
) {
    let o = ctx.opts;
    let digest = |h: HashAlg| Some(h.digest(content));
    let input = SignerInput {
        signer_info: si,
        kind: EMAIL_KIND,
        content_digest: &digest,
        certificates: bag,
        carries_certificates,
        require_signing_certificate: false,
    };
    let found = check_signer(&input, r);
    let proven = crate::token::check_signature_timestamp(r, si, ctx.tsa_opts);
    let claimed = signing_time(si);
    let now = o.now.unwrap_or_else(crate::gentime::unix_now);
    let (at, basis) = match o.check_time {
        CheckTime::At(t) => (Some(t), TimeBasis::Given),
        CheckTime::Claimed => (claimed, TimeBasis::Claimed),
        CheckTime::Proven => match proven {
            Some(p) => (Some(p.unix_seconds()), TimeBasis::Proven),
            None => (Some(now), TimeBasis::Now),
        },
    };
    let fmt = crate::gentime::unix_rfc3339;
    r.times = Some(SigningTimes {
        proven: proven.map(|p| p.to_string()),
        claimed: claimed.map(fmt),
        date_header: ctx.date.map(fmt),
        checked_at: at.map(fmt).unwrap_or_default(),
        checked_at_basis: basis,
    });
    check_algorithms(r, si, o.strict);
    let Some(signer) = found else {
        return;
    };
    r.signer_addresses = certificate_addresses(&signer.cert);

    // The path, with emailProtection where the certificate carries an EKU.
    let when = match basis {
        TimeBasis::Proven => "at the time the signature timestamp proves",
        TimeBasis::Now => "now (no proven time: the path is checked at the current time)",
        TimeBasis::Given => "at the time given with --at (not proven)",
        TimeBasis::Claimed => "at the signer's claimed signingTime (not proven)",
    };
    match at {
        None => r.fail(
            "certificate-path",
            "--at claimed, but the signature has no signingTime attribute",
        ),
        Some(t) => check_path(
            r,
            signer.der,
            bag,
            &o.trust,
            t,
            oid::ID_KP_EMAIL_PROTECTION_BYTES,
            when,
        ),
    }

    check_sender(r, ctx);
    check_time_gap(r, proven.map(|p| p.unix_seconds()), claimed, ctx);
}

/// The sender check: the From address(es) against the certificate's addresses.
fn check_sender(r: &mut SignatureReport, ctx: &LayerContext<'_>) {
    let bound = |a: &str| r.signer_addresses.iter().any(|c| same_address(a, c));
    let names = if r.signer_addresses.is_empty() {
        "no email address".to_owned()
    } else {
        r.signer_addresses.join(", ")
    };
    if ctx.from.is_empty() {
        if ctx.outermost {
            r.fail(
                "sender",
                "the message has no From address to bind to the signer",
            );
        }
        return;
    }
    let unbound: Vec<&String> = ctx.from.iter().filter(|a| !bound(a)).collect();
    let from = ctx.from.join(", ");
    // A display name that shows another address ("boss@bank.example" <eve@evil.example>):
    // what the reader sees is not what the certificate binds.
    if ctx.outermost
        && unbound.is_empty()
        && let Some(shown) = ctx.from_display_addresses.iter().find(|d| !bound(d))
    {
        r.fail(
            "sender",
            format!(
                "possible impersonation: the From display name shows {shown}, but the address \
                 signed for is {from}"
            ),
        );
        return;
    }
    match (unbound.is_empty(), ctx.outermost) {
        (true, _) => r.pass(
            "sender",
            format!("From {from} is bound by the signer's certificate"),
        ),
        (false, true) => r.fail(
            "sender",
            format!(
                "possible impersonation: From says {from}, but the signer's certificate names \
                 {names}"
            ),
        ),
        (false, false) => r.check(
            "sender",
            Outcome::Warning,
            format!(
                "this inner signer's certificate names {names}, not the From address {from} \
                 (the outer signer vouches for the content)"
            ),
        ),
    }
}

/// The address-like words of a display name (`Alice (alice@bank.example)` gives
/// `alice@bank.example`): something with text on both sides of an `@`.
pub fn addresses_in_display_name(name: &str) -> Vec<String> {
    name.split(|c: char| c.is_whitespace() || "<>()[]\"',;:".contains(c))
        .filter(|w| {
            w.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        })
        .map(str::to_owned)
        .collect()
}

/// RFC 5280 §4.2.1.6 / §7.5: the local part compared exactly, the domain without regard to
/// ASCII case.
pub fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

/// The addresses a certificate binds: rfc822Name subjectAltNames, then emailAddress
/// attributes of the subject.
pub fn certificate_addresses(cert: &Certificate) -> Vec<String> {
    let mut out: Vec<String> = crate::cert::extension(cert, &oid::ID_CE_SUBJECT_ALT_NAME)
        .filter(|(_, v)| crate::limits::check_sets(v, "subjectAltName").is_ok())
        .and_then(|(_, v)| <SubjectAltName as der::Decode>::from_der(v).ok())
        .map(|s| {
            s.0.into_iter()
                .filter_map(|g| match g {
                    GeneralName::Rfc822Name(e) => Some(e.as_str().to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for rdn in &cert.tbs_certificate.subject.0 {
        for atv in rdn.0.iter() {
            if atv.oid == oid::PKCS9_EMAIL_ADDRESS {
                let text = atv
                    .value
                    .decode_as::<der::asn1::Ia5StringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
                    .or_else(|_| {
                        atv.value
                            .decode_as::<der::asn1::Utf8StringRef<'_>>()
                            .map(|s| s.as_str().to_owned())
                    });
                if let Ok(t) = text
                    && !out.iter().any(|o| o == &t)
                {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// The signingTime signed attribute, Unix seconds.
fn signing_time(si: &SignerInfoView) -> Option<i64> {
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

/// Flags a gap between the proven time, the claimed signingTime and the Date header.
fn check_time_gap(
    r: &mut SignatureReport,
    proven: Option<i64>,
    claimed: Option<i64>,
    ctx: &LayerContext<'_>,
) {
    let max = ctx.opts.max_time_gap;
    let reference = proven.or(claimed);
    let Some(reference) = reference else {
        return;
    };
    let what = if proven.is_some() {
        "the proven time"
    } else {
        "the claimed signingTime"
    };
    let gap = |name: &str, t: i64| {
        let d = t - reference;
        let side = if d < 0 { "before" } else { "after" };
        format!("{name} is {} s {side} {what}", d.abs())
    };
    let mut gaps = Vec::new();
    if proven.is_some()
        && let Some(c) = claimed
        && (c - reference).abs() > max
    {
        gaps.push(gap("the claimed signingTime", c));
    }
    if ctx.outermost
        && let Some(d) = ctx.date
        && (d - reference).abs() > max
    {
        gaps.push(gap("the Date header", d));
    }
    if gaps.is_empty() {
        r.pass(
            "time-gap",
            format!("the times agree with {what} within {max} s"),
        );
    } else {
        r.check(
            "time-gap",
            Outcome::Warning,
            format!("{} (more than {max} s)", gaps.join("; ")),
        );
    }
}

/// SHA-1 in the digest or signature algorithm is weak (a failure with `strict`), MD5 broken.
fn check_algorithms(r: &mut SignatureReport, si: &SignerInfoView, strict: bool) {
    let uses = [
        (si.digest_algorithm.oid, "the digest algorithm"),
        (si.signature_algorithm.oid, "the signature algorithm"),
    ];
    if check_hash_algorithms(r, &uses, strict) {
        r.pass("hash-algorithm", "no weak algorithm");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_searched_for_addresses() {
        assert_eq!(
            addresses_in_display_name("\"CEO <ceo@bank.example>\" (via x@y)"),
            vec!["ceo@bank.example".to_owned(), "x@y".to_owned()]
        );
        assert!(addresses_in_display_name("Alice @ Bank").is_empty());
    }

    #[test]
    fn addresses_compare_the_domain_without_case_only() {
        assert!(same_address("alice@Example.COM", "alice@example.com"));
        assert!(!same_address("Alice@example.com", "alice@example.com"));
        assert!(!same_address("alice@example.com", "alice@example.com.evil"));
        assert!(!same_address("alice", "alice"));
    }
}
