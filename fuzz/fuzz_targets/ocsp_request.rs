//! The OCSP responder's request parser, `pki::ca::parse_request`, on untrusted bytes (a POST
//! body or a decoded GET path): never a panic; whatever parses names at least one certificate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = pki::ca::parse_request(data) {
        assert!(!q.serials().is_empty());
    }
});
