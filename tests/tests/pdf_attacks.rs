//! Attacks on our own signed PDFs, each made the way the published attacks make them, and each
//! answered with "not verified" and the reason, never a crash: Universal Signature Forgery
//! (a signature dictionary whose /Contents or /ByteRange is missing, empty, null or
//! malformed), Incremental Saving Attacks (a later revision rewrites the page or draws over
//! it), Signature Wrapping (a /ByteRange that leaves more than the signature out), a signature
//! copied into another document, a truncated file, and a TSA that answers with a token over
//! other data. The shadow attacks and copied timestamps of other producers are in
//! `pdf_corpus.rs`.

use lopdf::{Dictionary, Object, ObjectId, Stream, StringFormat, dictionary};
use pdf_signer::document::{self, Purpose};
use pdf_signer::testing::{TestPki, one_page_pdf};
use pdf_signer::update::{TrailerBase, UpdateWriter};
use pdf_signer::{Details, Level, PdfVerifyOptions, SignOptions, sign, verify_pdf};
use pki::report::Report;
use pki::timestamper::{LocalTimestamper, TimestampError, Timestamper};
use pki::token::ParsedToken;

type Pki = TestPki;

fn pki() -> Pki {
    TestPki::new("Bank Statements", "statements@bank.example").expect("test pki")
}

/// A one-page statement written by lopdf.
fn statement(amount: &str) -> Vec<u8> {
    one_page_pdf(&format!("Balance due: {amount} EUR"))
}

fn signed(p: &Pki, input: &[u8]) -> Vec<u8> {
    let s = sign(input, &p.options(&Details::default())).expect("sign");
    [input, &s.appended].concat()
}

fn verify(p: &Pki, bytes: &[u8]) -> Report {
    let o = PdfVerifyOptions {
        trust: vec![p.dev.root_cert.clone()],
        ..PdfVerifyOptions::default()
    };
    verify_pdf("attack.pdf", bytes, &o)
}

