//! `pki::keyfile::load_signing_key` on any bytes (PKCS#12, PKCS#8, encrypted PKCS#8, BER) with
//! a fixed password: never a panic; the password is asked for at most once, and only for what
//! `is_pkcs12` recognises or an encrypted key; a loaded certificate belongs to the loaded key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::cms::SignerCert;
use pki::keyfile::{is_pkcs12, load_signing_key};
use pki::signer::RsaPadding;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let mut asked = 0;
    let result = load_signing_key(data, RsaPadding::Pkcs1, &mut || {
        asked += 1;
        Ok(Zeroizing::new("fuzz".to_owned()))
    });
    assert!(asked <= 1);
    if is_pkcs12(data) {
        assert_eq!(asked, 1);
    }
    if let Ok(loaded) = result {
        if let Some(cert) = loaded.certificate {
            let cert = SignerCert::from_der(cert).expect("a loaded certificate decodes");
            assert!(cert.matches(&loaded.signer));
        }
    }
});
