//! `pki::envelope::describe` and `decrypt` (and the S/MIME layer above them) never panic on
//! any input, with an RSA and an EC key that are recipients of nothing: whatever the bytes,
//! the answer is an error or (never, for these keys) content whose GCM tag verified.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pki::envelope::{SoftwareDecrypter, decrypt, describe};

fn keys() -> &'static [SoftwareDecrypter; 2] {
    static KEYS: OnceLock<[SoftwareDecrypter; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        use aws_lc_rs::encoding::AsDer;
        let rsa = aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("rsa");
        let ec = aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::ECDH_P256)
            .expect("ec");
        let rsa_der = rsa.as_der().expect("pkcs8");
        let ec_der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = ec.as_der().expect("pkcs8");
        [
            SoftwareDecrypter::from_pkcs8_der(rsa_der.as_ref()).expect("rsa key"),
            SoftwareDecrypter::from_pkcs8_der(ec_der.as_ref()).expect("ec key"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = describe(data);
    for key in keys() {
        let _ = decrypt(data, key, None);
        let _ = pki::smime::decrypt_message(data, key, None);
    }
});
