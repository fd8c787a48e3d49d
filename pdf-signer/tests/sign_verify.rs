//! Signing and verifying in process: every level, document timestamps, and the first
//! tampering classes. Interop with pyHanko, pdfsig and qpdf lives in the workspace `tests`
//! crate.

use lopdf::{Document, Object, Stream, dictionary};
use pdf_signer::{Level, PdfVerifyOptions, SignOptions, Visible, sign, timestamp, verify_pdf};
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::signer::{RingSigner, RsaPadding};
use pki::timestamper::LocalTimestamper;
use pki::tsp::{RequestPolicy, TokenIssuer};
use std::sync::Arc;

struct Fixture {
    dev: DevPki,
    signer: RingSigner,
    cert: SignerCert,
    tsa: LocalTimestamper,
}

fn fixture() -> Fixture {
    let dev = DevPki::generate(DevKeyType::EcdsaP256).expect("dev pki");
    let (cert, key) = dev
        .issue_signer("Alice Example", "alice@example.com", DevKeyType::EcdsaP256)
        .expect("signer");
    let signer = RingSigner::from_pkcs8_der(&key, RsaPadding::Pkcs1).expect("key");
    let tsa_signer = RingSigner::from_pkcs8_der(&dev.tsa_key, RsaPadding::Pkcs1).expect("tsa key");
    let issuer = TokenIssuer::new(
        Arc::new(tsa_signer),
        SignerCert::from_der(dev.tsa_cert.clone()).expect("tsa cert"),
        vec![dev.root_cert.clone()],
        None,
        false,
    )
    .expect("issuer");
    let tsa = LocalTimestamper::new(issuer, RequestPolicy::new(pki::oid::DEV_POLICY));
    Fixture {
        cert: SignerCert::from_der(cert).expect("cert"),
        dev,
        signer,
        tsa,
    }
}

/// A one-page PDF written by lopdf (classic cross-reference table).
fn pdf() -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let content = b"BT /F1 24 Tf 72 720 Td (Statement: balance 1,000.00 EUR) Tj ET".to_vec();
    let content_id = doc.add_object(Stream::new(dictionary! {}, content));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        "Contents" => content_id,
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

fn options<'a>(f: &'a Fixture, level: Level) -> SignOptions<'a> {
    SignOptions {
        signer: &f.signer,
        cert: &f.cert,
        chain: std::slice::from_ref(&f.dev.root_cert),
        timestamper: Some(&f.tsa),
        level,
        reason: Some("Monthly statement".into()),
        location: Some("Zürich".into()),
        contact: None,
        name: None,
        field: None,
        visible: None,
        ocsp: Vec::new(),
        crl: Vec::new(),
        signing_time: None,
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
        let out = signed(&input, &options(&f, level));
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
    let mut o = options(&f, Level::BT);
    o.visible = Some("1,350,50,580,110".parse::<Visible>().expect("visible"));
    let once = signed(&pdf(), &o);
    o.visible = None;
    o.field = Some("Second".into());
    let twice = signed(&once, &o);
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
    let mut out = signed(&pdf(), &options(&f, Level::BT));
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
    let lt = signed(&pdf(), &options(&f, Level::BLT));
    let mut o = options(&f, Level::BT);
    o.field = Some("Later".into());
    let both = signed(&lt, &o);
    let r = verify(&f, &both);
    assert!(r.verified, "{}", explain(&r));
    let levels: Vec<Option<&str>> = r
        .signatures
        .iter()
        .map(|s| s.pdf.as_ref().and_then(|p| p.level.as_deref()))
        .collect();
    assert_eq!(levels, vec![Some("B-LT"), Some("B-T")], "{}", explain(&r));
}
