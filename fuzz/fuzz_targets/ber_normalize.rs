//! `pki::ber::normalize` never panics, and what it returns is a fixed point: normalising it
//! again borrows it unchanged.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use pki::ber::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(once) = normalize(data) else { return };
    if let Cow::Borrowed(same) = &once {
        assert_eq!(*same, data, "a borrowed result is the input itself");
    }
    // Only an indefinite-length value of 64 KiB or more can grow; below that nothing does.
    if data.len() < 0x1_0000 {
        assert!(once.len() <= data.len(), "normalising grew a small input");
    }
    match normalize(&once) {
        Ok(Cow::Borrowed(twice)) => assert_eq!(twice, &*once),
        other => panic!("normalised output is not a fixed point: {other:?}"),
    }
});
