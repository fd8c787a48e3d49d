//! Tokens from real authorities (the shared corpus outside the repository, never copied in):
//! each must parse and keep the verdict it had before the hardening, check by check. The only
//! change is the `structure` warning on GitHub's staging tokens (SignedData version 1 around
//! id-ct-TSTInfo, which RFC 5652 §5.1 says must be 3).
//!
//! The corpus is read from `SIGILLUM_TOKEN_CORPUS`, by default `../shared/corpora/tokens` beside
//! the workspace; when that folder is absent the test prints a notice and passes.

use pki::HashAlg;
use pki::report::Outcome;
use pki::token::{ParsedToken, VerifyOptions, verify};
use sigillum_tests::{read_file, workspace_root};
use std::path::PathBuf;

/// (folder, token, data, verified, checks not passed as "name:outcome").
const EXPECTED: &[(&str, &str, &str, bool, &[&str])] = &[
    ("adobe", "adobe.tst", "adobe.sigvalue", true, &[]),
    ("aped-gr", "aped-gr.tst", "aped-gr.sigvalue", true, &[]),
    (
        "baltstamp",
        "baltstamp-frac.tst",
        "baltstamp-frac.sigvalue",
        true,
        &[],
    ),
    (
        "bosa-be",
        "bosa-ecdsa.tst",
        "bosa-ecdsa.sigvalue",
        true,
        &[],
    ),
    (
        "bosa-be",
        "bosa-ecdsa.tst",
        "bosa-ecdsa.tampered",
        false,
        &["imprint:failed"],
    ),
    ("certum", "certum.tst", "certum.sigvalue", true, &[]),
    (
        "digicert",
        "digicert-sha1.tst",
        "signature.bin",
        true,
        &["hash-algorithm:warning"],
    ),
    (
        "digicert",
        "digicert-sha1.tst",
        "signature.tampered",
        false,
        &["hash-algorithm:warning", "imprint:failed"],
    ),
    (
        "e-szigno",
        "eszigno-ecdsa.tst",
        "eszigno-ecdsa.sigvalue",
        true,
        &[],
    ),
    ("entrust", "entrust.tst", "entrust.sigvalue", true, &[]),
    ("freetsa", "freetsa-certs.tsr", "signature-1.bin", true, &[]),
    (
        "freetsa",
        "freetsa-certs.tsr",
        "signature-2.bin",
        false,
        &["imprint:failed"],
    ),
    (
        "freetsa",
        "freetsa-nocert.tsr",
        "signature-1.bin",
        false,
        &["imprint:failed"],
    ),
    (
        "freetsa",
        "freetsa-nocert.tsr",
        "signature-2.bin",
        true,
        &[],
    ),
    (
        "github-staging",
        "github-staging-leaf.tsr",
        "ghstg-signature.bin",
        false,
        &["imprint:failed", "structure:warning"],
    ),
    (
        "github-staging",
        "github-staging-leaf.tsr",
        "wts-signature.bin",
        true,
        &["structure:warning"],
    ),
    (
        "github-staging",
        "github-staging-nocert.tsr",
        "ghstg-signature.bin",
        true,
        &["structure:warning"],
    ),
    (
        "github-staging",
        "github-staging-nocert.tsr",
        "wts-signature.bin",
        false,
        &["imprint:failed", "structure:warning"],
    ),
    (
        "globalsign",
        "globalsign.tst",
        "globalsign.sigvalue",
        true,
        &[],
    ),
    ("identrust", "identrust-sha512.tsr", "hello.txt", true, &[]),
    ("quovadis", "quovadis.tst", "quovadis.sigvalue", true, &[]),
    (
        "sectigo",
        "sectigo-qualified.tst",
        "sectigo-qualified.sigvalue",
        true,
        &[],
    ),
    (
        "sectigo",
        "sectigo-qualified.tst",
        "sectigo-qualified.tampered",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "rekor2-timestamp-payload-mismatch_fail.tsr",
        "rekor2-timestamp-payload-mismatch_fail.signature.bin",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "rekor2-timestamp-payload-mismatch_fail.tsr",
        "hello.txt",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "rekor2-timestamp-payload-mismatch_fail.tsr",
        "hello.tampered",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "response-invalid-signature.tsr",
        "rekor2-timestamp-payload-mismatch_fail.signature.bin",
        false,
        &["imprint:failed", "signature:failed"],
    ),
    (
        "sigstage",
        "response-invalid-signature.tsr",
        "hello.txt",
        false,
        &["signature:failed"],
    ),
    (
        "sigstage",
        "response-invalid-signature.tsr",
        "hello.tampered",
        false,
        &["imprint:failed", "signature:failed"],
    ),
    (
        "sigstage",
        "sigstage-nocert.tsr",
        "rekor2-timestamp-payload-mismatch_fail.signature.bin",
        false,
        &["imprint:failed"],
    ),
    ("sigstage", "sigstage-nocert.tsr", "hello.txt", true, &[]),
    (
        "sigstage",
        "sigstage-nocert.tsr",
        "hello.tampered",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "sigstage-sha256.tsr",
        "rekor2-timestamp-payload-mismatch_fail.signature.bin",
        false,
        &["imprint:failed"],
    ),
    ("sigstage", "sigstage-sha256.tsr", "hello.txt", true, &[]),
    (
        "sigstage",
        "sigstage-sha256.tsr",
        "hello.tampered",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "sigstage-sha384.tsr",
        "rekor2-timestamp-payload-mismatch_fail.signature.bin",
        false,
        &["imprint:failed"],
    ),
    ("sigstage", "sigstage-sha384.tsr", "hello.txt", true, &[]),
    (
        "sigstage",
        "sigstage-sha384.tsr",
        "hello.tampered",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstage",
        "sigstage-sha512.tsr",
        "rekor2-timestamp-payload-mismatch_fail.signature.bin",
        false,
        &["imprint:failed"],
    ),
    ("sigstage", "sigstage-sha512.tsr", "hello.txt", true, &[]),
    (
        "sigstage",
        "sigstage-sha512.tsr",
        "hello.tampered",
        false,
        &["imprint:failed"],
    ),
    (
        "sigstore-prod",
        "sigstore-prod.tsr",
        "signature.bin",
        true,
        &[],
    ),
    (
        "sigstore-prod",
        "sigstore-prod.tsr",
        "signature.tampered",
        false,
        &["imprint:failed"],
    ),
    ("sslcom", "sslcom-ecdsa.tst", "signature.bin", true, &[]),
    (
        "universign",
        "universign-frac.tst",
        "universign-frac.sigvalue",
        true,
        &[],
    ),
    (
        "universign",
        "universign-frac.tst",
        "universign-frac.tampered",
        false,
        &["imprint:failed"],
    ),
];

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SIGILLUM_TOKEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpora/tokens"));
    dir.is_dir().then_some(dir)
}

