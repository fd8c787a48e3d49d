//! Hostile inputs for tests and benchmarks (feature `hostile`): genuine tokens from a three-level
//! development chain, then changed by raw TLV surgery in the places anyone may change them
//! without the TSA's key (unsigned attributes, the certificate bag). Never used by the
//! authority or the client.

use crate::cms::{RawSignedData, SignerCert};
use crate::error::{Error, Result};
use crate::gentime::GenTime;
use crate::raw::{RawTlv, context, tlv};
use crate::signer::{RingSigner, RsaPadding};
use crate::tsp::{RequestPolicy, TokenIssuer, build_request, check_request};
use crate::{HashAlg, oid};
use der::Tag;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// How a [`Chain`] is made: the root's constraints (those openssl honours on an anchor) and the
/// TSA's common name (which also becomes the tokens' tsa name).
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// The TSA certificate's commonName.
    pub tsa_common_name: String,
    /// basicConstraints pathLenConstraint (`None`: unconstrained).
    pub path_len: Option<u8>,
    /// notAfter, relative to now.
    pub not_after: Duration,
    /// keyUsage bits; empty leaves the extension out.
    pub key_usages: Vec<KeyUsagePurpose>,
    /// The root's nameConstraints, if any.
    pub name_constraints: Option<rcgen::NameConstraints>,
    /// A dNSName for the TSA certificate's subjectAltName, if any.
    pub tsa_dns_name: Option<String>,
    /// Give the root basicConstraints cA FALSE (it still signs the intermediate).
    pub root_not_ca: bool,
}

impl Default for ChainSpec {
    fn default() -> ChainSpec {
        ChainSpec {
            tsa_common_name: "Hostile TSA".into(),
            path_len: None,
            not_after: Duration::days(3650),
            key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            name_constraints: None,
            tsa_dns_name: None,
            root_not_ca: false,
        }
    }
}

/// Root → intermediate → TSA certificate, ECDSA P-256, and an issuer of tokens.
pub struct Chain {
    /// The root (DER).
    pub root: Vec<u8>,
    /// The intermediate (DER).
    pub intermediate: Vec<u8>,
    /// The TSA certificate (DER).
    pub tsa: Vec<u8>,
    /// Issues tokens carrying TSA and intermediate certificates.
    pub issuer: TokenIssuer,
}

fn rc(e: rcgen::Error) -> Error {
    Error::Certificate(format!("test chain generation failed: {e}"))
}

/// The DN every certificate of a [`Chain`] has, with commonName `cn`.
pub fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CountryName, "XX");
    d.push(DnType::OrganizationName, "Sigillum hostile tests");
    d.push(DnType::CommonName, cn);
    d
}

impl Chain {
    /// Generates the chain as `spec` says, and a TokenIssuer whose tokens carry the TSA's
    /// subject as their tsa name.
    pub fn generate(spec: &ChainSpec) -> Result<Chain> {
        let now = OffsetDateTime::now_utc() - Duration::days(2);
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let root_key = KeyPair::generate_for(alg).map_err(rc)?;
        let mut root = CertificateParams::default();
        root.distinguished_name = dn("Hostile Root");
        root.is_ca = if spec.root_not_ca {
            IsCa::ExplicitNoCa
        } else {
            IsCa::Ca(match spec.path_len {
                Some(n) => BasicConstraints::Constrained(n),
                None => BasicConstraints::Unconstrained,
            })
        };
        root.key_usages = spec.key_usages.clone();
        root.name_constraints = spec.name_constraints.clone();
        root.not_before = now - Duration::days(30);
        root.not_after = OffsetDateTime::now_utc() + spec.not_after;
        let root_cert = root.self_signed(&root_key).map_err(rc)?;
        let root_issuer = Issuer::new(root, &root_key);

        let inter_key = KeyPair::generate_for(alg).map_err(rc)?;
        let mut inter = CertificateParams::default();
        inter.distinguished_name = dn("Hostile Intermediate");
        inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        inter.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        inter.not_before = now;
        inter.not_after = now + Duration::days(365);
        inter.use_authority_key_identifier_extension = true;
        let inter_cert = inter.signed_by(&inter_key, &root_issuer).map_err(rc)?;
        let inter_issuer = Issuer::new(inter, &inter_key);

        let tsa_key = KeyPair::generate_for(alg).map_err(rc)?;
        let mut tsa = CertificateParams::default();
        tsa.distinguished_name = dn(&spec.tsa_common_name);
        tsa.is_ca = IsCa::ExplicitNoCa;
        tsa.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        tsa.not_before = now;
        tsa.not_after = now + Duration::days(100);
        tsa.use_authority_key_identifier_extension = true;
        let mut eku = CustomExtension::from_oid_content(
            &[2, 5, 29, 37],
            vec![
                0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
            ],
        );
        eku.set_criticality(true);
        tsa.custom_extensions = vec![eku];
        if let Some(dns) = &spec.tsa_dns_name {
            tsa.subject_alt_names =
                vec![rcgen::SanType::DnsName(dns.clone().try_into().map_err(rc)?)];
        }
        let tsa_cert = tsa.signed_by(&tsa_key, &inter_issuer).map_err(rc)?;

        let signer = RingSigner::from_pkcs8_der(&tsa_key.serialize_der(), RsaPadding::Pkcs1)?;
        let issuer = TokenIssuer::new(
            Arc::new(signer),
            SignerCert::from_der(tsa_cert.der().to_vec())?,
            vec![inter_cert.der().to_vec()],
            Some(crate::tsp::Accuracy {
                seconds: Some(1),
                millis: None,
                micros: None,
            }),
            true,
        )?;
        Ok(Chain {
            root: root_cert.der().to_vec(),
            intermediate: inter_cert.der().to_vec(),
            tsa: tsa_cert.der().to_vec(),
            issuer,
        })
    }

