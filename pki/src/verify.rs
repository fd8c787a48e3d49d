//! Signature and certificate-path checks shared by every verifier (tokens now; emails and PDFs
//! on the same functions).
//!
//! Signatures are verified with ring; certificate paths are built and checked by rustls-webpki
//! at a caller-given time (the genTime a token proves), with a required extended key usage.
//! No CMS verification exists on this `der` line, so the CMS checks themselves live in
//! [`crate::token`] and the future email/PDF modules, on top of these.

use crate::cert_raw::RawCert;
use crate::digest::{HashAlg, params_absent_or_null};
use crate::oid;
use crate::signer::RsaPssParams;
use der::Decode;
use der::asn1::ObjectIdentifier;
use ring::signature as sig;
use rustls_pki_types::{CertificateDer, UnixTime};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use webpki::{EndEntityCert, KeyUsage};

/// Identifies the signature algorithm named by a SignerInfo for the signer's key, and verifies
/// `signature` over `message` with it. On success returns a short algorithm name for reports.
///
/// Both forms signers use are accepted: a combined OID (ecdsa-with-SHA256,
/// sha256WithRSAEncryption, ...) and a bare key OID (rsaEncryption, as openssl writes in
/// SignerInfo) with the hash taken from `digest_alg`.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    signature_algorithm: &AlgorithmIdentifierOwned,
    digest_alg: HashAlg,
    message: &[u8],
    signature: &[u8],
) -> Result<String, String> {
    let (alg, name) = ring_algorithm(spki, signature_algorithm, digest_alg)?;
    let key = sig::UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes());
    // ring's Unspecified error says nothing more; a short RSA key is the one cause worth naming.
    key.verify(message, signature)
        .map_err(|_| match rsa_modulus_bits(spki) {
            Some(bits) if bits < 2048 => format!(
                "the signer's RSA key has {bits} bits: fewer than 2048 are too weak and not \
                 accepted"
            ),
            _ => format!("the {name} signature does not verify"),
        })?;
    Ok(name)
}

/// The modulus size of an RSA public key, in bits.
fn rsa_modulus_bits(spki: &SubjectPublicKeyInfoOwned) -> Option<usize> {
    if spki.algorithm.oid != oid::RSA_ENCRYPTION {
        return None;
    }
    let key =
        crate::raw::RawTlv::parse(spki.subject_public_key.raw_bytes(), "RSAPublicKey").ok()?;
    let n = key.children("RSAPublicKey").ok()?.into_iter().next()?;
    let digits = n.value.iter().skip_while(|b| **b == 0).count();
    let top = n.value.iter().find(|b| **b != 0)?;
    Some(digits * 8 - top.leading_zeros() as usize)
}

