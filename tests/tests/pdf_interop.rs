//! PDF signing interop with tools that are not ours, on a CA and two signers (alice, ECDSA
//! P-256; bob, RSA-2048) made with the openssl CLI and the TSA's development root:
//!
//! - `stamp pdf sign` signs what other producers write (tests/py/pdf_fixtures.py: reportlab,
//!   qpdf object streams, PDF 2.0, pyHanko incremental updates, a hybrid-reference file; the
//!   committed LibreOffice Writer export; a file pyHanko signed already): `qpdf --check` finds
//!   nothing, the output starts with the input's bytes, `stamp verify` accepts it and the earlier
//!   pyHanko signature still verifies; a changed byte is refused;
//! - pyHanko judges our signatures VALID at B-T, B-LT and B-LTA for both key types (the CLI), a
//!   B-LTA signature's later revisions as LTA_UPDATES, and a `stamp pdf timestamp` document
//!   timestamp intact and trusted with the earlier signature's change classified LTA_UPDATES
//!   (the API, tests/py/pdf_validate.py);
//! - poppler's pdfsig, with an NSS database that trusts the CA, says "Signature is Valid." and
//!   "Certificate is Trusted." for our signatures, visible or not;
//! - `stamp verify` accepts what pyHanko signs (B-B, B-T, B-LTA, a document timestamp, two
//!   signatures; tests/py/pyhanko_sign.py against our TSA) and reports the level pyHanko made,
//!   and what `pdfsig -add-signature` signs (with bob's RSA key: poppler 22.12 cannot sign with
//!   an EC key, it fails with "signDocument: unable update signature");
//! - encrypted and damaged inputs are refused (exit 2) and leave no file behind;
//! - bulk signing with --out-dir signs 5 inputs, then skips all 5 on a second run;
//! - a visible signature validates in pyHanko and pdfsig and pdftoppm renders its page.
//!
//! A missing qpdf, pdfsig, certutil, pk12util, pdftoppm, pyHanko or reportlab is a failure, not
//! a skip: scripts/test.sh installs them.

use serde_json::Value;
use sigillum_tests::mail::Person;
use sigillum_tests::pdf::{
    NssDb, PdfPki, fixtures, pyhanko_sign, pyhanko_validate_api, pyhanko_validate_cli, qpdf_check,
    stamp_sign, vector,
};
use sigillum_tests::{Run, TsaServer, read_file, run, stamp, write_file};
use std::path::Path;
use std::process::Command;

/// The inputs of tests/py/pdf_fixtures.py that a signer must sign (one per producer/layout).
const PRODUCED: [&str; 6] = [
    "reportlab.pdf",
    "objstm.pdf",
    "pdf20.pdf",
    "incremental.pdf",
    "incremental-xrefstream.pdf",
    "hybrid.pdf",
];

/// The visible signature's rectangle on page 1 (points from the bottom left).
const VISIBLE: &str = "1,350,50,580,110";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `stamp verify PDF --trust CA --tsa-trust ROOT --json`: the exit code, the run and the report.
fn verify(dir: &Path, pki: &PdfPki, pdf: &Path) -> (Run, Value) {
    let args = [
        "verify",
        p(pdf),
        "--trust",
        p(&pki.ca),
        "--tsa-trust",
        p(&pki.tsa_root),
    ];
    let run = stamp(dir, &[&args[..], &["--json"]].concat());
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stamp verify --json gives JSON ({e}): {run}"));
    (run, report)
}

/// `stamp verify` of `pdf`, asserting exit 0, `verified`, no errors and every signature (and
/// document timestamp) verified; returns the signatures' reports.
fn verify_ok(dir: &Path, pki: &PdfPki, pdf: &Path, what: &str) -> Vec<Value> {
    let (run, report) = verify(dir, pki, pdf);
    assert_eq!(run.code, Some(0), "stamp verify must accept {what}: {run}");
    assert_eq!(report["kind"], "pdf", "{what}: {run}");
    assert_eq!(report["verified"], true, "{what}: {run}");
    assert_eq!(report["errors"], serde_json::json!([]), "{what}: {run}");
    let sigs = report["signatures"]
        .as_array()
        .expect("signatures[]")
        .clone();
    assert!(!sigs.is_empty(), "{what}: no signature reported: {run}");
    for sig in &sigs {
        assert_eq!(sig["verified"], true, "{what}: {}: {run}", sig["label"]);
        assert_eq!(
            sig["pdf"]["disallowed_changes"],
            serde_json::json!([]),
            "{what}: {run}"
        );
    }
    sigs
}

