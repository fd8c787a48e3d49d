//! Signing and verifying in process: every level, document timestamps, and the first
//! tampering classes. Interop with pyHanko, pdfsig and qpdf lives in the workspace `tests`
//! crate.

use pdf_signer::testing::{TestPki, one_page_pdf};
use pdf_signer::{
    Details, Level, PdfVerifyOptions, SignOptions, Visible, sign, timestamp, verify_pdf,
};

type Fixture = TestPki;

fn fixture() -> Fixture {
    TestPki::new("Alice Example", "alice@example.com").expect("test pki")
}

fn pdf() -> Vec<u8> {
    one_page_pdf("Statement: balance 1,000.00 EUR")
}

fn details(level: Level) -> Details {
    Details {
        level,
        reason: Some("Monthly statement".into()),
        location: Some("Zürich".into()),
        ..Details::default()
    }
}

fn verify(f: &Fixture, bytes: &[u8]) -> pki::report::Report {
    let o = PdfVerifyOptions {
        trust: vec![f.dev.root_cert.clone()],
        ..PdfVerifyOptions::default()
    };
    verify_pdf("test.pdf", bytes, &o)
}

fn signed(input: &[u8], o: &SignOptions<'_>) -> Vec<u8> {
    let s = sign(input, o).expect("sign");
    let mut out = input.to_vec();
    out.extend_from_slice(&s.appended);
    out
}

fn explain(r: &pki::report::Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

#[test]
fn every_level_signs_and_verifies_with_its_level() {
    let f = fixture();
    let input = pdf();
    for level in [Level::BB, Level::BT, Level::BLT, Level::BLTA] {
        let d = details(level);
        let out = signed(&input, &f.options(&d));
        assert!(out.starts_with(&input), "the original bytes stay untouched");
        let r = verify(&f, &out);
        assert!(r.verified, "{level:?}: {}", explain(&r));
        let sig = &r.signatures[0];
        let pdf = sig.pdf.as_ref().expect("pdf info");
        assert_eq!(pdf.level.as_deref(), Some(level.name()), "{}", explain(&r));
        assert_eq!(pdf.sub_filter, "ETSI.CAdES.detached");
        assert_eq!(pdf.location.as_deref(), Some("Zürich"));
        let expected_sigs = if level == Level::BLTA { 2 } else { 1 };
        assert_eq!(r.signatures.len(), expected_sigs, "{}", explain(&r));
    }
}

#[test]
fn a_visible_signature_and_a_second_signature_keep_the_first_valid() {
    let f = fixture();
    let mut d = details(Level::BT);
    d.visible = Some("1,350,50,580,110".parse::<Visible>().expect("visible"));
    let once = signed(&pdf(), &f.options(&d));
    d.visible = None;
    d.field = Some("Second".into());
    let twice = signed(&once, &f.options(&d));
    let r = verify(&f, &twice);
    assert!(r.verified, "{}", explain(&r));
    assert_eq!(r.signatures.len(), 2);
    let first = r.signatures[0].pdf.as_ref().expect("pdf");
    assert!(first.bytes_after > 0);
    assert!(
        first.allowed_changes.iter().any(|c| c.contains("Second")),
        "{first:?}"
    );
}

#[test]
fn a_document_timestamp_verifies() {
    let f = fixture();
    let s = timestamp(&pdf(), &f.tsa, None).expect("timestamp");
    let mut out = pdf();
    out.extend_from_slice(&s.appended);
    let r = verify(&f, &out);
    assert!(r.verified, "{}", explain(&r));
    assert_eq!(
        r.signatures[0].pdf.as_ref().map(|p| p.kind.as_str()),
        Some("document-timestamp")
    );
}

#[test]
fn a_changed_byte_inside_the_signed_range_fails_the_digest() {
    let f = fixture();
    let d = details(Level::BT);
    let mut out = signed(&pdf(), &f.options(&d));
    let at = memchr::memmem::find(&out, b"1,000.00").expect("text");
    out[at] = b'9';
    let r = verify(&f, &out);
    assert!(!r.verified);
    let failed: Vec<&str> = r.signatures[0]
        .failures()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert!(failed.contains(&"message-digest"), "{}", explain(&r));
}

/// Regression: a /DSS an earlier signature left must not make a later signature by the same
/// signer look B-LT (the level was taken from the final /DSS alone).
#[test]
fn an_earlier_dss_does_not_raise_a_later_signature_level() {
    let f = fixture();
    let lt = signed(&pdf(), &f.options(&details(Level::BLT)));
    let mut d = details(Level::BT);
    d.field = Some("Later".into());
    let both = signed(&lt, &f.options(&d));
    let r = verify(&f, &both);
    assert!(r.verified, "{}", explain(&r));
    let levels: Vec<Option<&str>> = r
        .signatures
        .iter()
        .map(|s| s.pdf.as_ref().and_then(|p| p.level.as_deref()))
        .collect();
    assert_eq!(levels, vec![Some("B-LT"), Some("B-T")], "{}", explain(&r));
}
