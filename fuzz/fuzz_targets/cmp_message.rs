//! The CA's CMP message reader, `pki::cmp::parse`, and MAC verification on untrusted bytes:
//! never a panic, never more key-derivation work than the network cap allows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = pki::cmp::parse(data) {
        assert!((2..=3).contains(&m.pvno));
        let _ = m.protected_part();
        let _ = m.verify_mac(b"sesame");
    }
});