/// The outcome of check `name` in a signature's report.
fn outcome<'a>(sig: &'a Value, name: &str) -> &'a str {
    sig["checks"]
        .as_array()
        .expect("checks[]")
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["outcome"].as_str())
        .unwrap_or_else(|| panic!("no check {name:?} in {sig:#}"))
}

/// Asserts a signature report's /SubFilter kind, field and PAdES level (`None`: no level).
fn assert_sig(sig: &Value, field: &str, kind: &str, level: Option<&str>, what: &str) {
    let pdf = &sig["pdf"];
    assert_eq!(pdf["field"], field, "{what}: field: {sig:#}");
    assert_eq!(pdf["kind"], kind, "{what}: kind: {sig:#}");
    assert_eq!(pdf["level"].as_str(), level, "{what}: level: {sig:#}");
}

/// `pyhanko sign validate --pretty-print` on one of our signatures: exit 0 and every line that
/// says the signature is intact ("cryptographically sound"), trusted, timestamped by a trusted
/// TSA, and VALID; `covers` is the expected Modifications line.
fn assert_pyhanko_valid(pki: &PdfPki, pdf: &Path, strict: bool, covers: &str, what: &str) {
    let judged = pyhanko_validate_cli(pki, pdf, strict);
    for line in [
        "The signature is judged VALID.",
        "The signature is cryptographically sound.",
        "The signer's certificate is trusted.",
        "The timestamp token is cryptographically sound.",
        "The TSA certificate is trusted.",
        covers,
    ] {
        assert!(
            judged.ok() && judged.stdout.contains(line),
            "pyHanko on {what}: no {line:?}: {judged}"
        );
    }
}

const COVERS_FILE: &str = "The signature covers the entire file.";
const MAINTENANCE_ONLY: &str = "All modifications relate to signature maintenance";

/// The signatures pyHanko's API judged (tests/py/pdf_validate.py's JSON).
fn api_sigs(pki: &PdfPki, pdf: &Path) -> (Run, Vec<Value>) {
    let judged = pyhanko_validate_api(pki, pdf);
    let report: Value = serde_json::from_str(&judged.stdout)
        .unwrap_or_else(|e| panic!("pdf_validate.py JSON ({e}): {judged}"));
    let sigs = report["signatures"]
        .as_array()
        .expect("signatures[]")
        .clone();
    (judged, sigs)
}

/// A pyHanko API verdict: intact, valid and trusted.
fn assert_api_sound(sig: &Value, judged: &Run, what: &str) {
    for key in ["intact", "valid", "trusted"] {
        assert_eq!(sig[key], true, "pyHanko API, {what}: {key}: {judged}");
    }
}

/// `pdfsig` on our single signature: valid, trusted, whole document, PAdES.
fn assert_pdfsig_valid(nss: &NssDb, pdf: &Path, what: &str) {
    let judged = nss.pdfsig(pdf);
    for line in [
        "Signature Type: ETSI.CAdES.detached",
        "Total document signed",
        "Signature Validation: Signature is Valid.",
        "Certificate Validation: Certificate is Trusted.",
    ] {
        assert!(
            judged.ok() && judged.stdout.contains(line),
            "pdfsig on {what}: no {line:?}: {judged}"
        );
    }
}

