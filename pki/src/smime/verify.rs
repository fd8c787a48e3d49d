//! Verifying a signed message (RFC 8551, RFC 5652), resisting the S/MIME spoofing classes of
//! "Johnny, you are fired!" (USENIX Security 2019).
//!
//! * Only a message signed as a whole counts. The top-level entity must be a signature layer
//!   (multipart/signed, or application/pkcs7-mime signed-data); a signed part wrapped inside an
//!   unsigned multipart ("partially signed": a list footer, an attacker's prefix) or a
//!   multipart/signed with more than its two parts is reported as not verified.
//! * The signed part is hashed exactly as it sits in the message after the canonical CRLF
//!   form: its extent is found by the strict RFC 2046 split, and a message on which that split
//!   and mail-parser's reading disagree is refused (what a mail client shows must be what was
//!   verified). A detached signature that also carries different eContent is refused.
//! * Every SignerInfo is verified by the one SignerInfo verifier
//!   ([`crate::signer_check::check_signer`]), its signature timestamp by the token verifier
//!   ([`crate::token::check_signature_timestamp`]); a signer nobody can verify fails the
//!   message.
//! * The From address must be bound by the certificate of every signer of the outermost
//!   layer (rfc822Name subjectAltName, or emailAddress in the subject; the local part
//!   compared exactly, the domain without regard to case); a mismatch is reported as possible
//!   impersonation, naming both.
//! * The certificate path (with emailProtection when the certificate has an EKU) is checked at
//!   the proven time, else now, else the time given, and the report says which.
//! * A signed message inside a signed message is verified layer by layer.
//!
//! The checks of one SignerInfo are in [`signer`].

mod signer;

pub use signer::{certificate_addresses, same_address};

use super::mime::{self, ContentType};
use crate::cms::RawSignedData;
use crate::error::error_text;
use crate::oid;
use crate::report::{Kind, Report, SignatureReport};
use crate::signer_check::SignedKind;
use crate::signer_info::SignerInfoView;
use crate::token::VerifyOptions;
use cms::signed_data::EncapsulatedContentInfo;
use der::asn1::OctetString;
use std::borrow::Cow;

/// Signature layers followed before giving up (sign, then sign again, ...).
pub const MAX_LAYERS: usize = 8;

/// How long the claimed, proven and Date times may differ before the report flags it.
pub const DEFAULT_MAX_TIME_GAP_SECS: i64 = 300;

/// How the shared SignerInfo verifier names an email's parts.
const EMAIL_KIND: SignedKind = SignedKind {
    content_type: oid::ID_DATA,
    content_type_name: "id-data",
    content: "the signed MIME part",
    whole: "the message",
    holder: "the signature",
    signer: "the signer's certificate",
};

pub use crate::cades::CheckTime;

/// What to verify a message against.
#[derive(Clone, Debug)]
pub struct EmailVerifyOptions {
    /// Anchors for the signers' certificates (`--trust`).
    pub trust: Vec<Vec<u8>>,
    /// Anchors for the TSAs (`--tsa-trust`); `None`: the same as `trust`.
    pub tsa_trust: Option<Vec<Vec<u8>>>,
    /// Certificates to use beside those the signature carries.
    pub extra_certs: Vec<Vec<u8>>,
    /// When to check the signers' certificate paths.
    pub check_time: CheckTime,
    /// Largest gap between the proven time, the signingTime and the Date header, seconds.
    pub max_time_gap: i64,
    /// The verifier's clock, Unix seconds (`None`: the system clock).
    pub now: Option<i64>,
    /// Weak algorithms and structure warnings fail.
    pub strict: bool,
}

impl Default for EmailVerifyOptions {
    fn default() -> Self {
        EmailVerifyOptions {
            trust: Vec::new(),
            tsa_trust: None,
            extra_certs: Vec::new(),
            check_time: CheckTime::Proven,
            max_time_gap: DEFAULT_MAX_TIME_GAP_SECS,
            now: None,
            strict: false,
        }
    }
}

/// Whether `bytes` look like an RFC 5322 message (for `stamp verify`'s detection): a header
/// block whose first line is a field, naming at least one of the fields messages carry.
pub fn looks_like_message(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let (block, _) = mime::split_entity(head);
    let Ok(fields) = mime::fields(block) else {
        return false;
    };
    !fields.is_empty()
        && fields.iter().any(|f| {
            [
                "From",
                "Content-Type",
                "MIME-Version",
                "Subject",
                "Date",
                "Message-ID",
            ]
            .iter()
            .any(|n| f.is(n))
        })
}

