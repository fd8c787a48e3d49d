//! Human-readable rendering of reports and tokens. Every line passes through
//! [`crate::escape::escape`]: the values come from untrusted tokens.

use crate::escape::escape;
use pki::report::{Outcome, Report, SignatureReport, TimeBasis};
use pki::token::ParsedToken;

/// Writes one line of human output: the whole formatted line is escaped (our own templates hold
/// no control characters, so only untrusted values change), then the newline is added.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&escape(&format!($($arg)*)));
        $out.push('\n');
    }};
}

/// A report for a terminal: the verdict first, then the facts, then every check.
pub fn report(r: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let verdict = if r.verified {
        "VERIFIED"
    } else {
        "NOT VERIFIED"
    };
    put!(out, "{}: {verdict}", r.source);
    for e in &r.errors {
        put!(out, "  error      {e}");
    }
    let headed = r.signatures.len() > 1 || r.signatures.iter().any(|s| s.pdf.is_some());
    for s in &r.signatures {
        if headed {
            let v = if s.verified {
                "VERIFIED"
            } else {
                "NOT VERIFIED"
            };
            put!(out, "  {}: {v}", s.label);
        }
        signature(&mut out, s, verbose || !r.verified);
    }
    out
}

/// What a PDF signature covers and what came after it.
fn pdf(out: &mut String, p: &pki::report::PdfSignatureInfo) {
    put!(
        out,
        "  field      {} ({}, {}), revision {}",
        p.field,
        p.kind,
        p.sub_filter,
        p.revision
    );
    if let Some(l) = &p.level {
        put!(out, "  level      PAdES {l}");
    }
    if p.bytes_after == 0 {
        put!(out, "  covers     the whole document");
    } else {
        put!(
            out,
            "  covers     all but the {} bytes added after it",
            p.bytes_after
        );
    }
    for c in &p.allowed_changes {
        put!(out, "  allowed    {c}");
    }
    for c in &p.disallowed_changes {
        put!(out, "  NOT ALLOWED {c}");
    }
    for (what, v) in [
        ("name", &p.name),
        ("reason", &p.reason),
        ("location", &p.location),
        ("contact", &p.contact),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            put!(out, "  {what:<10} {v}");
        }
    }
}

