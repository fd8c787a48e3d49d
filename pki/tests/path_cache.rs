//! The process-wide path cache of `pki::verify::validate_path`: a path validated once is
//! reused only at a time within every certificate's validity on it, for the same inputs; any
//! other input (another anchor, another EKU, a time outside) is validated afresh, with the
//! same verdict as without a cache.

use pki::devpki::{DevKeyType, DevPki};

const TSA_EKU: &[u8] = pki::oid::ID_KP_TIME_STAMPING_BYTES;

fn validity(der: &[u8]) -> (u64, u64) {
    let cert = pki::cert::parse(der).expect("cert");
    let v = &cert.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

#[test]
fn a_cached_path_is_reused_only_where_it_would_validate_again() {
    let dev = DevPki::generate(DevKeyType::EcdsaP256).expect("pki");
    let other = DevPki::generate(DevKeyType::EcdsaP256).expect("pki");
    let anchors = vec![dev.root_cert.clone()];
    let (nb, na) = validity(&dev.tsa_cert);
    let inside = nb + 60;
    let first =
        pki::verify::validate_path(&dev.tsa_cert, &[], &anchors, inside, TSA_EKU).expect("valid");
    assert_eq!(first.len(), 2);
    // The same inputs again: the same path (from the cache), at another time inside too.
    let again = pki::verify::validate_path(&dev.tsa_cert, &[], &anchors, inside + 3600, TSA_EKU)
        .expect("valid again");
    assert_eq!(again, first);
    // Outside the validity, before and after: refused, as without a cache.
    for at in [nb - 1, na + 1] {
        let e = pki::verify::validate_path(&dev.tsa_cert, &[], &anchors, at, TSA_EKU)
            .expect_err("outside the validity");
        assert!(!e.is_empty());
    }
    // Another anchor, another EKU: not the cached verdict.
    assert!(
        pki::verify::validate_path(
            &dev.tsa_cert,
            &[],
            std::slice::from_ref(&other.root_cert),
            inside,
            TSA_EKU
        )
        .is_err()
    );
    assert!(
        pki::verify::validate_path(
            &dev.tsa_cert,
            &[],
            &anchors,
            inside,
            pki::oid::ID_KP_EMAIL_PROTECTION_BYTES
        )
        .is_err()
    );
    // And the cached one still answers for its own inputs.
    assert_eq!(
        pki::verify::validate_path(&dev.tsa_cert, &[], &anchors, inside, TSA_EKU).expect("valid"),
        first
    );
}
