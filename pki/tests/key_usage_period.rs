//! The signing key's usage period: the certificate's validity narrowed by
//! privateKeyUsagePeriod (certificates made by openssl with the extension as raw DER); a
//! malformed extension allows no signing at all.

use std::process::Command;

fn cert_with(dir: &std::path::Path, name: &str, ext: Option<&str>) -> Vec<u8> {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "k.pem",
        "-subj",
        "/CN=TSA",
        "-days",
        "3650",
        "-outform",
        "DER",
        "-out",
        name,
    ];
    let e;
    if let Some(ext) = ext {
        e = format!("2.5.29.16=DER:{ext}");
        args.extend(["-addext", &e]);
    }
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(&args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join(name)).expect("cert")
}

fn gt(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02X}")).collect()
}

fn unix(s: &str) -> u64 {
    let t = time::PrimitiveDateTime::parse(
        s,
        time::macros::format_description!("[year][month][day][hour][minute][second]Z"),
    )
    .expect("time");
    u64::try_from(t.assume_utc().unix_timestamp()).expect("after 1970")
}

#[test]
fn the_usage_period_narrows_the_validity_and_a_malformed_one_allows_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let plain = pki::cert::parse(&cert_with(d, "plain.der", None)).expect("cert");
    let v = &plain.tbs_certificate.validity;
    assert_eq!(
        pki::cert::key_usage_period(&plain),
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs()
        )
    );
    // SEQUENCE { [0] 20250101000000Z, [1] 20270101000000Z }: the end is the usage period's.
    let (nb, na) = ("20250101000000Z", "20270101000000Z");
    let ext = format!("3022800F{}810F{}", gt(nb), gt(na));
    let narrowed = pki::cert::parse(&cert_with(d, "pkup.der", Some(&ext))).expect("cert");
    let (from, until) = pki::cert::key_usage_period(&narrowed);
    assert_eq!(until, unix(na));
    // The start is the later of notBefore (now) and the period's start (2025).
    assert_eq!(
        from,
        narrowed
            .tbs_certificate
            .validity
            .not_before
            .to_unix_duration()
            .as_secs()
    );
    // Only notAfter.
    let ext = format!("3011810F{}", gt(na));
    let only_end = pki::cert::parse(&cert_with(d, "end.der", Some(&ext))).expect("cert");
    assert_eq!(pki::cert::key_usage_period(&only_end).1, unix(na));
    // Malformed: no signing.
    let broken = pki::cert::parse(&cert_with(d, "bad.der", Some("300302010A"))).expect("cert");
    assert_eq!(pki::cert::key_usage_period(&broken), (1, 0));
}
