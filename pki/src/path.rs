//! Which certificates of an untrusted bag are offered to path building, and which one signed.
//!
//! The certificate bag of a token is unsigned: anyone can prepend thousands of certificates to
//! it, including look-alikes of the signer (same issuer and serial), of the intermediate and of
//! the root (same subject and key identifiers, another key). rustls-webpki stays the authority
//! on the path ([`crate::verify::validate_path`]), but it stops after 100 signature checks, so
//! the candidates it sees are filtered first, in time linear in the bag:
//!
//! * the bag is deduplicated by DER;
//! * the signer is the certificate the SignerInfo's sid names *and* whose hash the ESSCertID(v2)
//!   names ([`select_signer`]);
//! * an intermediate is offered only when its own signature verifies, with ring through the
//!   algorithms webpki uses, under a trust anchor or an already accepted intermediate whose
//!   subject (and subjectKeyIdentifier, when both carry one) matches its issuer (and
//!   authorityKeyIdentifier), and when it issues, directly or through others, the signer
//!   ([`path_candidates`]). Each such pair is checked once, so a look-alike costs at most one
//!   signature check per accepted certificate of the same name.

use crate::cert_raw::RawCert;
use crate::digest::HashAlg;
use crate::limits::MAX_PATH_DEPTH;
use crate::signer_info::SignerId;
use crate::verify::PATH_ALGS;
use std::collections::HashSet;

/// Parses the certificates that parse, dropping exact duplicates (same DER).
pub fn dedup_parse<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Vec<RawCert<'a>> {
    let mut seen = HashSet::new();
    certs
        .into_iter()
        .filter(|der| seen.insert(*der))
        .filter_map(|der| RawCert::parse(der).ok())
        .collect()
}

/// The certificate the SignerInfo names: sid must match; among several that do, the one whose
/// `ess` hash (algorithm, certHash) matches is chosen, else the first.
pub fn select_signer<'a>(
    pool: &[RawCert<'a>],
    sid: &SignerId,
    ess: Option<(HashAlg, &[u8])>,
) -> Option<RawCert<'a>> {
    let mut named = pool.iter().filter(|c| sid.matches(c));
    let first = named.clone().next().copied();
    match ess {
        Some((h, hash)) => named.find(|c| h.digest(c.der) == hash).copied().or(first),
        None => first,
    }
}

/// Whether `issuer`'s key verifies `child`'s signature, with the algorithms path validation
/// accepts (ring, through rustls-webpki's algorithm table).
pub fn signed_by(issuer: &RawCert<'_>, child: &RawCert<'_>) -> bool {
    signature_by(
        issuer,
        child.tbs,
        child.signature_algorithm,
        child.signature,
    )
}

/// Whether `signer`'s key verifies `signature` over `message` with the algorithm whose
/// AlgorithmIdentifier value octets are `signature_algorithm` (a certificate's, a CRL's, an
/// OCSP response's), with the algorithms path validation accepts.
pub fn signature_by(
    signer: &RawCert<'_>,
    message: &[u8],
    signature_algorithm: &[u8],
    signature: &[u8],
) -> bool {
    PATH_ALGS
        .iter()
        .filter(|a| {
            a.signature_alg_id().as_ref() == signature_algorithm
                && a.public_key_alg_id().as_ref() == signer.spki_algorithm
        })
        .any(|a| {
            a.verify_signature(signer.public_key, message, signature)
                .is_ok()
        })
}

/// The bag certificates worth offering to path building for `signer`: each signed (checked
/// here) by an anchor or another offered certificate, each an ancestor of the signer. Anchors
/// themselves and the signer are left out.
pub fn path_candidates<'a>(
    signer: &RawCert<'_>,
    pool: &[RawCert<'a>],
    anchors: &[RawCert<'_>],
) -> Vec<&'a [u8]> {
    let anchor_ders: HashSet<&[u8]> = anchors.iter().map(|a| a.der).collect();
    let pool: Vec<&RawCert<'a>> = pool
        .iter()
        .filter(|c| c.der != signer.der && !anchor_ders.contains(c.der))
        .collect();
    // Top down: certificates whose signature chains to an anchor, one level per round; each
    // (certificate, accepted issuer) pair is checked once.
    let mut good = vec![false; pool.len()];
    let mut frontier: Vec<usize> = Vec::new();
    for (i, c) in pool.iter().enumerate() {
        if anchors.iter().any(|a| a.may_issue(c) && signed_by(a, c)) {
            good[i] = true;
            frontier.push(i);
        }
    }
    for _ in 1..MAX_PATH_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for (i, c) in pool.iter().enumerate() {
            if !good[i]
                && frontier
                    .iter()
                    .any(|&j| pool[j].may_issue(c) && signed_by(pool[j], c))
            {
                good[i] = true;
                next.push(i);
            }
        }
        frontier = next;
    }
    // Bottom up: only the accepted certificates above the signer.
    let mut offered = vec![false; pool.len()];
    let mut children: Vec<RawCert<'_>> = vec![*signer];
    for _ in 0..MAX_PATH_DEPTH {
        let mut next = Vec::new();
        for child in &children {
            for (i, c) in pool.iter().enumerate() {
                if good[i] && !offered[i] && c.may_issue(child) && signed_by(c, child) {
                    offered[i] = true;
                    next.push(**c);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        children = next;
    }
    pool.iter()
        .zip(offered)
        .filter(|(_, o)| *o)
        .map(|(c, _)| c.der)
        .collect()
}
