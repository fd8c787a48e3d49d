//! The one SignerInfo verifier (`pki::signer_check::check_signer`) on untrusted SignedData:
//! every SignerInfo of whatever parses (BER normalised first) is checked against its own
//! certificate bag, as an email's or a PDF's would be. Never a panic; nothing verifies over the
//! fixed bytes here: the fuzzer can learn their digest (libFuzzer watches comparisons) and write
//! it into messageDigest, but then the signature over the signed attributes must fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::report::{Outcome, SignatureReport};
use pki::signer_check::{SignedKind, SignerInput, check_signer};

const KIND: SignedKind = SignedKind {
    content_type: pki::oid::ID_DATA,
    content_type_name: "id-data",
    content: "the content",
    whole: "the input",
    holder: "the input",
    signer: "the signer's certificate",
};

fuzz_target!(|data: &[u8]| {
    let Ok(der) = pki::ber::normalize(data) else {
        return;
    };
    let Ok(raw) = pki::cms::RawSignedData::parse(&der) else {
        return;
    };
    let bag = raw.certificates().unwrap_or_default();
    let content = b"fixed content the fuzzer cannot have signed";
    let digest = |h: pki::HashAlg| Some(h.digest(content));
    for si in &raw.signer_infos {
        let Ok(view) = pki::signer_info::SignerInfoView::parse(si.full) else {
            continue;
        };
        for require in [false, true] {
            let mut r = SignatureReport::new("fuzz");
            let input = SignerInput {
                signer_info: &view,
                kind: KIND,
                content_digest: &digest,
                certificates: &bag,
                carries_certificates: !bag.is_empty(),
                require_signing_certificate: require,
            };
            let _ = check_signer(&input, &mut r);
            let passed = |name: &str| {
                r.checks
                    .iter()
                    .any(|c| c.name == name && c.outcome == Outcome::Passed)
            };
            assert!(!(passed("message-digest") && passed("signature")));
        }
    }
});