/// A copy of `pdf` with the first "April 2024" (reportlab's /Title, inside the first signed
/// byte range) changed to "April 2025".
fn tampered(dir: &Path, pdf: &Path) -> std::path::PathBuf {
    let mut bytes = read_file(pdf);
    let at = bytes
        .windows(10)
        .position(|w| w == b"April 2024")
        .expect("reportlab's /Title is in the clear");
    bytes[at + 9] = b'5';
    let name = format!(
        "tampered-{}",
        pdf.file_name().and_then(|n| n.to_str()).expect("name")
    );
    write_file(dir, &name, &bytes)
}

/// A changed signed byte: not verified (exit 1), message-digest failed.
fn assert_tamper_refused(dir: &Path, pki: &PdfPki, pdf: &Path, what: &str) {
    let (run, report) = verify(dir, pki, &tampered(dir, pdf));
    assert_eq!(run.code, Some(1), "{what}, one signed byte changed: {run}");
    assert_eq!(
        outcome(&report["signatures"][0], "message-digest"),
        "failed",
        "{what}, one signed byte changed: {run}"
    );
}

fn subject(sig: &Value) -> &str {
    sig["signer"]["subject"].as_str().unwrap_or_default()
}

// Our signer must append to whatever other producers wrote, without breaking the file or an
// earlier signature by someone else.
#[test]
fn stamp_signs_pdfs_of_every_producer_and_keeps_an_earlier_pyhanko_signature() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let mut inputs: Vec<_> = PRODUCED.iter().map(|n| fx.join(n)).collect();
    inputs.push(vector("libreoffice-writer.pdf"));
    let pyhanko_signed = pyhanko_sign(
        dir,
        &server,
        &pki,
        Some(&pki.rsa),
        "B-T",
        &fx.join("reportlab.pdf"),
        "pyhanko-bob.pdf",
    );
    inputs.push(pyhanko_signed.clone());
    for input in &inputs {
        let name = input.file_name().and_then(|n| n.to_str()).expect("name");
        let what = format!("{name} signed by stamp at B-T");
        let out = stamp_sign(
            dir,
            &server,
            input,
            &pki.ec,
            &format!("signed-{name}"),
            &["--level", "B-T"],
        );
        assert!(
            read_file(&out).starts_with(&read_file(input)),
            "{what}: an incremental update keeps the input's bytes as they are"
        );
        qpdf_check(&out);
        let sigs = verify_ok(dir, &pki, &out, &what);
        let ours = sigs.last().expect("a signature");
        let field = if *input == pyhanko_signed {
            "Signature2"
        } else {
            "Signature1"
        };
        assert_sig(ours, field, "signature", Some("B-T"), &what);
        assert_eq!(
            ours["pdf"]["sub_filter"], "ETSI.CAdES.detached",
            "{what}: {ours:#}"
        );
        assert_eq!(ours["pdf"]["bytes_after"], 0, "{what}: {ours:#}");
        assert_eq!(subject(ours), "CN=alice@example.com", "{what}: {ours:#}");
        if *input == pyhanko_signed {
            assert_eq!(sigs.len(), 2, "{what}: pyHanko's and ours: {sigs:#?}");
            assert_sig(&sigs[0], "Signature1", "signature", Some("B-T"), &what);
            assert_eq!(
                subject(&sigs[0]),
                "CN=bob@example.com",
                "{what}: {:#}",
                sigs[0]
            );
        } else {
            assert_eq!(sigs.len(), 1, "{what}: {sigs:#?}");
        }
    }
    let signed = dir.join("signed-reportlab.pdf");
    assert_tamper_refused(dir, &pki, &signed, "stamp-signed reportlab.pdf");
}

