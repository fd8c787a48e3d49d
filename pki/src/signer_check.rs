//! The one SignerInfo verifier (RFC 5652 §5.4, §5.6, §11; RFC 5035; RFC 2634), shared by every
//! kind of signature Sigillum verifies: timestamp tokens now, S/MIME emails and PDF signatures
//! on the same function, so that no check exists twice.
//!
//! [`check_signer`] records, in this order, the checks every CMS signature with signed
//! attributes shares:
//!
//! * `signed-attributes`: the attribute SET reads as raw TLVs (it is hashed exactly as
//!   received, never re-encoded);
//! * `content-type`: the contentType attribute, once, with one value, names the content type the
//!   caller expects (id-ct-TSTInfo for a token, id-data for an email or a PDF);
//! * `message-digest`: the messageDigest attribute, once, with one value, equals the digest of
//!   the content as received (the caller computes it: eContent octets, a MIME part, a PDF byte
//!   range), with the SignerInfo's digestAlgorithm;
//! * `signer-certificate`: a certificate at hand is the one the SignerInfo's sid names and,
//!   among several so named, the one the ESSCertID(v2) hash names ([`crate::path`]);
//! * `signing-certificate`: ESSCertIDv2 or ESSCertID names that certificate (required for
//!   tokens, RFC 3161 §2.4.1, and CAdES; checked when present otherwise);
//! * `signature`: the signature over the signed-attribute bytes as received verifies under the
//!   certificate's key ([`crate::verify::verify_signature`]).
//!
//! What is particular to a kind (a TSA certificate's rules, the path with its extended key
//! usage, an imprint, a From address) is the caller's, on the certificate this returns.

mod ess;

pub use ess::{AttributeError, EssCertRef};

use crate::digest::HashAlg;
use crate::error::error_text;
use crate::oid::{self, HashStrength};
use crate::path::{dedup_parse, select_signer};
use crate::raw::RawTlv;
use crate::report::SignatureReport;
use crate::signer_info::{RawAttribute, SignerInfoView, attributes};
use crate::verify::verify_signature;
use der::asn1::{ObjectIdentifier, OctetString};
use std::sync::Arc;
use x509_cert::Certificate;

/// How the report names what was signed.
#[derive(Clone, Copy, Debug)]
pub struct SignedKind {
    /// The content type expected in the contentType attribute.
    pub content_type: ObjectIdentifier,
    /// Its name for the report (`id-ct-TSTInfo`).
    pub content_type_name: &'static str,
    /// The content, for the messageDigest sentence (`the TSTInfo`, `the signed MIME part`).
    pub content: &'static str,
    /// The whole, for the tampering sentence (`the token`, `the message`).
    pub whole: &'static str,
    /// What holds the certificates, for the hint when none is found (`the token`).
    pub holder: &'static str,
    /// The signer's certificate, for that hint (`the TSA certificate`).
    pub signer: &'static str,
}

/// What one SignerInfo is checked against.
pub struct SignerInput<'a> {
    /// The SignerInfo, read raw.
    pub signer_info: &'a SignerInfoView,
    /// What was signed.
    pub kind: SignedKind,
    /// The content's digest with the given algorithm, over the bytes exactly as received
    /// (`None`: this algorithm cannot be computed here).
    pub content_digest: &'a dyn Fn(HashAlg) -> Option<Vec<u8>>,
    /// Every certificate at hand, untrusted: the SignedData's bag first, then the caller's.
    pub certificates: &'a [&'a [u8]],
    /// Whether the SignedData carried certificates itself (for the hint when none matches).
    pub carries_certificates: bool,
    /// Whether signingCertificate(V2) must be present (RFC 3161 tokens, CAdES).
    pub require_signing_certificate: bool,
}

/// The signer's certificate, as found by [`check_signer`].
#[derive(Clone, Debug)]
pub struct SignerFound<'a> {
    /// Its DER, as at hand.
    pub der: &'a [u8],
    /// Decoded (shared: see [`crate::cert::parse_shared`]).
    pub cert: Arc<Certificate>,
}

