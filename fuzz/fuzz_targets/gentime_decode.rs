//! Decoding `pki::gentime::GenTime` never panics, and every value it accepts re-encodes
//! canonically and decodes to the same instant.
#![no_main]

use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use pki::gentime::GenTime;

/// Encodes, decodes and encodes again; both encodings must agree.
fn round_trip(t: GenTime) {
    let der = t.to_der().expect("a decoded GenTime encodes");
    let again = GenTime::from_der(&der).expect("our own encoding decodes");
    assert_eq!(again, t);
    assert_eq!(
        again.to_der().expect("encodes"),
        der,
        "encoding is canonical"
    );
    let _ = t.to_string();
    assert_eq!(
        GenTime::from_unix_timestamp(t.unix_seconds(), t.subsec_nanos()),
        Ok(t)
    );
}

fuzz_target!(|data: &[u8]| {
    // The input as a whole TLV, as a `TSTInfo` field would see it.
    if let Ok(t) = GenTime::from_der(data) {
        round_trip(t);
    }
    // The input as the value alone, through the parser that explains its errors; wrapped in a
    // TLV, `der` must reach the same verdict.
    let direct = GenTime::from_der_value(data);
    if let Ok(len) = u8::try_from(data.len())
        && len < 0x80
    {
        let mut tlv = vec![0x18, len];
        tlv.extend_from_slice(data);
        let via_der = GenTime::from_der(&tlv);
        assert_eq!(
            direct.clone().ok(),
            via_der.ok(),
            "the two decoders disagree"
        );
    }
    if let Ok(t) = direct {
        round_trip(t);
    }
});