    /// A genuine token (bare ContentInfo) over SHA-256(`data`), with certificates, at `gen_time`.
    pub fn token_at(&self, data: &[u8], gen_time: GenTime) -> Result<Vec<u8>> {
        let req = build_request(
            HashAlg::Sha256,
            &HashAlg::Sha256.digest(data),
            None,
            true,
            None,
        )?;
        let checked = check_request(&req, &RequestPolicy::new(oid::DEV_POLICY))
            .map_err(|r| Error::invalid("request", r.reason))?;
        self.issuer.issue(&checked, &[0x01, 0x02, 0x03], gen_time)
    }

    /// A genuine token over SHA-256(`data`), generated now.
    pub fn token(&self, data: &[u8]) -> Result<Vec<u8>> {
        let now = GenTime::now_millis().map_err(|e| Error::invalid("genTime", e.to_string()))?;
        self.token_at(data, now)
    }
}

/// Rebuilds `token` with SignerInfo 0 replaced by `f(its fields)` and the certificate bag by
/// `g(its certificates)`.
fn rebuild(
    token: &[u8],
    f: impl FnOnce(Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>>,
    g: impl FnOnce(Vec<Vec<u8>>) -> Vec<Vec<u8>>,
) -> Result<Vec<u8>> {
    let raw = RawSignedData::parse(token)?;
    let si_fields: Vec<Vec<u8>> = raw.signer_infos[0]
        .children("SignerInfo")?
        .iter()
        .map(|f| f.full.to_vec())
        .collect();
    let si_fields = f(si_fields)?;
    let parts: Vec<&[u8]> = si_fields.iter().map(Vec::as_slice).collect();
    let si = tlv(Tag::Sequence, &parts)?;
    let sis = tlv(Tag::Set, &[&si])?;
    let certs = g(raw.certificates()?.iter().map(|c| c.to_vec()).collect());
    let cert_parts: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let bag = tlv(context(0, true), &cert_parts)?;
    let mut fields: Vec<&[u8]> = Vec::new();
    for (i, f) in raw.fields.iter().enumerate() {
        if Some(i) == raw.certificates {
            continue;
        }
        if i == raw.fields.len() - 1 {
            if !certs.is_empty() {
                fields.push(&bag);
            }
            fields.push(&sis);
        } else {
            fields.push(f.full);
        }
    }
    let sd = tlv(Tag::Sequence, &fields)?;
    let explicit = tlv(context(0, true), &[&sd])?;
    let ct = crate::signer::to_der(&oid::ID_SIGNED_DATA)?;
    tlv(Tag::Sequence, &[&ct, &explicit])
}

/// `token` with `n` unsigned attributes appended to its SignerInfo: distinct values in
/// descending order, the worst case for an insertion sort. About 15 bytes each.
pub fn with_unsigned_attributes(token: &[u8], n: u32) -> Result<Vec<u8>> {
    rebuild(
        token,
        |mut fields| {
            let mut attrs = Vec::with_capacity(n as usize * 15);
            for i in (0..n).rev() {
                let v = i.to_be_bytes();
                attrs.extend_from_slice(&[
                    0x30, 0x0d, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x31, 0x06, 0x04, 0x04, v[0], v[1],
                    v[2], v[3],
                ]);
            }
            fields.retain(|f| f.first() != Some(&0xa1));
            fields.push(tlv(context(1, true), &[&attrs])?);
            Ok(fields)
        },
        |certs| certs,
    )
}

/// `token` with `extra` certificates put in front of its bag.
pub fn with_prepended_certificates(token: &[u8], extra: &[Vec<u8>]) -> Result<Vec<u8>> {
    rebuild(token, Ok, |certs| {
        extra.iter().cloned().chain(certs).collect()
    })
}

/// `token` with SignerInfo field `index` (0 version, 1 sid, 2 digestAlgorithm, 3 signedAttrs,
/// ...) replaced by `field`, and, when `digest_algorithms` is given, the SignedData's
/// digestAlgorithms SET replaced by it.
pub fn with_signer_info_field(
    token: &[u8],
    index: usize,
    field: &[u8],
    digest_algorithms: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let rebuilt = rebuild(
        token,
        |mut fields| {
            fields[index] = field.to_vec();
            Ok(fields)
        },
        |certs| certs,
    )?;
    match digest_algorithms {
        None => Ok(rebuilt),
        Some(set) => with_signed_data_field(&rebuilt, 1, set),
    }
}

/// `token` with SignedData field `index` (0 version, 1 digestAlgorithms, 2 encapContentInfo, ...)
/// replaced by `field`.
pub fn with_signed_data_field(token: &[u8], index: usize, field: &[u8]) -> Result<Vec<u8>> {
    let raw = RawSignedData::parse(token)?;
    let fields: Vec<&[u8]> = raw
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| if i == index { field } else { f.full })
        .collect();
    let sd = tlv(Tag::Sequence, &fields)?;
    let explicit = tlv(context(0, true), &[&sd])?;
    let ct = crate::signer::to_der(&oid::ID_SIGNED_DATA)?;
    tlv(Tag::Sequence, &[&ct, &explicit])
}