fn ring_algorithm(
    spki: &SubjectPublicKeyInfoOwned,
    sig_alg: &AlgorithmIdentifierOwned,
    digest_alg: HashAlg,
) -> Result<(&'static dyn sig::VerificationAlgorithm, String), String> {
    let key_oid = spki.algorithm.oid;
    let s = sig_alg.oid;
    if key_oid == oid::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or("EC key without a named curve")?;
        if s == oid::ECDSA_WITH_SHA1 {
            return Err(
                "ecdsa-with-SHA1: weak (SHA-1) and unsupported (ring cannot verify ECDSA with SHA-1)"
                    .into(),
            );
        }
        let hash = if s == oid::ECDSA_WITH_SHA256 {
            HashAlg::Sha256
        } else if s == oid::ECDSA_WITH_SHA384 {
            HashAlg::Sha384
        } else if s == oid::ID_EC_PUBLIC_KEY {
            digest_alg
        } else {
            return Err(format!(
                "signature algorithm {s} is not supported for EC keys"
            ));
        };
        let alg: &'static dyn sig::VerificationAlgorithm = match (curve, hash) {
            (c, HashAlg::Sha256) if c == oid::SECP256R1 => &sig::ECDSA_P256_SHA256_ASN1,
            (c, HashAlg::Sha384) if c == oid::SECP256R1 => &sig::ECDSA_P256_SHA384_ASN1,
            (c, HashAlg::Sha256) if c == oid::SECP384R1 => &sig::ECDSA_P384_SHA256_ASN1,
            (c, HashAlg::Sha384) if c == oid::SECP384R1 => &sig::ECDSA_P384_SHA384_ASN1,
            _ => {
                return Err(format!(
                    "ECDSA on curve {curve} with {hash} is not supported"
                ));
            }
        };
        let curve_name = if curve == oid::SECP256R1 {
            "p256"
        } else {
            "p384"
        };
        return Ok((alg, format!("ecdsa-{curve_name}-{hash}")));
    }
    if key_oid == oid::RSA_ENCRYPTION {
        if s == oid::RSASSA_PSS {
            let params = sig_alg
                .parameters
                .as_ref()
                .ok_or("RSASSA-PSS without parameters")?
                .decode_as::<RsaPssParams>()
                .map_err(|e| format!("malformed RSASSA-PSS parameters: {e}"))?;
            let hash = params
                .hash_algorithm
                .as_ref()
                .and_then(|h| HashAlg::from_oid(&h.oid))
                .ok_or("RSASSA-PSS with SHA-1 or an unknown hash is not supported")?;
            let mgf_ok = params.mask_gen_algorithm.as_ref().is_some_and(|m| {
                m.oid == oid::ID_MGF1
                    && m.parameters
                        .as_ref()
                        .and_then(|p| p.decode_as::<AlgorithmIdentifierOwned>().ok())
                        .is_some_and(|h| h.oid == hash.oid())
            });
            if !mgf_ok
                || params.salt_length.map(|l| l as usize) != Some(hash.len())
                || params.trailer_field.unwrap_or(1) != 1
            {
                return Err("RSASSA-PSS supported only with MGF1 over the same hash and a salt as long as the hash".into());
            }
            let alg: &'static dyn sig::VerificationAlgorithm = match hash {
                HashAlg::Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
                HashAlg::Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
                HashAlg::Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
                HashAlg::Sha1 => return Err("RSASSA-PSS with SHA-1 is not supported".into()),
            };
            return Ok((alg, format!("rsa-pss-{hash}")));
        }
        if s == oid::MD5_WITH_RSA {
            return Err("md5WithRSAEncryption: MD5 is broken, never accepted".into());
        }
        let hash = if s == oid::SHA256_WITH_RSA {
            HashAlg::Sha256
        } else if s == oid::SHA384_WITH_RSA {
            HashAlg::Sha384
        } else if s == oid::SHA512_WITH_RSA {
            HashAlg::Sha512
        } else if s == oid::SHA1_WITH_RSA {
            HashAlg::Sha1
        } else if s == oid::RSA_ENCRYPTION {
            digest_alg
        } else {
            return Err(format!(
                "signature algorithm {s} is not supported for RSA keys"
            ));
        };
        if !params_absent_or_null(sig_alg.parameters.as_ref()) {
            return Err("RSA PKCS#1 v1.5 signature algorithm with unexpected parameters".into());
        }
        let alg: &'static dyn sig::VerificationAlgorithm = match hash {
            HashAlg::Sha1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            HashAlg::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            HashAlg::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        };
        return Ok((alg, format!("rsa-pkcs1-{hash}")));
    }
    if key_oid == oid::ID_ED25519 {
        if s != oid::ID_ED25519 {
            return Err(format!(
                "signature algorithm {s} does not fit an Ed25519 key"
            ));
        }
        return Ok((&sig::ED25519, "ed25519".into()));
    }
    Err(format!("public key algorithm {key_oid} is not supported"))
}

/// Signature algorithms accepted in certificate paths.
pub(crate) static PATH_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_3072_8192_SHA384,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::ring::ED25519,
];

