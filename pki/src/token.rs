//! Timestamp token verification (RFC 3161 §2.4.2, RFC 5816, RFC 5652 §5.6) for tokens from
//! any authority.
//!
//! Parsing ([`ParsedToken::parse`]) accepts BER (normalised first), a bare token or a whole
//! TimeStampResp. Verification ([`verify`]) hashes everything exactly as received: the eContent
//! octets for messageDigest and the received signed-attribute bytes for the signature.

use crate::asn1::{SigningCertificate, SigningCertificateV2, TstInfo};
use crate::cms::RawSignedData;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::gentime::GenTime;
use crate::oid;
use crate::report::{Outcome, SignatureReport, TimestampInfo};
use crate::tsp;
use crate::verify::{validate_path, verify_signature};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier, SignerInfo};
use der::Decode;
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::ext::pkix::name::GeneralName;

/// A decoded token, kept with the bytes its checks hash.
#[derive(Clone, Debug)]
pub struct ParsedToken {
    /// The token (ContentInfo) DER, after BER normalisation.
    pub der: Vec<u8>,
    /// The decoded TSTInfo.
    pub tst_info: TstInfo,
    /// The TSTInfo octets exactly as carried in eContent.
    pub tst_der: Vec<u8>,
    /// The single SignerInfo.
    pub signer_info: SignerInfo,
    /// The signed attributes exactly as received, re-tagged as SET for verification.
    pub signed_attrs_der: Vec<u8>,
    /// Certificates carried in the token.
    pub certificates: Vec<Vec<u8>>,
}

impl ParsedToken {
    /// Parses a token from a `.tsr` file's bytes: a bare token or a granted TimeStampResp,
    /// DER or BER.
    pub fn parse(bytes: &[u8]) -> Result<ParsedToken> {
        let normal = crate::ber::normalize(bytes)?;
        let token = if tsp::is_response(&normal) {
            let resp = tsp::parse_response(&normal)?;
            match resp.token {
                Some(t) => t,
                None => {
                    let why: Vec<String> = resp.fail_info.iter().map(|f| f.to_string()).collect();
                    return Err(Error::invalid(
                        "TimeStampResp",
                        format!(
                            "it holds no token (status {:?} {} {})",
                            resp.status,
                            why.join(","),
                            resp.status_text.join("; ")
                        ),
                    ));
                }
            }
        } else {
            normal.into_owned()
        };
        Self::parse_token_der(token)
    }

    fn parse_token_der(der: Vec<u8>) -> Result<ParsedToken> {
        let raw = RawSignedData::parse(&der)?;
        let encap: EncapsulatedContentInfo = raw.fields[2].decode("encapContentInfo")?;
        if encap.econtent_type != oid::ID_CT_TST_INFO {
            return Err(Error::invalid(
                "timestamp token",
                format!("eContentType is {}, not id-ct-TSTInfo", encap.econtent_type),
            ));
        }
        let econtent = encap
            .econtent
            .ok_or_else(|| Error::invalid("timestamp token", "no eContent"))?;
        let tst_der = econtent
            .decode_as::<OctetString>()
            .map_err(Error::decode("eContent"))?
            .as_bytes()
            .to_vec();
        let tst_info = TstInfo::from_der(&tst_der).map_err(Error::decode("TSTInfo"))?;
        if raw.signer_infos.len() != 1 {
            return Err(Error::invalid(
                "timestamp token",
                format!(
                    "{} SignerInfos; RFC 3161 wants exactly one",
                    raw.signer_infos.len()
                ),
            ));
        }
        let signer_info: SignerInfo = raw.signer_infos[0].decode("SignerInfo")?;
        let signed_attrs_der = raw.signed_attrs_to_verify(0)?.ok_or_else(|| {
            Error::invalid("timestamp token", "SignerInfo has no signed attributes")
        })?;
        let certificates = raw
            .certificates()?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        Ok(ParsedToken {
            tst_info,
            tst_der,
            signer_info,
            signed_attrs_der,
            certificates,
            der,
        })
    }

