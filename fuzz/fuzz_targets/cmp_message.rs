//! The CA's CMP message reader, `pki::cmp::parse`, the body reader (`Request::read`: CRMF,
//! PKCS#10, rr, certConf, genm, with the proof-of-possession check) and MAC and signature
//! verification on untrusted bytes: never a panic, never more key-derivation work than the
//! network cap allows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = pki::cmp::parse(data) {
        assert!((2..=3).contains(&m.pvno));
        let _ = m.protected_part();
        let _ = m.verify_mac(b"sesame");
        let _ = m.verify_signature();
        let _ = pki::cmp::Request::read(&m);
    }
});
