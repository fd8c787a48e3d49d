//! The verifier's parsers and checks on untrusted tokens and replies: parse (BER, bare token
//! or TimeStampResp) and, when that succeeds, run every check, also with the token's own
//! certificates as anchors, strict and with a clock at the epoch. Never a panic; a random token
//! never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::token::{ParsedToken, VerifyOptions, verify};

fuzz_target!(|data: &[u8]| {
    let _ = pki::tsp::parse_response(data);
    let _ = pki::tsp::is_response(data);
    if let Ok(token) = ParsedToken::parse(data) {
        let _ = token.info();
        let _ = token.extension_names();
        let _ = token.signer_info.sid.to_string();
        let report = verify(&token, Some(&[0u8; 32]), &VerifyOptions::default());
        assert!(!report.verified);
        // The bag as its own anchors and extra certificates, strict, a clock at the epoch:
        // every path-building and anchor branch runs; still never verified.
        let opts = VerifyOptions {
            trust: token.certificates.clone(),
            extra_certs: token.certificates.clone(),
            strict: true,
            now: Some(0),
            ..VerifyOptions::default()
        };
        assert!(!verify(&token, Some(&[0u8; 32]), &opts).verified);
    }
});