// pyHanko is the reference PAdES validator: our levels must be what it recognises, for both key
// types, and our document timestamps must count as signature maintenance.
#[test]
fn pyhanko_validates_stamp_signatures_at_every_level_and_document_timestamps() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let input = fx.join("reportlab.pdf");
    for (key, signer) in [("ec", &pki.ec), ("rsa", &pki.rsa)] {
        for level in ["B-T", "B-LT", "B-LTA"] {
            let out = format!("{key}-{level}.pdf");
            let out = stamp_sign(dir, &server, &input, signer, &out, &["--level", level]);
            let covers = if level == "B-T" {
                COVERS_FILE
            } else {
                MAINTENANCE_ONLY
            };
            assert_pyhanko_valid(&pki, &out, true, covers, &format!("{key} {level}"));
        }
    }
    let hybrid = stamp_sign(
        dir,
        &server,
        &fx.join("hybrid.pdf"),
        &pki.ec,
        "hybrid.pdf",
        &[],
    );
    assert_pyhanko_valid(&pki, &hybrid, false, COVERS_FILE, "hybrid.pdf at B-T");

    // Our B-LTA: the DSS and document timestamp revisions are LTA updates to pyHanko.
    let lta = dir.join("ec-B-LTA.pdf");
    let (judged, sigs) = api_sigs(&pki, &lta);
    assert_eq!(
        sigs.len(),
        2,
        "B-LTA: a signature and a document timestamp: {judged}"
    );
    assert_eq!(sigs[0]["type"], "/Sig", "{judged}");
    assert_api_sound(&sigs[0], &judged, "B-LTA signature");
    assert_eq!(sigs[0]["bottom_line"], true, "B-LTA signature: {judged}");
    assert_eq!(
        sigs[0]["modification_level"], "LTA_UPDATES",
        "B-LTA signature: {judged}"
    );
    assert_eq!(
        sigs[0]["timestamp"]["intact"], true,
        "B-LTA signature timestamp: {judged}"
    );
    assert_eq!(
        sigs[0]["timestamp"]["trusted"], true,
        "B-LTA signature timestamp: {judged}"
    );
    assert_eq!(sigs[1]["type"], "/DocTimeStamp", "{judged}");
    assert_eq!(sigs[1]["sub_filter"], "/ETSI.RFC3161", "{judged}");
    assert_api_sound(&sigs[1], &judged, "B-LTA document timestamp");
    assert_eq!(
        sigs[1]["coverage"], "ENTIRE_FILE",
        "B-LTA document timestamp: {judged}"
    );

    // `stamp pdf timestamp` over a B-T signature: maintenance, not a change of the document.
    let url = server.url();
    let bt = dir.join("ec-B-T.pdf");
    stamp(
        dir,
        &[
            "pdf",
            "timestamp",
            p(&bt),
            "--tsa",
            &url,
            "-o",
            "ec-B-T-docts.pdf",
        ],
    )
    .assert_ok();
    let docts = dir.join("ec-B-T-docts.pdf");
    let (judged, sigs) = api_sigs(&pki, &docts);
    assert_eq!(sigs.len(), 2, "B-T + document timestamp: {judged}");
    assert_api_sound(
        &sigs[0],
        &judged,
        "B-T signature under a document timestamp",
    );
    assert_eq!(sigs[0]["bottom_line"], true, "{judged}");
    assert_eq!(
        sigs[0]["modification_level"], "LTA_UPDATES",
        "B-T then doc-ts: {judged}"
    );
    assert_eq!(sigs[1]["type"], "/DocTimeStamp", "{judged}");
    assert_api_sound(&sigs[1], &judged, "stamp pdf timestamp");
    assert_eq!(
        sigs[1]["coverage"], "ENTIRE_FILE",
        "stamp pdf timestamp: {judged}"
    );
    let ours = verify_ok(dir, &pki, &docts, "B-T + stamp pdf timestamp");
    assert_eq!(ours.len(), 2, "{ours:#?}");
    assert_eq!(
        ours[1]["pdf"]["kind"], "document-timestamp",
        "{:#}",
        ours[1]
    );
}

// poppler (evince, okular) is what most Linux desktops show signatures with.
#[test]
fn pdfsig_validates_stamp_signatures() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let nss = NssDb::new(&dir.join("nss"), &pki);
    let input = fx.join("reportlab.pdf");
    let cases: [(&str, &Person, &[&str]); 3] = [
        ("ec-B-T.pdf", &pki.ec, &[]),
        ("rsa-B-T.pdf", &pki.rsa, &[]),
        (
            "ec-visible.pdf",
            &pki.ec,
            &["--visible", VISIBLE, "--reason", "Approved"],
        ),
    ];
    for (name, signer, extra) in cases {
        let out = stamp_sign(dir, &server, &input, signer, name, extra);
        assert_pdfsig_valid(&nss, &out, name);
    }
}

