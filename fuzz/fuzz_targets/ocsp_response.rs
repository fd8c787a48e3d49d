//! `pki::ocsp::check_response` never panics, and never accepts an answer nobody signed: a
//! fixed request about a certificate of a development CA, any bytes as the answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pki::ocsp::{Query, check_response, request};

struct Fixture {
    query: Query,
    issuer: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dev = pki::devpki::DevPki::generate(pki::devpki::DevKeyType::EcdsaP256).expect("pki");
        Fixture {
            query: request(&dev.tsa_cert, &dev.root_cert).expect("request"),
            issuer: dev.root_cert.clone(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let answer = check_response(&f.query, data, &f.issuer, 1_800_000_000);
    assert!(answer.is_err(), "an answer nobody signed was accepted: {answer:?}");
});
