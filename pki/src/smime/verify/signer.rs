//! The checks of one SignerInfo of a message, after the shared SignerInfo verifier: the
//! signature timestamp, the certificate path at the proven (or given) time, the From binding,
//! the times side by side, weak algorithms.

use super::{EMAIL_KIND, LayerContext};
use crate::cades::{SignerChecks, verify_signer_info};
use crate::digest::HashAlg;
use crate::oid;
use crate::report::{Outcome, SignatureReport};
use crate::signer_info::SignerInfoView;
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
    let checks = SignerChecks {
        kind: EMAIL_KIND,
        trust: &o.trust,
        tsa_opts: ctx.tsa_opts,
        check_time: o.check_time,
        now: o.now,
        strict: o.strict,
        ekus: &[(oid::ID_KP_EMAIL_PROTECTION_BYTES, "emailProtection")],
        claimed_elsewhere: None,
        later_proof: None,
        require_signing_certificate: false,
    };
    let outcome = verify_signer_info(r, si, &digest, bag, carries_certificates, &checks);
    if let Some(t) = r.times.as_mut() {
        t.date_header = ctx.date.map(crate::gentime::unix_rfc3339);
    }
    let Some(signer) = outcome.signer else {
        return;
    };
    r.signer_addresses = certificate_addresses(&signer.cert);
    check_sender(r, ctx);
    check_time_gap(r, outcome.proven, outcome.claimed, ctx);
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
            if atv.oid == oid::PKCS9_EMAIL_ADDRESS
                && let Some(t) = crate::cert::attribute_text(&atv.value)
                && !out.iter().any(|o| o == &t)
            {
                out.push(t);
            }
        }
    }
    out
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