/// One signature layer found in the message.
struct Layer {
    /// The SignedData ContentInfo, DER (BER input normalised).
    cms: Result<Vec<u8>, String>,
    /// The bytes the signature covers: the signed part (detached) or the eContent (opaque).
    content: Vec<u8>,
    /// What problems the layer's framing has (fail the layer).
    problems: Vec<String>,
    /// How the layer was carried.
    form: Form,
}

/// The two ways RFC 8551 carries a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// multipart/signed: the signed part shown as it is, the signature beside it.
    Detached,
    /// application/pkcs7-mime signed-data: the content inside the SignedData.
    Opaque,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Detached => "multipart/signed",
            Form::Opaque => "application/pkcs7-mime",
        }
    }
}

/// Verifies a message. `source` names it in the report.
pub fn verify_message(source: &str, bytes: &[u8], o: &EmailVerifyOptions) -> Report {
    let message = mime::crlf(bytes);
    let (block, _) = mime::split_entity(&message);
    if let Err(e) = mime::fields(block) {
        return Report::error(Kind::Email, source, format!("not a readable message: {e}"));
    }
    let Some(parsed) = mail_parser::MessageParser::new().parse(&message[..]) else {
        return Report::error(Kind::Email, source, "not a readable message");
    };
    // Every From field: RFC 5322 §3.6 allows one, and a second one is how a forged sender is
    // shown by one mail client while another checks the other.
    let from_fields: Vec<&mail_parser::HeaderValue<'_>> = parsed
        .root_part()
        .headers
        .iter()
        .filter(|h| matches!(h.name, mail_parser::HeaderName::From))
        .map(|h| &h.value)
        .collect();
    let from_addrs: Vec<&mail_parser::Addr<'_>> = from_fields
        .iter()
        .filter_map(|v| v.as_address())
        .flat_map(|a| a.iter())
        .collect();
    let from: Vec<String> = from_addrs
        .iter()
        .filter_map(|x| x.address().map(str::to_owned))
        .collect();
    let from_display_addresses: Vec<String> = from_addrs
        .iter()
        .filter_map(|x| x.name())
        .flat_map(signer::addresses_in_display_name)
        .collect();
    let date = parsed.date().map(mail_parser::DateTime::to_timestamp);

    // Peel the signature layers.
    let mut layers: Vec<Layer> = Vec::new();
    let mut report_errors: Vec<String> = Vec::new();
    if from_fields.len() > 1 {
        report_errors.push(format!(
            "the message has {} From fields ({}); RFC 5322 allows one: mail clients may show \
             a different sender than the one checked",
            from_fields.len(),
            from.join(", ")
        ));
    }
    loop {
        if layers.len() == MAX_LAYERS {
            report_errors.push(format!(
                "more than {MAX_LAYERS} signature layers: not followed further"
            ));
            break;
        }
        // The message itself, then what each layer signed. The message is parsed already;
        // inner entities are parsed where needed.
        let current: &[u8] = layers.last().map_or(&message[..], |l| l.content.as_slice());
        match peel(current, layers.is_empty().then_some(&parsed)) {
            Peeled::Layer(layer) => layers.push(layer),
            Peeled::Encrypted(what) => {
                report_errors.push(format!(
                    "encrypted ({what}): decrypt first (`stamp email decrypt`), then verify"
                ));
                break;
            }
            Peeled::Unreadable(e) => {
                report_errors.push(e);
                break;
            }
            Peeled::Content => {
                if layers.is_empty() {
                    report_errors.push(match find_signed_inside(&parsed) {
                        Some(where_) => format!(
                            "partially signed: a signed part is wrapped inside an unsigned \
                             {where_}; the rest of the message is covered by no signature: do \
                             not trust it"
                        ),
                        None => "not signed: do not trust this message".into(),
                    });
                }
                break;
            }
        }
    }

    let tsa_opts = VerifyOptions {
        trust: o.tsa_trust.clone().unwrap_or_else(|| o.trust.clone()),
        extra_certs: o.extra_certs.clone(),
        now: o.now,
        strict: o.strict,
        ..VerifyOptions::default()
    };
    let mut signatures = Vec::new();
    let several = layers.len() > 1;
    for (i, layer) in layers.iter().enumerate() {
        let ctx = LayerContext {
            index: i,
            several,
            outermost: i == 0,
            from: &from,
            from_display_addresses: &from_display_addresses,
            date,
            opts: o,
            tsa_opts: &tsa_opts,
        };
        match verify_layer(layer, &ctx) {
            Ok(mut sigs) => signatures.append(&mut sigs),
            Err(e) => report_errors.push(if several {
                format!("layer {}: {e}", i + 1)
            } else {
                e
            }),
        }
    }
    let mut report = Report::new(Kind::Email, source, signatures);
    for e in report_errors {
        report.add_error(e);
    }
    report
}