fn signature(out: &mut String, s: &SignatureReport, all_checks: bool) {
    if !s.verified {
        let reasons: Vec<String> = s.failures().iter().map(|c| c.detail.clone()).collect();
        put!(out, "  reason     {}", reasons.join("; "));
    }
    if let Some(t) = &s.timestamp {
        let acc = t
            .accuracy
            .as_ref()
            .map(|a| format!(" (accuracy {a})"))
            .unwrap_or_default();
        put!(out, "  genTime    {}{acc}", t.gen_time);
        let dec = t
            .serial
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        put!(out, "  serial     0x{}{dec}", t.serial_hex);
        put!(out, "  policy     {}", t.policy);
        put!(out, "  imprint    {} {}", t.hash_algorithm, t.imprint);
        if let Some(n) = &t.nonce {
            put!(out, "  nonce      0x{n}");
        }
        if let Some(name) = &t.tsa_name {
            put!(out, "  TSA name   {name}");
        }
    }
    if let Some(a) = &s.signature_algorithm {
        put!(out, "  signature  {a}");
    }
    if let Some(signer) = &s.signer {
        put!(out, "  signer     {}", signer.subject);
        put!(
            out,
            "             serial 0x{}, valid {} to {}",
            signer.serial,
            signer.not_before,
            signer.not_after
        );
    }
    if !s.signer_addresses.is_empty() {
        put!(out, "  addresses  {}", s.signer_addresses.join(", "));
    }
    if let Some(p) = &s.pdf {
        pdf(out, p);
    }
    if let Some(t) = &s.times {
        if let Some(p) = &t.proven {
            put!(out, "  proven     {p} (timestamp)");
        }
        if let Some(c) = &t.claimed {
            put!(out, "  claimed    {c} (the signer's claim, unproven)");
        }
        if let Some(d) = &t.date_header {
            put!(out, "  Date       {d} (header, unsigned)");
        }
        let basis = match t.checked_at_basis {
            TimeBasis::Proven => "the proven time",
            TimeBasis::Now => "the current time: no proven time",
            TimeBasis::Given => "given with --at: not proven",
            TimeBasis::Claimed => "the signer's claimed time: not proven",
            _ => "",
        };
        put!(out, "  checked at {} ({basis})", t.checked_at);
    }
    for (i, c) in s.chain.iter().enumerate() {
        let label = if i == 0 {
            "  chain     "
        } else {
            "            "
        };
        let role = if i + 1 == s.chain.len() {
            " (trust anchor)"
        } else {
            ""
        };
        put!(out, "{label} {}{role}", c.subject);
    }
    if all_checks {
        put!(out, "  checks");
        for c in &s.checks {
            let mark = match c.outcome {
                Outcome::Passed => "ok  ",
                Outcome::Failed => "FAIL",
                Outcome::Warning => "warn",
                Outcome::NotChecked => "skip",
            };
            put!(out, "    [{mark}] {:<20} {}", c.name, c.detail);
        }
    } else {
        let warnings: Vec<&str> = s
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warning)
            .map(|c| c.detail.as_str())
            .collect();
        for w in warnings {
            put!(out, "  warning    {w}");
        }
        put!(out, "  checks     {} passed", s.checks.len());
    }
    // The token a signature carries, as the token verifier reported it, indented one level.
    if let Some(nested) = &s.signature_timestamp {
        let verdict = if nested.verified {
            "VERIFIED"
        } else {
            "NOT VERIFIED"
        };
        put!(out, "  {}: {verdict}", nested.label);
        let mut inner = String::new();
        signature(&mut inner, nested, all_checks || !nested.verified);
        for line in inner.lines() {
            // Already escaped line by line.
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A token's contents, field by field (`stamp inspect`).
pub fn token(t: &ParsedToken) -> String {
    let mut out = String::new();
    let info = t.info();
    put!(
        out,
        "TimeStampToken (SignedData, eContentType id-ct-TSTInfo)"
    );
    put!(out, "  TSTInfo");
    put!(out, "    version        1");
    put!(out, "    policy         {}", info.policy);
    put!(
        out,
        "    messageImprint {} {}",
        info.hash_algorithm,
        info.imprint
    );
    let dec = info
        .serial
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    put!(out, "    serialNumber   0x{}{dec}", info.serial_hex);
    put!(out, "    genTime        {}", info.gen_time);
    put!(
        out,
        "    accuracy       {}",
        info.accuracy.as_deref().unwrap_or("(absent)")
    );
    put!(out, "    ordering       {}", info.ordering);
    put!(
        out,
        "    nonce          {}",
        info.nonce
            .map(|n| format!("0x{n}"))
            .unwrap_or_else(|| "(absent)".into())
    );
    put!(
        out,
        "    tsa            {}",
        info.tsa_name.as_deref().unwrap_or("(absent)")
    );
    let extensions = t.extension_names();
    if extensions.is_empty() {
        put!(out, "    extensions     (none)");
    }
    for e in extensions {
        put!(out, "    extension      {e}");
    }
    let si = &t.signer_info;
    put!(out, "  SignerInfo");
    put!(out, "    version        {}", si.version);
    put!(out, "    sid            {}", si.sid);
    put!(
        out,
        "    digest         {}",
        pki::oid::display_name(&si.digest_algorithm.oid)
    );
    put!(
        out,
        "    signature alg  {}",
        pki::oid::display_name(&si.signature_algorithm.oid)
    );
    put!(out, "    signature      {} bytes", si.signature.len());
    for oid in &si.signed_attr_oids {
        put!(out, "    signed attr    {}", pki::oid::display_name(oid));
    }
    for oid in &si.unsigned_attr_oids {
        let name = oid
            .as_ref()
            .map_or_else(|| "(malformed)".into(), pki::oid::display_name);
        put!(out, "    unsigned attr  {name}");
    }
    let unlisted = si.unsigned_attr_count - si.unsigned_attr_oids.len();
    if unlisted > 0 {
        put!(
            out,
            "    unsigned attr  ... and {unlisted} more (not listed)"
        );
    }
    put!(out, "  Certificates     {}", t.certificates.len());
    for c in &t.certificates {
        match pki::cert::summary(c) {
            Ok(s) => {
                put!(out, "    - subject      {}", s.subject);
                put!(out, "      issuer       {}", s.issuer);
                put!(out, "      serial       0x{}", s.serial);
                put!(
                    out,
                    "      validity     {} to {}",
                    s.not_before,
                    s.not_after
                );
                put!(out, "      sha256       {}", s.sha256);
            }
            Err(e) => {
                put!(out, "    - unreadable certificate: {e}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::report::Kind;

    /// Why: a signature's timestamp is shown under it, with its own verdict and checks, and
    /// its text escaped like everything else.
    #[test]
    fn a_signature_timestamp_renders_nested_under_its_signature() {
        let mut token = SignatureReport::new("signature timestamp");
        token.pass("imprint", "the sha256 imprint matches the data\u{1b}[2K");
        token.finish();
        let mut signer = SignatureReport::new("signer 1");
        signer.pass(
            "signature",
            "ecdsa-p256-sha256 signature over the signed attributes verifies",
        );
        signer.pass(
            "signature-timestamp",
            "a token proves the signature existed at 2026-12-01T00:00:00Z",
        );
        signer.signature_timestamp = Some(Box::new(token));
        signer.finish();
        let text = report(&Report::new(Kind::Email, "mail.eml", vec![signer]), true);
        assert!(text.starts_with("mail.eml: VERIFIED\n"), "{text}");
        assert!(
            text.contains("\n  signature timestamp: VERIFIED\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("        [ok  ] imprint") && l.contains("\\x1b[2K")),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