/// `token` with its certificate bag emptied (a token made without certReq).
pub fn without_certificates(token: &[u8]) -> Result<Vec<u8>> {
    rebuild(token, Ok, |_| Vec::new())
}

/// Replaces field `index` of a certificate's TBSCertificate (counting the `[0]` version as
/// field 0) by `field`, and the signature bits by `signature`.
fn patch_cert(cert: &[u8], index: usize, field: &[u8], signature: &[u8]) -> Result<Vec<u8>> {
    let c = RawTlv::parse(cert, "certificate")?;
    let parts = c.children("certificate")?;
    let tbs_fields: Vec<&[u8]> = parts[0]
        .children("tbs")?
        .iter()
        .enumerate()
        .map(|(i, f)| if i == index { field } else { f.full })
        .collect();
    let tbs = tlv(Tag::Sequence, &tbs_fields)?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature);
    let sig = tlv(Tag::BitString, &[&bits])?;
    tlv(Tag::Sequence, &[&tbs, parts[1].full, &sig])
}

/// `count` look-alikes of `cert`: the same subject, issuer, serial and key identifiers, another
/// public key (one of a few generated here), and a signature that verifies under nothing. Each
/// has distinct DER (the signature differs), so deduplication cannot merge them.
pub fn look_alikes(cert: &[u8], count: u32) -> Result<Vec<Vec<u8>>> {
    let keys: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map(|k| rcgen::PublicKeyData::subject_public_key_info(&k))
                .map_err(rc)
        })
        .collect::<Result<_>>()?;
    let raw = crate::cert_raw::RawCert::parse(cert)?;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let key = &keys[i as usize % keys.len()];
        let mut sig = raw.signature.to_vec();
        let n = i.to_be_bytes();
        let len = sig.len();
        sig[len - 4..].copy_from_slice(&n);
        // Fields: version, serial, signature, issuer, validity, subject, spki, ...
        out.push(patch_cert(cert, 6, key, &sig)?);
    }
    Ok(out)
}

/// A copy of `cert` whose subject is one RDN holding `avas` AVAs (commonName, seven decimal
/// digits each, distinct and in descending order: the worst case for an insertion sort), with
/// the original (now wrong) signature. 16 bytes per AVA; at most 10 000 000 AVAs.
pub fn with_huge_rdn(cert: &[u8], avas: u32) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(avas as usize * 16);
    for i in (0..avas.min(10_000_000)).rev() {
        body.extend_from_slice(&[0x30, 0x0e, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x07]);
        body.extend_from_slice(format!("{i:07}").as_bytes());
    }
    let rdn = tlv(Tag::Set, &[&body])?;
    let name = tlv(Tag::Sequence, &[&rdn])?;
    let raw = crate::cert_raw::RawCert::parse(cert)?;
    patch_cert(cert, 5, &name, raw.signature)
}