enum Peeled {
    Layer(Layer),
    Encrypted(String),
    Unreadable(String),
    Content,
}

/// Reads the top of `entity`: a signature layer, encrypted content, or plain content.
/// `parsed` is mail-parser's reading of `entity` when the caller has it.
fn peel(entity: &[u8], parsed: Option<&mail_parser::Message<'_>>) -> Peeled {
    let (block, body) = mime::split_entity(entity);
    let fields = match mime::fields(block) {
        Ok(f) => f,
        Err(e) => return Peeled::Unreadable(format!("a signed part's header is malformed: {e}")),
    };
    let Some(ct) = mime::content_type(&fields) else {
        return Peeled::Unreadable("a Content-Type field is unreadable or given twice".into());
    };
    match ct.mime.as_str() {
        "multipart/signed" => Peeled::Layer(multipart_signed(entity, parsed, &ct, body)),
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            let smime_type = ct.param("smime-type").map(str::to_ascii_lowercase);
            match smime_type.as_deref() {
                Some("enveloped-data") => {
                    return Peeled::Encrypted(super::encrypt::summary(entity, "EnvelopedData"));
                }
                Some("authenveloped-data") => {
                    return Peeled::Encrypted(super::encrypt::summary(entity, "AuthEnvelopedData"));
                }
                Some("compressed-data") => {
                    return Peeled::Unreadable(
                        "compressed-data (RFC 3274) is not supported".into(),
                    );
                }
                _ => {}
            }
            let der = match decode_body(&fields, body) {
                Ok(d) => d,
                Err(e) => return Peeled::Unreadable(format!("the signature cannot be read: {e}")),
            };
            opaque(der)
        }
        _ => Peeled::Content,
    }
}

fn decode_body(fields: &[mime::Field<'_>], body: &[u8]) -> Result<Vec<u8>, String> {
    mime::decode_transfer(&mime::transfer_encoding(fields), body).map(Cow::into_owned)
}

fn multipart_signed(
    entity: &[u8],
    parsed: Option<&mail_parser::Message<'_>>,
    ct: &ContentType,
    body: &[u8],
) -> Layer {
    let mut layer = Layer {
        cms: Err("no signature part".into()),
        content: Vec::new(),
        problems: Vec::new(),
        form: Form::Detached,
    };
    let protocol = ct.param("protocol").unwrap_or("").to_ascii_lowercase();
    if !matches!(
        protocol.as_str(),
        "application/pkcs7-signature" | "application/x-pkcs7-signature"
    ) {
        layer.problems.push(format!(
            "multipart/signed with protocol {protocol:?}, not application/pkcs7-signature"
        ));
    }
    let Some(boundary) = ct.param("boundary") else {
        layer
            .problems
            .push("multipart/signed without a boundary".into());
        return layer;
    };
    let mp = match mime::split_multipart(body, boundary) {
        Ok(m) => m,
        Err(e) => {
            layer.problems.push(format!("multipart/signed: {e}"));
            return layer;
        }
    };
    if mp.parts.len() != 2 {
        layer.problems.push(format!(
            "multipart/signed with {} parts; RFC 1847 allows exactly the signed part and the \
             signature: unsigned parts would be shown beside the signed one",
            mp.parts.len()
        ));
    }
    if !mp.closed {
        layer
            .problems
            .push("multipart/signed without its closing delimiter".into());
    }
    let Some(signed) = mp.parts.first() else {
        return layer;
    };
    layer.content = signed.to_vec();
    // What mail-parser (as a mail client would) takes for the signed part must be these bytes.
    if let Some(problem) = parsers_disagree(entity, parsed, signed) {
        layer.problems.push(problem);
    }
    let Some(sig_part) = mp.parts.get(1) else {
        return layer;
    };
    let (b, sig_body) = mime::split_entity(sig_part);
    let sig_fields = match mime::fields(b) {
        Ok(f) => f,
        Err(e) => {
            layer.cms = Err(format!("the signature part's header is malformed: {e}"));
            return layer;
        }
    };
    let sig_ct = mime::content_type(&sig_fields).map(|c| c.mime);
    if !matches!(
        sig_ct.as_deref(),
        Some("application/pkcs7-signature" | "application/x-pkcs7-signature")
    ) {
        layer.problems.push(format!(
            "the second part of multipart/signed is {}, not application/pkcs7-signature",
            sig_ct.unwrap_or_else(|| "unreadable".into())
        ));
    }
    layer.cms = decode_body(&sig_fields, sig_body).and_then(normalize);
    layer
}

fn opaque(der: Vec<u8>) -> Peeled {
    let der = match normalize(der) {
        Ok(d) => d,
        Err(e) => return Peeled::Unreadable(e),
    };
    // Encrypted content labelled without (or with a wrong) smime-type: say so.
    let content_type = crate::raw::RawTlv::parse(&der, "ContentInfo")
        .and_then(|ci| ci.children("ContentInfo"))
        .ok()
        .and_then(|f| {
            f.first()
                .and_then(|t| t.decode::<der::asn1::ObjectIdentifier>("contentType").ok())
        });
    if content_type == Some(oid::ID_ENVELOPED_DATA) {
        return Peeled::Encrypted(super::encrypt::summary_of_cms(&der, "EnvelopedData"));
    }
    if content_type == Some(oid::ID_CT_AUTH_ENVELOPED_DATA) {
        return Peeled::Encrypted(super::encrypt::summary_of_cms(&der, "AuthEnvelopedData"));
    }
    let content = match RawSignedData::parse(&der)
        .map_err(|e| error_text(&e))
        .and_then(|raw| econtent(&encap_content_info(&raw)?))
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Peeled::Unreadable(
                "application/pkcs7-mime signed-data without encapsulated content".into(),
            );
        }
        Err(e) => return Peeled::Unreadable(format!("malformed signature: {e}")),
    };
    Peeled::Layer(Layer {
        cms: Ok(der),
        content,
        problems: Vec::new(),
        form: Form::Opaque,
    })
}

