//! The email verifier's entry point on untrusted messages: detection, MIME split, every
//! signature layer and SignerInfo, the From binding. Never a panic; with no trust anchor a
//! random message never verifies. The signing canonicaliser and the mbox reader take the same
//! bytes (they read what users feed `stamp email sign`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::smime::{EmailVerifyOptions, looks_like_message, verify_message};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_message(data);
    let report = verify_message("fuzz", data, &EmailVerifyOptions::default());
    assert!(!report.verified);
    let _ = pki::smime::canon::prepare(data);
    let _ = pki::smime::mbox::read(data);
    let _ = pki::smime::mime::message_id(data);
});
