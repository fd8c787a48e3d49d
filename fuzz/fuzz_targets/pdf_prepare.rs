//! What the signer reads of an input before it signs: lopdf's reading (stream bytes dropped),
//! the catalog, AcroForm, field tree and pages, and the planned update written out, on
//! untrusted files. Never a panic: a file that cannot be signed safely is an error. A document
//! timestamp through a timestamper that always fails exercises everything up to the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::HashAlg;
use pki::timestamper::{TimestampError, Timestamper};
use pki::token::ParsedToken;

struct Refuses;

impl Timestamper for Refuses {
    fn timestamp(&self, _: HashAlg, _: &[u8]) -> Result<ParsedToken, TimestampError> {
        Err("no authority in the fuzzer".into())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = pdf_signer::document::load(data, pdf_signer::document::Purpose::Sign);
    assert!(pdf_signer::timestamp(data, &Refuses, None).is_err());
    let _ = pdf_signer::document::revision_ends(data);
});