fn normalize(der: Vec<u8>) -> Result<Vec<u8>, String> {
    crate::ber::normalize(&der)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| format!("malformed signature: {}", error_text(&e)))
}

/// A SignedData's encapContentInfo.
fn encap_content_info(raw: &RawSignedData<'_>) -> Result<EncapsulatedContentInfo, String> {
    raw.fields[2]
        .decode("encapContentInfo")
        .map_err(|e| error_text(&e))
}

/// The eContent octets, when present.
fn econtent(encap: &EncapsulatedContentInfo) -> Result<Option<Vec<u8>>, String> {
    match &encap.econtent {
        None => Ok(None),
        Some(any) => any
            .decode_as::<OctetString>()
            .map(|o| Some(o.as_bytes().to_vec()))
            .map_err(|e| format!("eContent is not an OCTET STRING: {e}")),
    }
}

/// Compares the signed part found by the strict split with mail-parser's first sub-part of
/// `entity` (`parsed`, when the caller has parsed it already).
fn parsers_disagree(
    entity: &[u8],
    parsed: Option<&mail_parser::Message<'_>>,
    signed: &[u8],
) -> Option<String> {
    let own;
    let parsed = match parsed {
        Some(p) => p,
        None => {
            own = mail_parser::MessageParser::new().parse(entity)?;
            &own
        }
    };
    let first_child = match &parsed.root_part().body {
        mail_parser::PartType::Multipart(ids) => ids.first().copied(),
        _ => None,
    };
    let child = first_child.and_then(|id| parsed.parts.get(id as usize))?;
    let (start, end) = (child.offset_header as usize, child.offset_end as usize);
    let theirs = parsed.raw_message.get(start..end)?;
    (theirs != signed).then(|| {
        "the MIME structure is ambiguous: mail readers would show other content than the part \
         the signature covers (a boundary inside a line, or a malformed delimiter)"
            .to_owned()
    })
}

/// Where a signed part sits inside an unsigned message, if one does: the type of the
/// message's top-level entity.
fn find_signed_inside(parsed: &mail_parser::Message<'_>) -> Option<String> {
    let root = parsed
        .root_part()
        .headers
        .iter()
        .find_map(|h| h.value.as_content_type())
        .map(ContentType::from_parsed)?;
    let signed = parsed.parts.iter().skip(1).any(|p| {
        p.headers
            .iter()
            .find_map(|h| h.value.as_content_type())
            .map(ContentType::from_parsed)
            .is_some_and(|c| {
                c.mime == "multipart/signed"
                    || (matches!(
                        c.mime.as_str(),
                        "application/pkcs7-mime" | "application/x-pkcs7-mime"
                    ) && c
                        .param("smime-type")
                        .is_none_or(|t| t.eq_ignore_ascii_case("signed-data")))
            })
    });
    signed.then_some(root.mime)
}