fn explain(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// Asserts that the report is not verified and that some failed check (or the report's
/// errors) says `words`.
fn refused(r: &Report, words: &str) {
    assert!(!r.verified, "verified although attacked: {}", explain(r));
    let said = r.errors.iter().any(|e| e.contains(words))
        || r.signatures
            .iter()
            .flat_map(|s| s.failures())
            .any(|c| c.detail.contains(words));
    assert!(said, "no failure says {words:?}: {}", explain(r));
}

/// Appends an incremental update holding `objects` (the attacker's own revision).
fn append(bytes: &[u8], objects: &[(ObjectId, Object)]) -> Vec<u8> {
    let loaded = document::load(bytes, Purpose::Verify).expect("load");
    let mut w = UpdateWriter::new(bytes.len(), bytes.last().copied());
    for (id, o) in objects {
        w.object(*id, o);
    }
    let size = objects
        .iter()
        .map(|(id, _)| id.0 + 1)
        .max()
        .unwrap_or(0)
        .max(loaded.size);
    let (update, _) = w.finish(
        size,
        &TrailerBase {
            prev: loaded.startxref,
            root: loaded.root,
            info: None,
            id_first: None,
            xref_stream: loaded.xref_stream,
        },
    );
    [bytes, &update].concat()
}

/// The page, its content stream and the next free object number of `bytes`.
fn page_of(bytes: &[u8]) -> (ObjectId, Dictionary, ObjectId, u32) {
    let loaded = document::load(bytes, Purpose::Verify).expect("load");
    let page = document::pages(&loaded.doc)[0];
    let dict = loaded.doc.get_dictionary(page).expect("page").clone();
    let content = dict
        .get(b"Contents")
        .and_then(Object::as_reference)
        .expect("contents");
    (page, dict, content, loaded.size)
}

/// ISA: a later revision redefines the signed page's content stream.
#[test]
fn an_update_that_rewrites_the_page_content_is_refused() {
    let p = pki();
    let good = signed(&p, &statement("1,000.00"));
    let (_, _, content, _) = page_of(&good);
    let evil = Stream::new(
        dictionary! {},
        b"BT /F1 18 Tf 72 720 Td (Balance due: 0.00 EUR) Tj ET".to_vec(),
    );
    let r = verify(&p, &append(&good, &[(content, Object::Stream(evil))]));
    refused(&r, "content of page 1 changed");
}

/// ISA with an overlay: a FreeText annotation drawn over the amount, added after signing.
#[test]
fn an_overlay_annotation_added_after_signing_is_refused() {
    let p = pki();
    let good = signed(&p, &statement("1,000.00"));
    let (page_id, mut page, _, next) = page_of(&good);
    let annot = (next, 0);
    let mut annots = match page.get(b"Annots") {
        Ok(Object::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    annots.push(Object::Reference(annot));
    page.set("Annots", Object::Array(annots));
    let overlay = dictionary! {
        "Type" => "Annot", "Subtype" => "FreeText",
        "Rect" => vec![70.into(), 710.into(), 400.into(), 740.into()],
        "Contents" => Object::String(b"Balance due: 0.00 EUR".to_vec(), StringFormat::Literal),
        "DA" => Object::String(b"/Helv 18 Tf 0 g".to_vec(), StringFormat::Literal),
    };
    let r = verify(
        &p,
        &append(
            &good,
            &[
                (page_id, Object::Dictionary(page)),
                (annot, Object::Dictionary(overlay)),
            ],
        ),
    );
    refused(&r, "/FreeText annotation added on page 1");
}

/// A changed byte inside the signed ranges.
#[test]
fn a_changed_byte_is_refused() {
    let p = pki();
    let mut bytes = signed(&p, &statement("1,000.00"));
    let at = memchr_find(&bytes, b"1,000.00");
    bytes[at] = b'7';
    refused(&verify(&p, &bytes), "altered");
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle")
}

/// Where the signature dictionary's /ByteRange array sits, and its text.
fn byte_range_at(bytes: &[u8]) -> (usize, usize) {
    let start = memchr_find(bytes, b"/ByteRange [") + "/ByteRange ".len();
    let end = start + bytes[start..].iter().position(|&b| b == b']').expect("]") + 1;
    (start, end)
}

/// Signature Wrapping: a /ByteRange rewritten (same width) so that the second range starts
/// before the hole ends or stops short of the end.
#[test]
fn a_byte_range_that_leaves_more_than_the_signature_out_is_refused() {
    let p = pki();
    let good = signed(&p, &statement("1,000.00"));
    let (start, end) = byte_range_at(&good);
    let text = String::from_utf8_lossy(&good[start + 1..end - 1]).into_owned();
    let n: Vec<usize> = text
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    for (forged, words) in [
        // The hole grows by 40 bytes into the dictionary after /Contents.
        (
            format!("[0 {} {} {}]", n[1], n[2] + 40, n[3] - 40),
            "outside the signed ranges",
        ),
        // The last 30 bytes (trailer, %%EOF) are left unsigned.
        (
            format!("[0 {} {} {}]", n[1], n[2], n[3] - 30),
            "not the end of a revision",
        ),
        // A range that starts after the file's first byte.
        (
            format!("[5 {} {} {}]", n[1], n[2], n[3]),
            "not at the file's start",
        ),
        // Beyond the file.
        (
            format!("[0 {} {} {}]", n[1], n[2], n[3] + 100),
            "beyond the file",
        ),
    ] {
        let mut bytes = good.clone();
        let width = end - start;
        let mut slot = forged.clone().into_bytes();
        slot.resize(width, b' ');
        bytes[start..end].copy_from_slice(&slot);
        refused(&verify(&p, &bytes), words);
    }
}

/// A signature (the whole /Contents) copied from one statement into another of the same
/// layout: the digest over the other document's bytes does not match.
#[test]
fn a_signature_copied_into_another_document_is_refused() {
    let p = pki();
    let a = signed(&p, &statement("1,000.00"));
    let b = signed(&p, &statement("9,999.00"));
    let hole = |bytes: &[u8]| {
        let s = memchr_find(bytes, b"/Contents <") + "/Contents ".len();
        let e = s + bytes[s..].iter().position(|&c| c == b'>').expect(">") + 1;
        (s, e)
    };
    let (sa, ea) = hole(&a);
    let (sb, eb) = hole(&b);
    assert_eq!(ea - sa, eb - sb, "same layout");
    let mut forged = b.clone();
    forged[sb..eb].copy_from_slice(&a[sa..ea]);
    refused(&verify(&p, &forged), "altered");
}

/// A truncated file: the last revision's end is missing.
#[test]
fn a_truncated_file_is_refused_with_a_reason() {
    let p = pki();
    let good = signed(&p, &statement("1,000.00"));
    for cut in [40, good.len() / 3, good.len() - 200] {
        let r = verify(&p, &good[..good.len() - cut]);
        assert!(!r.verified, "cut {cut}: {}", explain(&r));
        assert!(
            !r.errors.is_empty() || r.signatures.iter().any(|s| !s.failures().is_empty()),
            "cut {cut}: no reason given: {}",
            explain(&r)
        );
    }
}

/// Universal Signature Forgery: a signature field added in a later revision whose signature
/// dictionary has no usable /Contents or /ByteRange. A lax validator skips such a signature
/// and reports the document signed; each must fail with its reason.
#[test]
fn signature_dictionaries_without_a_usable_signature_are_refused() {
    let p = pki();
    let unsigned = statement("1,000.00");
    let (page_id, page, _, next) = page_of(&unsigned);
    let hex = |s: &str| Object::String(s.as_bytes().to_vec(), StringFormat::Hexadecimal);
    let cases: Vec<(Vec<(&str, Object)>, &str)> = vec![
        (
            vec![(
                "ByteRange",
                vec![0.into(), 10.into(), 20.into(), 30.into()].into(),
            )],
            "no /Contents",
        ),
        (
            vec![
                ("Contents", hex("")),
                (
                    "ByteRange",
                    vec![0.into(), 10.into(), 20.into(), 30.into()].into(),
                ),
            ],
            "empty",
        ),
        (
            vec![
                ("Contents", Object::Null),
                (
                    "ByteRange",
                    vec![0.into(), 10.into(), 20.into(), 30.into()].into(),
                ),
            ],
            "not a string",
        ),
        (vec![("Contents", hex("3082"))], "no /ByteRange"),
        (
            vec![("Contents", hex("3082")), ("ByteRange", Object::Null)],
            "not an array",
        ),
        (
            vec![
                ("Contents", hex("3082")),
                (
                    "ByteRange",
                    vec![0.into(), 0.into(), 0.into(), 0.into()].into(),
                ),
            ],
            "no hole",
        ),
        (
            vec![
                ("Contents", hex("3082")),
                ("ByteRange", vec![0.into(), 10.into()].into()),
            ],
            "four numbers",
        ),
        (
            vec![
                ("Contents", hex("3082")),
                (
                    "ByteRange",
                    vec![0.into(), (-1).into(), 20.into(), 30.into()].into(),
                ),
            ],
            "non-negative",
        ),
    ];
    for (entries, words) in cases {
        let (field, sig, catalog_id) = (
            (next, 0),
            (next + 1, 0),
            document::load(&unsigned, Purpose::Verify)
                .expect("load")
                .root,
        );
        let mut sig_dict = dictionary! {
            "Type" => "Sig", "Filter" => "Adobe.PPKLite", "SubFilter" => "ETSI.CAdES.detached",
        };
        for (k, v) in entries {
            sig_dict.set(k, v);
        }
        let widget = dictionary! {
            "Type" => "Annot", "Subtype" => "Widget", "FT" => "Sig",
            "T" => Object::String(b"Forged".to_vec(), StringFormat::Literal),
            "V" => sig, "P" => page_id, "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
        };
        let mut page = page.clone();
        page.set("Annots", vec![Object::Reference(field)]);
        let loaded = document::load(&unsigned, Purpose::Verify).expect("load");
        let mut catalog = loaded
            .doc
            .get_dictionary(catalog_id)
            .expect("catalog")
            .clone();
        catalog.set(
            "AcroForm",
            dictionary! { "Fields" => vec![Object::Reference(field)], "SigFlags" => 3 },
        );
        let forged = append(
            &unsigned,
            &[
                (catalog_id, Object::Dictionary(catalog)),
                (page_id, Object::Dictionary(page)),
                (field, Object::Dictionary(widget)),
                (sig, Object::Dictionary(sig_dict)),
            ],
        );
        refused(&verify(&p, &forged), words);
    }
}

/// A PDF without any signature is not "verified with nothing to check".
#[test]
fn an_unsigned_pdf_is_not_verified() {
    let p = pki();
    refused(&verify(&p, &statement("1,000.00")), "no signature");
}

/// A TSA that answers with a token over other data: the signer refuses to embed it, so no
/// signed file is written with a timestamp that proves nothing.
#[test]
fn the_signer_refuses_a_token_over_other_data() {
    struct Lying<'a>(&'a LocalTimestamper);
    impl Timestamper for Lying<'_> {
        fn timestamp(
            &self,
            hash: pki::HashAlg,
            _digest: &[u8],
        ) -> Result<ParsedToken, TimestampError> {
            self.0.timestamp(hash, &hash.digest(b"some other document"))
        }
    }
    let p = pki();
    let lying = Lying(&p.tsa);
    let details = Details::default();
    let o = SignOptions {
        timestamper: Some(&lying),
        ..p.options(&details)
    };
    let e = sign(&statement("1,000.00"), &o).expect_err("a lying TSA must be refused");
    assert!(format!("{e}").contains("imprint"), "{e}");
    let lta = Details {
        level: Level::BLTA,
        ..Details::default()
    };
    let o = SignOptions {
        timestamper: Some(&lying),
        ..p.options(&lta)
    };
    assert!(sign(&statement("1.00"), &o).is_err());
    assert!(pdf_signer::timestamp(&statement("1.00"), &lying, None).is_err());
}

/// Bytes before `%PDF-` shift every offset differently for different readers: refused with
/// that reason rather than verified under one reading.
#[test]
fn bytes_before_the_header_are_refused() {
    let p = pki();
    let good = signed(&p, &statement("1,000.00"));
    let shifted = [b"garbage\n".as_slice(), &good].concat();
    refused(&verify(&p, &shifted), "before the %PDF- header");
}

/// A document certified with no changes allowed (DocMDP P=1) is not signed again: the new
/// signature would break the certification.
#[test]
fn a_document_certified_without_changes_is_not_signed_again() {
    let p = pki();
    let input = statement("1,000.00");
    let loaded = document::load(&input, Purpose::Verify).expect("load");
    let cert_sig = (loaded.size, 0);
    let mut catalog = loaded
        .doc
        .get_dictionary(loaded.root)
        .expect("catalog")
        .clone();
    catalog.set("Perms", dictionary! { "DocMDP" => cert_sig });
    let sig = dictionary! {
        "Type" => "Sig",
        "Reference" => vec![Object::Dictionary(dictionary! {
            "Type" => "SigRef", "TransformMethod" => "DocMDP",
            "TransformParams" => dictionary! { "Type" => "TransformParams", "P" => 1, "V" => "1.2" },
        })],
    };
    let certified = append(
        &input,
        &[
            (loaded.root, Object::Dictionary(catalog)),
            (cert_sig, Object::Dictionary(sig)),
        ],
    );
    let e = sign(&certified, &p.options(&Details::default())).expect_err("must refuse");
    assert!(format!("{e}").contains("DocMDP P=1"), "{e}");
}

/// Streams too large for the verifier to keep in memory are compared by their bytes in the
/// file: a large page content rewritten after signing is refused, the same bytes written
/// again are no change.
#[test]
fn large_streams_are_compared_by_their_bytes() {
    let p = pki();
    let mut content = Vec::new();
    for i in 0..12_000 {
        content.extend_from_slice(
            format!("BT /F1 8 Tf 72 {} Td (line {i:05}) Tj ET\n", 700 - i % 600).as_bytes(),
        );
    }
    assert!(content.len() > pdf_signer::document::KEPT_STREAM_BYTES);
    let good = signed(&p, &pdf_signer::testing::page_with_content(&content));
    let (_, _, content_id, _) = page_of(&good);

    let same = append(
        &good,
        &[(
            content_id,
            Object::Stream(Stream::new(dictionary! {}, content.clone())),
        )],
    );
    let r = verify(&p, &same);
    assert!(
        r.verified,
        "the same bytes again are no change: {}",
        explain(&r)
    );

    let mut other = content.clone();
    let at = memchr_find(&other, b"line 00042");
    other[at..at + 10].copy_from_slice(b"paid 00042");
    let changed = append(
        &good,
        &[(
            content_id,
            Object::Stream(Stream::new(dictionary! {}, other)),
        )],
    );
    refused(&verify(&p, &changed), "content of page 1 changed");
}
