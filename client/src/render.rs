//! Human-readable rendering of reports and tokens.

use pki::report::{Outcome, Report, SignatureReport};
use pki::token::ParsedToken;
use std::fmt::Write;

/// A report for a terminal: the verdict first, then the facts, then every check.
pub fn report(r: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let verdict = if r.verified {
        "VERIFIED"
    } else {
        "NOT VERIFIED"
    };
    let _ = writeln!(out, "{}: {verdict}", r.source);
    for e in &r.errors {
        let _ = writeln!(out, "  error      {e}");
    }
    for s in &r.signatures {
        signature(&mut out, s, verbose || !r.verified);
    }
    out
}

fn signature(out: &mut String, s: &SignatureReport, all_checks: bool) {
    if !s.verified {
        let reasons: Vec<String> = s.failures().iter().map(|c| c.detail.clone()).collect();
        let _ = writeln!(out, "  reason     {}", reasons.join("; "));
    }
    if let Some(t) = &s.timestamp {
        let acc = t
            .accuracy
            .as_ref()
            .map(|a| format!(" (accuracy {a})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  genTime    {}{acc}", t.gen_time);
        let dec = t
            .serial
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  serial     0x{}{dec}", t.serial_hex);
        let _ = writeln!(out, "  policy     {}", t.policy);
        let _ = writeln!(out, "  imprint    {} {}", t.hash_algorithm, t.imprint);
        if let Some(n) = &t.nonce {
            let _ = writeln!(out, "  nonce      0x{n}");
        }
        if let Some(name) = &t.tsa_name {
            let _ = writeln!(out, "  TSA name   {name}");
        }
    }
    if let Some(a) = &s.signature_algorithm {
        let _ = writeln!(out, "  signature  {a}");
    }
    if let Some(signer) = &s.signer {
        let _ = writeln!(out, "  signer     {}", signer.subject);
        let _ = writeln!(
            out,
            "             serial 0x{}, valid {} to {}",
            signer.serial, signer.not_before, signer.not_after
        );
    }
    for (i, c) in s.chain.iter().enumerate() {
        let label = if i == 0 {
            "  chain     "
        } else {
            "            "
        };
        let role = if i + 1 == s.chain.len() {
            " (trust anchor)"
        } else {
            ""
        };
        let _ = writeln!(out, "{label} {}{role}", c.subject);
    }
    if all_checks {
        let _ = writeln!(out, "  checks");
        for c in &s.checks {
            let mark = match c.outcome {
                Outcome::Passed => "ok  ",
                Outcome::Failed => "FAIL",
                Outcome::Warning => "warn",
                Outcome::NotChecked => "skip",
            };
            let _ = writeln!(out, "    [{mark}] {:<20} {}", c.name, c.detail);
        }
    } else {
        let warnings: Vec<&str> = s
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warning)
            .map(|c| c.detail.as_str())
            .collect();
        for w in warnings {
            let _ = writeln!(out, "  warning    {w}");
        }
        let _ = writeln!(out, "  checks     {} passed", s.checks.len());
    }
}