/// What a layer's signers are checked with.
struct LayerContext<'a> {
    /// The layer's place, outermost first.
    index: usize,
    /// Whether the message has more than one layer (for the labels).
    several: bool,
    /// Whether this is the outermost layer, whose signers must be the From address.
    outermost: bool,
    /// The From addresses.
    from: &'a [String],
    /// Addresses shown in the From display names.
    from_display_addresses: &'a [String],
    /// The Date header, Unix seconds.
    date: Option<i64>,
    /// The caller's options.
    opts: &'a EmailVerifyOptions,
    /// The token verifier's options for signature timestamps (the TSA anchors).
    tsa_opts: &'a VerifyOptions,
}

fn verify_layer(layer: &Layer, ctx: &LayerContext<'_>) -> Result<Vec<SignatureReport>, String> {
    let der = layer.cms.as_ref().map_err(Clone::clone)?;
    let raw = RawSignedData::parse(der)
        .map_err(|e| format!("malformed signature: {}", error_text(&e)))?;
    let encap = encap_content_info(&raw).map_err(|e| format!("malformed signature: {e}"))?;
    let mut layer_problems = layer.problems.clone();
    if encap.econtent_type != oid::ID_DATA {
        layer_problems.push(format!(
            "the signed content type is {}, not id-data",
            encap.econtent_type
        ));
    }
    if layer.form == Form::Detached
        && let Some(inside) = econtent(&encap)?
        && inside != layer.content
    {
        layer_problems.push(
            "the detached signature also carries encapsulated content that differs from the \
             part shown (eContent confusion): the signature is not over what is displayed"
                .into(),
        );
    }
    if raw.signer_infos.is_empty() {
        return Err("the signature holds no SignerInfo: nothing is signed".into());
    }
    let bag_owned: Vec<&[u8]> = raw.certificates().map_err(|e| error_text(&e))?;
    let carries = !bag_owned.is_empty();
    let bag: Vec<&[u8]> = bag_owned
        .iter()
        .copied()
        .chain(ctx.opts.extra_certs.iter().map(Vec::as_slice))
        .collect();
    let several_signers = raw.signer_infos.len() > 1;
    let mut out = Vec::new();
    for (j, si_raw) in raw.signer_infos.iter().enumerate() {
        let label = match (ctx.several, several_signers) {
            (false, false) => "signer".to_owned(),
            (false, true) => format!("signer {}", j + 1),
            (true, false) => format!("layer {} ({}) signer", ctx.index + 1, layer.form.name()),
            (true, true) => format!(
                "layer {} ({}) signer {}",
                ctx.index + 1,
                layer.form.name(),
                j + 1
            ),
        };
        let mut r = SignatureReport::new(label);
        for p in &layer_problems {
            r.fail("structure", p.clone());
        }
        match SignerInfoView::parse(si_raw.full) {
            Ok(view) => signer::verify_signer(&mut r, &view, &layer.content, &bag, carries, ctx),
            Err(e) => r.fail(
                "signed-attributes",
                format!("the SignerInfo is malformed: {}", error_text(&e)),
            ),
        }
        r.finish();
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_content_without_smime_type_says_decrypt_first() {
        // ContentInfo { envelopedData, [0] SEQUENCE {} }, labelled as plain pkcs7-mime.
        let m = b"From: a@b\r\nContent-Type: application/pkcs7-mime; name=smime.p7m\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nMBEGCSqGSIb3DQEHA6AEMAIwAA==\r\n";
        let r = verify_message("m", m, &EmailVerifyOptions::default());
        assert!(!r.verified);
        assert!(r.errors[0].contains("decrypt first"), "{:?}", r.errors);
    }

    #[test]
    fn unsigned_and_partially_signed_messages_are_not_verified() {
        let o = EmailVerifyOptions::default();
        let r = verify_message("m", b"From: a@b\r\nSubject: x\r\n\r\nhello\r\n", &o);
        assert!(!r.verified);
        assert!(r.errors[0].starts_with("not signed"), "{:?}", r.errors);
        let wrapped = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\
            Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=i\r\n\r\n\
            --i\r\nContent-Type: text/plain\r\n\r\nhi\r\n--i\r\n\
            Content-Type: application/pkcs7-signature\r\n\r\nxx\r\n--i--\r\n\
            --o\r\nContent-Type: text/plain\r\n\r\nfooter\r\n--o--\r\n";
        let r = verify_message("m", wrapped, &o);
        assert!(!r.verified);
        assert!(
            r.errors[0].starts_with("partially signed"),
            "{:?}",
            r.errors
        );
    }
}