/// Why: the hardening must not change what real authorities' tokens verify to.
#[test]
fn corpus_tokens_keep_their_verdicts() {
    let Some(dir) = corpus() else {
        eprintln!("NOTICE: no token corpus (set SIGILLUM_TOKEN_CORPUS); corpus test skipped");
        return;
    };
    let mut seen = 0;
    for (folder, token, data, verified, not_passed) in EXPECTED {
        let folder = dir.join(folder);
        let mut opts = VerifyOptions {
            trust: pki::cert::load_certificates(&read_file(&folder.join("root.pem")))
                .expect("root"),
            ..Default::default()
        };
        for entry in std::fs::read_dir(&folder).expect("folder") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|e| e == "pem") && !p.ends_with("root.pem") {
                opts.extra_certs
                    .extend(pki::cert::load_certificates(&read_file(&p)).expect("certs"));
            }
        }
        let parsed = ParsedToken::parse(&read_file(&folder.join(token)))
            .unwrap_or_else(|e| panic!("{token}: {}", pki::error::error_text(&e)));
        let digest = parsed
            .hash_alg()
            .map(|h: HashAlg| h.digest(&read_file(&folder.join(data))));
        let r = verify(&parsed, digest.as_deref(), &opts);
        let mut got: Vec<String> = r
            .checks
            .iter()
            .filter(|c| c.outcome != Outcome::Passed)
            .map(|c| {
                let o = match c.outcome {
                    Outcome::Failed => "failed",
                    Outcome::Warning => "warning",
                    Outcome::NotChecked => "not-checked",
                    Outcome::Passed => "passed",
                };
                format!("{}:{o}", c.name)
            })
            .collect();
        got.sort();
        assert_eq!(
            (
                r.verified,
                got.iter().map(String::as_str).collect::<Vec<_>>()
            ),
            (*verified, not_passed.to_vec()),
            "{token} with {data}: {:#?}",
            r.checks
        );
        seen += 1;
    }
    assert_eq!(seen, EXPECTED.len());
}