/// A token's contents, field by field (`stamp inspect`).
pub fn token(t: &ParsedToken) -> String {
    let mut out = String::new();
    let info = t.info();
    let tst = &t.tst_info;
    let _ = writeln!(
        out,
        "TimeStampToken (SignedData, eContentType id-ct-TSTInfo)"
    );
    let _ = writeln!(out, "  TSTInfo");
    let _ = writeln!(out, "    version        1");
    let _ = writeln!(out, "    policy         {}", info.policy);
    let _ = writeln!(
        out,
        "    messageImprint {} {}",
        info.hash_algorithm, info.imprint
    );
    let dec = info
        .serial
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let _ = writeln!(out, "    serialNumber   0x{}{dec}", info.serial_hex);
    let _ = writeln!(out, "    genTime        {}", info.gen_time);
    let _ = writeln!(
        out,
        "    accuracy       {}",
        info.accuracy.as_deref().unwrap_or("(absent)")
    );
    let _ = writeln!(out, "    ordering       {}", tst.ordering);
    let _ = writeln!(
        out,
        "    nonce          {}",
        info.nonce
            .map(|n| format!("0x{n}"))
            .unwrap_or_else(|| "(absent)".into())
    );
    let _ = writeln!(
        out,
        "    tsa            {}",
        info.tsa_name.as_deref().unwrap_or("(absent)")
    );
    match &tst.extensions {
        Some(exts) if !exts.is_empty() => {
            for e in exts {
                let _ = writeln!(
                    out,
                    "    extension      {}{}",
                    alg_name(&e.extn_id),
                    if e.critical { " (critical)" } else { "" }
                );
            }
        }
        _ => {
            let _ = writeln!(out, "    extensions     (none)");
        }
    }
    let si = &t.signer_info;
    let _ = writeln!(out, "  SignerInfo");
    let sid = match &si.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(ias) => {
            format!(
                "issuer {}, serial 0x{}",
                ias.issuer,
                hex::encode(ias.serial_number.as_bytes())
            )
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("subjectKeyIdentifier {}", hex::encode(ski.0.as_bytes()))
        }
    };
    let _ = writeln!(out, "    sid            {sid}");
    let _ = writeln!(out, "    digest         {}", alg_name(&si.digest_alg.oid));
    let _ = writeln!(
        out,
        "    signature alg  {}",
        alg_name(&si.signature_algorithm.oid)
    );
    let _ = writeln!(
        out,
        "    signature      {} bytes",
        si.signature.as_bytes().len()
    );
    if let Some(attrs) = &si.signed_attrs {
        for a in attrs.iter() {
            let _ = writeln!(out, "    signed attr    {}", alg_name(&a.oid));
        }
    }
    if let Some(attrs) = &si.unsigned_attrs {
        for a in attrs.iter() {
            let _ = writeln!(out, "    unsigned attr  {}", alg_name(&a.oid));
        }
    }
    let _ = writeln!(out, "  Certificates     {}", t.certificates.len());
    for c in &t.certificates {
        match pki::cert::summary(c) {
            Ok(s) => {
                let _ = writeln!(out, "    - subject      {}", s.subject);
                let _ = writeln!(out, "      issuer       {}", s.issuer);
                let _ = writeln!(out, "      serial       0x{}", s.serial);
                let _ = writeln!(
                    out,
                    "      validity     {} to {}",
                    s.not_before, s.not_after
                );
                let _ = writeln!(out, "      sha256       {}", s.sha256);
            }
            Err(e) => {
                let _ = writeln!(out, "    - unreadable certificate: {e}");
            }
        }
    }
    out
}

/// A name for an OID this project knows, or the dotted form.
pub fn alg_name(oid: &der::asn1::ObjectIdentifier) -> String {
    use pki::oid as o;
    let known: &[(der::asn1::ObjectIdentifier, &str)] = &[
        (o::ID_SHA1, "sha1"),
        (o::ID_SHA256, "sha256"),
        (o::ID_SHA384, "sha384"),
        (o::ID_SHA512, "sha512"),
        (o::ECDSA_WITH_SHA256, "ecdsa-with-SHA256"),
        (o::ECDSA_WITH_SHA384, "ecdsa-with-SHA384"),
        (o::ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
        (o::RSA_ENCRYPTION, "rsaEncryption"),
        (o::SHA1_WITH_RSA, "sha1WithRSAEncryption"),
        (o::SHA256_WITH_RSA, "sha256WithRSAEncryption"),
        (o::SHA384_WITH_RSA, "sha384WithRSAEncryption"),
        (o::SHA512_WITH_RSA, "sha512WithRSAEncryption"),
        (o::RSASSA_PSS, "RSASSA-PSS"),
        (o::ID_ED25519, "Ed25519"),
        (o::ID_CONTENT_TYPE, "contentType"),
        (o::ID_MESSAGE_DIGEST, "messageDigest"),
        (o::ID_SIGNING_TIME, "signingTime"),
        (
            o::ID_AA_SIGNING_CERTIFICATE,
            "signingCertificate (ESSCertID)",
        ),
        (
            o::ID_AA_SIGNING_CERTIFICATE_V2,
            "signingCertificateV2 (ESSCertIDv2)",
        ),
        (
            o::ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
            "signatureTimeStampToken",
        ),
    ];
    known
        .iter()
        .find(|(k, _)| k == oid)
        .map(|(_, n)| format!("{n} ({oid})"))
        .unwrap_or_else(|| oid.to_string())
}
