//! Certificate helpers: loading bundles, summaries for reports, and the TSA certificate rules
//! (RFC 3161 §2.3, ETSI EN 319 422 §6) shared by the authority's start-up check and the verifier.

use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::oid;
use crate::report::CertSummary;
use der::Decode;
use der::asn1::ObjectIdentifier;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::Name;

/// Reads every certificate of a PEM bundle (any number of `CERTIFICATE` blocks) or one DER
/// certificate, returning their DER.
pub fn load_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let text = bytes.trim_ascii_start();
    if !text.starts_with(b"-----BEGIN") {
        parse(bytes)?;
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(text).map_err(|_| Error::invalid("PEM bundle", "not UTF-8"))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .ok_or_else(|| Error::invalid("PEM bundle", "unterminated BEGIN line"))?;
        let label = &after[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after
            .find(&end_marker)
            .ok_or_else(|| Error::invalid("PEM bundle", format!("no END line for {label}")))?;
        let block = &after[..end + end_marker.len()];
        if label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE" || label == "X509 CERTIFICATE" {
            let (_, der) = der::pem::decode_vec(block.as_bytes()).map_err(|e| Error::Decode {
                what: "PEM certificate",
                source: e.into(),
            })?;
            parse(&der)?;
            out.push(der);
        }
        rest = &after[end + end_marker.len()..];
    }
    if out.is_empty() {
        return Err(Error::invalid("PEM bundle", "no CERTIFICATE block"));
    }
    Ok(out)
}

/// Encodes certificates as a PEM bundle.
pub fn to_pem(ders: &[Vec<u8>]) -> Result<String> {
    let mut out = String::new();
    for der in ders {
        out.push_str(
            &der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
                .map_err(|e| Error::Encode(e.into()))?,
        );
    }
    Ok(out)
}

/// Decodes an untrusted certificate with `x509-cert`, after [`crate::limits::check_sets`] has
/// made sure its Names hold no SET that `der`'s sort would take quadratic time over.
pub fn parse(der: &[u8]) -> Result<Certificate> {
    crate::limits::check_sets(der, "certificate")?;
    Certificate::from_der(der).map_err(Error::decode("certificate"))
}

/// A Name's DER for humans (RFC 4514 form), or a placeholder when it does not decode.
pub fn name_string(der: &[u8]) -> String {
    crate::limits::check_sets(der, "name")
        .ok()
        .and_then(|()| x509_cert::name::Name::from_der(der).ok())
        .map(|n| name_text(&n))
        .unwrap_or_else(|| "(unreadable name)".into())
}

/// The text of a name attribute's value: UTF8String, PrintableString or IA5String (the
/// DirectoryString forms certificates use, and IA5String for emailAddress).
pub fn attribute_text(value: &der::Any) -> Option<String> {
    value
        .decode_as::<der::asn1::Utf8StringRef<'_>>()
        .map(|s| s.as_str().to_owned())
        .or_else(|_| {
            value
                .decode_as::<der::asn1::PrintableStringRef<'_>>()
                .map(|s| s.as_str().to_owned())
        })
        .or_else(|_| {
            value
                .decode_as::<der::asn1::Ia5StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
        })
        .ok()
}

/// The subject's commonName (the last one, RFC 4514 order aside), for what a person reads on a
/// visible signature; `None` when the subject has none.
pub fn common_name(cert: &Certificate) -> Option<String> {
    let cn = const_oid::db::rfc4519::CN;
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .rev()
        .filter(|atv| atv.oid == cn)
        .find_map(|atv| attribute_text(&atv.value))
}

/// Most entries each of this module's process-wide memos keeps ([`summary`], [`parse_shared`],
/// [`name_text`]): bulk verification meets the same few signer, TSA and CA certificates, and
/// their names, in every report.
const MEMO_ENTRIES: usize = 256;

/// A memo keyed by DER: what was made from the same bytes is the same.
type DerMemo<T> = OnceLock<Mutex<HashMap<Vec<u8>, T>>>;

/// `make()` for `der`, remembered in `memo` while it holds fewer than [`MEMO_ENTRIES`] entries.
/// Errors are not remembered (they are rare, and made again with their own text).
fn remembered<T: Clone>(
    memo: &'static DerMemo<T>,
    der: &[u8],
    make: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let memo = memo.get_or_init(Default::default);
    if let Some(v) = memo.lock().unwrap_or_else(PoisonError::into_inner).get(der) {
        return Ok(v.clone());
    }
    let v = make()?;
    let mut map = memo.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() < MEMO_ENTRIES {
        map.insert(der.to_vec(), v.clone());
    }
    Ok(v)
}

