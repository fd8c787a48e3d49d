//! `pki::cert_raw::RawCert::parse` on any bytes, and the bag logic on what parses: never a
//! panic; every field is a slice of the input; a certificate never is its own path candidate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::cert_raw::RawCert;

fn inside(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = RawCert::parse(data) else {
        return;
    };
    for f in [c.tbs, c.serial, c.issuer, c.subject, c.spki_algorithm, c.public_key, c.signature] {
        assert!(inside(f, data));
    }
    let _ = c.may_issue(&c);
    let _ = c.is_self_issued();
    let _ = pki::path::signed_by(&c, &c);
    let pool = pki::path::dedup_parse([data, data]);
    assert_eq!(pool.len(), 1);
    assert!(pki::path::path_candidates(&c, &pool, &pool).is_empty());
});