    /// The imprint's hash algorithm, when it is one we know.
    pub fn hash_alg(&self) -> Option<HashAlg> {
        HashAlg::from_oid(&self.tst_info.message_imprint.hash_algorithm.oid)
    }

    /// The imprint.
    pub fn imprint(&self) -> &[u8] {
        self.tst_info.message_imprint.hashed_message.as_bytes()
    }

    /// genTime.
    pub fn gen_time(&self) -> GenTime {
        self.tst_info.gen_time
    }

    /// What the token says, for reports.
    pub fn info(&self) -> TimestampInfo {
        let t = &self.tst_info;
        let serial = t.serial_number.as_bytes();
        let decimal = (serial.len() <= 16).then(|| {
            let mut v: u128 = 0;
            for b in serial {
                v = (v << 8) | u128::from(*b);
            }
            v.to_string()
        });
        TimestampInfo {
            gen_time: t.gen_time.to_string(),
            gen_time_unix: t.gen_time.unix_seconds(),
            serial_hex: hex::encode(serial),
            serial: decimal,
            policy: t.policy.to_string(),
            hash_algorithm: self
                .hash_alg()
                .map(|h| h.name().to_owned())
                .unwrap_or_else(|| t.message_imprint.hash_algorithm.oid.to_string()),
            imprint: hex::encode(self.imprint()),
            accuracy: t.accuracy.as_ref().map(|a| {
                let mut parts = Vec::new();
                if let Some(s) = a.seconds {
                    parts.push(format!("{s}s"));
                }
                if let Some(m) = a.millis {
                    parts.push(format!("{m}ms"));
                }
                if let Some(u) = a.micros {
                    parts.push(format!("{u}us"));
                }
                parts.join(" ")
            }),
            ordering: t.ordering,
            nonce: t.nonce.as_ref().map(|n| hex::encode(n.as_bytes())),
            tsa_name: t.tsa.as_ref().map(general_name_string),
        }
    }
}

/// A GeneralName for humans.
pub fn general_name_string(name: &GeneralName) -> String {
    match name {
        GeneralName::DirectoryName(n) => n.to_string(),
        GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
        GeneralName::Rfc822Name(e) => format!("email:{}", e.as_str()),
        GeneralName::UniformResourceIdentifier(u) => format!("URI:{}", u.as_str()),
        other => format!("{other:?}"),
    }
}

/// What to verify a token against.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Trust anchors (certificate DER).
    pub trust: Vec<Vec<u8>>,
    /// Certificates to use beside those in the token (`--certs`).
    pub extra_certs: Vec<Vec<u8>>,
    /// The nonce the request carried, when the caller made the request.
    pub expected_nonce: Option<Vec<u8>>,
}