/// A certificate's summary for reports. Rendering names walks `const-oid`'s whole database for
/// every attribute, so summaries are remembered by DER (up to [`MEMO_ENTRIES`]).
pub fn summary(der: &[u8]) -> Result<CertSummary> {
    static SUMMARIES: DerMemo<CertSummary> = OnceLock::new();
    remembered(&SUMMARIES, der, || render_summary(der))
}

/// [`parse`], shared: a certificate decoded once per process (up to [`MEMO_ENTRIES`]), since
/// every token of an authority names the same signer certificate.
pub fn parse_shared(der: &[u8]) -> Result<Arc<Certificate>> {
    static DECODED: DerMemo<Arc<Certificate>> = OnceLock::new();
    remembered(&DECODED, der, || parse(der).map(Arc::new))
}

/// A Name for humans (RFC 4514 form, as `x509-cert` renders it), remembered per process (up to
/// [`MEMO_ENTRIES`] names): rendering looks every attribute type up in `const-oid`'s whole
/// database, and a bulk verification renders the same authority's name in every report.
pub fn name_text(name: &Name) -> String {
    static NAMES: OnceLock<Mutex<Vec<(Name, String)>>> = OnceLock::new();
    let memo = NAMES.get_or_init(Default::default);
    if let Some((_, text)) = memo
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(n, _)| n == name)
    {
        return text.clone();
    }
    let text = name.to_string();
    let mut names = memo.lock().unwrap_or_else(PoisonError::into_inner);
    if names.len() < MEMO_ENTRIES {
        names.push((name.clone(), text.clone()));
    }
    text
}

fn render_summary(der: &[u8]) -> Result<CertSummary> {
    let cert = parse(der)?;
    let tbs = &cert.tbs_certificate;
    let t = |t: &x509_cert::time::Time| {
        crate::gentime::GenTime::from_unix_millis(
            i64::try_from(t.to_unix_duration().as_millis()).unwrap_or(i64::MAX),
        )
        .map(|g| g.to_string())
        .unwrap_or_else(|_| t.to_string())
    };
    Ok(CertSummary {
        subject: name_text(&tbs.subject),
        issuer: name_text(&tbs.issuer),
        serial: hex::encode(tbs.serial_number.as_bytes()),
        not_before: t(&tbs.validity.not_before),
        not_after: t(&tbs.validity.not_after),
        sha256: hex::encode(HashAlg::Sha256.digest(der)),
    })
}

/// Finds an extension by OID: `(critical, value DER)`.
pub fn extension<'c>(cert: &'c Certificate, id: &ObjectIdentifier) -> Option<(bool, &'c [u8])> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == *id)
        .map(|e| (e.critical, e.extn_value.as_bytes()))
}

/// What is wrong with a certificate as a TSA certificate (empty: nothing).
///
/// RFC 3161 §2.3: extendedKeyUsage present, critical, with id-kp-timeStamping as its only
/// purpose. Also: not a CA, and keyUsage (when present) allows digitalSignature or
/// nonRepudiation.
pub fn tsa_certificate_problems(cert: &Certificate) -> Vec<String> {
    let mut problems = Vec::new();
    match extension(cert, &oid::ID_CE_EXT_KEY_USAGE) {
        None => {
            problems.push("it has no extendedKeyUsage extension (timeStamping is required)".into())
        }
        Some((critical, value)) => {
            match ExtendedKeyUsage::from_der(value) {
                Ok(eku) => {
                    if !eku.0.contains(&oid::ID_KP_TIME_STAMPING) {
                        problems.push("its extendedKeyUsage lacks id-kp-timeStamping".into());
                    } else if eku.0.len() != 1 {
                        problems.push(
                            "its extendedKeyUsage lists purposes besides timeStamping".into(),
                        );
                    }
                }
                Err(e) => problems.push(format!("its extendedKeyUsage is malformed: {e}")),
            }
            if !critical {
                problems.push("its extendedKeyUsage is not marked critical".into());
            }
        }
    }
    if let Some((_, value)) = extension(cert, &oid::ID_CE_BASIC_CONSTRAINTS)
        && BasicConstraints::from_der(value)
            .map(|b| b.ca)
            .unwrap_or(false)
    {
        problems.push("it is a CA certificate (basicConstraints cA is true)".into());
    }
    if let Some((_, value)) = extension(cert, &oid::ID_CE_KEY_USAGE) {
        match KeyUsage::from_der(value) {
            Ok(ku)
                if ku.0.contains(KeyUsages::DigitalSignature)
                    || ku.0.contains(KeyUsages::NonRepudiation) => {}
            Ok(_) => problems
                .push("its keyUsage allows neither digitalSignature nor nonRepudiation".into()),
            Err(e) => problems.push(format!("its keyUsage is malformed: {e}")),
        }
    }
    problems
}