// Our verifier must accept PAdES as a reference implementation writes it, at every level, and
// the plain adbe.pkcs7.detached signatures of another producer.
#[test]
fn stamp_verify_accepts_pyhanko_and_pdfsig_signed_pdfs() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let input = fx.join("reportlab.pdf");
    let ec = Some(&pki.ec);

    let bb = pyhanko_sign(dir, &server, &pki, ec, "B-B", &input, "ph-B-B.pdf");
    let sigs = verify_ok(dir, &pki, &bb, "pyHanko B-B");
    assert_eq!(sigs.len(), 1, "{sigs:#?}");
    assert_sig(
        &sigs[0],
        "Signature1",
        "signature",
        Some("B-B"),
        "pyHanko B-B",
    );
    assert_eq!(
        outcome(&sigs[0], "signature-timestamp"),
        "warning",
        "{:#}",
        sigs[0]
    );

    let bt = pyhanko_sign(dir, &server, &pki, ec, "B-T", &input, "ph-B-T.pdf");
    let sigs = verify_ok(dir, &pki, &bt, "pyHanko B-T");
    assert_eq!(sigs.len(), 1, "{sigs:#?}");
    assert_sig(
        &sigs[0],
        "Signature1",
        "signature",
        Some("B-T"),
        "pyHanko B-T",
    );
    assert_eq!(
        outcome(&sigs[0], "signature-timestamp"),
        "passed",
        "{:#}",
        sigs[0]
    );
    assert_tamper_refused(dir, &pki, &bt, "pyHanko B-T");

    let lta = pyhanko_sign(dir, &server, &pki, ec, "B-LTA", &input, "ph-B-LTA.pdf");
    let sigs = verify_ok(dir, &pki, &lta, "pyHanko B-LTA");
    assert_eq!(sigs.len(), 2, "signature and document timestamp: {sigs:#?}");
    assert_sig(
        &sigs[0],
        "Signature1",
        "signature",
        Some("B-LTA"),
        "pyHanko B-LTA",
    );
    assert_sig(
        &sigs[1],
        "Signature1-LTA",
        "document-timestamp",
        None,
        "pyHanko B-LTA",
    );

    let docts = pyhanko_sign(dir, &server, &pki, None, "doc-ts", &input, "ph-doc-ts.pdf");
    let sigs = verify_ok(dir, &pki, &docts, "pyHanko document timestamp");
    assert_eq!(sigs.len(), 1, "{sigs:#?}");
    assert_sig(
        &sigs[0],
        "DocTimeStamp1",
        "document-timestamp",
        None,
        "pyHanko doc-ts",
    );
    assert_eq!(
        sigs[0]["pdf"]["sub_filter"], "ETSI.RFC3161",
        "{:#}",
        sigs[0]
    );

    let rsa = Some(&pki.rsa);
    let two = pyhanko_sign(dir, &server, &pki, rsa, "B-T", &bt, "ph-two.pdf");
    let sigs = verify_ok(dir, &pki, &two, "two pyHanko signatures");
    assert_eq!(sigs.len(), 2, "{sigs:#?}");
    assert_sig(
        &sigs[0],
        "Signature1",
        "signature",
        Some("B-T"),
        "first of two",
    );
    assert_sig(
        &sigs[1],
        "Signature2",
        "signature",
        Some("B-T"),
        "second of two",
    );
    assert_eq!(subject(&sigs[0]), "CN=alice@example.com", "{:#}", sigs[0]);
    assert_eq!(subject(&sigs[1]), "CN=bob@example.com", "{:#}", sigs[1]);

    // poppler as a producer (RSA: pdfsig 22.12 cannot sign with an EC key).
    let nss = NssDb::new(&dir.join("nss"), &pki);
    nss.import_key(dir, &pki.rsa, &pki.ca, "bob");
    let out = dir.join("pdfsig-signed.pdf");
    let signed = run(Command::new("pdfsig")
        .args(["-nssdir", &nss.spec, "-add-signature", "-nick", "bob"])
        .args([
            "-new-signature-field-name",
            "Poppler1",
            "-reason",
            "pdfsig interop",
        ])
        .arg(&input)
        .arg(&out));
    assert!(
        signed.ok() && out.is_file(),
        "pdfsig -add-signature: {signed}"
    );
    let own = nss.pdfsig(&out);
    assert!(
        own.stdout.contains("Signature is Valid."),
        "pdfsig on its own output: {own}"
    );
    let sigs = verify_ok(dir, &pki, &out, "pdfsig -add-signature");
    assert_eq!(sigs.len(), 1, "{sigs:#?}");
    let sub_filter = sigs[0]["pdf"]["sub_filter"].as_str().unwrap_or_default();
    assert!(
        ["adbe.pkcs7.detached", "ETSI.CAdES.detached"].contains(&sub_filter),
        "pdfsig writes one of the two: {:#}",
        sigs[0]
    );
    assert_eq!(sigs[0]["pdf"]["field"], "Poppler1", "{:#}", sigs[0]);
    assert_eq!(subject(&sigs[0]), "CN=bob@example.com", "{:#}", sigs[0]);
    assert_eq!(outcome(&sigs[0], "signature"), "passed", "{:#}", sigs[0]);
}

