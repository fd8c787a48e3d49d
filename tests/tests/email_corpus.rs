//! S/MIME messages from other implementations' test suites (Thunderbird, Bouncy Castle, KDE,
//! and the "Johnny, you are fired!" attack samples), read from the shared corpus outside the
//! repository, never copied in: each keeps its verdict and the reason it is refused. openssl
//! (`cms -verify -noverify`) agrees on every signature-content verdict here: it accepts the
//! valid ones and 3nnn_smime/embeddedmulti (whose certificate paths need SHA-1 signed CAs that
//! webpki refuses), and rejects the body-byte, mismatch-econtent, appended-SignerInfo and
//! Apple mbox messages.
//!
//! The corpus is read from `SIGILLUM_EMAIL_CORPUS`, by default `../shared/corpora/emails`
//! beside the workspace; when that folder is absent the test prints a notice and passes.

use pki::smime::{CheckTime, EmailVerifyOptions, verify_message};
use sigillum_tests::{read_file, workspace_root};
use std::path::PathBuf;

/// (file, verified, a reason the report must contain when not verified).
const EXPECTED: &[(&str, bool, &str)] = &[
    ("thunderbird-2019/alice.dsig.SHA256.multipart.eml", true, ""),
    ("thunderbird-2023/alice.dsig.SHA256.multipart.eml", true, ""),
    ("thunderbird-2023/alice.sig.SHA384.opaque.eml", true, ""),
    ("thunderbird-2026/alice.dsig.SHA256.multipart.eml", true, ""),
    ("thunderbird-2026/alice.dsig.SHA384.multipart.eml", true, ""),
    ("thunderbird-2026/alice.dsig.SHA512.multipart.eml", true, ""),
    ("thunderbird-2026/alice.sig.SHA256.opaque.eml", true, ""),
    ("thunderbird-2026/alice.sig.SHA512.opaque.eml", true, ""),
    (
        "thunderbird-2026/alice.html.sig.SHA384.opaque.eml",
        true,
        "",
    ),
    // Signed by Alice, then the whole signed by Dave: verified layer by layer.
    (
        "thunderbird-2026/alice.plain.sig.SHA256.opaque.dave.sig.SHA256.opaque.eml",
        true,
        "",
    ),
    (
        "thunderbird-2026/alice.dsig.SHA256.multipart.bad.eml",
        false,
        "messageDigest does not match",
    ),
    (
        "thunderbird-2026/alice.dsig.SHA512.multipart.body-byte.eml",
        false,
        "messageDigest does not match",
    ),
    (
        "thunderbird-2026/alice.sig.SHA256.opaque.body-byte.eml",
        false,
        "messageDigest does not match",
    ),
    (
        "thunderbird-2026/alice.dsig.SHA512.multipart.mismatch-econtent.eml",
        false,
        "eContent confusion",
    ),
    (
        "thunderbird-2026/alice.dsig.SHA256.multipart.in.mixed.eml",
        false,
        "partially signed",
    ),
    (
        "thunderbird-2026/alice.dsig.SHA384.multipart.from-bob.eml",
        false,
        "possible impersonation: From says Bob@example.com",
    ),
    (
        "thunderbird-2026/alice.sig.SHA512.opaque.from-dave.eml",
        false,
        "possible impersonation: From says Dave@example.com",
    ),
    ("thunderbird-2026/alice.env.eml", false, "decrypt first"),
    (
        "thunderbird-2026/outer-smime-bad-sig-inner-smime-enc.eml",
        false,
        "messageDigest does not match",
    ),
    ("johnny/valid_email_from_manager.eml", true, ""),
    ("johnny/crash_01.eml", false, "malformed signature"),
    ("johnny/eContent_confusion.eml", false, "eContent confusion"),
    (
        "johnny/i1-from-unequals-signer-smime.eml",
        false,
        "possible impersonation",
    ),
    (
        "johnny/i2-from-is-signer-sender-a-smime.eml",
        false,
        "possible impersonation",
    ),
    (
        "johnny/i3-from1-sender-from2-signer-smime.eml",
        false,
        "2 From fields",
    ),
    ("johnny/m1-smime.eml", false, "partially signed"),
    (
        "johnny/multiple_signerInfos_append_johnny.eml",
        false,
        "messageDigest does not match",
    ),
    (
        "johnny/no_signerInfos_detached.eml",
        false,
        "holds no SignerInfo",
    ),
    ("johnny/u1-generic.eml", false, "not signed: do not trust"),
    ("bc-java/qp-soft-break.eml", false, "RSA key has 1024 bits"),
    (
        "bc-java/3nnn_smime.eml",
        false,
        "no path to a trusted anchor",
    ),
    (
        "bc-java/embeddedmulti.message",
        false,
        "no path to a trusted anchor",
    ),
    (
        "kde/smime-signed-apple.mbox",
        false,
        "messageDigest does not match",
    ),
];

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SIGILLUM_EMAIL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpora/emails"));
    dir.is_dir().then_some(dir)
}

/// Every report line that is not a pass: errors, failed and unchecked checks.
fn reasons(r: &pki::report::Report) -> Vec<String> {
    let mut out = r.errors.clone();
    let mut stack: Vec<&pki::report::SignatureReport> = r.signatures.iter().collect();
    while let Some(s) = stack.pop() {
        out.extend(
            s.failures()
                .iter()
                .map(|c| format!("{}: {}", c.name, c.detail)),
        );
        if let Some(n) = &s.signature_timestamp {
            stack.push(n);
        }
    }
    out
}

#[test]
fn corpus_messages_keep_their_verdicts() {
    let Some(dir) = corpus() else {
        println!("NOTICE: no email corpus (set SIGILLUM_EMAIL_CORPUS); test skipped");
        return;
    };
    let mut wrong = Vec::new();
    for (file, verified, reason) in EXPECTED {
        let path = dir.join(file);
        let folder = path.parent().expect("folder");
        let mut trust = Vec::new();
        for entry in std::fs::read_dir(folder).expect("folder") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|e| e == "pem") {
                trust.extend(pki::cert::load_certificates(&read_file(&p)).expect("pem"));
            }
        }
        if trust.is_empty() {
            // The KDE mbox comes without its CA; any anchor will do for its verdict.
            trust.extend(
                pki::cert::load_certificates(&read_file(&dir.join("thunderbird-2026/TestCA.pem")))
                    .expect("pem"),
            );
        }
        let opts = EmailVerifyOptions {
            trust,
            // The corpus certificates have expired by now: check them when the signers say
            // they signed (Thunderbird 2019 writes no signingTime: a time inside its CA's life).
            check_time: if file.starts_with("thunderbird-2019") {
                CheckTime::At(1_577_836_800)
            } else {
                CheckTime::Claimed
            },
            ..EmailVerifyOptions::default()
        };
        let report = verify_message(file, &read_file(&path), &opts);
        let why = reasons(&report);
        let ok =
            report.verified == *verified && (*verified || why.iter().any(|l| l.contains(reason)));
        if !ok {
            wrong.push(format!(
                "{file}: verified {} (expected {verified}, reason {reason:?}); {why:#?}",
                report.verified
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