/// When the certificate's key may sign (Unix seconds, inclusive): its validity, narrowed by
/// privateKeyUsagePeriod when present (RFC 5280 §4.2.1.4 / RFC 3280; ETSI EN 319 421 asks a
/// TSA to stop signing at the end of its key's usage period). A malformed extension counts as
/// no usage at all: `(1, 0)`.
pub fn key_usage_period(cert: &Certificate) -> (u64, u64) {
    use x509_cert::ext::pkix::PrivateKeyUsagePeriod;
    let (mut from, mut until) = validity(cert);
    if let Some((_, value)) = extension(
        cert,
        &const_oid::db::rfc5280::ID_CE_PRIVATE_KEY_USAGE_PERIOD,
    ) {
        match PrivateKeyUsagePeriod::from_der(value) {
            Ok(p) => {
                if let Some(nb) = p.not_before {
                    from = from.max(nb.to_unix_duration().as_secs());
                }
                if let Some(na) = p.not_after {
                    until = until.min(na.to_unix_duration().as_secs());
                }
            }
            Err(_) => return (1, 0),
        }
    }
    (from, until)
}

/// Whether the certificate is a CA certificate (basicConstraints cA true).
pub fn is_ca(cert: &Certificate) -> bool {
    extension(cert, &oid::ID_CE_BASIC_CONSTRAINTS)
        .and_then(|(_, v)| BasicConstraints::from_der(v).ok())
        .is_some_and(|b| b.ca)
}

/// Whether keyUsage (when present) allows digitalSignature.
pub fn allows_digital_signature(cert: &Certificate) -> bool {
    extension(cert, &oid::ID_CE_KEY_USAGE)
        .and_then(|(_, v)| KeyUsage::from_der(v).ok())
        .is_none_or(|ku| ku.digital_signature())
}

/// Whether `issuer`'s key verifies `cert`'s signature (both DER); false when either does not
/// parse.
pub fn issued_by(cert: &[u8], issuer: &[u8]) -> bool {
    match (
        crate::cert_raw::RawCert::parse(cert),
        crate::cert_raw::RawCert::parse(issuer),
    ) {
        (Ok(c), Ok(i)) => crate::path::signed_by(&i, &c),
        _ => false,
    }
}

/// The certificate's serial, big-endian magnitude (no sign octet).
pub fn serial_magnitude(cert: &[u8]) -> Result<Vec<u8>> {
    let raw = crate::cert_raw::RawCert::parse(cert)?;
    Ok(raw.serial.strip_prefix(&[0]).unwrap_or(raw.serial).to_vec())
}

/// The certificate's subject Name, DER.
pub fn subject_der(cert: &[u8]) -> Result<Vec<u8>> {
    Ok(crate::cert_raw::RawCert::parse(cert)?.subject.to_vec())
}

/// Whether `key` (a subjectPublicKey's bits: RSAPublicKey DER or an EC point, as
/// [`crate::signer::Signer::public_key`] and [`crate::envelope::Decrypter::public_key`] give
/// them) is the certificate's own key.
pub fn has_public_key(cert: &Certificate, key: &[u8]) -> bool {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        == key
}

/// Whether `spki` (SubjectPublicKeyInfo DER) is the certificate's own key.
pub fn same_public_key(cert: &[u8], spki: &[u8]) -> bool {
    parse(cert)
        .ok()
        .and_then(|c| der::Encode::to_der(&c.tbs_certificate.subject_public_key_info).ok())
        .is_some_and(|own| own == spki)
}

/// Whether the certificate's extendedKeyUsage lists `purpose`.
pub fn has_eku(cert: &Certificate, purpose: &ObjectIdentifier) -> bool {
    extension(cert, &oid::ID_CE_EXT_KEY_USAGE)
        .and_then(|(_, v)| ExtendedKeyUsage::from_der(v).ok())
        .is_some_and(|eku| eku.0.contains(purpose))
}

/// The certificate's rfc822Name subjectAltNames.
pub fn emails(cert: &Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::{SubjectAltName, name::GeneralName};
    extension(cert, &const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
        .and_then(|(_, v)| SubjectAltName::from_der(v).ok())
        .map(|san| {
            san.0
                .into_iter()
                .filter_map(|n| match n {
                    GeneralName::Rfc822Name(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The certificate's validity period: notBefore and notAfter, Unix seconds, inclusive.
pub fn validity(cert: &Certificate) -> (u64, u64) {
    let v = &cert.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

/// Whether `at` (Unix seconds) lies within the certificate's validity period.
pub fn valid_at(cert: &Certificate, at_unix: u64) -> bool {
    let (from, until) = validity(cert);
    from <= at_unix && at_unix <= until
}

/// Whether the certificate is self-issued (subject equals issuer), as a root is.
pub fn is_self_issued(cert: &Certificate) -> bool {
    cert.tbs_certificate.subject == cert.tbs_certificate.issuer
}
