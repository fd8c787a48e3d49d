//! The verifier's parsers and checks on untrusted tokens and replies: parse (BER, bare token
//! or TimeStampResp) and, when that succeeds, run every check. Never a panic; a random token
//! never verifies against an empty trust list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::token::{ParsedToken, VerifyOptions, verify};

fuzz_target!(|data: &[u8]| {
    let _ = pki::tsp::parse_response(data);
    let _ = pki::tsp::is_response(data);
    if let Ok(token) = ParsedToken::parse(data) {
        let _ = token.info();
        let report = verify(&token, Some(&[0u8; 32]), &VerifyOptions::default());
        assert!(!report.verified);
    }
});