/// Verifies `token`. `data_digest` is the hash of the stamped data with the token's imprint
/// algorithm (see [`ParsedToken::hash_alg`]); `None` leaves the imprint unchecked, which makes
/// the report unverified.
pub fn verify(
    token: &ParsedToken,
    data_digest: Option<&[u8]>,
    opts: &VerifyOptions,
) -> SignatureReport {
    let mut r = SignatureReport::new("timestamp token");
    r.timestamp = Some(token.info());
    let si = &token.signer_info;
    let attrs = match SetOfVec::<Attribute>::from_der(&token.signed_attrs_der) {
        Ok(a) => a,
        Err(e) => {
            r.fail(
                "signed-attributes",
                format!("signed attributes are malformed: {e}"),
            );
            r.finish();
            return r;
        }
    };
    let attr = |id: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == id)
            .and_then(|a| a.values.get(0))
    };

    // contentType (RFC 5652 §11.1) must name id-ct-TSTInfo.
    match attr(oid::ID_CONTENT_TYPE).map(|v| v.decode_as::<ObjectIdentifier>()) {
        Some(Ok(ct)) if ct == oid::ID_CT_TST_INFO => {
            r.pass("content-type", "contentType attribute is id-ct-TSTInfo")
        }
        Some(Ok(ct)) => r.fail(
            "content-type",
            format!("contentType attribute is {ct}, not id-ct-TSTInfo"),
        ),
        _ => r.fail("content-type", "contentType attribute missing or malformed"),
    }

    // messageDigest over the eContent octets as received.
    let digest_alg = HashAlg::from_oid(&si.digest_alg.oid);
    match (
        digest_alg,
        attr(oid::ID_MESSAGE_DIGEST).map(|v| v.decode_as::<OctetString>()),
    ) {
        (None, _) => r.fail(
            "message-digest",
            format!("unsupported digest algorithm {}", si.digest_alg.oid),
        ),
        (Some(_), None | Some(Err(_))) => r.fail(
            "message-digest",
            "messageDigest attribute missing or malformed",
        ),
        (Some(h), Some(Ok(md))) => {
            if h.digest(&token.tst_der) == md.as_bytes() {
                r.pass(
                    "message-digest",
                    format!("messageDigest matches the TSTInfo ({h})"),
                );
            } else {
                r.fail(
                    "message-digest",
                    "messageDigest does not match the TSTInfo: the token was altered",
                );
            }
        }
    }

    // The signer's certificate, from the token or --certs.
    let pool: Vec<&Vec<u8>> = token
        .certificates
        .iter()
        .chain(opts.extra_certs.iter())
        .collect();
    let signer = pool.iter().find_map(|der| {
        let cert = Certificate::from_der(der).ok()?;
        matches_sid(&si.sid, &cert).then(|| ((*der).clone(), cert))
    });
    let Some((signer_der, signer_cert)) = signer else {
        let hint = if token.certificates.is_empty() {
            "the token carries no certificates: pass the TSA certificate with --certs FILE"
        } else {
            "no certificate in the token or --certs matches the SignerInfo"
        };
        r.fail("signer-certificate", hint);
        r.finish();
        return r;
    };
    r.signer = crate::cert::summary(&signer_der).ok();
    r.pass(
        "signer-certificate",
        "found the certificate named by the SignerInfo",
    );

    check_signing_certificate_attr(&mut r, &attr, &signer_der, &signer_cert);

    // The signature over the signed attributes exactly as received.
    match digest_alg {
        Some(h) => match verify_signature(
            &signer_cert.tbs_certificate.subject_public_key_info,
            &si.signature_algorithm,
            h,
            &token.signed_attrs_der,
            si.signature.as_bytes(),
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

    // RFC 3161 §2.3: critical timeStamping EKU, and the other TSA certificate rules.
    let problems = crate::cert::tsa_certificate_problems(&signer_cert);
    if problems.is_empty() {
        r.pass(
            "tsa-certificate",
            "extendedKeyUsage is timeStamping only, critical; not a CA",
        );
    } else {
        r.fail(
            "tsa-certificate",
            format!("not a valid TSA certificate: {}", problems.join("; ")),
        );
    }

    // The path to a trust anchor at genTime.
    let gen_time = token.gen_time();
    let intermediates: Vec<Vec<u8>> = pool
        .iter()
        .filter(|c| ***c != signer_der)
        .map(|c| (*c).clone())
        .collect();
    match u64::try_from(gen_time.unix_seconds()) {
        Err(_) => r.fail("certificate-path", "genTime is before 1970"),
        Ok(at) => match validate_path(
            &signer_der,
            &intermediates,
            &opts.trust,
            at,
            oid::ID_KP_TIME_STAMPING_BYTES,
        ) {
            Ok(path) => {
                r.chain = path
                    .iter()
                    .filter_map(|c| crate::cert::summary(c).ok())
                    .collect();
                r.pass(
                    "certificate-path",
                    format!("chains to a trusted anchor at genTime {gen_time}"),
                );
            }
            Err(e) => r.fail("certificate-path", e),
        },
    }

    // The imprint against the data.
    match (token.hash_alg(), data_digest) {
        (None, _) => r.fail(
            "imprint",
            format!(
                "unknown imprint hash algorithm {}",
                token.tst_info.message_imprint.hash_algorithm.oid
            ),
        ),
        (Some(_), None) => r.check(
            "imprint",
            Outcome::NotChecked,
            "no data given to compare the imprint with",
        ),
        (Some(h), Some(d)) if d == token.imprint() => {
            r.pass("imprint", format!("the {h} imprint matches the data"))
        }
        (Some(h), Some(_)) => r.fail(
            "imprint",
            format!("the {h} imprint does not match the data: it was changed or is another file"),
        ),
    }
    match token.hash_alg() {
        Some(h) if h.is_weak() => r.check(
            "hash-algorithm",
            Outcome::Warning,
            format!("{h} imprint: weak, no longer safe against collisions"),
        ),
        Some(h) => r.pass("hash-algorithm", format!("{h} imprint")),
        None => {}
    }

    if let Some(expected) = &opts.expected_nonce {
        match &token.tst_info.nonce {
            Some(n) if strip_zeros(n.as_bytes()) == strip_zeros(expected) => {
                r.pass("nonce", "nonce matches the request")
            }
            Some(_) => r.fail(
                "nonce",
                "nonce differs from the request: a replayed or foreign reply",
            ),
            None => r.fail(
                "nonce",
                "the request carried a nonce but the token has none",
            ),
        }
    }
    r.finish();
    r
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

/// Whether `cert` is the one a SignerIdentifier names.
pub fn matches_sid(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == cert.tbs_certificate.issuer
                && ias.serial_number == cert.tbs_certificate.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            crate::cert::extension(cert, &const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
                .and_then(|(_, v)| SubjectKeyIdentifier::from_der(v).ok())
                .is_some_and(|c| c.0 == ski.0)
        }
    }
}

/// ESSCertIDv2 (RFC 5816) or ESSCertID (RFC 2634) must name the signer's certificate.
fn check_signing_certificate_attr<'a>(
    r: &mut SignatureReport,
    attr: &dyn Fn(ObjectIdentifier) -> Option<&'a der::Any>,
    signer_der: &[u8],
    signer_cert: &Certificate,
) {
    let name = "signing-certificate";
    let issuer_ok = |is: &Option<crate::asn1::IssuerSerial>| {
        match is {
        None => true,
        Some(is) => {
            is.serial_number == signer_cert.tbs_certificate.serial_number
                && is.issuer.iter().any(|g| matches!(g, GeneralName::DirectoryName(n) if *n == signer_cert.tbs_certificate.issuer))
        }
    }
    };
    if let Some(v) = attr(oid::ID_AA_SIGNING_CERTIFICATE_V2) {
        match v.decode_as::<SigningCertificateV2>() {
            Ok(sc) => match sc.certs.first() {
                Some(id) => {
                    let h = match &id.hash_algorithm {
                        None => Some(HashAlg::Sha256),
                        Some(a) => HashAlg::from_oid(&a.oid),
                    };
                    match h {
                        Some(h)
                            if h.digest(signer_der) == id.cert_hash.as_bytes()
                                && issuer_ok(&id.issuer_serial) =>
                        {
                            r.pass(
                                name,
                                format!("ESSCertIDv2 ({h}) names the signer's certificate"),
                            )
                        }
                        Some(_) => r.fail(
                            name,
                            "ESSCertIDv2 names another certificate than the signer's",
                        ),
                        None => r.fail(name, "ESSCertIDv2 uses an unknown hash algorithm"),
                    }
                }
                None => r.fail(name, "SigningCertificateV2 lists no certificate"),
            },
            Err(e) => r.fail(name, format!("SigningCertificateV2 is malformed: {e}")),
        }
    } else if let Some(v) = attr(oid::ID_AA_SIGNING_CERTIFICATE) {
        match v.decode_as::<SigningCertificate>() {
            Ok(sc) => match sc.certs.first() {
                Some(id)
                    if HashAlg::Sha1.digest(signer_der) == id.cert_hash.as_bytes()
                        && issuer_ok(&id.issuer_serial) =>
                {
                    r.pass(name, "ESSCertID (SHA-1) names the signer's certificate")
                }
                Some(_) => r.fail(
                    name,
                    "ESSCertID names another certificate than the signer's",
                ),
                None => r.fail(name, "SigningCertificate lists no certificate"),
            },
            Err(e) => r.fail(name, format!("SigningCertificate is malformed: {e}")),
        }
    } else {
        r.fail(
            name,
            "neither signingCertificate nor signingCertificateV2 is among the signed attributes",
        );
    }
}
