//! `pki::limits::check_sets` on any bytes: never a panic (nor a stack overflow); what it
//! accepts and decodes as an X.509 Name has no RDN over the cap, so `der`'s SET OF sort stays
//! bounded.
#![no_main]

use der::Decode;
use libfuzzer_sys::fuzz_target;
use pki::limits::{MAX_SET_ELEMENTS, check_sets};

fuzz_target!(|data: &[u8]| {
    if check_sets(data, "fuzz").is_ok()
        && let Ok(name) = x509_cert::name::Name::from_der(data)
    {
        assert!(name.0.iter().all(|rdn| rdn.0.len() <= MAX_SET_ELEMENTS));
        let _ = pki::cert::name_string(data);
    }
});
