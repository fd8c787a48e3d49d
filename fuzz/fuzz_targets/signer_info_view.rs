//! `pki::signer_info::SignerInfoView::parse` on any bytes: never a panic; what parses keeps its
//! promises (unsigned OIDs listed up to the cap, signature timestamps kept up to theirs, each
//! one whole TLV, signed attributes re-tagged as a SET that walks again); a kept signature
//! timestamp goes through the token parser without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::limits::{MAX_LISTED_UNSIGNED_ATTRS, MAX_SIGNATURE_TIMESTAMPS};
use pki::signer_info::{SignerInfoView, attributes};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = SignerInfoView::parse(data) {
        assert!(view.unsigned_attr_oids.len() <= MAX_LISTED_UNSIGNED_ATTRS);
        assert!(view.unsigned_attr_oids.len() <= view.unsigned_attr_count);
        assert!(view.signature_timestamps.len() <= MAX_SIGNATURE_TIMESTAMPS);
        for token in &view.signature_timestamps {
            assert!(pki::raw::RawTlv::parse(token, "token").is_ok());
            let _ = pki::token::ParsedToken::parse(token);
        }
        match &view.signed_attrs_der {
            Some(set) => {
                assert_eq!(set[0], 0x31);
                let attrs = attributes(set).expect("signed attributes walked once walk again");
                assert_eq!(attrs.len(), view.signed_attr_oids.len());
            }
            None => assert!(view.signed_attr_oids.is_empty()),
        }
        let _ = view.sid.to_string();
        assert!(view.sid.required_version() == 1 || view.sid.required_version() == 3);
    }
    let _ = attributes(data);
});