// A signer must not sign what it cannot read faithfully, and a refusal must not leave a file
// that looks like a result.
#[test]
fn stamp_refuses_encrypted_and_damaged_pdfs_and_writes_nothing() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    let url = server.url();
    let (key, cert) = (p(&pki.ec.key), p(&pki.ec.cert));
    for (name, why) in [("encrypted.pdf", "encrypted"), ("truncated.pdf", "damaged")] {
        let input = fx.join(name);
        let out = out_dir.join(name);
        let sign = [
            "pdf",
            "sign",
            p(&input),
            "--key",
            key,
            "--cert",
            cert,
            "--tsa",
            &url,
        ];
        let timestamp = ["pdf", "timestamp", p(&input), "--tsa", &url];
        for args in [&sign[..], &timestamp[..]] {
            let refused = stamp(dir, &[args, &["-o", p(&out)]].concat());
            assert_eq!(refused.code, Some(2), "{name} must be refused: {refused}");
            assert!(
                refused.stderr.contains(why),
                "{name}: the message says {why:?}: {refused}"
            );
            let left: Vec<_> = std::fs::read_dir(&out_dir).expect("out dir").collect();
            assert!(
                left.is_empty(),
                "{name}: nothing written, found {left:?}: {refused}"
            );
        }
    }
}

// Bulk signing must sign every input once and be safe to run again (nothing re-signed).
#[test]
fn bulk_signing_signs_then_skips() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let url = server.url();
    let inputs: Vec<_> = PRODUCED[..5].iter().map(|n| fx.join(n)).collect();
    let mut args = vec!["pdf", "sign"];
    args.extend(inputs.iter().map(|i| p(i)));
    args.extend([
        "--key",
        p(&pki.ec.key),
        "--cert",
        p(&pki.ec.cert),
        "--tsa",
        &url,
    ]);
    args.extend(["--out-dir", "out", "--json"]);
    let summary = |run: &Run| -> Value {
        run.assert_ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("summary JSON ({e}): {run}"))
    };
    let first = stamp(dir, &args);
    let s = summary(&first);
    assert_eq!(
        (&s["signed"], &s["skipped"]),
        (&5.into(), &0.into()),
        "{first}"
    );
    assert_eq!(s["failed"], serde_json::json!([]), "{first}");
    let outputs: Vec<_> = PRODUCED[..5]
        .iter()
        .map(|n| dir.join("out").join(n))
        .collect();
    let before: Vec<_> = outputs.iter().map(|o| read_file(o)).collect();
    for out in &outputs {
        let sigs = verify_ok(dir, &pki, out, &format!("bulk output {}", out.display()));
        assert_eq!(sigs.len(), 1, "{sigs:#?}");
        assert_sig(
            &sigs[0],
            "Signature1",
            "signature",
            Some("B-T"),
            "bulk output",
        );
    }
    let again = stamp(dir, &args);
    let s = summary(&again);
    assert_eq!(
        (&s["signed"], &s["skipped"]),
        (&0.into(), &5.into()),
        "{again}"
    );
    assert_eq!(s["failed"], serde_json::json!([]), "{again}");
    let after: Vec<_> = outputs.iter().map(|o| read_file(o)).collect();
    assert!(
        before == after,
        "a skipped output is left as it was: {again}"
    );
}

