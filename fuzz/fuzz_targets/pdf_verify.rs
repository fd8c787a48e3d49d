//! The PDF verifier's entry point on untrusted files: lopdf's reading of every revision, the
//! signature fields, /ByteRange checks, the CMS and token in /Contents, the comparison of
//! revisions. Never a panic; with no trust anchor a random file never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pdf_signer::{PdfVerifyOptions, looks_like_pdf, verify_pdf};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_pdf(data);
    let report = verify_pdf("fuzz", data, &PdfVerifyOptions::default());
    assert!(!report.verified);
});
