//! The authority's request parser: any bytes give a CheckedRequest or a Rejection, never a
//! panic; an accepted request's imprint has its algorithm's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::tsp::{RequestPolicy, check_request};

fuzz_target!(|data: &[u8]| {
    let policy = RequestPolicy::new(pki::oid::DEV_POLICY);
    if let Ok(req) = check_request(data, &policy) {
        assert_eq!(req.message_imprint.hashed_message.as_bytes().len(), req.hash_alg.len());
    }
});