/// The `certificate-path` check every verifier records (tokens at genTime, emails and PDFs at
/// the proven time or another): validates the path at `at_unix` and records the chain. `ekus`
/// are the extended key usages the path may allow, tried in order (a PDF signer's certificate
/// may carry documentSigning, emailProtection or Adobe's); `when` says which moment, in the
/// report's words (`at genTime ...`).
pub fn check_path(
    r: &mut crate::report::SignatureReport,
    end_entity: &[u8],
    bag: &[&[u8]],
    anchors: &[Vec<u8>],
    at_unix: i64,
    ekus: &[(&'static [u8], &'static str)],
    when: &str,
) {
    const NAME: &str = "certificate-path";
    let Ok(at) = u64::try_from(at_unix) else {
        r.fail(NAME, format!("cannot check {when}: before 1970"));
        return;
    };
    let mut first_error = None;
    for (eku, _) in ekus {
        match validate_path(end_entity, bag, anchors, at, eku) {
            Ok(path) => {
                r.chain = path
                    .iter()
                    .filter_map(|c| crate::cert::summary(c).ok())
                    .collect();
                r.pass(NAME, format!("chains to a trusted anchor {when}"));
                return;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let e = first_error.unwrap_or_else(|| "no extended key usage to check".into());
    let names: Vec<&str> = ekus.iter().map(|(_, n)| *n).collect();
    if ekus.len() > 1 {
        r.fail(
            NAME,
            format!(
                "{e} ({when}; extended key usages accepted: {})",
                names.join(", ")
            ),
        );
    } else {
        r.fail(NAME, format!("{e} ({when})"));
    }
}

/// Validates the path from `end_entity` to one of `anchors` at `at_unix` seconds, and returns the
/// path's certificates (end entity first, anchor last).
///
/// `bag` is every certificate at hand (untrusted: a token's bag, `--certs`); only those that
/// [`crate::path::path_candidates`] finds above the end entity are offered to rustls-webpki,
/// so that thousands of look-alikes cannot exhaust its signature budget.
///
/// `eku` (DER value bytes of the OID) must be allowed by every certificate in the path that
/// carries an extendedKeyUsage. webpki's `required` would also demand it of intermediates that
/// carry none, which many timestamping CAs do not; that the end entity has it, and critical, is
/// the caller's separate check (RFC 3161 §2.3, [`crate::cert::tsa_certificate_problems`]).
///
/// The anchor's own constraints are honoured as openssl honours them ([`anchor_problem`]):
/// webpki applies an anchor's name constraints (dNSName, iPAddress; it refuses paths under
/// directoryName and URI constraints, failing closed) but not its validity, basicConstraints
/// pathLenConstraint or keyUsage. An anchor that fails one of those is set aside and the path
/// built again without it.
///
/// An end-entity certificate that is itself one of the anchors is accepted as directly trusted
/// (its validity period is still checked).
pub fn validate_path(
    end_entity: &[u8],
    bag: &[&[u8]],
    anchors: &[Vec<u8>],
    at_unix: u64,
    eku: &'static [u8],
) -> Result<Vec<Vec<u8>>, String> {
    if anchors.is_empty() {
        return Err("no trust anchor given (use --trust FILE)".into());
    }
    if anchors.iter().any(|a| a.as_slice() == end_entity) {
        let cert = crate::cert::parse(end_entity)
            .map_err(|e| format!("malformed certificate: {}", crate::error::error_text(&e)))?;
        return if crate::cert::valid_at(&cert, at_unix) {
            Ok(vec![end_entity.to_vec()])
        } else {
            Err("the directly trusted certificate was not valid at that time".into())
        };
    }
    let key = path_cache::key(end_entity, bag, anchors, eku);
    if let Some(path) = path_cache::get(&key, at_unix) {
        return Ok(path);
    }
    let path = build_path(end_entity, bag, anchors, at_unix, eku)?;
    path_cache::put(key, &path);
    Ok(path)
}

/// Paths validated in this process, so that verifying many tokens of one authority (or many
/// emails of one sender) validates each distinct path once (`stamp verify` of thousands of
/// files, `--archive`, an auditor's bulk run).
///
/// A cached path is reused only for the same end entity, bag, anchors and extended key usage,
/// byte for byte, and only at a validation time within the validity period of every
/// certificate on it, anchor included: that is the only input of [`validate_path`] that varies
/// with time (signatures, name and basic constraints, key usages and the anchor's constraints do
/// not), so a path valid once is valid at any such time. Failures are not cached: they are
/// built again, with their own error text. The cache is bounded ([`path_cache::ENTRIES`]) and
/// starts afresh when full.
mod path_cache {
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Most paths kept.
    pub(super) const ENTRIES: usize = 4096;

    struct Cached {
        path: Vec<Vec<u8>>,
        not_before: u64,
        not_after: u64,
    }

    static CACHE: Mutex<Option<HashMap<[u8; 32], Cached>>> = Mutex::new(None);

    /// SHA-256 over every input but the time, each length-prefixed.
    pub(super) fn key(
        end_entity: &[u8],
        bag: &[&[u8]],
        anchors: &[Vec<u8>],
        eku: &[u8],
    ) -> [u8; 32] {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        let mut add = |part: &[u8]| {
            h.update(&(part.len() as u64).to_be_bytes());
            h.update(part);
        };
        add(end_entity);
        add(eku);
        add(&(bag.len() as u64).to_be_bytes());
        for c in bag {
            add(c);
        }
        add(&(anchors.len() as u64).to_be_bytes());
        for a in anchors {
            add(a);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(h.finish().as_ref());
        out
    }

    pub(super) fn get(key: &[u8; 32], at_unix: u64) -> Option<Vec<Vec<u8>>> {
        let cache = CACHE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hit = cache.as_ref()?.get(key)?;
        (hit.not_before <= at_unix && at_unix <= hit.not_after).then(|| hit.path.clone())
    }

    pub(super) fn put(key: [u8; 32], path: &[Vec<u8>]) {
        let mut window = (0u64, u64::MAX);
        for der in path {
            let Ok(cert) = crate::cert::parse(der) else {
                return;
            };
            let v = &cert.tbs_certificate.validity;
            window.0 = window.0.max(v.not_before.to_unix_duration().as_secs());
            window.1 = window.1.min(v.not_after.to_unix_duration().as_secs());
        }
        let mut cache = CACHE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = cache.get_or_insert_with(HashMap::new);
        if map.len() >= ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Cached {
                path: path.to_vec(),
                not_before: window.0,
                not_after: window.1,
            },
        );
    }
}

/// [`validate_path`] without the cache.
fn build_path(
    end_entity: &[u8],
    bag: &[&[u8]],
    anchors: &[Vec<u8>],
    at_unix: u64,
    eku: &'static [u8],
) -> Result<Vec<Vec<u8>>, String> {
    let ee_raw = RawCert::parse(end_entity)
        .map_err(|e| format!("malformed certificate: {}", crate::error::error_text(&e)))?;
    let anchor_raw: Vec<RawCert<'_>> = anchors
        .iter()
        .filter_map(|a| RawCert::parse(a).ok())
        .collect();
    let pool = crate::path::dedup_parse(bag.iter().copied());
    let candidates = crate::path::path_candidates(&ee_raw, &pool, &anchor_raw);
    let mut usable: Vec<&Vec<u8>> = anchors.iter().collect();
    let mut first_problem = None;
    while !usable.is_empty() {
        let path = webpki_path(end_entity, &candidates, &usable, at_unix, eku)?;
        let anchor = path.last().cloned().unwrap_or_default();
        match anchor_problem(&anchor, &path, at_unix) {
            None => return Ok(path),
            Some(p) => {
                first_problem.get_or_insert(p);
                let before = usable.len();
                usable.retain(|a| a.as_slice() != anchor.as_slice());
                if usable.len() == before {
                    // Cannot happen (the path ends in one of `usable`), but never loop on it.
                    break;
                }
            }
        }
    }
    Err(first_problem.unwrap_or_else(|| "no usable trust anchor".into()))
}

fn webpki_path(
    end_entity: &[u8],
    intermediates: &[&[u8]],
    anchors: &[&Vec<u8>],
    at_unix: u64,
    eku: &'static [u8],
) -> Result<Vec<Vec<u8>>, String> {
    let ee_der = CertificateDer::from(end_entity);
    let ee =
        EndEntityCert::try_from(&ee_der).map_err(|e| format!("certificate rejected: {e:?}"))?;
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    let mut trust = Vec::new();
    for a in &anchor_ders {
        trust.push(
            webpki::anchor_from_trusted_cert(a)
                .map_err(|e| format!("trust anchor rejected: {e:?}"))?,
        );
    }
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(*c))
        .collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_unix));
    let path = ee
        .verify_for_usage(
            PATH_ALGS,
            &trust,
            &inter,
            time,
            KeyUsage::required_if_present(eku),
            None,
            None,
        )
        .map_err(describe_webpki_error)?;
    let mut out = vec![end_entity.to_vec()];
    out.extend(path.intermediate_certificates().map(|c| c.der().to_vec()));
    // The very anchor webpki used (it hands back a reference into `trust`), not the first one
    // with the same name and key: two anchors may share both and differ in their constraints.
    let anchor = path.anchor();
    let used = trust
        .iter()
        .position(|t| std::ptr::eq(t, anchor))
        .ok_or("the path's trust anchor is not among those given")?;
    out.push(anchors[used].to_vec());
    Ok(out)
}