/// Runs the checks every CMS signature shares (see the module docs) and records them in `r`.
/// Returns the signer's certificate when one was found, whatever the other checks said (the
/// caller goes on with its own checks and calls [`SignatureReport::finish`]); `None` when no
/// certificate could be found or decoded, in which case nothing else can be checked.
pub fn check_signer<'a>(
    input: &SignerInput<'a>,
    r: &mut SignatureReport,
) -> Option<SignerFound<'a>> {
    let si = input.signer_info;
    let kind = &input.kind;
    let Some(signed_attrs_der) = si.signed_attrs_der.as_deref() else {
        r.fail(
            "signed-attributes",
            "the SignerInfo has no signed attributes",
        );
        return None;
    };
    let attrs = match attributes(signed_attrs_der) {
        Ok(a) => a,
        Err(e) => {
            r.fail(
                "signed-attributes",
                format!("signed attributes are malformed: {}", error_text(&e)),
            );
            return None;
        }
    };

    // contentType (RFC 5652 §11.1) must name the content type, once, with one value.
    match single(&attrs, oid::ID_CONTENT_TYPE, "contentType") {
        Ok(Some(v)) => match v.decode::<ObjectIdentifier>("contentType") {
            Ok(ct) if ct == kind.content_type => r.pass(
                "content-type",
                format!("contentType attribute is {}", kind.content_type_name),
            ),
            Ok(ct) => r.fail(
                "content-type",
                format!(
                    "contentType attribute is {ct}, not {}",
                    kind.content_type_name
                ),
            ),
            Err(_) => r.fail("content-type", "contentType attribute is malformed"),
        },
        Ok(None) => r.fail("content-type", "contentType attribute missing"),
        Err(e) => r.fail("content-type", error_text(&e)),
    }

    // messageDigest (RFC 5652 §11.2) over the content as received.
    let digest_oid = si.digest_algorithm.oid;
    let digest_alg = HashAlg::from_oid(&digest_oid);
    match (
        digest_alg,
        single(&attrs, oid::ID_MESSAGE_DIGEST, "messageDigest"),
    ) {
        (None, _) if oid::hash_strength(&digest_oid) == HashStrength::Broken => r.fail(
            "message-digest",
            "the SignerInfo digest algorithm is MD5: broken, never accepted",
        ),
        (None, _) => r.fail(
            "message-digest",
            format!("unsupported digest algorithm {digest_oid}"),
        ),
        (Some(_), Err(e)) => r.fail("message-digest", error_text(&e)),
        (Some(_), Ok(None)) => r.fail("message-digest", "messageDigest attribute missing"),
        (Some(h), Ok(Some(v))) => match (
            v.decode::<OctetString>("messageDigest"),
            (input.content_digest)(h),
        ) {
            (Err(_), _) => r.fail("message-digest", "messageDigest attribute is malformed"),
            (Ok(_), None) => r.fail(
                "message-digest",
                format!("cannot compute the {h} digest of {}", kind.content),
            ),
            (Ok(md), Some(d)) if d == md.as_bytes() => r.pass(
                "message-digest",
                format!("messageDigest matches {} ({h})", kind.content),
            ),
            (Ok(_), Some(_)) => r.fail(
                "message-digest",
                format!(
                    "messageDigest does not match {}: {} was altered",
                    kind.content, kind.whole
                ),
            ),
        },
    }

    // signingCertificateV2 or signingCertificate: read before choosing the signer, whose
    // certificate hash it names.
    let ess = signing_certificate(&attrs);

    // The signer's certificate: named by sid and, among several so named, by the ESSCertID hash.
    let pool = dedup_parse(input.certificates.iter().copied());
    let ess_hash = match &ess {
        Ok(Some(e)) => e.hash.ok().map(|h| (h, e.cert_hash.as_slice())),
        _ => None,
    };
    let Some(signer_raw) = select_signer(&pool, &si.sid, ess_hash) else {
        let hint = if input.carries_certificates {
            format!(
                "no certificate in {} or --certs matches the SignerInfo",
                kind.holder
            )
        } else {
            format!(
                "{} carries no certificates: pass {} with --certs FILE",
                kind.holder, kind.signer
            )
        };
        r.fail("signer-certificate", hint);
        return None;
    };
    let signer_der = signer_raw.der;
    let signer_cert = match crate::cert::parse_shared(signer_der) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                "signer-certificate",
                format!("the signer's certificate is malformed: {}", error_text(&e)),
            );
            return None;
        }
    };
    r.signer = crate::cert::summary(signer_der).ok();
    r.pass(
        "signer-certificate",
        "found the certificate named by the SignerInfo",
    );

    match ess {
        Ok(Some(e)) => match e.check(signer_der, &signer_cert) {
            (true, d) => r.pass("signing-certificate", d),
            (false, d) => r.fail("signing-certificate", d),
        },
        Ok(None) if input.require_signing_certificate => r.fail(
            "signing-certificate",
            "neither signingCertificate nor signingCertificateV2 is among the signed attributes",
        ),
        Ok(None) => {}
        Err(e) => r.fail("signing-certificate", error_text(&e)),
    }

    // The signature over the signed attributes exactly as received.
    match digest_alg {
        Some(h) => match verify_signature(
            &signer_cert.tbs_certificate.subject_public_key_info,
            &si.signature_algorithm,
            h,
            signed_attrs_der,
            &si.signature,
        ) {
            Ok(name) => {
                r.signature_algorithm = Some(name.clone());
                r.pass(
                    "signature",
                    format!("{name} signature over the signed attributes verifies"),
                );
            }
            Err(e) => r.fail("signature", e),
        },
        None => r.fail("signature", "unsupported digest algorithm"),
    }
    Some(SignerFound {
        der: signer_der,
        cert: signer_cert,
    })
}