// A visible signature adds an appearance stream and a widget with a rectangle: validators and
// renderers must still take the file.
#[test]
fn visible_signature_validates_and_renders() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let input = fx.join("reportlab.pdf");
    let extra = [
        "--visible",
        VISIBLE,
        "--reason",
        "Approved",
        "--location",
        "Testville",
    ];
    let out = stamp_sign(dir, &server, &input, &pki.rsa, "visible.pdf", &extra);
    assert_pyhanko_valid(&pki, &out, true, COVERS_FILE, "visible signature");
    let nss = NssDb::new(&dir.join("nss"), &pki);
    assert_pdfsig_valid(&nss, &out, "visible signature");
    let sigs = verify_ok(dir, &pki, &out, "visible signature");
    assert_eq!(sigs[0]["pdf"]["reason"], "Approved", "{:#}", sigs[0]);
    assert_eq!(sigs[0]["pdf"]["location"], "Testville", "{:#}", sigs[0]);

    let render = |pdf: &Path, prefix: &str| -> Vec<u8> {
        let args = ["-r", "50", "-png", "-f", "1", "-l", "1"];
        let done = run(Command::new("pdftoppm")
            .current_dir(dir)
            .args(args)
            .arg(pdf)
            .arg(prefix));
        assert!(done.ok(), "pdftoppm {}: {done}", pdf.display());
        let png = read_file(&dir.join(format!("{prefix}-1.png")));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{prefix}-1.png is a PNG: {done}"
        );
        png
    };
    let signed = render(&out, "visible");
    let unsigned = render(&input, "unsigned");
    assert!(
        signed != unsigned,
        "the signature's appearance shows on the rendered page 1"
    );
}

// Keys come through the one loader for PDFs too: a PKCS#12 file (OpenSSL 3's default AES and
// PBKDF2) with its password from --pass-file signs, the certificate taken from the file; a
// wrong password is refused with the cause and leaves no output.
#[test]
fn a_pkcs12_key_with_a_password_file_signs() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = PdfPki::new(dir, &server);
    let fx = fixtures(dir);
    let made = sigillum_tests::openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            p(&pki.ec.key),
            "-in",
            p(&pki.ec.cert),
            "-out",
            "alice.p12",
            "-passout",
            "pass:correct horse",
        ],
    );
    assert!(made.ok(), "{made}");
    write_file(dir, "pw.txt", b"correct horse\n");
    write_file(dir, "wrong.txt", b"battery staple\n");
    let url = server.url();
    let input = fx.join("reportlab.pdf");
    let sign = |pass: &str, out: &str| {
        stamp(
            dir,
            &[
                "pdf",
                "sign",
                p(&input),
                "--key",
                "alice.p12",
                "--pass-file",
                pass,
                "--tsa",
                &url,
                "-o",
                out,
            ],
        )
    };
    let ok = sign("pw.txt", "p12.pdf");
    assert!(ok.ok(), "{ok}");
    verify_ok(dir, &pki, &dir.join("p12.pdf"), "PKCS#12 signer");
    let refused = sign("wrong.txt", "p12-wrong.pdf");
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("password"), "{refused}");
    assert!(!dir.join("p12-wrong.pdf").exists(), "{refused}");
}