/// What is wrong with the anchor `anchor` at the top of `path` (end entity first), as openssl
/// sees it: not valid at the validation time, keyUsage without keyCertSign, or more
/// non-self-issued intermediates below it than its pathLenConstraint allows (RFC 5280 §6.1.4).
pub fn anchor_problem(anchor: &[u8], path: &[Vec<u8>], at_unix: u64) -> Option<String> {
    let cert = match crate::cert::parse(anchor) {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "the trust anchor is malformed: {}",
                crate::error::error_text(&e)
            ));
        }
    };
    let subject = cert.tbs_certificate.subject.to_string();
    if !crate::cert::valid_at(&cert, at_unix) {
        return Some(format!(
            "the trust anchor {subject} was not valid at that time"
        ));
    }
    if let Some((_, v)) = crate::cert::extension(&cert, &oid::ID_CE_KEY_USAGE) {
        match x509_cert::ext::pkix::KeyUsage::from_der(v) {
            Ok(ku) if ku.0.contains(x509_cert::ext::pkix::KeyUsages::KeyCertSign) => {}
            _ => {
                return Some(format!(
                    "the trust anchor {subject} has a keyUsage without keyCertSign"
                ));
            }
        }
    }
    // openssl's check_ca: a basicConstraints that says cA FALSE is no CA; without one, a
    // version 1 self-signed root, or a certificate whose keyUsage (checked above) allows
    // keyCertSign, is tolerated.
    let basic = crate::cert::extension(&cert, &oid::ID_CE_BASIC_CONSTRAINTS)
        .map(|(_, v)| x509_cert::ext::pkix::BasicConstraints::from_der(v));
    let tolerated_without = (cert.tbs_certificate.version == x509_cert::Version::V1
        && crate::cert::is_self_issued(&cert))
        || crate::cert::extension(&cert, &oid::ID_CE_KEY_USAGE).is_some();
    match &basic {
        Some(Ok(bc)) if !bc.ca => {
            return Some(format!(
                "the trust anchor {subject} is not a CA (basicConstraints cA is FALSE)"
            ));
        }
        Some(Err(_)) => {
            return Some(format!(
                "the trust anchor {subject} has a malformed basicConstraints"
            ));
        }
        None if !tolerated_without => {
            return Some(format!(
                "the trust anchor {subject} is not a CA (no basicConstraints, no keyUsage)"
            ));
        }
        _ => {}
    }
    if let Some(Ok(bc)) = basic
        && let Some(max) = bc.path_len_constraint
    {
        let intermediates = match path {
            [_, middle @ .., _] => middle,
            _ => &[],
        };
        let counted = intermediates
            .iter()
            .filter(|c| RawCert::parse(c).is_ok_and(|r| !r.is_self_issued()))
            .count();
        if counted > usize::from(max) {
            return Some(format!(
                "the trust anchor {subject} allows {max} intermediate certificates below it \
                 (pathLenConstraint), the path has {counted}"
            ));
        }
    }
    None
}

#[allow(deprecated)] // RequiredEkuNotFound: older webpki releases still return it
fn describe_webpki_error(e: webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "no path to a trusted anchor (unknown issuer)".into(),
        E::CertExpired { .. } => "a certificate in the path had expired at that time".into(),
        E::CertNotValidYet { .. } => {
            "a certificate in the path was not yet valid at that time".into()
        }
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            "the certificate lacks the required extended key usage".into()
        }
        E::NameConstraintViolation => "a name in the path lies outside the name constraints of \
            the trust anchor or a CA (directoryName and URI constraints are not supported and \
            always fail)"
            .into(),
        E::InvalidSignatureForPublicKey => {
            "a certificate signature in the path does not verify".into()
        }
        other => format!("certificate path rejected: {other:?}"),
    }
}