/// The `hash-algorithm` check every verifier records over the algorithms a signature uses
/// (`(OID, where)` pairs: the imprint, digestAlgorithm, signatureAlgorithm): MD5 anywhere
/// fails, SHA-1 is a warning with the word "weak" (a failure with `strict`), as
/// [`oid::hash_strength`] rates them. Returns whether every algorithm is sound (the caller
/// then records its own pass sentence).
pub fn check_hash_algorithms(
    r: &mut SignatureReport,
    uses: &[(ObjectIdentifier, &str)],
    strict: bool,
) -> bool {
    let of = |s: HashStrength| -> Vec<&str> {
        uses.iter()
            .filter(|(o, _)| oid::hash_strength(o) == s)
            .map(|(_, w)| *w)
            .collect()
    };
    let (broken, weak) = (of(HashStrength::Broken), of(HashStrength::Weak));
    if !broken.is_empty() {
        r.fail(
            "hash-algorithm",
            format!("MD5 in {}: broken, never accepted", broken.join(", ")),
        );
    } else if !weak.is_empty() {
        let detail = format!(
            "SHA-1 in {}: weak, no longer safe against collisions",
            weak.join(", ")
        );
        if strict {
            r.fail("hash-algorithm", format!("{detail} (--strict)"));
        } else {
            r.check("hash-algorithm", crate::report::Outcome::Warning, detail);
        }
    }
    broken.is_empty() && weak.is_empty()
}

/// The one value of the attribute `id`: `Ok(None)` when absent, `Err` when it occurs more than
/// once or does not hold exactly one value (RFC 5652 §11.1, §11.2; RFC 5035 §3).
fn single<'a>(
    attrs: &[RawAttribute<'a>],
    id: ObjectIdentifier,
    name: &'static str,
) -> Result<Option<RawTlv<'a>>, AttributeError> {
    let mut found = attrs.iter().filter(|a| a.oid == id);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    let more = found.count();
    if more > 0 {
        return Err(AttributeError::Repeated {
            name,
            count: more + 1,
        });
    }
    match first.values.as_slice() {
        [v] => Ok(Some(*v)),
        vs => Err(AttributeError::Values {
            name,
            count: vs.len(),
        }),
    }
}

fn signing_certificate(attrs: &[RawAttribute<'_>]) -> Result<Option<EssCertRef>, AttributeError> {
    let v2 = single(
        attrs,
        oid::ID_AA_SIGNING_CERTIFICATE_V2,
        "signingCertificateV2",
    )?;
    let v1 = single(attrs, oid::ID_AA_SIGNING_CERTIFICATE, "signingCertificate")?;
    match (v2, v1) {
        (Some(v), _) => EssCertRef::decode(&v, true).map(Some),
        (None, Some(v)) => EssCertRef::decode(&v, false).map(Some),
        (None, None) => Ok(None),
    }
}
